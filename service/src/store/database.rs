//! The embedded store's database and what its readers, its writers and the
//! writer thread share ([`Inner`]): the table layout, the options, the
//! pending (queued, not yet committed) states and budget deltas, and the
//! failure that makes the store refuse writes.

use super::journal;
use super::records::decode;
use super::source::{Source, io_error};
use super::{Damage, StoreError};
use crate::metrics::StorageMetrics;
use dashmap::DashMap;
use nudge_models::customer::CustomerState;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(super) const CUSTOMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("customers");
pub(super) const DECISIONS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("decisions");
pub(super) const OUTCOMES: TableDefinition<(i64, &str, &str, &str), &[u8]> =
    TableDefinition::new("outcomes");
pub(super) const CUSTOMER_DECISIONS: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("customer_decisions");
pub(super) const MODEL_FEATURES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("model_features");
pub(super) const BUDGETS: TableDefinition<&str, u64> = TableDefinition::new("budgets");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Each customer with a journey run in progress: when its earliest is due
/// (ms), kept with its state.
pub(super) const JOURNEY_TIMERS: TableDefinition<&str, i64> =
    TableDefinition::new("journey_timers");
pub(super) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
pub(super) const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
pub(super) const EVENT_TIMES: TableDefinition<(i64, &str, u64), ()> =
    TableDefinition::new("event_times");

/// The `meta` key of the number of the write-ahead log's last frame a
/// checkpoint applied ([`super::wal`]).
pub(super) const WAL_APPLIED: &str = "wal_applied";

/// The layout version this code reads and writes. Version 2 added the
/// journal, version 3 the event log; an older file is opened as it is (the
/// tables it lacks are created empty).
pub(super) const SCHEMA_VERSION: u64 = 3;

/// How the store is tuned.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most writes in one transaction.
    pub max_batch_writes: usize,
    /// redb's page cache, bytes.
    pub cache_bytes: usize,
    /// Most records the state journal holds before customers are settled
    /// into their snapshots, oldest first ([`super::journal`]): more means
    /// fewer snapshot writes per change and a longer read at open.
    pub journal_records: usize,
    /// Whether each commit also saves the allocator state (a second fsync
    /// and a few pages), so that the start after a crash need not walk the
    /// whole file to repair it.
    pub quick_repair: bool,
    /// While commits run back to back (writes queued while the last one
    /// ran), the least time between the starts of two commits: writes
    /// arriving meanwhile join the next commit, so fewer, larger commits
    /// write fewer bytes and spend less CPU per change (each commit rewrites
    /// about a dozen pages whatever it holds), for up to this much latency.
    /// A write to an idle writer commits at once. Zero: always at once.
    pub commit_interval: std::time::Duration,
    /// Whether a file store makes writes durable by appending them to its
    /// write-ahead log ([`super::wal`]: one small append and one
    /// `fdatasync` per batch) and brings them into the database by a
    /// checkpoint, instead of a database commit per batch (a dozen pages
    /// and two fsyncs). In memory there is no log.
    pub write_ahead: bool,
    /// With the log: the longest time between a write and the checkpoint
    /// that brings it into the database. Longer folds more changes of the
    /// same customers into one and writes fewer pages; the log to replay
    /// after a crash grows with it.
    pub checkpoint_interval: std::time::Duration,
    /// With the log: a checkpoint is made at once when the log holds this
    /// many bytes since the last one.
    pub checkpoint_bytes: u64,
    /// With the log: most writes waiting for a checkpoint. While one runs
    /// and four fifths of this many wait, new changes are refused
    /// ([`StoreError::Behind`]); at this many the writer waits for it.
    pub max_buffered_writes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_batch_writes: 4_096,
            cache_bytes: 128 * 1024 * 1024,
            journal_records: 100_000,
            quick_repair: true,
            commit_interval: std::time::Duration::ZERO,
            write_ahead: true,
            checkpoint_interval: std::time::Duration::from_secs(5),
            checkpoint_bytes: 64 * 1024 * 1024,
            max_buffered_writes: 50_000,
        }
    }
}

/// The database shared by readers and the writer; `None` while the writer
/// reopens it after an I/O error.
pub(super) type SharedDatabase = RwLock<Option<Arc<Database>>>;

