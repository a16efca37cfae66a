//! The L2 grid: fitted on an evenly spaced subsample of the training rows
//! when there are more than `grid_rows`, from the strongest alpha down with
//! warm starts, on one or two threads; the report says which. None of it
//! changes the model beyond the solver's tolerance.

use chrono::{TimeZone as _, Utc};
use ndarray::Array2;
use nudge_training::dataset::Dataset;
use nudge_training::{Event, Silent, TrainOptions, Trained, train};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, StandardNormal};

/// `rows` rows of four features from a known logistic model, ~12 % positive.
fn dataset(rows: usize) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(29);
    let weights = [0.9, -0.6, 0.3, 0.0];
    let mut x = Array2::zeros((rows, weights.len()));
    let mut y = Vec::with_capacity(rows);
    for mut row in x.rows_mut() {
        let mut logit = -2.4;
        for (value, weight) in row.iter_mut().zip(weights) {
            let draw: f64 = StandardNormal.sample(&mut rng);
            *value = 5.0 + 2.0 * draw;
            logit += weight * draw;
        }
        y.push(rng.random::<f64>() < nudge_models::model::sigmoid(logit));
    }
    Dataset {
        source: "synthetic".to_owned(),
        features: (0..weights.len()).map(|i| format!("attr(x{i})")).collect(),
        x,
        y,
        times: None,
        action_ids: None,
        propensities: None,
        columns: Vec::new(),
        choices: Err("synthetic rows".to_owned()),
    }
}

fn options() -> TrainOptions {
    TrainOptions::new(
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0)
            .single()
            .unwrap_or_default(),
    )
}

fn largest_difference(a: &Trained, b: &Trained) -> f64 {
    a.artifact
        .weights
        .iter()
        .zip(&b.artifact.weights)
        .map(|(a, b)| (a - b).abs())
        .fold(
            (a.artifact.intercept - b.artifact.intercept).abs(),
            f64::max,
        )
}

#[test]
fn a_subsampled_warm_started_grid_is_reported_and_chooses_as_the_full_grid_does() {
    let data = dataset(10_000);
    // 10,000 rows: 6,400 training, 1,600 validation, 2,000 holdout.
    let subsampled = TrainOptions {
        grid_rows: 1_000,
        ..options()
    };
    let mut events = Vec::new();
    let trained = train(&data, &subsampled, &mut |event: &Event| {
        events.push(event.clone())
    })
    .expect("trains");
    let report = &trained.report;
    assert_eq!(report.rows.training, 6_400);
    assert_eq!(report.grid_rows, 1_000);
    assert!(
        report
            .grid_sample
            .starts_with("1000 of the 6400 training rows, evenly spaced"),
        "{}",
        report.grid_sample
    );
    assert_eq!(report.options.grid_rows, 1_000);
    assert!(report.options.warm_start);
    // In the order of the options, each but the first of its chain started
    // from the next stronger alpha of that chain.
    let alphas: Vec<f64> = report.validation_grid.iter().map(|p| p.alpha).collect();
    assert_eq!(alphas, subsampled.alphas);
    let threads = report.options.grid_threads;
    for (position, point) in report.validation_grid.iter().enumerate() {
        let stronger = position + threads;
        let expected = report.validation_grid.get(stronger).map(|p| p.alpha);
        assert_eq!(point.start_alpha, expected, "alpha {}", point.alpha);
    }
    assert_eq!(report.final_start_alpha, Some(report.alpha));
    assert!(
        trained
            .artifact
            .description
            .contains("the grid fitted on 1000 evenly spaced of the 6400 rows before those")
    );
    let grid_events: Vec<(usize, Option<f64>)> = events
        .iter()
        .filter_map(|event| match event {
            Event::GridPoint {
                rows, start_alpha, ..
            } => Some((*rows, *start_alpha)),
            _ => None,
        })
        .collect();
    assert_eq!(grid_events.len(), 5);
    assert!(grid_events.iter().all(|(rows, _)| *rows == 1_000));
    assert!(events.iter().any(|event| matches!(
        event,
        Event::Fitted {
            rows: 8_000,
            warm_started: true,
            ..
        }
    )));

    // The whole training slice, cold starts, one thread: the same alpha and,
    // within the solver's tolerance, the same model.
    let full = TrainOptions {
        grid_rows: 1_000_000,
        warm_start: false,
        grid_threads: 1,
        ..options()
    };
    let cold = train(&data, &full, &mut Silent).expect("trains");
    assert_eq!(cold.report.grid_rows, 6_400);
    assert_eq!(cold.report.grid_sample, "all 6400 training rows");
    assert!(
        cold.report
            .validation_grid
            .iter()
            .all(|p| p.start_alpha.is_none())
    );
    assert_eq!(cold.report.final_start_alpha, None);
    assert_eq!(cold.report.alpha, report.alpha);
    let difference = largest_difference(&trained, &cold);
    assert!(difference < 1e-3, "models differ by {difference}");
    assert!((cold.report.auc - report.auc).abs() < 1e-4);
}

#[test]
fn one_thread_or_two_give_the_same_model() {
    let data = dataset(4_000);
    let one = TrainOptions {
        grid_threads: 1,
        ..options()
    };
    let two = TrainOptions {
        grid_threads: 2,
        ..options()
    };
    let one = train(&data, &one, &mut Silent).expect("trains");
    let two = train(&data, &two, &mut Silent).expect("trains");
    assert_eq!(one.report.options.grid_threads, 1);
    assert_eq!(two.report.options.grid_threads, 2);
    // One chain: every point but the strongest starts from the next stronger.
    let starts: Vec<Option<f64>> = one
        .report
        .validation_grid
        .iter()
        .map(|p| p.start_alpha)
        .collect();
    assert_eq!(
        starts,
        vec![Some(1e-3), Some(1e-2), Some(1e-1), Some(1.0), None]
    );
    assert_eq!(one.report.alpha, two.report.alpha);
    for (a, b) in one
        .report
        .validation_grid
        .iter()
        .zip(&two.report.validation_grid)
    {
        assert!((a.log_loss - b.log_loss).abs() < 1e-6, "{a:?} vs {b:?}");
    }
    assert!(largest_difference(&one, &two) < 1e-3);
}

#[test]
fn zero_grid_rows_are_refused() {
    let zero = TrainOptions {
        grid_rows: 0,
        ..options()
    };
    let error = train(&dataset(1_000), &zero, &mut Silent).expect_err("refused");
    assert_eq!(error.to_string(), "--grid-rows 0 must be at least 1");
}
