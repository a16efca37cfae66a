//! Predictive profile scores: numbers derived from a customer's profile
//! (an adoption score 0–100, a churn risk, a lifetime value) and the tiers
//! they put the customer in (churn risk high / medium / low), declared in
//! the catalog (`[[scores]]`, `[[tiers]]`, `[score_policy]`) and kept on the
//! profile ([`ScoreBoard`]), where rules read them (`profile.scores.<id>`,
//! `profile.tiers.<id>`), models read them as features (`score(<id>)`,
//! `tier(<id>,<band>)`), journeys branch on them and the decision log
//! records them.
//!
//! Three kinds of score, computed in the order declared (a score may read
//! the scores declared before it):
//!
//! - **formula**: `clamp(bias + Σ weightᵢ · featureᵢ, min, max)` over
//!   features of the feature language that read only the profile;
//! - **model**: the probability of a `nudge.logistic/v1` artifact loaded
//!   for the score ([`ScoreModels`]; `nudge train --score` makes one);
//!   absent while no model is loaded for it;
//! - **clv**: the expected value over a horizon of `months` of a customer
//!   paying `value` a month (a feature, e.g. `attr(mrr)`), who stays each
//!   month with probability `1 − p` and whose value is discounted by `d` a
//!   month: `CLV = value · Σ_{k=0}^{months−1} ((1 − p) / (1 + d))^k`, the
//!   constant-hazard (geometric) survival model. `p` is the `churn` score
//!   (a probability of leaving within about a month) when it is computed,
//!   else `default_churn`.
//!
//! A tier's bands are tried in order and the first that holds names the
//! customer's band: a band with `min` holds when the tier's score is at
//! least `min`; a band with `when` holds when its CEL rule over `profile`
//! does (used when the score is not computed, so a rule-based tiering is
//! the default until a model is loaded); a band with neither always holds.
//!
//! When they are computed ([`Scores::refresh_due`]): the actor marks the
//! scores stale when an event or outcome they read arrives
//! ([`Scores::reads_event`], [`Scores::reads_engagement`]); off the
//! decision path (applying events and outcomes) it refreshes them unless
//! the last refresh is younger than `min_interval` (the throttle); a
//! decision or a journey step refreshes them first only when they are
//! stale, older than `max_age` (windows and recency move with time alone),
//! never computed, or computed under other definitions or models. Fresh
//! scores cost a decision two comparisons.

pub mod board;
pub mod definitions;
pub mod reads;

pub use board::ScoreBoard;
pub use definitions::{
    Band, Clv, Formula, ScoreDefinition, ScoreKind, ScorePolicy, Scores, Tier, unscorable,
};
pub use reads::{ProfileReads, named_scores};

use crate::catalog::Rule;
use crate::features::FeatureInput;
use crate::model::Model;
use crate::profile::Profile;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The models loaded for model scores, by score id.
#[derive(Debug, Clone, Default)]
pub struct ScoreModels {
    models: BTreeMap<String, Arc<Model>>,
    reads: ProfileReads,
    fingerprint: u64,
}

impl ScoreModels {
    /// The models for these scores.
    pub fn new(models: BTreeMap<String, Arc<Model>>) -> Self {
        let mut reads = ProfileReads::default();
        let mut fingerprint_text = String::new();
        for (id, model) in &models {
            for spec in model.features().specs() {
                reads.merge(&ProfileReads::of_feature(spec));
            }
            fingerprint_text.push_str(id);
            fingerprint_text.push('=');
            fingerprint_text.push_str(model.version());
            fingerprint_text.push(';');
        }
        Self {
            models,
            reads,
            fingerprint: crate::hash::fnv1a(fingerprint_text.bytes()),
        }
    }

    /// The model of score `id`, if one is loaded.
    pub fn get(&self, id: &str) -> Option<&Arc<Model>> {
        self.models.get(id)
    }

    /// Every loaded model, by score id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Model>)> {
        self.models.iter().map(|(id, model)| (id.as_str(), model))
    }
}

/// Why scores need computing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Never computed.
    Never,
    /// Computed under other definitions or models.
    Redefined,
    /// An input changed since.
    Changed,
    /// Older than `max_age`.
    Aged,
}

impl Staleness {
    /// Lowercase code, for metrics.
    pub fn code(self) -> &'static str {
        match self {
            Staleness::Never => "never",
            Staleness::Redefined => "redefined",
            Staleness::Changed => "changed",
            Staleness::Aged => "aged",
        }
    }
}

/// Where a refresh would happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPath {
    /// Before a decision or a journey step uses the scores: any staleness.
    Decision,
    /// After events or outcomes are applied: a changed input waits for the
    /// throttle.
    Background,
}

