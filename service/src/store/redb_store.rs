//! [`RedbStore`]: customer state, decision log and budgets in one redb file
//! (`nudge.redb` in the data directory), written by the group-commit writer
//! ([`super::writer`]). It implements [`StateStore`], [`DecisionLog`] and
//! [`BudgetLedger`]; all three share the writer, so one fsync commits a
//! decision's state, log entry and budget change together.
//!
//! Tables:
//! - `customers`: customer id → state (MessagePack) as of its last
//!   settling; newer states are in the journal;
//! - `decisions`: (decision time ms, decision id) → [`DecisionRecord`];
//! - `outcomes`: (decision time ms, decision id, action id, outcome) →
//!   [`OutcomeRecord`], so a decision's outcomes sit next to each other and
//!   retention deletes both by time;
//! - `customer_decisions`: (customer id, decision time ms, decision id) → (),
//!   the index `forget` erases a customer's log entries by;
//! - `model_features`: model version → its feature specs;
//! - `budgets`: budgeted action id → units used so far (added in layout
//!   version 1 without a migration: opening an older file creates it empty);
//! - `journal`: key → one customer's changes in one commit (its state, the
//!   decisions logged for it), not yet settled into `customers` and
//!   `customer_decisions` ([`super::journal`]; added in layout version 2);
//! - `events`: (customer id, event number) → [`EventRecord`], the event
//!   log, one customer's events next to each other in the order applied;
//!   `event_times`: (applied at ms, customer id, event number) → (), the
//!   index retention deletes them by (both added in layout version 3);
//! - `meta`: `schema_version`.

use super::database::{
    BUDGETS, CUSTOMER_DECISIONS, CUSTOMERS, DECISIONS, EVENT_TIMES, EVENTS, Inner, JOURNAL,
    JOURNEY_TIMERS, MODEL_FEATURES, OUTCOMES, Pending, StoreOptions,
};
use super::journal;
use super::records::{decode, encode};
use super::source::{FaultSwitch, Source, io_error};
use super::writer::{self, EncodedChange, Op};
use super::{
    BudgetChange, BudgetLedger, Commit, DecisionLog, DecisionRecord, EventRecord, LogEntry,
    LoggedDecision, OutcomeRecord, StateChange, StateStore, StoreError, StoreFuture, TimeRange,
    TimerWrite,
};
use crate::metrics::StorageMetrics;
use dashmap::DashMap;
use nudge_models::customer::CustomerState;
use nudge_models::time::Timestamp;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use tokio::sync::oneshot;

/// The data file's name inside the data directory.
pub const DATA_FILE: &str = "nudge.redb";

