//! `nudge export`: the decision log, streamed from `Admin.ExportDecisions`
//! (or read from a stopped server's data directory), written to a file as
//! Parquet (the training input) or JSON lines; with `--events`, the event
//! log (`Admin.ExportEvents`, [`events`]) the same way. Both paths write the domain's
//! records ([`nudge_models::log::LoggedDecision`]); the stream's wire records
//! are converted first, the data directory's never become wire records.
//!
//! - `rows`: one logged decision flattened into Parquet rows, one per served
//!   action, outcomes joined (pure).
//! - `to_parquet`: the Parquet schema, the Arrow column builders, the writer.
//! - `to_jsonl`: one JSON object per decision.
//! - `events`: the event log's Parquet schema and writer, and its JSON form.
//! - [`read`]: both Parquet exports read back (`nudge train --log`).
//!
//! This file holds [`ExportWriter`], which writes into a temporary file beside
//! the destination and renames it into place only once the whole stream is
//! written, so a failed export never leaves a partial file under that name
//! (and keeps a file it would have replaced), and [`write_stream`], which
//! copies a stream of decisions into it.

mod events;
pub mod read;
mod rows;
mod to_jsonl;
mod to_parquet;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use nudge_models::log::{EventRecord, LoggedDecision};
use nudge_proto::v1 as proto;
use tokio_stream::{Stream, StreamExt as _};
use tonic::Status;

use super::client::status_error;
use to_jsonl::JsonlSink;
use to_parquet::ParquetSink;

/// Rows per Parquet row group: what the writer holds in memory at most.
pub const ROWS_PER_GROUP: usize = 8_192;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Apache Parquet, one row per served action, Snappy-compressed.
    Parquet,
    /// JSON lines, one object per decision with its served actions and
    /// outcomes nested.
    #[value(alias = "ndjson")]
    Jsonl,
}

impl ExportFormat {
    /// The format a file name implies: `.jsonl` or `.ndjson` (any case) is
    /// JSON lines, anything else Parquet.
    pub fn from_path(path: &Path) -> Self {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("jsonl" | "ndjson") => Self::Jsonl,
            _ => Self::Parquet,
        }
    }

    /// The format's name: `parquet` or `jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Jsonl => "jsonl",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The file written.
    pub path: PathBuf,
    pub format: ExportFormat,
    /// Decisions written (0 in an event export).
    pub decisions: u64,
    /// Events written: `Some` for an event export (`--events`).
    pub events: Option<u64>,
    /// Rows written: one per served action (or per decision that served
    /// nothing) in Parquet, one per decision in JSON lines.
    pub rows: u64,
}

