//! The group-commit writer: one thread owns every write transaction. It takes
//! every write queued while the previous commit ran (up to
//! `max_batch_writes`), applies them in queue order in one transaction, commits
//! it with one fsync, and only then answers each writer. A customer written
//! several times in one batch is stored once, with its last state.
//!
//! When a commit fails (a full disk, an I/O error) every write in the batch is
//! answered with the error, the store refuses new writes
//! ([`super::StateStore::check_writable`]), and the customers' latest
//! states stay queued: the writer retries them when asked to probe
//! ([`Op::Probe`]: the server does so on its clock while the store fails),
//! reopening the database if redb asks for it, and accepts writes again once
//! a commit succeeds. Reads are served meanwhile.

use super::database::{
    BUDGETS, CUSTOMER_DECISIONS, CUSTOMERS, DECISIONS, EVENT_TIMES, EVENTS, Inner, JOURNAL,
    JOURNEY_TIMERS, META, MODEL_FEATURES, OUTCOMES, SCHEMA_VERSION, WAL_APPLIED,
};
mod ahead;
mod recovery;
mod replay;
mod retained;

use super::journal::{self, Journal, State, Unsettled};
use super::source::Source;
use super::tables::Tables;
use super::{BudgetChange, Erased, LogEntry, StoreError, TimerWrite};
use ahead::Ahead;
use nudge_models::time::Timestamp;
use recovery::{Publish, read_journal, recover};
use redb::{Durability, ReadableTable, WriteTransaction};
use retained::{Retained, RetainedState, refuse};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Where a queued write is answered.
pub(super) type Done = oneshot::Sender<Result<Erased, StoreError>>;

/// An answer sender nobody waits on: for ops answered when their frame was
/// appended, and for the ops a replay rebuilds.
fn detached() -> Done {
    oneshot::channel().0
}

