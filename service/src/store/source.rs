//! Where the embedded store's database lives ([`Source`]: a file, a file
//! behind a [`FaultSwitch`], or memory), how it is opened without a panic on
//! a damaged file, and the write probe that tells when a full disk has space
//! again.

use super::{Damage, StoreError};
use redb::{Database, DatabaseError, StorageBackend};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub(crate) enum Source {
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
    pub(crate) fn open(&self, cache_bytes: usize) -> Result<Database, StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes);
        let path = match self {
            Source::Memory => {
                return builder
                    .create_with_backend(redb::backends::InMemoryBackend::new())
                    .map_err(|error| StoreError::Backend {
                        location: self.location(),
                        source: Arc::new(error),
                    });
            }
            Source::File(path) | Source::Faulty(path, _) => path,
        };
        if std::fs::metadata(path).is_ok_and(|metadata| metadata.len() == 0) {
            return Err(StoreError::Damaged {
                location: path.clone(),
                damage: Damage::Empty,
            });
        }
        // redb may panic on a damaged file instead of returning an error:
        // turn that into the same clear error.
        let opened = quietly_catch_panic(|| match self {
            Source::Faulty(path, switch) => {
                let file = open_read_write(path)
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
            Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::InUse {
                location: path.clone(),
            }),
            Ok(Err(DatabaseError::Storage(redb::StorageError::Io(error))))
                if error.kind() != std::io::ErrorKind::InvalidData =>
            {
                Err(io_error(path, error))
            }
            Ok(Err(error)) => Err(StoreError::Damaged {
                location: path.clone(),
                damage: Damage::Unopenable(Arc::new(error)),
            }),
            Err(panic) => Err(StoreError::Damaged {
                location: path.clone(),
                damage: Damage::Panicked(panic),
            }),
        }
    }
}

impl Source {
    /// Whether writing works now: a small file written and synced next to
    /// the data file (for a faulty file, the switch).
    pub(crate) fn probe_writable(&self) -> Result<(), StoreError> {
        match self {
            Source::Memory => Ok(()),
            Source::Faulty(path, switch) => {
                if switch.is_on() {
                    Err(io_error(path, std::io::Error::from_raw_os_error(28)))
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
                written.map_err(|error| io_error(path, error))
            }
        }
    }
}

/// Opens (or creates) a file for reading and writing, keeping what it holds.
pub(crate) fn open_read_write(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
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
pub(crate) fn io_error(path: &Path, error: std::io::Error) -> StoreError {
    let location = path.to_path_buf();
    let source = Arc::new(error);
    if source.raw_os_error() == Some(28) {
        StoreError::Full { location, source }
    } else {
        StoreError::Io { location, source }
    }
}

impl Source {
    /// Where the database lives, for error messages.
    pub(crate) fn location(&self) -> PathBuf {
        match self {
            Source::File(path) | Source::Faulty(path, _) => path.clone(),
            Source::Memory => PathBuf::from("(memory)"),
        }
    }
}
