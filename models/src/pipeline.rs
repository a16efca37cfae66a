//! The decision pipeline (PRODUCT §3), pure and synchronous: candidates → hard
//! filters → score → P·V·L·C arbitration with exploration → top-N with optional
//! one-per-category diversity → rationale. Every candidate not served carries a
//! [`FilterReason`] and a message saying exactly what stopped it.
//!
//! [`decide`] only reads the customer's state; the caller records a served,
//! non-dry-run decision with [`CustomerState::record_decision`]. The one shared
//! effect is the global budget: a served budgeted action takes a unit at once
//! (unless `dry_run`), so two customers can never both take the last one.

use crate::Error;
use crate::budget::BudgetCounters;
use crate::catalog::{Action, CapScope, Catalog, ConsentPolicy, Exploration, Placement};
use crate::customer::{ConsentState, CustomerState};
use crate::features::FeatureInput;
use crate::model::Model;
use crate::profile::TIMEZONE_ATTRIBUTE;
use crate::rule_vars::RuleVars;
use crate::time::Timestamp;
use crate::value::AttrValue;
use chrono::{NaiveDate, Timelike};
use chrono_tz::Tz;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
}

/// Why a decision came from the fallback ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Stable lowercase code.
    pub fn code(self) -> &'static str {
        match self {
            FallbackReason::ModelMissing => "model_missing",
            FallbackReason::Deadline => "deadline",
            FallbackReason::Overloaded => "overloaded",
            FallbackReason::ModelError => "model_error",
        }
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
    /// Action id.
    pub action_id: String,
    /// Why.
    pub reason: FilterReason,
    /// What exactly.
    pub message: String,
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

/// The customer's local clock, for quiet hours and blackouts.
struct LocalTime {
    minute_of_day: u16,
    date: NaiveDate,
    timezone: Tz,
}

fn local_time(catalog: &Catalog, state: &CustomerState, now: Timestamp) -> LocalTime {
    let timezone = state
        .profile
        .attribute(TIMEZONE_ATTRIBUTE)
        .and_then(AttrValue::as_str)
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(catalog.default_timezone);
    let utc = now.to_utc().unwrap_or_default();
    let local = utc.with_timezone(&timezone);
    let minute_of_day = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    LocalTime {
        minute_of_day,
        date: local.date_naive(),
        timezone,
    }
}

/// A candidate that passed the hard filters, on its way to ranking.
struct Entry<'c> {
    action: &'c Action,
    row: Option<usize>,
    propensity: Option<f64>,
    priority: f64,
}

