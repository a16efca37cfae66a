//! The rows a model is trained on, whatever their source: a CSV of customer
//! attributes ([`crate::csv`]), the decision log's served actions
//! ([`crate::log`]) or, for a profile score, customers at cut-offs replayed
//! from the event log ([`crate::score`]).

use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;

/// Training rows in time order, with their features already computed in
/// the serving feature language: column `j` of `x` is the value the service
/// computes for `features[j]`, so an artifact with these features and
/// weights scores a customer exactly as training scored the row.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the rows came from, for the artifact's description and the
    /// report (e.g. `customers.csv`).
    pub source: String,
    /// The feature specs, in column order (`attr(tenure)`, `is(plan,pro)`,
    /// `action(upgrade_offer)`, ...).
    pub features: Vec<String>,
    /// One row per example, one column per feature, in serving space
    /// (unscaled).
    pub x: Array2<f64>,
    /// Whether each row's outcome was positive.
    pub y: Vec<bool>,
    /// Each row's time in milliseconds since the epoch, when the source has
    /// times; rows are already in this order (stable: ties keep source order).
    pub times: Option<Vec<i64>>,
    /// Each row's action id, when the rows are about actions: per-action
    /// evidence and per-action metrics come from it.
    pub action_ids: Option<Vec<String>>,
    /// Each row's logged selection probability, when the rows come from a
    /// decision log (for off-policy evaluation); `None` for a CSV.
    pub propensities: Option<Vec<f64>>,
    /// How the source's columns became features, for the report.
    pub columns: Vec<ColumnSummary>,
    /// The logged decisions' first slots with every eligible action's
    /// features, for off-policy evaluation of the trained model's policy;
    /// `Err` says why there are none (a CSV, or a log without replay).
    pub choices: Result<Vec<crate::log::LoggedChoice>, String>,
}

/// How one source column was used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSummary {
    /// The column's name.
    pub name: String,
    /// What it is: `label`, `id`, `time`, `action`, `ignored`, `numeric`,
    /// `boolean` or `categorical`.
    pub kind: ColumnKind,
    /// Empty cells among the rows.
    pub missing: usize,
    /// The levels kept as one-hot features (categorical columns).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// How many distinct levels of the fitting rows went to the "other"
    /// bucket (rare, beyond the maximum, or not writable in a feature spec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_levels: Option<usize>,
    /// The features this column produced, in column order.
    pub features: Vec<String>,
}

/// The role or type of a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// The outcome to predict.
    Label,
    /// A row identifier, not a feature.
    Id,
    /// The row's time: orders the rows, not a feature.
    Time,
    /// The action id of the row: per-action bias features.
    Action,
    /// Left out on request.
    Ignored,
    /// Numbers: `attr(NAME)`.
    Numeric,
    /// true/false: `attr(NAME)` (booleans read 0/1 at serving).
    Boolean,
    /// Text: one `is(NAME,LEVEL)` per kept level and `is_none_of` for the rest.
    Categorical,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The rows `range` of `x`.
    pub fn rows(&self, range: std::ops::Range<usize>) -> ArrayView2<'_, f64> {
        self.x.slice_axis(Axis(0), ndarray::Slice::from(range))
    }
}
