//! One logistic-regression fit with linfa: standardize, optionally oversample
//! positives, solve with L2, undo linfa's choice of positive class, fold the
//! scaling back into raw-space weights, correct the intercept for
//! oversampling.
//!
//! linfa-logistic labels the *more frequent* class as its positive class:
//! with rare positive outcomes its weights and intercept predict the
//! negative outcome, so every sign is flipped back here when its positive
//! class is `false`.
//!
//! A fit may start from another fit's solution ([`Start`], e.g. the
//! previous L2 strength of the grid): the problem is the same and, with any
//! L2, has one minimum, so a warm start changes how many iterations the
//! solver needs, not where it ends (within its tolerance).
//!
//! The standardized rows are handed to linfa in column-major order: its
//! gradient is `xᵀ·r`, which ndarray (without BLAS) computes as one dot
//! product per column; over row-major rows each of those strides through
//! the whole matrix, over column-major rows each reads one contiguous
//! column.

use crate::Error;
use crate::scaling::Scaler;
use linfa::traits::Fit as _;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use ndarray::{Array1, Array2, ArrayView2, ShapeBuilder as _};

/// Most copies of each positive row `--balance` makes.
pub const MAX_OVERSAMPLING: usize = 100;
/// The solver stops once the gradient of the *mean* loss is this small.
/// linfa's tolerance applies to its summed loss, so it gets this times the
/// rows: a fixed absolute tolerance (linfa's default 1e-4) would ask for
/// ever more precision per row as the data grows, and run to the iteration
/// limit.
const GRADIENT_TOLERANCE_PER_ROW: f64 = 1e-6;

/// How a fit is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 strength per row: the solver minimizes the mean log loss plus
    /// `alpha / 2 · |w|²` on standardized features (linfa's own `alpha`,
    /// which multiplies a *sum* of losses, is this times the rows fitted).
    pub alpha: f64,
    /// Oversample positives to about as many as negatives, then correct the
    /// intercept so probabilities stay calibrated.
    pub balance: bool,
    /// Most solver (L-BFGS) iterations.
    pub max_iterations: u64,
}

/// A fitted model in raw (serving) feature space, and how it was made.
#[derive(Debug, Clone)]
pub struct Fit {
    /// One weight per feature, for raw feature values.
    pub weights: Array1<f64>,
    /// The bias, for raw feature values, after any prior correction.
    pub intercept: f64,
    /// The standardization learned on the fitting rows.
    pub scaler: Scaler,
    /// Copies of each positive row fitted (1: no oversampling).
    pub oversampling: usize,
    /// Whether linfa's positive class was `false` (rare positives) and the
    /// signs were flipped back.
    pub flipped: bool,
    /// Rows the solver saw (after oversampling).
    pub rows: usize,
    /// Whether the solver started from a given solution ([`Start`]) rather
    /// than from zero.
    pub warm_started: bool,
    /// The solver's own model, on standardized features, before any flip or
    /// correction: for checking that the artifact scores what it scored.
    pub solver: FittedLogisticRegression<f64, bool>,
}

/// Where a fit starts: another fit's model in raw feature space, before
/// any oversampling correction (the logit the solver itself fitted).
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// One weight per feature, for raw feature values.
    pub weights: Array1<f64>,
    /// The bias for raw feature values, without the prior correction.
    pub intercept: f64,
}

impl Fit {
    /// This fit's solution as the start of another fit (on other rows or
    /// with another L2 strength).
    pub fn start(&self) -> Start {
        Start {
            weights: self.weights.clone(),
            intercept: self.intercept + (self.oversampling as f64).ln(),
        }
    }

    /// The probability of a positive outcome for raw rows `x`: the logistic
    /// of `x · weights + intercept`.
    pub fn probabilities(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        (x.dot(&self.weights) + self.intercept).mapv(nudge_models::model::sigmoid)
    }

    /// The same probabilities as linfa computes them (on standardized rows,
    /// its positive class turned back into "positive outcome"), without the
    /// oversampling correction: equal to [`Fit::probabilities`] when there
    /// was no oversampling.
    pub fn solver_probabilities(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        let probabilities = self.solver.predict_probabilities(&self.scaler.transform(x));
        if self.flipped {
            probabilities.mapv(|p| 1.0 - p)
        } else {
            probabilities
        }
    }
}

/// Fits `y` on the raw rows `x`, starting from zero.
pub fn fit(x: ArrayView2<'_, f64>, y: &[bool], options: FitOptions) -> Result<Fit, Error> {
    fit_from(x, y, options, None)
}

