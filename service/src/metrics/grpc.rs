//! The gRPC layer's handles: calls refused by reason, calls shed by reason,
//! the admission limit, connections refused.

use super::{
    GRPC_CONCURRENCY_LIMIT, GRPC_CONNECTIONS_REFUSED_TOTAL, GRPC_REJECTED_TOTAL, GRPC_SHED_TOTAL,
    REASON,
};
use crate::queueing::Shed;
use metrics::{Counter, Gauge};

/// Why a gRPC call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The request was invalid.
    Invalid,
    /// The deadline passed before an answer.
    Deadline,
    /// The call was shed under load.
    Overloaded,
    /// A protected call without valid credentials.
    Unauthorized,
}

impl Rejection {
    /// Every reason.
    pub const ALL: [Rejection; 4] = [
        Rejection::Invalid,
        Rejection::Deadline,
        Rejection::Overloaded,
        Rejection::Unauthorized,
    ];

    /// The `reason` label.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::Deadline => "deadline",
            Rejection::Overloaded => "overloaded",
            Rejection::Unauthorized => "unauthorized",
        }
    }

    /// The rejection a gRPC status code stands for, if any.
    pub fn of(code: tonic::Code) -> Option<Rejection> {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Some(Rejection::Invalid),
            tonic::Code::DeadlineExceeded => Some(Rejection::Deadline),
            tonic::Code::ResourceExhausted => Some(Rejection::Overloaded),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                Some(Rejection::Unauthorized)
            }
            _ => None,
        }
    }
}

/// The handles of the gRPC layer, which exists before the engine (the
/// listener answers health while the engine starts): created by
/// [`crate::grpc::serve`], after the recorder is installed.
#[derive(Debug)]
pub struct GrpcMetrics {
    rejected: [Counter; Rejection::ALL.len()],
    shed: [Counter; Shed::ALL.len()],
    concurrency_limit: Gauge,
    connections_refused: Counter,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcMetrics {
    /// Registers every handle (all with fixed labels: exported at 0 from the start).
    pub fn new() -> Self {
        Self {
            rejected: Rejection::ALL.map(
                |rejection| metrics::counter!(GRPC_REJECTED_TOTAL, REASON => rejection.code()),
            ),
            shed: Shed::ALL
                .map(|reason| metrics::counter!(GRPC_SHED_TOTAL, REASON => reason.code())),
            concurrency_limit: metrics::gauge!(GRPC_CONCURRENCY_LIMIT),
            connections_refused: metrics::counter!(GRPC_CONNECTIONS_REFUSED_TOTAL),
        }
    }

    /// A gRPC call ended with `code`; counts it if that is a rejection.
    pub fn grpc_status(&self, code: tonic::Code) {
        if let Some(rejection) = Rejection::of(code) {
            self.rejected[rejection as usize].increment(1);
        }
    }

    /// A call was shed by admission control (its RESOURCE_EXHAUSTED is
    /// counted by [`GrpcMetrics::grpc_status`] too).
    pub fn shed(&self, reason: Shed) {
        self.shed[reason.index()].increment(1);
    }

    /// The admission limit on calls in flight is now `limit`.
    pub fn concurrency_limit(&self, limit: usize) {
        #[allow(clippy::cast_precision_loss)] // limits are far below 2^52
        self.concurrency_limit.set(limit as f64);
    }

    /// A connection was closed on accept.
    pub fn connection_refused(&self) {
        self.connections_refused.increment(1);
    }
}
