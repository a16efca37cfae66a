//! Small files the service keeps in its data directory (the model
//! registry's, the journeys' operator pauses), written so that a crash
//! leaves the old file or the new one, never a torn one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a flushed temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    if let Some(parent) = path.parent()
        && let Ok(directory) = std::fs::File::open(parent)
    {
        // Best effort: the rename is durable once the directory is.
        let _ = directory.sync_all();
    }
    Ok(())
}
