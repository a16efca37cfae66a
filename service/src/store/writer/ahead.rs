//! The writer with a write-ahead log ([`super::super::wal`]): a batch of
//! state writes, log entries and budget changes is made durable by one frame
//! appended to the log and answered at once; the ops stay here, and every
//! `checkpoint_interval` (or when the log passes `checkpoint_bytes`, or when
//! an erasure, a compaction or a flush arrives) one transaction brings all of
//! them into the database ([`super::commit_batch`], with the log's frame
//! number) and the log starts a new cycle. Until then their states stay in
//! the pending map, so loads see them; the log's frames not yet checkpointed
//! are replayed at open and when the store recovers from a failure.
//!
//! A state write goes into a frame as its change alone when the state it was
//! taken from is the one the log (or the journal) holds last for the
//! customer — the same activation's previous write, or its first write on
//! the state it loaded — else whole; the replay rebuilds the whole state by
//! applying the change to the state before it.

use super::super::database::{Inner, META, WAL_APPLIED};
use super::super::journal::Journal;
use super::super::records::{decode, encode};
use super::super::source::Source;
use super::super::wal::{self, Encoder, Entry, LOG_FILE, LoggedState, WriteAheadLog};
use super::super::{Erased, LogEntry, StoreError};
use super::{Done, EncodedChange, Op, Retained, commit_batch};
use nudge_models::customer::CustomerState;
use nudge_models::delta::StateDelta;
use redb::ReadableDatabase;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most ops waiting for a checkpoint: a checkpoint is made at once past it.
const MAX_BUFFERED: usize = 200_000;

/// The writer's log and what its frames since the last checkpoint hold.
#[derive(Debug)]
pub(in crate::store) struct Ahead {
    log: WriteAheadLog,
    /// The number of the last frame written (or applied).
    lsn: u64,
    /// The ops of the frames since the last checkpoint, answered already
    /// (their answer senders are detached), in order.
    buffered: Vec<Op>,
    /// When the first of them was answered.
    since: Option<Instant>,
    /// Per customer written since the last checkpoint, who wrote its last
    /// state in the log: (writer, writes it made before), `None` when that
    /// write did not say. A change from that writer's next write fits.
    last_writes: HashMap<Arc<str>, Option<(u64, u64)>>,
    /// Model versions whose feature names a frame since the last
    /// checkpoint holds (the database holds the others').
    models_logged: HashSet<String>,
    interval: Duration,
    max_bytes: u64,
}

impl Ahead {
    /// Opens the log of a file store (none in memory or when the options
    /// turn it off) and replays what it holds past the last checkpoint into
    /// the database.
    pub(in crate::store) fn open(
        inner: &Inner,
        journal: &mut Journal,
    ) -> Result<Option<Self>, StoreError> {
        let (path, faults) = match &inner.source {
            Source::Memory => return Ok(None),
            _ if !inner.options.write_ahead => return Ok(None),
            Source::File(path) => (path.with_file_name(LOG_FILE), None),
            Source::Faulty(path, switch) => (path.with_file_name(LOG_FILE), Some(switch.clone())),
        };
        let mut ahead = Self {
            log: WriteAheadLog::open(&path, faults)?,
            lsn: 0,
            buffered: Vec::new(),
            since: None,
            last_writes: HashMap::new(),
            models_logged: HashSet::new(),
            interval: inner.options.checkpoint_interval,
            max_bytes: inner.options.checkpoint_bytes,
        };
        let replayed = ahead.replay(inner, journal, &mut HashSet::new(), None)?;
        if replayed > 0 {
            tracing::info!(
                frames = replayed,
                "write-ahead log replayed into the database"
            );
        }
        Ok(Some(ahead))
    }

