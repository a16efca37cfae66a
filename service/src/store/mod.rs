//! Customer state and the decision log behind one narrow trait,
//! [`CustomerStore`]: the seam for the embedded durable store and, later, a
//! Redis-backed cluster mode.
//!
//! The embedded store ([`RedbStore`]) keeps everything in one redb file in the
//! data directory. Writes are queued by the customer actors and committed by
//! one writer thread in groups: every write queued while a commit runs goes
//! into the next transaction, so one fsync acknowledges many customers' writes
//! ([`writer`]). A caller is answered only when its write is durable
//! ([`Commit::wait`]). Until then the queued state is what [`CustomerStore::load`]
//! returns, so a customer reactivated right after passivation never sees older
//! state.

mod records;
mod redb_store;
mod writer;

#[cfg(test)]
mod tests;

pub use records::{DecisionRecord, LogEntry, LoggedDecision, OutcomeRecord, ServedRecord};
pub use redb_store::{DATA_FILE, FaultSwitch, RedbStore, StoreOptions};
pub use writer::COMPACTION_CHUNK;

use nudge_models::customer::CustomerState;
use nudge_models::time::Timestamp;
use std::fmt;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the backend) has no space left: writes are refused until
    /// space is freed; reads keep working.
    #[error("storage is full, writes are refused until space is freed: {0}")]
    Full(String),
    /// The backend failed to read or write.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back.
    #[error("storage corrupted: {0}")]
    Corrupted(String),
    /// A record could not be encoded.
    #[error("storage encoding failed: {0}")]
    Encode(String),
    /// The store is shut down.
    #[error("storage is closed")]
    Closed,
}

/// What a committed write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Whether customer state was stored.
    pub state: bool,
    /// Decision log entries deleted.
    pub decisions: u64,
    /// Outcome log entries deleted.
    pub outcomes: u64,
}

/// The acknowledgement of a queued write: resolves once it is durable.
#[derive(Debug)]
pub struct Commit(CommitState);

#[derive(Debug)]
enum CommitState {
    Done(Result<Erased, StoreError>),
    Pending(oneshot::Receiver<Result<Erased, StoreError>>),
}

impl Commit {
    /// An already committed (or failed) write.
    pub fn done(result: Result<Erased, StoreError>) -> Self {
        Self(CommitState::Done(result))
    }

    /// A write resolved by the writer through `receiver`.
    pub(crate) fn pending(receiver: oneshot::Receiver<Result<Erased, StoreError>>) -> Self {
        Self(CommitState::Pending(receiver))
    }

    /// Waits until the write is durable; what it erased (for a forget).
    pub async fn wait(self) -> Result<Erased, StoreError> {
        match self.0 {
            CommitState::Done(result) => result,
            CommitState::Pending(receiver) => receiver.await.unwrap_or(Err(StoreError::Closed)),
        }
    }
}

/// A range of decision times, `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound; `None`: from the oldest.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound; `None`: to the newest.
    pub until: Option<Timestamp>,
}

/// Where customer state and the decision log live.
pub trait CustomerStore: Send + Sync + fmt::Debug {
    /// The state of `customer_id`, including writes queued but not yet
    /// committed.
    fn load(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError>;

    /// Queues the customer's new state with its decision-log entries, in one
    /// atomic write. Writes of one customer commit in the order they were
    /// queued. Fails at once, queueing nothing, while the store refuses
    /// writes (see [`CustomerStore::check_writable`]).
    fn write(&self, customer_id: &Arc<str>, state: &CustomerState, log: Vec<LogEntry>) -> Commit;

    /// Queues the erasure of everything about `customer_id`: state, decisions
    /// and outcomes.
    fn forget(&self, customer_id: &Arc<str>) -> Commit;

    /// Whether writes are accepted now; the error says why not (e.g. the disk
    /// is full). Checked before a call changes anything.
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Calls `visit` with every logged decision in `range`, oldest first,
    /// joined with its outcomes, from one consistent snapshot; stops early when
    /// `visit` returns false. Returns how many were visited.
    fn export(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, StoreError>;

    /// Deletes decisions made before `before`, with their outcomes; returns how
    /// many decisions were deleted.
    fn compact(&self, before: Timestamp) -> Commit;

    /// Waits until every write queued so far is durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Number of stored customers.
    fn len(&self) -> Result<u64, StoreError>;

    /// Whether no customer is stored.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}
