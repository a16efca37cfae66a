//! One logistic-regression fit with linfa: standardize, optionally oversample
//! positives, solve with L2, undo linfa's choice of positive class, fold the
//! scaling back into raw-space weights, correct the intercept for
//! oversampling.
//!
//! linfa-logistic labels the *more frequent* class as its positive class:
//! with rare positive outcomes its weights and intercept predict the
//! negative outcome, so every sign is flipped back here when its positive
//! class is `false`.

use crate::Error;
use crate::scaling::Scaler;
use linfa::traits::Fit as _;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use ndarray::{Array1, Array2, ArrayView2, Axis};

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
    /// The solver's own model, on standardized features, before any flip or
    /// correction: for checking that the artifact scores what it scored.
    pub solver: FittedLogisticRegression<f64, bool>,
}

impl Fit {
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

/// Fits `y` on the raw rows `x`.
pub fn fit(x: ArrayView2<'_, f64>, y: &[bool], options: FitOptions) -> Result<Fit, Error> {
    let failed = |reason: String| Error::Fit {
        alpha: options.alpha,
        reason,
    };
    let scaler = Scaler::fit(x);
    let standardized = scaler.transform(x);
    let positives = y.iter().filter(|label| **label).count();
    let negatives = y.len() - positives;
    let oversampling = if options.balance && positives > 0 {
        (negatives / positives).clamp(1, MAX_OVERSAMPLING)
    } else {
        1
    };
    let (records, targets) = oversample(standardized, y, oversampling);
    let rows = targets.len();
    let solver = LogisticRegression::default()
        .alpha(options.alpha * rows as f64)
        .max_iterations(options.max_iterations)
        .gradient_tolerance(GRADIENT_TOLERANCE_PER_ROW * rows as f64)
        .fit(&linfa::Dataset::new(records, targets))
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
        solver,
    })
}

/// The rows with each positive row repeated `copies` times in all (appended
/// after the original rows).
fn oversample(x: Array2<f64>, y: &[bool], copies: usize) -> (Array2<f64>, Array1<bool>) {
    if copies <= 1 {
        return (x, Array1::from(y.to_vec()));
    }
    let positive_rows: Vec<usize> = (0..y.len()).filter(|row| y[*row]).collect();
    let extra = x.select(Axis(0), &positive_rows);
    let mut records = x;
    let mut targets = y.to_vec();
    for _ in 1..copies {
        // Same column count by construction.
        let _ = records.append(Axis(0), extra.view());
        targets.extend(std::iter::repeat_n(true, positive_rows.len()));
    }
    (records, Array1::from(targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn oversampling_repeats_positive_rows() {
        let x = array![[1.0], [2.0], [3.0]];
        let (records, targets) = oversample(x, &[false, true, false], 3);
        assert_eq!(records.column(0).to_vec(), vec![1.0, 2.0, 3.0, 2.0, 2.0]);
        assert_eq!(targets.to_vec(), vec![false, true, false, true, true]);
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
}
