//! The write-ahead log: an append-only file of frames that makes a batch of
//! writes durable with one small append and one `fdatasync`, so that the
//! database (the B-tree file) is written only by a checkpoint every so often,
//! with many changes per customer folded into one.
//!
//! Why: a redb commit rewrites a dozen or more pages (copy-on-write of each
//! B-tree touched, the allocator state) and syncs twice, whatever it holds:
//! tens of kilobytes and two flushes per batch, most of it for one or two
//! decisions when the load is light. A frame holds only what changed — a
//! customer's state as its change from the state before when the writer knows
//! that state, the decision-log records as encoded for the database — and
//! the checkpoint writes the database once for thousands of them.
//!
//! The log is two files: frames are appended to one while the checkpoint of
//! the other's runs on its own thread, so a checkpoint never holds up an
//! answer; the writer turns to the other file once its checkpoint is done.
//!
//! A frame is `[length u32][crc32 u32][lsn u64][payload]` (little-endian;
//! the checksum covers the lsn and the payload). Frames are numbered by a
//! log sequence number (lsn) that only grows; the database records the
//! number of the last frame a checkpoint applied (in the same transaction),
//! so a frame is applied at most once however the process stops. After a
//! checkpoint a file's next frame is written at its start again,
//! over the old ones (no metadata changes to flush while the file need not
//! grow); reading stops at the first frame that is torn, damaged, or not
//! numbered after the one before it — an old frame of an earlier cycle.
//!
//! The payload ([`Encoder`], [`decode`]) is a format byte, then the batch's
//! entries in queue order: state writes, decision-log entries and budget
//! changes. Erasures, compactions and flushes never go through the log:
//! they checkpoint at once.

use super::records::{self, Reader, put_bytes, put_u64};
use super::source::{FaultSwitch, io_error, open_read_write};
use super::{BudgetChange, DecisionRecord, EventRecord, LogEntry, OutcomeRecord, StoreError};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The log's two files, next to the data file: frames go to one while a
/// checkpoint brings the other's into the database.
pub const LOG_FILES: [&str; 2] = ["nudge.0.wal", "nudge.1.wal"];

/// Bytes before the payload: length, checksum, lsn.
const HEADER: usize = 16;

/// The version byte that starts every payload.
const PAYLOAD_FORMAT: u8 = 1;

/// What a frame is called in errors.
const WHAT: &str = "write-ahead log frame";

/// A file kept past this size after a checkpoint is cut back to nothing:
/// a burst that grew it does not keep the disk space for ever.
const KEPT_BYTES: u64 = 256 * 1024 * 1024;

/// The open log file.
#[derive(Debug)]
pub(super) struct WriteAheadLog {
    file: File,
    path: PathBuf,
    /// Where the next frame goes: the end of the last frame written and
    /// synced in this cycle.
    end: u64,
    /// The file's length (frames of earlier cycles may lie past `end`).
    length: u64,
    /// Makes writes fail as if the disk were full, for tests.
    faults: Option<FaultSwitch>,
}

impl WriteAheadLog {
    /// Opens (or creates) the log at `path`; the next frame goes at the
    /// start (call [`WriteAheadLog::read`] first to recover what it holds).
    pub(super) fn open(path: &Path, faults: Option<FaultSwitch>) -> Result<Self, StoreError> {
        let file = open_read_write(path).map_err(|error| io_error(path, error))?;
        let length = file
            .metadata()
            .map_err(|error| io_error(path, error))?
            .len();
        Ok(Self {
            file,
            path: path.to_path_buf(),
            end: 0,
            length,
            faults,
        })
    }

    fn check_faults(&self) -> Result<(), StoreError> {
        if self.faults.as_ref().is_some_and(FaultSwitch::is_on) {
            return Err(io_error(&self.path, std::io::Error::from_raw_os_error(28)));
        }
        Ok(())
    }

