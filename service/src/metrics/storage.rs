//! The store's handles: group commit (or write-ahead log append) and
//! checkpoint latency, writes made durable, failures,
//! the state journal's size and settling.

use super::{
    STORAGE_CHECKPOINT_SECONDS, STORAGE_COMMIT_SECONDS, STORAGE_FAILURES_TOTAL,
    STORAGE_JOURNAL_RECORDS, STORAGE_SETTLED_TOTAL, STORAGE_WRITES_TOTAL,
};
use metrics::{Counter, Gauge, Histogram};
use std::time::Duration;

/// The store's handles: registered when the store opens.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    commit: Histogram,
    checkpoint: Histogram,
    writes: Counter,
    failures: Counter,
    journal: Gauge,
    settled: Counter,
}

impl StorageMetrics {
    /// Handles on the installed recorder (no-ops without one).
    pub fn new() -> Self {
        Self {
            commit: metrics::histogram!(STORAGE_COMMIT_SECONDS),
            checkpoint: metrics::histogram!(STORAGE_CHECKPOINT_SECONDS),
            writes: metrics::counter!(STORAGE_WRITES_TOTAL),
            failures: metrics::counter!(STORAGE_FAILURES_TOTAL),
            journal: metrics::gauge!(STORAGE_JOURNAL_RECORDS),
            settled: metrics::counter!(STORAGE_SETTLED_TOTAL),
        }
    }

    /// The journal holds `records` after a commit that settled `settled`
    /// customers.
    pub fn journal(&self, records: usize, settled: usize) {
        self.journal.set(records as f64);
        self.settled.increment(settled as u64);
    }

    /// A commit of `writes` writes took `duration`.
    pub fn committed(&self, writes: usize, duration: Duration) {
        self.commit.record(duration.as_secs_f64());
        self.writes.increment(writes as u64);
    }

    /// A checkpoint (the write-ahead log's writes brought into the
    /// database, plus `writes` of its own: erasures, compactions) took
    /// `duration`.
    pub fn checkpointed(&self, writes: usize, duration: Duration) {
        self.checkpoint.record(duration.as_secs_f64());
        self.writes.increment(writes as u64);
    }

    /// A commit failed.
    pub fn failed(&self) {
        self.failures.increment(1);
    }
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self::new()
    }
}
