//! What the writer does when writing fails: the writes it keeps to retry
//! ([`Retained`]), how it answers while the store refuses writes, and the
//! recovery a probe triggers — the database reopened, the journal read
//! back, the write-ahead log replayed, the retained writes committed.

use super::super::database::{Inner, JOURNAL};
use super::super::journal::{self, Journal, State};
use super::super::tables::Tables;
use super::super::{BudgetChange, StoreError};
use super::ahead::Ahead;
use super::{Journaled, Op, begin, publish, settle_budgets};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Whether reading the journal back also sets the readers' chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publish {
    /// At open: nobody reads yet.
    Chains,
    /// After a failed commit: the readers' chains already match the table
    /// (nothing of the failed commit was published), and clearing them
    /// would send a concurrent load to an older snapshot.
    Nothing,
}

/// Reads the journal table back into the writer's bookkeeping and the
/// readers' map of journaled states.
pub(super) fn read_journal(
    inner: &Inner,
    database: &redb::Database,
    publish: Publish,
) -> Result<Journal, StoreError> {
    let read = database.begin_read().map_err(|error| inner.error(error))?;
    let table = read
        .open_table(JOURNAL)
        .map_err(|error| inner.error(error))?;
    let mut journal = Journal::starting_at(1);
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    if publish == Publish::Chains {
        inner.journaled.clear();
    }
    for entry in table.iter().map_err(|error| inner.error(error))? {
        let (key, value) = entry.map_err(|error| inner.error(error))?;
        let key = key.value();
        let record = journal::decode(value.value())?;
        let customer_id = names
            .entry(record.customer_id.to_owned())
            .or_insert_with(|| Arc::from(record.customer_id))
            .clone();
        let decisions = record
            .decisions
            .iter()
            .map(|(at, decision_id)| (*at, Box::from(*decision_id)));
        let kind = record.state.map(State::kind);
        let chain = journal.note(key, &customer_id, kind, None, decisions);
        if record.state.is_some() && publish == Publish::Chains {
            inner.journaled.insert(customer_id.clone(), chain.to_vec());
        }
    }
    inner.metrics.journal(journal.records(), 0);
    if journal.records() > 0 {
        tracing::info!(
            records = journal.records(),
            customers = journal.customers(),
            "state journal read back"
        );
    }
    Ok(journal)
}

/// What a failed commit leaves to retry: each customer's latest state and
/// the budget deltas, committed as soon as the store works again.
#[derive(Debug, Default)]
pub(super) struct Retained {
    pub(super) states: HashMap<Arc<str>, RetainedState>,
    pub(super) budgets: HashMap<String, i64>,
}

impl Retained {
    pub(super) fn is_empty(&self) -> bool {
        self.states.is_empty() && self.budgets.is_empty()
    }

    pub(super) fn keep_budgets(&mut self, changes: &[BudgetChange]) {
        for change in changes {
            *self.budgets.entry(change.action_id.clone()).or_insert(0) += change.delta;
        }
    }
}

/// A customer's state write that failed and waits to be retried.
#[derive(Debug)]
pub(super) struct RetainedState {
    pub(super) sequence: u64,
    pub(super) state: Option<Arc<[u8]>>,
}

/// Answers `op` with the current failure, keeping a state write and budget
/// changes for the retry.
pub(super) fn refuse(inner: &Inner, op: Op, retained: &mut Retained) {
    let failure = inner
        .current_failure()
        .unwrap_or_else(|| StoreError::Reopening {
            location: inner.source.location(),
        });
    refuse_with(inner, op, retained, &failure);
}

/// Tries to commit the retained writes; true when the store works again.
///
/// After a failed write redb accepts reads but no more writes until the
/// database is opened again. Readers keep the old handle until a probe shows
/// that writing works again (space was freed); only then is the database
/// reopened and the retained writes committed.
///
/// With the write-ahead log, its frames since the last checkpoint (up to
/// the last one appended whole) are replayed into the database first: a
/// failed checkpoint left them there, and the retained writes are newer.
pub(super) fn recover(
    inner: &Inner,
    retained: &mut Retained,
    journal: &mut Journal,
    models: &mut HashSet<String>,
    mut ahead: Option<&mut Ahead>,
) -> bool {
    // A running checkpoint holds the books: wait for it.
    if let Some(ahead) = ahead.as_deref_mut() {
        ahead.collect(journal, models, true);
    }
    let mut attempt = || -> Result<Vec<Journaled>, StoreError> {
        inner.source.probe_writable()?;
        close_database(inner);
        let database = reopen(inner)?;
        // The failed commit's records were noted but not written.
        *journal = read_journal(inner, &database, Publish::Nothing)?;
        if let Some(ahead) = ahead.as_deref_mut() {
            models.clear();
            ahead.replay(inner, journal, models, false)?;
        }
        let transaction = begin(inner, &database)?;
        let mut journaled = Vec::new();
        {
            let mut tables = Tables::open(inner, &transaction)?;
            for (customer_id, write) in &retained.states {
                tables.settle(journal, customer_id, write.state.as_deref(), Vec::new())?;
                journaled.push(Journaled::Settled(customer_id.clone()));
                if write.state.is_none() {
                    tables.forget_state(customer_id)?;
                }
            }
            for (action_id, delta) in &retained.budgets {
                tables.change_budget(action_id, *delta)?;
            }
        }
        transaction.commit().map_err(|error| inner.error(error))?;
        Ok(journaled)
    };
    match attempt() {
        Ok(journaled) => {
            inner.metrics.journal(journal.records(), journaled.len());
            publish(inner, journaled);
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

/// Answers `op` with `error`, keeping a state write and budget changes for
/// the retry after recovery.
pub(super) fn refuse_with(inner: &Inner, op: Op, retained: &mut Retained, error: &StoreError) {
    let done = match op {
        Op::State {
            sequence,
            customer_id,
            state,
            done,
            ..
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
            let _ = done.send(Err(error.clone()));
            return;
        }
        Op::Probe => {
            inner.probe_queued.store(false, Ordering::Release);
            return;
        }
    };
    let _ = done.send(Err(error.clone()));
}

/// Drops the shared database handle; redb closes the file when the last
/// reader's handle is dropped too.
pub(super) fn close_database(inner: &Inner) {
    if let Ok(mut database) = inner.database.write() {
        database.take();
    }
}

/// Opens the database again after [`close_database`].
pub(super) fn reopen(inner: &Inner) -> Result<Arc<redb::Database>, StoreError> {
    let database = Arc::new(inner.source.open(inner.options.cache_bytes)?);
    if let Ok(mut shared) = inner.database.write() {
        *shared = Some(database.clone());
    }
    Ok(database)
}
