//! Scoring models: a versioned logistic-regression artifact that carries its own
//! feature specification, so training and serving compute the same features.
//!
//! The artifact is JSON:
//!
//! ```json
//! {
//!   "format": "nudge.logistic/v1",
//!   "version": "demo-1",
//!   "description": "hand-set weights for the demo",
//!   "features": ["count(pricing_page_view,7d)", "category(upsell) * is(plan,pro)"],
//!   "weights": [0.35, -1.2],
//!   "intercept": -2.0,
//!   "evidence": { "total": 50000, "per_action": { "upgrade_offer": 1200 } }
//! }
//! ```
//!
//! Loading validates everything; a bad artifact is an [`Error::InvalidModel`]
//! and the caller keeps its current model.

use crate::Error;
use crate::catalog::{Action, Catalog};
use crate::features::{FeatureInput, FeatureSet};
use ndarray::{Array1, Array2, ArrayView1};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The artifact format this build reads and writes.
pub const MODEL_FORMAT: &str = "nudge.logistic/v1";
/// Most features a model may have.
pub const MAX_FEATURES: usize = 4_096;
/// Examples at which confidence reaches one half.
const CONFIDENCE_HALF_EVIDENCE: f64 = 100.0;

/// How many training examples back the model, in total and per action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Training examples in total.
    #[serde(default)]
    pub total: u64,
    /// Training examples in which each action was served.
    #[serde(default)]
    pub per_action: BTreeMap<String, u64>,
}

/// The model file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArtifact {
    /// Must be [`MODEL_FORMAT`].
    pub format: String,
    /// Version shown in every decision, e.g. `2026-11-23.1`.
    pub version: String,
    /// What this model is and how it was made.
    #[serde(default)]
    pub description: String,
    /// When it was trained (RFC 3339), if known.
    #[serde(default)]
    pub trained_at: Option<String>,
    /// Feature specs in column order.
    pub features: Vec<String>,
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The bias.
    pub intercept: f64,
    /// Training evidence, for confidence.
    #[serde(default)]
    pub evidence: Evidence,
}

/// A loaded, validated model.
#[derive(Debug)]
pub struct Model {
    artifact: ModelArtifact,
    features: FeatureSet,
    weights: Array1<f64>,
    /// The feature specs, shared with every decision-log entry.
    feature_names: Arc<[String]>,
    /// The action factors of the catalog last scored against.
    bound: RwLock<Option<Arc<BoundActions>>>,
}

impl Clone for Model {
    fn clone(&self) -> Self {
        Self {
            artifact: self.artifact.clone(),
            features: self.features.clone(),
            weights: self.weights.clone(),
            feature_names: self.feature_names.clone(),
            bound: RwLock::new(None),
        }
    }
}

/// The action side of every feature for every action of one catalog: computed
/// once per catalog and model, so scoring a decision is one customer pass plus
/// a dot product per candidate.
#[derive(Debug)]
struct BoundActions {
    catalog_instance: u64,
    /// One row per catalog action, one column per feature.
    factors: Array2<f64>,
}

/// The scores of one decision's candidates.
#[derive(Debug)]
pub struct CandidateScores {
    customer: Array1<f64>,
    bound: Arc<BoundActions>,
    /// Propensity of each candidate, in the order given.
    pub propensities: Vec<f64>,
}

impl CandidateScores {
    /// The feature values of one candidate: the same numbers as its row of
    /// [`FeatureSet::extract`].
    pub fn features(&self, action: &Action) -> Array1<f64> {
        Array1::from(self.feature_values(action))
    }

    /// [`CandidateScores::features`] as a vector.
    pub fn feature_values(&self, action: &Action) -> Vec<f64> {
        self.customer
            .iter()
            .zip(self.bound.factors.row(action.index))
            .map(|(customer, action)| customer * action)
            .collect()
    }
}

/// One feature's share of a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// Column of the feature.
    pub feature: usize,
    /// The feature's value.
    pub value: f64,
    /// weight × value.
    pub contribution: f64,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidModel(reason.into())
}