    /// Brings the log's frames past the last checkpoint (up to `limit`
    /// bytes, all when `None`) into the database in one transaction and
    /// starts a new cycle; returns how many frames it applied.
    pub(super) fn replay(
        &mut self,
        inner: &Inner,
        journal: &mut Journal,
        models: &mut HashSet<String>,
        limit: Option<u64>,
    ) -> Result<usize, StoreError> {
        let applied = last_applied(inner)?;
        let frames: Vec<(u64, Vec<u8>)> = self
            .log
            .read(limit)?
            .into_iter()
            .filter(|(lsn, _)| *lsn > applied)
            .collect();
        self.lsn = self
            .lsn
            .max(applied)
            .max(frames.last().map_or(0, |(lsn, _)| *lsn));
        self.buffered.clear();
        self.since = None;
        self.last_writes.clear();
        self.models_logged.clear();
        if !frames.is_empty() {
            let ops = rebuild(inner, &frames)?;
            let logged = ops.len();
            commit_batch(
                inner,
                ops,
                &mut Retained::default(),
                models,
                journal,
                logged,
                Some(self.lsn),
            )?;
        }
        self.log.restart(false)?;
        Ok(frames.len())
    }

    /// How long until a checkpoint is due; `None` when nothing waits for one.
    pub(super) fn due_in(&self) -> Option<Duration> {
        self.since
            .map(|since| (since + self.interval).saturating_duration_since(Instant::now()))
    }

    /// Whether a checkpoint is due now.
    fn due(&self) -> bool {
        self.due_in().is_some_and(|left| left.is_zero())
            || self.log.end() >= self.max_bytes
            || self.buffered.len() >= MAX_BUFFERED
    }

    /// Handles one batch: a batch with an erasure, a compaction or a flush
    /// is checkpointed with everything before it; any other is appended to
    /// the log and answered, and checkpointed once one is due.
    pub(super) fn write(
        &mut self,
        inner: &Inner,
        batch: Vec<Op>,
        retained: &mut Retained,
        models: &mut HashSet<String>,
        journal: &mut Journal,
    ) {
        if batch.iter().any(needs_checkpoint) {
            self.checkpoint(inner, batch, retained, models, journal);
            return;
        }
        self.append(inner, batch, retained, models, journal);
        if self.due() {
            self.checkpoint(inner, Vec::new(), retained, models, journal);
        }
    }

    /// Appends `batch` as one frame and answers it; on failure answers it
    /// with the error, retains its states and budget changes for the retry
    /// and makes the store refuse writes.
    fn append(
        &mut self,
        inner: &Inner,
        batch: Vec<Op>,
        retained: &mut Retained,
        models: &HashSet<String>,
        journal: &Journal,
    ) {
        let started = Instant::now();
        let lsn = self.lsn + 1;
        let mut writes = 0;
        let appended = self
            .encode(&batch, models, journal, &mut writes)
            .and_then(|payload| self.log.append(lsn, &payload));
        match appended {
            Ok(()) => {
                self.lsn = lsn;
                self.since.get_or_insert(started);
                for op in batch {
                    if let Some(op) = answer(op) {
                        self.buffered.push(op);
                    }
                }
                inner.metrics.committed(writes, started.elapsed());
            }
            Err(error) => {
                // The failed frame may be on disk whole: the next one gets a
                // later number, so a read never takes the two for one cycle.
                self.lsn = lsn;
                // The frames before are in the log: the recovery replays
                // them.
                self.buffered.clear();
                self.since = None;
                self.last_writes.clear();
                self.models_logged.clear();
                tracing::error!(%error, "write-ahead log append failed; writes are refused until it recovers");
                inner.set_failure(Some(error.clone()));
                inner.metrics.failed();
                for op in batch {
                    refuse_with(inner, op, retained, &error);
                }
            }
        }
    }

