//! [`RedbStore`]: customer state, decision log and outcomes in one redb file
//! (`nudge.redb` in the data directory), written by the group-commit writer
//! ([`super::writer`]).
//!
//! Tables:
//! - `customers`: customer id → state (MessagePack);
//! - `decisions`: (decision time ms, decision id) → [`DecisionRecord`];
//! - `outcomes`: (decision time ms, decision id, action id, outcome) →
//!   [`OutcomeRecord`], so a decision's outcomes sit next to each other and
//!   retention deletes both by time;
//! - `customer_decisions`: (customer id, decision time ms, decision id) → (),
//!   the index `forget` erases a customer's log entries by;
//! - `model_features`: model version → its feature specs;
//! - `meta`: `schema_version`.

use super::records::{decode, encode};
use super::writer::{self, Op, Pending};
use super::{
    Commit, CustomerStore, DecisionRecord, LogEntry, LoggedDecision, OutcomeRecord, StoreError,
    TimeRange,
};
use crate::metrics::StorageMetrics;
use dashmap::DashMap;
use nudge_models::customer::CustomerState;
use nudge_models::time::Timestamp;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageBackend, TableDefinition,
};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use tokio::sync::oneshot;

pub(super) const CUSTOMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("customers");
pub(super) const DECISIONS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("decisions");
pub(super) const OUTCOMES: TableDefinition<(i64, &str, &str, &str), &[u8]> =
    TableDefinition::new("outcomes");
pub(super) const CUSTOMER_DECISIONS: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("customer_decisions");
pub(super) const MODEL_FEATURES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("model_features");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version this code reads and writes.
pub(super) const SCHEMA_VERSION: u64 = 1;

/// The data file's name inside the data directory.
pub const DATA_FILE: &str = "nudge.redb";

/// How the store is tuned.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most writes in one transaction.
    pub max_batch_writes: usize,
    /// redb's page cache, bytes.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_batch_writes: 4_096,
            cache_bytes: 128 * 1024 * 1024,
        }
    }
}

/// A switch that makes a [`RedbStore`] opened with
/// [`RedbStore::open_with_faults`] fail every write to its file as if the disk
/// were full, until switched off: how the failure behaviour is tested.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<AtomicBool>);

impl FaultSwitch {
    /// Whether writes fail now.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Makes writes fail (`true`) or succeed again (`false`).
    pub fn set(&self, failing: bool) {
        self.0.store(failing, Ordering::SeqCst);
    }
}

/// A file backend whose writes fail with "no space left on device" while its
/// [`FaultSwitch`] is on.
#[derive(Debug)]
struct FaultyFile {
    file: redb::backends::FileBackend,
    switch: FaultSwitch,
}

impl FaultyFile {
    fn check(&self) -> std::io::Result<()> {
        if self.switch.is_on() {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
}

/// Where the database lives, so the writer can reopen it after an I/O error.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A file.
    File(PathBuf),
    /// A file behind a fault switch.
    Faulty(PathBuf, FaultSwitch),
    /// Memory only.
    Memory,
}

impl Source {
    /// Opens (or creates) the database; a damaged file is a clear error, never
    /// a panic.
    pub(super) fn open(&self, cache_bytes: usize) -> Result<Database, StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes);
        let path = match self {
            Source::Memory => {
                return builder
                    .create_with_backend(redb::backends::InMemoryBackend::new())
                    .map_err(|error| StoreError::Unavailable(error.to_string()));
            }
            Source::File(path) | Source::Faulty(path, _) => path,
        };
        if std::fs::metadata(path).is_ok_and(|metadata| metadata.len() == 0) {
            return Err(StoreError::Corrupted(format!(
                "{} is empty (truncated?); move it away to start with an empty store",
                path.display()
            )));
        }
        // redb may panic on a damaged file instead of returning an error:
        // turn that into the same clear error.
        let opened = quietly_catch_panic(|| match self {
            Source::Faulty(path, switch) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|error| DatabaseError::Storage(redb::StorageError::Io(error)))?;
                let file = redb::backends::FileBackend::new(file)?;
                builder.create_with_backend(FaultyFile {
                    file,
                    switch: switch.clone(),
                })
            }
            _ => builder.create(path),
        });
        match opened {
            Ok(Ok(database)) => Ok(database),
            Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::Unavailable(format!(
                "{} is in use by another nudge process",
                path.display()
            ))),
            Ok(Err(DatabaseError::Storage(redb::StorageError::Io(error))))
                if error.kind() != std::io::ErrorKind::InvalidData =>
            {
                Err(io_error(path, &error))
            }
            Ok(Err(error)) => Err(StoreError::Corrupted(format!(
                "{} cannot be opened: {error}; restore it from a backup or move it away to start with an empty store",
                path.display()
            ))),
            Err(panic) => Err(StoreError::Corrupted(format!(
                "{} is damaged ({panic}); restore it from a backup or move it away to start with an empty store",
                path.display()
            ))),
        }
    }
}

