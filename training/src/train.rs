//! The run: split in time order, choose the L2 strength on the validation
//! slice, refit on training + validation, build the artifact, and evaluate
//! it once on the holdout through the artifact itself.

use crate::Error;
use crate::artifact;
use crate::dataset::Dataset;
use crate::fit::{self, FitOptions};
use crate::metrics;
use crate::ope;
use crate::progress::{Event, Progress};
use crate::report::{
    ActionMetrics, Balance, FeatureWeight, GridPoint, Options, Report, Slices, Timings,
};
use crate::split::Split;
use chrono::{DateTime, SecondsFormat, Utc};
use nudge_models::model::ModelArtifact;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;

/// The L2 strengths tried by default (per row, on standardized features).
pub const DEFAULT_ALPHAS: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The newest fraction of rows held out for evaluation.
    pub holdout: f64,
    /// The fraction of the rows before the holdout that chooses alpha.
    pub validation: f64,
    /// The L2 strengths to choose from (per row; see [`FitOptions::alpha`]).
    pub alphas: Vec<f64>,
    /// Oversample positives, then correct the intercept.
    pub balance: bool,
    /// Most solver iterations per fit.
    pub max_iterations: u64,
    /// The artifact's version; derived from `now` when `None`.
    pub version: Option<String>,
    /// The time of training: the artifact's `trained_at` and default version.
    pub now: DateTime<Utc>,
}

impl TrainOptions {
    /// The defaults: 20 % holdout, 20 % of the rest to validate, the default
    /// grid, no balancing, 300 iterations.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            holdout: 0.2,
            validation: 0.2,
            alphas: DEFAULT_ALPHAS.to_vec(),
            balance: false,
            max_iterations: 300,
            version: None,
            now,
        }
    }

    /// The version: as given, or `trained-YYYYMMDDTHHMM` from `now`.
    pub fn version(&self) -> String {
        self.version
            .clone()
            .unwrap_or_else(|| format!("trained-{}", self.now.format("%Y%m%dT%H%M")))
    }
}

/// What a run produces.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The artifact, already loaded once by the service's loader.
    pub artifact: ModelArtifact,
    /// The evaluation.
    pub report: Report,
    /// The final fit (raw-space weights, scaler, the solver's own model).
    pub fit: fit::Fit,
    /// The split the report's slices refer to.
    pub split: Split,
}

