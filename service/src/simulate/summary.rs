//! What a simulation observed, tallied: per decision the served actions
//! with their true response probabilities and sampled outcomes, summed per
//! placement, per model version and variant, per action and overall.

use std::collections::BTreeMap;

use super::truth::{Outcome, Response};

/// One served action of a decision, as the simulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimServed {
    /// The action id.
    pub action_id: String,
    /// Its 1-based rank in the decision.
    pub rank: u32,
    /// Its business value, as the decision returned it.
    pub value: f64,
    /// The customer's true response probabilities to it.
    pub truth: Response,
    /// What the simulator sampled and reported.
    pub outcome: Outcome,
}

/// One decision, as the simulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDecision {
    /// The decision id the server returned.
    pub decision_id: String,
    /// The customer.
    pub customer_id: String,
    /// The round (1-based).
    pub round: u32,
    /// The placement.
    pub placement: String,
    /// The model that scored (empty for a fallback without a model).
    pub model_version: String,
    /// The experiment variant.
    pub variant: String,
    /// Whether the fallback ladder answered.
    pub fallback: bool,
    /// The served actions, best first.
    pub served: Vec<SimServed>,
    /// The first slot against the actions that competed for it, when
    /// anything was served.
    pub first_slot: Option<FirstSlot>,
}

/// A decision's first slot against every action that competed for it
/// (served, ranked below the limit, or left out for diversity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstSlot {
    /// The served action's true conversion probability.
    pub reward: f64,
    /// The best true conversion probability among the competitors.
    pub best_reward: f64,
    /// The served action's true priority: its true conversion probability
    /// × its V·L·C in the decision (score over propensity); `None` when no
    /// model scored.
    pub priority: Option<f64>,
    /// The best true priority among the competitors the model scored: what
    /// ranking by P·V·L·C with the true P would have served.
    pub best_priority: Option<f64>,
}

/// Sums over a set of decisions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Decisions made.
    pub decisions: u64,
    /// Decisions the fallback ladder answered.
    pub fallbacks: u64,
    /// Decisions that served nothing.
    pub empty: u64,
    /// Actions served.
    pub served: u64,
    /// Impressions reported.
    pub impressions: u64,
    /// Clicks reported.
    pub clicks: u64,
    /// Conversions reported.
    pub conversions: u64,
    /// Dismissals reported.
    pub dismisses: u64,
    /// The sum over served actions of their true conversion probability.
    pub true_conversions: f64,
    /// The sum over served actions of true conversion probability × value.
    pub true_value: f64,
    /// The sum over decisions that served something of the first slot's
    /// true conversion probability.
    pub first_slot: f64,
    /// The sum over the same decisions of the best eligible action's.
    pub best_eligible: f64,
    /// Decisions whose first slot has a true priority (a model scored).
    pub priced: u64,
    /// The sum over those of the first slot's true priority (P·V·L·C with
    /// the true P).
    pub priority: f64,
    /// The sum over those of the best eligible true priority.
    pub best_priority: f64,
}

/// `part / whole`, `None` for an empty whole.
fn ratio(part: f64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part / whole as f64)
}

impl Tally {
    /// Adds one decision.
    pub fn add(&mut self, decision: &SimDecision) {
        self.decisions += 1;
        self.fallbacks += u64::from(decision.fallback);
        self.empty += u64::from(decision.served.is_empty());
        for served in &decision.served {
            self.served += 1;
            self.impressions += u64::from(served.outcome.impression.is_some());
            self.clicks += u64::from(served.outcome.click.is_some());
            self.conversions += u64::from(served.outcome.conversion.is_some());
            self.dismisses += u64::from(served.outcome.dismiss.is_some());
            self.true_conversions += served.truth.conversion;
            self.true_value += served.truth.conversion * served.value;
        }
        if let Some(slot) = decision.first_slot {
            self.first_slot += slot.reward;
            self.best_eligible += slot.best_reward;
            if let (Some(priority), Some(best)) = (slot.priority, slot.best_priority) {
                self.priced += 1;
                self.priority += priority;
                self.best_priority += best;
            }
        }
    }

