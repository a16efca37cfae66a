//! The service's one error type and its one mapping to gRPC status codes.

use crate::store::StoreError;
use tonic::{Code, Status};

/// Everything a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request field is missing, malformed or over a limit.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field path, e.g. `context` or `event.name`.
        field: String,
        /// What is wrong, with the offending value.
        reason: String,
    },
    /// A domain rule refused the call.
    #[error(transparent)]
    Domain(#[from] nudge_models::Error),
    /// nudge has never heard of the customer.
    #[error("customer '{0}' is not known")]
    UnknownCustomer(String),
    /// The client's own deadline passed before an answer (the client has
    /// given up, so nothing more is done for the call).
    #[error("deadline exceeded: the client's deadline of {deadline_ms} ms passed before an answer")]
    DeadlineExceeded {
        /// The client's deadline, in milliseconds from the call's start.
        deadline_ms: u64,
    },
    /// The service budget (`budget_ms`, shorter than the client's deadline)
    /// ran out before an answer: the service is overloaded. Queued, the call
    /// was not applied; storing, its write may still become durable.
    #[error("{}", budget_message(*.budget_ms, *.call, *.stage))]
    BudgetExhausted {
        /// The budget, in milliseconds.
        budget_ms: u64,
        /// Which call.
        call: BudgetedCall,
        /// Where the call was when the budget ran out.
        stage: Stage,
    },
    /// A file the call needs (the catalog or model file) cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    CannotRead {
        /// What the file is, e.g. `catalog file`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file the service keeps cannot be written.
    #[error("cannot write {what} {}: {source}", path.display())]
    CannotWrite {
        /// What the file is, e.g. `journey pauses`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No journey of the running catalog has this id.
    #[error("journey '{0}' is not in the catalog (nudge journeys lists them)")]
    UnknownJourney(String),
    /// The customer's actor did not answer in time.
    #[error("unavailable: the actor of customer '{customer_id}' timed out")]
    ActorTimedOut {
        /// The customer.
        customer_id: String,
    },
    /// The customer's actor kept stopping while the call was routed to it.
    #[error(
        "unavailable: customer '{customer_id}' could not be activated after {attempts} attempts"
    )]
    NotActivated {
        /// The customer.
        customer_id: String,
        /// How many times routing was tried.
        attempts: usize,
    },
    /// An internal task failed (panicked); nothing it did was acknowledged.
    #[error("internal error: {task}{}", if *panicked { " (it panicked)" } else { " (it was cancelled)" })]
    TaskFailed {
        /// What the task was doing.
        task: &'static str,
        /// Whether it panicked (otherwise it was cancelled).
        panicked: bool,
    },
    /// The store failed or refuses writes (e.g. the disk is full).
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The model registry refused a change.
    #[error(transparent)]
    Registry(std::sync::Arc<crate::registry::RegistryError>),
    /// The service is shutting down: a new subscription is refused, and an
    /// open one ends (subscribe again, to this node when it is back or to
    /// another).
    #[error("unavailable: nudge is shutting down")]
    ShuttingDown,
    /// A protected call came without credentials.
    #[error("missing {0}")]
    Unauthenticated(Credential),
    /// A protected call came with credentials that are not accepted.
    #[error("invalid {0}")]
    PermissionDenied(Credential),
    /// A browser call (or a call with a customer token) was refused.
    #[error(transparent)]
    Browser(#[from] crate::web::BrowserError),
}

/// A call that runs within the service budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetedCall {
    /// `Decisions.Decide`.
    Decide,
    /// `Events.Track`.
    Track,
    /// `Decisions.ReportOutcome`.
    Outcome,
}

impl BudgetedCall {
    /// Every call, in the order of [`BudgetedCall::index`].
    pub const ALL: [BudgetedCall; 3] = [
        BudgetedCall::Decide,
        BudgetedCall::Track,
        BudgetedCall::Outcome,
    ];

    /// Its position in [`BudgetedCall::ALL`].
    pub fn index(self) -> usize {
        match self {
            BudgetedCall::Decide => 0,
            BudgetedCall::Track => 1,
            BudgetedCall::Outcome => 2,
        }
    }

    /// The `call` metric label.
    pub fn code(self) -> &'static str {
        match self {
            BudgetedCall::Decide => "decide",
            BudgetedCall::Track => "track",
            BudgetedCall::Outcome => "outcome",
        }
    }
}

/// Where a call was when its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the customer's actor, or being applied by it: nothing was
    /// recorded.
    Queued,
    /// Applied, its write not yet durable: it may still be stored.
    Storing,
}

impl Stage {
    /// Every stage, in the order of [`Stage::index`].
    pub const ALL: [Stage; 2] = [Stage::Queued, Stage::Storing];

    /// Its position in [`Stage::ALL`].
    pub fn index(self) -> usize {
        match self {
            Stage::Queued => 0,
            Stage::Storing => 1,
        }
    }

    /// The `stage` metric label.
    pub fn code(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Storing => "storing",
        }
    }
}