/// The embedded durable store.
pub struct RedbStore {
    inner: Arc<Inner>,
    queue: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RedbStore")
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the store in `data_dir`.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        Self::start(Source::File(Self::prepare(data_dir)?), options)
    }

    /// Opens the store in `data_dir` with writes failing while `switch` is on.
    pub fn open_with_faults(
        data_dir: &Path,
        options: StoreOptions,
        switch: FaultSwitch,
    ) -> Result<Self, StoreError> {
        Self::start(Source::Faulty(Self::prepare(data_dir)?, switch), options)
    }

    /// A store in memory: the same code, nothing survives the process.
    pub fn in_memory(options: StoreOptions) -> Self {
        match Self::start(Source::Memory, options) {
            Ok(store) => store,
            // Creating an empty in-memory database does no I/O.
            Err(error) => unreachable!("in-memory store: {error}"),
        }
    }

    /// The data file in `data_dir`, creating the directory.
    fn prepare(data_dir: &Path) -> Result<PathBuf, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| io_error(data_dir, error))?;
        Ok(data_dir.join(DATA_FILE))
    }

    fn start(source: Source, options: StoreOptions) -> Result<Self, StoreError> {
        let database = source.open(options.cache_bytes)?;
        let inner = Arc::new(Inner {
            database: RwLock::new(Some(Arc::new(database))),
            source,
            options,
            pending: DashMap::new(),
            journaled: DashMap::new(),
            pending_budgets: Mutex::new(HashMap::new()),
            failure: Mutex::new(None),
            failing: AtomicBool::new(false),
            probe_queued: AtomicBool::new(false),
            sequence: AtomicU64::new(1),
            commits: AtomicU64::new(0),
            backlog: AtomicUsize::new(0),
            #[cfg(test)]
            hold_checkpoints: AtomicBool::new(false),
            metrics: StorageMetrics::new(),
        });
        let start = writer::initialize(&inner)?;
        let (sender, receiver) = mpsc::channel();
        let thread_inner = inner.clone();
        let writer = std::thread::Builder::new()
            .name("nudge-store-writer".to_owned())
            .spawn(move || writer::run(&thread_inner, &receiver, start))
            .map_err(|error| StoreError::NoWriter {
                source: Arc::new(error),
            })?;
        Ok(Self {
            inner,
            queue: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        })
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let queue = self.queue.lock().map_err(|_| StoreError::Closed)?;
        queue
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(op)
            .map_err(|_| StoreError::Closed)
    }

    /// Queues an op made by `make` with the sender of its answer, unless the
    /// store refuses writes.
    fn submit(&self, make: impl FnOnce(writer::Done) -> Op) -> Commit {
        if let Err(error) = self.inner.check_writable() {
            return Commit::done(Err(error));
        }
        self.enqueue(make)
    }

    /// Queues an op made by `make` with the sender of its answer; the caller
    /// has checked that the store accepts writes.
    fn enqueue(&self, make: impl FnOnce(writer::Done) -> Op) -> Commit {
        let (done, receiver) = oneshot::channel();
        match self.send(make(done)) {
            Ok(()) => Commit::pending(receiver),
            Err(error) => Commit::done(Err(error)),
        }
    }

    /// Queues the customer's state (`None`: its erasure), visible to `load`
    /// at once; the caller has checked that the store accepts writes.
    fn queue_state(
        &self,
        customer_id: &Arc<str>,
        state: Option<Arc<[u8]>>,
        change: Option<EncodedChange>,
        timer: TimerWrite,
    ) -> Commit {
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        self.inner.pending.insert(
            customer_id.clone(),
            Pending {
                sequence,
                state: state.clone(),
            },
        );
        self.enqueue(|done| Op::State {
            sequence,
            customer_id: customer_id.clone(),
            state,
            change,
            timer,
            done,
        })
    }

    /// Encodes the customer's state (and its change, if given) and queues
    /// them, unless the store refuses writes.
    fn write_encoded(
        &self,
        customer_id: &Arc<str>,
        state: &CustomerState,
        change: Option<StateChange<'_>>,
    ) -> Commit {
        if let Err(error) = self.inner.check_writable() {
            return Commit::done(Err(error));
        }
        let encoded = encode(state).and_then(|whole| {
            let change = change
                .map(|change| {
                    Ok::<_, StoreError>(EncodedChange {
                        delta: encode(change.delta)?,
                        writer: change.writer,
                        previous_writes: change.previous_writes,
                    })
                })
                .transpose()?;
            Ok((whole, change))
        });
        match encoded {
            Ok((whole, change)) => self.queue_state(
                customer_id,
                Some(Arc::from(whole)),
                change,
                TimerWrite::of(state),
            ),
            Err(error) => Commit::done(Err(error)),
        }
    }

    /// Commits what is queued and stops the writer; later writes fail with
    /// [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        let result = self.flush_queue();
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut writer| writer.take()) {
            let _ = writer.join();
        }
        result
    }

    /// Queues a probe for the writer unless one is queued already.
    fn queue_probe(&self) {
        if !self.inner.probe_queued.swap(true, Ordering::AcqRel) && self.send(Op::Probe).is_err() {
            self.inner.probe_queued.store(false, Ordering::Release);
        }
    }

    /// Waits until everything queued so far (state, log, budgets) is durable.
    fn flush_queue(&self) -> Result<(), StoreError> {
        let (done, receiver) = mpsc::channel();
        self.send(Op::Flush(done))?;
        receiver.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// With the write-ahead log, brings what it holds into the database
    /// before a read of the database's tables (an export, a count): what
    /// was acknowledged is in the answer. A store that refuses writes is
    /// read as it is.
    fn checkpoint_log(&self) {
        if self.inner.options.write_ahead && !matches!(self.inner.source, Source::Memory) {
            let _ = self.flush_queue();
        }
    }

    /// A read of the database with the write-ahead log checkpointed first,
    /// so it holds every write acknowledged so far.
    fn read_checkpointed(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.checkpoint_log();
        self.inner
            .database()?
            .begin_read()
            .map_err(|error| self.inner.error(error))
    }

    /// The state of `customer_id`, queued writes included.
    pub fn load_now(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError> {
        if let Some(pending) = self.inner.pending.get(customer_id) {
            let bytes = pending.state.clone();
            drop(pending);
            return bytes
                .map(|bytes| decode("customer state", &bytes))
                .transpose();
        }
        self.committed_state(customer_id)
    }

    /// Reads the stored (committed) state of `customer_id`, ignoring queued
    /// writes and the write-ahead log's frames not yet checkpointed.
    pub fn committed_state(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError> {
        self.inner.committed_state(customer_id)
    }

    /// Holds the checkpointer back before its next checkpoint until the
    /// guard is dropped (a test that fails while it holds them still ends:
    /// closing the store waits for the running checkpoint).
    #[cfg(test)]
    pub(super) fn hold_checkpoints(&self) -> CheckpointHold<'_> {
        self.inner.hold_checkpoints.store(true, Ordering::Release);
        CheckpointHold(self)
    }

    /// Commits made since the store was opened.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Every stored key that mentions `customer_id`, by table: what a test of
    /// `forget` reads to prove nothing is left.
    pub fn traces_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        let read = self.read_checkpointed()?;
        let error = |error: redb::StorageError| self.inner.error(error);
        let table_error = |error: redb::TableError| self.inner.error(error);
        let mut traces = Vec::new();
        let customers = read.open_table(CUSTOMERS).map_err(table_error)?;
        if customers.get(customer_id).map_err(error)?.is_some() {
            traces.push(format!("customers[{customer_id}]"));
        }
        let timers = read.open_table(JOURNEY_TIMERS).map_err(table_error)?;
        if timers.get(customer_id).map_err(error)?.is_some() {
            traces.push(format!("journey_timers[{customer_id}]"));
        }
        let decisions = read.open_table(DECISIONS).map_err(table_error)?;
        for entry in decisions.iter().map_err(error)? {
            let (key, value) = entry.map_err(error)?;
            let record: DecisionRecord = decode("decision", value.value())?;
            if record.customer_id == customer_id {
                traces.push(format!("decisions[{}]", key.value().1));
            }
        }
        let outcomes = read.open_table(OUTCOMES).map_err(table_error)?;
        for entry in outcomes.iter().map_err(error)? {
            let (key, value) = entry.map_err(error)?;
            let record: OutcomeRecord = decode("outcome", value.value())?;
            if record.customer_id == customer_id {
                traces.push(format!("outcomes[{}]", key.value().1));
            }
        }
        let index = read.open_table(CUSTOMER_DECISIONS).map_err(table_error)?;
        for entry in index.iter().map_err(error)? {
            let (key, _) = entry.map_err(error)?;
            if key.value().0 == customer_id {
                traces.push(format!("customer_decisions[{}]", key.value().2));
            }
        }
        let events = read.open_table(EVENTS).map_err(table_error)?;
        for entry in events.iter().map_err(error)? {
            let (key, _) = entry.map_err(error)?;
            let (customer, ordinal) = key.value();
            if customer == customer_id {
                traces.push(format!("events[{ordinal}]"));
            }
        }
        let event_times = read.open_table(EVENT_TIMES).map_err(table_error)?;
        for entry in event_times.iter().map_err(error)? {
            let (key, _) = entry.map_err(error)?;
            let (_, customer, ordinal) = key.value();
            if customer == customer_id {
                traces.push(format!("event_times[{ordinal}]"));
            }
        }
        let journal = read.open_table(JOURNAL).map_err(table_error)?;
        for entry in journal.iter().map_err(error)? {
            let (key, value) = entry.map_err(error)?;
            if journal::decode(value.value())?.customer_id == customer_id {
                traces.push(format!("journal[{}]", key.value()));
            }
        }
        Ok(traces)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl StateStore for RedbStore {
    /// Reads on the calling thread (a page-cache hit costs microseconds): the
    /// future is ready when returned.
    fn load<'a>(&'a self, customer_id: &'a str) -> StoreFuture<'a, Option<CustomerState>> {
        Box::pin(std::future::ready(self.load_now(customer_id)))
    }

    fn write(&self, customer_id: &Arc<str>, state: &CustomerState) -> Commit {
        self.write_encoded(customer_id, state, None)
    }

    /// Keeps the whole state for reads of queued writes and for a retry
    /// after a failed commit; the journal gets the change when it fits
    /// ([`super::journal`]).
    fn write_change(
        &self,
        customer_id: &Arc<str>,
        state: &CustomerState,
        change: StateChange<'_>,
    ) -> Commit {
        self.write_encoded(customer_id, state, Some(change))
    }

    fn forget(&self, customer_id: &Arc<str>) -> Commit {
        if let Err(error) = self.inner.check_writable() {
            return Commit::done(Err(error));
        }
        self.queue_state(customer_id, None, None, TimerWrite::Clear)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.inner.check_accepting()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_queue()
    }

    fn len(&self) -> Result<u64, StoreError> {
        let read = self.read_checkpointed()?;
        let table = read
            .open_table(CUSTOMERS)
            .map_err(|error| self.inner.error(error))?;
        let error = |error: redb::StorageError| self.inner.error(error);
        let mut stored = table.len().map_err(error)?;
        // Customers whose only state so far is in the journal.
        for journaled in self.inner.journaled.iter() {
            if table
                .get(journaled.key().as_ref())
                .map_err(error)?
                .is_none()
            {
                stored += 1;
            }
        }
        Ok(stored)
    }

    /// Reads the index as the last checkpoint left it, plus the writes
    /// since: the log is checkpointed first.
    fn journey_timers(&self) -> Result<Vec<(Arc<str>, Timestamp)>, StoreError> {
        let read = self.read_checkpointed()?;
        let table = read
            .open_table(JOURNEY_TIMERS)
            .map_err(|error| self.inner.error(error))?;
        let error = |error: redb::StorageError| self.inner.error(error);
        let mut timers = Vec::new();
        for entry in table.iter().map_err(error)? {
            let (customer_id, due) = entry.map_err(error)?;
            timers.push((Arc::from(customer_id.value()), Timestamp(due.value())));
        }
        Ok(timers)
    }

    fn probe(&self) {
        self.queue_probe();
    }
}

impl DecisionLog for RedbStore {
    fn append(&self, entries: Vec<LogEntry>) -> Commit {
        if entries.is_empty() {
            return Commit::none();
        }
        self.submit(|done| Op::Log { entries, done })
    }

    fn export(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, StoreError> {
        let read = self.read_checkpointed()?;
        let error = |error: redb::StorageError| self.inner.error(error);
        let table_error = |error: redb::TableError| self.inner.error(error);
        let decisions = read.open_table(DECISIONS).map_err(table_error)?;
        let outcomes = read.open_table(OUTCOMES).map_err(table_error)?;
        let models = read.open_table(MODEL_FEATURES).map_err(table_error)?;
        let since = range.since.map_or(i64::MIN, Timestamp::millis);
        let until = range.until.map_or(i64::MAX, Timestamp::millis);
        let mut feature_names: HashMap<String, Vec<String>> = HashMap::new();
        let mut visited = 0;
        for entry in decisions.range((since, "")..(until, "")).map_err(error)? {
            let (key, value) = entry.map_err(error)?;
            let (at, decision_id) = key.value();
            let record: DecisionRecord = decode("decision", value.value())?;
            let mut joined = Vec::new();
            for outcome in outcomes.range((at, decision_id, "", "")..).map_err(error)? {
                let (key, value) = outcome.map_err(error)?;
                let (outcome_at, outcome_decision, _, _) = key.value();
                if outcome_at != at || outcome_decision != decision_id {
                    break;
                }
                joined.push(decode::<OutcomeRecord>("outcome", value.value())?);
            }
            joined.sort_by_key(|outcome| outcome.at);
            let names = match &record.model_version {
                None => Vec::new(),
                Some(version) => match feature_names.get(version) {
                    Some(names) => names.clone(),
                    None => {
                        let names: Vec<String> =
                            match models.get(version.as_str()).map_err(error)? {
                                Some(value) => decode("model features", value.value())?,
                                None => Vec::new(),
                            };
                        feature_names.insert(version.clone(), names.clone());
                        names
                    }
                },
            };
            visited += 1;
            if !visit(LoggedDecision {
                record,
                feature_names: names,
                outcomes: joined,
            }) {
                break;
            }
        }
        Ok(visited)
    }

    fn export_events(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(EventRecord) -> bool,
    ) -> Result<u64, StoreError> {
        let read = self.read_checkpointed()?;
        let error = |error: redb::StorageError| self.inner.error(error);
        let events = read
            .open_table(EVENTS)
            .map_err(|error| self.inner.error(error))?;
        let since = range.since.map_or(i64::MIN, Timestamp::millis);
        let until = range.until.map_or(i64::MAX, Timestamp::millis);
        let mut visited = 0;
        for entry in events.iter().map_err(error)? {
            let (_, value) = entry.map_err(error)?;
            let record: EventRecord = decode("event", value.value())?;
            let at = record.received_at.millis();
            if at < since || at >= until {
                continue;
            }
            visited += 1;
            if !visit(record) {
                break;
            }
        }
        Ok(visited)
    }

    fn compact(&self, before: Timestamp, max: usize) -> Commit {
        self.submit(|done| Op::Compact { before, max, done })
    }

    fn forget(&self, customer_id: &Arc<str>) -> Commit {
        self.submit(|done| Op::ForgetLog {
            customer_id: customer_id.clone(),
            done,
        })
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.inner.check_accepting()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_queue()
    }

    fn probe(&self) {
        self.queue_probe();
    }
}

impl BudgetLedger for RedbStore {
    fn load(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let database = self.inner.database()?;
        let read = database
            .begin_read()
            .map_err(|error| self.inner.error(error))?;
        let table = read
            .open_table(BUDGETS)
            .map_err(|error| self.inner.error(error))?;
        let mut used: HashMap<String, u64> = HashMap::new();
        for entry in table.iter().map_err(|error| self.inner.error(error))? {
            let (key, value) = entry.map_err(|error| self.inner.error(error))?;
            used.insert(key.value().to_owned(), value.value());
        }
        // Changes queued but not yet committed count too.
        if let Ok(pending) = self.inner.pending_budgets.lock() {
            for (action_id, delta) in pending.iter() {
                let count = used.entry(action_id.clone()).or_insert(0);
                *count = count.saturating_add_signed(*delta);
            }
        }
        let mut used: Vec<(String, u64)> = used.into_iter().filter(|(_, n)| *n > 0).collect();
        used.sort();
        Ok(used)
    }

    fn record(&self, changes: Vec<BudgetChange>) -> Commit {
        if changes.is_empty() {
            return Commit::none();
        }
        if let Err(error) = self.inner.check_writable() {
            return Commit::done(Err(error));
        }
        if let Ok(mut pending) = self.inner.pending_budgets.lock() {
            for change in &changes {
                *pending.entry(change.action_id.clone()).or_insert(0) += change.delta;
            }
        }
        self.enqueue(|done| Op::Budget { changes, done })
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.inner.check_accepting()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_queue()
    }

    fn probe(&self) {
        self.queue_probe();
    }
}

/// Checkpoints held back while it lives ([`RedbStore::hold_checkpoints`]).
#[cfg(test)]
pub(super) struct CheckpointHold<'a>(&'a RedbStore);

#[cfg(test)]
impl Drop for CheckpointHold<'_> {
    fn drop(&mut self) {
        self.0
            .inner
            .hold_checkpoints
            .store(false, Ordering::Release);
    }
}