impl Scores {
    /// Why `model` cannot serve score `id` of this catalog, with every
    /// feature it cannot compute; `Ok` when it can.
    pub fn check_model(&self, id: &str, model: &Model) -> Result<(), Vec<String>> {
        let Some(position) = self
            .definitions
            .iter()
            .position(|definition| definition.id == id)
        else {
            return Err(vec![format!("the catalog declares no score '{id}'")]);
        };
        if !matches!(self.definitions[position].kind, ScoreKind::Model) {
            return Err(vec![format!(
                "score '{id}' is not a model score in the catalog (it needs `model = true`)"
            )]);
        }
        let earlier = &self.definitions[..position];
        let declared_before = |name: &str| earlier.iter().any(|definition| definition.id == name);
        let problems: Vec<String> = model
            .features()
            .specs()
            .iter()
            .filter_map(|spec| unscorable(spec, &declared_before))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The fingerprint scores computed now would carry.
    fn basis(&self, models: &ScoreModels) -> u64 {
        self.fingerprint ^ models.fingerprint.rotate_left(1)
    }

    /// Whether an event named `name` can change a score or a tier.
    pub fn reads_event(&self, models: &ScoreModels, name: &str) -> bool {
        !self.is_empty() && (self.reads.reads_event(name) || models.reads.reads_event(name))
    }

    /// Whether a change of channel engagement (a serve, an outcome) can
    /// change a score or a tier.
    pub fn reads_engagement(&self, models: &ScoreModels) -> bool {
        !self.is_empty() && (self.reads.engagement || models.reads.engagement)
    }

    /// Why `board` should be refreshed now on `path`, if it should.
    pub fn refresh_due(
        &self,
        models: &ScoreModels,
        board: &ScoreBoard,
        now: Timestamp,
        path: RefreshPath,
    ) -> Option<Staleness> {
        if self.is_empty() {
            // Scores of a catalog that dropped them are left until it
            // declares some again.
            return None;
        }
        let Some(computed_at) = board.computed_at else {
            return Some(Staleness::Never);
        };
        if board.basis != self.basis(models) {
            return Some(Staleness::Redefined);
        }
        let age = now.millis().saturating_sub(computed_at.millis());
        if board.stale {
            let throttled =
                path == RefreshPath::Background && age < self.policy.min_interval.millis();
            if !throttled {
                return Some(Staleness::Changed);
            }
        }
        (age >= self.policy.max_age.millis()).then_some(Staleness::Aged)
    }

    /// Computes every score and tier of `profile` at `now` into its board;
    /// returns whether a value or a tier changed.
    pub fn refresh(
        &self,
        models: &ScoreModels,
        profile: &mut Profile,
        known_events: &[String],
        now: Timestamp,
    ) -> bool {
        let before = std::mem::take(&mut profile.scores);
        // Scores read earlier scores: each is written as it is computed.
        profile.scores.computed_at = Some(now);
        profile.scores.basis = self.basis(models);
        let no_context = BTreeMap::new();
        for definition in &self.definitions {
            let input = FeatureInput {
                profile,
                context: &no_context,
                now,
            };
            let value = match &definition.kind {
                ScoreKind::Formula(formula) => Some(
                    formula
                        .terms
                        .iter()
                        .map(|(spec, weight)| weight * spec.customer_value(&input))
                        .fold(formula.bias, |sum, term| sum + term)
                        .clamp(formula.min, formula.max),
                ),
                ScoreKind::Model => models
                    .get(&definition.id)
                    .map(|model| model.probability(&input)),
                ScoreKind::Clv(clv) => {
                    let churn = clv
                        .churn
                        .as_deref()
                        .and_then(|id| profile.scores.value(id))
                        .unwrap_or(clv.default_churn);
                    Some(clv.expected(clv.value.customer_value(&input), churn))
                }
            };
            match value.filter(|value| value.is_finite()) {
                Some(value) => {
                    profile.scores.values.insert(&definition.id, value);
                }
                None => {
                    profile.scores.values.remove(&definition.id);
                }
            }
        }
        for tier in &self.tiers {
            let score = tier
                .score
                .as_deref()
                .and_then(|id| profile.scores.value(id));
            let band = self.band(tier, score, profile, known_events, now);
            match band {
                Some(band) => {
                    profile.scores.tiers.insert(&tier.id, band);
                }
                None => {
                    profile.scores.tiers.remove(&tier.id);
                }
            }
        }
        before.values != profile.scores.values || before.tiers != profile.scores.tiers
    }
}

impl Scores {
    /// The first band of `tier` that holds for `profile`, whose tier score
    /// is `score`; a band's rule is a journey rule over `profile`
    /// ([`crate::journey::holds`]), and one that fails (a missing key)
    /// does not hold.
    fn band(
        &self,
        tier: &Tier,
        score: Option<f64>,
        profile: &Profile,
        known_events: &[String],
        now: Timestamp,
    ) -> Option<String> {
        // Compiled tiers come with the catalog's environment.
        let rule_holds = |rule: &Rule| {
            self.cel_env.as_ref().is_some_and(|env| {
                crate::journey::holds(&env.0, rule, profile, known_events, None, now)
                    .unwrap_or(false)
            })
        };
        tier.bands
            .iter()
            .find(|band| match (score, band.min, &band.when) {
                (Some(score), Some(min), _) => score >= min,
                (_, _, Some(rule)) => rule_holds(rule),
                (None, Some(_), None) => false,
                (_, None, None) => true,
            })
            .map(|band| band.name.clone())
    }
}