/// Runs the pipeline for one customer.
pub fn decide(
    env: &Environment<'_>,
    state: &CustomerState,
    request: &DecisionRequest<'_>,
) -> Result<Decision, Error> {
    let catalog = env.catalog;
    let placement = catalog
        .placement(request.placement)
        .ok_or_else(|| Error::UnknownPlacement(request.placement.to_owned()))?;
    let now = request.now;
    let candidates = candidate_ids(catalog, placement, request.candidates);
    let local = local_time(catalog, state, now);
    let mut cap_counts: Vec<u32> = catalog
        .caps
        .iter()
        .map(|cap| state.ledger.count(cap, now))
        .collect();
    let vars = RuleVars::new(
        &state.profile,
        &catalog.known_events,
        request.context,
        &catalog.actions,
        now,
    );
    let mut rules = RuleScope::new(catalog, &vars);

    let mut filtered = Vec::new();
    let mut survivors: Vec<&Action> = Vec::new();
    for &(id, action) in &candidates {
        match check(
            catalog,
            placement,
            state,
            &local,
            &cap_counts,
            env.budgets,
            &mut rules,
            request,
            id,
            action,
        ) {
            Ok(action) => survivors.push(action),
            Err((reason, message)) => filtered.push(Filtered {
                action_id: id.to_owned(),
                reason,
                message,
                score: None,
                propensity: None,
            }),
        }
    }

    let scoring = match (request.scoring, env.model) {
        (Scoring::Model, None) => Scoring::Fallback(FallbackReason::ModelMissing),
        (scoring, _) => scoring,
    };
    let input = FeatureInput {
        profile: &state.profile,
        context: request.context,
        now,
    };
    let mut scores = None;
    let mut fallback = None;
    let mut entries: Vec<Entry<'_>> = Vec::new();
    if let (Scoring::Model, Some(model)) = (scoring, env.model) {
        let scored = model.score_candidates(catalog, &input, &survivors);
        if scored.propensities.iter().all(|score| score.is_finite()) {
            for (row, action) in survivors.iter().enumerate() {
                let propensity = scored.propensities[row];
                let priority = propensity
                    * action.value
                    * catalog.lever(action)
                    * placement.context_weight(&action.category);
                entries.push(Entry {
                    action,
                    row: Some(row),
                    propensity: Some(propensity),
                    priority,
                });
            }
            scores = Some(scored);
        } else {
            fallback = Some(FallbackReason::ModelError);
        }
    } else if let Scoring::Fallback(reason) = scoring {
        fallback = Some(reason);
    }
    let mut ladder_names: HashMap<&str, String> = HashMap::new();
    if fallback.is_some() {
        let ladder = fallback_ladder(catalog, placement, &mut rules);
        for action in &survivors {
            match ladder.iter().find(|(id, _)| *id == action.id) {
                Some((_, source)) => {
                    ladder_names.insert(&action.id, source.clone());
                    // Ladder order decides; the priority only reports V·L·C.
                    let priority = action.value
                        * catalog.lever(action)
                        * placement.context_weight(&action.category);
                    entries.push(Entry {
                        action,
                        row: None,
                        propensity: None,
                        priority,
                    });
                }
                None => filtered.push(Filtered {
                    action_id: action.id.clone(),
                    reason: FilterReason::RankedBelowLimit,
                    message: "not on the fallback ladder".to_owned(),
                    score: None,
                    propensity: None,
                }),
            }
        }
        entries.sort_by_key(|entry| ladder.iter().position(|(id, _)| *id == entry.action.id));
    } else {
        entries.sort_by(|a, b| {
            b.priority
                .total_cmp(&a.priority)
                .then_with(|| a.action.id.cmp(&b.action.id))
        });
    }

    let limit = if request.limit == 0 {
        placement.slots
    } else {
        request.limit
    } as usize;
    let exploration = if fallback.is_some() {
        Exploration::None
    } else {
        placement.exploration
    };
    let mut rng = SmallRng::seed_from_u64(request.seed);
    let mut served: Vec<Served> = Vec::new();
    let mut served_categories: BTreeSet<&str> = BTreeSet::new();
    let mut pool = entries;
    while served.len() < limit {
        pool.retain(|entry| {
            let action = entry.action;
            let blocked = if placement.one_per_category
                && served_categories.contains(action.category.as_str())
            {
                Some((
                    FilterReason::Diversity,
                    format!(
                        "an action of category {} was already served",
                        action.category
                    ),
                ))
            } else {
                capped(catalog, &cap_counts, action)
            };
            match blocked {
                Some((reason, message)) => {
                    filtered.push(Filtered {
                        action_id: action.id.clone(),
                        reason,
                        message,
                        score: Some(entry.priority),
                        propensity: entry.propensity,
                    });
                    false
                }
                None => true,
            }
        });
        if pool.is_empty() {
            break;
        }
        let (index, probability) = choose(&pool, exploration, &mut rng);
        let entry = pool.remove(index);
        let action = entry.action;
        if let Some(budget) = action.budget {
            let available = if request.dry_run {
                env.budgets.used(&action.id) < budget
            } else {
                env.budgets.try_reserve(&action.id, budget)
            };
            if !available {
                filtered.push(Filtered {
                    action_id: action.id.clone(),
                    reason: FilterReason::BudgetExhausted,
                    message: format!("global budget of {budget} is used up"),
                    score: Some(entry.priority),
                    propensity: entry.propensity,
                });
                continue;
            }
        }
        for &position in &action.caps {
            cap_counts[position] += 1;
        }
        served_categories.insert(&action.category);
        let (rationale, features, confidence) = match (&scores, entry.row, env.model) {
            (Some(scores), Some(_), Some(model)) => {
                let row = scores.features(action);
                let rationale = model
                    .top_contributions(row.view(), RATIONALE_SIZE)
                    .into_iter()
                    .map(|contribution| {
                        let spec = &model.features().specs()[contribution.feature];
                        Reason {
                            feature: spec.text().to_owned(),
                            value: contribution.value,
                            contribution: contribution.contribution,
                            text: spec.describe(&input, action),
                        }
                    })
                    .collect();
                let confidence = model.confidence(&action.id, catalog.actions.len());
                (rationale, row.to_vec(), confidence)
            }
            _ => {
                let source = ladder_names
                    .get(action.id.as_str())
                    .cloned()
                    .unwrap_or_default();
                let text = format!(
                    "fallback ({}): {source}",
                    fallback.map_or("none", FallbackReason::code)
                );
                let reason = Reason {
                    feature: "fallback".to_owned(),
                    value: 1.0,
                    contribution: 0.0,
                    text,
                };
                (vec![reason], Vec::new(), 0.0)
            }
        };
        served.push(Served {
            action_id: action.id.clone(),
            channel: action.channel.clone(),
            category: action.category.clone(),
            rank: u32::try_from(served.len() + 1).unwrap_or(u32::MAX),
            score: entry.priority,
            propensity: entry.propensity.unwrap_or(0.0),
            selection_probability: probability,
            confidence,
            value: action.value,
            rationale,
            payload: action.payload.clone(),
            features,
        });
    }
    let below_limit = format!("ranked below the limit of {limit}");
    for entry in pool {
        filtered.push(Filtered {
            action_id: entry.action.id.clone(),
            reason: FilterReason::RankedBelowLimit,
            message: below_limit.clone(),
            score: Some(entry.priority),
            propensity: entry.propensity,
        });
    }
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

/// The request's candidates in order without repeats, or every active action the
/// placement allows.
/// The candidates, each with its action when the catalog has it.
fn candidate_ids<'a>(
    catalog: &'a Catalog,
    placement: &Placement,
    requested: &'a [String],
) -> Vec<(&'a str, Option<&'a Action>)> {
    if requested.is_empty() {
        return catalog
            .actions
            .iter()
            .filter(|action| action.active && allows(placement, action))
            .map(|action| (action.id.as_str(), Some(action)))
            .collect();
    }
    let mut seen = BTreeSet::new();
    requested
        .iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .map(|id| (id, catalog.action(id)))
        .collect()
}

