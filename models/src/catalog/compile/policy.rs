//! The catalog's policies across actions: caps, blackouts, category levers
//! and segments.

use super::{Checker, strings};
use crate::catalog::file::{CapDef, CapScopeDef, CatalogFile};
use crate::catalog::{Blackout, CapRule, CapScope, Channel, Segment};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use toml::Spanned;

/// Builds a [`CapScope`] around a scoped cap's target.
type ScopeOf = fn(String) -> CapScope;

/// One `[[caps]]` entry, its target checked; `None` when it has a problem.
pub(super) fn compile_cap(
    checker: &mut Checker<'_>,
    position: usize,
    span: &Range<usize>,
    def: &CapDef,
    channels: &BTreeMap<String, Channel>,
    action_index: &HashMap<String, usize>,
    categories: &BTreeSet<&str>,
) -> Option<CapRule> {
    let field = format!("caps[{position}]");
    let window = checker.span_field(&format!("{field}.window"), Some(&def.window));
    let limit = *def.limit.get_ref();
    if limit == 0 {
        checker.report(
            format!("{field}.limit"),
            Some(&def.limit.span()),
            "must be at least 1 (remove the channel from placements to stop it)",
        );
    }
    let target: Option<(&str, Option<&Spanned<String>>, ScopeOf)> = match def.scope {
        CapScopeDef::Total => None,
        CapScopeDef::Channel => Some(("channel", def.channel.as_ref(), CapScope::Channel)),
        CapScopeDef::Action => Some(("action", def.action.as_ref(), CapScope::Action)),
        CapScopeDef::Category => Some(("category", def.category.as_ref(), CapScope::Category)),
    };
    // Where the target is written, for a problem with it.
    let mut target_span = span.clone();
    let scope = match target {
        None => Some(CapScope::Total),
        Some((name, None, _)) => {
            checker.report(
                format!("{field}.{name}"),
                Some(span),
                format!("scope '{name}' needs `{name} = \"...\"`"),
            );
            None
        }
        Some((_, Some(value), scope_of)) => {
            target_span = value.span();
            Some(scope_of(value.get_ref().clone()))
        }
    };
    match &scope {
        Some(CapScope::Channel(id)) if !channels.contains_key(id) => {
            checker.report(
                format!("{field}.channel"),
                Some(&target_span),
                format!("channel '{id}' is not declared in [channels]"),
            );
        }
        Some(CapScope::Action(id)) if !action_index.contains_key(id) => {
            checker.report(
                format!("{field}.action"),
                Some(&target_span),
                format!("action '{id}' is not in [[actions]]"),
            );
        }
        Some(CapScope::Category(id)) if !categories.contains(id.as_str()) => {
            checker.report(
                format!("{field}.category"),
                Some(&target_span),
                format!("no action has category '{id}'"),
            );
        }
        _ => {}
    }
    Some(CapRule {
        scope: scope?,
        limit,
        window: window?,
    })
}

/// The `[[blackouts]]`: dates, in the customer's time zone, on which the
/// listed channels (all when none) send nothing.
pub(super) fn compile_blackouts(
    checker: &mut Checker<'_>,
    file: &CatalogFile,
    channels: &BTreeMap<String, Channel>,
) -> Vec<Blackout> {
    let mut blackouts = Vec::new();
    for (position, def) in file.blackouts.iter().enumerate() {
        let def = def.get_ref();
        let mut dates = Vec::new();
        for date in &def.dates {
            match NaiveDate::parse_from_str(date.get_ref(), "%Y-%m-%d") {
                Ok(parsed) => dates.push(parsed),
                Err(_) => checker.report(
                    format!("blackouts[{position}].dates"),
                    Some(&date.span()),
                    format!("'{}' is not a date like 2026-12-25", date.get_ref()),
                ),
            }
        }
        for channel in &def.channels {
            if !channels.contains_key(channel.get_ref()) {
                checker.report(
                    format!("blackouts[{position}].channels"),
                    Some(&channel.span()),
                    format!(
                        "channel '{}' is not declared in [channels]",
                        channel.get_ref()
                    ),
                );
            }
        }
        blackouts.push(Blackout {
            name: def.name.clone(),
            dates,
            channels: strings(&def.channels),
        });
    }
    blackouts
}

/// The `[levers]` multipliers of each category.
pub(super) fn compile_levers(
    checker: &mut Checker<'_>,
    file: &CatalogFile,
) -> BTreeMap<String, f64> {
    let mut category_levers = BTreeMap::new();
    for (category, lever) in &file.levers.categories {
        let value = *lever.get_ref();
        if !(value.is_finite() && value > 0.0) {
            checker.report(
                format!("levers.categories.{category}"),
                Some(&lever.span()),
                format!("{value} must be a positive number"),
            );
        }
        category_levers.insert(category.clone(), value);
    }
    category_levers
}

/// The `[[segments]]`: rules that pick the default actions of the fallback
/// ladder.
pub(super) fn compile_segments(
    checker: &mut Checker<'_>,
    env: &cel::Env,
    file: &CatalogFile,
    action_index: &HashMap<String, usize>,
) -> Vec<Segment> {
    let mut segments = Vec::new();
    for (position, def) in file.segments.iter().enumerate() {
        let def = def.get_ref();
        let field = format!("segments[{position}]");
        if def.name.get_ref().trim().is_empty() {
            checker.report(
                format!("{field}.name"),
                Some(&def.name.span()),
                "must not be empty",
            );
        }
        for action in &def.actions {
            if !action_index.contains_key(action.get_ref()) {
                checker.report(
                    format!("{field}.actions"),
                    Some(&action.span()),
                    format!("action '{}' is not in [[actions]]", action.get_ref()),
                );
            }
        }
        if let Some(rule) = checker.rule(env, &format!("{field}.rule"), &def.rule) {
            segments.push(Segment {
                name: def.name.get_ref().clone(),
                rule,
                actions: strings(&def.actions),
            });
        }
    }
    segments
}