/// The message of [`ServiceError::BudgetExhausted`]: what happened to the
/// call, and how to retry it safely.
fn budget_message(budget_ms: u64, call: BudgetedCall, stage: Stage) -> String {
    match (stage, call) {
        (Stage::Queued, BudgetedCall::Decide) => format!(
            "nudge is overloaded: the {budget_ms} ms budget ran out before a decision was recorded; retry with backoff"
        ),
        (Stage::Queued, BudgetedCall::Track) => format!(
            "nudge is overloaded: the {budget_ms} ms budget ran out before the event was applied; retry with backoff (an event id is applied once)"
        ),
        (Stage::Queued, BudgetedCall::Outcome) => format!(
            "nudge is overloaded: the {budget_ms} ms budget ran out before the outcome was applied; retry with backoff (an outcome is applied once per decision and action)"
        ),
        (Stage::Storing, BudgetedCall::Decide) => format!(
            "unavailable: the {budget_ms} ms budget ran out while the decision was being stored; it may still be stored: treat it as not shown"
        ),
        (Stage::Storing, BudgetedCall::Track) => format!(
            "unavailable: the {budget_ms} ms budget ran out while the event was being stored; it may still be stored: retry with the same event id (applied once)"
        ),
        (Stage::Storing, BudgetedCall::Outcome) => format!(
            "unavailable: the {budget_ms} ms budget ran out while the outcome was being stored; it may still be stored: retry it (applied once per decision and action)"
        ),
    }
}

/// What a protected call authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `authorization: Bearer <token>`.
    BearerToken,
    /// A client certificate verified by mutual TLS.
    ClientCertificate,
}

impl std::fmt::Display for Credential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Credential::BearerToken => "bearer token",
            Credential::ClientCertificate => "client certificate",
        })
    }
}

impl ServiceError {
    /// An [`ServiceError::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        use nudge_models::Error as Domain;
        match self {
            ServiceError::InvalidArgument { .. } => Code::InvalidArgument,
            ServiceError::Domain(domain) => match domain {
                Domain::InvalidCatalog(_)
                | Domain::InvalidModel(_)
                | Domain::InvalidFeature { .. }
                | Domain::UnknownPlacement(_)
                | Domain::UnknownCandidate(_)
                | Domain::UnknownChannel(_) => Code::InvalidArgument,
                Domain::UnknownServedAction { .. } => Code::NotFound,
                Domain::RuleFailed { .. } => Code::Internal,
            },
            ServiceError::UnknownCustomer(_) => Code::NotFound,
            ServiceError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            ServiceError::BudgetExhausted { stage, .. } => match stage {
                Stage::Queued => Code::ResourceExhausted,
                Stage::Storing => Code::Unavailable,
            },
            ServiceError::CannotRead { .. } => Code::FailedPrecondition,
            ServiceError::CannotWrite { .. } => Code::Unavailable,
            ServiceError::UnknownJourney(_) => Code::NotFound,
            ServiceError::ActorTimedOut { .. } | ServiceError::NotActivated { .. } => {
                Code::Unavailable
            }
            ServiceError::TaskFailed { .. } => Code::Internal,
            ServiceError::ShuttingDown => Code::Unavailable,
            ServiceError::Storage(storage) => match storage {
                StoreError::Full { .. } | StoreError::Behind { .. } => Code::ResourceExhausted,
                StoreError::Io { .. }
                | StoreError::InUse { .. }
                | StoreError::Reopening { .. }
                | StoreError::Backend { .. }
                | StoreError::Damaged { .. }
                | StoreError::Undecodable { .. }
                | StoreError::Unencodable { .. }
                | StoreError::UnknownLayout { .. }
                | StoreError::NoWriter { .. }
                | StoreError::Redis { .. }
                | StoreError::NotOwner { .. }
                | StoreError::Fenced { .. }
                | StoreError::Leased { .. }
                | StoreError::Closed => Code::Unavailable,
            },
            ServiceError::Registry(error) => {
                use crate::registry::RegistryError as R;
                match error.as_ref() {
                    R::UnknownModel(_) => Code::NotFound,
                    R::DoesNotFit { .. } | R::NotAScoreModel { .. } => Code::InvalidArgument,
                    R::Experiment(nudge_models::experiment::ExperimentError::BadShare(_))
                    | R::Experiment(nudge_models::experiment::ExperimentError::BadName(_)) => {
                        Code::InvalidArgument
                    }
                    R::BadAuc(_) => Code::InvalidArgument,
                    R::Experiment(_)
                    | R::VersionTaken(_)
                    | R::NothingToRollBack
                    | R::WorseAuc { .. } => Code::FailedPrecondition,
                    R::Io { .. } | R::Unreadable { .. } => Code::Internal,
                }
            }
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::Browser(error) if error.is_unauthenticated() => Code::Unauthenticated,
            ServiceError::Browser(_) => Code::PermissionDenied,
        }
    }
}

impl From<crate::registry::RegistryError> for ServiceError {
    fn from(error: crate::registry::RegistryError) -> Self {
        ServiceError::Registry(std::sync::Arc::new(error))
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_catching_up_on_its_checkpoints_is_an_overload_to_retry() {
        let status = Status::from(ServiceError::Storage(StoreError::Behind {
            buffered: 40_000,
        }));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("catching up") && status.message().contains("40000"),
            "{}",
            status.message()
        );
    }
}
