//! The live guardrail's figures: while an experiment runs, each variant's
//! served actions and how many of them converted, counted by the actors
//! (relaxed atomic adds), read by the sequential test of
//! [`nudge_models::guardrail`] after every conversion.
//!
//! A [`Trial`] watches one stage of one experiment: it starts when a model
//! is promoted to a share (a ramp starts a new one, since customers moved
//! between the arms), when the control's model is replaced, and when the
//! service starts with an experiment running (the figures are kept in
//! memory only: a restart begins a new test, which is as valid as the first,
//! only later to decide). A conversion counts only for a decision made
//! since the stage began, so it counts for the arm that decided it: within a
//! stage a customer's arm does not change.

use nudge_models::experiment::Experiment;
use nudge_models::guardrail::{Arm, Reading, SequentialTest};
use nudge_models::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One stage of a running experiment and its figures so far.
#[derive(Debug)]
pub struct Trial {
    /// The experiment as it stood when the stage began.
    experiment: Experiment,
    /// When the stage began: conversions of earlier decisions do not count.
    since: Timestamp,
    /// Served actions per arm: the control, the challenger.
    served: [AtomicU64; 2],
    /// Conversions per arm.
    conversions: [AtomicU64; 2],
    /// Set by the first caller that acts on a "worse" verdict, so one
    /// rollback is attempted, not one per converting actor.
    tripped: AtomicBool,
}

impl Trial {
    /// A new stage of `experiment`, from `since`; `None` when no experiment
    /// runs (one variant).
    pub fn begin(experiment: &Experiment, since: Timestamp) -> Option<Self> {
        (experiment.challenger().is_some()).then(|| Self {
            experiment: experiment.clone(),
            since,
            served: [AtomicU64::new(0), AtomicU64::new(0)],
            conversions: [AtomicU64::new(0), AtomicU64::new(0)],
            tripped: AtomicBool::new(false),
        })
    }

    /// The experiment it watches.
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// When the stage began.
    pub fn since(&self) -> Timestamp {
        self.since
    }

    fn arm(&self, customer_id: &str) -> Option<usize> {
        self.experiment.arm_of(customer_id).filter(|&arm| arm < 2)
    }

    /// Counts `count` actions served to `customer_id` by a recorded decision.
    pub fn served(&self, customer_id: &str, count: usize) {
        if count == 0 {
            return;
        }
        if let Some(arm) = self.arm(customer_id) {
            self.served[arm].fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    /// Counts a conversion of an action served to `customer_id` at
    /// `decision_at`; false (not counted) for a decision from before the
    /// stage.
    pub fn converted(&self, customer_id: &str, decision_at: Timestamp) -> bool {
        if decision_at < self.since {
            return false;
        }
        match self.arm(customer_id) {
            Some(arm) => {
                self.conversions[arm].fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The figures so far: the control's, the challenger's.
    pub fn arms(&self) -> [Arm; 2] {
        [0, 1].map(|arm| {
            let served = self.served[arm].load(Ordering::Relaxed);
            Arm {
                served,
                // A conversion can be counted a moment before the served
                // action it converts is (different actors' relaxed adds).
                conversions: self.conversions[arm].load(Ordering::Relaxed).min(served),
            }
        })
    }

    /// Reads `test` on the figures so far.
    pub fn read(&self, test: &SequentialTest) -> Reading {
        let [control, challenger] = self.arms();
        test.read(control, challenger)
    }

    /// True for the first caller only: that one acts on a verdict.
    pub fn trip(&self) -> bool {
        !self.tripped.swap(true, Ordering::AcqRel)
    }
}

/// One arm as the guardrail names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmName {
    /// The variant.
    pub variant: String,
    /// Its model.
    pub model_version: String,
}

/// The guardrail's view of one stage: which arms, since when, and what the
/// test reads on their figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailStatus {
    /// When the stage began.
    pub since: Timestamp,
    /// The control.
    pub control: ArmName,
    /// The challenger.
    pub challenger: ArmName,
    /// The figures and the test's reading.
    pub reading: Reading,
    /// The false-alarm rate the test holds.
    pub alpha: f64,
}

impl Trial {
    /// The guardrail's view of this stage under `test`; `None` if the
    /// experiment has no challenger (never for a begun trial).
    pub fn status(&self, test: &SequentialTest) -> Option<GuardrailStatus> {
        let name = |variant: &nudge_models::experiment::Variant| ArmName {
            variant: variant.name.clone(),
            model_version: variant.model_version.clone(),
        };
        Some(GuardrailStatus {
            since: self.since,
            control: name(self.experiment.control()?),
            challenger: name(self.experiment.challenger()?),
            reading: self.read(test),
            alpha: test.alpha,
        })
    }
}

/// A rollback the guardrail made, as `nudge model list` shows it (kept in
/// the registry file, so it survives a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailRollback {
    /// When (the service's clock).
    pub at: Timestamp,
    /// The stage it ended and the reading that made the call.
    pub status: GuardrailStatus,
}

impl GuardrailRollback {
    /// Why, in words: what the log line and `nudge model list` say.
    pub fn reason(&self) -> String {
        let status = &self.status;
        let rate = |arm: &Arm| arm.rate().map_or(0.0, |rate| rate * 100.0);
        let (control, challenger) = (&status.reading.control, &status.reading.challenger);
        format!(
            "variant {} (model {}) converted {:.2} % of {} served actions against the control's {:.2} % of {}: \
worse by a sequential test at a {} false-alarm rate (ln likelihood ratio {:.2} >= {:.2})",
            status.challenger.variant,
            status.challenger.model_version,
            rate(challenger),
            challenger.served,
            rate(control),
            control.served,
            status.alpha,
            status.reading.log_likelihood_ratio,
            status.reading.threshold,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment() -> Experiment {
        Experiment::single("m1")
            .promote("m2", 50, None)
            .expect("an experiment")
    }

    #[test]
    fn no_trial_without_an_experiment() {
        assert!(Trial::begin(&Experiment::single("m1"), Timestamp::from_millis(0)).is_none());
    }

    #[test]
    fn conversions_count_for_the_arm_of_decisions_made_since_the_stage() {
        let experiment = experiment();
        let trial = Trial::begin(&experiment, Timestamp::from_millis(1_000)).expect("a trial");
        let customer = (0..100)
            .map(|n| format!("c{n}"))
            .find(|c| experiment.arm_of(c) == Some(1))
            .expect("a challenger customer");
        trial.served(&customer, 2);
        assert!(trial.converted(&customer, Timestamp::from_millis(1_000)));
        assert!(!trial.converted(&customer, Timestamp::from_millis(999)));
        let [control, challenger] = trial.arms();
        assert_eq!(control, Arm::default());
        assert_eq!(
            challenger,
            Arm {
                served: 2,
                conversions: 1
            }
        );
        assert!(trial.trip());
        assert!(!trial.trip(), "only the first caller acts");
    }
}
