//! The service's one error type and its one mapping to gRPC status codes.

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
    /// The customer (or another named thing) is unknown.
    #[error("{0}")]
    NotFound(String),
    /// The call's time budget ran out before an answer.
    #[error("decision budget of {budget_ms} ms exceeded")]
    DeadlineExceeded {
        /// The budget that applied, in milliseconds.
        budget_ms: u64,
    },
    /// Too much load: the call was shed.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The call cannot be served in the service's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The actor system or another internal part is unavailable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The store failed or refuses writes (e.g. the disk is full).
    #[error(transparent)]
    Storage(#[from] crate::store::StoreError),
    /// A protected call came without credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// A protected call came with credentials that are not accepted.
    #[error("{0}")]
    PermissionDenied(String),
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
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            ServiceError::Overloaded(_) => Code::ResourceExhausted,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Storage(crate::store::StoreError::Full(_)) => Code::ResourceExhausted,
            ServiceError::Storage(_) => Code::Unavailable,
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