    /// Appends one frame numbered `lsn` and syncs it: once this returns Ok
    /// the frame survives a crash.
    pub(super) fn append(&mut self, lsn: u64, payload: &[u8]) -> Result<(), StoreError> {
        self.check_faults()?;
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        let length = u32::try_from(payload.len()).map_err(|_| {
            io_error(
                &self.path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame over 4 GiB"),
            )
        })?;
        frame.extend_from_slice(&length.to_le_bytes());
        frame.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        put_u64(&mut frame, lsn);
        frame.extend_from_slice(payload);
        self.file
            .write_all_at(&frame, self.end)
            .and_then(|()| self.file.sync_data())
            .map_err(|error| io_error(&self.path, error))?;
        self.end += frame.len() as u64;
        self.length = self.length.max(self.end);
        Ok(())
    }

    /// The frames of the current cycle, in order, as (lsn, payload): from
    /// the start of the file up to `limit` bytes (the file's length when
    /// `None`), stopping at the first torn or damaged frame or at one not
    /// numbered after the one before it.
    pub(super) fn read(&self, limit: Option<u64>) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let limit = limit.unwrap_or(self.length).min(self.length);
        let mut frames = Vec::new();
        let mut offset = 0_u64;
        let mut header = [0_u8; HEADER];
        while offset + HEADER as u64 <= limit {
            self.file
                .read_exact_at(&mut header, offset)
                .map_err(|error| io_error(&self.path, error))?;
            let mut reader = Reader::new(WHAT, &header);
            let length = reader.length()? as u64;
            let expected = u32::try_from(reader.length()?).unwrap_or(u32::MAX);
            let lsn = reader.unsigned()?;
            if offset + HEADER as u64 + length > limit {
                break;
            }
            let mut payload = vec![0_u8; length as usize];
            self.file
                .read_exact_at(&mut payload, offset + HEADER as u64)
                .map_err(|error| io_error(&self.path, error))?;
            let in_order = frames.last().is_none_or(|(last, _)| lsn > *last);
            if checksum(lsn, &payload) != expected || !in_order {
                break;
            }
            frames.push((lsn, payload));
            offset += HEADER as u64 + length;
        }
        Ok(frames)
    }

    /// Where the next frame goes: bytes of frames written since the last
    /// checkpoint.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// Starts a new cycle after a checkpoint: the next frame goes at the
    /// start of the file. With `erase` (after a `forget`), or when the file
    /// grew past [`KEPT_BYTES`], the file is cut to nothing, so the frames
    /// of the cycle before are gone rather than waiting to be overwritten.
    pub(super) fn restart(&mut self, erase: bool) -> Result<(), StoreError> {
        self.end = 0;
        if (erase || self.length > KEPT_BYTES) && self.length > 0 {
            self.check_faults()?;
            self.file
                .set_len(0)
                .and_then(|()| self.file.sync_all())
                .map_err(|error| io_error(&self.path, error))?;
            self.length = 0;
        }
        Ok(())
    }
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Entry tags in a payload.
const STATE_WHOLE: u8 = 1;
const STATE_CHANGE: u8 = 2;
const DECISION: u8 = 3;
const OUTCOME: u8 = 4;
const EVENT: u8 = 5;
const BUDGET: u8 = 6;