/// Fits `y` on the raw rows `x`, starting from `start` when given (and
/// finite, with one weight per column), else from zero.
pub fn fit_from(
    x: ArrayView2<'_, f64>,
    y: &[bool],
    options: FitOptions,
    start: Option<&Start>,
) -> Result<Fit, Error> {
    let failed = |reason: String| Error::Fit {
        alpha: options.alpha,
        reason,
    };
    let scaler = Scaler::fit(x);
    let positives = y.iter().filter(|label| **label).count();
    let negatives = y.len() - positives;
    let oversampling = if options.balance && positives > 0 {
        (negatives / positives).clamp(1, MAX_OVERSAMPLING)
    } else {
        1
    };
    let (positions, targets) = oversample(y, oversampling);
    let records = standardize_by_columns(x, &scaler, &positions);
    let rows = targets.len();
    let mut solver = LogisticRegression::default()
        .alpha(options.alpha * rows as f64)
        .max_iterations(options.max_iterations)
        .gradient_tolerance(GRADIENT_TOLERANCE_PER_ROW * rows as f64);
    let initial = start.and_then(|start| solver_start(start, &scaler, &targets));
    let warm_started = initial.is_some();
    if let Some(initial) = initial {
        solver = solver.initial_params(initial);
    }
    let solver = solver
        .fit(&linfa::Dataset::new(records, Array1::from(targets)))
        .map_err(|error| failed(error.to_string()))?;
    let flipped = !solver.labels().pos.class;
    let sign = if flipped { -1.0 } else { 1.0 };
    let (weights, intercept) = scaler.fold(&(solver.params() * sign), solver.intercept() * sign);
    // King & Zeng's prior correction: k copies of each positive multiply the
    // odds by k.
    let intercept = intercept - (oversampling as f64).ln();
    if let Some(position) = weights.iter().position(|weight| !weight.is_finite()) {
        return Err(failed(format!(
            "weight {position} came out {}",
            weights[position]
        )));
    }
    if !intercept.is_finite() {
        return Err(failed(format!("the intercept came out {intercept}")));
    }
    Ok(Fit {
        weights,
        intercept,
        scaler,
        oversampling,
        flipped,
        rows,
        warm_started,
        solver,
    })
}

/// The rows `positions` of `x` standardized by `scaler`, in column-major
/// order (see the module documentation), copied in blocks of rows so that
/// both sides stay in cache.
fn standardize_by_columns(
    x: ArrayView2<'_, f64>,
    scaler: &Scaler,
    positions: &[usize],
) -> Array2<f64> {
    const BLOCK: usize = 256;
    let columns = x.ncols();
    let mut out = Array2::zeros((positions.len(), columns).f());
    for (block, rows) in positions.chunks(BLOCK).enumerate() {
        let first = block * BLOCK;
        for (column, mut target) in out.columns_mut().into_iter().enumerate() {
            let (mean, scale) = (scaler.mean[column], scaler.scale[column]);
            let source = x.column(column);
            for (offset, row) in rows.iter().enumerate() {
                target[first + offset] = (source[*row] - mean) / scale;
            }
        }
    }
    out
}

/// `start` as linfa's initial parameters for rows standardized by `scaler`:
/// standardized weights then the intercept, signed for linfa's positive
/// class, which is the more frequent label of `targets` (on a tie, the
/// first row's). `None` when `start` does not fit these columns or is not
/// finite.
fn solver_start(start: &Start, scaler: &Scaler, targets: &[bool]) -> Option<Array1<f64>> {
    let columns = scaler.mean.len();
    if start.weights.len() != columns
        || !start.intercept.is_finite()
        || start.weights.iter().any(|weight| !weight.is_finite())
    {
        return None;
    }
    let positives = targets.iter().filter(|label| **label).count();
    let negatives = targets.len() - positives;
    let positive_is_true = positives > negatives || (positives == negatives && *targets.first()?);
    let sign = if positive_is_true { 1.0 } else { -1.0 };
    // The inverse of `Scaler::fold`.
    let weights = &start.weights * &scaler.scale;
    let intercept = start.intercept + start.weights.dot(&scaler.mean);
    let initial: Vec<f64> = weights
        .iter()
        .chain([&intercept])
        .map(|value| value * sign)
        .collect();
    Some(Array1::from(initial))
}