impl Source {
    /// Whether writing works now: a small file written and synced next to
    /// the data file (for a faulty file, the switch).
    pub(super) fn probe_writable(&self) -> Result<(), StoreError> {
        match self {
            Source::Memory => Ok(()),
            Source::Faulty(path, switch) => {
                if switch.is_on() {
                    Err(io_error(path, &std::io::Error::from_raw_os_error(28)))
                } else {
                    Ok(())
                }
            }
            Source::File(path) => {
                use std::io::Write as _;
                let probe = path.with_extension("probe");
                let written = std::fs::File::create(&probe).and_then(|mut file| {
                    file.write_all(&[0_u8; PROBE_BYTES])?;
                    file.sync_all()
                });
                let _ = std::fs::remove_file(&probe);
                written.map_err(|error| io_error(path, &error))
            }
        }
    }
}

/// Bytes the write probe writes: a few pages, as a small commit needs.
const PROBE_BYTES: usize = 256 * 1024;

thread_local! {
    /// Set while this thread opens a database: its panics are caught and
    /// reported as errors, so their message stays off stderr.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `open` with panics caught and the panic message kept off stderr. The
/// process's panic hook is wrapped once; it stays silent only for the thread
/// inside `open`, so other threads' panics are reported as usual.
fn quietly_catch_panic<T>(open: impl FnOnce() -> T) -> Result<T, String> {
    static WRAP_HOOK: std::sync::Once = std::sync::Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|quiet| quiet.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(open));
    QUIET_PANICS.with(|quiet| quiet.set(false));
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "redb panicked".to_owned())
    })
}

