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
    /// The call's time budget ran out before an answer.
    #[error("decision budget of {budget_ms} ms exceeded")]
    DeadlineExceeded {
        /// The budget that applied, in milliseconds.
        budget_ms: u64,
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
    /// A protected call came without credentials.
    #[error("missing {0}")]
    Unauthenticated(Credential),
    /// A protected call came with credentials that are not accepted.
    #[error("invalid {0}")]
    PermissionDenied(Credential),
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
            ServiceError::CannotRead { .. } => Code::FailedPrecondition,
            ServiceError::ActorTimedOut { .. } | ServiceError::NotActivated { .. } => {
                Code::Unavailable
            }
            ServiceError::TaskFailed { .. } => Code::Internal,
            ServiceError::Storage(storage) => match storage {
                StoreError::Full { .. } => Code::ResourceExhausted,
                StoreError::Io { .. }
                | StoreError::InUse { .. }
                | StoreError::Reopening { .. }
                | StoreError::Backend { .. }
                | StoreError::Damaged { .. }
                | StoreError::Undecodable { .. }
                | StoreError::Unencodable { .. }
                | StoreError::UnknownLayout { .. }
                | StoreError::NoWriter { .. }
                | StoreError::Closed => Code::Unavailable,
            },
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}