/// The rows fitted, as positions in `y`: every row once, then each
/// positive row another `copies - 1` times (after the original rows); and
/// their labels.
fn oversample(y: &[bool], copies: usize) -> (Vec<usize>, Vec<bool>) {
    let mut rows: Vec<usize> = (0..y.len()).collect();
    if copies > 1 {
        let positive_rows: Vec<usize> = (0..y.len()).filter(|row| y[*row]).collect();
        for _ in 1..copies {
            rows.extend_from_slice(&positive_rows);
        }
    }
    let targets = rows.iter().map(|row| y[*row]).collect();
    (rows, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Axis, array};

    #[test]
    fn oversampling_repeats_positive_rows() {
        let (rows, targets) = oversample(&[false, true, false], 3);
        assert_eq!(rows, vec![0, 1, 2, 1, 1]);
        assert_eq!(targets, vec![false, true, false, true, true]);
        let x = array![[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]];
        let scaler = Scaler::fit(x.view());
        let records = standardize_by_columns(x.view(), &scaler, &rows);
        assert!(records.t().is_standard_layout(), "column-major");
        let expected = scaler.transform(x.view()).select(Axis(0), &rows);
        assert_eq!(records, expected);
    }

    #[test]
    fn a_balanced_fit_keeps_the_base_rate_calibrated() {
        // No signal at all: the fitted probability must be the base rate,
        // with or without oversampling (then through the prior correction).
        let rows = 1_000;
        let x = Array2::from_shape_fn((rows, 1), |(row, _)| (row % 7) as f64);
        let y: Vec<bool> = (0..rows).map(|row| row % 20 == 0).collect();
        for balance in [false, true] {
            let fit = fit(
                x.view(),
                &y,
                FitOptions {
                    alpha: 1.0,
                    balance,
                    max_iterations: 200,
                },
            )
            .expect("fits");
            let mean = fit.probabilities(x.view()).mean().unwrap_or_default();
            assert!(
                (mean - 0.05).abs() < 0.005,
                "balance {balance}: mean {mean}"
            );
            assert_eq!(fit.oversampling, if balance { 19 } else { 1 });
        }
    }

    /// Rows from a known logistic model with `rate` about the base rate.
    fn logistic_rows(rows: usize, seed: u64, intercept: f64) -> (Array2<f64>, Vec<bool>) {
        // A small deterministic generator: no rand in the library's tests.
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64) / ((1_u64 << 53) as f64)
        };
        let mut x = Array2::zeros((rows, 3));
        let mut y = Vec::with_capacity(rows);
        for mut row in x.rows_mut() {
            row[0] = 40.0 + 10.0 * uniform();
            row[1] = uniform() * 2.0 - 1.0;
            row[2] = if uniform() < 0.3 { 1.0 } else { 0.0 };
            let logit = intercept + 0.15 * (row[0] - 45.0) - 0.8 * row[1] + 0.6 * row[2];
            y.push(uniform() < nudge_models::model::sigmoid(logit));
        }
        (x, y)
    }

    fn largest_difference(a: &Fit, b: &Fit) -> f64 {
        let weights = (&a.weights - &b.weights)
            .iter()
            .fold(0.0_f64, |most, difference| most.max(difference.abs()));
        weights.max((a.intercept - b.intercept).abs())
    }

    #[test]
    fn a_warm_start_ends_where_a_cold_start_does() {
        // Rare positives (linfa's positive class is `false`, signs flipped)
        // and common ones; with and without oversampling; started from a
        // fit with another alpha on other rows.
        for (intercept, balance) in [(-3.0, false), (-3.0, true), (0.8, false)] {
            let (x, y) = logistic_rows(4_000, 3, intercept);
            let options = |alpha| FitOptions {
                alpha,
                balance,
                max_iterations: 300,
            };
            let other = fit(
                x.slice_axis(Axis(0), (0..1_000).into()),
                &y[..1_000],
                options(0.1),
            )
            .expect("fits");
            let cold = fit(x.view(), &y, options(1e-3)).expect("fits");
            let warm = fit_from(x.view(), &y, options(1e-3), Some(&other.start())).expect("fits");
            assert!(!cold.warm_started);
            assert!(warm.warm_started);
            assert_eq!(warm.flipped, cold.flipped);
            // Rare positives: linfa's positive class is `false` (still, or
            // on a tie, after oversampling up to about as many).
            assert_eq!(cold.flipped, intercept < 0.0);
            let difference = largest_difference(&cold, &warm);
            assert!(
                difference < 1e-3,
                "intercept {intercept}, balance {balance}: warm and cold differ by {difference}"
            );
            // Started from its own solution, a fit stays there.
            let again = fit_from(x.view(), &y, options(1e-3), Some(&cold.start())).expect("fits");
            assert!(largest_difference(&cold, &again) < 1e-4);
        }
    }

    #[test]
    fn a_start_that_does_not_fit_the_columns_is_ignored() {
        let (x, y) = logistic_rows(500, 5, -1.0);
        let options = FitOptions {
            alpha: 1e-2,
            balance: false,
            max_iterations: 200,
        };
        for start in [
            Start {
                weights: Array1::zeros(2),
                intercept: 0.0,
            },
            Start {
                weights: Array1::from(vec![f64::NAN, 0.0, 0.0]),
                intercept: 0.0,
            },
        ] {
            let fitted = fit_from(x.view(), &y, options, Some(&start)).expect("fits");
            assert!(!fitted.warm_started);
        }
    }
}
