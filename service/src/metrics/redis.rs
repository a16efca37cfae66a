//! The Redis store's handles: round trips by operation and their latency,
//! fencing refusals, lease changes, partitions owned. Round trips are also
//! counted in plain atomics, so the bench can read them per call without a
//! recorder.

use super::{
    CALL, CHANGE, CLUSTER_FENCING_REFUSALS_TOTAL, CLUSTER_FORWARDS_TOTAL,
    CLUSTER_LEASE_CHANGES_TOTAL, CLUSTER_PARTITIONS_OWNED, OPERATION, REDIS_ROUND_TRIP_SECONDS,
    RESULT,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The operations whose round trips are counted, in [`RedisMetrics::round_trips`] order.
pub const REDIS_OPERATIONS: [&str; 7] =
    ["apply", "lease", "wait", "load", "export", "scan", "other"];

/// The Redis store's handles.
#[derive(Debug, Default)]
pub struct RedisMetrics {
    round_trips: [AtomicU64; REDIS_OPERATIONS.len()],
}

impl RedisMetrics {
    /// The handles, with every series registered at zero so a node on the
    /// Redis store exports them (and alerts can rate them) before the first
    /// lease change or forward.
    pub fn registered() -> Self {
        for operation in REDIS_OPERATIONS {
            let _ = metrics::histogram!(REDIS_ROUND_TRIP_SECONDS, OPERATION => operation);
        }
        metrics::counter!(CLUSTER_FENCING_REFUSALS_TOTAL).increment(0);
        for change in ["acquired", "lost", "released"] {
            metrics::counter!(CLUSTER_LEASE_CHANGES_TOTAL, CHANGE => change).increment(0);
        }
        metrics::gauge!(CLUSTER_PARTITIONS_OWNED).set(0.0);
        Self::default()
    }

    /// A round trip of `operation` took `duration`.
    pub fn record(&self, operation: &'static str, duration: Duration) {
        let index = REDIS_OPERATIONS
            .iter()
            .position(|known| *known == operation)
            .unwrap_or(REDIS_OPERATIONS.len() - 1);
        self.round_trips[index].fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(REDIS_ROUND_TRIP_SECONDS, OPERATION => REDIS_OPERATIONS[index])
            .record(duration.as_secs_f64());
    }

    /// Round trips made so far, by operation.
    pub fn round_trips(&self) -> Vec<(&'static str, u64)> {
        REDIS_OPERATIONS
            .iter()
            .zip(&self.round_trips)
            .map(|(operation, count)| (*operation, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// A write was refused for its stale fencing token.
    pub fn fenced(&self) {
        metrics::counter!(CLUSTER_FENCING_REFUSALS_TOTAL).increment(1);
    }

    /// A lease was `change`d (`acquired`, `lost`, `released`); this node
    /// now holds `owned` partitions.
    pub fn lease_changed(&self, change: &'static str, owned: usize) {
        metrics::counter!(CLUSTER_LEASE_CHANGES_TOTAL, CHANGE => change).increment(1);
        metrics::gauge!(CLUSTER_PARTITIONS_OWNED).set(owned as f64);
    }
}

/// A `call` was forwarded to its customer's owner and answered (`ok`) or
/// not.
pub fn forwarded(call: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(CLUSTER_FORWARDS_TOTAL, CALL => call, RESULT => result).increment(1);
}