/// A store error for an I/O error at `path`: a full disk is [`StoreError::Full`].
fn io_error(path: &Path, error: &std::io::Error) -> StoreError {
    if error.raw_os_error() == Some(28) {
        StoreError::Full(format!("{}: {error}", path.display()))
    } else {
        StoreError::Unavailable(format!("{}: {error}", path.display()))
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
    /// Set while writes fail; cleared when the writer recovers.
    pub(super) failure: Mutex<Option<StoreError>>,
    /// Orders the writes of the pending map.
    pub(super) sequence: AtomicU64,
    /// Commit latency and failures.
    pub(super) metrics: StorageMetrics,
}

impl Inner {
    /// The open database, or the error that keeps it closed.
    pub(super) fn database(&self) -> Result<Arc<Database>, StoreError> {
        let guard = self.database.read().map_err(|_| StoreError::Closed)?;
        guard.clone().ok_or_else(|| {
            self.current_failure()
                .unwrap_or_else(|| StoreError::Unavailable("the database is reopening".to_owned()))
        })
    }

    pub(super) fn current_failure(&self) -> Option<StoreError> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }

    /// A store error for a redb error: a full disk is [`StoreError::Full`].
    pub(super) fn error(&self, error: impl Into<redb::Error>) -> StoreError {
        let path = match &self.source {
            Source::File(path) | Source::Faulty(path, _) => path.clone(),
            Source::Memory => PathBuf::from("(memory)"),
        };
        match error.into() {
            redb::Error::Io(error) => io_error(&path, &error),
            redb::Error::Corrupted(message) => {
                StoreError::Corrupted(format!("{}: {message}", path.display()))
            }
            redb::Error::PreviousIo => StoreError::Unavailable(format!(
                "{}: a previous write failed; the store reopens it",
                path.display()
            )),
            error => StoreError::Unavailable(format!("{}: {error}", path.display())),
        }
    }
}

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
        std::fs::create_dir_all(data_dir).map_err(|error| io_error(data_dir, &error))?;
        Ok(data_dir.join(DATA_FILE))
    }

    fn start(source: Source, options: StoreOptions) -> Result<Self, StoreError> {
        let database = source.open(options.cache_bytes)?;
        let inner = Arc::new(Inner {
            database: RwLock::new(Some(Arc::new(database))),
            source,
            options,
            pending: DashMap::new(),
            failure: Mutex::new(None),
            sequence: AtomicU64::new(1),
            metrics: StorageMetrics::new(),
        });
        writer::initialize(&inner)?;
        let (sender, receiver) = mpsc::channel();
        let thread_inner = inner.clone();
        let writer = std::thread::Builder::new()
            .name("nudge-store-writer".to_owned())
            .spawn(move || writer::run(&thread_inner, &receiver))
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the writer: {error}"))
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

    fn queue(
        &self,
        customer_id: &Arc<str>,
        state: Option<Arc<[u8]>>,
        log: Vec<LogEntry>,
    ) -> Commit {
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        self.inner.pending.insert(
            customer_id.clone(),
            Pending {
                sequence,
                state: state.clone(),
            },
        );
        let (done, receiver) = oneshot::channel();
        match self.send(Op::Write {
            sequence,
            customer_id: customer_id.clone(),
            state,
            log,
            done,
        }) {
            Ok(()) => Commit::pending(receiver),
            Err(error) => Commit::done(Err(error)),
        }
    }

    /// Commits what is queued and stops the writer; later writes fail with
    /// [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        let result = self.flush();
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut writer| writer.take()) {
            let _ = writer.join();
        }
        result
    }

    /// Reads the stored (committed) state of `customer_id`, ignoring queued
    /// writes: what a restart would see.
    pub fn committed_state(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError> {
        let database = self.inner.database()?;
        let read = database
            .begin_read()
            .map_err(|error| self.inner.error(error))?;
        let table = match read.open_table(CUSTOMERS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(self.inner.error(error)),
        };
        let value = table
            .get(customer_id)
            .map_err(|error| self.inner.error(error))?;
        value
            .map(|value| decode("customer state", value.value()))
            .transpose()
    }

    /// Every stored key that mentions `customer_id`, by table: what a test of
    /// `forget` reads to prove nothing is left.
    pub fn traces_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        let database = self.inner.database()?;
        let read = database
            .begin_read()
            .map_err(|error| self.inner.error(error))?;
        let error = |error: redb::StorageError| self.inner.error(error);
        let table_error = |error: redb::TableError| self.inner.error(error);
        let mut traces = Vec::new();
        let customers = read.open_table(CUSTOMERS).map_err(table_error)?;
        if customers.get(customer_id).map_err(error)?.is_some() {
            traces.push(format!("customers[{customer_id}]"));
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
        Ok(traces)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl CustomerStore for RedbStore {
    fn load(&self, customer_id: &str) -> Result<Option<CustomerState>, StoreError> {
        if let Some(pending) = self.inner.pending.get(customer_id) {
            let bytes = pending.state.clone();
            drop(pending);
            return bytes
                .map(|bytes| decode("customer state", &bytes))
                .transpose();
        }
        self.committed_state(customer_id)
    }

    fn write(&self, customer_id: &Arc<str>, state: &CustomerState, log: Vec<LogEntry>) -> Commit {
        if let Err(error) = self.check_writable() {
            return Commit::done(Err(error));
        }
        match encode(state) {
            Ok(bytes) => self.queue(customer_id, Some(Arc::from(bytes)), log),
            Err(error) => Commit::done(Err(error)),
        }
    }

    fn forget(&self, customer_id: &Arc<str>) -> Commit {
        if let Err(error) = self.check_writable() {
            return Commit::done(Err(error));
        }
        self.queue(customer_id, None, Vec::new())
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        match self.inner.current_failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    fn export(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, StoreError> {
        let database = self.inner.database()?;
        let read = database
            .begin_read()
            .map_err(|error| self.inner.error(error))?;
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

    fn compact(&self, before: Timestamp) -> Commit {
        let (done, receiver) = oneshot::channel();
        match self.send(Op::Compact { before, done }) {
            Ok(()) => Commit::pending(receiver),
            Err(error) => Commit::done(Err(error)),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        let (done, receiver) = mpsc::channel();
        self.send(Op::Flush(done))?;
        receiver.recv().unwrap_or(Err(StoreError::Closed))
    }

    fn len(&self) -> Result<u64, StoreError> {
        let database = self.inner.database()?;
        let read = database
            .begin_read()
            .map_err(|error| self.inner.error(error))?;
        let table = read
            .open_table(CUSTOMERS)
            .map_err(|error| self.inner.error(error))?;
        table.len().map_err(|error| self.inner.error(error))
    }
}
