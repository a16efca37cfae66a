//! The run: split in time order, choose the L2 strength on the validation
//! slice, refit on training + validation, build the artifact, and evaluate
//! it once on the holdout through the artifact itself.
//!
//! The grid is fitted from the strongest L2 strength down, each fit
//! starting from the previous one's solution (a warm start: the same
//! minimum, fewer iterations), on at most [`TrainOptions::grid_rows`]
//! training rows (evenly spaced when there are more; the validation slice
//! is always whole). The final fit starts from the chosen grid point's
//! solution.

use crate::Error;
use crate::artifact;
use crate::dataset::Dataset;
use crate::fit::{self, FitOptions, Start};
use crate::metrics;
use crate::ope;
use crate::progress::{Event, Progress};
use crate::report::{
    ActionMetrics, Balance, FeatureWeight, GridPoint, Options, Report, Slices, Timings,
};
use crate::split::{self, Split};
use chrono::{DateTime, SecondsFormat, Utc};
use ndarray::{Axis, CowArray};
use nudge_models::model::ModelArtifact;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The L2 strengths tried by default (per row, on standardized features).
pub const DEFAULT_ALPHAS: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// Most training rows a grid fit uses by default.
pub const DEFAULT_GRID_ROWS: usize = 200_000;

/// Threads for the grid by default: one per core, at most two (on more
/// cores the grid's memory traffic, not arithmetic, bounds it).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().min(2))
}

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
    /// Most training rows each grid fit uses: when the training slice has
    /// more, this many of them, evenly spaced in time order
    /// ([`split::evenly_spaced`]). The validation slice that scores each
    /// grid point, and the final fit, always use all their rows. Alpha is
    /// per row, and fewer rows want at least as much L2 per row, so a grid
    /// on a subsample errs towards the stronger alpha.
    pub grid_rows: usize,
    /// Start each grid fit from the previous (stronger) alpha's solution and
    /// the final fit from the chosen grid point's, rather than from zero.
    pub warm_start: bool,
    /// Threads fitting the grid: each takes its own chain of alphas (every
    /// `grid_threads`-th, strongest first), warm-started within the chain.
    pub grid_threads: usize,
    /// The artifact's version; derived from `now` when `None`.
    pub version: Option<String>,
    /// The time of training: the artifact's `trained_at` and default version.
    pub now: DateTime<Utc>,
}