/// Trains on `dataset`, whatever its source.
pub fn train(
    dataset: &Dataset,
    options: &TrainOptions,
    progress: &mut dyn Progress,
) -> Result<Trained, Error> {
    if options.alphas.is_empty() || options.alphas.iter().any(|a| !a.is_finite() || *a < 0.0) {
        return Err(Error::BadOption {
            option: "alphas",
            value: format!("{:?}", options.alphas),
            reason: "must be one or more finite, non-negative numbers",
        });
    }
    let split = Split::new(dataset.len(), options.holdout, options.validation)?;
    split.check(&dataset.y)?;
    progress.report(&Event::Split {
        train: split.train.len(),
        validation: split.validation.len(),
        holdout: split.holdout.len(),
        features: dataset.features.len(),
    });
    let fit_options = |alpha| FitOptions {
        alpha,
        balance: options.balance,
        max_iterations: options.max_iterations,
    };

    let grid_started = Instant::now();
    let mut grid = Vec::with_capacity(options.alphas.len());
    let validation_labels = &dataset.y[split.validation.clone()];
    for (position, &alpha) in options.alphas.iter().enumerate() {
        let started = Instant::now();
        let fitted = fit::fit(
            dataset.rows(split.train.clone()),
            &dataset.y[split.train.clone()],
            fit_options(alpha),
        )?;
        let elapsed = started.elapsed();
        let probabilities = fitted.probabilities(dataset.rows(split.validation.clone()));
        let probabilities = probabilities.as_slice().unwrap_or_default();
        let auc = metrics::auc(probabilities, validation_labels).unwrap_or(0.5);
        let log_loss = metrics::log_loss(probabilities, validation_labels);
        progress.report(&Event::GridPoint {
            position: position + 1,
            of: options.alphas.len(),
            alpha,
            auc,
            log_loss,
            elapsed,
        });
        grid.push(GridPoint {
            alpha,
            auc,
            log_loss,
            fit_ms: elapsed.as_secs_f64() * 1e3,
        });
    }
    let grid_ms = grid_started.elapsed().as_secs_f64() * 1e3;
    // Lowest validation log loss; on a tie the stronger regularization.
    let alpha = grid
        .iter()
        .min_by(|a, b| {
            a.log_loss
                .total_cmp(&b.log_loss)
                .then(b.alpha.total_cmp(&a.alpha))
        })
        .map_or(options.alphas[0], |point| point.alpha);

    let fit_started = Instant::now();
    let fitting = split.fitting();
    let fitted = fit::fit(
        dataset.rows(fitting.clone()),
        &dataset.y[fitting.clone()],
        fit_options(alpha),
    )?;
    let fit_elapsed = fit_started.elapsed();
    progress.report(&Event::Fitted {
        alpha,
        rows: fitted.rows,
        elapsed: fit_elapsed,
    });

    let evaluate_started = Instant::now();
    let version = options.version();
    let trained_at = options.now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let description = describe(dataset, &split, alpha, &fitted, options);
    let (artifact, model) = artifact::build(
        dataset,
        fitting.clone(),
        &fitted,
        version.clone(),
        description,
        trained_at.clone(),
    )?;
    // The holdout is scored by the service's own model code.
    let holdout_x = dataset.rows(split.holdout.clone()).to_owned();
    let scores = model.score(&holdout_x).to_vec();
    let labels = &dataset.y[split.holdout.clone()];
    let auc = metrics::auc(&scores, labels).unwrap_or(0.5);
    let log_loss = metrics::log_loss(&scores, labels);
    let reliability = metrics::reliability(&scores, labels);
    progress.report(&Event::Evaluated { auc, log_loss });
    let (ope, ope_note) = off_policy(dataset, &split, &model);

    let report = Report {
        auc,
        log_loss,
        calibration_error: metrics::calibration_error(&reliability),
        base_rate: metrics::base_rate(labels),
        mean_predicted: mean(&scores),
        model_version: version,
        trained_at,
        source: dataset.source.clone(),
        rows: slices(&split, |range| range.len()),
        base_rates: slices(&split, |range| metrics::base_rate(&dataset.y[range])),
        time_ranges: dataset
            .times
            .as_ref()
            .map(|times| slices(&split, |range| time_range(&times[range]))),
        alpha,
        alpha_selection: "the lowest validation log loss (ties: the larger alpha)",
        validation_grid: grid,
        balance: Balance {
            mode: if options.balance {
                "oversample"
            } else {
                "none"
            },
            oversampling: fitted.oversampling,
            intercept_correction: (fitted.oversampling as f64).ln(),
        },
        positive_class_flipped: fitted.flipped,
        intercept: fitted.intercept,
        features: dataset
            .features
            .iter()
            .enumerate()
            .map(|(column, feature)| FeatureWeight {
                feature: feature.clone(),
                weight: fitted.weights[column],
                mean: fitted.scaler.mean[column],
                scale: fitted.scaler.scale[column],
                standardized_weight: fitted.weights[column] * fitted.scaler.scale[column],
            })
            .collect(),
        columns: dataset.columns.clone(),
        roc: metrics::roc(&scores, labels),
        gain: metrics::gain(&scores, labels),
        reliability,
        per_action: per_action(dataset, &split, &scores),
        ope,
        ope_note,
        options: Options {
            holdout: options.holdout,
            validation: options.validation,
            alphas: options.alphas.clone(),
            balance: options.balance,
            max_iterations: options.max_iterations,
        },
        timings_ms: Timings {
            read: 0.0,
            grid: grid_ms,
            fit: fit_elapsed.as_secs_f64() * 1e3,
            evaluate: evaluate_started.elapsed().as_secs_f64() * 1e3,
        },
    };
    Ok(Trained {
        artifact,
        report,
        fit: fitted,
        split,
    })
}

