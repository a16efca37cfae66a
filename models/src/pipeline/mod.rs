//! The decision pipeline (PRODUCT §3), pure and synchronous: candidates → hard
//! filters → score → P·V·L·C arbitration with exploration → top-N with optional
//! one-per-category diversity → rationale. Every candidate not served carries a
//! [`FilterReason`] and a message saying exactly what stopped it.
//!
//! [`decide`] only reads the customer's state; [`decide_and_record`]
//! (`record.rs`) also records a served, non-dry-run decision in the ledger and
//! makes its decision-log entry: the step callers use. The one shared
//! effect is the global budget: a served budgeted action takes a unit at once
//! (unless `dry_run`), so two customers can never both take the last one.
//!
//! [`stages`] runs one stage alone, the way [`decide`] runs it, for the
//! criterion benches (`models/benches/`). [`next_allowed`] (`allowed.rs`)
//! says when caps, cooldowns, quiet hours and blackouts next let an action
//! go: the moment a journey's deferred send waits for.

mod allowed;
mod filters;
mod ranking;
mod record;
mod rules;
pub mod stages;

use crate::Error;
use crate::budget::BudgetCounters;
use crate::catalog::{Catalog, Placement};
use crate::customer::CustomerState;
use crate::features::FeatureInput;
use crate::model::Model;
use crate::rule_vars::RuleVars;
use crate::time::Timestamp;
use crate::value::AttrValue;
use filters::{Filters, candidate_ids};
use ranking::Selection;
use rules::RuleScope;
use stages::Screened;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use allowed::next_allowed;
pub use ranking::slot_probabilities;
pub use record::{RecordAs, Recorded, budgeted_actions, decide_and_record, record};

/// How many feature contributions explain a served action.
pub const RATIONALE_SIZE: usize = 3;

/// Why a candidate was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterReason {
    /// Not (or no longer) in the catalog.
    UnknownAction,
    /// `active = false`.
    Inactive,
    /// Outside `valid_from` .. `valid_until`.
    OutsideValidity,
    /// The placement does not allow the channel.
    ChannelNotAllowed,
    /// The placement does not allow the category.
    CategoryNotAllowed,
    /// The channel needs an opt-in the customer has not given.
    NoConsent,
    /// The customer opted out of the channel.
    OptedOut,
    /// The channel is suppressed for the customer.
    Suppressed,
    /// The eligibility rule is false.
    NotEligible,
    /// The eligibility rule failed to evaluate.
    RuleError,
    /// A channel cap is reached.
    CapChannel,
    /// The total cap is reached.
    CapTotal,
    /// An action cap is reached.
    CapAction,
    /// A category cap is reached.
    CapCategory,
    /// Served or dismissed too recently.
    Cooldown,
    /// Quiet hours in the customer's timezone.
    QuietHours,
    /// A blackout date.
    Blackout,
    /// The global budget is used up.
    BudgetExhausted,
    /// Eligible but ranked below the limit.
    RankedBelowLimit,
    /// Eligible but its category was already served.
    Diversity,
}

impl FilterReason {
    /// Every reason.
    pub const ALL: [FilterReason; 20] = [
        FilterReason::UnknownAction,
        FilterReason::Inactive,
        FilterReason::OutsideValidity,
        FilterReason::ChannelNotAllowed,
        FilterReason::CategoryNotAllowed,
        FilterReason::NoConsent,
        FilterReason::OptedOut,
        FilterReason::Suppressed,
        FilterReason::NotEligible,
        FilterReason::RuleError,
        FilterReason::CapChannel,
        FilterReason::CapTotal,
        FilterReason::CapAction,
        FilterReason::CapCategory,
        FilterReason::Cooldown,
        FilterReason::QuietHours,
        FilterReason::Blackout,
        FilterReason::BudgetExhausted,
        FilterReason::RankedBelowLimit,
        FilterReason::Diversity,
    ];