impl TrainOptions {
    /// The defaults: 20 % holdout, 20 % of the rest to validate, the default
    /// grid on at most 200,000 training rows with warm starts, on up to two
    /// threads, no balancing, 300 iterations.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            holdout: 0.2,
            validation: 0.2,
            alphas: DEFAULT_ALPHAS.to_vec(),
            balance: false,
            max_iterations: 300,
            grid_rows: DEFAULT_GRID_ROWS,
            warm_start: true,
            grid_threads: default_threads(),
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
    if options.grid_rows == 0 {
        return Err(Error::BadOption {
            option: "--grid-rows",
            value: "0".to_owned(),
            reason: "must be at least 1",
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
    // The grid's training rows: all, or an evenly spaced subsample.
    let grid_positions = split::evenly_spaced(split.train.clone(), options.grid_rows);
    let sample_labels: Vec<bool> = grid_positions.iter().map(|row| dataset.y[*row]).collect();
    // A subsample with one class only (very rare positives) cannot fit: the
    // grid then uses every training row.
    let both_classes = sample_labels.contains(&true) && sample_labels.contains(&false);
    let (grid_x, grid_y): (CowArray<'_, f64, _>, Vec<bool>) =
        if grid_positions.len() < split.train.len() && both_classes {
            (
                dataset.x.select(Axis(0), &grid_positions).into(),
                sample_labels,
            )
        } else {
            (
                dataset.rows(split.train.clone()).into(),
                dataset.y[split.train.clone()].to_vec(),
            )
        };
    let grid_rows = grid_y.len();
    // Strongest first: its solution is nearest zero, and each weaker one
    // starts from the previous one of its chain. With two threads the two
    // chains take every other alpha (1, 0.01, 0.0001 and 0.1, 0.001 for the
    // default grid).
    let mut order: Vec<usize> = (0..options.alphas.len()).collect();
    order.sort_by(|a, b| options.alphas[*b].total_cmp(&options.alphas[*a]));
    let threads = options.grid_threads.clamp(1, order.len());
    let chains: Vec<Vec<usize>> = (0..threads)
        .map(|chain| order.iter().skip(chain).step_by(threads).copied().collect())
        .collect();
    let validation_x = dataset.rows(split.validation.clone());
    let validation_labels = &dataset.y[split.validation.clone()];
    let mut grid: Vec<Option<(GridPoint, Start)>> = vec![None; options.alphas.len()];
    let mut failure = None;
    let (sender, receiver) = mpsc::channel::<Result<(usize, GridPoint, Start), Error>>();
    std::thread::scope(|scope| {
        for chain in &chains {
            let sender = sender.clone();
            let (grid_x, grid_y) = (grid_x.view(), &grid_y);
            scope.spawn(move || {
                let mut previous: Option<(f64, Start)> = None;
                for &index in chain {
                    let alpha = options.alphas[index];
                    let started = Instant::now();
                    let start = previous.as_ref().filter(|_| options.warm_start);
                    let fitted = match fit::fit_from(
                        grid_x,
                        grid_y,
                        fit_options(alpha),
                        start.map(|(_, start)| start),
                    ) {
                        Ok(fitted) => fitted,
                        Err(error) => {
                            let _ = sender.send(Err(error));
                            return;
                        }
                    };
                    let elapsed = started.elapsed();
                    let start_alpha = start
                        .filter(|_| fitted.warm_started)
                        .map(|(alpha, _)| *alpha);
                    let probabilities = fitted.probabilities(validation_x);
                    let probabilities = probabilities.as_slice().unwrap_or_default();
                    let point = GridPoint {
                        alpha,
                        auc: metrics::auc(probabilities, validation_labels).unwrap_or(0.5),
                        log_loss: metrics::log_loss(probabilities, validation_labels),
                        fit_ms: elapsed.as_secs_f64() * 1e3,
                        start_alpha,
                    };
                    let solution = fitted.start();
                    previous = Some((alpha, solution.clone()));
                    if sender.send(Ok((index, point, solution))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        // Progress as the points come in, from whichever thread.
        for (position, message) in receiver.iter().enumerate() {
            match message {
                Ok((index, point, solution)) => {
                    progress.report(&Event::GridPoint {
                        position: position + 1,
                        of: options.alphas.len(),
                        alpha: point.alpha,
                        rows: grid_rows,
                        start_alpha: point.start_alpha,
                        auc: point.auc,
                        log_loss: point.log_loss,
                        elapsed: Duration::from_secs_f64(point.fit_ms / 1e3),
                    });
                    grid[index] = Some((point, solution));
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    drop(grid_x);
    let (grid, solutions): (Vec<GridPoint>, Vec<Start>) = grid.into_iter().flatten().unzip();
    let grid_ms = grid_started.elapsed().as_secs_f64() * 1e3;
    // Lowest validation log loss; on a tie the stronger regularization.
    let chosen = (0..grid.len())
        .min_by(|a, b| {
            grid[*a]
                .log_loss
                .total_cmp(&grid[*b].log_loss)
                .then(grid[*b].alpha.total_cmp(&grid[*a].alpha))
        })
        .unwrap_or_default();
    let alpha = grid[chosen].alpha;

    let fit_started = Instant::now();
    let fitting = split.fitting();
    let fitted = fit::fit_from(
        dataset.rows(fitting.clone()),
        &dataset.y[fitting.clone()],
        fit_options(alpha),
        options.warm_start.then(|| &solutions[chosen]),
    )?;
    let final_start_alpha = fitted.warm_started.then_some(alpha);
    let fit_elapsed = fit_started.elapsed();
    progress.report(&Event::Fitted {
        alpha,
        rows: fitted.rows,
        warm_started: fitted.warm_started,
        elapsed: fit_elapsed,
    });

    let evaluate_started = Instant::now();
    let version = options.version();
    let trained_at = options.now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let description = describe(dataset, &split, alpha, grid_rows, &fitted, options);
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
        grid_rows,
        grid_sample: grid_sample(&split, grid_rows),
        validation_grid: grid,
        final_start_alpha,
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
            grid_rows: options.grid_rows,
            warm_start: options.warm_start,
            grid_threads: threads,
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
            Ok(value) => {
                let mut placements: BTreeMap<&str, usize> = BTreeMap::new();
                for choice in &holdout {
                    *placements.entry(choice.placement.as_str()).or_insert(0) += 1;
                }
                let placements: Vec<String> = placements
                    .iter()
                    .map(|(placement, count)| format!("{placement} {count}"))
                    .collect();
                (
                    Some(value),
                    format!(
                        "the first slot of the {} holdout decisions the model scored in placements that explore (only they log the eligible actions: {}), the new model's policy (its P·V·L·C ranking with each placement's exploration) against the logged one; placements that do not explore are not in it; reward: conversion",
                        holdout.len(),
                        placements.join(", ")
                    ),
                )
            }
            Err(error) => (None, format!("off-policy evaluation not reported: {error}")),
        },
        Err(refusal) => (None, format!("no off-policy evaluation: {refusal}")),
    }
}

/// Which training rows the grid was fitted on, in words.
fn grid_sample(split: &Split, grid_rows: usize) -> String {
    let training = split.train.len();
    if grid_rows >= training {
        format!("all {training} training rows")
    } else {
        format!(
            "{grid_rows} of the {training} training rows, evenly spaced in time order (row start + ⌊i·{training}/{grid_rows}⌋)"
        )
    }
}

/// The artifact's description: what data, which options.
fn describe(
    dataset: &Dataset,
    split: &Split,
    alpha: f64,
    grid_rows: usize,
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
    let grid = if grid_rows < split.train.len() {
        format!(
            " (the grid fitted on {grid_rows} evenly spaced of the {} rows before those)",
            split.train.len()
        )
    } else {
        String::new()
    };
    let start = if fitted.warm_started {
        ", the solver started from the chosen grid point's solution"
    } else {
        ""
    };
    format!(
        "logistic regression trained by `nudge train` on {}: {} rows before the holdout (base rate {:.4}), {} features, L2 alpha {alpha} per row chosen on the last {} of them{grid}{start}, {balance}; holdout: the newest {} rows",
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
