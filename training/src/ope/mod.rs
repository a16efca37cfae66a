//! Off-policy evaluation (OPE): what a new policy would have earned on the
//! decisions another policy logged, estimated from that log alone, before the
//! new policy serves anyone. `nudge train --log` uses it to compare the newly
//! trained model's serving policy (the *target*) with the policy that made
//! the logged decisions (the *logging* policy).
//!
//! A log only shows the reward of the action that was taken. A decision the
//! target policy would also take is evidence about it; one it would not take
//! is not. Each decision is therefore reweighted by how much more (or less)
//! often the target policy takes the logged action than the logging policy
//! did: `w = target probability / logging probability`. That needs the
//! logging policy's probability of every logged action (the log's
//! `selection_probability`); without it there is nothing to reweight by.
//!
//! The estimators, over `n` decisions with reward `r`:
//! - the logging policy's value: the mean reward, measured on-policy;
//! - IPS, `Σ w·r / n`: unbiased when the logged probabilities are right and
//!   the logging policy could take every action the target takes, but its
//!   variance grows with the weights;
//! - SNIPS, `Σ w·r / Σ w`: IPS normalized by the total weight, slightly
//!   biased, far steadier when a few weights are large;
//! - doubly robust (DR), `Σ [q̂_π + w·(r − q̂)] / n`: the reward model's
//!   value of the target policy, corrected by the weighted errors of the
//!   model on the logged actions; unbiased when either the probabilities or
//!   the reward model are right, and usually of lower variance than IPS.
//!
//! Every estimate gets a bootstrap percentile interval, and so does its
//! improvement over the logging value (computed on the same resamples, so the
//! two estimates' correlation is accounted for). The weight diagnostics
//! (effective sample size, largest and mean weight, match rate) say how much
//! of the log actually speaks for the target policy.
//!
//! OPE refuses rather than report misleading numbers: no decisions, a
//! missing or impossible probability, a non-finite reward or prediction (each
//! naming the first offending row), a logging policy that never explored, a
//! target policy that takes none of the logged actions, or too small an
//! effective sample size. Pure: no I/O, no printing, and deterministic (the
//! bootstrap draws from a seeded generator of its own).
//!
//! - `mod.rs`: the samples, options, results, refusals and [`evaluate`].
//! - `bootstrap.rs`: the seeded generator, the resampling and the
//!   nearest-rank percentiles.
//! - [`policy`]: the trained model's serving policy on logged choices →
//!   samples.

mod bootstrap;
pub mod policy;

use serde::Serialize;

/// One logged decision, seen by the policy being evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The reward observed for the logged action (e.g. 1.0 converted, 0.0
    /// not).
    pub reward: f64,
    /// The probability with which the logging policy chose the logged action
    /// (the log's `selection_probability`); `None` when not logged.
    pub logging_probability: Option<f64>,
    /// The probability with which the evaluated (target) policy would choose
    /// the logged action.
    pub target_probability: f64,
    /// The reward model's prediction for the logged action (for doubly
    /// robust).
    pub predicted_reward: f64,
    /// The reward model's expected reward under the target policy: the sum
    /// over eligible actions `a` of `π(a|x)·q̂(x,a)`.
    pub target_predicted_reward: f64,
}

/// How to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Options {
    /// Bootstrap resamples behind each interval (at least 1; default 1000).
    /// The cost is `bootstrap × decisions` draws.
    pub bootstrap: usize,
    /// The intervals' confidence, strictly between 0 and 1 (default 0.95).
    /// With `B` resamples and `α = (1 − confidence) / 2`, an interval runs
    /// from the `⌈α·B⌉`-th to the `⌈(1 − α)·B⌉`-th smallest resampled value
    /// (nearest rank): the 25th and the 975th of 1000 at 0.95.
    pub confidence: f64,
    /// The seed of the resampling: the same decisions and options always give
    /// the same intervals.
    pub seed: u64,
    /// The smallest effective sample size evaluated (default 30; 0 turns the
    /// check off). See [`Evaluation::effective_sample_size`].
    pub min_effective_sample_size: f64,
}