/// What the writer is asked to do.
#[derive(Debug)]
pub(super) enum Op {
    /// Store (or, with `state: None`, erase) a customer's state.
    State {
        sequence: u64,
        customer_id: Arc<str>,
        state: Option<Arc<[u8]>>,
        /// Its change from the state its writer wrote before, if known.
        change: Option<EncodedChange>,
        /// Its entry in the journey timer index.
        timer: TimerWrite,
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
    /// While writes fail: check whether they work again, and if so commit
    /// what was retained and accept writes.
    Probe,
}

/// A state write's change from the state its writer wrote (or loaded)
/// before ([`super::StateChange`]), encoded.
#[derive(Debug)]
pub(super) struct EncodedChange {
    /// The encoded [`nudge_models::delta::StateDelta`].
    pub(super) delta: Vec<u8>,
    /// The writer: one activation of the customer.
    pub(super) writer: u64,
    /// Writes the writer made before this one.
    pub(super) previous_writes: u64,
}

/// What the writer thread starts with.
#[derive(Debug)]
pub(super) struct Start {
    journal: Journal,
    ahead: Option<Ahead>,
}

/// Creates the tables, checks the schema version (bringing a version 1 file
/// to the current one), reads the journal back, and opens the write-ahead
/// log, replaying what it holds past the last checkpoint.
pub(super) fn initialize(inner: &Arc<Inner>) -> Result<Start, StoreError> {
    let mut journal = create_tables(inner)?;
    let ahead = Ahead::open(inner, &mut journal)?;
    Ok(Start { journal, ahead })
}

/// Creates the tables, checks the schema version and reads the journal back.
fn create_tables(inner: &Inner) -> Result<Journal, StoreError> {
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
        transaction.open_table(JOURNAL).map_err(table_error)?;
        transaction.open_table(EVENTS).map_err(table_error)?;
        transaction
            .open_table(JOURNEY_TIMERS)
            .map_err(table_error)?;
        transaction.open_table(EVENT_TIMES).map_err(table_error)?;
        let mut meta = transaction.open_table(META).map_err(table_error)?;
        let version = meta
            .get("schema_version")
            .map_err(|error| inner.error(error))?
            .map(|value| value.value());
        match version {
            // Versions 1 and 2 lack the journal or the event log only,
            // created empty above.
            None | Some(1 | 2) => {
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
    transaction.commit().map_err(|error| inner.error(error))?;
    read_journal(inner, &database, Publish::Chains)
}

/// The writer thread's loop; returns when the queue is closed.
pub(super) fn run(inner: &Inner, queue: &mpsc::Receiver<Op>, start: Start) {
    let Start {
        mut journal,
        mut ahead,
    } = start;
    let mut retained = Retained::default();
    let mut models: HashSet<String> = HashSet::new();
    let mut last_commit: Option<Instant> = None;
    loop {
        if let Some(ahead) = ahead.as_mut() {
            ahead.collect(&mut journal, &mut models, false);
            ahead.publish_backlog(inner);
        }
        // A failed commit leaves the store refusing writes until a retry
        // succeeds, whether or not it held customer writes to retry (a failed
        // compaction holds none).
        let failing = !retained.is_empty() || inner.current_failure().is_some();
        // Writes queued while the last commit ran: commits run back to back.
        // With the log, an idle writer waits no longer than the next
        // checkpoint.
        let checkpoint_in = ahead.as_ref().and_then(Ahead::due_in);
        let (first, busy) = match queue.try_recv() {
            Ok(op) => (op, true),
            Err(mpsc::TryRecvError::Empty) => {
                let received = match checkpoint_in {
                    None => queue
                        .recv()
                        .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    Some(wait) => queue.recv_timeout(wait),
                };
                match received {
                    Ok(op) => (op, false),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(ahead) = ahead.as_mut()
                            && !failing
                        {
                            ahead.collect(&mut journal, &mut models, false);
                            ahead.start_checkpoint(inner, &mut journal, &mut models);
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        if matches!(first, Op::Probe) {
            inner.probe_queued.store(false, Ordering::Release);
        }
        if failing
            && !recover(
                inner,
                &mut retained,
                &mut journal,
                &mut models,
                ahead.as_mut(),
            )
        {
            // Still failing: answer what came in without touching the disk.
            refuse(inner, first, &mut retained);
            while let Ok(op) = queue.try_recv() {
                refuse(inner, op, &mut retained);
            }
            continue;
        }
        if matches!(first, Op::Probe) {
            continue;
        }
        let mut batch = vec![first];
        // While commits run back to back they start at least
        // `commit_interval` apart: what arrives meanwhile joins this one. A
        // write to an idle writer commits at once.
        let due = last_commit
            .filter(|_| busy)
            .map(|last| last + inner.options.commit_interval);
        while batch.len() < inner.options.max_batch_writes {
            let wait = due.map_or(Duration::ZERO, |due| {
                due.saturating_duration_since(Instant::now())
            });
            let next = if wait.is_zero() {
                queue.try_recv().ok()
            } else {
                queue.recv_timeout(wait).ok()
            };
            match next {
                Some(op) => batch.push(op),
                None => break,
            }
        }
        last_commit = Some(Instant::now());
        match ahead.as_mut() {
            Some(ahead) => {
                ahead.write(inner, batch, &mut retained, &mut models, &mut journal);
                ahead.publish_backlog(inner);
            }
            None => {
                // A failure is answered to the batch's writers and kept.
                let _ = commit_batch(
                    inner,
                    batch,
                    &mut retained,
                    &mut models,
                    &mut journal,
                    0,
                    None,
                );
            }
        }
    }
    if let Some(ahead) = ahead.as_mut() {
        ahead.stop(&mut journal, &mut models);
    }
}

/// A change of where readers find a customer's latest state, made visible
/// once its commit is durable ([`publish`]).
#[derive(Debug)]
enum Journaled {
    /// Its latest state is the end of this chain of journal records.
    Recorded(Arc<str>, Vec<u64>),
    /// Its snapshot holds its latest state (or it was forgotten).
    Settled(Arc<str>),
}

/// Makes a commit's changes of [`Inner::journaled`] visible, in order.
fn publish(inner: &Inner, changes: Vec<Journaled>) {
    for change in changes {
        match change {
            Journaled::Recorded(customer_id, chain) => {
                inner.journaled.insert(customer_id, chain);
            }
            Journaled::Settled(customer_id) => {
                inner.journaled.remove(&customer_id);
            }
        }
    }
}

/// One customer's changes in the batch being committed.
#[derive(Debug, Default)]
struct Change {
    /// Its latest state in the batch, if it was written.
    state: Option<Arc<[u8]>>,
    /// The latest state write's change, if its writer gave one.
    change: Option<EncodedChange>,
    /// State writes in the batch.
    writes: usize,
    /// Decisions logged for it.
    decisions: Vec<(i64, Box<str>)>,
}

impl Change {
    /// The state to record: the change alone when it is the batch's only
    /// write of the customer and follows the write the journal holds last
    /// (or its writer's first, made on the state it loaded), else whole.
    fn state<'a>(&'a self, unsettled: Option<&Unsettled>) -> Option<State<'a>> {
        let whole = self.state.as_deref()?;
        let Some(change) = &self.change else {
            return Some(State::Whole(whole));
        };
        let follows = change.previous_writes == 0
            || unsettled.and_then(|unsettled| unsettled.last_write)
                == Some((change.writer, change.previous_writes - 1));
        if self.writes == 1 && follows {
            Some(State::Change(&change.delta))
        } else {
            Some(State::Whole(whole))
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

/// A durable write transaction with quick repair: each commit also records
/// the allocator state (two-phase commit, a second fsync), so the start after
/// a crash reads it instead of walking the whole file — a restart on a million
/// customers stays in milliseconds. Measured on the dev VM it costs ~12 % of
/// ingest throughput (49k vs 56k events/s at 128 in flight,
/// `bench/results/storage.md`).
fn begin(inner: &Inner, database: &redb::Database) -> Result<WriteTransaction, StoreError> {
    let mut transaction = database.begin_write().map_err(|error| inner.error(error))?;
    // In memory there is no crash to recover from.
    transaction
        .set_quick_repair(inner.options.quick_repair && !matches!(inner.source, Source::Memory));
    transaction
        .set_durability(Durability::Immediate)
        .map_err(|error| StoreError::Backend {
            location: inner.source.location(),
            source: Arc::new(error),
        })?;
    Ok(transaction)
}

/// Writes each changed customer's last state straight to its snapshot (and
/// its decisions to the index), settling any journal records it had: what
/// a checkpoint or a replay does. A second of writes is one transaction
/// already and its states come encoded whole, so journaling them would only
/// defer the same snapshot write, adding a decode, a re-encode and a
/// delete when the customer settles (under sustained events that settling
/// made each checkpoint several times slower than the second it covered).
fn snapshot_changes(
    tables: &mut Tables<'_>,
    journal: &mut Journal,
    changes: HashMap<Arc<str>, Change>,
    journaled: &mut Vec<Journaled>,
) -> Result<(), StoreError> {
    for (customer_id, change) in changes {
        tables.settle(
            journal,
            &customer_id,
            change.state.as_deref(),
            change.decisions,
        )?;
        journaled.push(Journaled::Settled(customer_id));
    }
    Ok(())
}

/// Appends one journal record per changed customer, with its last state
/// (as its change when the journal holds the state it follows); returns
/// how many.
fn journal_changes(
    tables: &mut Tables<'_>,
    journal: &mut Journal,
    changes: HashMap<Arc<str>, Change>,
    journaled: &mut Vec<Journaled>,
) -> Result<usize, StoreError> {
    let appended = changes.len();
    for (customer_id, change) in changes {
        let key = journal.next_key();
        let state = change.state(journal.get(&customer_id));
        let record = journal::encode(&customer_id, state, &change.decisions);
        tables.append_record(key, &record)?;
        let kind = state.map(State::kind);
        let last_write = change
            .change
            .as_ref()
            .map(|change| (change.writer, change.previous_writes));
        let chain = journal.note(key, &customer_id, kind, last_write, change.decisions);
        if kind.is_some() {
            journaled.push(Journaled::Recorded(customer_id.clone(), chain.to_vec()));
        }
    }
    Ok(appended)
}

/// Most customers settled by one commit beyond those its own records add:
/// keeps a commit that brings the journal back under its bound short.
const SETTLE_PER_COMMIT: usize = 256;

/// Commits one batch and answers its writers.
///
/// Without the log, each customer changed in the batch gets one journal
/// record (its last state, its logged decisions); while the journal holds
/// more records than its bound, the customers with the oldest records are
/// settled in the same transaction. A checkpoint writes its customers'
/// snapshots at once instead ([`snapshot_changes`]). A forget settles its
/// customer first, then erases the snapshot or the indexed decisions.
///
/// `logged` leading ops of the batch are in the write-ahead log already
/// (answered; a checkpoint, [`ahead`]), and `through_lsn` is the number of the
/// log's last frame they came from, recorded in the same transaction: if
/// the commit fails, only the other ops' states and budget changes are
/// retained for the retry (the log's are replayed from the log).
fn commit_batch(
    inner: &Inner,
    batch: Vec<Op>,
    retained: &mut Retained,
    models: &mut HashSet<String>,
    journal: &mut Journal,
    logged: usize,
    through_lsn: Option<u64>,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut answers: Vec<(Done, Erased)> = Vec::with_capacity(batch.len());
    let mut flushes = Vec::new();
    let mut states: HashMap<Arc<str>, RetainedState> = HashMap::new();
    let mut budgets: HashMap<String, i64> = HashMap::new();
    // Writes made durable by this commit (not by the log). What a failure retains: the writes that are not in the log.
    let mut unlogged_states: HashMap<Arc<str>, RetainedState> = HashMap::new();
    let mut unlogged_budgets: HashMap<String, i64> = HashMap::new();
    let mut new_models = Vec::new();
    let mut journaled = Vec::new();
    // Customers a checkpoint wrote to their snapshots: not counted as
    // settled from the journal.
    let mut snapshotted = 0;
    let mut writes = 0;
    let applied = (|| -> Result<(), StoreError> {
        let database = inner.database()?;
        let transaction = begin(inner, &database)?;
        {
            let mut tables = Tables::open(inner, &transaction)?;
            let mut changes: HashMap<Arc<str>, Change> = HashMap::new();
            let mut timers: HashMap<Arc<str>, TimerWrite> = HashMap::new();
            let mut settle = |tables: &mut Tables<'_>,
                              changes: &mut HashMap<Arc<str>, Change>,
                              customer_id: &Arc<str>|
             -> Result<(), StoreError> {
                let change = changes.remove(customer_id).unwrap_or_default();
                tables.settle(
                    journal,
                    customer_id,
                    change.state.as_deref(),
                    change.decisions,
                )?;
                journaled.push(Journaled::Settled(customer_id.clone()));
                Ok(())
            };
            for (index, op) in batch.into_iter().enumerate() {
                let in_log = index < logged;
                match op {
                    Op::State {
                        sequence,
                        customer_id,
                        state,
                        change,
                        timer,
                        done,
                    } => {
                        let mut erased = Erased::default();
                        match &state {
                            Some(state) => {
                                let entry = changes.entry(customer_id.clone()).or_default();
                                entry.state = Some(state.clone());
                                entry.change = change;
                                entry.writes += 1;
                                if timer != TimerWrite::Untouched {
                                    timers.insert(customer_id.clone(), timer);
                                }
                            }
                            None => {
                                settle(&mut tables, &mut changes, &customer_id)?;
                                erased.state = tables.forget_state(&customer_id)?;
                                timers.remove(&customer_id);
                            }
                        }
                        if !in_log {
                            writes += 1;
                            unlogged_states.insert(
                                customer_id.clone(),
                                RetainedState {
                                    sequence,
                                    state: state.clone(),
                                    timer,
                                },
                            );
                        }
                        states.insert(
                            customer_id,
                            RetainedState {
                                sequence,
                                state,
                                timer,
                            },
                        );
                        answers.push((done, erased));
                    }
                    Op::Log { entries, done } => {
                        if !in_log {
                            writes += entries.len();
                        }
                        for entry in entries {
                            if let LogEntry::Decision { record, .. } = &entry {
                                let change = changes
                                    .entry(Arc::from(record.customer_id.as_str()))
                                    .or_default();
                                change.decisions.push((
                                    record.at.millis(),
                                    Box::from(record.decision_id.as_str()),
                                ));
                            }
                            if let Some(version) = tables.append(entry, models)? {
                                new_models.push(version);
                            }
                        }
                        answers.push((done, Erased::default()));
                    }
                    Op::ForgetLog { customer_id, done } => {
                        settle(&mut tables, &mut changes, &customer_id)?;
                        let mut erased = tables.forget_log(&customer_id)?;
                        erased.events = tables.forget_events(&customer_id)?;
                        answers.push((done, erased));
                    }
                    Op::Budget { changes, done } => {
                        if !in_log {
                            writes += changes.len();
                        }
                        for change in changes {
                            if !in_log {
                                *unlogged_budgets
                                    .entry(change.action_id.clone())
                                    .or_insert(0) += change.delta;
                            }
                            *budgets.entry(change.action_id).or_insert(0) += change.delta;
                        }
                        answers.push((done, Erased::default()));
                    }
                    Op::Compact { before, max, done } => {
                        let decisions = tables.compact(before, max)?;
                        let events = tables.compact_events(before, max)?;
                        answers.push((
                            done,
                            Erased {
                                decisions,
                                events,
                                ..Erased::default()
                            },
                        ));
                    }
                    Op::Flush(done) => flushes.push(done),
                    Op::Probe => inner.probe_queued.store(false, Ordering::Release),
                }
            }
            let appended = if through_lsn.is_some() {
                snapshotted = changes.len();
                snapshot_changes(&mut tables, journal, changes, &mut journaled)?;
                0
            } else {
                journal_changes(&mut tables, journal, changes, &mut journaled)?
            };
            for (customer_id, timer) in &timers {
                tables.set_timer(customer_id, *timer)?;
            }
            let mut budget = appended + SETTLE_PER_COMMIT;
            while journal.records() > inner.options.journal_records && budget > 0 {
                let Some(customer_id) = journal.oldest() else {
                    break;
                };
                tables.settle(journal, &customer_id, None, Vec::new())?;
                journaled.push(Journaled::Settled(customer_id));
                budget -= 1;
            }
            for (action_id, delta) in &budgets {
                tables.change_budget(action_id, *delta)?;
            }
        }
        if let Some(lsn) = through_lsn {
            let mut meta = transaction
                .open_table(META)
                .map_err(|error| inner.error(error))?;
            meta.insert(WAL_APPLIED, lsn)
                .map_err(|error| inner.error(error))?;
        }
        transaction.commit().map_err(|error| inner.error(error))
    })();
    match applied {
        Ok(()) => {
            inner.commits.fetch_add(1, Ordering::Relaxed);
            let settled = journaled
                .iter()
                .filter(|change| matches!(change, Journaled::Settled(_)))
                .count()
                - snapshotted;
            inner.metrics.journal(journal.records(), settled);
            publish(inner, journaled);
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
            // The log's writes were counted when they were appended.
            match through_lsn {
                Some(lsn) => {
                    let elapsed = started.elapsed();
                    inner.metrics.checkpointed(writes, elapsed);
                    tracing::debug!(
                        through_lsn = lsn,
                        customers = snapshotted,
                        writes,
                        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                        "checkpoint written"
                    );
                }
                None => inner.metrics.committed(writes, started.elapsed()),
            }
            Ok(())
        }
        Err(error) => {
            models.retain(|version| !new_models.contains(version));
            tracing::error!(%error, "storage commit failed; writes are refused until it recovers");
            inner.set_failure(Some(error.clone()));
            inner.metrics.failed();
            retained.states.extend(unlogged_states);
            for (action_id, delta) in unlogged_budgets {
                *retained.budgets.entry(action_id).or_insert(0) += delta;
            }
            for (done, _) in answers {
                let _ = done.send(Err(error.clone()));
            }
            for done in flushes {
                let _ = done.send(Err(error.clone()));
            }
            Err(error)
        }
    }
}