    /// Encodes `batch` as a frame's payload, noting its customers' last
    /// writes; counts the writes in `writes`.
    fn encode(
        &mut self,
        batch: &[Op],
        models: &HashSet<String>,
        journal: &Journal,
        writes: &mut usize,
    ) -> Result<Vec<u8>, StoreError> {
        let mut encoder = Encoder::new();
        for op in batch {
            match op {
                Op::State {
                    sequence,
                    customer_id,
                    state: Some(whole),
                    change,
                    ..
                } => {
                    *writes += 1;
                    let last = match self.last_writes.get(customer_id) {
                        Some(last) => *last,
                        None => journal
                            .get(customer_id)
                            .and_then(|unsettled| unsettled.last_write),
                    };
                    let fits = change.as_ref().filter(|change| {
                        change.previous_writes == 0
                            || last == Some((change.writer, change.previous_writes - 1))
                    });
                    match fits {
                        Some(change) => encoder.state_change(
                            *sequence,
                            customer_id,
                            &change.delta,
                            change.writer,
                            change.previous_writes,
                        ),
                        None => encoder.whole_state(*sequence, customer_id, whole),
                    }
                    self.last_writes.insert(
                        customer_id.clone(),
                        change
                            .as_ref()
                            .map(|change| (change.writer, change.previous_writes)),
                    );
                }
                Op::Log { entries, .. } => {
                    *writes += entries.len();
                    for entry in entries {
                        let with_names = match entry {
                            LogEntry::Decision {
                                record,
                                feature_names: Some(_),
                            } => record.model_version.as_ref().is_some_and(|version| {
                                !models.contains(version)
                                    && self.models_logged.insert(version.clone())
                            }),
                            _ => false,
                        };
                        encoder.log(entry, with_names)?;
                    }
                }
                Op::Budget { changes, .. } => {
                    *writes += changes.len();
                    for change in changes {
                        encoder.budget(change);
                    }
                }
                // Erasures, compactions and flushes checkpoint instead
                // ([`needs_checkpoint`]); a probe has nothing to write.
                Op::State { state: None, .. }
                | Op::ForgetLog { .. }
                | Op::Compact { .. }
                | Op::Flush(_)
                | Op::Probe => {}
            }
        }
        Ok(encoder.finish())
    }

    /// Commits the ops waiting since the last checkpoint and `batch` in one
    /// transaction, then starts the log's next cycle (cutting the file when
    /// the batch erases a customer, so their frames are gone with them).
    /// On failure the store refuses writes; the log keeps the frames, which
    /// the recovery replays.
    pub(super) fn checkpoint(
        &mut self,
        inner: &Inner,
        batch: Vec<Op>,
        retained: &mut Retained,
        models: &mut HashSet<String>,
        journal: &mut Journal,
    ) {
        let erase = batch
            .iter()
            .any(|op| matches!(op, Op::State { state: None, .. } | Op::ForgetLog { .. }));
        let mut ops = std::mem::take(&mut self.buffered);
        let logged = ops.len();
        ops.extend(batch);
        self.since = None;
        // The journal knows each customer's last write after the commit;
        // after a failure, nothing is assumed.
        self.last_writes.clear();
        self.models_logged.clear();
        if commit_batch(
            inner,
            ops,
            retained,
            models,
            journal,
            logged,
            Some(self.lsn),
        )
        .is_err()
        {
            return;
        }
        if let Err(error) = self.log.restart(erase) {
            // The checkpoint is durable; the old frames stay in the file
            // until the next cycle writes over them.
            tracing::warn!(%error, "write-ahead log could not be cut after an erasure");
        }
    }

    /// Where the frames written since the last checkpoint end: what a
    /// replay after a failure reads up to.
    pub(super) fn end(&self) -> u64 {
        self.log.end()
    }
}

/// Whether `op` is applied by a checkpoint rather than through the log.
fn needs_checkpoint(op: &Op) -> bool {
    matches!(
        op,
        Op::State { state: None, .. } | Op::ForgetLog { .. } | Op::Compact { .. } | Op::Flush(_)
    )
}