/// A file being written under a temporary name; removed when dropped unless
/// [`TempFile::persist`] renamed it into place.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    /// Creates `.<name>.<pid>-<n>.tmp` in the directory of `destination`.
    fn create(destination: &Path) -> anyhow::Result<(Self, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let Some(name) = destination.file_name() else {
            bail!("{} is not a file name", destination.display());
        };
        if destination.is_dir() {
            bail!("{} is a directory; give a file name", destination.display());
        }
        let directory = destination
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let path = directory.join(temp_name);
        let file = File::create_new(&path).with_context(|| {
            format!(
                "cannot write {}: cannot create its temporary file {}",
                destination.display(),
                path.display()
            )
        })?;
        Ok((
            Self {
                path,
                persisted: false,
            },
            file,
        ))
    }

    /// Renames the file to `destination`, replacing any file there.
    fn persist(mut self, destination: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.path, destination).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.path.display(),
                destination.display()
            )
        })?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: the error that got us here matters more.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The format-specific writer (the Parquet one boxed: its column builders are
/// large).
#[derive(Debug)]
enum Sink {
    Parquet(Box<ParquetSink>),
    Jsonl(JsonlSink),
    EventParquet(Box<events::EventParquetSink>),
    EventJsonl(JsonlSink),
}

/// Writes decisions to a file that appears under its name only when
/// [`ExportWriter::finish`] succeeds; dropped before that, it leaves nothing.
#[derive(Debug)]
pub struct ExportWriter {
    destination: PathBuf,
    format: ExportFormat,
    temp: TempFile,
    sink: Sink,
    decisions: u64,
    events: Option<u64>,
    rows: u64,
}

impl ExportWriter {
    /// Starts writing an event export (`--events`) for `destination`.
    pub fn create_events(destination: &Path, format: ExportFormat) -> anyhow::Result<Self> {
        let (temp, file) = TempFile::create(destination)?;
        let sink = match format {
            ExportFormat::Parquet => Sink::EventParquet(Box::new(events::EventParquetSink::new(
                file,
                ROWS_PER_GROUP,
            )?)),
            ExportFormat::Jsonl => Sink::EventJsonl(JsonlSink::new(file)),
        };
        Ok(Self {
            destination: destination.to_owned(),
            format,
            temp,
            sink,
            decisions: 0,
            events: Some(0),
            rows: 0,
        })
    }

    /// Appends one event (of an event export).
    pub fn push_event(&mut self, event: &EventRecord) -> anyhow::Result<()> {
        match &mut self.sink {
            Sink::EventParquet(sink) => sink.push(event)?,
            Sink::EventJsonl(sink) => sink.push_json(&events::record(event))?,
            Sink::Parquet(_) | Sink::Jsonl(_) => bail!("a decision export holds no events"),
        }
        self.events = Some(self.events.unwrap_or(0) + 1);
        self.rows += 1;
        Ok(())
    }

    /// Starts writing `format` for `destination`, whose directory must exist.
    pub fn create(destination: &Path, format: ExportFormat) -> anyhow::Result<Self> {
        Self::with_rows_per_group(destination, format, ROWS_PER_GROUP)
    }

    /// [`ExportWriter::create`] with Parquet row groups of `rows_per_group`
    /// rows (tests use small ones).
    fn with_rows_per_group(
        destination: &Path,
        format: ExportFormat,
        rows_per_group: usize,
    ) -> anyhow::Result<Self> {
        let (temp, file) = TempFile::create(destination)?;
        let sink = match format {
            ExportFormat::Parquet => {
                Sink::Parquet(Box::new(ParquetSink::new(file, rows_per_group)?))
            }
            ExportFormat::Jsonl => Sink::Jsonl(JsonlSink::new(file)),
        };
        Ok(Self {
            destination: destination.to_owned(),
            format,
            temp,
            sink,
            decisions: 0,
            events: None,
            rows: 0,
        })
    }

    /// Decisions written so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Appends one decision.
    pub fn push(&mut self, decision: &LoggedDecision) -> anyhow::Result<()> {
        let rows = match &mut self.sink {
            Sink::Parquet(sink) => {
                let rows = rows::rows(decision);
                sink.push(&rows)?;
                rows.len()
            }
            Sink::Jsonl(sink) => {
                sink.push(decision)?;
                1
            }
            Sink::EventParquet(_) | Sink::EventJsonl(_) => {
                bail!("an event export holds no decisions")
            }
        };
        self.decisions += 1;
        self.rows += rows as u64;
        Ok(())
    }

    /// Completes the file, flushes it to disk and renames it into place.
    pub fn finish(self) -> anyhow::Result<ExportSummary> {
        let Self {
            destination,
            format,
            temp,
            sink,
            decisions,
            events,
            rows,
        } = self;
        let file = match sink {
            Sink::Parquet(sink) => sink.finish()?,
            Sink::EventParquet(sink) => sink.finish()?,
            Sink::Jsonl(sink) | Sink::EventJsonl(sink) => sink.finish()?,
        };
        file.sync_all()
            .with_context(|| format!("cannot flush {} to disk", temp.path.display()))?;
        drop(file);
        temp.persist(&destination)?;
        Ok(ExportSummary {
            path: destination,
            format,
            decisions,
            events,
            rows,
        })
    }
}

/// Writes every event of `events` with `writer` (made by
/// [`ExportWriter::create_events`]) and renames the file into place; on an
/// error nothing is left under the file's name.
pub async fn write_events(
    events: impl Stream<Item = anyhow::Result<EventRecord>>,
    writer: ExportWriter,
) -> anyhow::Result<ExportSummary> {
    copy_into(events, writer, ExportWriter::push_event).await
}

/// Pushes every item of `items` into `writer` and renames the file into
/// place; on an error nothing is left under the file's name and the error
/// says how far the export got.
async fn copy_into<T>(
    items: impl Stream<Item = anyhow::Result<T>>,
    mut writer: ExportWriter,
    push: fn(&mut ExportWriter, &T) -> anyhow::Result<()>,
) -> anyhow::Result<ExportSummary> {
    let copied = async {
        let mut items = std::pin::pin!(items);
        while let Some(item) = items.next().await {
            push(&mut writer, &item?)?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = copied {
        let written = match writer.events {
            Some(events) => format!("{events} events"),
            None => format!("{} decisions", writer.decisions),
        };
        return Err(error.context(format!(
            "export stopped after {written}; {} was not written",
            writer.destination.display()
        )));
    }
    writer.finish()
}

/// Writes every event of the server's stream with `writer`.
pub async fn write_event_stream(
    events: impl Stream<Item = Result<proto::LoggedEvent, Status>>,
    writer: ExportWriter,
) -> anyhow::Result<ExportSummary> {
    let events = events.map(|event| {
        let event = event.map_err(status_error)?;
        Ok(crate::convert::logged_event_from_proto(event)?)
    });
    write_events(events, writer).await
}

/// Writes every decision of the server's stream `decisions` with `writer`
/// and renames the file into place; on a stream or write error, nothing is
/// left under the file's name and the error says how far the export got.
pub async fn write_stream(
    decisions: impl Stream<Item = Result<proto::LoggedDecision, Status>>,
    writer: ExportWriter,
) -> anyhow::Result<ExportSummary> {
    let decisions = decisions.map(|decision| {
        let decision = decision.map_err(status_error)?;
        Ok(crate::convert::logged_decision_from_proto(decision)?)
    });
    write_decisions(decisions, writer).await
}

/// Writes every decision of `decisions` with `writer` and renames the file
/// into place; on an error, nothing is left under the file's name and the
/// error says how far the export got.
pub async fn write_decisions(
    decisions: impl Stream<Item = anyhow::Result<LoggedDecision>>,
    writer: ExportWriter,
) -> anyhow::Result<ExportSummary> {
    copy_into(decisions, writer, ExportWriter::push).await
}

#[cfg(test)]
mod tests;