/// Builds one frame's payload, entry by entry.
#[derive(Debug)]
pub(super) struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    pub(super) fn new() -> Self {
        let mut bytes = Vec::with_capacity(4_096);
        bytes.push(PAYLOAD_FORMAT);
        Self { bytes }
    }

    /// A customer's whole state (encoded).
    pub(super) fn whole_state(&mut self, sequence: u64, customer_id: &str, state: &[u8]) {
        self.bytes.push(STATE_WHOLE);
        put_u64(&mut self.bytes, sequence);
        put_bytes(&mut self.bytes, customer_id.as_bytes());
        put_bytes(&mut self.bytes, state);
    }

    /// A customer's state as its change from the state before, written by
    /// `writer` after `previous_writes` writes.
    pub(super) fn state_change(
        &mut self,
        sequence: u64,
        customer_id: &str,
        delta: &[u8],
        writer: u64,
        previous_writes: u64,
    ) {
        self.bytes.push(STATE_CHANGE);
        put_u64(&mut self.bytes, sequence);
        put_bytes(&mut self.bytes, customer_id.as_bytes());
        put_bytes(&mut self.bytes, delta);
        put_u64(&mut self.bytes, writer);
        put_u64(&mut self.bytes, previous_writes);
    }

    /// A decision-log entry; a decision's feature names only when
    /// `with_names` (the first decision of its model version since the last
    /// checkpoint: the database holds them for the others).
    pub(super) fn log(&mut self, entry: &LogEntry, with_names: bool) -> Result<(), StoreError> {
        match entry {
            LogEntry::Decision {
                record,
                feature_names,
            } => {
                self.bytes.push(DECISION);
                put_bytes(&mut self.bytes, &records::encode(record)?);
                match feature_names.as_deref().filter(|_| with_names) {
                    Some(names) => {
                        self.bytes.push(1);
                        put_bytes(&mut self.bytes, &records::encode(&names)?);
                    }
                    None => self.bytes.push(0),
                }
            }
            LogEntry::Outcome(record) => {
                self.bytes.push(OUTCOME);
                put_bytes(&mut self.bytes, &records::encode(record)?);
            }
            LogEntry::Event(record) => {
                self.bytes.push(EVENT);
                put_bytes(&mut self.bytes, &records::encode(record)?);
            }
        }
        Ok(())
    }

    /// A budget counter's change.
    pub(super) fn budget(&mut self, change: &BudgetChange) {
        self.bytes.push(BUDGET);
        put_bytes(&mut self.bytes, change.action_id.as_bytes());
        self.bytes.extend_from_slice(&change.delta.to_le_bytes());
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// One entry of a frame, decoded.
// Read only when a log is replayed: boxing the decisions would cost an
// allocation each to save bytes that live for the replay alone.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(super) enum Entry {
    /// A customer's state write.
    State {
        /// Its place in the queue when it was written.
        sequence: u64,
        customer_id: Arc<str>,
        state: LoggedState,
    },
    /// A decision-log entry.
    Log(LogEntry),
    /// A budget counter's change.
    Budget(BudgetChange),
}

/// A state write as the log holds it.
#[derive(Debug, PartialEq)]
pub(super) enum LoggedState {
    /// The whole state, encoded.
    Whole(Arc<[u8]>),
    /// Its change from the customer's state before (an encoded
    /// [`nudge_models::delta::StateDelta`]) and who wrote it.
    Change {
        delta: Vec<u8>,
        writer: u64,
        previous_writes: u64,
    },
}

