//! The group-commit writer: one thread owns every write transaction. It takes
//! every write queued while the previous commit ran (up to
//! `max_batch_writes`), applies them in queue order in one transaction, commits
//! it with one fsync, and only then answers each writer. A customer written
//! several times in one batch is stored once, with its last state.
//!
//! When a commit fails (a full disk, an I/O error) every write in the batch is
//! answered with the error, the store refuses new writes
//! ([`super::StateStore::check_writable`]), and the customers' latest
//! states stay queued: the writer retries them every [`RETRY_INTERVAL`],
//! reopening the database if redb asks for it, and accepts writes again once
//! a commit succeeds. Reads are served meanwhile.

use super::records::{decode, encode};
use super::redb_store::{
    BUDGETS, CUSTOMER_DECISIONS, CUSTOMERS, DECISIONS, Inner, META, MODEL_FEATURES, OUTCOMES,
    SCHEMA_VERSION,
};
use super::source::Source;
use super::{BudgetChange, DecisionRecord, Erased, LogEntry, StoreError};
use nudge_models::time::Timestamp;
use redb::{Durability, ReadableTable, Table, WriteTransaction};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often a failed store retries its queued writes.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// The latest queued state of a customer.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Queue order.
    pub(crate) sequence: u64,
    /// The encoded state; `None` when the customer is being forgotten.
    pub(crate) state: Option<Arc<[u8]>>,
}

/// Where a queued write is answered.
pub(super) type Done = oneshot::Sender<Result<Erased, StoreError>>;

/// What the writer is asked to do.
#[derive(Debug)]
pub(super) enum Op {
    /// Store (or, with `state: None`, erase) a customer's state.
    State {
        sequence: u64,
        customer_id: Arc<str>,
        state: Option<Arc<[u8]>>,
        done: Done,
    },
    /// Append decision-log entries.
    Log { entries: Vec<LogEntry>, done: Done },
    /// Erase a customer's decisions and outcomes.
    ForgetLog { customer_id: Arc<str>, done: Done },
    /// Change budget counters.
    Budget {
        changes: Vec<BudgetChange>,
        done: Done,
    },
    /// Delete at most `max` decisions before `before`.
    Compact {
        before: Timestamp,
        max: usize,
        done: Done,
    },
    /// Answer once everything queued before is durable.
    Flush(mpsc::Sender<Result<(), StoreError>>),
}