impl Model {
    /// Parses and validates a JSON artifact.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let artifact: ModelArtifact = serde_json::from_slice(bytes)
            .map_err(|error| invalid(format!("not a model artifact: {error}")))?;
        Self::from_artifact(artifact)
    }

    /// Validates an artifact.
    pub fn from_artifact(artifact: ModelArtifact) -> Result<Self, Error> {
        if artifact.format != MODEL_FORMAT {
            return Err(invalid(format!(
                "format '{}' is not '{MODEL_FORMAT}'",
                artifact.format
            )));
        }
        let version = artifact.version.trim();
        if version.is_empty() || version.len() > 128 {
            return Err(invalid("version must be 1..=128 characters"));
        }
        if artifact.features.is_empty() || artifact.features.len() > MAX_FEATURES {
            return Err(invalid(format!(
                "features: {} given, 1..={MAX_FEATURES} allowed",
                artifact.features.len()
            )));
        }
        if artifact.weights.len() != artifact.features.len() {
            return Err(invalid(format!(
                "{} weights for {} features",
                artifact.weights.len(),
                artifact.features.len()
            )));
        }
        if let Some(position) = artifact
            .weights
            .iter()
            .position(|weight| !weight.is_finite())
        {
            return Err(invalid(format!(
                "weights[{position}] ({}) is not finite",
                artifact.weights[position]
            )));
        }
        if !artifact.intercept.is_finite() {
            return Err(invalid(format!(
                "intercept ({}) is not finite",
                artifact.intercept
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(duplicate) = artifact
            .features
            .iter()
            .find(|spec| !seen.insert(spec.as_str()))
        {
            return Err(invalid(format!("feature '{duplicate}' appears twice")));
        }
        let features =
            FeatureSet::parse(&artifact.features).map_err(|error| invalid(error.to_string()))?;
        let weights = Array1::from(artifact.weights.clone());
        let feature_names = Arc::from(artifact.features.clone());
        Ok(Self {
            artifact,
            features,
            weights,
            feature_names,
            bound: RwLock::new(None),
        })
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.artifact.version
    }

    /// The feature specs in column order, shared (cheap to clone).
    pub fn feature_names(&self) -> Arc<[String]> {
        self.feature_names.clone()
    }

    /// The artifact it was loaded from.
    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }

    /// The features, in column order.
    pub fn features(&self) -> &FeatureSet {
        &self.features
    }

    /// The probability for a customer alone, for a model whose features
    /// read only the profile (a profile score's): action terms count as 1.
    pub fn probability(&self, input: &FeatureInput<'_>) -> f64 {
        let logit: f64 = self
            .features
            .customer_factors(input)
            .iter()
            .zip(&self.artifact.weights)
            .map(|(value, weight)| value * weight)
            .sum();
        sigmoid(logit + self.artifact.intercept)
    }

    /// Propensities for every row of a feature matrix.
    pub fn score(&self, matrix: &Array2<f64>) -> Array1<f64> {
        let intercept = self.artifact.intercept;
        matrix
            .dot(&self.weights)
            .mapv(|logit| sigmoid(logit + intercept))
    }

    /// Extracts features and scores `actions` for one customer and context.
    pub fn score_actions(
        &self,
        input: &FeatureInput<'_>,
        actions: &[&Action],
    ) -> (Array2<f64>, Array1<f64>) {
        let matrix = self.features.extract(input, actions);
        let scores = self.score(&matrix);
        (matrix, scores)
    }

    /// Scores `actions` (from `catalog`) for one customer and context: the
    /// customer factors once, then one dot product per candidate against the
    /// catalog's cached action factors.
    pub fn score_candidates(
        &self,
        catalog: &Catalog,
        input: &FeatureInput<'_>,
        actions: &[&Action],
    ) -> CandidateScores {
        let customer = Array1::from(self.features.customer_factors(input));
        let weighted = &customer * &self.weights;
        let bound = self.bind(catalog);
        let intercept = self.artifact.intercept;
        let propensities = actions
            .iter()
            .map(|action| sigmoid(bound.factors.row(action.index).dot(&weighted) + intercept))
            .collect();
        CandidateScores {
            customer,
            bound,
            propensities,
        }
    }

    /// The action factors of `catalog`, computed on first use.
    fn bind(&self, catalog: &Catalog) -> Arc<BoundActions> {
        let cached = self
            .bound
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(bound) = cached.filter(|bound| bound.catalog_instance == catalog.instance()) {
            return bound;
        }
        let mut factors = Array2::zeros((catalog.actions.len(), self.features.len()));
        for (mut row, action) in factors.rows_mut().into_iter().zip(&catalog.actions) {
            row.assign(&Array1::from(self.features.action_factors(action)));
        }
        let bound = Arc::new(BoundActions {
            catalog_instance: catalog.instance(),
            factors,
        });
        *self
            .bound
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bound.clone());
        bound
    }

    /// The `limit` largest contributions (by magnitude) of one row, non-zero only.
    pub fn top_contributions(&self, row: ArrayView1<'_, f64>, limit: usize) -> Vec<Contribution> {
        // Contiguous rows (all of them in practice) are read as slices.
        match (row.as_slice(), self.weights.as_slice()) {
            (Some(values), Some(weights)) => top_contributions(values.iter().zip(weights), limit),
            _ => top_contributions(row.iter().zip(self.weights.iter()), limit),
        }
    }

    /// How much evidence backs scores of `action_id`, in [0, 1): n / (n + 100)
    /// where n is the action's training examples. An action `per_action`
    /// does not list gets an even share of the examples it does not account
    /// for, among the catalog's `action_count` actions it does not list: a
    /// trained artifact lists every action it saw, so one it never saw has
    /// none (confidence 0), while an artifact giving only a total spreads it
    /// over every action.
    pub fn confidence(&self, action_id: &str, action_count: usize) -> f64 {
        let evidence = &self.artifact.evidence;
        let examples = evidence
            .per_action
            .get(action_id)
            .copied()
            .unwrap_or_else(|| {
                let listed: u64 = evidence.per_action.values().sum();
                let unlisted = action_count
                    .saturating_sub(evidence.per_action.len())
                    .max(1);
                evidence.total.saturating_sub(listed) / u64::try_from(unlisted).unwrap_or(u64::MAX)
            }) as f64;
        examples / (examples + CONFIDENCE_HALF_EVIDENCE)
    }
}

/// The `limit` largest contributions (by magnitude) of `(value, weight)`
/// pairs in column order, non-zero only.
fn top_contributions<'a>(
    pairs: impl Iterator<Item = (&'a f64, &'a f64)>,
    limit: usize,
) -> Vec<Contribution> {
    // Larger magnitude first; ties by column, so the order is deterministic.
    let before = |a: &Contribution, b: &Contribution| {
        b.contribution
            .abs()
            .total_cmp(&a.contribution.abs())
            .then(a.feature.cmp(&b.feature))
    };
    let mut top: Vec<Contribution> = Vec::with_capacity(limit + 1);
    if limit == 0 {
        return top;
    }
    for (feature, (value, weight)) in pairs.enumerate() {
        if *value == 0.0 || *weight == 0.0 {
            continue;
        }
        let candidate = Contribution {
            feature,
            value: *value,
            contribution: value * weight,
        };
        // Not before the last of a full list: it would not get in.
        if top.len() == limit
            && top
                .last()
                .is_some_and(|last| before(last, &candidate).is_le())
        {
            continue;
        }
        let position = top.partition_point(|kept| before(kept, &candidate).is_le());
        if position < limit {
            top.insert(position, candidate);
            top.truncate(limit);
        }
    }
    top
}