    /// Stable lowercase code, e.g. `cap_channel`.
    pub fn code(self) -> &'static str {
        match self {
            FilterReason::UnknownAction => "unknown_action",
            FilterReason::Inactive => "inactive",
            FilterReason::OutsideValidity => "outside_validity",
            FilterReason::ChannelNotAllowed => "channel_not_allowed",
            FilterReason::CategoryNotAllowed => "category_not_allowed",
            FilterReason::NoConsent => "no_consent",
            FilterReason::OptedOut => "opted_out",
            FilterReason::Suppressed => "suppressed",
            FilterReason::NotEligible => "not_eligible",
            FilterReason::RuleError => "rule_error",
            FilterReason::CapChannel => "cap_channel",
            FilterReason::CapTotal => "cap_total",
            FilterReason::CapAction => "cap_action",
            FilterReason::CapCategory => "cap_category",
            FilterReason::Cooldown => "cooldown",
            FilterReason::QuietHours => "quiet_hours",
            FilterReason::Blackout => "blackout",
            FilterReason::BudgetExhausted => "budget_exhausted",
            FilterReason::RankedBelowLimit => "ranked_below_limit",
            FilterReason::Diversity => "diversity",
        }
    }

    /// Whether the reason is a frequency cap.
    pub fn is_cap(self) -> bool {
        matches!(
            self,
            FilterReason::CapChannel
                | FilterReason::CapTotal
                | FilterReason::CapAction
                | FilterReason::CapCategory
        )
    }

    /// Whether time alone lifts it: a cap, a cooldown, quiet hours or a
    /// blackout ([`next_allowed`] says when).
    pub fn lifts_with_time(self) -> bool {
        self.is_cap()
            || matches!(
                self,
                FilterReason::Cooldown | FilterReason::QuietHours | FilterReason::Blackout
            )
    }
}

/// Why a decision came from the fallback ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// No model is loaded.
    ModelMissing,
    /// Too little time was left to score.
    Deadline,
    /// The customer's mailbox was saturated.
    Overloaded,
    /// The model produced a non-finite score.
    ModelError,
}

impl FallbackReason {
    /// Every reason.
    pub const ALL: [FallbackReason; 4] = [
        FallbackReason::ModelMissing,
        FallbackReason::Deadline,
        FallbackReason::Overloaded,
        FallbackReason::ModelError,
    ];

    /// Stable lowercase code.
    pub fn code(self) -> &'static str {
        match self {
            FallbackReason::ModelMissing => "model_missing",
            FallbackReason::Deadline => "deadline",
            FallbackReason::Overloaded => "overloaded",
            FallbackReason::ModelError => "model_error",
        }
    }

    /// The reason whose code is `code`, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }
}

/// Whether to score with the model or answer from the fallback ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// Score with the model (falls back if there is none).
    Model,
    /// Use the fallback ladder for this reason.
    Fallback(FallbackReason),
}

/// One `Decide` call, validated.
#[derive(Debug, Clone)]
pub struct DecisionRequest<'a> {
    /// Placement id.
    pub placement: &'a str,
    /// Request context.
    pub context: &'a BTreeMap<String, AttrValue>,
    /// Candidate ids; empty means every active action the placement allows.
    pub candidates: &'a [String],
    /// Actions to serve; 0 means the placement's slots.
    pub limit: u32,
    /// Evaluate without taking budget.
    pub dry_run: bool,
    /// Model or fallback.
    pub scoring: Scoring,
    /// Seed for exploration: the same seed gives the same ranking.
    pub seed: u64,
    /// Decision time.
    pub now: Timestamp,
}

/// One feature's contribution, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// The feature spec.
    pub feature: String,
    /// Its value.
    pub value: f64,
    /// weight × value.
    pub contribution: f64,
    /// A sentence for humans.
    pub text: String,
}

/// A served action.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// Action id.
    pub action_id: String,
    /// Channel.
    pub channel: String,
    /// Category.
    pub category: String,
    /// 1-based rank.
    pub rank: u32,
    /// Priority P·V·L·C.
    pub score: f64,
    /// Model propensity (0 in a fallback).
    pub propensity: f64,
    /// Probability this action was chosen for its slot.
    pub selection_probability: f64,
    /// Evidence behind the propensity, in [0, 1).
    pub confidence: f64,
    /// Business value.
    pub value: f64,
    /// Top contributions.
    pub rationale: Vec<Reason>,
    /// Personalization payload.
    pub payload: BTreeMap<String, String>,
    /// The feature values used (empty in a fallback), for the decision log.
    pub features: Vec<f64>,
}