impl Default for Options {
    /// 1000 resamples, 95 % intervals, a fixed seed, and an effective sample
    /// size of at least 30: below about 30 equally weighted decisions a mean
    /// is dominated by its few largest weights, its spread is far from
    /// normal, and percentile intervals cover less than they claim.
    fn default() -> Self {
        Self {
            bootstrap: 1000,
            confidence: 0.95,
            seed: 0x006e_7564_6765, // "nudge" in ASCII
            min_effective_sample_size: 30.0,
        }
    }
}

/// An estimate with its bootstrap percentile interval (see
/// [`Options::confidence`] for the rule). The interval comes from the
/// resamples, so it need not be centred on the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The estimate on all the decisions.
    pub estimate: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

/// The target policy's estimated value against the logging policy's, with
/// the weight diagnostics. Values are mean rewards per decision;
/// improvements are differences in the same unit (target − logging).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Decisions evaluated.
    pub decisions: usize,
    /// The logging policy's value: the mean logged reward.
    pub logging: Interval,
    /// Inverse propensity scoring: `Σ w·r / n`.
    pub ips: Interval,
    /// Self-normalized IPS: `Σ w·r / Σ w`.
    pub snips: Interval,
    /// Doubly robust: `Σ [q̂_π + w·(r − q̂)] / n`. When the target policy is
    /// the logging policy (`w = 1`), this is the logging value plus the mean
    /// of `q̂_π − q̂`, which is zero on average over actions drawn from the
    /// policy but not on a given log, unless the policy is deterministic or
    /// the reward model ignores the action.
    pub doubly_robust: Interval,
    /// IPS minus the logging value, resample by resample.
    pub ips_improvement: Interval,
    /// SNIPS minus the logging value, resample by resample.
    pub snips_improvement: Interval,
    /// Doubly robust minus the logging value, resample by resample.
    pub doubly_robust_improvement: Interval,
    /// Kish's effective sample size `(Σ w)² / Σ w²`: how many equally
    /// weighted decisions would carry as much information as these weighted
    /// ones (`n` when every weight is equal, 1 when one decision carries all
    /// the weight).
    pub effective_sample_size: f64,
    /// The largest weight.
    pub max_weight: f64,
    /// The mean weight, about 1 when the logged probabilities are right and
    /// the logging policy could take every action the target policy takes;
    /// well below 1, the target policy puts weight on actions the log
    /// never shows.
    pub mean_weight: f64,
    /// The share of decisions whose logged action the target policy takes
    /// with a positive probability.
    pub match_rate: f64,
    /// Resamples behind the SNIPS intervals: those with a positive total
    /// weight (SNIPS is undefined on the others); `options.bootstrap` unless
    /// very few decisions carry weight.
    pub snips_resamples: usize,
    /// The options of the evaluation.
    pub options: Options,
}

/// Why the log cannot evaluate the target policy. Rows are 0-based positions
/// in the samples given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// An option is out of range.
    #[error("off-policy evaluation option {option} = {value} {reason}")]
    BadOption {
        /// The option's field name.
        option: &'static str,
        /// Its value as given.
        value: String,
        /// The allowed range.
        reason: &'static str,
    },
    /// There is no decision.
    #[error("no logged decision to evaluate")]
    Empty,
    /// A decision has no logging probability.
    #[error(
        "row {row}: no logged selection probability; off-policy evaluation needs the logging policy's probability of every logged action"
    )]
    MissingLoggingProbability {
        /// The first such row.
        row: usize,
    },
    /// A logging probability is not finite, not positive or above 1.
    #[error("row {row}: logged selection probability {value} {reason}")]
    BadLoggingProbability {
        /// The first such row.
        row: usize,
        /// The probability.
        value: f64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A target probability is not finite or outside `[0, 1]`.
    #[error("row {row}: target policy probability {value} {reason}")]
    BadTargetProbability {
        /// The first such row.
        row: usize,
        /// The probability.
        value: f64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A reward or a prediction is NaN or infinite.
    #[error("row {row}: {field} {value} is not a finite number")]
    NotFinite {
        /// The first such row.
        row: usize,
        /// `reward`, `predicted_reward` or `target_predicted_reward`.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// Every logging probability is 1 and the target policy differs: the
    /// logging policy never explored, so the log shows nothing of the other
    /// actions the target policy would take.
    #[error(
        "every one of the {decisions} logged decisions was taken with probability 1: the logging policy never explored, so a policy that differs from it cannot be evaluated (row {row} is the first where the target policy would take another action)"
    )]
    NoExploration {
        /// Decisions in the log.
        decisions: usize,
        /// The first row where the target probability is below 1.
        row: usize,
    },
    /// The target policy gives every logged action probability 0: the log
    /// says nothing about it.
    #[error(
        "the target policy would take none of the {decisions} logged actions (every target probability is 0), so the log says nothing about it"
    )]
    NoOverlap {
        /// Decisions in the log.
        decisions: usize,
    },
    /// The weights are too uneven, or the decisions too few.
    #[error(
        "effective sample size {effective_sample_size:.2} is below the minimum {minimum}: the estimate would rest on a handful of heavily weighted decisions; log more decisions, or with more exploration"
    )]
    TooFewEffective {
        /// The effective sample size found.
        effective_sample_size: f64,
        /// The minimum asked for.
        minimum: f64,
    },
    /// No bootstrap resample defines an estimate (SNIPS on resamples without
    /// weight); only with very few resamples and very few weighted
    /// decisions.
    #[error(
        "none of the {bootstrap} bootstrap resamples defines {estimator} (each drew only decisions the target policy never takes); use more resamples"
    )]
    NoResample {
        /// The estimator.
        estimator: &'static str,
        /// The resamples drawn.
        bootstrap: usize,
    },
}