/// The logistic function, stable for large |x|.
pub fn sigmoid(logit: f64) -> f64 {
    if logit >= 0.0 {
        1.0 / (1.0 + (-logit).exp())
    } else {
        let exp = logit.exp();
        exp / (1.0 + exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> ModelArtifact {
        ModelArtifact {
            format: MODEL_FORMAT.to_owned(),
            version: "t1".to_owned(),
            description: String::new(),
            trained_at: None,
            features: vec![
                "count(login,7d)".to_owned(),
                "category(upsell) * is(plan,pro)".to_owned(),
            ],
            weights: vec![0.5, -1.0],
            intercept: -1.0,
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn confidence_comes_from_each_action_s_examples_and_an_unseen_action_has_none() {
        let model = |total, per_action: &[(&str, u64)]| {
            Model::from_artifact(ModelArtifact {
                evidence: Evidence {
                    total,
                    per_action: per_action
                        .iter()
                        .map(|(id, n)| ((*id).to_owned(), *n))
                        .collect(),
                },
                ..artifact()
            })
            .expect("valid")
        };
        // Trained: every example is an action's.
        let trained = model(400, &[("a", 300), ("b", 100)]);
        assert_eq!(trained.confidence("a", 3), 0.75);
        assert_eq!(trained.confidence("b", 3), 0.5);
        assert_eq!(trained.confidence("never_served", 3), 0.0);
        // A total only: spread over the catalog's actions.
        assert_eq!(model(1_000, &[]).confidence("a", 10), 0.5);
        // Some actions listed: the rest of the total over the others.
        let partial = model(1_200, &[("a", 1_000)]);
        assert_eq!(partial.confidence("c", 3), 0.5);
    }

    #[test]
    fn a_valid_artifact_round_trips_through_json() {
        let json = serde_json::to_vec(&artifact()).expect("serializes");
        let model = Model::from_json(&json).expect("valid");
        assert_eq!(model.version(), "t1");
        assert_eq!(model.features().len(), 2);
        assert_eq!(
            model.features().specs()[1].to_string(),
            "category(upsell) * is(plan,pro)"
        );
    }

    #[test]
    fn bad_artifacts_are_refused_with_the_reason() {
        type Mutation = Box<dyn Fn(&mut ModelArtifact)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|a| a.format = "pickle".into()), "format 'pickle'"),
            (Box::new(|a| a.version = " ".into()), "version"),
            (
                Box::new(|a| a.weights.pop().map(drop).unwrap_or(())),
                "1 weights for 2 features",
            ),
            (Box::new(|a| a.weights[1] = f64::NAN), "weights[1]"),
            (Box::new(|a| a.intercept = f64::INFINITY), "intercept"),
            (
                Box::new(|a| a.features[1] = "count(login,7d)".into()),
                "appears twice",
            ),
            (
                Box::new(|a| a.features[0] = "count(login,2d)".into()),
                "window '2d'",
            ),
            (
                Box::new(|a| a.features[0] = "wat(x)".into()),
                "unknown term 'wat'",
            ),
            (Box::new(|a| a.features.clear()), "features: 0 given"),
        ];
        for (mutate, expected) in cases {
            let mut broken = artifact();
            mutate(&mut broken);
            let error = Model::from_artifact(broken)
                .expect_err("must be refused")
                .to_string();
            assert!(
                error.contains(expected),
                "'{error}' should mention '{expected}'"
            );
        }
        let error = Model::from_json(b"{not json")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("not a model artifact"), "{error}");
    }

    #[test]
    fn top_contributions_are_the_largest_by_magnitude_in_order() {
        let mut artifact = artifact();
        artifact.features = (0..6).map(|n| format!("attr(a{n})")).collect();
        artifact.weights = vec![1.0, -3.0, 0.5, 2.0, 0.0, -2.0];
        let model = Model::from_artifact(artifact).expect("valid");
        let row = ndarray::arr1(&[1.0, 1.0, 1.0, 1.0, 9.0, 1.0]);
        let top = model.top_contributions(row.view(), 3);
        let features: Vec<usize> = top.iter().map(|c| c.feature).collect();
        // |-3| first, then the tie |2| = |-2| by column; the zero weight never.
        assert_eq!(features, vec![1, 3, 5]);
        assert_eq!(top[0].contribution, -3.0);
        assert!(
            model
                .top_contributions(ndarray::arr1(&[0.0; 6]).view(), 3)
                .is_empty()
        );
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(800.0) <= 1.0 && sigmoid(-800.0) >= 0.0);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-12);
    }
}
