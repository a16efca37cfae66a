//! Batch training of nudge's logistic model: rows in, a `nudge.logistic/v1`
//! artifact that `nudge serve --model` loads unchanged, and an evaluation
//! report, out. Built on `nudge-models` (the same feature language and
//! scoring code as the service), never on the service itself.
//!
//! A run is: a source produces a [`Dataset`] → [`train`] splits it in time
//! order, chooses the L2 strength on a validation slice, refits, builds the
//! artifact and scores the holdout through it → [`artifact::write_outputs`].
//!
//! - [`dataset`]: the rows any source produces: feature specs, the feature
//!   matrix in serving space, labels, times, action ids, logged
//!   propensities.
//! - [`csv`]: a CSV of customer attributes → a dataset (column typing,
//!   one-hot with an "other" bucket, per-action bias), every bad cell an
//!   error with its line and column.
//! - [`log`]: the decision log's served actions → a dataset, with the
//!   features as logged or replayed from the event log (point in time).
//! - [`score`]: a model profile score's rows (`churn_risk`) from the event
//!   log alone: each customer at daily cut-offs, the profile replayed to
//!   each, labelled by the label event within the horizon after it
//!   (censored at the end of the data, none after the customer's first).
//! - [`split`]: the time-ordered training / validation / holdout split, and
//!   the grid's evenly spaced subsample.
//! - [`scaling`]: standardization, folded back into raw-space weights.
//! - [`fit`]: one linfa fit: L2, class balance, the positive-class sign trap,
//!   warm starts.
//! - [`mod@train`]: the run: grid (on a subsample of many training rows,
//!   warm-started, on two threads), final fit, artifact, evaluation, report.
//! - [`metrics`]: AUC, log loss, calibration, ROC, gain and lift.
//! - [`ope`]: off-policy evaluation of a target policy on logged decisions:
//!   IPS, SNIPS, doubly robust, weight diagnostics and bootstrap intervals,
//!   refusing logs that would mislead.
//! - [`report`]: `report.json` and the self-contained `report.html`.
//! - [`artifact`]: the artifact, validated by the service's loader, and the
//!   output directory.
//! - [`progress`]: progress events for long runs; library code never prints.
//! - [`Error`]: the crate's one error type.

#![forbid(unsafe_code)]

pub mod artifact;
pub mod csv;
pub mod dataset;
mod error;
pub mod fit;
pub mod log;
pub mod metrics;
pub mod ope;
pub mod progress;
pub mod report;
pub mod scaling;
pub mod score;
pub mod split;
pub mod train;

pub use dataset::Dataset;
pub use error::Error;
pub use progress::{Event, Progress, Silent};
pub use train::{TrainOptions, Trained, train};
