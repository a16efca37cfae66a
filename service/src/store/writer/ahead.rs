//! The writer with a write-ahead log ([`super::super::wal`]): a batch of
//! state writes, log entries and budget changes is made durable by one frame
//! appended to the log and answered at once; the ops stay here, and every
//! `checkpoint_interval` (or when the log passes `checkpoint_bytes`) they
//! are handed to the checkpointer thread, which brings them into the
//! database in one transaction ([`super::commit_batch`], with the number of
//! their last frame) while the writer goes on appending to the log's other
//! file. Until then their states stay in the pending map, so loads see
//! them; the frames not yet checkpointed are replayed at open and when the
//! store recovers from a failure.
//!
//! An erasure, a compaction or a flush is checkpointed on the writer thread
//! with everything before it, once the running checkpoint is done: no frame
//! is appended meanwhile, so no frame ever holds a change of a write that is
//! not in the log or the database.
//!
//! A state write goes into a frame as its change alone when the state it was
//! taken from is the one the log holds last for the customer (the same
//! activation's previous write, kept for the last two checkpoints' worth of
//! frames) or its writer's first write, made on the state it loaded; else
//! whole. The replay rebuilds the whole state by applying the change to the
//! state before it.

use super::super::database::Inner;
use super::super::journal::Journal;
use super::super::source::{Source, io_error};
use super::super::wal::{Encoder, LOG_FILES, WriteAheadLog};
use super::super::{Erased, LogEntry, StoreError};
use super::replay::{last_applied, rebuild};
use super::retained::{Retained, refuse_with};
use super::{Done, Op, commit_batch, detached};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The checkpointer thread's nice value: a tenth of a request thread's
/// share of a busy core (CFS weight 110 against 1,024).
const CHECKPOINT_NICE: i32 = 10;

/// How often an idle writer looks whether the running checkpoint is done.
const POLL: Duration = Duration::from_millis(5);

/// Who wrote a customer's last state in the log: (writer, writes it made
/// before), `None` when that write did not say.
type LastWrite = Option<(u64, u64)>;

/// The writer's log and what its frames since the last checkpoint hold.
#[derive(Debug)]
pub(in crate::store) struct Ahead {
    /// The log's two files; frames go to `logs[current]`.
    logs: [WriteAheadLog; 2],
    current: usize,
    /// The number of the last frame written (or applied).
    lsn: u64,
    /// The ops of the current file's frames, answered already (their answer
    /// senders detached), in order.
    buffered: Vec<Op>,
    /// When the first of them was answered.
    since: Option<Instant>,
    /// Per customer, who wrote its last state in the current file's frames
    /// (`[0]`) and in the file before (`[1]`).
    last_writes: [HashMap<Arc<str>, LastWrite>; 2],
    /// Model versions whose feature names a frame since the last
    /// checkpoint holds (the database holds the others').
    models_logged: HashSet<String>,
    interval: Duration,
    max_bytes: u64,
    /// Most ops waiting for a checkpoint: past it one is started at once,
    /// and while one runs the writer waits for it (memory stays bounded
    /// when the checkpoints fall behind); four fifths of it make the store
    /// refuse new changes while one runs ([`Ahead::publish_backlog`]).
    max_buffered: usize,
    /// The checkpointer thread's queue; `None` once stopped.
    jobs: Option<mpsc::Sender<Job>>,
    finished: mpsc::Receiver<Finished>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Whether a checkpoint of the other file's frames runs (it holds the
    /// writer's journal and models meanwhile).
    running: bool,
}

/// A checkpoint for the checkpointer thread: the ops of one file's frames,
/// with the writer's books lent for the commit.
#[derive(Debug)]
struct Job {
    ops: Vec<Op>,
    through_lsn: u64,
    journal: Journal,
    models: HashSet<String>,
}

/// A checkpoint done: the books back, and whether it committed.
#[derive(Debug)]
struct Finished {
    journal: Journal,
    models: HashSet<String>,
    committed: bool,
}

