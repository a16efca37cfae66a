//! Validation: from the file's text to a [`Catalog`], or every problem found,
//! each naming its field path and line: the line of the offending value (or
//! list element) when the file has one, else the line of its table.

use super::file::{
    ActionDef, CapDef, CapScopeDef, CatalogFile, ConsentPolicyDef, ExplorationMethodDef,
    PlacementDef,
};
use super::rule::{Rule, RuleEnv};
use super::{
    Action, Blackout, CapRule, CapScope, Catalog, Channel, ConsentPolicy, Exploration, Placement,
    QuietHours, Segment,
};
use crate::time::{Span, Timestamp};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// Longest id accepted for actions, channels, placements and segments.
const MAX_ID_LEN: usize = 128;
/// Source of [`Catalog::instance`].
static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
/// Most slots a placement may have.
const MAX_SLOTS: u32 = 50;

/// One problem in a catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProblem {
    /// Field path, e.g. `actions[3].channel`.
    pub field: String,
    /// 1-based line of the offending value (or list element); of its table
    /// when the value is missing; `None` for a problem of the whole file.
    pub line: Option<u32>,
    /// What is wrong, with the offending value.
    pub message: String,
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "line {line}: {}: {}", self.field, self.message),
            None => write!(formatter, "{}: {}", self.field, self.message),
        }
    }
}

/// Every problem found in a catalog file (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProblems(pub Vec<CatalogProblem>);

impl fmt::Display for CatalogProblems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, problem) in self.0.iter().enumerate() {
            if position > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogProblems {}

/// Collects problems while walking the file.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<CatalogProblem>,
}

impl Checker<'_> {
    fn line_of(&self, span: &Range<usize>) -> u32 {
        let prefix = &self.text[..span.start.min(self.text.len())];
        u32::try_from(prefix.matches('\n').count() + 1).unwrap_or(u32::MAX)
    }

    fn report(
        &mut self,
        field: impl Into<String>,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|span| self.line_of(span));
        self.problems.push(CatalogProblem {
            field: field.into(),
            line,
            message: message.into(),
        });
    }

    fn check_id(&mut self, field: &str, span: &Range<usize>, id: &str) {
        let well_formed = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !well_formed {
            self.report(
                field,
                Some(span),
                format!(
                    "'{id}' is not a valid id (1..={MAX_ID_LEN} characters of letters, digits, '_', '-', '.', ':')"
                ),
            );
        }
    }

    fn span_field(&mut self, field: &str, text: Option<&Spanned<String>>) -> Option<Span> {
        let text = text?;
        match Span::parse(text.get_ref()) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.report(field, Some(&text.span()), message);
                None
            }
        }
    }

    fn instant(&mut self, field: &str, text: Option<&Spanned<String>>) -> Option<Timestamp> {
        let text = text?;
        let parsed = Timestamp::parse_rfc3339(text.get_ref());
        if parsed.is_none() {
            self.report(
                field,
                Some(&text.span()),
                format!(
                    "'{}' is not an RFC 3339 date-time like 2026-12-01T00:00:00Z",
                    text.get_ref()
                ),
            );
        }
        parsed
    }

    fn rule(&mut self, env: &cel::Env, field: &str, source: &Spanned<String>) -> Option<Rule> {
        match Rule::compile(env, source.get_ref()) {
            Ok(rule) => Some(rule),
            Err(message) => {
                self.report(
                    field,
                    Some(&source.span()),
                    format!("invalid CEL rule: {message}"),
                );
                None
            }
        }
    }
}

/// An optional key's value and where to report a problem with it: the value's
/// own span, or its table's when the key is absent and `default` applies.
fn value_or<T: Copy>(
    value: Option<&Spanned<T>>,
    default: T,
    table: &Range<usize>,
) -> (T, Range<usize>) {
    value.map_or_else(
        || (default, table.clone()),
        |value| (*value.get_ref(), value.span()),
    )
}

/// The values of a list of spanned strings.
fn strings(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|item| item.get_ref().clone()).collect()
}

/// Parses `HH:MM` into a minute of the day.
fn minute_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60 && text.len() == 5).then_some(hours * 60 + minutes)
}

/// 64-bit FNV-1a of the text, as the version of an unversioned catalog.
fn content_hash(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("sha-{hash:016x}")
}

