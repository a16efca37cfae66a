//! Placements: where actions are shown, how many, and how they are explored.

use super::{Checker, MAX_SLOTS, strings, value_or};
use crate::catalog::file::{ExplorationMethodDef, PlacementDef};
use crate::catalog::journeys::journey_placement_id;
use crate::catalog::{Action, Channel, Exploration, Placement};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// One `[placements.<id>]`, or `None` when it has a problem (reported).
pub(super) fn compile_placement(
    checker: &mut Checker<'_>,
    id: &str,
    span: &Range<usize>,
    def: &PlacementDef,
    channels: &BTreeMap<String, Channel>,
    action_index: &HashMap<String, usize>,
    actions: &[Action],
) -> Option<Placement> {
    let field = format!("placements.{id}");
    let before = checker.problems.len();
    checker.check_id(&field, span, id);
    let placement_channels = strings(def.channels.get_ref());
    if placement_channels.is_empty() {
        checker.report(
            format!("{field}.channels"),
            Some(&def.channels.span()),
            "must list at least one channel",
        );
    }
    for channel in def.channels.get_ref() {
        if !channels.contains_key(channel.get_ref()) {
            checker.report(
                format!("{field}.channels"),
                Some(&channel.span()),
                format!(
                    "channel '{}' is not declared in [channels]",
                    channel.get_ref()
                ),
            );
        }
    }
    let (slots, slots_span) = value_or(def.slots.as_ref(), 1, span);
    if slots == 0 || slots > MAX_SLOTS {
        checker.report(
            format!("{field}.slots"),
            Some(&slots_span),
            format!("{slots} must be between 1 and {MAX_SLOTS}"),
        );
    }
    for action_id in &def.fallback {
        let name = action_id.get_ref();
        match action_index.get(name) {
            None => checker.report(
                format!("{field}.fallback"),
                Some(&action_id.span()),
                format!("action '{name}' is not in [[actions]]"),
            ),
            Some(&position) if !placement_channels.contains(&actions[position].channel) => {
                checker.report(
                    format!("{field}.fallback"),
                    Some(&action_id.span()),
                    format!(
                        "action '{name}' is on channel '{}', which this placement does not allow",
                        actions[position].channel
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let mut context_weights = BTreeMap::new();
    for (category, weight) in &def.context_weights {
        let value = *weight.get_ref();
        if !(value.is_finite() && value > 0.0) {
            checker.report(
                format!("{field}.context_weights.{category}"),
                Some(&weight.span()),
                format!("{value} must be a positive number"),
            );
        }
        context_weights.insert(category.clone(), value);
    }
    let exploration = match def.exploration.method {
        ExplorationMethodDef::None => Exploration::None,
        ExplorationMethodDef::Epsilon => {
            let (epsilon, at) = value_or(def.exploration.epsilon.as_ref(), 0.05, span);
            if !(0.0..=1.0).contains(&epsilon) {
                checker.report(
                    format!("{field}.exploration.epsilon"),
                    Some(&at),
                    format!("{epsilon} must be between 0 and 1"),
                );
            }
            Exploration::Epsilon(epsilon)
        }
        ExplorationMethodDef::Softmax => {
            let (temperature, at) = value_or(def.exploration.temperature.as_ref(), 0.1, span);
            if !(temperature.is_finite() && temperature > 0.0) {
                checker.report(
                    format!("{field}.exploration.temperature"),
                    Some(&at),
                    format!("{temperature} must be a positive number"),
                );
            }
            Exploration::Softmax(temperature)
        }
    };
    (checker.problems.len() == before).then(|| Placement {
        id: id.to_owned(),
        channels: placement_channels,
        categories: def.categories.clone(),
        slots,
        one_per_category: def.one_per_category,
        fallback: strings(&def.fallback),
        context_weights,
        exploration,
        candidates: Vec::new(),
        allowed: Vec::new(),
        value_lever_context: Vec::new(),
    })
}

/// The placement a journey's fixed-action sends decide in (`journey/<id>`):
/// every channel and category, one slot, no exploration; its fallback is
/// the actions the journey sends, so without a model a send of one action
/// is still that action or, with a reason, nothing. Ids declared in the
/// file cannot hold a `/`, so it never clashes with one.
pub(super) fn journey_placement(
    journey_id: &str,
    channels: &BTreeMap<String, Channel>,
    sent: Vec<String>,
) -> Placement {
    Placement {
        id: journey_placement_id(journey_id),
        channels: channels.keys().cloned().collect(),
        categories: Vec::new(),
        slots: 1,
        one_per_category: false,
        fallback: sent,
        context_weights: BTreeMap::new(),
        exploration: Exploration::None,
        candidates: Vec::new(),
        allowed: Vec::new(),
        value_lever_context: Vec::new(),
    }
}
