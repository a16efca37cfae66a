//! Channels and actions: what can be sent, and on which channel.

use super::{Checker, value_or};
use crate::catalog::file::{ActionDef, CatalogFile, ConsentPolicyDef};
use crate::catalog::{Action, Channel, ConsentPolicy, QuietHours};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The `[channels.<id>]`: consent policy and quiet hours of each.
pub(super) fn compile_channels(
    checker: &mut Checker<'_>,
    file: &CatalogFile,
) -> BTreeMap<String, Channel> {
    let mut channels = BTreeMap::new();
    for (id, def) in &file.channels {
        let span = def.span();
        let def = def.get_ref();
        checker.check_id(&format!("channels.{id}"), &span, id);
        let quiet_hours = def.quiet_hours.as_ref().and_then(|quiet| {
            let start = minute_of_day(quiet.start.get_ref());
            let end = minute_of_day(quiet.end.get_ref());
            for (name, text, parsed) in [("start", &quiet.start, start), ("end", &quiet.end, end)] {
                if parsed.is_none() {
                    checker.report(
                        format!("channels.{id}.quiet_hours.{name}"),
                        Some(&text.span()),
                        format!("'{}' is not a time like 21:00", text.get_ref()),
                    );
                }
            }
            Some(QuietHours {
                start_minute: start?,
                end_minute: end?,
            })
        });
        let consent = match def.consent {
            ConsentPolicyDef::OptOut => ConsentPolicy::OptOut,
            ConsentPolicyDef::OptIn => ConsentPolicy::OptIn,
        };
        channels.insert(
            id.clone(),
            Channel {
                id: id.clone(),
                consent,
                quiet_hours,
            },
        );
    }
    if channels.is_empty() {
        checker.report("channels", None, "the catalog has no [channels.<id>]");
    }
    channels
}

/// The `[[actions]]`, each checked against the declared channels, its
/// rule compiled.
pub(super) fn compile_actions(
    checker: &mut Checker<'_>,
    env: &cel::Env,
    file: &CatalogFile,
    channels: &BTreeMap<String, Channel>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut seen: HashMap<String, (usize, u32)> = HashMap::new();
    for (position, def) in file.actions.iter().enumerate() {
        let span = def.span();
        let def: &ActionDef = def.get_ref();
        let field = format!("actions[{position}]");
        let id = def.id.get_ref();
        let id_span = def.id.span();
        checker.check_id(&format!("{field}.id"), &id_span, id);
        let line = checker.line_of(&id_span);
        // Keep the first definition's line: a third copy still points at the first.
        let (first_position, first) = *seen.entry(id.clone()).or_insert((position, line));
        if first_position != position {
            checker.report(
                format!("{field}.id"),
                Some(&id_span),
                format!("duplicate action id '{id}' (first defined on line {first})"),
            );
        }
        let channel = def.channel.get_ref();
        if !channels.contains_key(channel) {
            checker.report(
                format!("{field}.channel"),
                Some(&def.channel.span()),
                format!("channel '{channel}' is not declared in [channels]"),
            );
        }
        if def.category.get_ref().trim().is_empty() {
            checker.report(
                format!("{field}.category"),
                Some(&def.category.span()),
                "must not be empty",
            );
        }
        let (value, value_span) = value_or(def.value.as_ref(), 1.0, &span);
        if !(value.is_finite() && value >= 0.0) {
            checker.report(
                format!("{field}.value"),
                Some(&value_span),
                format!("{value} must be a finite number ≥ 0"),
            );
        }
        let (lever, lever_span) = value_or(def.lever.as_ref(), 1.0, &span);
        if !(lever.is_finite() && lever > 0.0) {
            checker.report(
                format!("{field}.lever"),
                Some(&lever_span),
                format!("{lever} must be a positive number"),
            );
        }
        let valid_from = checker.instant(&format!("{field}.valid_from"), def.valid_from.as_ref());
        let valid_until =
            checker.instant(&format!("{field}.valid_until"), def.valid_until.as_ref());
        if let (Some(from), Some(until), Some(until_text)) =
            (valid_from, valid_until, &def.valid_until)
            && from >= until
        {
            checker.report(
                format!("{field}.valid_until"),
                Some(&until_text.span()),
                format!("{until} is not after valid_from {from}"),
            );
        }
        let cooldown = checker.span_field(&format!("{field}.cooldown"), def.cooldown.as_ref());
        let dismiss_cooldown = checker.span_field(
            &format!("{field}.dismiss_cooldown"),
            def.dismiss_cooldown.as_ref(),
        );
        if let Some(budget) = &def.budget
            && *budget.get_ref() == 0
        {
            checker.report(
                format!("{field}.budget"),
                Some(&budget.span()),
                "must be at least 1 (set active = false to stop an action)",
            );
        }
        let rule = def
            .rule
            .as_ref()
            .and_then(|source| checker.rule(env, &format!("{field}.rule"), source));
        let cel_value = action_cel_value(def, value);
        actions.push(Action {
            index: actions.len(),
            id: Arc::from(id.as_str()),
            name: if def.name.is_empty() {
                id.clone()
            } else {
                def.name.clone()
            },
            channel: channel.clone(),
            // An undeclared channel is a problem already reported.
            channel_position: channels.keys().position(|id| id == channel).unwrap_or(0),
            category: def.category.get_ref().clone(),
            value,
            lever,
            active: def.active,
            valid_from,
            valid_until,
            rule,
            cooldown,
            dismiss_cooldown,
            budget: def.budget.as_ref().map(|budget| *budget.get_ref()),
            caps: Vec::new(),
            payload: def.payload.clone(),
            cel_value,
        });
    }
    actions
}

/// The `action` variable of rules: id, channel, category, value, payload.
fn action_cel_value(def: &ActionDef, value: f64) -> Box<dyn cel::common::value::Val> {
    let payload: HashMap<String, cel::Value> = def
        .payload
        .iter()
        .map(|(key, value)| (key.clone(), cel::Value::from(value.as_str())))
        .collect();
    let value: cel::Value = HashMap::from([
        ("id".to_owned(), cel::Value::from(def.id.get_ref().as_str())),
        (
            "channel".to_owned(),
            cel::Value::from(def.channel.get_ref().as_str()),
        ),
        (
            "category".to_owned(),
            cel::Value::from(def.category.get_ref().as_str()),
        ),
        ("value".to_owned(), cel::Value::Float(value)),
        ("payload".to_owned(), payload.into()),
    ])
    .into();
    // A map of strings and a double always converts.
    Box::<dyn cel::common::value::Val>::try_from(value)
        .unwrap_or_else(|_| Box::new(cel::common::types::CelNull))
}

/// Parses `HH:MM` into a minute of the day.
pub(in crate::catalog::compile) fn minute_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60 && text.len() == 5).then_some(hours * 60 + minutes)
}