    /// Decisions that served something.
    pub fn answered(&self) -> u64 {
        self.decisions - self.empty
    }

    /// Conversions reported per served action.
    pub fn observed_conversion_rate(&self) -> Option<f64> {
        ratio(self.conversions as f64, self.served)
    }

    /// The true expected reward of the observed policy: the mean true
    /// conversion probability of the served actions.
    pub fn true_reward(&self) -> Option<f64> {
        ratio(self.true_conversions, self.served)
    }

    /// The mean true conversion probability × value of the served actions:
    /// what ranking by P·V·L·C aims at (L·C aside).
    pub fn true_value_per_served(&self) -> Option<f64> {
        ratio(self.true_value, self.served)
    }

    /// The mean true conversion probability of the first slot.
    pub fn first_slot_reward(&self) -> Option<f64> {
        ratio(self.first_slot, self.answered())
    }

    /// The mean of the best true conversion probability among the first
    /// slot's eligible actions: what a policy that knew the truth could
    /// have had there, under the same policy filters.
    pub fn best_eligible_reward(&self) -> Option<f64> {
        ratio(self.best_eligible, self.answered())
    }

    /// Best eligible minus first slot: the conversion probability the
    /// policy left on the table per decision.
    pub fn regret(&self) -> Option<f64> {
        ratio(self.best_eligible - self.first_slot, self.answered())
    }

    /// The mean true priority of the first slot: P·V·L·C with the true P,
    /// what the service's ranking aims at.
    pub fn true_priority(&self) -> Option<f64> {
        ratio(self.priority, self.priced)
    }

    /// The mean best true priority among the first slot's eligible
    /// actions: what ranking them by P·V·L·C with the true P would have
    /// had.
    pub fn best_priority(&self) -> Option<f64> {
        ratio(self.best_priority, self.priced)
    }
}

/// Calls that failed, by kind, and the first failure's message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    /// Failed or rejected `Track` / `TrackStream` events.
    pub events: u64,
    /// Failed `Decide` calls.
    pub decisions: u64,
    /// Failed `ReportOutcome` calls.
    pub outcomes: u64,
    /// Calls tried again after the server shed them (not failures).
    pub retried: u64,
    /// The first failure.
    pub first: Option<String>,
}

impl Errors {
    /// All failures.
    pub fn total(&self) -> u64 {
        self.events + self.decisions + self.outcomes
    }

    /// Adds `other`'s failures (keeping the first message seen).
    pub fn merge(&mut self, other: Errors) {
        self.events += other.events;
        self.decisions += other.decisions;
        self.outcomes += other.outcomes;
        self.retried += other.retried;
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    /// Records one failure of `kind`.
    pub fn record(&mut self, kind: ErrorKind, message: impl FnOnce() -> String) {
        match kind {
            ErrorKind::Event => self.events += 1,
            ErrorKind::Decide => self.decisions += 1,
            ErrorKind::Outcome => self.outcomes += 1,
        }
        if self.first.is_none() {
            self.first = Some(message());
        }
    }
}

/// Which call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Track` or `TrackStream`.
    Event,
    /// `Decide`.
    Decide,
    /// `ReportOutcome`.
    Outcome,
}

/// Events the simulator sent and the server applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// The history before the first round.
    pub history: u64,
    /// Sessions in the rounds.
    pub sessions: u64,
    /// Outside the sessions in the rounds: each round's day of email
    /// opens, support tickets, failed payments and cancellations.
    pub daily: u64,
    /// Caused by conversions (an upgrade, a data source connected, …).
    pub effects: u64,
    /// Acknowledged as duplicates (an event id the server had already
    /// applied: the same customers simulated twice).
    pub duplicates: u64,
}