impl Ahead {
    /// Opens the log of a file store (none in memory or when the options
    /// turn it off), replays what it holds past the last checkpoint into
    /// the database, and starts the checkpointer thread.
    pub(in crate::store) fn open(
        inner: &Arc<Inner>,
        journal: &mut Journal,
    ) -> Result<Option<Self>, StoreError> {
        let (path, faults) = match &inner.source {
            Source::Memory => return Ok(None),
            Source::File(path) => (path, None),
            Source::Faulty(path, switch) => (path, Some(switch.clone())),
        };
        // With the log turned off, a log left by a crash is still replayed
        // (then removed): what it acknowledged is not lost to a setting.
        let left_behind = LOG_FILES
            .iter()
            .any(|file| path.with_file_name(file).exists());
        if !inner.options.write_ahead && !left_behind {
            return Ok(None);
        }
        let logs = [
            WriteAheadLog::open(&path.with_file_name(LOG_FILES[0]), faults.clone())?,
            WriteAheadLog::open(&path.with_file_name(LOG_FILES[1]), faults)?,
        ];
        let (jobs, job_queue) = mpsc::channel::<Job>();
        let (done, finished) = mpsc::channel();
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("nudge-store-checkpoint".to_owned())
            .spawn(move || checkpointer(&thread_inner, &job_queue, &done))
            .map_err(|error| StoreError::NoWriter {
                source: Arc::new(error),
            })?;
        let mut ahead = Self {
            logs,
            current: 0,
            lsn: 0,
            buffered: Vec::new(),
            since: None,
            last_writes: [HashMap::new(), HashMap::new()],
            models_logged: HashSet::new(),
            interval: inner.options.checkpoint_interval,
            max_bytes: inner.options.checkpoint_bytes,
            max_buffered: inner.options.max_buffered_writes.max(1),
            jobs: Some(jobs),
            finished,
            thread: Some(thread),
            running: false,
        };
        let replayed = ahead.replay(inner, journal, &mut HashSet::new(), true)?;
        if replayed > 0 {
            tracing::info!(
                frames = replayed,
                "write-ahead log replayed into the database"
            );
        }
        if !inner.options.write_ahead {
            ahead.stop(journal, &mut HashSet::new());
            for file in LOG_FILES {
                let file = path.with_file_name(file);
                std::fs::remove_file(&file).map_err(|error| io_error(&file, error))?;
            }
            return Ok(None);
        }
        Ok(Some(ahead))
    }

    /// Brings the frames of both files past the last checkpoint into the
    /// database in one transaction and starts both files afresh (cut to
    /// nothing when `cut`); returns how many frames it applied. At open the
    /// files are read whole; after a failure, up to what this process wrote.
    pub(super) fn replay(
        &mut self,
        inner: &Inner,
        journal: &mut Journal,
        models: &mut HashSet<String>,
        at_open: bool,
    ) -> Result<usize, StoreError> {
        let applied = last_applied(inner)?;
        let mut frames = Vec::new();
        for log in &self.logs {
            let limit = (!at_open).then(|| log.end());
            frames.extend(
                log.read(limit)?
                    .into_iter()
                    .filter(|(lsn, _)| *lsn > applied),
            );
        }
        frames.sort_by_key(|(lsn, _)| *lsn);
        self.lsn = self
            .lsn
            .max(applied)
            .max(frames.last().map_or(0, |(lsn, _)| *lsn));
        self.forget_frames();
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
        for log in &mut self.logs {
            log.restart(at_open)?;
        }
        self.current = 0;
        Ok(frames.len())
    }

    /// Drops what the writer keeps of the frames since the last checkpoint
    /// (they are in the log, for a replay).
    fn forget_frames(&mut self) {
        self.buffered.clear();
        self.since = None;
        for last_writes in &mut self.last_writes {
            last_writes.clear();
        }
        self.models_logged.clear();
    }

    /// How long an idle writer may wait for the next write: until a
    /// checkpoint is due, or (while one runs) a short poll for its end;
    /// `None` when nothing waits for one.
    pub(super) fn due_in(&self) -> Option<Duration> {
        if self.running {
            return Some(POLL);
        }
        self.since
            .map(|since| (since + self.interval).saturating_duration_since(Instant::now()))
    }

    /// Whether a checkpoint is due now.
    fn due(&self) -> bool {
        self.since
            .is_some_and(|since| since.elapsed() >= self.interval)
            || self.logs[self.current].end() >= self.max_bytes
            || self.buffered.len() >= self.max_buffered
    }

    /// Tells the store whether the checkpoints are behind: a checkpoint
    /// runs and the ops waiting for the next one reach four fifths of the
    /// bound at which the writer would wait for it. New changes are then
    /// refused up front (fast, and retryable) until that checkpoint is
    /// done; past capacity this replaces late UNAVAILABLE answers from
    /// writes queued behind the wait.
    pub(super) fn publish_backlog(&self, inner: &Inner) {
        let refuse_from = self.max_buffered - self.max_buffered / 5;
        let backlog = if self.running && self.buffered.len() >= refuse_from {
            self.buffered.len()
        } else {
            0
        };
        inner.backlog.store(backlog, Ordering::Release);
    }

