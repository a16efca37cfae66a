//! Durable state behind three narrow traits, one per responsibility:
//!
//! - [`StateStore`]: one customer's state, loaded when its actor activates and
//!   written after every change;
//! - [`DecisionLog`]: the decision and outcome records ([`nudge_models::log`])
//!   and the applied events (the event log, for point-in-time replay),
//!   appended, exported by time range, compacted by retention, erased by
//!   `forget`;
//! - [`BudgetLedger`]: the global per-action budget counters shared by every
//!   customer, changed by deltas.
//!
//! Each is a seam for another backend (Redis Cluster later): none needs a
//! transaction spanning customers nor a snapshot of the whole database, and
//! every write answers with a [`Commit`] that resolves once it is durable. A
//! caller acknowledges a change only after its commits resolve. [`contract`]
//! holds the behaviour every implementation must show, as functions generic
//! over the traits; each backend's tests run them.
//!
//! The embedded backend, [`RedbStore`], implements all three over one redb
//! file in the data directory. Writes are queued and committed by one writer
//! thread in groups: everything queued while a commit runs goes into the next
//! transaction, so one fsync acknowledges many customers' writes
//! ([`writer`]). Until then a queued state is what [`StateStore::load`]
//! returns, so a customer reactivated right after passivation never sees
//! older state.

mod commit;
pub mod contract;
mod database;
mod error;
mod journal;
mod records;
mod redb_store;
pub mod redis;
mod source;
mod tables;
mod wal;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_ahead_tests;

pub use commit::{Commit, Erased};
pub use database::StoreOptions;
pub use error::{Cause, Damage, StoreError};
pub use nudge_models::log::{
    DecisionRecord, EventRecord, LogEntry, LoggedDecision, OutcomeRecord, ServedRecord,
};
pub use redb_store::{DATA_FILE, RedbStore};
pub use source::FaultSwitch;

/// Runs `f`, handing the writes it queues on this thread to their store
/// together when it returns: one change's state, log entries and budget
/// changes then travel in one round trip to a store that sends each write
/// as it comes (Redis); the embedded store groups them in its commit
/// anyway.
pub fn together<T>(f: impl FnOnce() -> T) -> T {
    redis::together(f)
}

use nudge_models::customer::CustomerState;
use nudge_models::delta::StateDelta;
use nudge_models::time::Timestamp;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Most decisions one [`DecisionLog::compact`] call deletes by default, so
/// that a retention pass never holds writes up for long.
pub const COMPACTION_CHUNK: usize = 10_000;

/// A future of a storage call.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A range of decision times, `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound; `None`: from the oldest.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound; `None`: to the newest.
    pub until: Option<Timestamp>,
}

/// A state write's difference from the state its writer wrote (or loaded)
/// before ([`StateStore::write_change`]).
#[derive(Debug, Clone, Copy)]
pub struct StateChange<'a> {
    /// The difference.
    pub delta: &'a StateDelta,
    /// Who writes: one activation of the customer, unique among the
    /// customer's activations in this process.
    pub writer: u64,
    /// Writes that writer made before this one, refused ones included (0:
    /// the change is from the state it loaded).
    pub previous_writes: u64,
}

/// What a state write does to the customer's entry in the journey timer
/// index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerWrite {
    /// Nothing: the customer was never in a journey.
    Untouched,
    /// Its earliest run in progress is due then (ms).
    Set(i64),
    /// No run in progress.
    Clear,
}

impl TimerWrite {
    /// What writing `state` does to the index.
    pub(crate) fn of(state: &CustomerState) -> Self {
        if state.journeys.runs.is_empty() {
            return Self::Untouched;
        }
        state
            .journeys
            .earliest_due()
            .map_or(Self::Clear, |due| Self::Set(due.millis()))
    }
}

/// One customer's state, by customer id.
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The state of `customer_id`, including writes queued but not yet
    /// committed; `None` if nothing is stored.
    fn load<'a>(&'a self, customer_id: &'a str) -> StoreFuture<'a, Option<CustomerState>>;

    /// Queues the customer's new state. Writes of one customer commit in the
    /// order they were queued. Fails at once, queueing nothing, while the
    /// store refuses writes (see [`StateStore::check_writable`]).
    fn write(&self, customer_id: &Arc<str>, state: &CustomerState) -> Commit;

    /// Queues the customer's new state like [`StateStore::write`], with
    /// `change`, its difference from the state the same writer wrote (or
    /// loaded) before: a store may keep the change instead of the whole
    /// state when it knows that state. The default ignores the change.
    fn write_change(
        &self,
        customer_id: &Arc<str>,
        state: &CustomerState,
        change: StateChange<'_>,
    ) -> Commit {
        let _ = change;
        self.write(customer_id, state)
    }

    /// Queues the erasure of the customer's state; the commit says whether
    /// any was stored ([`Erased::state`]).
    fn forget(&self, customer_id: &Arc<str>) -> Commit;

    /// Whether writes are accepted now; the error says why not (e.g. the disk
    /// is full). Checked before a call changes anything.
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Waits until every write queued so far is durable. Blocking.
    fn flush(&self) -> Result<(), StoreError>;

    /// Number of stored customers. Blocking.
    fn len(&self) -> Result<u64, StoreError>;

    /// Every stored customer with a journey run in progress, and when its
    /// earliest run is due (paused journeys' runs included): the index the
    /// journey timers start from, so a timer due while the service was down
    /// fires when it is up. Blocking.
    fn journey_timers(&self) -> Result<Vec<(Arc<str>, Timestamp)>, StoreError>;

    /// Whether no customer is stored. Blocking.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// While writes are refused, asks the store (without waiting) to check
    /// whether they work again, and if so to commit what it retained and
    /// accept writes. Whoever owns the store calls it periodically: the
    /// server does so on its clock while [`Stores::check_writable`] fails.
    fn probe(&self) {}
}