/// What readers, writers and the writer thread share.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) database: SharedDatabase,
    pub(super) source: Source,
    pub(super) options: StoreOptions,
    /// Queued, not yet committed state per customer (`None`: forgotten).
    pub(super) pending: DashMap<Arc<str>, Pending>,
    /// Each customer's chain in the journal (the keys of its state records
    /// from its last whole state on, [`super::journal`]), for customers not
    /// settled since: what [`super::StateStore::load`] replays. Changed by
    /// the writer after a commit, before the commit's entries leave
    /// `pending`.
    pub(super) journaled: DashMap<Arc<str>, Vec<u64>>,
    /// Queued, not yet committed budget deltas per action.
    pub(super) pending_budgets: Mutex<HashMap<String, i64>>,
    /// Set while writes fail; cleared when the writer recovers. Change it
    /// with [`Inner::set_failure`] only.
    pub(super) failure: Mutex<Option<StoreError>>,
    /// Whether `failure` is set: the lock-free check every change makes.
    pub(super) failing: AtomicBool,
    /// Whether a probe is queued for the writer (so that asking several
    /// times queues one).
    pub(super) probe_queued: AtomicBool,
    /// Orders the writes of the pending map.
    pub(super) sequence: AtomicU64,
    /// Commits made since open.
    pub(super) commits: AtomicU64,
    /// With the log, while the checkpoints are behind: the writes waiting
    /// for one (else 0). Set by the writer ([`Inner::check_accepting`]).
    pub(super) backlog: AtomicUsize,
    /// Holds checkpoints back while set, for tests.
    #[cfg(test)]
    pub(super) hold_checkpoints: AtomicBool,
    /// Commit latency and failures.
    pub(super) metrics: StorageMetrics,
}

impl Inner {
    /// The open database, or the error that keeps it closed.
    pub(super) fn database(&self) -> Result<Arc<Database>, StoreError> {
        let guard = self.database.read().map_err(|_| StoreError::Closed)?;
        guard.clone().ok_or_else(|| {
            self.current_failure()
                .unwrap_or_else(|| StoreError::Reopening {
                    location: self.source.location(),
                })
        })
    }

    pub(super) fn current_failure(&self) -> Option<StoreError> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }

    /// Records that writes fail (`Some`) or work again (`None`).
    pub(super) fn set_failure(&self, failure: Option<StoreError>) {
        if let Ok(mut current) = self.failure.lock() {
            self.failing.store(failure.is_some(), Ordering::Release);
            *current = failure;
        }
    }

    /// Whether writes are accepted now.
    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        match self.current_failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Whether a new change is accepted now: not while writes fail, nor
    /// while the checkpoints are so far behind that the writer is about to
    /// wait for them (a change refused up front changes nothing; one queued
    /// behind the wait could outlive its budget).
    pub(super) fn check_accepting(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        match self.backlog.load(Ordering::Acquire) {
            0 => Ok(()),
            buffered => Err(StoreError::Behind { buffered }),
        }
    }

    /// A store error for a redb error: a full disk is [`StoreError::Full`].
    pub(super) fn error(&self, error: impl Into<redb::Error>) -> StoreError {
        let location = self.source.location();
        match error.into() {
            redb::Error::Io(error) => io_error(&location, error),
            error @ redb::Error::Corrupted(_) => StoreError::Damaged {
                location,
                damage: Damage::Found(Arc::new(error)),
            },
            redb::Error::PreviousIo => StoreError::Reopening { location },
            error => StoreError::Backend {
                location,
                source: Arc::new(error),
            },
        }
    }
}

impl Inner {
    /// Reads the stored (committed) state of `customer_id`, ignoring queued
    /// writes and the write-ahead log. Its latest journal record if it has
    /// one, else its snapshot.
    pub(super) fn committed_state(
        &self,
        customer_id: &str,
    ) -> Result<Option<CustomerState>, StoreError> {
        // A chain read just before its customer is settled (and journaled
        // again) is read afresh.
        for _ in 0..4 {
            let chain = self.journaled.get(customer_id).map(|chain| chain.clone());
            let database = self.database()?;
            let read = database.begin_read().map_err(|error| self.error(error))?;
            let Some(chain) = chain else {
                return self.snapshot(&read, customer_id);
            };
            let journal = read
                .open_table(JOURNAL)
                .map_err(|error| self.error(error))?;
            let replayed = journal::replay(
                &chain,
                |key| {
                    Ok(journal
                        .get(key)
                        .map_err(|error| self.error(error))?
                        .map(|record| record.value().to_vec()))
                },
                || self.snapshot(&read, customer_id),
            )?;
            if let Some(state) = replayed {
                return Ok(Some(state));
            }
        }
        let database = self.database()?;
        let read = database.begin_read().map_err(|error| self.error(error))?;
        self.snapshot(&read, customer_id)
    }

    /// The customer's snapshot in `read`.
    fn snapshot(
        &self,
        read: &redb::ReadTransaction,
        customer_id: &str,
    ) -> Result<Option<CustomerState>, StoreError> {
        let table = match read.open_table(CUSTOMERS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(self.error(error)),
        };
        let value = table.get(customer_id).map_err(|error| self.error(error))?;
        value
            .map(|value| decode("customer state", value.value()))
            .transpose()
    }
}

/// The latest queued state of a customer.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// Queue order.
    pub(super) sequence: u64,
    /// The encoded state; `None` when the customer is being forgotten.
    pub(super) state: Option<Arc<[u8]>>,
}