pub(super) fn compile(text: &str) -> Result<Catalog, CatalogProblems> {
    let mut checker = Checker {
        text,
        problems: Vec::new(),
    };
    let file: CatalogFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(error) => {
            let line = error.span().map(|span| checker.line_of(&span));
            let message = error.message().to_owned();
            return Err(CatalogProblems(vec![CatalogProblem {
                field: "(file)".to_owned(),
                line,
                message,
            }]));
        }
    };
    let rule_env = RuleEnv::standard();
    let env = rule_env.0.clone();

    let default_timezone = match &file.catalog.timezone {
        None => chrono_tz::UTC,
        Some(timezone) => timezone.get_ref().parse().unwrap_or_else(|_| {
            checker.report(
                "catalog.timezone",
                Some(&timezone.span()),
                format!(
                    "'{}' is not an IANA timezone like Europe/Paris",
                    timezone.get_ref()
                ),
            );
            chrono_tz::UTC
        }),
    };
    if file.catalog.name.get_ref().trim().is_empty() {
        checker.report(
            "catalog.name",
            Some(&file.catalog.name.span()),
            "must not be empty",
        );
    }

    let channels = compile_channels(&mut checker, &file);
    let mut actions = compile_actions(&mut checker, &env, &file, &channels);
    let action_index: HashMap<String, usize> = actions
        .iter()
        .enumerate()
        .map(|(position, action)| (action.id.clone(), position))
        .collect();
    let categories: BTreeSet<&str> = actions
        .iter()
        .map(|action| action.category.as_str())
        .collect();

    let mut placements = BTreeMap::new();
    for (id, def) in &file.placements {
        let span = def.span();
        if let Some(placement) = compile_placement(
            &mut checker,
            id,
            &span,
            def.get_ref(),
            &channels,
            &action_index,
            &actions,
        ) {
            placements.insert(id.clone(), placement);
        }
    }

    let mut caps = Vec::new();
    for (position, def) in file.caps.iter().enumerate() {
        if let Some(cap) = compile_cap(
            &mut checker,
            position,
            &def.span(),
            def.get_ref(),
            &channels,
            &action_index,
            &categories,
        ) {
            caps.push(cap);
        }
    }

    for action in &mut actions {
        action.caps = caps
            .iter()
            .enumerate()
            .filter(|(_, cap)| cap.applies_to(&action.id, &action.channel, &action.category))
            .map(|(position, _)| position)
            .collect();
    }

    for placement in placements.values_mut() {
        placement.candidates = actions
            .iter()
            .filter(|action| action.active && placement.allows(action))
            .map(|action| action.index)
            .collect();
    }

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
        if let Some(rule) = checker.rule(&env, &format!("{field}.rule"), &def.rule) {
            segments.push(Segment {
                name: def.name.get_ref().clone(),
                rule,
                actions: strings(&def.actions),
            });
        }
    }

    if actions.is_empty() && checker.problems.is_empty() {
        checker.report("actions", None, "the catalog has no [[actions]]");
    }
    if file.placements.is_empty() {
        checker.report("placements", None, "the catalog has no [placements.<id>]");
    }
    if !checker.problems.is_empty() {
        return Err(CatalogProblems(checker.problems));
    }
    let mut known_events = file.catalog.events.clone();
    known_events.sort();
    known_events.dedup();
    Ok(Catalog {
        name: file.catalog.name.get_ref().clone(),
        version: file
            .catalog
            .version
            .clone()
            .unwrap_or_else(|| content_hash(text)),
        default_timezone,
        known_events,
        channels,
        actions,
        action_index,
        placements,
        caps,
        blackouts,
        category_levers,
        segments,
        cel_env: rule_env,
        instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

fn compile_channels(checker: &mut Checker<'_>, file: &CatalogFile) -> BTreeMap<String, Channel> {
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

fn compile_actions(
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
            id: id.clone(),
            name: if def.name.is_empty() {
                id.clone()
            } else {
                def.name.clone()
            },
            channel: channel.clone(),
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

fn compile_placement(
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
    })
}

/// Builds a [`CapScope`] around a scoped cap's target.
type ScopeOf = fn(String) -> CapScope;

fn compile_cap(
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
