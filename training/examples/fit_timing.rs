//! Times linfa fits on the synthetic CSV outside `nudge train`: how the
//! layout of the standardized rows and warm starts change one fit. Not part
//! of any test run; the figures in training/RESULTS.md say when they come
//! from here rather than from `nudge train`.
//!
//! ```sh
//! cargo build --release -p nudge-training --example fit_timing
//! target/release/examples/fit_timing /tmp/synthetic-1m.csv layout 640000
//! target/release/examples/fit_timing /tmp/synthetic-1m.csv warm 200000
//! ```
//!
//! `layout`: one fit (alpha 1e-4) of the first ROWS rows standardized
//! row-major (as before) and column-major (as `fit` does now).
//! `warm`: the default grid from the largest alpha down, each alpha fitted
//! cold and warm-started from the previous warm solution, column-major.

use linfa::traits::Fit as _;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis, ShapeBuilder as _};
use nudge_training::csv::{CsvOptions, read_path};
use nudge_training::scaling::Scaler;
use std::time::Instant;

/// Linfa's parameters (weights, then the intercept) and the fit's seconds.
fn fit(
    x: ArrayView2<'_, f64>,
    y: &[bool],
    alpha: f64,
    column_major: bool,
    start: Option<Array1<f64>>,
) -> (Array1<f64>, f64) {
    let scaler = Scaler::fit(x);
    let standardized = scaler.transform(x);
    let standardized = if column_major {
        let mut columns = Array2::zeros(standardized.raw_dim().f());
        columns.assign(&standardized);
        columns
    } else {
        standardized
    };
    let rows = y.len() as f64;
    let mut solver = LogisticRegression::default()
        .alpha(alpha * rows)
        .max_iterations(300)
        .gradient_tolerance(1e-6 * rows);
    if let Some(start) = start {
        solver = solver.initial_params(start);
    }
    let started = Instant::now();
    let fitted = solver
        .fit(&linfa::Dataset::new(standardized, Array1::from(y.to_vec())))
        .expect("fits");
    let seconds = started.elapsed().as_secs_f64();
    let mut parameters = fitted.params().to_vec();
    parameters.push(fitted.intercept());
    (Array1::from(parameters), seconds)
}

fn largest_difference(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    (a - b).iter().fold(0.0, |most, d| f64::max(most, d.abs()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(mode)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: fit_timing CSV layout|warm [ROWS]");
        std::process::exit(2);
    };
    let rows: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(640_000);
    let options = CsvOptions {
        id: Some("customer".to_owned()),
        ..CsvOptions::new("converted")
    };
    let started = Instant::now();
    let data = read_path(path.as_ref(), &options, &mut nudge_training::Silent).expect("reads");
    eprintln!(
        "read and encoded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rows = rows.min(data.len());
    let x = data.x.slice_axis(Axis(0), (0..rows).into());
    let y = &data.y[..rows];
    match mode.as_str() {
        "layout" => {
            let (row_major, row_seconds) = fit(x, y, 1e-4, false, None);
            let (column_major, column_seconds) = fit(x, y, 1e-4, true, None);
            eprintln!(
                "{rows} rows: row-major {row_seconds:.2} s, column-major {column_seconds:.2} s, parameters within {:.1e}",
                largest_difference(&row_major, &column_major)
            );
        }
        "warm" => {
            let mut previous: Option<Array1<f64>> = None;
            let (mut cold_total, mut warm_total) = (0.0, 0.0);
            for alpha in [1.0, 1e-1, 1e-2, 1e-3, 1e-4] {
                let (cold, cold_seconds) = fit(x, y, alpha, true, None);
                let (warm, warm_seconds) = fit(x, y, alpha, true, previous.clone());
                cold_total += cold_seconds;
                warm_total += warm_seconds;
                eprintln!(
                    "alpha {alpha}: cold {cold_seconds:.2} s, warm {warm_seconds:.2} s, parameters within {:.1e}",
                    largest_difference(&cold, &warm)
                );
                previous = Some(warm);
            }
            eprintln!("{rows} rows: the grid cold {cold_total:.2} s, warm {warm_total:.2} s");
        }
        _ => {
            eprintln!("mode: layout or warm");
            std::process::exit(2);
        }
    }
}
