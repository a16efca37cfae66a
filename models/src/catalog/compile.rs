//! Validation: from the file's text to a [`Catalog`], or every problem found,
//! each naming its field path and line.

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
    /// 1-based line, when known.
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

    fn span_field(&mut self, field: &str, span: &Range<usize>, text: Option<&str>) -> Option<Span> {
        let text = text?;
        match Span::parse(text) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.report(field, Some(span), message);
                None
            }
        }
    }

    fn instant(
        &mut self,
        field: &str,
        span: &Range<usize>,
        text: Option<&str>,
    ) -> Option<Timestamp> {
        let text = text?;
        let parsed = Timestamp::parse_rfc3339(text);
        if parsed.is_none() {
            self.report(
                field,
                Some(span),
                format!("'{text}' is not an RFC 3339 date-time like 2026-12-01T00:00:00Z"),
            );
        }
        parsed
    }

    fn rule(
        &mut self,
        env: &cel::Env,
        field: &str,
        span: &Range<usize>,
        source: &str,
    ) -> Option<Rule> {
        match Rule::compile(env, source) {
            Ok(rule) => Some(rule),
            Err(message) => {
                self.report(field, Some(span), format!("invalid CEL rule: {message}"));
                None
            }
        }
    }
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

    let default_timezone = file.catalog.timezone.parse().unwrap_or_else(|_| {
        checker.report(
            "catalog.timezone",
            None,
            format!(
                "'{}' is not an IANA timezone like Europe/Paris",
                file.catalog.timezone
            ),
        );
        chrono_tz::UTC
    });
    if file.catalog.name.trim().is_empty() {
        checker.report("catalog.name", None, "must not be empty");
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

    let mut blackouts = Vec::new();
    for (position, def) in file.blackouts.iter().enumerate() {
        let span = def.span();
        let def = def.get_ref();
        let mut dates = Vec::new();
        for date in &def.dates {
            match NaiveDate::parse_from_str(date, "%Y-%m-%d") {
                Ok(parsed) => dates.push(parsed),
                Err(_) => checker.report(
                    format!("blackouts[{position}].dates"),
                    Some(&span),
                    format!("'{date}' is not a date like 2026-12-25"),
                ),
            }
        }
        for channel in &def.channels {
            if !channels.contains_key(channel) {
                checker.report(
                    format!("blackouts[{position}].channels"),
                    Some(&span),
                    format!("channel '{channel}' is not declared in [channels]"),
                );
            }
        }
        blackouts.push(Blackout {
            name: def.name.clone(),
            dates,
            channels: def.channels.clone(),
        });
    }

    for (category, lever) in &file.levers.categories {
        if !(lever.is_finite() && *lever > 0.0) {
            checker.report(
                format!("levers.categories.{category}"),
                None,
                format!("{lever} must be a positive number"),
            );
        }
    }

    let mut segments = Vec::new();
    for (position, def) in file.segments.iter().enumerate() {
        let span = def.span();
        let def = def.get_ref();
        let field = format!("segments[{position}]");
        if def.name.trim().is_empty() {
            checker.report(format!("{field}.name"), Some(&span), "must not be empty");
        }
        for action in &def.actions {
            if !action_index.contains_key(action) {
                checker.report(
                    format!("{field}.actions"),
                    Some(&span),
                    format!("action '{action}' is not in [[actions]]"),
                );
            }
        }
        if let Some(rule) = checker.rule(&env, &format!("{field}.rule"), &span, &def.rule) {
            segments.push(Segment {
                name: def.name.clone(),
                rule,
                actions: def.actions.clone(),
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
        name: file.catalog.name.clone(),
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
        category_levers: file.levers.categories.clone(),
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
            let start = minute_of_day(&quiet.start);
            let end = minute_of_day(&quiet.end);
            for (name, text, parsed) in [("start", &quiet.start, start), ("end", &quiet.end, end)] {
                if parsed.is_none() {
                    checker.report(
                        format!("channels.{id}.quiet_hours.{name}"),
                        Some(&span),
                        format!("'{text}' is not a time like 21:00"),
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
        checker.check_id(&format!("{field}.id"), &span, &def.id);
        let line = checker.line_of(&span);
        // Keep the first definition's line: a third copy still points at the first.
        let (first_position, first) = *seen.entry(def.id.clone()).or_insert((position, line));
        if first_position != position {
            checker.report(
                format!("{field}.id"),
                Some(&span),
                format!(
                    "duplicate action id '{}' (first defined on line {first})",
                    def.id
                ),
            );
        }
        if !channels.contains_key(&def.channel) {
            checker.report(
                format!("{field}.channel"),
                Some(&span),
                format!("channel '{}' is not declared in [channels]", def.channel),
            );
        }
        if def.category.trim().is_empty() {
            checker.report(
                format!("{field}.category"),
                Some(&span),
                "must not be empty",
            );
        }
        if !(def.value.is_finite() && def.value >= 0.0) {
            checker.report(
                format!("{field}.value"),
                Some(&span),
                format!("{} must be a finite number ≥ 0", def.value),
            );
        }
        if !(def.lever.is_finite() && def.lever > 0.0) {
            checker.report(
                format!("{field}.lever"),
                Some(&span),
                format!("{} must be a positive number", def.lever),
            );
        }
        let valid_from = checker.instant(
            &format!("{field}.valid_from"),
            &span,
            def.valid_from.as_deref(),
        );
        let valid_until = checker.instant(
            &format!("{field}.valid_until"),
            &span,
            def.valid_until.as_deref(),
        );
        if let (Some(from), Some(until)) = (valid_from, valid_until)
            && from >= until
        {
            checker.report(
                format!("{field}.valid_until"),
                Some(&span),
                format!("{until} is not after valid_from {from}"),
            );
        }
        let cooldown =
            checker.span_field(&format!("{field}.cooldown"), &span, def.cooldown.as_deref());
        let dismiss_cooldown = checker.span_field(
            &format!("{field}.dismiss_cooldown"),
            &span,
            def.dismiss_cooldown.as_deref(),
        );
        if def.budget == Some(0) {
            checker.report(
                format!("{field}.budget"),
                Some(&span),
                "must be at least 1 (set active = false to stop an action)",
            );
        }
        let rule = def
            .rule
            .as_deref()
            .and_then(|source| checker.rule(env, &format!("{field}.rule"), &span, source));
        let cel_value = action_cel_value(def);
        actions.push(Action {
            index: actions.len(),
            id: def.id.clone(),
            name: if def.name.is_empty() {
                def.id.clone()
            } else {
                def.name.clone()
            },
            channel: def.channel.clone(),
            category: def.category.clone(),
            value: def.value,
            lever: def.lever,
            active: def.active,
            valid_from,
            valid_until,
            rule,
            cooldown,
            dismiss_cooldown,
            budget: def.budget,
            caps: Vec::new(),
            payload: def.payload.clone(),
            cel_value,
        });
    }
    actions
}

/// The `action` variable of rules: id, channel, category, value, payload.
fn action_cel_value(def: &ActionDef) -> Box<dyn cel::common::value::Val> {
    let payload: HashMap<String, cel::Value> = def
        .payload
        .iter()
        .map(|(key, value)| (key.clone(), cel::Value::from(value.as_str())))
        .collect();
    let value: cel::Value = HashMap::from([
        ("id".to_owned(), cel::Value::from(def.id.as_str())),
        ("channel".to_owned(), cel::Value::from(def.channel.as_str())),
        (
            "category".to_owned(),
            cel::Value::from(def.category.as_str()),
        ),
        ("value".to_owned(), cel::Value::Float(def.value)),
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
    if def.channels.is_empty() {
        checker.report(
            format!("{field}.channels"),
            Some(span),
            "must list at least one channel",
        );
    }
    for channel in &def.channels {
        if !channels.contains_key(channel) {
            checker.report(
                format!("{field}.channels"),
                Some(span),
                format!("channel '{channel}' is not declared in [channels]"),
            );
        }
    }
    if def.slots == 0 || def.slots > MAX_SLOTS {
        checker.report(
            format!("{field}.slots"),
            Some(span),
            format!("{} must be between 1 and {MAX_SLOTS}", def.slots),
        );
    }
    for action_id in &def.fallback {
        match action_index.get(action_id) {
            None => checker.report(format!("{field}.fallback"), Some(span), format!("action '{action_id}' is not in [[actions]]")),
            Some(&position) if !def.channels.contains(&actions[position].channel) => checker.report(
                format!("{field}.fallback"),
                Some(span),
                format!("action '{action_id}' is on channel '{}', which this placement does not allow", actions[position].channel),
            ),
            Some(_) => {}
        }
    }
    for (category, weight) in &def.context_weights {
        if !(weight.is_finite() && *weight > 0.0) {
            checker.report(
                format!("{field}.context_weights.{category}"),
                Some(span),
                format!("{weight} must be a positive number"),
            );
        }
    }
    let exploration = match def.exploration.method {
        ExplorationMethodDef::None => Exploration::None,
        ExplorationMethodDef::Epsilon => {
            let epsilon = def.exploration.epsilon.unwrap_or(0.05);
            if !(0.0..=1.0).contains(&epsilon) {
                checker.report(
                    format!("{field}.exploration.epsilon"),
                    Some(span),
                    format!("{epsilon} must be between 0 and 1"),
                );
            }
            Exploration::Epsilon(epsilon)
        }
        ExplorationMethodDef::Softmax => {
            let temperature = def.exploration.temperature.unwrap_or(0.1);
            if !(temperature.is_finite() && temperature > 0.0) {
                checker.report(
                    format!("{field}.exploration.temperature"),
                    Some(span),
                    format!("{temperature} must be a positive number"),
                );
            }
            Exploration::Softmax(temperature)
        }
    };
    (checker.problems.len() == before).then(|| Placement {
        id: id.to_owned(),
        channels: def.channels.clone(),
        categories: def.categories.clone(),
        slots: def.slots,
        one_per_category: def.one_per_category,
        fallback: def.fallback.clone(),
        context_weights: def.context_weights.clone(),
        exploration,
    })
}

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
    let window = checker.span_field(&format!("{field}.window"), span, Some(&def.window));
    if def.limit == 0 {
        checker.report(
            format!("{field}.limit"),
            Some(span),
            "must be at least 1 (remove the channel from placements to stop it)",
        );
    }
    let mut target = |name: &str, value: &Option<String>| -> Option<String> {
        let found = value.clone();
        if found.is_none() {
            checker.report(
                format!("{field}.{name}"),
                Some(span),
                format!("scope '{name}' needs `{name} = \"...\"`"),
            );
        }
        found
    };
    let scope = match def.scope {
        CapScopeDef::Total => Some(CapScope::Total),
        CapScopeDef::Channel => target("channel", &def.channel).map(CapScope::Channel),
        CapScopeDef::Action => target("action", &def.action).map(CapScope::Action),
        CapScopeDef::Category => target("category", &def.category).map(CapScope::Category),
    };
    match &scope {
        Some(CapScope::Channel(id)) if !channels.contains_key(id) => {
            checker.report(
                format!("{field}.channel"),
                Some(span),
                format!("channel '{id}' is not declared in [channels]"),
            );
        }
        Some(CapScope::Action(id)) if !action_index.contains_key(id) => {
            checker.report(
                format!("{field}.action"),
                Some(span),
                format!("action '{id}' is not in [[actions]]"),
            );
        }
        Some(CapScope::Category(id)) if !categories.contains(id.as_str()) => {
            checker.report(
                format!("{field}.category"),
                Some(span),
                format!("no action has category '{id}'"),
            );
        }
        _ => {}
    }
    Some(CapRule {
        scope: scope?,
        limit: def.limit,
        window: window?,
    })
}
