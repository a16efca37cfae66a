//! What the decision log holds: one [`DecisionRecord`] per non-dry-run
//! decision, one [`OutcomeRecord`] per applied outcome, joined for export as
//! [`LoggedDecision`]. Stored as MessagePack with field names, so fields can be
//! added later without rewriting old entries.

use crate::store::StoreError;
use nudge_models::catalog::Catalog;
use nudge_models::pipeline::Decision;
use nudge_models::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One served action, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedRecord {
    /// The action.
    pub action_id: String,
    /// Its channel.
    pub channel: String,
    /// Its category.
    pub category: String,
    /// 1-based rank.
    pub rank: u32,
    /// Priority P·V·L·C.
    pub score: f64,
    /// Model propensity (0 in a fallback).
    pub propensity: f64,
    /// Probability that the logging policy chose it for its slot.
    pub selection_probability: f64,
    /// The feature values the model scored (empty in a fallback).
    pub features: Vec<f64>,
}

/// One non-dry-run decision, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The decision id.
    pub decision_id: String,
    /// The customer.
    pub customer_id: String,
    /// When it was made.
    pub at: Timestamp,
    /// The placement.
    pub placement: String,
    /// The catalog version used.
    pub catalog_version: String,
    /// The model that scored, `None` for the fallback ladder.
    pub model_version: Option<String>,
    /// The experiment variant.
    pub variant: String,
    /// Why the fallback ladder answered, if it did.
    pub fallback: Option<String>,
    /// The served actions, best first.
    pub served: Vec<ServedRecord>,
}

impl DecisionRecord {
    /// The log record of `decision`.
    pub fn new(
        decision_id: &str,
        customer_id: &str,
        at: Timestamp,
        placement: &str,
        catalog: &Catalog,
        variant: &str,
        decision: &Decision,
    ) -> Self {
        Self {
            decision_id: decision_id.to_owned(),
            customer_id: customer_id.to_owned(),
            at,
            placement: placement.to_owned(),
            catalog_version: catalog.version.clone(),
            model_version: decision.model_version.clone(),
            variant: variant.to_owned(),
            fallback: decision.fallback.map(|reason| reason.code().to_owned()),
            served: decision
                .served
                .iter()
                .map(|served| ServedRecord {
                    action_id: served.action_id.clone(),
                    channel: served.channel.clone(),
                    category: served.category.clone(),
                    rank: served.rank,
                    score: served.score,
                    propensity: served.propensity,
                    selection_probability: served.selection_probability,
                    features: served.features.clone(),
                })
                .collect(),
        }
    }
}

/// One applied outcome, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// The decision that served the action.
    pub decision_id: String,
    /// When that decision was made (the log is ordered by it).
    pub decision_at: Timestamp,
    /// The customer.
    pub customer_id: String,
    /// The action.
    pub action_id: String,
    /// The outcome's name (`click`, `conversion`, …).
    pub outcome: String,
    /// When it happened.
    pub at: Timestamp,
    /// The reward reported with it.
    pub reward: Option<f64>,
}

/// An entry for the decision log, written with the customer's state.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEntry {
    /// A decision, and the feature names of the model that scored it (so the
    /// log can name the features of every model version it holds).
    Decision {
        /// The decision.
        record: DecisionRecord,
        /// The scoring model's feature specs, in order.
        feature_names: Option<Arc<[String]>>,
    },
    /// An outcome.
    Outcome(OutcomeRecord),
}

/// A decision joined with its outcomes, for export.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    /// The decision.
    pub record: DecisionRecord,
    /// The feature specs of its model (empty for a fallback).
    pub feature_names: Vec<String>,
    /// Its outcomes, in the order they were applied.
    pub outcomes: Vec<OutcomeRecord>,
}

/// MessagePack with field names.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|error| StoreError::Encode(error.to_string()))
}

/// The inverse of [`encode`]; `what` names the record in the error.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes)
        .map_err(|error| StoreError::Corrupted(format!("{what} cannot be decoded: {error}")))
}
