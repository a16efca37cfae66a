//! The linfa sign trap: linfa-logistic makes the more frequent class its
//! positive class, so with rare positive outcomes its weights predict the
//! *negative* outcome. Training must flip them back: a feature that raises
//! the chance of a positive outcome gets a positive weight.

use chrono::{TimeZone as _, Utc};
use ndarray::Array2;
use nudge_models::model::Model;
use nudge_training::dataset::Dataset;
use nudge_training::{Silent, TrainOptions, train};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, StandardNormal};

const ROWS: usize = 20_000;
/// The true model: logit = INTERCEPT + SIGNAL × x0; x1 is noise.
const INTERCEPT: f64 = -4.6;
const SIGNAL: f64 = 1.2;

/// Rows with about 2 % positives, from a known logistic model.
fn rare_positives(seed: u64) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut x = Array2::zeros((ROWS, 2));
    let mut y = Vec::with_capacity(ROWS);
    for mut row in x.rows_mut() {
        let signal: f64 = StandardNormal.sample(&mut rng);
        let noise: f64 = StandardNormal.sample(&mut rng);
        // Different units, as raw attributes have: scaling must not matter.
        row[0] = 50.0 + 10.0 * signal;
        row[1] = noise * 3.0;
        let probability = nudge_models::model::sigmoid(INTERCEPT + SIGNAL * signal);
        y.push(rng.random::<f64>() < probability);
    }
    Dataset {
        source: "synthetic".to_owned(),
        features: vec!["attr(engagement)".to_owned(), "attr(noise)".to_owned()],
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
        Utc.with_ymd_and_hms(2026, 11, 30, 4, 12, 0)
            .single()
            .unwrap_or_default(),
    )
}

#[test]
fn rare_positives_get_positive_weights_and_a_high_auc() {
    let dataset = rare_positives(7);
    let rate = dataset.y.iter().filter(|label| **label).count() as f64 / ROWS as f64;
    assert!((0.01..0.03).contains(&rate), "about 2 % positives: {rate}");
    let trained = train(&dataset, &options(), &mut Silent).expect("trains");
    let report = &trained.report;
    // Raw-space weight: SIGNAL per standard deviation of 10 units.
    let weight = trained.artifact.weights[0];
    assert!(weight > 0.0, "the signal's weight is positive: {weight}");
    assert!(
        (weight * 10.0 - SIGNAL).abs() < 0.3,
        "close to the true {SIGNAL} per standard deviation: {}",
        weight * 10.0
    );
    assert!(
        trained.artifact.weights[1].abs() * 3.0 < 0.15,
        "noise stays small"
    );
    assert!(
        report.positive_class_flipped,
        "linfa made `false` its positive class"
    );
    assert!(report.auc > 0.75, "holdout auc {}", report.auc);
    // Calibrated: the mean prediction is near the holdout's base rate.
    assert!(
        (report.mean_predicted - report.base_rate).abs() < 0.01,
        "mean predicted {} vs base rate {}",
        report.mean_predicted,
        report.base_rate
    );
}

#[test]
fn the_artifact_scores_exactly_what_linfa_scored() {
    let dataset = rare_positives(11);
    let trained = train(&dataset, &options(), &mut Silent).expect("trains");
    let model = Model::from_artifact(trained.artifact.clone()).expect("the service loads it");
    let served = model.score(&dataset.x);
    let solver = trained.fit.solver_probabilities(dataset.x.view());
    for (row, (served, solver)) in served.iter().zip(&solver).enumerate() {
        assert!(
            (served - solver).abs() < 1e-9,
            "row {row}: artifact {served} vs linfa {solver}"
        );
    }
}

#[test]
fn balancing_oversamples_and_stays_calibrated() {
    let dataset = rare_positives(13);
    let balanced = TrainOptions {
        balance: true,
        ..options()
    };
    let trained = train(&dataset, &balanced, &mut Silent).expect("trains");
    let report = &trained.report;
    assert_eq!(report.balance.mode, "oversample");
    assert!(report.balance.oversampling > 10, "{:?}", report.balance);
    assert!(
        (report.balance.intercept_correction - (report.balance.oversampling as f64).ln()).abs()
            < 1e-12
    );
    assert!(trained.artifact.weights[0] > 0.0);
    assert!(report.auc > 0.75, "holdout auc {}", report.auc);
    assert!(
        (report.mean_predicted - report.base_rate).abs() < 0.015,
        "the prior correction keeps probabilities calibrated: mean predicted {} vs base rate {}",
        report.mean_predicted,
        report.base_rate
    );
}
