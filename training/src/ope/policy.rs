//! The newly trained model's serving policy on logged decisions: for each
//! logged first slot, the probability the model's policy gives the logged
//! action (its priority P·V·L·C ranks the eligible actions, the placement's
//! exploration picks among them, exactly as the service picks) and the
//! reward model's predictions — the [`Sample`]s [`super::evaluate`] takes.

use super::Sample;
use crate::log::LoggedChoice;
use nudge_models::model::Model;
use nudge_models::pipeline::slot_probabilities;
use std::collections::{BTreeMap, BTreeSet};

/// One sample per logged choice, for the policy that serves with `model`.
/// The model's conversion propensity is also the reward model (the reward
/// is conversion).
pub fn samples(choices: &[LoggedChoice], model: &Model) -> Vec<Sample> {
    choices
        .iter()
        .map(|choice| {
            let propensities = model.score(&choice.features);
            let pool: Vec<(&str, f64)> = choice
                .candidates
                .iter()
                .zip(propensities.iter().zip(&choice.weights))
                .map(|(id, (propensity, weight))| (id.as_str(), propensity * weight))
                .collect();
            let policy = slot_probabilities(&pool, choice.exploration);
            let logged = choice.logged;
            Sample {
                reward: choice.reward,
                logging_probability: Some(choice.logging_probability),
                target_probability: policy.get(logged).copied().unwrap_or(0.0),
                predicted_reward: propensities.get(logged).copied().unwrap_or(0.0),
                target_predicted_reward: policy
                    .iter()
                    .zip(propensities.iter())
                    .map(|(probability, propensity)| probability * propensity)
                    .sum(),
            }
        })
        .collect()
}

/// The samples of a shadow model, and the decisions left out of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSamples {
    /// One per logged decision the shadow scored, in a placement that
    /// explores.
    pub samples: Vec<Sample>,
    /// Decisions the shadow scored in placements that never explore, by
    /// placement: every served action there was logged with probability 1,
    /// so where the shadow would choose otherwise nothing in the log shows
    /// what its choice earns, and reweighting would count it as earning
    /// nothing.
    pub not_exploring: BTreeMap<String, usize>,
}

/// One sample per logged decision that shadow model `version` scored (its
/// first slot) in a placement that explores: the shadow's own policy — its
/// first choice, deterministic — against the logging policy, with the
/// shadow's propensities as the reward model. Decisions without a served
/// action or without the shadow's scores are left out, and so are (counted
/// by placement) those of placements whose every logged first slot was
/// chosen with probability 1.
pub fn shadow_samples(
    decisions: &[nudge_models::log::JoinedDecision],
    version: &str,
) -> ShadowSamples {
    let scored: Vec<_> = decisions
        .iter()
        .filter_map(|decision| {
            let shadow = decision.record.shadow.as_ref()?;
            let served = decision.record.served.first()?;
            (shadow.model_version == version).then_some((decision, shadow, served))
        })
        .collect();
    let exploring: BTreeSet<&str> = scored
        .iter()
        .filter(|(_, _, served)| served.selection_probability < 1.0)
        .map(|(decision, _, _)| decision.record.placement.as_str())
        .collect();
    let mut not_exploring = BTreeMap::new();
    let mut samples = Vec::new();
    for (decision, shadow, served) in scored {
        if !exploring.contains(decision.record.placement.as_str()) {
            *not_exploring
                .entry(decision.record.placement.clone())
                .or_insert(0) += 1;
            continue;
        }
        let chosen = shadow.choice.as_deref() == Some(served.action_id.as_str());
        samples.push(Sample {
            reward: if decision.outcomes.first().is_some_and(|o| o.converted) {
                1.0
            } else {
                0.0
            },
            logging_probability: Some(served.selection_probability),
            target_probability: if chosen { 1.0 } else { 0.0 },
            predicted_reward: shadow.propensities.first().copied().unwrap_or(0.0),
            target_predicted_reward: shadow.choice_propensity,
        });
    }
    ShadowSamples {
        samples,
        not_exploring,
    }
}
