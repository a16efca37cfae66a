//! The pipeline's stages one at a time, each run the way [`decide`] runs it:
//! what the criterion benches time stage by stage (`benches/stages.rs`), and
//! what a test can look at alone. Feature extraction and scoring are the
//! model's own ([`FeatureSet::customer_factors`], [`Model::score_candidates`]);
//! recording is [`record`](super::record).
//!
//! [`decide`]: super::decide
//! [`FeatureSet::customer_factors`]: crate::features::FeatureSet::customer_factors
//! [`Model::score_candidates`]: crate::model::Model::score_candidates

use super::filters::{Filters, candidate_ids, check_rule};
use super::rules::RuleScope;
use super::{DecisionRequest, Environment, FilterReason, Filtered, placement_of};
use crate::Error;
use crate::catalog::Action;
use crate::customer::CustomerState;
use crate::rule_vars::RuleVars;
use std::sync::Arc;

/// What some hard filters made of a request's candidates.
#[derive(Debug)]
pub struct Screened<'c> {
    /// The candidates that passed, in request order.
    pub passed: Vec<&'c Action>,
    /// The candidates that did not, in request order, each with its reason
    /// and message.
    pub filtered: Vec<Filtered>,
}

impl<'c> Screened<'c> {
    /// Sorts each candidate into passed or filtered by `check`.
    pub(super) fn screen<'i>(
        candidates: impl ExactSizeIterator<Item = (&'i str, Option<&'c Action>)>,
        mut check: impl FnMut(&str, Option<&'c Action>) -> Result<&'c Action, (FilterReason, String)>,
    ) -> Self {
        let mut passed = Vec::with_capacity(candidates.len());
        let mut filtered = Vec::with_capacity(candidates.len());
        for (id, action) in candidates {
            match check(id, action) {
                Ok(action) => passed.push(action),
                Err((reason, message)) => filtered.push(Filtered {
                    action_id: action.map_or_else(|| Arc::from(id), |action| action.id.clone()),
                    reason,
                    message: Arc::from(message),
                    score: None,
                    propensity: None,
                }),
            }
        }
        Self { passed, filtered }
    }
}

/// The policy filters alone — unknown or inactive actions, validity,
/// placement, suppression, consent, quiet hours, blackouts, cooldowns, caps
/// and budgets — without the eligibility rules.
pub fn policy_filters<'c>(
    env: &Environment<'c>,
    state: &'c CustomerState,
    request: &DecisionRequest<'c>,
) -> Result<Screened<'c>, Error> {
    let catalog = env.catalog;
    let placement = placement_of(catalog, request)?;
    let mut filters = Filters::new(catalog, placement, state, env.budgets, request.now);
    let candidates = candidate_ids(catalog, placement, request.candidates);
    Ok(Screened::screen(candidates, |id, action| {
        filters.check_policy(id, action)
    }))
}

/// The eligibility rules alone: the rule of every candidate that has one,
/// evaluated in the one CEL scope the rules of a decision share, whether or
/// not the policy filters would let the candidate through. Candidates
/// without a rule are left out.
pub fn eligibility_rules<'c>(
    env: &Environment<'c>,
    state: &'c CustomerState,
    request: &DecisionRequest<'c>,
) -> Result<Screened<'c>, Error> {
    let catalog = env.catalog;
    let placement = placement_of(catalog, request)?;
    let vars = RuleVars::new(
        &state.profile,
        &catalog.known_events,
        request.context,
        &catalog.actions,
        request.now,
    );
    let mut rules = RuleScope::new(catalog, &vars);
    let mut screened = Screened {
        passed: Vec::new(),
        filtered: Vec::new(),
    };
    for (_, action) in candidate_ids(catalog, placement, request.candidates) {
        let Some(action) = action.filter(|action| action.rule.is_some()) else {
            continue;
        };
        match check_rule(&mut rules, action) {
            Ok(()) => screened.passed.push(action),
            Err((reason, message)) => screened.filtered.push(Filtered {
                action_id: action.id.clone(),
                reason,
                message: Arc::from(message),
                score: None,
                propensity: None,
            }),
        }
    }
    Ok(screened)
}
