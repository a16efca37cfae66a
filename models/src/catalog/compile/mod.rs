//! Validation: from the file's text to a [`Catalog`], or every problem found,
//! each naming its field path and line: the line of the offending value (or
//! list element) when the file has one, else the line of its table.
//!
//! This file holds the problems, the [`Checker`] that collects them, and
//! [`compile`], which walks the file in order: `actions` (channels and
//! actions), `placements`, `policy` (caps, blackouts, category levers,
//! segments), `scores` (scores, tiers, and the scores other rules name),
//! then `journeys`.

mod actions;
mod journeys;
mod placements;
mod policy;
mod scores;
mod send_time;

use super::Catalog;
use super::file::CatalogFile;
use super::journeys::{SendTarget, StepKind};
use super::rule::{Rule, RuleEnv, share_rules};
use crate::time::{Span, Timestamp};
use actions::{compile_actions, compile_channels};
use journeys::compile_journeys;
use placements::compile_placement;
use policy::{compile_blackouts, compile_cap, compile_levers, compile_segments};
use scores::{check_rule_names, compile_scores};
use send_time::compile_send_time;
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

/// 64-bit FNV-1a of the text, as the version of an unversioned catalog.
fn content_hash(text: &str) -> String {
    let hash = crate::hash::fnv1a(text.bytes());
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
        .map(|(position, action)| (action.id.to_string(), position))
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

    let blackouts = compile_blackouts(&mut checker, &file, &channels);
    let category_levers = compile_levers(&mut checker, &file);
    for placement in placements.values_mut() {
        placement.set_actions(&actions, &category_levers);
    }
    let mut segments = compile_segments(&mut checker, &env, &file, &action_index);
    let scores = compile_scores(&mut checker, &env, &file);
    check_rule_names(&mut checker, &env, &file, &scores);
    let send_time = compile_send_time(&mut checker, &file, &channels);
    let (journey_policy, journeys) = compile_journeys(
        &mut checker,
        &env,
        &file.journey_policy,
        &file.journeys,
        &actions,
        &action_index,
        &placements,
    );

    if send_time.is_none() {
        for (position, def) in file.journeys.iter().enumerate() {
            for (step, step_def) in def.get_ref().steps.iter().enumerate() {
                let best_time = step_def.get_ref().send.as_ref().and_then(|send| {
                    send.get_ref()
                        .at
                        .as_ref()
                        .filter(|at| at.get_ref() == "best_time")
                });
                if let Some(at) = best_time {
                    checker.report(
                        format!("journeys[{position}].steps[{step}].send.at"),
                        Some(&at.span()),
                        "\"best_time\" needs a [send_time] table (which channels, which engagement events)",
                    );
                }
            }
        }
    }
    for journey in &journeys {
        let sent: Vec<String> = journey
            .steps
            .iter()
            .flat_map(|step| match &step.kind {
                StepKind::Send {
                    target: SendTarget::Action(action),
                    failover,
                    ..
                } => std::iter::once(action)
                    .chain(failover)
                    .map(ToString::to_string)
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        if !sent.is_empty() {
            let mut placement = placements::journey_placement(&journey.id, &channels, sent);
            placement.set_actions(&actions, &category_levers);
            placements.insert(placement.id.clone(), placement);
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
    let action_rules = actions.iter_mut().filter_map(|action| action.rule.as_mut());
    let segment_rules = segments.iter_mut().map(|segment| &mut segment.rule);
    let shared_rules = share_rules(action_rules.chain(segment_rules));
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
        journey_policy,
        journeys,
        scores,
        send_time,
        cel_env: rule_env,
        shared_rules,
        instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}