/// An answer sender nobody waits on: for ops answered when their frame was
/// appended, and for the ops a replay rebuilds.
fn detached() -> Done {
    oneshot::channel().0
}

/// Answers a logged op and gives it back with its sender detached, for the
/// checkpoint (`None` for a probe, which has nothing to checkpoint).
fn answer(op: Op) -> Option<Op> {
    let (done, op) = match op {
        Op::State {
            sequence,
            customer_id,
            state,
            change,
            done,
        } => (
            done,
            Op::State {
                sequence,
                customer_id,
                state,
                change,
                done: detached(),
            },
        ),
        Op::Log { entries, done } => (
            done,
            Op::Log {
                entries,
                done: detached(),
            },
        ),
        Op::Budget { changes, done } => (
            done,
            Op::Budget {
                changes,
                done: detached(),
            },
        ),
        // Never appended ([`needs_checkpoint`]).
        Op::ForgetLog { .. } | Op::Compact { .. } | Op::Flush(_) => return Some(op),
        Op::Probe => return None,
    };
    let _ = done.send(Ok(Erased::default()));
    Some(op)
}

/// Answers `op` with `error`, keeping a state write and budget changes for
/// the retry after recovery.
fn refuse_with(inner: &Inner, op: Op, retained: &mut Retained, error: &StoreError) {
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
                .insert(customer_id, super::RetainedState { sequence, state });
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

/// The number of the last frame a checkpoint applied (0: none).
fn last_applied(inner: &Inner) -> Result<u64, StoreError> {
    let database = inner.database()?;
    let read = database.begin_read().map_err(|error| inner.error(error))?;
    let meta = read.open_table(META).map_err(|error| inner.error(error))?;
    Ok(meta
        .get(WAL_APPLIED)
        .map_err(|error| inner.error(error))?
        .map_or(0, |value| value.value()))
}

/// The writer's ops for `frames`, in order, each state whole: a change is
/// applied to the customer's state before it (the previous frame's, else
/// the database's).
fn rebuild(inner: &Inner, frames: &[(u64, Vec<u8>)]) -> Result<Vec<Op>, StoreError> {
    let mut latest: HashMap<Arc<str>, Arc<[u8]>> = HashMap::new();
    let mut ops = Vec::new();
    for (_, payload) in frames {
        for entry in wal::decode(payload)? {
            let op = match entry {
                Entry::State {
                    sequence,
                    customer_id,
                    state: LoggedState::Whole(whole),
                } => {
                    latest.insert(customer_id.clone(), whole.clone());
                    Op::State {
                        sequence,
                        customer_id,
                        state: Some(whole),
                        change: None,
                        done: detached(),
                    }
                }
                Entry::State {
                    sequence,
                    customer_id,
                    state:
                        LoggedState::Change {
                            delta,
                            writer,
                            previous_writes,
                        },
                } => {
                    let mut state: CustomerState = match latest.get(&customer_id) {
                        Some(before) => decode("customer state", before)?,
                        None => inner.committed_state(&customer_id)?.unwrap_or_default(),
                    };
                    let change: StateDelta = decode("state change", &delta)?;
                    change
                        .apply(&mut state)
                        .map_err(|mismatch| StoreError::Undecodable {
                            what: "write-ahead log",
                            source: Arc::new(mismatch),
                        })?;
                    let whole: Arc<[u8]> = Arc::from(encode(&state)?);
                    latest.insert(customer_id.clone(), whole.clone());
                    Op::State {
                        sequence,
                        customer_id,
                        state: Some(whole),
                        change: Some(EncodedChange {
                            delta,
                            writer,
                            previous_writes,
                        }),
                        done: detached(),
                    }
                }
                Entry::Log(entry) => Op::Log {
                    entries: vec![entry],
                    done: detached(),
                },
                Entry::Budget(change) => Op::Budget {
                    changes: vec![change],
                    done: detached(),
                },
            };
            ops.push(op);
        }
    }
    Ok(ops)
}
