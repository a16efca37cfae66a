//! The store's group commits as its metrics report them: a process-global
//! `metrics` recorder that keeps only `nudge_storage_writes_total` and
//! `nudge_storage_commit_duration_seconds` (every other metric is a no-op).
//! From them a bench reads commits per second and writes per commit (the
//! batch size).
//!
//! The store takes its metric handles when it opens, so [`install`] must run
//! before the first store is opened; the counts are cumulative over every
//! store of the process, so benches compare two [`CommitSnapshot`]s.

use crate::report::new_histogram;
use hdrhistogram::Histogram;
use metrics::{Counter, Gauge, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use nudge_service::metrics::{STORAGE_COMMIT_SECONDS, STORAGE_WRITES_TOTAL};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Commit durations and write counts, shared by the recorder and the benches.
#[derive(Debug)]
pub struct CommitStats {
    /// Writes committed (a customer state plus its log entries each count).
    writes: Arc<AtomicU64>,
    /// One entry per commit, in microseconds.
    durations: Arc<CommitDurations>,
}

/// The commit-duration histogram behind `nudge_storage_commit_duration_seconds`.
#[derive(Debug)]
struct CommitDurations(Mutex<Histogram<u64>>);

impl metrics::HistogramFn for CommitDurations {
    fn record(&self, seconds: f64) {
        let micros = (seconds * 1e6).round().max(1.0) as u64;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros);
    }
}

/// The counts at one moment.
#[derive(Debug, Clone)]
pub struct CommitSnapshot {
    /// Writes committed so far.
    pub writes: u64,
    /// Commit durations so far (µs).
    pub durations: Histogram<u64>,
}

impl CommitSnapshot {
    /// What happened between `earlier` and this snapshot: (commits, writes,
    /// commit durations).
    pub fn since(&self, earlier: &CommitSnapshot) -> (u64, u64, Histogram<u64>) {
        let mut durations = self.durations.clone();
        // `earlier` is a prefix of the same recording.
        let _ = durations.subtract(&earlier.durations);
        (
            durations.len(),
            self.writes.saturating_sub(earlier.writes),
            durations,
        )
    }
}

impl CommitStats {
    /// The counts now.
    pub fn snapshot(&self) -> CommitSnapshot {
        CommitSnapshot {
            writes: self.writes.load(Ordering::Relaxed),
            durations: self
                .durations
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

#[derive(Debug)]
struct CommitRecorder(Arc<CommitStats>);

impl Recorder for CommitRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == STORAGE_WRITES_TOTAL {
            Counter::from_arc(self.0.writes.clone())
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        if key.name() == STORAGE_COMMIT_SECONDS {
            metrics::Histogram::from_arc(self.0.durations.clone())
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// Installs the recorder (once per process) and returns its stats.
pub fn install() -> anyhow::Result<Arc<CommitStats>> {
    static STATS: OnceLock<Arc<CommitStats>> = OnceLock::new();
    if let Some(stats) = STATS.get() {
        return Ok(stats.clone());
    }
    let stats = Arc::new(CommitStats {
        writes: Arc::new(AtomicU64::new(0)),
        durations: Arc::new(CommitDurations(Mutex::new(new_histogram()?))),
    });
    metrics::set_global_recorder(CommitRecorder(stats.clone()))
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    Ok(STATS.get_or_init(|| stats).clone())
}