fn allows(placement: &Placement, action: &Action) -> bool {
    placement.channels.contains(&action.channel)
        && (placement.categories.is_empty() || placement.categories.contains(&action.category))
}

/// The hard filters, cheapest first; the rule last.
#[allow(clippy::too_many_arguments)]
fn check<'c>(
    catalog: &'c Catalog,
    placement: &Placement,
    state: &CustomerState,
    local: &LocalTime,
    cap_counts: &[u32],
    budgets: &BudgetCounters,
    rules: &mut RuleScope<'c>,
    request: &DecisionRequest<'_>,
    id: &str,
    action: Option<&'c Action>,
) -> Result<&'c Action, (FilterReason, String)> {
    let now = request.now;
    let action = action.ok_or_else(|| {
        (
            FilterReason::UnknownAction,
            format!("'{id}' is not in catalog {}", catalog.version),
        )
    })?;
    if !action.active {
        return Err((
            FilterReason::Inactive,
            "the action is switched off".to_owned(),
        ));
    }
    if let Some(from) = action.valid_from.filter(|from| now < *from) {
        return Err((FilterReason::OutsideValidity, format!("valid from {from}")));
    }
    if let Some(until) = action.valid_until.filter(|until| now > *until) {
        return Err((FilterReason::OutsideValidity, format!("expired at {until}")));
    }
    if !placement.channels.contains(&action.channel) {
        return Err((
            FilterReason::ChannelNotAllowed,
            format!(
                "placement {} does not allow channel {}",
                placement.id, action.channel
            ),
        ));
    }
    if !placement.categories.is_empty() && !placement.categories.contains(&action.category) {
        return Err((
            FilterReason::CategoryNotAllowed,
            format!(
                "placement {} does not allow category {}",
                placement.id, action.category
            ),
        ));
    }
    if let Some(suppression) = state.suppression_of(&action.channel) {
        let scope = suppression.channel.as_deref().unwrap_or("every channel");
        return Err((
            FilterReason::Suppressed,
            format!(
                "{scope} suppressed ({}) since {}",
                suppression.reason.name(),
                suppression.since
            ),
        ));
    }
    let channel = catalog.channel(&action.channel);
    match (
        state.consent(&action.channel),
        channel.map(|channel| channel.consent),
    ) {
        (Some(ConsentState::OptedOut), _) => {
            return Err((
                FilterReason::OptedOut,
                format!("customer opted out of {}", action.channel),
            ));
        }
        (None, Some(ConsentPolicy::OptIn)) => {
            return Err((
                FilterReason::NoConsent,
                format!(
                    "{} requires an opt-in the customer has not given",
                    action.channel
                ),
            ));
        }
        _ => {}
    }
    if let Some(quiet) = channel.and_then(|channel| channel.quiet_hours)
        && quiet.contains(local.minute_of_day)
    {
        return Err((
            FilterReason::QuietHours,
            format!(
                "{} quiet hours {} (it is {:02}:{:02} in {})",
                action.channel,
                quiet.describe(),
                local.minute_of_day / 60,
                local.minute_of_day % 60,
                local.timezone
            ),
        ));
    }
    if let Some(blackout) = catalog
        .blackouts
        .iter()
        .find(|blackout| blackout.closes(&action.channel, local.date))
    {
        return Err((
            FilterReason::Blackout,
            format!("{} is a blackout date ({})", local.date, blackout.name),
        ));
    }
    if let Some(cooldown) = action.cooldown
        && let Some(last) = state.ledger.last_served(&action.id)
        && now < last.plus(cooldown)
    {
        return Err((
            FilterReason::Cooldown,
            format!("served at {last}; cooldown {cooldown}"),
        ));
    }
    if let Some(cooldown) = action.dismiss_cooldown.or(action.cooldown)
        && let Some(dismissed) = state.ledger.last_dismissed(&action.id)
        && now < dismissed.plus(cooldown)
    {
        return Err((
            FilterReason::Cooldown,
            format!("dismissed at {dismissed}; dismiss cooldown {cooldown}"),
        ));
    }
    if let Some(blocked) = capped(catalog, cap_counts, action) {
        return Err(blocked);
    }
    if let Some(budget) = action.budget
        && budgets.used(&action.id) >= budget
    {
        return Err((
            FilterReason::BudgetExhausted,
            format!("global budget of {budget} is used up"),
        ));
    }
    if let Some(rule) = &action.rule {
        match rules.evaluate(rule, Some(action)) {
            Ok(true) => {}
            Ok(false) => {
                return Err((
                    FilterReason::NotEligible,
                    format!("rule is false: {}", rule.source()),
                ));
            }
            Err(error) => return Err((FilterReason::RuleError, error.to_string())),
        }
    }
    Ok(action)
}

