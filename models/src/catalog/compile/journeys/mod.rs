//! `[[journeys]]` and `[journey_policy]`: each journey's trigger, entry
//! rules, goals, exits and steps, checked against the catalog's actions,
//! placements and channels. Step references (`next`, `else`, `goto`,
//! `on_timeout`, `on_blocked`) must name a step of the same journey (or
//! `end`), and every cycle of steps must pass a `wait` or a `wait_for`, so a
//! run can never loop without waiting.

mod steps;

use super::Checker;
use crate::catalog::file::{EventMatchDef, JourneyDef, JourneyPolicyDef, JourneyStatusDef};
use crate::catalog::journeys::{EventMatch, Journey, JourneyPolicy, JourneyStatus, Next};
use crate::catalog::{Action, Placement, Rule};
use crate::time::Span;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;

/// The step reference that ends a run; no step may be called so.
const END: &str = "end";
/// Most steps in one journey.
const MAX_STEPS: usize = 100;
/// Most journeys in one catalog.
const MAX_JOURNEYS: usize = 200;
/// How long a send may wait for caps or quiet hours by default.
const DEFAULT_MAX_DEFER: Span = Span::days(1);
/// The variables of rules about an event (triggers, entry, goals, exits,
/// `wait_for`).
const EVENT_RULE_VARIABLES: [&str; 2] = ["profile", "event"];
/// The variables of branch rules.
const BRANCH_RULE_VARIABLES: [&str; 1] = ["profile"];

/// The catalog's journeys and the policy over them; `None` where a journey
/// has a problem (reported).
pub(super) fn compile_journeys(
    checker: &mut Checker<'_>,
    env: &cel::Env,
    policy: &JourneyPolicyDef,
    defs: &[Spanned<JourneyDef>],
    actions: &[Action],
    action_index: &HashMap<String, usize>,
    placements: &BTreeMap<String, Placement>,
) -> (JourneyPolicy, Vec<Arc<Journey>>) {
    let mut journey_policy = JourneyPolicy::default();
    if let Some(max) = &policy.max_concurrent {
        match usize::try_from(*max.get_ref()) {
            Ok(max_concurrent @ 1..=100) => journey_policy.max_concurrent = max_concurrent,
            _ => checker.report(
                "journey_policy.max_concurrent",
                Some(&max.span()),
                format!("{} must be 1..=100", max.get_ref()),
            ),
        }
    }
    if defs.len() > MAX_JOURNEYS {
        checker.report(
            "journeys",
            None,
            format!("{} journeys: at most {MAX_JOURNEYS}", defs.len()),
        );
    }
    let targets = Targets {
        actions,
        action_index,
        placements,
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut journeys = Vec::new();
    for (position, def) in defs.iter().enumerate() {
        let field = format!("journeys[{position}]");
        let id = def.get_ref().id.get_ref();
        if let Some(first) = seen.insert(id, position) {
            checker.report(
                format!("{field}.id"),
                Some(&def.get_ref().id.span()),
                format!("'{id}' is also the id of journeys[{first}]"),
            );
        }
        let mut compiler = JourneyCompiler {
            checker: &mut *checker,
            env,
            field,
            targets: &targets,
        };
        if let Some(journey) = compiler.journey(&def.span(), def.get_ref()) {
            journeys.push(Arc::new(journey));
        }
    }
    (journey_policy, journeys)
}

/// What send steps may name.
struct Targets<'a> {
    actions: &'a [Action],
    action_index: &'a HashMap<String, usize>,
    placements: &'a BTreeMap<String, Placement>,
}

struct JourneyCompiler<'c, 'a, 't> {
    checker: &'c mut Checker<'a>,
    env: &'c cel::Env,
    /// `journeys[i]`.
    field: String,
    targets: &'t Targets<'t>,
}