/// A candidate that was not served.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// Action id: the catalog's own string, shared, so that filtering most of
    /// 50 candidates allocates nothing per candidate.
    pub action_id: Arc<str>,
    /// Why.
    pub reason: FilterReason,
    /// What exactly; shared by candidates with the same message (e.g. every
    /// one ranked below the limit).
    pub message: Arc<str>,
    /// Score, for candidates that passed every filter.
    pub score: Option<f64>,
    /// Propensity, for candidates that were scored.
    pub propensity: Option<f64>,
}

/// The pipeline's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Served actions, best first.
    pub served: Vec<Served>,
    /// Everything else, with reasons.
    pub filtered: Vec<Filtered>,
    /// Model version, when a model scored.
    pub model_version: Option<String>,
    /// Set when the fallback ladder answered.
    pub fallback: Option<FallbackReason>,
}

impl Decision {
    /// Counts of filtered candidates by reason.
    pub fn filtered_counts(&self) -> BTreeMap<FilterReason, u32> {
        let mut counts = BTreeMap::new();
        for filtered in &self.filtered {
            *counts.entry(filtered.reason).or_insert(0) += 1;
        }
        counts
    }
}

/// What the pipeline reads besides the customer.
#[derive(Debug, Clone, Copy)]
pub struct Environment<'a> {
    /// The catalog.
    pub catalog: &'a Catalog,
    /// The model, if one is loaded.
    pub model: Option<&'a Model>,
    /// Global budgets.
    pub budgets: &'a BudgetCounters,
}

/// The placement `request` names.
fn placement_of<'c>(
    catalog: &'c Catalog,
    request: &DecisionRequest<'_>,
) -> Result<&'c Placement, Error> {
    catalog
        .placement(request.placement)
        .ok_or_else(|| Error::UnknownPlacement(request.placement.to_owned()))
}

/// Runs the pipeline for one customer.
pub fn decide(
    env: &Environment<'_>,
    state: &CustomerState,
    request: &DecisionRequest<'_>,
) -> Result<Decision, Error> {
    let catalog = env.catalog;
    let placement = placement_of(catalog, request)?;
    let now = request.now;
    let vars = RuleVars::new(
        &state.profile,
        &catalog.known_events,
        request.context,
        &catalog.actions,
        now,
    );
    let mut rules = RuleScope::new(catalog, &vars);
    let mut filters = Filters::new(catalog, placement, state, env.budgets, now);

    // Hard filters.
    let candidates = candidate_ids(catalog, placement, request.candidates);
    let Screened {
        passed: survivors,
        mut filtered,
    } = Screened::screen(candidates, |id, action| {
        filters.check(&mut rules, id, action)
    });

    // Score and rank, or fall back.
    let scoring = match (request.scoring, env.model) {
        (Scoring::Model, None) => Scoring::Fallback(FallbackReason::ModelMissing),
        (scoring, _) => scoring,
    };
    let input = FeatureInput {
        profile: &state.profile,
        context: request.context,
        now,
    };
    let ranking = ranking::rank(
        env,
        placement,
        &input,
        scoring,
        &survivors,
        &mut rules,
        &mut filtered,
    );
    let fallback = ranking.fallback;

    // Fill the slots.
    let limit = if request.limit == 0 {
        placement.slots
    } else {
        request.limit
    } as usize;
    let selection = Selection {
        env,
        input: &input,
        request,
        limit,
    };
    let served = selection.select(ranking, &mut filters, &mut filtered);
    Ok(Decision {
        served,
        filtered,
        model_version: if fallback.is_none() {
            env.model.map(|model| model.version().to_owned())
        } else {
            None
        },
        fallback,
    })
}