/// The first cap `action` would exceed, given the running counts.
fn capped(
    catalog: &Catalog,
    cap_counts: &[u32],
    action: &Action,
) -> Option<(FilterReason, String)> {
    action
        .caps
        .iter()
        .map(|&position| (&catalog.caps[position], cap_counts[position]))
        .find(|(cap, count)| *count >= cap.limit)
        .map(|(cap, count)| {
            let reason = match cap.scope {
                CapScope::Channel(_) => FilterReason::CapChannel,
                CapScope::Total => FilterReason::CapTotal,
                CapScope::Action(_) => FilterReason::CapAction,
                CapScope::Category(_) => FilterReason::CapCategory,
            };
            (
                reason,
                format!("{} reached ({count} contacts)", cap.describe()),
            )
        })
}

/// Picks a pool index under the exploration policy; returns it and the
/// probability with which it was picked. The pool is sorted best first.
fn choose(pool: &[Entry<'_>], exploration: Exploration, rng: &mut SmallRng) -> (usize, f64) {
    let size = pool.len() as f64;
    match exploration {
        Exploration::None => (0, 1.0),
        Exploration::Epsilon(epsilon) => {
            let index = if rng.random::<f64>() < epsilon {
                rng.random_range(0..pool.len())
            } else {
                0
            };
            let probability = epsilon / size + if index == 0 { 1.0 - epsilon } else { 0.0 };
            (index, probability)
        }
        Exploration::Softmax(temperature) => {
            let best = pool
                .iter()
                .map(|entry| entry.priority)
                .fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = pool
                .iter()
                .map(|entry| ((entry.priority - best) / temperature).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut target = rng.random::<f64>() * total;
            let mut index = pool.len() - 1;
            for (position, weight) in weights.iter().enumerate() {
                if target < *weight {
                    index = position;
                    break;
                }
                target -= weight;
            }
            (index, weights[index] / total)
        }
    }
}

/// The fallback ladder: the first matching segment's defaults, then the
/// placement's fallback actions, each with where it came from.
fn fallback_ladder<'c>(
    catalog: &'c Catalog,
    placement: &'c Placement,
    rules: &mut RuleScope<'_>,
) -> Vec<(&'c str, String)> {
    let mut ladder: Vec<(&str, String)> = Vec::new();
    if let Some(segment) = catalog
        .segments
        .iter()
        .find(|segment| rules.evaluate(&segment.rule, None).unwrap_or(false))
    {
        for id in &segment.actions {
            ladder.push((id, format!("default for segment {}", segment.name)));
        }
    }
    for id in &placement.fallback {
        if !ladder.iter().any(|(existing, _)| existing == id) {
            ladder.push((id, format!("fallback of placement {}", placement.id)));
        }
    }
    ladder
}

/// One CEL context for every rule of a decision, over lazy views of the
/// profile and the request context, with `action` rebound per candidate.
struct RuleScope<'a> {
    vars: &'a RuleVars<'a>,
    context: cel::Context<'a, 'a>,
}

impl<'a> RuleScope<'a> {
    fn new(catalog: &'a Catalog, vars: &'a RuleVars<'a>) -> Self {
        let mut context = cel::Context::with_env(catalog.cel_env().clone());
        context.set_variable_resolver(vars);
        Self { vars, context }
    }

    fn evaluate(
        &mut self,
        rule: &crate::catalog::Rule,
        action: Option<&Action>,
    ) -> Result<bool, Error> {
        self.vars.bind(action);
        rule.evaluate(&self.context)
    }
}