impl JourneyCompiler<'_, '_, '_> {
    fn journey(&mut self, span: &Range<usize>, def: &JourneyDef) -> Option<Journey> {
        let problems_before = self.checker.problems.len();
        let field = self.field.clone();
        self.checker
            .check_id(&format!("{field}.id"), &def.id.span(), def.id.get_ref());
        let version = def.version.as_ref().map_or(1, |version| *version.get_ref());
        if version == 0 {
            let version_span = def.version.as_ref().map(Spanned::span);
            self.checker.report(
                format!("{field}.version"),
                version_span.as_ref(),
                "must be at least 1",
            );
        }
        let trigger = self.event_match(&format!("{field}.trigger"), def.trigger.get_ref());
        let entry = def
            .entry
            .as_ref()
            .and_then(|rule| self.rule(&format!("{field}.entry"), rule, &EVENT_RULE_VARIABLES));
        let goals = self.event_matches(&format!("{field}.goals"), &def.goals);
        let exits = self.event_matches(&format!("{field}.exits"), &def.exits);
        let reentry_after = self.checker.span_field(
            &format!("{field}.reentry_after"),
            def.reentry_after.as_ref(),
        );
        let max_defer = self
            .checker
            .span_field(&format!("{field}.max_defer"), def.max_defer.as_ref())
            .unwrap_or(DEFAULT_MAX_DEFER);
        let priority = def
            .priority
            .as_ref()
            .map_or(0, |priority| *priority.get_ref());

        if def.steps.is_empty() {
            self.checker.report(
                format!("{field}.steps"),
                Some(span),
                "a journey needs at least one step",
            );
        } else if def.steps.len() > MAX_STEPS {
            self.checker.report(
                format!("{field}.steps"),
                Some(span),
                format!("{} steps: at most {MAX_STEPS}", def.steps.len()),
            );
        }
        let mut step_ids: HashMap<&str, usize> = HashMap::new();
        for (position, step) in def.steps.iter().enumerate() {
            let step_field = format!("{field}.steps[{position}].id");
            let id = step.get_ref().id.get_ref();
            self.checker
                .check_id(&step_field, &step.get_ref().id.span(), id);
            if id == END {
                self.checker.report(
                    &step_field,
                    Some(&step.get_ref().id.span()),
                    format!("'{END}' is reserved: it is where `next` ends a run"),
                );
            }
            if let Some(first) = step_ids.insert(id, position) {
                self.checker.report(
                    &step_field,
                    Some(&step.get_ref().id.span()),
                    format!("'{id}' is also the id of {field}.steps[{first}]"),
                );
            }
        }
        let mut channels = BTreeSet::new();
        let mut steps = Vec::with_capacity(def.steps.len());
        for (position, step) in def.steps.iter().enumerate() {
            let follows = if position + 1 < def.steps.len() {
                Next::Step(position + 1)
            } else {
                Next::End
            };
            if let Some(step) = self.step(
                &format!("{field}.steps[{position}]"),
                &step.span(),
                step.get_ref(),
                follows,
                &step_ids,
                &mut channels,
            ) {
                steps.push(step);
            }
        }
        if self.checker.problems.len() > problems_before {
            return None;
        }
        if let Some(cycle) = steps::cycle_without_wait(&steps) {
            self.checker.report(
                format!("{field}.steps"),
                Some(span),
                format!(
                    "the steps {} form a cycle without a `wait` or `wait_for`: a run would loop without waiting",
                    cycle.join(" → ")
                ),
            );
            return None;
        }
        Some(Journey {
            id: Arc::from(def.id.get_ref().as_str()),
            name: def.name.clone(),
            version,
            status: match def.status {
                JourneyStatusDef::Active => JourneyStatus::Active,
                JourneyStatusDef::Paused => JourneyStatus::Paused,
            },
            priority,
            trigger: trigger?,
            entry,
            goals,
            exits,
            reentry_after,
            max_defer,
            skip_if_goal_reached: def.skip_if_goal_reached.unwrap_or(true),
            steps,
            channels,
        })
    }

    fn event_matches(&mut self, field: &str, defs: &[Spanned<EventMatchDef>]) -> Vec<EventMatch> {
        defs.iter()
            .enumerate()
            .filter_map(|(position, def)| {
                self.event_match(&format!("{field}[{position}]"), def.get_ref())
            })
            .collect()
    }

    fn event_match(&mut self, field: &str, def: &EventMatchDef) -> Option<EventMatch> {
        let event = def.event.get_ref();
        let well_formed = !event.is_empty()
            && event.len() <= 128
            && event
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !well_formed {
            self.checker.report(
                format!("{field}.event"),
                Some(&def.event.span()),
                format!(
                    "'{event}' is not an event name (1..=128 letters, digits, '_', '-', '.', ':')"
                ),
            );
        }
        let when = match &def.when {
            Some(rule) => Some(self.rule(&format!("{field}.when"), rule, &EVENT_RULE_VARIABLES)?),
            None => None,
        };
        well_formed.then(|| EventMatch {
            event: event.clone(),
            when,
        })
    }

    /// A CEL rule that may read only `variables`.
    fn rule(&mut self, field: &str, source: &Spanned<String>, variables: &[&str]) -> Option<Rule> {
        let rule = self.checker.rule(self.env, field, source)?;
        let unknown: Vec<String> = rule
            .variables()
            .into_iter()
            .filter(|variable| !variables.contains(&variable.as_str()))
            .collect();
        if !unknown.is_empty() {
            self.checker.report(
                field,
                Some(&source.span()),
                format!(
                    "reads {}, which this rule does not have (it has {})",
                    unknown.join(", "),
                    variables.join(" and ")
                ),
            );
            return None;
        }
        Some(rule)
    }
}
