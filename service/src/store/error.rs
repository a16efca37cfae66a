//! [`StoreError`]: why a storage call failed, by kind, with its cause. The
//! kind decides the answer (a full disk is RESOURCE_EXHAUSTED, the others
//! UNAVAILABLE); errors are cloned to every writer of a failed batch, so
//! causes are shared.

use std::path::PathBuf;
use std::sync::Arc;

/// A cause of another library's error, shared between clones.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a storage call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the backend) has no space left: writes are refused until
    /// space is freed; reads keep working.
    #[error("storage is full, writes are refused until space is freed: {}: {source}", location.display())]
    Full {
        /// The file or directory written.
        location: PathBuf,
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
    /// Reading or writing failed.
    #[error("storage unavailable: {}: {source}", location.display())]
    Io {
        /// The file or directory.
        location: PathBuf,
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
    /// Another process holds the data file.
    #[error("storage unavailable: {} is in use by another nudge process", location.display())]
    InUse {
        /// The data file.
        location: PathBuf,
    },
    /// A previous write failed and the store is reopening its file.
    #[error("storage unavailable: {}: a previous write failed; the store reopens it", location.display())]
    Reopening {
        /// The data file.
        location: PathBuf,
    },
    /// The backend refused the call for another reason.
    #[error("storage unavailable: {}: {source}", location.display())]
    Backend {
        /// The data file (or the backend's address).
        location: PathBuf,
        /// The backend's error.
        source: Cause,
    },
    /// The data file is damaged: it is left untouched for the operator.
    #[error(
        "storage corrupted: {} {damage}; restore it from a backup or move it away to start with an empty store",
        location.display()
    )]
    Damaged {
        /// The data file.
        location: PathBuf,
        /// What is wrong with it.
        damage: Damage,
    },
    /// A stored record cannot be read back.
    #[error("storage corrupted: {what} cannot be decoded: {source}")]
    Undecodable {
        /// The kind of record, e.g. `customer state`.
        what: &'static str,
        /// The decoder's error.
        source: Cause,
    },
    /// A record could not be encoded.
    #[error("storage encoding failed: {source}")]
    Unencodable {
        /// The encoder's error.
        source: Cause,
    },
    /// The data file was written by another layout version.
    #[error(
        "storage corrupted: the data file has layout version {found}; this nudge reads version {supported}"
    )]
    UnknownLayout {
        /// The file's version.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// The writer thread could not be started.
    #[error("storage unavailable: cannot start the writer: {source}")]
    NoWriter {
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// The write-ahead log's checkpoints are behind (past capacity): new
    /// changes are refused until the running one is done, rather than
    /// queued behind a writer about to wait for it.
    #[error(
        "storage is catching up: {buffered} acknowledged writes wait for a checkpoint; retry shortly"
    )]
    Behind {
        /// Writes waiting for a checkpoint.
        buffered: usize,
    },
    /// A Redis call failed (unreachable, timed out, refused).
    #[error("storage unavailable: redis {operation}: {message}")]
    Redis {
        /// What was asked: `apply`, `load`, `lease`, `connect`, …
        operation: &'static str,
        /// Redis's (or the client's) error.
        message: String,
    },
    /// A write to a partition whose lease this node does not hold.
    #[error("storage refuses the write: this node does not hold partition {partition}'s lease")]
    NotOwner {
        /// The partition.
        partition: u16,
    },
    /// Redis refused a write whose fencing token is stale: another node
    /// took the partition.
    #[error(
        "storage refused a stale write: partition {partition} has fencing token {current}, the write carried {token}"
    )]
    Fenced {
        /// The partition.
        partition: u16,
        /// The token the write carried.
        token: u64,
        /// The partition's current token.
        current: u64,
    },
    /// A partition is leased to another node.
    #[error(
        "storage unavailable: partition {partition} is leased to node '{holder}' until {expires_at} ms; is another nudge using this storage.redis_namespace?"
    )]
    Leased {
        /// The partition.
        partition: u16,
        /// Its holder.
        holder: String,
        /// When the holder's lease ends unless renewed (ms since the epoch, Redis's clock).
        expires_at: i64,
    },
    /// The store is shut down.
    #[error("storage is closed")]
    Closed,
}

/// What is wrong with a damaged data file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Damage {
    /// It has no bytes.
    #[error("is empty (truncated?)")]
    Empty,
    /// The backend refused to open it.
    #[error("cannot be opened: {0}")]
    Unopenable(Cause),
    /// The backend found damage while using it.
    #[error("is damaged: {0}")]
    Found(Cause),
    /// The backend panicked on it (with this message).
    #[error("is damaged ({0})")]
    Panicked(String),
}
