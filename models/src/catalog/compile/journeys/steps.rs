//! One journey's steps: exactly one kind each, references to other steps
//! resolved, send targets checked against the catalog, and the check that
//! no cycle of steps can run without waiting.

use super::{BRANCH_RULE_VARIABLES, END, JourneyCompiler};
use crate::catalog::compile::actions::minute_of_day;
use crate::catalog::file::{EventMatchDef, SendDef, StepDef};
use crate::catalog::journeys::{BranchCase, Next, SendAt, SendTarget, SplitArm, Step, StepKind};
use crate::send_time::best::MAX_SEARCH;
use crate::value::AttrValue;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;

impl JourneyCompiler<'_, '_, '_> {
    pub(super) fn step(
        &mut self,
        field: &str,
        span: &Range<usize>,
        def: &StepDef,
        follows: Next,
        step_ids: &HashMap<&str, usize>,
        channels: &mut BTreeSet<String>,
    ) -> Option<Step> {
        let kinds: Vec<&str> = [
            ("send", def.send.is_some()),
            ("wait", def.wait.is_some()),
            ("wait_until", def.wait_until.is_some()),
            ("wait_for", def.wait_for.is_some()),
            ("branch", def.branch.is_some()),
            ("split", def.split.is_some()),
            ("update", def.update.is_some()),
            ("exit", def.exit.is_some()),
        ]
        .into_iter()
        .filter_map(|(kind, given)| given.then_some(kind))
        .collect();
        if kinds.len() != 1 {
            let message = if kinds.is_empty() {
                "a step needs one of send, wait, wait_until, wait_for, branch, split, update, exit"
                    .to_owned()
            } else {
                format!(
                    "a step does one thing, this one has {}",
                    kinds.join(" and ")
                )
            };
            self.checker.report(field, Some(span), message);
            return None;
        }
        let next = match &def.next {
            Some(next) => self.reference(&format!("{field}.next"), next, step_ids)?,
            None => follows,
        };
        let only_for = |key: &str, given: bool, kind: &str| {
            (given && kinds[0] != kind).then(|| (key.to_owned(), kind.to_owned()))
        };
        for (key, kind) in [
            only_for("else", def.otherwise.is_some(), "branch"),
            only_for("on_blocked", def.on_blocked.is_some(), "send"),
        ]
        .into_iter()
        .flatten()
        {
            self.checker.report(
                format!("{field}.{key}"),
                Some(span),
                format!("only a {kind} step has `{key}`"),
            );
        }
        let kind = if let Some(send) = &def.send {
            let target = self.send_target(&format!("{field}.send"), send, channels)?;
            let failover = self.failover(&format!("{field}.send"), send, &target)?;
            let on_blocked = match &def.on_blocked {
                Some(reference) => {
                    self.reference(&format!("{field}.on_blocked"), reference, step_ids)?
                }
                None => next,
            };
            let at = self.send_at(&format!("{field}.send"), send.get_ref())?;
            StepKind::Send {
                target,
                on_blocked,
                failover,
                at,
            }
        } else if let Some(wait) = &def.wait {
            StepKind::Wait(
                self.checker
                    .span_field(&format!("{field}.wait"), Some(wait))?,
            )
        } else if let Some(at) = &def.wait_until {
            let Some(minute_of_day) = minute_of_day(at.get_ref()) else {
                self.checker.report(
                    format!("{field}.wait_until"),
                    Some(&at.span()),
                    format!("'{}' is not a local time like 09:00", at.get_ref()),
                );
                return None;
            };
            StepKind::WaitUntil { minute_of_day }
        } else if let Some(wait_for) = &def.wait_for {
            let wait_for_field = format!("{field}.wait_for");
            let def = wait_for.get_ref();
            let event = self.event_match(
                &wait_for_field,
                &EventMatchDef {
                    event: def.event.clone(),
                    when: def.when.clone(),
                },
            );
            let timeout = self
                .checker
                .span_field(&format!("{wait_for_field}.timeout"), Some(&def.timeout));
            let on_timeout = match &def.on_timeout {
                Some(reference) => {
                    self.reference(&format!("{wait_for_field}.on_timeout"), reference, step_ids)?
                }
                None => next,
            };
            StepKind::WaitFor {
                event: Box::new(event?),
                timeout: timeout?,
                on_timeout,
            }
        } else if let Some(branch) = &def.branch {
            if branch.get_ref().is_empty() {
                self.checker.report(
                    format!("{field}.branch"),
                    Some(&branch.span()),
                    "a branch needs at least one case",
                );
                return None;
            }
            let mut cases = Vec::new();
            for (position, case) in branch.get_ref().iter().enumerate() {
                let case_field = format!("{field}.branch[{position}]");
                let when = self.rule(
                    &format!("{case_field}.when"),
                    &case.get_ref().when,
                    &BRANCH_RULE_VARIABLES,
                );
                let goto = self.reference(
                    &format!("{case_field}.goto"),
                    &case.get_ref().goto,
                    step_ids,
                );
                if let (Some(when), Some(goto)) = (when, goto) {
                    cases.push(BranchCase { when, goto });
                }
            }
            let otherwise = match &def.otherwise {
                Some(reference) => self.reference(&format!("{field}.else"), reference, step_ids)?,
                None => next,
            };
            if cases.len() != branch.get_ref().len() {
                return None;
            }
            StepKind::Branch { cases, otherwise }
        } else if let Some(split) = &def.split {
            if split.get_ref().len() < 2 {
                self.checker.report(
                    format!("{field}.split"),
                    Some(&split.span()),
                    "a split needs at least two arms",
                );
                return None;
            }
            let mut arms = Vec::new();
            for (position, arm) in split.get_ref().iter().enumerate() {
                let arm_field = format!("{field}.split[{position}]");
                let weight = *arm.get_ref().weight.get_ref();
                if weight == 0 || weight > 1_000_000 {
                    self.checker.report(
                        format!("{arm_field}.weight"),
                        Some(&arm.get_ref().weight.span()),
                        format!("{weight} must be 1..=1000000"),
                    );
                }
                let goto =
                    self.reference(&format!("{arm_field}.goto"), &arm.get_ref().goto, step_ids);
                if let Some(goto) = goto {
                    arms.push(SplitArm { weight, goto });
                }
            }
            if arms.len() != split.get_ref().len() {
                return None;
            }
            StepKind::Split { arms }
        } else if let Some(update) = &def.update {
            if update.get_ref().is_empty() {
                self.checker.report(
                    format!("{field}.update"),
                    Some(&update.span()),
                    "an update sets at least one attribute",
                );
                return None;
            }
            let mut set = Vec::new();
            for (attribute, value) in update.get_ref() {
                let value_field = format!("{field}.update.{attribute}");
                let converted = match value.get_ref() {
                    toml::Value::String(text) => Some(AttrValue::Str(text.clone())),
                    toml::Value::Boolean(flag) => Some(AttrValue::Bool(*flag)),
                    #[allow(clippy::cast_precision_loss)]
                    toml::Value::Integer(number) => Some(AttrValue::Num(*number as f64)),
                    toml::Value::Float(number) if number.is_finite() => {
                        Some(AttrValue::Num(*number))
                    }
                    _ => None,
                };
                match converted {
                    Some(converted) => set.push((attribute.clone(), converted)),
                    None => self.checker.report(
                        value_field,
                        Some(&value.span()),
                        "an attribute is a string, a finite number or a bool",
                    ),
                }
            }
            if set.len() != update.get_ref().len() {
                return None;
            }
            StepKind::Update { set }
        } else {
            let exit = def.exit.as_ref()?;
            if !*exit.get_ref() {
                self.checker.report(
                    format!("{field}.exit"),
                    Some(&exit.span()),
                    "`exit = false` does nothing: remove the step",
                );
                return None;
            }
            StepKind::Exit
        };
        Some(Step {
            id: def.id.get_ref().clone(),
            kind,
            next,
        })
    }

    /// A step reference: a step of this journey, or `end`.
    fn reference(
        &mut self,
        field: &str,
        reference: &Spanned<String>,
        step_ids: &HashMap<&str, usize>,
    ) -> Option<Next> {
        let name = reference.get_ref().as_str();
        if name == END {
            return Some(Next::End);
        }
        match step_ids.get(name) {
            Some(index) => Some(Next::Step(*index)),
            None => {
                let mut known: Vec<&str> = step_ids.keys().copied().collect();
                known.sort_unstable();
                self.checker.report(
                    field,
                    Some(&reference.span()),
                    format!(
                        "'{name}' is not a step of this journey (steps: {}; or '{END}')",
                        known.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// When a send goes: `at = "now"` (the default) or `"best_time"`, with
    /// `within` only for the latter.
    fn send_at(&mut self, field: &str, def: &SendDef) -> Option<SendAt> {
        let within = match &def.within {
            Some(within) => {
                let span = self
                    .checker
                    .span_field(&format!("{field}.within"), Some(within))?;
                if span.millis() <= 0 || span > MAX_SEARCH {
                    self.checker.report(
                        format!("{field}.within"),
                        Some(&within.span()),
                        format!("must be more than 0 and at most {MAX_SEARCH}"),
                    );
                    return None;
                }
                Some(span)
            }
            None => None,
        };
        match def.at.as_ref().map(|at| (at.get_ref().as_str(), at.span())) {
            None | Some(("now", _)) => {
                if let Some(within) = &def.within {
                    self.checker.report(
                        format!("{field}.within"),
                        Some(&within.span()),
                        "`within` goes with `at = \"best_time\"`",
                    );
                    return None;
                }
                Some(SendAt::Now)
            }
            Some(("best_time", _)) => Some(SendAt::BestTime { within }),
            Some((other, span)) => {
                self.checker.report(
                    format!("{field}.at"),
                    Some(&span),
                    format!("'{other}' is not \"now\" or \"best_time\""),
                );
                None
            }
        }
    }

    /// The failover actions of a send: each an action of the catalog, on a
    /// channel no action before it in the list (the primary included) uses;
    /// only a send of one action has them.
    fn failover(
        &mut self,
        field: &str,
        send: &Spanned<SendDef>,
        target: &SendTarget,
    ) -> Option<Vec<Arc<str>>> {
        let def = send.get_ref();
        let primary = match target {
            SendTarget::Action(action) => action.clone(),
            SendTarget::Placement(_) => {
                if let Some(first) = def.failover.first() {
                    self.checker.report(
                        format!("{field}.failover"),
                        Some(&first.span()),
                        "a placement send fails over to the placement's actions on other channels: `failover` goes with `action`",
                    );
                    return None;
                }
                return Some(Vec::new());
            }
        };
        let channel_of = |id: &str| {
            self.targets
                .action_index
                .get(id)
                .map(|index| self.targets.actions[*index].channel.clone())
        };
        let mut used = vec![channel_of(&primary).unwrap_or_default()];
        let mut failover = Vec::new();
        let mut problems = Vec::new();
        for (position, action) in def.failover.iter().enumerate() {
            let at = format!("{field}.failover[{position}]");
            match channel_of(action.get_ref()) {
                None => problems.push((
                    at,
                    action.span(),
                    format!("'{}' is not an action of the catalog", action.get_ref()),
                )),
                Some(channel) if used.contains(&channel) => problems.push((
                    at,
                    action.span(),
                    format!(
                        "'{}' is on {channel}, a channel an earlier action of this send uses: a failover goes to another channel",
                        action.get_ref()
                    ),
                )),
                Some(channel) => {
                    used.push(channel);
                    failover.push(Arc::from(action.get_ref().as_str()));
                }
            }
        }
        let valid = problems.is_empty();
        for (at, span, message) in problems {
            self.checker.report(at, Some(&span), message);
        }
        valid.then_some(failover)
    }

    fn send_target(
        &mut self,
        field: &str,
        send: &Spanned<SendDef>,
        channels: &mut BTreeSet<String>,
    ) -> Option<SendTarget> {
        let def = send.get_ref();
        match (&def.action, &def.placement) {
            (Some(action), None) => {
                let Some(index) = self.targets.action_index.get(action.get_ref()) else {
                    self.checker.report(
                        format!("{field}.action"),
                        Some(&action.span()),
                        format!("'{}' is not an action of the catalog", action.get_ref()),
                    );
                    return None;
                };
                let action = &self.targets.actions[*index];
                channels.insert(action.channel.clone());
                Some(SendTarget::Action(action.id.clone()))
            }
            (None, Some(placement)) => {
                let Some(found) = self.targets.placements.get(placement.get_ref()) else {
                    self.checker.report(
                        format!("{field}.placement"),
                        Some(&placement.span()),
                        format!(
                            "'{}' is not a placement of the catalog",
                            placement.get_ref()
                        ),
                    );
                    return None;
                };
                channels.extend(found.channels.iter().cloned());
                Some(SendTarget::Placement(found.id.clone()))
            }
            _ => {
                self.checker.report(
                    field,
                    Some(&send.span()),
                    "a send names one `action` or one `placement`",
                );
                None
            }
        }
    }
}

/// A cycle of steps none of which waits (`wait`, `wait_for`), as step ids,
/// if there is one. `wait_until` does not count: at the minute it names it
/// goes on at once.
pub(super) fn cycle_without_wait(steps: &[Step]) -> Option<Vec<String>> {
    let successors = |step: &Step| -> Vec<usize> {
        let mut next: Vec<Next> = vec![step.next];
        match &step.kind {
            StepKind::Wait(_) | StepKind::WaitFor { .. } | StepKind::Exit => return Vec::new(),
            StepKind::Send { on_blocked, .. } => next.push(*on_blocked),
            StepKind::Branch { cases, otherwise } => {
                next = cases.iter().map(|case| case.goto).collect();
                next.push(*otherwise);
            }
            StepKind::Split { arms } => next = arms.iter().map(|arm| arm.goto).collect(),
            StepKind::WaitUntil { .. } | StepKind::Update { .. } => {}
        }
        next.into_iter()
            .filter_map(|next| match next {
                Next::Step(index) => Some(index),
                Next::End => None,
            })
            .collect()
    };
    // Depth-first search with colours: 0 unvisited, 1 on the path, 2 done.
    let mut colour = vec![0_u8; steps.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        index: usize,
        steps: &[Step],
        successors: &dyn Fn(&Step) -> Vec<usize>,
        colour: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        colour[index] = 1;
        path.push(index);
        for next in successors(&steps[index]) {
            match colour[next] {
                1 => {
                    let start = path.iter().position(|step| *step == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, steps, successors, colour, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        colour[index] = 2;
        None
    }
    for start in 0..steps.len() {
        if colour[start] == 0
            && let Some(cycle) = visit(start, steps, &successors, &mut colour, &mut path)
        {
            return Some(
                cycle
                    .into_iter()
                    .map(|index| steps[index].id.clone())
                    .collect(),
            );
        }
    }
    None
}