/// One checked decision, reduced to what the estimators sum.
#[derive(Debug, Clone, Copy)]
struct Term {
    reward: f64,
    weight: f64,
    weighted_reward: f64,
    doubly_robust: f64,
}

/// Running sums of terms.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    count: usize,
    reward: f64,
    weight: f64,
    weighted_reward: f64,
    doubly_robust: f64,
}

impl Sums {
    fn add(&mut self, term: &Term) {
        self.count += 1;
        self.reward += term.reward;
        self.weight += term.weight;
        self.weighted_reward += term.weighted_reward;
        self.doubly_robust += term.doubly_robust;
    }

    /// The estimates of the decisions summed (at least one).
    fn estimates(&self) -> Estimates {
        let n = self.count as f64;
        Estimates {
            logging: self.reward / n,
            ips: self.weighted_reward / n,
            snips: (self.weight > 0.0).then(|| self.weighted_reward / self.weight),
            doubly_robust: self.doubly_robust / n,
        }
    }
}

/// The estimates of one set of decisions; SNIPS is undefined without weight.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimates {
    logging: f64,
    ips: f64,
    snips: Option<f64>,
    doubly_robust: f64,
}

/// Evaluates the target policy on the logged decisions: the estimates with
/// their intervals and the weight diagnostics, or the reason they would
/// mislead.
pub fn evaluate(samples: &[Sample], options: &Options) -> Result<Evaluation, Refusal> {
    check_options(options)?;
    if samples.is_empty() {
        return Err(Refusal::Empty);
    }
    let terms = samples
        .iter()
        .enumerate()
        .map(|(row, sample)| term(row, sample))
        .collect::<Result<Vec<_>, _>>()?;
    let decisions = samples.len();
    let explored = samples
        .iter()
        .any(|sample| sample.logging_probability != Some(1.0));
    if !explored {
        // With the target certain of every logged action too, the policies
        // agree on this log (every weight is 1) and it is evaluated as is.
        if let Some(row) = samples.iter().position(|s| s.target_probability < 1.0) {
            return Err(Refusal::NoExploration { decisions, row });
        }
    }

    let mut all = Sums::default();
    let (mut squared_weights, mut max_weight, mut matched) = (0.0, 0.0_f64, 0usize);
    for term in &terms {
        all.add(term);
        squared_weights += term.weight * term.weight;
        max_weight = max_weight.max(term.weight);
        matched += usize::from(term.weight > 0.0);
    }
    if all.weight <= 0.0 {
        return Err(Refusal::NoOverlap { decisions });
    }
    let effective_sample_size = all.weight * all.weight / squared_weights;
    // NaN when the weights are too large to square: refused too.
    if effective_sample_size.is_nan() || effective_sample_size < options.min_effective_sample_size {
        return Err(Refusal::TooFewEffective {
            effective_sample_size,
            minimum: options.min_effective_sample_size,
        });
    }

    let point = all.estimates();
    let snips = point.snips.ok_or(Refusal::NoOverlap { decisions })?;
    let resamples = bootstrap::resample(&terms, options.bootstrap, options.seed);
    let confidence = options.confidence;
    let interval = |estimator, estimate, values: Vec<f64>| {
        bootstrap::interval(estimate, values, confidence).ok_or(Refusal::NoResample {
            estimator,
            bootstrap: options.bootstrap,
        })
    };
    let column = |pick: fn(&Estimates) -> Option<f64>| -> Vec<f64> {
        resamples.iter().filter_map(pick).collect()
    };
    let snips_resamples = resamples.iter().filter(|r| r.snips.is_some()).count();
    Ok(Evaluation {
        decisions,
        logging: interval(
            "the logging value",
            point.logging,
            column(|r| Some(r.logging)),
        )?,
        ips: interval("IPS", point.ips, column(|r| Some(r.ips)))?,
        snips: interval("SNIPS", snips, column(|r| r.snips))?,
        doubly_robust: interval(
            "doubly robust",
            point.doubly_robust,
            column(|r| Some(r.doubly_robust)),
        )?,
        ips_improvement: interval(
            "the IPS improvement",
            point.ips - point.logging,
            column(|r| Some(r.ips - r.logging)),
        )?,
        snips_improvement: interval(
            "the SNIPS improvement",
            snips - point.logging,
            column(|r| r.snips.map(|snips| snips - r.logging)),
        )?,
        doubly_robust_improvement: interval(
            "the doubly robust improvement",
            point.doubly_robust - point.logging,
            column(|r| Some(r.doubly_robust - r.logging)),
        )?,
        effective_sample_size,
        max_weight,
        mean_weight: all.weight / decisions as f64,
        match_rate: matched as f64 / decisions as f64,
        snips_resamples,
        options: *options,
    })
}

