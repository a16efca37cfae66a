//! The catalog's profile scores as declared (`[[scores]]`, `[[tiers]]`,
//! `[score_policy]`), compiled by `catalog::compile`: data and the checks
//! on it, no computing (that is [`super`]'s), so the catalog that holds
//! them depends on nothing that depends on it.

use super::reads::ProfileReads;
use crate::catalog::rule::{Rule, RuleEnv};
use crate::features::{FeatureSpec, Term};
use crate::time::Span;

/// The catalog's scores, tiers and refresh policy.
#[derive(Debug, Default)]
pub struct Scores {
    /// Scores in the order they are computed.
    pub definitions: Vec<ScoreDefinition>,
    /// Tiers, computed after the scores, in order.
    pub tiers: Vec<Tier>,
    /// When scores are refreshed.
    pub policy: ScorePolicy,
    /// What the formulas, lifetime values and tier rules read (model
    /// scores' features are [`ScoreModels`]'s).
    pub reads: ProfileReads,
    /// A hash of the definitions: scores computed under others are stale.
    pub fingerprint: u64,
    /// The catalog's CEL environment, which tier rules run in.
    pub cel_env: Option<RuleEnv>,
}

/// One declared score.
#[derive(Debug)]
pub struct ScoreDefinition {
    /// Its id, as rules and features name it.
    pub id: String,
    /// What it means, for people.
    pub description: String,
    /// How it is computed.
    pub kind: ScoreKind,
}

/// How a score is computed.
#[derive(Debug)]
pub enum ScoreKind {
    /// A weighted, bounded sum of profile features.
    Formula(Formula),
    /// The probability of the model loaded for the score.
    Model,
    /// An expected lifetime value.
    Clv(Clv),
}

/// `clamp(bias + Σ weight · feature, min, max)`.
#[derive(Debug)]
pub struct Formula {
    /// The constant.
    pub bias: f64,
    /// Each feature with its weight.
    pub terms: Vec<(FeatureSpec, f64)>,
    /// The lowest value (no bound: `-inf`).
    pub min: f64,
    /// The highest value (no bound: `+inf`).
    pub max: f64,
}

/// An expected lifetime value under constant monthly churn.
#[derive(Debug)]
pub struct Clv {
    /// The value a month.
    pub value: FeatureSpec,
    /// The score giving the probability of leaving within a month.
    pub churn: Option<String>,
    /// The monthly churn probability when that score is not computed.
    pub default_churn: f64,
    /// The horizon, in months.
    pub months: u32,
    /// The monthly discount rate.
    pub discount: f64,
}

impl Clv {
    /// The lifetime value of `value` a month at monthly churn `churn`.
    pub fn expected(&self, value: f64, churn: f64) -> f64 {
        let kept = (1.0 - churn.clamp(0.0, 1.0)) / (1.0 + self.discount);
        let mut factor = 1.0;
        let mut total = 0.0;
        for _ in 0..self.months {
            total += factor;
            factor *= kept;
        }
        value * total
    }
}

/// Named bands over a score or rules.
#[derive(Debug)]
pub struct Tier {
    /// Its id, as rules name it (`profile.tiers.<id>`).
    pub id: String,
    /// The score its `min` bands compare.
    pub score: Option<String>,
    /// Tried in order; the first that holds is the customer's.
    pub bands: Vec<Band>,
}

/// One band of a tier.
#[derive(Debug)]
pub struct Band {
    /// Its name, e.g. `high`.
    pub name: String,
    /// Holds when the tier's score is at least this.
    pub min: Option<f64>,
    /// Holds (when the score is not computed, or the band has no `min`)
    /// when this rule over `profile` does.
    pub when: Option<Rule>,
}

/// When scores are refreshed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorePolicy {
    /// Scores older than this are refreshed before a decision uses them.
    pub max_age: Span,
    /// The shortest time between two refreshes that an input change makes
    /// off the decision path.
    pub min_interval: Span,
}

impl Default for ScorePolicy {
    fn default() -> Self {
        Self {
            max_age: Span::hours(1),
            min_interval: Span(60_000),
        }
    }
}

impl Scores {
    /// Whether the catalog declares no scores and no tiers.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty() && self.tiers.is_empty()
    }

    /// The declared score `id`.
    pub fn definition(&self, id: &str) -> Option<&ScoreDefinition> {
        self.definitions
            .iter()
            .find(|definition| definition.id == id)
    }

    /// The declared tier `id`.
    pub fn tier(&self, id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|tier| tier.id == id)
    }
}

/// Why a profile score cannot compute `spec` (`None`: it can): a term of
/// the request context or the action (a score has neither), a tier (tiers
/// come after every score), or a score not computed before it
/// (`declared_before` says which are).
pub fn unscorable(spec: &FeatureSpec, declared_before: &dyn Fn(&str) -> bool) -> Option<String> {
    if !spec.reads_only_profile() {
        return Some(format!(
            "'{spec}' reads the request context or the action, which a profile score does not have"
        ));
    }
    for term in spec.terms() {
        match term {
            Term::Tier { .. } => {
                return Some(format!(
                    "'{spec}' reads a tier: tiers are computed after every score"
                ));
            }
            Term::Score { id } if !declared_before(id) => {
                return Some(format!(
                    "'{spec}' reads score '{id}', which is not declared before this score"
                ));
            }
            _ => {}
        }
    }
    None
}