/// Everything a simulation observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Customers simulated.
    pub customers: u64,
    /// Rounds run.
    pub rounds: u32,
    /// Customer visits (a customer decided for in a round).
    pub visits: u64,
    /// Events sent.
    pub events: EventCounts,
    /// Calls that failed.
    pub errors: Errors,
    /// Every decision.
    pub overall: Tally,
    /// Per placement.
    pub placements: BTreeMap<String, Tally>,
    /// Per (model version, variant) seen in the responses; a fallback
    /// without a model has an empty version.
    pub models: BTreeMap<(String, String), Tally>,
    /// Per served action (its `decisions` count the decisions serving it).
    pub actions: BTreeMap<String, Tally>,
}

impl Summary {
    /// Adds one decision to every tally it belongs to.
    pub fn add(&mut self, decision: &SimDecision) {
        self.overall.add(decision);
        self.placements
            .entry(decision.placement.clone())
            .or_default()
            .add(decision);
        self.models
            .entry((decision.model_version.clone(), decision.variant.clone()))
            .or_default()
            .add(decision);
        for served in &decision.served {
            // The action's own slot only, as a one-action decision.
            let alone = SimDecision {
                served: vec![served.clone()],
                first_slot: None,
                ..decision.clone()
            };
            self.actions
                .entry(served.action_id.clone())
                .or_default()
                .add(&alone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(action_id: &str, conversion: f64, converted: bool) -> SimServed {
        SimServed {
            action_id: action_id.to_owned(),
            rank: 1,
            value: 10.0,
            truth: Response {
                seen: 1.0,
                click: conversion * 2.0,
                conversion,
            },
            outcome: Outcome {
                impression: Some(1_000),
                click: converted.then_some(2_000),
                conversion: converted.then_some(3_000),
                dismiss: None,
            },
        }
    }

    fn decision(placement: &str, served: Vec<SimServed>, best: Option<f64>) -> SimDecision {
        let first_slot = served.first().zip(best).map(|(first, best)| FirstSlot {
            reward: first.truth.conversion,
            best_reward: best,
            priority: Some(first.truth.conversion * 10.0),
            best_priority: Some(best * 10.0),
        });
        SimDecision {
            decision_id: "d".to_owned(),
            customer_id: "c".to_owned(),
            round: 1,
            placement: placement.to_owned(),
            model_version: "m".to_owned(),
            variant: "default".to_owned(),
            fallback: false,
            served,
            first_slot,
        }
    }

    #[test]
    fn tallies_sum_the_truth_of_what_was_served() {
        let mut summary = Summary::default();
        summary.add(&decision(
            "a",
            vec![served("x", 0.2, true), served("y", 0.1, false)],
            Some(0.5),
        ));
        summary.add(&decision("a", Vec::new(), None));
        summary.add(&decision("b", vec![served("x", 0.4, false)], Some(0.4)));
        let all = &summary.overall;
        assert_eq!((all.decisions, all.empty, all.served), (3, 1, 3));
        assert_eq!((all.impressions, all.clicks, all.conversions), (3, 1, 1));
        let close = |a: Option<f64>, b: f64| assert!((a.expect("defined") - b).abs() < 1e-12);
        close(all.true_reward(), 0.7 / 3.0);
        close(all.observed_conversion_rate(), 1.0 / 3.0);
        close(all.true_value_per_served(), 7.0 / 3.0);
        close(all.first_slot_reward(), 0.3);
        close(all.best_eligible_reward(), 0.45);
        close(all.regret(), 0.15);
        close(all.true_priority(), 3.0);
        close(all.best_priority(), 4.5);
        close(summary.placements["a"].true_reward(), 0.15);
        assert_eq!(summary.placements["b"].decisions, 1);
        assert_eq!(
            summary.models[&("m".to_owned(), "default".to_owned())].decisions,
            3
        );
        let x = &summary.actions["x"];
        assert_eq!((x.decisions, x.served, x.conversions), (2, 2, 1));
        close(x.true_reward(), 0.3);
        assert_eq!(Tally::default().true_reward(), None);
    }
}