/// The inverse of [`Encoder`].
pub(super) fn decode(payload: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let mut reader = Reader::new(WHAT, payload);
    if reader.byte()? != PAYLOAD_FORMAT {
        return Err(records::undecodable(WHAT, "unknown payload format"));
    }
    let mut entries = Vec::new();
    while !reader.is_empty() {
        let entry = match reader.byte()? {
            STATE_WHOLE => Entry::State {
                sequence: reader.unsigned()?,
                customer_id: Arc::from(reader.text()?),
                state: LoggedState::Whole(Arc::from(reader.field()?)),
            },
            STATE_CHANGE => Entry::State {
                sequence: reader.unsigned()?,
                customer_id: Arc::from(reader.text()?),
                state: LoggedState::Change {
                    delta: reader.field()?.to_vec(),
                    writer: reader.unsigned()?,
                    previous_writes: reader.unsigned()?,
                },
            },
            DECISION => {
                let record: DecisionRecord = records::decode("decision", reader.field()?)?;
                let feature_names = match reader.byte()? {
                    0 => None,
                    _ => {
                        let names: Vec<String> =
                            records::decode("model features", reader.field()?)?;
                        Some(Arc::from(names))
                    }
                };
                Entry::Log(LogEntry::Decision {
                    record,
                    feature_names,
                })
            }
            OUTCOME => {
                let record: OutcomeRecord = records::decode("outcome", reader.field()?)?;
                Entry::Log(LogEntry::Outcome(record))
            }
            EVENT => {
                let record: EventRecord = records::decode("event", reader.field()?)?;
                Entry::Log(LogEntry::Event(record))
            }
            BUDGET => Entry::Budget(BudgetChange {
                action_id: reader.text()?.to_owned(),
                delta: reader.integer()?,
            }),
            _ => return Err(records::undecodable(WHAT, "unknown entry tag")),
        };
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::TempDir;

    fn payload(tag: &str) -> Vec<u8> {
        let mut encoder = Encoder::new();
        encoder.whole_state(7, tag, b"\x80state");
        encoder.finish()
    }

    #[test]
    fn frames_read_back_in_order_and_a_torn_tail_is_left_out() {
        let dir = TempDir::new("wal-frames");
        std::fs::create_dir_all(dir.path()).unwrap();
        let path = dir.path().join(LOG_FILES[0]);
        let mut log = WriteAheadLog::open(&path, None).unwrap();
        log.append(1, &payload("a")).unwrap();
        log.append(2, &payload("b")).unwrap();
        let end = log.end();
        log.append(3, &payload("c")).unwrap();
        drop(log);
        // A crash in the middle of the third frame's write.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(end + 10).unwrap();
        let log = WriteAheadLog::open(&path, None).unwrap();
        let frames = log.read(None).unwrap();
        assert_eq!(
            frames.iter().map(|(lsn, _)| *lsn).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(frames[1].1, payload("b"));
    }

    #[test]
    fn a_new_cycle_overwrites_the_old_frames_and_stops_before_them() {
        let dir = TempDir::new("wal-cycle");
        std::fs::create_dir_all(dir.path()).unwrap();
        let path = dir.path().join(LOG_FILES[0]);
        let mut log = WriteAheadLog::open(&path, None).unwrap();
        for lsn in 1..=5 {
            log.append(lsn, &payload("old")).unwrap();
        }
        log.restart(false).unwrap();
        log.append(6, &payload("new")).unwrap();
        // The old frames 2..=5 still lie past the new one: not read.
        let frames = log.read(None).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0], (6, payload("new")));
        // A damaged frame ends the log too.
        log.append(7, &payload("next")).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", log.end() - 1).unwrap();
        assert_eq!(log.read(None).unwrap().len(), 1);
        // Erasing cuts the file.
        log.restart(true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(log.read(None).unwrap().is_empty());
    }

    #[test]
    fn entries_read_back_as_written() {
        let mut encoder = Encoder::new();
        encoder.whole_state(1, "alice", b"\x80whole");
        encoder.state_change(2, "bob", b"\x81delta", 9, 4);
        encoder.budget(&BudgetChange {
            action_id: "coupon".to_owned(),
            delta: -1,
        });
        let entries = decode(&encoder.finish()).unwrap();
        assert_eq!(
            entries,
            vec![
                Entry::State {
                    sequence: 1,
                    customer_id: Arc::from("alice"),
                    state: LoggedState::Whole(Arc::from(&b"\x80whole"[..])),
                },
                Entry::State {
                    sequence: 2,
                    customer_id: Arc::from("bob"),
                    state: LoggedState::Change {
                        delta: b"\x81delta".to_vec(),
                        writer: 9,
                        previous_writes: 4,
                    },
                },
                Entry::Budget(BudgetChange {
                    action_id: "coupon".to_owned(),
                    delta: -1,
                }),
            ]
        );
        let error = decode(&[PAYLOAD_FORMAT, 99]).unwrap_err();
        assert!(
            error.to_string().contains("write-ahead log frame"),
            "{error}"
        );
    }

    #[test]
    fn a_full_disk_fails_the_append_and_keeps_the_frames_before() {
        let dir = TempDir::new("wal-full");
        std::fs::create_dir_all(dir.path()).unwrap();
        let path = dir.path().join(LOG_FILES[0]);
        let switch = FaultSwitch::default();
        let mut log = WriteAheadLog::open(&path, Some(switch.clone())).unwrap();
        log.append(1, &payload("a")).unwrap();
        switch.set(true);
        let error = log.append(2, &payload("b")).unwrap_err();
        assert!(matches!(error, StoreError::Full { .. }), "{error:?}");
        switch.set(false);
        assert_eq!(log.read(Some(log.end())).unwrap().len(), 1);
    }
}