/// The decision log: decisions and their outcomes, ordered by decision time,
/// and the event log: every applied event, numbered per customer.
pub trait DecisionLog: Send + Sync + fmt::Debug {
    /// Queues log entries. An outcome is joined to its decision by
    /// (decision time, decision id); an event is kept under its customer
    /// and number.
    fn append(&self, entries: Vec<LogEntry>) -> Commit;

    /// Calls `visit` with every logged decision in `range`, oldest first,
    /// joined with its outcomes (in the order they happened), until it returns
    /// false; returns how many were visited. Streams: memory does not grow
    /// with the range. Blocking: run it off the async runtime's threads.
    fn export(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, StoreError>;

    /// Calls `visit` with every logged event applied in `range` (by the time
    /// the service applied it), customer by customer and each customer's in
    /// order, until it returns false; returns how many were visited.
    /// Streams. Blocking: run it off the async runtime's threads.
    fn export_events(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(EventRecord) -> bool,
    ) -> Result<u64, StoreError>;

    /// Deletes at most `max` decisions made before `before`, oldest first,
    /// with their outcomes, and at most `max` events applied before it; the
    /// commit counts them ([`Erased::decisions`], [`Erased::events`]). Fewer
    /// than `max` of both means none older is left.
    fn compact(&self, before: Timestamp, max: usize) -> Commit;

    /// Queues the erasure of every decision, outcome and event of
    /// `customer_id`; the commit counts them.
    fn forget(&self, customer_id: &Arc<str>) -> Commit;

    /// Whether appends are accepted now.
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Waits until every entry queued so far is durable. Blocking.
    fn flush(&self) -> Result<(), StoreError>;

    /// While writes are refused, asks the store (without waiting) to check
    /// whether they work again, and if so to commit what it retained and
    /// accept writes. Whoever owns the store calls it periodically: the
    /// server does so on its clock while [`Stores::check_writable`] fails.
    fn probe(&self) {}
}

/// One change of a global budget counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetChange {
    /// The budgeted action.
    pub action_id: String,
    /// +1 for a unit taken by a served decision, -1 for one given back by a
    /// `failed` outcome.
    pub delta: i64,
}

/// The global per-action budget counters: units used so far across every
/// customer. Changes are deltas, so they commute and need no transaction
/// spanning customers.
pub trait BudgetLedger: Send + Sync + fmt::Debug {
    /// Every counter, as stored (queued changes included). Read once at start.
    /// Blocking.
    fn load(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Queues changes; a counter never goes below zero.
    fn record(&self, changes: Vec<BudgetChange>) -> Commit;

    /// Whether changes are accepted now.
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Waits until every change queued so far is durable. Blocking.
    fn flush(&self) -> Result<(), StoreError>;

    /// While writes are refused, asks the store (without waiting) to check
    /// whether they work again, and if so to commit what it retained and
    /// accept writes. Whoever owns the store calls it periodically: the
    /// server does so on its clock while [`Stores::check_writable`] fails.
    fn probe(&self) {}
}

/// Whether `checked` is a refusal that lasts until the store recovers.
fn failing(checked: Result<(), StoreError>) -> bool {
    matches!(checked, Err(error) if !matches!(error, StoreError::Behind { .. }))
}

/// The three stores the service runs on.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Customer state.
    pub state: Arc<dyn StateStore>,
    /// The decision log.
    pub log: Arc<dyn DecisionLog>,
    /// Global budgets.
    pub budgets: Arc<dyn BudgetLedger>,
}

impl Stores {
    /// Whether every store accepts writes now: a change is refused before it
    /// changes anything when one does not.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        self.state.check_writable()?;
        self.log.check_writable()?;
        self.budgets.check_writable()
    }

    /// Asks every store whose writes fail to check whether they work
    /// again (see [`StateStore::probe`]); a store only catching up on its
    /// checkpoints ([`StoreError::Behind`]) needs no probe.
    pub fn probe(&self) {
        if failing(self.state.check_writable()) {
            self.state.probe();
        }
        if failing(self.log.check_writable()) {
            self.log.probe();
        }
        if failing(self.budgets.check_writable()) {
            self.budgets.probe();
        }
    }

    /// Whether some store refuses writes until it recovers (a full disk,
    /// Redis unreachable), as opposed to one only catching up on its
    /// checkpoints for a moment ([`StoreError::Behind`]).
    pub fn failing(&self) -> bool {
        failing(self.state.check_writable())
            || failing(self.log.check_writable())
            || failing(self.budgets.check_writable())
    }

    /// Waits until everything queued in every store is durable. Blocking.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.state.flush()?;
        self.log.flush()?;
        self.budgets.flush()
    }
}

impl From<Arc<RedbStore>> for Stores {
    /// The embedded store serves all three roles.
    fn from(store: Arc<RedbStore>) -> Self {
        Self {
            state: store.clone(),
            log: store.clone(),
            budgets: store,
        }
    }
}
