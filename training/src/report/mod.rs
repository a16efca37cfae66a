//! The evaluation report written beside the artifact: `report.json` for
//! machines (holdout `auc` and friends at the top level) and `report.html`
//! for people (self-contained: inline CSS and SVG plots, no external URL).
//!
//! - `mod.rs`: the [`Report`] and its parts.
//! - `json.rs`: `report.json`.
//! - `html.rs`: `report.html`, with ROC, reliability, gain/lift and
//!   per-action plots drawn by plotters into inline SVG.

mod html;
mod json;

pub use html::to_html;
pub use json::to_json;

use crate::dataset::ColumnSummary;
use crate::metrics::{GainPoint, ReliabilityBin, RocPoint};
use serde::Serialize;

/// Everything measured about one training run. Holdout numbers are the
/// artifact's own scores (computed by `nudge_models::model::Model`, as the
/// service computes them).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Holdout ROC AUC.
    pub auc: f64,
    /// Holdout mean log loss (natural log).
    pub log_loss: f64,
    /// Holdout expected calibration error over ten equal-width bins.
    pub calibration_error: f64,
    /// Holdout positive rate.
    pub base_rate: f64,
    /// Holdout mean predicted probability (compare with `base_rate`).
    pub mean_predicted: f64,
    /// The artifact's version.
    pub model_version: String,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
    /// Where the rows came from.
    pub source: String,
    /// Rows of each slice.
    pub rows: Slices<usize>,
    /// Positive rate of each slice.
    pub base_rates: Slices<f64>,
    /// Time span of each slice (RFC 3339), when the rows have times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ranges: Option<Slices<Option<(String, String)>>>,
    /// The chosen L2 strength per row (see [`crate::fit::FitOptions::alpha`]).
    pub alpha: f64,
    /// How `alpha` was chosen.
    pub alpha_selection: &'static str,
    /// Training rows each grid fit used (see `grid_sample`).
    pub grid_rows: usize,
    /// Which training rows those were, in words: all of them, or an evenly
    /// spaced subsample.
    pub grid_sample: String,
    /// Each L2 strength of the grid with its validation metrics, in the
    /// order of `options.alphas` (fitted from the largest alpha down).
    pub validation_grid: Vec<GridPoint>,
    /// The alpha of the grid point whose solution the final fit started
    /// from (the chosen one), or `null` when it started from zero.
    pub final_start_alpha: Option<f64>,
    /// How class imbalance was handled.
    pub balance: Balance,
    /// Whether linfa made `false` its positive class (more negatives than
    /// positives) and the signs were flipped back.
    pub positive_class_flipped: bool,
    /// The intercept of the artifact (raw feature space).
    pub intercept: f64,
    /// Every feature with its raw-space weight and the standardization the
    /// solver used.
    pub features: Vec<FeatureWeight>,
    /// How the source's columns became features.
    pub columns: Vec<ColumnSummary>,
    /// Holdout reliability bins.
    pub reliability: Vec<ReliabilityBin>,
    /// Holdout ROC curve.
    pub roc: Vec<RocPoint>,
    /// Holdout cumulative gain and lift.
    pub gain: Vec<GainPoint>,
    /// Holdout metrics per action (empty without an action column).
    pub per_action: Vec<ActionMetrics>,
    /// Off-policy evaluation of the model against the logged policy:
    /// `null` until computed (see `ope_note`).
    pub ope: Option<serde_json::Value>,
    /// Why `ope` is empty.
    pub ope_note: String,
    /// The options of the run.
    pub options: Options,
    /// Wall-clock time of each phase, in milliseconds.
    pub timings_ms: Timings,
}

/// One value per slice.
#[derive(Debug, Clone, Serialize)]
pub struct Slices<T> {
    /// The oldest rows, which fit the grid.
    pub training: T,
    /// The rows just before the holdout, which choose alpha.
    pub validation: T,
    /// The newest rows, evaluated once.
    pub holdout: T,
}

/// One L2 strength of the grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridPoint {
    /// L2 strength per row.
    pub alpha: f64,
    /// Validation AUC.
    pub auc: f64,
    /// Validation log loss.
    pub log_loss: f64,
    /// Time to fit on the grid's training rows, in milliseconds.
    pub fit_ms: f64,
    /// The alpha whose solution this fit started from (a warm start), or
    /// `null` when it started from zero.
    pub start_alpha: Option<f64>,
}

/// How class imbalance was handled.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    /// `none` (the default: probabilities straight from the data) or
    /// `oversample`.
    pub mode: &'static str,
    /// Copies of each positive row in the final fit (1 for none).
    pub oversampling: usize,
    /// Subtracted from the intercept to undo the oversampling (ln of it).
    pub intercept_correction: f64,
}

/// One feature of the artifact.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureWeight {
    /// The feature spec.
    pub feature: String,
    /// Its weight for raw values (as in the artifact).
    pub weight: f64,
    /// Its mean over the fitting rows.
    pub mean: f64,
    /// Its standard deviation over the fitting rows (1 if constant).
    pub scale: f64,
    /// `weight × scale`: the change in log-odds per standard deviation,
    /// comparable across features.
    pub standardized_weight: f64,
}

/// Holdout metrics of one action's rows.
#[derive(Debug, Clone, Serialize)]
pub struct ActionMetrics {
    /// The action id.
    pub action: String,
    /// Holdout rows of this action.
    pub rows: usize,
    /// Fitting rows of this action (the artifact's evidence).
    pub training_rows: usize,
    /// Their positive rate.
    pub base_rate: f64,
    /// Their mean predicted probability.
    pub mean_predicted: f64,
    /// Their AUC, when they have both classes.
    pub auc: Option<f64>,
    /// Their log loss (0 without rows).
    pub log_loss: f64,
}

/// The options of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// Holdout fraction.
    pub holdout: f64,
    /// Validation fraction of the rows before the holdout.
    pub validation: f64,
    /// The L2 grid.
    pub alphas: Vec<f64>,
    /// Whether `--balance` was given.
    pub balance: bool,
    /// Most solver iterations per fit.
    pub max_iterations: u64,
    /// Most training rows per grid fit.
    pub grid_rows: usize,
    /// Whether fits started from a previous solution.
    pub warm_start: bool,
    /// Threads (chains of alphas) that fitted the grid.
    pub grid_threads: usize,
}

/// Wall-clock time of each phase, in milliseconds (for people; tests never
/// read them).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reading and encoding the input (0 when the caller did not measure it).
    pub read: f64,
    /// Fitting and validating the whole grid.
    pub grid: f64,
    /// The final fit.
    pub fit: f64,
    /// Scoring the holdout and computing the metrics.
    pub evaluate: f64,
}