    /// Takes back the books from a finished checkpoint, waiting for it when
    /// `wait`; a failed one leaves nothing assumed about the log.
    pub(super) fn collect(
        &mut self,
        journal: &mut Journal,
        models: &mut HashSet<String>,
        wait: bool,
    ) {
        if !self.running {
            return;
        }
        let finished = if wait {
            self.finished.recv().ok()
        } else {
            self.finished.try_recv().ok()
        };
        let Some(finished) = finished else {
            return;
        };
        self.running = false;
        *journal = finished.journal;
        *models = finished.models;
        if !finished.committed {
            // The failure is set; the recovery replays both files.
            self.forget_frames();
        }
    }

    /// Handles one batch: a batch with an erasure, a compaction or a flush
    /// is checkpointed with everything before it; any other is appended to
    /// the log and answered, and a checkpoint started once one is due.
    pub(super) fn write(
        &mut self,
        inner: &Inner,
        batch: Vec<Op>,
        retained: &mut Retained,
        models: &mut HashSet<String>,
        journal: &mut Journal,
    ) {
        // A barrier needs the books the running checkpoint holds; a full
        // buffer waits for it too.
        let barrier = batch.iter().any(needs_checkpoint);
        self.collect(
            journal,
            models,
            barrier || self.buffered.len() >= self.max_buffered,
        );
        if let Some(error) = inner.current_failure() {
            // The checkpoint that just ended failed: nothing more goes into
            // the log (or the database) before the recovery has replayed it.
            for op in batch {
                refuse_with(inner, op, retained, &error);
            }
            return;
        }
        if barrier {
            self.checkpoint_now(inner, batch, retained, models, journal);
            return;
        }
        self.append(inner, batch, retained);
        if self.due() {
            self.start_checkpoint(inner, journal, models);
        }
    }