/// Off-policy evaluation of the trained model's serving policy against the
/// logging policy, on the holdout's decisions (those made at or after the
/// holdout's first row): the evaluation, or why there is none.
fn off_policy(
    dataset: &Dataset,
    split: &Split,
    model: &nudge_models::model::Model,
) -> (Option<serde_json::Value>, String) {
    let choices = match &dataset.choices {
        Ok(choices) => choices,
        Err(reason) => return (None, reason.clone()),
    };
    let since = dataset
        .times
        .as_ref()
        .and_then(|times| times.get(split.holdout.start))
        .copied()
        .unwrap_or(i64::MIN);
    let holdout: Vec<_> = choices
        .iter()
        .filter(|choice| choice.at >= since)
        .cloned()
        .collect();
    let samples = ope::policy::samples(&holdout, model);
    match ope::evaluate(&samples, &ope::Options::default()) {
        Ok(evaluation) => match serde_json::to_value(&evaluation) {
            Ok(value) => (
                Some(value),
                format!(
                    "the first slot of the {} holdout decisions the model scored, the new model's policy (its P·V·L·C ranking with each placement's exploration) against the logged one; reward: conversion",
                    holdout.len()
                ),
            ),
            Err(error) => (None, format!("off-policy evaluation not reported: {error}")),
        },
        Err(refusal) => (None, format!("no off-policy evaluation: {refusal}")),
    }
}

/// The artifact's description: what data, which options.
fn describe(
    dataset: &Dataset,
    split: &Split,
    alpha: f64,
    fitted: &fit::Fit,
    options: &TrainOptions,
) -> String {
    let fitting = split.fitting();
    let balance = if options.balance {
        format!(
            "positives oversampled ×{} then the intercept corrected by −ln {}",
            fitted.oversampling, fitted.oversampling
        )
    } else {
        "no reweighting".to_owned()
    };
    format!(
        "logistic regression trained by `nudge train` on {}: {} rows before the holdout (base rate {:.4}), {} features, L2 alpha {alpha} per row chosen on the last {} of them, {balance}; holdout: the newest {} rows",
        dataset.source,
        fitting.len(),
        metrics::base_rate(&dataset.y[fitting]),
        dataset.features.len(),
        split.validation.len(),
        split.holdout.len(),
    )
}

/// `value` of each slice's range.
fn slices<T>(split: &Split, value: impl Fn(Range<usize>) -> T) -> Slices<T> {
    Slices {
        training: value(split.train.clone()),
        validation: value(split.validation.clone()),
        holdout: value(split.holdout.clone()),
    }
}

/// First and last time of a slice, RFC 3339.
fn time_range(times: &[i64]) -> Option<(String, String)> {
    let text = |millis: i64| {
        DateTime::<Utc>::from_timestamp_millis(millis)
            .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_else(|| millis.to_string())
    };
    Some((text(*times.first()?), text(*times.last()?)))
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Holdout metrics per action, by action id.
fn per_action(dataset: &Dataset, split: &Split, scores: &[f64]) -> Vec<ActionMetrics> {
    let Some(ids) = &dataset.action_ids else {
        return Vec::new();
    };
    let mut training_rows: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &ids[split.fitting()] {
        *training_rows.entry(id).or_default() += 1;
    }
    let mut holdout: BTreeMap<&str, (Vec<f64>, Vec<bool>)> = BTreeMap::new();
    for (offset, row) in split.holdout.clone().enumerate() {
        let entry = holdout.entry(&ids[row]).or_default();
        entry.0.push(scores[offset]);
        entry.1.push(dataset.y[row]);
    }
    let actions: std::collections::BTreeSet<&str> = training_rows
        .keys()
        .chain(holdout.keys())
        .copied()
        .collect();
    actions
        .into_iter()
        .map(|action| {
            let (scores, labels) = holdout.get(action).cloned().unwrap_or_default();
            ActionMetrics {
                action: action.to_owned(),
                rows: labels.len(),
                training_rows: training_rows.get(action).copied().unwrap_or(0),
                base_rate: metrics::base_rate(&labels),
                mean_predicted: mean(&scores),
                auc: metrics::auc(&scores, &labels),
                log_loss: metrics::log_loss(&scores, &labels),
            }
        })
        .collect()
}
