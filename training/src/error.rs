//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading rows, training or writing the
/// outputs; each variant names the offending value, and the CSV ones the line
/// and column.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot write`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The CSV itself is malformed (bad quoting, not UTF-8, ...).
    #[error("{file}: line {line}: {reason}")]
    Csv {
        /// The input's name.
        file: String,
        /// The 1-based line.
        line: u64,
        /// What the CSV reader said.
        reason: String,
    },
    /// The file has no header or no data row.
    #[error("{file}: {reason}")]
    Empty {
        /// The input's name.
        file: String,
        /// What is missing.
        reason: &'static str,
    },
    /// A column named by an option is not in the header.
    #[error("{file}: no column '{column}' (the {role} column); the header has: {header}")]
    MissingColumn {
        /// The input's name.
        file: String,
        /// The column asked for.
        column: String,
        /// Which option named it: label, id, time, action, ignore.
        role: &'static str,
        /// The header's columns, comma-separated.
        header: String,
    },
    /// A header problem: a duplicate name, or a name that cannot be a
    /// customer attribute in a feature spec.
    #[error("{file}: column '{column}': {reason}")]
    BadColumn {
        /// The input's name.
        file: String,
        /// The column as written in the header.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row has more or fewer fields than the header.
    #[error("{file}: line {line}: {found} fields, the header has {expected}")]
    FieldCount {
        /// The input's name.
        file: String,
        /// The 1-based line.
        line: u64,
        /// Fields in this row.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// One cell cannot be used: NaN or infinite, a non-binary label, a bad
    /// time, a text in a numeric column, ...
    #[error("{file}: line {line}, column '{column}': '{value}' {reason}")]
    BadCell {
        /// The input's name.
        file: String,
        /// The 1-based line.
        line: u64,
        /// The column's name.
        column: String,
        /// The cell as written.
        value: String,
        /// Why it cannot be used, e.g. `is not a finite number`.
        reason: String,
    },
    /// A decision log export gives nothing to train on.
    #[error("{file}: {reason}")]
    Log {
        /// The export's name.
        file: String,
        /// What is missing.
        reason: String,
    },
    /// An event log export gives no labelled example for a profile score.
    #[error("{file}: {reason}")]
    Events {
        /// The export's name.
        file: String,
        /// What is missing.
        reason: String,
    },
    /// A feature a profile score's model cannot be trained on from the
    /// event log (the request context, the action, a score, a tier or
    /// channel engagement).
    #[error("'{spec}' cannot be a feature of score {score}: {reason}")]
    ScoreFeature {
        /// The score being trained.
        score: String,
        /// The feature spec as given.
        spec: String,
        /// Why it cannot be.
        reason: &'static str,
    },
    /// No column is left to be a feature.
    #[error("{file}: no feature column (every column is the label, id, time, action or ignored)")]
    NoFeatures {
        /// The input's name.
        file: String,
    },
    /// An option is out of range.
    #[error("{option} {value} {reason}")]
    BadOption {
        /// The option, e.g. `--holdout`.
        option: &'static str,
        /// Its value as given.
        value: String,
        /// The allowed range.
        reason: &'static str,
    },
    /// A slice of the time-ordered rows has no row, or one class only, so it
    /// cannot fit or evaluate a model.
    #[error(
        "the {slice} slice ({rows} rows, {positives} positive) {reason}; it needs both classes: more rows, or a different --holdout / --validation"
    )]
    BadSlice {
        /// `training`, `validation` or `holdout`.
        slice: &'static str,
        /// Its rows.
        rows: usize,
        /// Its positive rows.
        positives: usize,
        /// `is empty` or `has one class only`.
        reason: &'static str,
    },
    /// The solver failed.
    #[error("fitting with alpha {alpha} failed: {reason}")]
    Fit {
        /// The L2 strength of the failed fit.
        alpha: f64,
        /// linfa's reason.
        reason: String,
    },
    /// The trained artifact does not load: a bug, never written out.
    #[error("the trained artifact does not load: {0}")]
    Artifact(#[from] nudge_models::Error),
    /// The output directory already holds a model or report.
    #[error("{} already holds {file}; pass --force to replace it", dir.display())]
    WouldOverwrite {
        /// The output directory.
        dir: PathBuf,
        /// The file that would be replaced.
        file: &'static str,
    },
    /// The report could not be rendered.
    #[error("cannot draw the {plot} plot: {reason}")]
    Plot {
        /// Which plot.
        plot: &'static str,
        /// The drawing backend's reason.
        reason: String,
    },
    /// The report could not be serialized.
    #[error("cannot serialize the report: {0}")]
    Json(#[from] serde_json::Error),
}
