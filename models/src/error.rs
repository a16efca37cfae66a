//! The domain's one error type.

use crate::catalog::CatalogProblems;

/// Everything that can go wrong in the domain, each variant naming the
/// offending value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The catalog file has problems; every one is listed.
    #[error("invalid catalog: {0}")]
    InvalidCatalog(#[from] CatalogProblems),
    /// A model artifact was refused.
    #[error("invalid model artifact: {0}")]
    InvalidModel(String),
    /// A feature spec does not parse.
    #[error("invalid feature '{spec}': {reason}")]
    InvalidFeature {
        /// The spec as written.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule could not be evaluated.
    #[error("rule '{rule}' failed: {reason}")]
    RuleFailed {
        /// The rule as written.
        rule: String,
        /// Why.
        reason: String,
    },
    /// The placement is not in the catalog.
    #[error("placement '{0}' is not in the catalog")]
    UnknownPlacement(String),
    /// A candidate is not in the catalog.
    #[error("candidate '{0}' is not in the catalog")]
    UnknownCandidate(String),
    /// A channel is not in the catalog.
    #[error("channel '{0}' is not in the catalog")]
    UnknownChannel(String),
    /// An outcome names a decision and action this customer was not served.
    #[error(
        "decision '{decision_id}' did not serve action '{action_id}' to this customer (or it is older than the ledger keeps)"
    )]
    UnknownServedAction {
        /// The decision id given.
        decision_id: String,
        /// The action id given.
        action_id: String,
    },
}