/// Refuses options out of range.
fn check_options(options: &Options) -> Result<(), Refusal> {
    let bad = |option, value: String, reason| {
        Err(Refusal::BadOption {
            option,
            value,
            reason,
        })
    };
    if options.bootstrap == 0 {
        return bad("bootstrap", "0".to_owned(), "must be at least 1");
    }
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        let reason = "must be strictly between 0 and 1, e.g. 0.95";
        return bad("confidence", options.confidence.to_string(), reason);
    }
    let minimum = options.min_effective_sample_size;
    if !(minimum.is_finite() && minimum >= 0.0) {
        let reason = "must be a finite number, 0 or more";
        return bad("min_effective_sample_size", minimum.to_string(), reason);
    }
    Ok(())
}

/// Checks one decision and reduces it to its terms.
fn term(row: usize, sample: &Sample) -> Result<Term, Refusal> {
    let logging = sample
        .logging_probability
        .ok_or(Refusal::MissingLoggingProbability { row })?;
    let logging_problem = if !logging.is_finite() {
        Some("is not a finite number")
    } else if logging <= 0.0 {
        Some("is not positive (a logged action cannot have had probability 0)")
    } else if logging > 1.0 {
        Some("is above 1")
    } else if logging < f64::MIN_POSITIVE {
        Some("is too small to divide by")
    } else {
        None
    };
    if let Some(reason) = logging_problem {
        return Err(Refusal::BadLoggingProbability {
            row,
            value: logging,
            reason,
        });
    }
    let target = sample.target_probability;
    let target_problem = if !target.is_finite() {
        Some("is not a finite number")
    } else if !(0.0..=1.0).contains(&target) {
        Some("is not between 0 and 1")
    } else {
        None
    };
    if let Some(reason) = target_problem {
        return Err(Refusal::BadTargetProbability {
            row,
            value: target,
            reason,
        });
    }
    for (field, value) in [
        ("reward", sample.reward),
        ("predicted_reward", sample.predicted_reward),
        ("target_predicted_reward", sample.target_predicted_reward),
    ] {
        if !value.is_finite() {
            return Err(Refusal::NotFinite { row, field, value });
        }
    }
    let weight = target / logging;
    Ok(Term {
        reward: sample.reward,
        weight,
        weighted_reward: weight * sample.reward,
        doubly_robust: sample.target_predicted_reward
            + weight * (sample.reward - sample.predicted_reward),
    })
}

#[cfg(test)]
mod tests;