    /// Starts the checkpoint of the current file's frames on the
    /// checkpointer thread and turns to the other file, unless a checkpoint
    /// runs already (the frames wait for the next one).
    ///
    /// Never while the store fails: the other file may hold the frames of
    /// the checkpoint that failed, which the recovery must replay before
    /// anything is written over them.
    pub(super) fn start_checkpoint(
        &mut self,
        inner: &Inner,
        journal: &mut Journal,
        models: &mut HashSet<String>,
    ) {
        if self.running || self.buffered.is_empty() || inner.current_failure().is_some() {
            return;
        }
        let Some(jobs) = &self.jobs else {
            return;
        };
        let job = Job {
            ops: std::mem::take(&mut self.buffered),
            through_lsn: self.lsn,
            journal: std::mem::take(journal),
            models: std::mem::take(models),
        };
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            // The thread is gone (it panicked): checkpoint here instead.
            *journal = job.journal;
            *models = job.models;
            self.buffered = job.ops;
            return;
        }
        self.running = true;
        self.since = None;
        self.current = 1 - self.current;
        self.last_writes.swap(0, 1);
        self.last_writes[0].clear();
        self.models_logged.clear();
        // The other file's frames were all checkpointed before.
        if let Err(error) = self.logs[self.current].restart(false) {
            tracing::warn!(%error, "write-ahead log file could not be restarted");
        }
    }

    /// Appends `batch` as one frame and answers it; on failure answers it
    /// with the error, retains its states and budget changes for the retry
    /// and makes the store refuse writes.
    fn append(&mut self, inner: &Inner, batch: Vec<Op>, retained: &mut Retained) {
        let started = Instant::now();
        let lsn = self.lsn + 1;
        let mut writes = 0;
        let appended = self
            .encode(&batch, &mut writes)
            .and_then(|payload| self.logs[self.current].append(lsn, &payload));
        match appended {
            Ok(()) => {
                self.lsn = lsn;
                self.since.get_or_insert(started);
                let mut answers = Vec::with_capacity(batch.len());
                for op in batch {
                    if matches!(op, Op::Probe) {
                        // Taken: the next failure may queue another.
                        inner.probe_queued.store(false, Ordering::Release);
                    }
                    let (done, op) = detach(op);
                    answers.extend(done);
                    self.buffered.extend(op);
                }
                // A writer told its change is durable finds the store
                // already refusing the next one if the buffer says so.
                self.publish_backlog(inner);
                for done in answers {
                    let _ = done.send(Ok(Erased::default()));
                }
                inner.metrics.committed(writes, started.elapsed());
            }
            Err(error) => {
                // The failed frame may be on disk whole: the next one gets a
                // later number, so a read never takes the two for one cycle.
                self.lsn = lsn;
                self.forget_frames();
                tracing::error!(%error, "write-ahead log append failed; writes are refused until it recovers");
                inner.set_failure(Some(error.clone()));
                inner.metrics.failed();
                for op in batch {
                    refuse_with(inner, op, retained, &error);
                }
            }
        }
    }

    /// The customer's last write in the frames of the last two files.
    fn last_write(&self, customer_id: &str) -> LastWrite {
        self.last_writes
            .iter()
            .find_map(|last_writes| last_writes.get(customer_id))
            .copied()
            .flatten()
    }

    /// Encodes `batch` as a frame's payload, noting its customers' last
    /// writes; counts the writes in `writes`.
    fn encode(&mut self, batch: &[Op], writes: &mut usize) -> Result<Vec<u8>, StoreError> {
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
                    let last = self.last_write(customer_id);
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
                    self.last_writes[0].insert(
                        customer_id.clone(),
                        change
                            .as_ref()
                            .map(|change| (change.writer, change.previous_writes)),
                    );
                }
                Op::Log { entries, .. } => {
                    *writes += entries.len();
                    for entry in entries {
                        // Names go with the first decision of a version
                        // since the last checkpoint; the database has them
                        // once it is done (a version already there is not
                        // written again).
                        let with_names = match entry {
                            LogEntry::Decision {
                                record,
                                feature_names: Some(_),
                            } => record
                                .model_version
                                .as_ref()
                                .is_some_and(|version| self.models_logged.insert(version.clone())),
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

    /// Commits the ops of every frame not yet checkpointed and `batch` in
    /// one transaction on the writer thread (no checkpoint runs), then
    /// starts both files afresh, cut to nothing when the batch erases a
    /// customer, so their frames are gone with them. On failure the store
    /// refuses writes; the log keeps the frames, which the recovery replays.
    fn checkpoint_now(
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
        self.forget_frames();
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
        for log in &mut self.logs {
            if let Err(error) = log.restart(erase) {
                // The checkpoint is durable; the old frames stay in the
                // file until the next cycle writes over them.
                tracing::warn!(%error, "write-ahead log could not be cut after an erasure");
            }
        }
        self.current = 0;
    }

    /// Waits for the running checkpoint and stops the checkpointer thread.
    pub(super) fn stop(&mut self, journal: &mut Journal, models: &mut HashSet<String>) {
        self.collect(journal, models, true);
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The checkpointer thread's loop: commits each job's ops and gives the
/// books back; returns when the writer stops.
fn checkpointer(inner: &Inner, jobs: &mpsc::Receiver<Job>, finished: &mpsc::Sender<Finished>) {
    // A checkpoint is a burst of B-tree work for a second's worth of
    // writes: at a low priority it mostly takes the CPU the answers leave
    // idle instead of delaying them. Not the lowest: past capacity nothing
    // is left idle, and a starved checkpoint would fill the writer's buffer
    // ([`Ahead::max_buffered`]) and stall every write. Refused (some sandboxes):
    // it runs at the normal priority.
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), CHECKPOINT_NICE)
    {
        tracing::debug!(%error, "checkpointer keeps its priority");
    }
    while let Ok(job) = jobs.recv() {
        #[cfg(test)]
        while inner.hold_checkpoints.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let Job {
            ops,
            through_lsn,
            mut journal,
            mut models,
        } = job;
        let logged = ops.len();
        // Every op is in the log: a failure retains nothing (the recovery
        // replays the log).
        let committed = commit_batch(
            inner,
            ops,
            &mut Retained::default(),
            &mut models,
            &mut journal,
            logged,
            Some(through_lsn),
        )
        .is_ok();
        if finished
            .send(Finished {
                journal,
                models,
                committed,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Whether `op` is applied by a checkpoint rather than through the log.
fn needs_checkpoint(op: &Op) -> bool {
    matches!(
        op,
        Op::State { state: None, .. } | Op::ForgetLog { .. } | Op::Compact { .. } | Op::Flush(_)
    )
}

/// Takes a logged op's sender, to answer it, and gives the op back with its
/// sender detached, for the checkpoint (`None` for a probe, which has
/// nothing to checkpoint).
fn detach(op: Op) -> (Option<Done>, Option<Op>) {
    match op {
        Op::State {
            sequence,
            customer_id,
            state,
            change,
            timer,
            done,
        } => (
            Some(done),
            Some(Op::State {
                sequence,
                customer_id,
                state,
                change,
                timer,
                done: detached(),
            }),
        ),
        Op::Log { entries, done } => (
            Some(done),
            Some(Op::Log {
                entries,
                done: detached(),
            }),
        ),
        Op::Budget { changes, done } => (
            Some(done),
            Some(Op::Budget {
                changes,
                done: detached(),
            }),
        ),
        // Never appended ([`needs_checkpoint`]).
        Op::ForgetLog { .. } | Op::Compact { .. } | Op::Flush(_) => (None, Some(op)),
        Op::Probe => (None, None),
    }
}
