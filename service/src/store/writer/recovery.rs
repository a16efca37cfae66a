//! What the writer does when writing fails and a probe finds it works
//! again: the recovery — the database reopened, the journal read
//! back, the write-ahead log replayed, the retained writes committed.

use super::super::StoreError;
use super::super::database::{Inner, JOURNAL};
use super::super::journal::{self, Journal, State};
use super::super::tables::Tables;
use super::ahead::Ahead;
use super::retained::Retained;
use super::{Journaled, begin, publish, settle_budgets};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
                } else {
                    tables.set_timer(customer_id, write.timer)?;
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
