//! What every bench shares for its output: HDR histograms in microseconds,
//! Markdown rows of percentiles, a one-line description of the machine, and
//! appending a report to a results file.

use anyhow::Context as _;
use hdrhistogram::Histogram;
use std::path::Path;
use std::time::{Duration, Instant};

/// A histogram of microseconds, 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

/// Records the time since `started`, in microseconds.
pub fn record(histogram: &mut Histogram<u64>, started: Instant) {
    record_duration(histogram, started.elapsed());
}

/// Records `elapsed`, in microseconds.
pub fn record_duration(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// The header of the tables [`row`] fills.
pub const LATENCY_HEADER: &str = "| scenario | calls | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | calls/s |\n|---|---|---|---|---|---|---|---|";

/// One table row: count, percentiles and rate of `histogram` over `wall`.
pub fn row(name: &str, histogram: &Histogram<u64>, wall: Duration) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {:.0} |",
        histogram.len(),
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.90),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        histogram.len() as f64 / wall.as_secs_f64(),
    )
}

/// Milliseconds with one decimal, from microseconds.
pub fn millis(micros: u64) -> String {
    format!("{:.1}", micros as f64 / 1_000.0)
}

/// Cores, CPU model and memory of this machine, e.g. "2 cores (AMD EPYC …), 23.4 GiB".
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| kib_field(&text, "MemTotal:"))
        .map_or_else(
            || "unknown memory".to_owned(),
            |kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)),
        );
    format!("{cores} cores ({cpu}), {memory}")
}

/// The value in KiB of a `Name:   1234 kB` line of a /proc file.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line[name.len()..].split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// Prints `report` and appends it, followed by a blank line, to `out`.
pub fn emit(report: &str, out: Option<&Path>) -> anyhow::Result<()> {
    print!("{report}");
    if let Some(path) = out {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{report}")?;
    }
    Ok(())
}