/// Creates the tables and checks the schema version.
pub(super) fn initialize(inner: &Inner) -> Result<(), StoreError> {
    let database = inner.database()?;
    let mut transaction = database.begin_write().map_err(|error| inner.error(error))?;
    transaction.set_quick_repair(true);
    {
        let table_error = |error: redb::TableError| inner.error(error);
        transaction.open_table(CUSTOMERS).map_err(table_error)?;
        transaction.open_table(DECISIONS).map_err(table_error)?;
        transaction.open_table(OUTCOMES).map_err(table_error)?;
        transaction
            .open_table(CUSTOMER_DECISIONS)
            .map_err(table_error)?;
        transaction
            .open_table(MODEL_FEATURES)
            .map_err(table_error)?;
        transaction.open_table(BUDGETS).map_err(table_error)?;
        let mut meta = transaction.open_table(META).map_err(table_error)?;
        let version = meta
            .get("schema_version")
            .map_err(|error| inner.error(error))?
            .map(|value| value.value());
        match version {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|error| inner.error(error))?;
            }
            Some(version) if version == SCHEMA_VERSION => {}
            Some(version) => {
                return Err(StoreError::UnknownLayout {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
        }
    }
    transaction.commit().map_err(|error| inner.error(error))
}

/// What a failed commit leaves to retry: each customer's latest state and
/// the budget deltas, committed as soon as the store works again.
#[derive(Debug, Default)]
struct Retained {
    states: HashMap<Arc<str>, RetainedState>,
    budgets: HashMap<String, i64>,
}

impl Retained {
    fn is_empty(&self) -> bool {
        self.states.is_empty() && self.budgets.is_empty()
    }

    fn keep_budgets(&mut self, changes: &[BudgetChange]) {
        for change in changes {
            *self.budgets.entry(change.action_id.clone()).or_insert(0) += change.delta;
        }
    }
}

/// A customer's state write that failed and waits to be retried.
#[derive(Debug)]
struct RetainedState {
    sequence: u64,
    state: Option<Arc<[u8]>>,
}

/// The writer thread's loop; returns when the queue is closed.
pub(super) fn run(inner: &Inner, queue: &mpsc::Receiver<Op>) {
    let mut retained = Retained::default();
    let mut models: HashSet<String> = HashSet::new();
    loop {
        // A failed commit leaves the store refusing writes until a retry
        // succeeds, whether or not it held customer writes to retry (a failed
        // compaction holds none).
        let failing = !retained.is_empty() || inner.current_failure().is_some();
        let first = if !failing {
            match queue.recv() {
                Ok(op) => Some(op),
                Err(_) => return,
            }
        } else {
            match queue.recv_timeout(RETRY_INTERVAL) {
                Ok(op) => Some(op),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
        if failing && !recover(inner, &mut retained) {
            // Still failing: answer what came in without touching the disk.
            if let Some(op) = first {
                refuse(inner, op, &mut retained);
            }
            while let Ok(op) = queue.try_recv() {
                refuse(inner, op, &mut retained);
            }
            continue;
        }
        let Some(first) = first else { continue };
        let mut batch = vec![first];
        while batch.len() < inner.options.max_batch_writes {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_batch(inner, batch, &mut retained, &mut models);
    }
}

/// Answers `op` with the current failure, keeping a state write and budget
/// changes for the retry.
fn refuse(inner: &Inner, op: Op, retained: &mut Retained) {
    let failure = inner
        .current_failure()
        .unwrap_or_else(|| StoreError::Reopening {
            location: inner.source.location(),
        });
    let done = match op {
        Op::State {
            sequence,
            customer_id,
            state,
            done,
        } => {
            retained
                .states
                .insert(customer_id, RetainedState { sequence, state });
            done
        }
        Op::Budget { changes, done } => {
            retained.keep_budgets(&changes);
            done
        }
        Op::Log { done, .. } | Op::ForgetLog { done, .. } | Op::Compact { done, .. } => done,
        Op::Flush(done) => {
            let _ = done.send(Err(failure));
            return;
        }
    };
    let _ = done.send(Err(failure));
}

/// Tries to commit the retained writes; true when the store works again.
///
/// After a failed write redb accepts reads but no more writes until the
/// database is opened again. Readers keep the old handle until a probe shows
/// that writing works again (space was freed); only then is the database
/// reopened and the retained writes committed.
fn recover(inner: &Inner, retained: &mut Retained) -> bool {
    let attempt = || -> Result<(), StoreError> {
        inner.source.probe_writable()?;
        close_database(inner);
        let database = reopen(inner)?;
        let transaction = begin(inner, &database)?;
        {
            let mut tables = Tables::open(inner, &transaction)?;
            for (customer_id, write) in &retained.states {
                match &write.state {
                    Some(state) => tables.put_state(customer_id, state)?,
                    None => {
                        tables.forget_state(customer_id)?;
                    }
                }
            }
            for (action_id, delta) in &retained.budgets {
                tables.change_budget(action_id, *delta)?;
            }
        }
        transaction.commit().map_err(|error| inner.error(error))
    };
    match attempt() {
        Ok(()) => {
            for (customer_id, write) in retained.states.drain() {
                inner.pending.remove_if(&customer_id, |_, pending| {
                    pending.sequence == write.sequence
                });
            }
            settle_budgets(inner, retained.budgets.drain());
            inner.set_failure(None);
            tracing::info!("storage recovered: writes are accepted again");
            true
        }
        Err(error) => {
            inner.set_failure(Some(error));
            false
        }
    }
}

/// Takes committed budget deltas out of the pending ones.
fn settle_budgets(inner: &Inner, committed: impl IntoIterator<Item = (String, i64)>) {
    if let Ok(mut pending) = inner.pending_budgets.lock() {
        for (action_id, delta) in committed {
            if let Some(left) = pending.get_mut(&action_id) {
                *left -= delta;
                if *left == 0 {
                    pending.remove(&action_id);
                }
            }
        }
    }
}

/// Drops the shared database handle; redb closes the file when the last
/// reader's handle is dropped too.
fn close_database(inner: &Inner) {
    if let Ok(mut database) = inner.database.write() {
        database.take();
    }
}

/// Opens the database again after [`close_database`].
fn reopen(inner: &Inner) -> Result<Arc<redb::Database>, StoreError> {
    let database = Arc::new(inner.source.open(inner.options.cache_bytes)?);
    if let Ok(mut shared) = inner.database.write() {
        *shared = Some(database.clone());
    }
    Ok(database)
}

/// A durable write transaction with quick repair: each commit also records
/// the allocator state (two-phase commit, a second fsync), so the start after
/// a crash reads it instead of walking the whole file — a restart on a million
/// customers stays in milliseconds. Measured on the dev VM it costs ~12 % of
/// ingest throughput (49k vs 56k events/s at 128 in flight,
/// `bench/results/storage.md`).
fn begin(inner: &Inner, database: &redb::Database) -> Result<WriteTransaction, StoreError> {
    let mut transaction = database.begin_write().map_err(|error| inner.error(error))?;
    // In memory there is no crash to recover from.
    transaction.set_quick_repair(!matches!(inner.source, Source::Memory));
    transaction
        .set_durability(Durability::Immediate)
        .map_err(|error| StoreError::Backend {
            location: inner.source.location(),
            source: Arc::new(error),
        })?;
    Ok(transaction)
}

/// Commits one batch and answers its writers.
fn commit_batch(
    inner: &Inner,
    batch: Vec<Op>,
    retained: &mut Retained,
    models: &mut HashSet<String>,
) {
    let started = Instant::now();
    let mut answers: Vec<(Done, Erased)> = Vec::with_capacity(batch.len());
    let mut flushes = Vec::new();
    let mut states: HashMap<Arc<str>, RetainedState> = HashMap::new();
    let mut budgets: HashMap<String, i64> = HashMap::new();
    let mut new_models = Vec::new();
    let mut writes = 0;
    let applied = (|| -> Result<(), StoreError> {
        let database = inner.database()?;
        let transaction = begin(inner, &database)?;
        {
            let mut tables = Tables::open(inner, &transaction)?;
            for op in batch {
                match op {
                    Op::State {
                        sequence,
                        customer_id,
                        state,
                        done,
                    } => {
                        let mut erased = Erased::default();
                        if state.is_none() {
                            erased.state = tables.forget_state(&customer_id)?;
                        }
                        writes += 1;
                        states.insert(customer_id, RetainedState { sequence, state });
                        answers.push((done, erased));
                    }
                    Op::Log { entries, done } => {
                        writes += entries.len();
                        for entry in entries {
                            if let Some(version) = tables.append(entry, models)? {
                                new_models.push(version);
                            }
                        }
                        answers.push((done, Erased::default()));
                    }
                    Op::ForgetLog { customer_id, done } => {
                        let erased = tables.forget_log(&customer_id)?;
                        answers.push((done, erased));
                    }
                    Op::Budget { changes, done } => {
                        writes += changes.len();
                        for change in changes {
                            *budgets.entry(change.action_id).or_insert(0) += change.delta;
                        }
                        answers.push((done, Erased::default()));
                    }
                    Op::Compact { before, max, done } => {
                        let deleted = tables.compact(before, max)?;
                        answers.push((
                            done,
                            Erased {
                                decisions: deleted,
                                ..Erased::default()
                            },
                        ));
                    }
                    Op::Flush(done) => flushes.push(done),
                }
            }
            // A customer written several times in the batch is stored once.
            for (customer_id, write) in &states {
                if let Some(state) = &write.state {
                    tables.put_state(customer_id, state)?;
                }
            }
            for (action_id, delta) in &budgets {
                tables.change_budget(action_id, *delta)?;
            }
        }
        transaction.commit().map_err(|error| inner.error(error))
    })();
    match applied {
        Ok(()) => {
            for (customer_id, write) in states {
                inner.pending.remove_if(&customer_id, |_, pending| {
                    pending.sequence == write.sequence
                });
            }
            settle_budgets(inner, budgets);
            for (done, erased) in answers {
                let _ = done.send(Ok(erased));
            }
            for done in flushes {
                let _ = done.send(Ok(()));
            }
            inner.metrics.committed(writes, started.elapsed());
        }
        Err(error) => {
            models.retain(|version| !new_models.contains(version));
            tracing::error!(%error, "storage commit failed; writes are refused until it recovers");
            inner.set_failure(Some(error.clone()));
            inner.metrics.failed();
            retained.states.extend(states);
            for (action_id, delta) in budgets {
                *retained.budgets.entry(action_id).or_insert(0) += delta;
            }
            for (done, _) in answers {
                let _ = done.send(Err(error.clone()));
            }
            for done in flushes {
                let _ = done.send(Err(error.clone()));
            }
        }
    }
}

/// Every table, opened once per transaction.
struct Tables<'t> {
    inner: &'t Inner,
    customers: Table<'t, &'static str, &'static [u8]>,
    decisions: Table<'t, (i64, &'static str), &'static [u8]>,
    outcomes: Table<'t, (i64, &'static str, &'static str, &'static str), &'static [u8]>,
    index: Table<'t, (&'static str, i64, &'static str), ()>,
    models: Table<'t, &'static str, &'static [u8]>,
    budgets: Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(inner: &'t Inner, transaction: &'t WriteTransaction) -> Result<Self, StoreError> {
        let table_error = |error: redb::TableError| inner.error(error);
        Ok(Self {
            inner,
            customers: transaction.open_table(CUSTOMERS).map_err(table_error)?,
            decisions: transaction.open_table(DECISIONS).map_err(table_error)?,
            outcomes: transaction.open_table(OUTCOMES).map_err(table_error)?,
            index: transaction
                .open_table(CUSTOMER_DECISIONS)
                .map_err(table_error)?,
            models: transaction
                .open_table(MODEL_FEATURES)
                .map_err(table_error)?,
            budgets: transaction.open_table(BUDGETS).map_err(table_error)?,
        })
    }

    fn error(&self, error: redb::StorageError) -> StoreError {
        self.inner.error(error)
    }

    /// Adds `delta` to an action's budget counter, never below zero.
    fn change_budget(&mut self, action_id: &str, delta: i64) -> Result<(), StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let used = self
            .budgets
            .get(action_id)
            .map_err(error)?
            .map_or(0, |value| value.value());
        let used = used.saturating_add_signed(delta);
        if used == 0 {
            self.budgets.remove(action_id).map_err(error)?;
        } else {
            self.budgets.insert(action_id, used).map_err(error)?;
        }
        Ok(())
    }

    fn put_state(&mut self, customer_id: &str, state: &[u8]) -> Result<(), StoreError> {
        self.customers
            .insert(customer_id, state)
            .map_err(|error| self.inner.error(error))?;
        Ok(())
    }

    /// Adds one log entry; returns a model version whose feature names were
    /// stored for the first time.
    fn append(
        &mut self,
        entry: LogEntry,
        models: &mut HashSet<String>,
    ) -> Result<Option<String>, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        match entry {
            LogEntry::Decision {
                record,
                feature_names,
            } => {
                let at = record.at.millis();
                let bytes = encode(&record)?;
                self.decisions
                    .insert((at, record.decision_id.as_str()), bytes.as_slice())
                    .map_err(error)?;
                self.index
                    .insert(
                        (record.customer_id.as_str(), at, record.decision_id.as_str()),
                        (),
                    )
                    .map_err(error)?;
                match (&record.model_version, feature_names) {
                    (Some(version), Some(names)) if !models.contains(version) => {
                        if self.models.get(version.as_str()).map_err(error)?.is_none() {
                            let bytes = encode(&names.to_vec())?;
                            self.models
                                .insert(version.as_str(), bytes.as_slice())
                                .map_err(error)?;
                        }
                        models.insert(version.clone());
                        Ok(Some(version.clone()))
                    }
                    _ => Ok(None),
                }
            }
            LogEntry::Outcome(record) => {
                let bytes = encode(&record)?;
                self.outcomes
                    .insert(
                        (
                            record.decision_at.millis(),
                            record.decision_id.as_str(),
                            record.action_id.as_str(),
                            record.outcome.name(),
                        ),
                        bytes.as_slice(),
                    )
                    .map_err(error)?;
                Ok(None)
            }
        }
    }

    /// Deletes the outcomes of the decision at (`at`, `decision_id`); returns
    /// how many.
    fn delete_outcomes(&mut self, at: i64, decision_id: &str) -> Result<u64, StoreError> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for entry in self
            .outcomes
            .range((at, decision_id, "", "")..)
            .map_err(|error| self.error(error))?
        {
            let (key, _) = entry.map_err(|error| self.error(error))?;
            let (outcome_at, outcome_decision, action, outcome) = key.value();
            if outcome_at != at || outcome_decision != decision_id {
                break;
            }
            keys.push((action.to_owned(), outcome.to_owned()));
        }
        for (action, outcome) in &keys {
            self.outcomes
                .remove((at, decision_id, action.as_str(), outcome.as_str()))
                .map_err(|error| self.inner.error(error))?;
        }
        Ok(keys.len() as u64)
    }

    /// Deletes one decision with its outcomes and index entry.
    fn delete_decision(
        &mut self,
        at: i64,
        decision_id: &str,
        customer_id: &str,
    ) -> Result<(bool, u64), StoreError> {
        let inner = self.inner;
        let removed = self
            .decisions
            .remove((at, decision_id))
            .map_err(|error| inner.error(error))?
            .is_some();
        let outcomes = self.delete_outcomes(at, decision_id)?;
        self.index
            .remove((customer_id, at, decision_id))
            .map_err(|error| inner.error(error))?;
        Ok((removed, outcomes))
    }

    /// Erases the customer's state; whether any was stored.
    fn forget_state(&mut self, customer_id: &str) -> Result<bool, StoreError> {
        let inner = self.inner;
        Ok(self
            .customers
            .remove(customer_id)
            .map_err(|error| inner.error(error))?
            .is_some())
    }

    /// Erases the customer's decisions and outcomes.
    fn forget_log(&mut self, customer_id: &str) -> Result<Erased, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let mut erased = Erased::default();
        let mut logged: Vec<(i64, String)> = Vec::new();
        for entry in self
            .index
            .range((customer_id, i64::MIN, "")..)
            .map_err(error)?
        {
            let (key, _) = entry.map_err(error)?;
            let (customer, at, decision_id) = key.value();
            if customer != customer_id {
                break;
            }
            logged.push((at, decision_id.to_owned()));
        }
        for (at, decision_id) in &logged {
            let (removed, outcomes) = self.delete_decision(*at, decision_id, customer_id)?;
            erased.decisions += u64::from(removed);
            erased.outcomes += outcomes;
        }
        Ok(erased)
    }

    /// Deletes up to `max` decisions made before `before`, with their
    /// outcomes and index entries; returns how many decisions.
    fn compact(&mut self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let mut old: Vec<(i64, String, String)> = Vec::new();
        for entry in self
            .decisions
            .range(..(before.millis(), ""))
            .map_err(error)?
            .take(max)
        {
            let (key, value) = entry.map_err(error)?;
            let (at, decision_id) = key.value();
            let record: DecisionRecord = decode("decision", value.value())?;
            old.push((at, decision_id.to_owned(), record.customer_id));
        }
        for (at, decision_id, customer_id) in &old {
            self.delete_decision(*at, decision_id, customer_id)?;
        }
        Ok(old.len() as u64)
    }
}
