//! Ranking and selection: candidates that passed the filters are scored and put
//! in priority order (P·V·L·C), or in fallback-ladder order; then the slots are
//! filled one at a time under exploration, re-checking caps and diversity after
//! each pick, and each served action is explained.

use super::filters::Filters;
use super::rules::RuleScope;
use super::{
    DecisionRequest, Environment, FallbackReason, FilterReason, Filtered, RATIONALE_SIZE, Reason,
    Scoring, Served,
};
use crate::catalog::{Action, Catalog, Exploration, Placement};
use crate::features::FeatureInput;
use crate::model::CandidateScores;
use ndarray::ArrayView1;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;

/// A candidate that passed the hard filters, on its way to a slot.
pub(super) struct Entry<'c> {
    action: &'c Action,
    /// The model's propensity (`None` in a fallback).
    propensity: Option<f64>,
    /// P·V·L·C (V·L·C in a fallback).
    priority: f64,
}

/// The ranked candidates of one decision.
pub(super) struct Ranking<'c> {
    /// Best first.
    entries: Vec<Entry<'c>>,
    /// The model's scores, when the model ranked.
    scores: Option<CandidateScores>,
    /// Set when the fallback ladder ranked.
    pub(super) fallback: Option<FallbackReason>,
    /// Where each ladder action came from, for its rationale.
    sources: HashMap<&'c str, String>,
}

/// Scores the survivors with the model and sorts them by priority; or, for a
/// fallback (or a model that gives a non-finite score), orders the ladder's
/// actions and leaves the rest below the limit.
pub(super) fn rank<'c>(
    env: &Environment<'c>,
    placement: &'c Placement,
    input: &FeatureInput<'_>,
    scoring: Scoring,
    survivors: &[&'c Action],
    rules: &mut RuleScope<'_>,
    filtered: &mut Vec<Filtered>,
) -> Ranking<'c> {
    let catalog = env.catalog;
    let mut fallback = match scoring {
        Scoring::Fallback(reason) => Some(reason),
        Scoring::Model => None,
    };
    if let (None, Some(model)) = (fallback, env.model) {
        let scored = model.score_candidates(catalog, input, survivors);
        if scored.propensities.iter().all(|score| score.is_finite()) {
            let mut entries: Vec<Entry<'c>> = survivors
                .iter()
                .zip(&scored.propensities)
                .map(|(action, propensity)| Entry {
                    action,
                    propensity: Some(*propensity),
                    priority: propensity * placement.value_lever_context(action.index),
                })
                .collect();
            // Ids are unique, so the order is total and an unstable sort
            // gives the one order there is.
            entries.sort_unstable_by(|a, b| {
                b.priority
                    .total_cmp(&a.priority)
                    .then_with(|| a.action.id.cmp(&b.action.id))
            });
            return Ranking {
                entries,
                scores: Some(scored),
                fallback: None,
                sources: HashMap::new(),
            };
        }
        fallback = Some(FallbackReason::ModelError);
    }
    let ladder = fallback_ladder(catalog, placement, rules);
    let mut sources = HashMap::new();
    let mut entries = Vec::new();
    for action in survivors {
        match ladder.iter().find(|(id, _)| *id == &*action.id) {
            Some((_, source)) => {
                sources.insert(&*action.id, source.clone());
                // Ladder order decides; the priority only reports V·L·C.
                let priority = placement.value_lever_context(action.index);
                entries.push(Entry {
                    action,
                    propensity: None,
                    priority,
                });
            }
            None => filtered.push(Filtered {
                action_id: action.id.clone(),
                reason: FilterReason::RankedBelowLimit,
                message: Arc::from("not on the fallback ladder"),
                score: None,
                propensity: None,
            }),
        }
    }
    entries.sort_by_key(|entry| ladder.iter().position(|(id, _)| *id == &*entry.action.id));
    Ranking {
        entries,
        scores: None,
        fallback,
        sources,
    }
}

/// What filling the slots of one decision reads.
pub(super) struct Selection<'a, 'c> {
    pub(super) env: &'a Environment<'c>,
    pub(super) input: &'a FeatureInput<'a>,
    pub(super) request: &'a DecisionRequest<'a>,
    pub(super) limit: usize,
}

impl<'c> Selection<'_, 'c> {
    /// Fills up to `limit` slots from `ranking`. Before each pick, candidates
    /// that the serves so far pushed over a cap, or whose category was served
    /// (one per category), leave with their reason; a budgeted action takes a
    /// unit of its global budget (unless dry run) or leaves. What is left at the
    /// end ranked below the limit.
    pub(super) fn select(
        &self,
        ranking: Ranking<'c>,
        filters: &mut Filters<'c>,
        filtered: &mut Vec<Filtered>,
    ) -> Vec<Served> {
        let placement = filters.placement;
        let exploration = if ranking.fallback.is_some() {
            Exploration::None
        } else {
            placement.exploration
        };
        let mut rng = SmallRng::seed_from_u64(self.request.seed);
        let mut served: Vec<Served> = Vec::with_capacity(self.limit.min(ranking.entries.len()));
        // Kept only for one-per-category placements.
        let mut served_categories: Vec<&str> = Vec::new();
        // Every entry passed the cap filters with the counts before this
        // decision's serves, and a serve raises only the counts of its own
        // caps: the caps need checking again only after a serve filled one.
        let mut cap_filled = false;
        let mut pool = ranking.entries;
        while served.len() < self.limit {
            if cap_filled || !served_categories.is_empty() {
                pool.retain(|entry| {
                    let action = entry.action;
                    let blocked = if served_categories.contains(&action.category.as_str()) {
                        Some((
                            FilterReason::Diversity,
                            format!(
                                "an action of category {} was already served",
                                action.category
                            ),
                        ))
                    } else if cap_filled {
                        filters.capped(action)
                    } else {
                        None
                    };
                    let Some((reason, message)) = blocked else {
                        return true;
                    };
                    filtered.push(Filtered {
                        action_id: action.id.clone(),
                        reason,
                        message: Arc::from(message),
                        score: Some(entry.priority),
                        propensity: entry.propensity,
                    });
                    false
                });
                cap_filled = false;
            }
            if pool.is_empty() {
                break;
            }
            let (index, probability) = choose(&pool, exploration, &mut rng);
            let entry = pool.remove(index);
            let action = entry.action;
            if let Some(budget) = action.budget {
                let budgets = self.env.budgets;
                let available = if self.request.dry_run {
                    budgets.used(&action.id) < budget
                } else {
                    budgets.try_reserve(&action.id, budget)
                };
                if !available {
                    filtered.push(Filtered {
                        action_id: action.id.clone(),
                        reason: FilterReason::BudgetExhausted,
                        message: Arc::from(format!("global budget of {budget} is used up")),
                        score: Some(entry.priority),
                        propensity: entry.propensity,
                    });
                    continue;
                }
            }
            filters.count_serve(action);
            cap_filled = filters.fills_a_cap(action);
            if placement.one_per_category {
                served_categories.push(&action.category);
            }
            let (rationale, features, confidence) =
                self.explain(&ranking.scores, &ranking.sources, ranking.fallback, action);
            served.push(Served {
                action_id: action.id.to_string(),
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
        let below_limit: Arc<str> = Arc::from(format!("ranked below the limit of {}", self.limit));
        for entry in pool {
            filtered.push(Filtered {
                action_id: entry.action.id.clone(),
                reason: FilterReason::RankedBelowLimit,
                message: below_limit.clone(),
                score: Some(entry.priority),
                propensity: entry.propensity,
            });
        }
        served
    }

    /// The rationale, feature values and confidence of a served action: its top
    /// feature contributions in words, or where on the fallback ladder it came from.
    fn explain(
        &self,
        scores: &Option<CandidateScores>,
        sources: &HashMap<&str, String>,
        fallback: Option<FallbackReason>,
        action: &Action,
    ) -> (Vec<Reason>, Vec<f64>, f64) {
        if let (Some(scores), Some(model)) = (scores, self.env.model) {
            let features = scores.feature_values(action);
            let rationale = model
                .top_contributions(ArrayView1::from(&features[..]), RATIONALE_SIZE)
                .into_iter()
                .map(|contribution| {
                    let spec = &model.features().specs()[contribution.feature];
                    Reason {
                        feature: spec.text().to_owned(),
                        value: contribution.value,
                        contribution: contribution.contribution,
                        text: spec.describe(self.input, action),
                    }
                })
                .collect();
            let confidence = model.confidence(&action.id, self.env.catalog.actions.len());
            return (rationale, features, confidence);
        }
        let source = sources.get(&*action.id).map_or("", String::as_str);
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
}

/// The probability that the first slot goes to each of `pool`'s actions
/// (action id, priority P·V·L·C; any order) under `exploration`, as
/// [`choose`] picks: the best is the highest priority, ties to the smaller
/// id, as the ranking sorts. What an off-line evaluation of a policy needs:
/// the policy's probability of every action it could have served.
pub fn slot_probabilities(pool: &[(&str, f64)], exploration: Exploration) -> Vec<f64> {
    let mut probabilities = vec![0.0; pool.len()];
    let Some(best) = (0..pool.len()).min_by(|&a, &b| {
        pool[b]
            .1
            .total_cmp(&pool[a].1)
            .then_with(|| pool[a].0.cmp(pool[b].0))
    }) else {
        return probabilities;
    };
    let size = pool.len() as f64;
    match exploration {
        Exploration::None => probabilities[best] = 1.0,
        Exploration::Epsilon(epsilon) => {
            for probability in &mut probabilities {
                *probability = epsilon / size;
            }
            probabilities[best] += 1.0 - epsilon;
        }
        Exploration::Softmax(temperature) => {
            let top = pool[best].1;
            let weights: Vec<f64> = pool
                .iter()
                .map(|(_, priority)| ((priority - top) / temperature).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            for (probability, weight) in probabilities.iter_mut().zip(weights) {
                *probability = weight / total;
            }
        }
    }
    probabilities
}

/// Picks a pool index under the exploration policy; returns it and the
/// probability with which it was picked. The pool is sorted best first.
pub(super) fn choose(
    pool: &[Entry<'_>],
    exploration: Exploration,
    rng: &mut SmallRng,
) -> (usize, f64) {
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
pub(super) fn fallback_ladder<'c>(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `slot_probabilities` gives every action the probability with which
    /// `choose` picks it: the same draws, counted over many seeds, and the
    /// probability `choose` reports for its pick.
    #[test]
    fn slot_probabilities_are_what_choose_picks_with() {
        let catalog = crate::synthetic::catalog(false);
        let priorities = [0.9, 0.3, 0.3, 0.05, 0.6];
        let mut entries: Vec<Entry<'_>> = catalog
            .actions
            .iter()
            .zip(priorities)
            .map(|(action, priority)| Entry {
                action,
                propensity: Some(priority),
                priority,
            })
            .collect();
        entries.sort_unstable_by(|a, b| {
            b.priority
                .total_cmp(&a.priority)
                .then_with(|| a.action.id.cmp(&b.action.id))
        });
        // Any order in, the same probabilities per action out.
        let mut pool: Vec<(&str, f64)> = entries
            .iter()
            .map(|entry| (&*entry.action.id, entry.priority))
            .collect();
        pool.reverse();
        for exploration in [
            Exploration::None,
            Exploration::Epsilon(0.2),
            Exploration::Softmax(0.25),
        ] {
            let probabilities = slot_probabilities(&pool, exploration);
            assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let of = |id: &str| {
                pool.iter()
                    .position(|(candidate, _)| *candidate == id)
                    .map(|position| probabilities[position])
                    .unwrap_or(f64::NAN)
            };
            let draws = 20_000;
            let mut picked = vec![0_u32; entries.len()];
            for seed in 0..draws {
                let mut rng = SmallRng::seed_from_u64(seed);
                let (index, probability) = choose(&entries, exploration, &mut rng);
                let id = &*entries[index].action.id;
                assert!(
                    (probability - of(id)).abs() < 1e-12,
                    "{exploration:?}: choose says {probability} for {id}, slot_probabilities {}",
                    of(id)
                );
                picked[index] += 1;
            }
            for (entry, count) in entries.iter().zip(picked) {
                let expected = of(&entry.action.id);
                let observed = f64::from(count) / draws as f64;
                assert!(
                    (observed - expected).abs() < 0.02,
                    "{exploration:?}: {} picked {observed}, expected {expected}",
                    entry.action.id
                );
            }
        }
    }
}
