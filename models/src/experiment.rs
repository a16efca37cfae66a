//! Experiments: which model serves which customer.
//!
//! An [`Experiment`] is a list of variants, each a model version with a
//! share of customers in percent; the shares add up to 100 and the first
//! variant is the control (the model serving everyone before). A customer
//! is assigned by a hash of the experiment's salt and their id, so the
//! assignment needs no state: it is the same after a restart and on every
//! node that holds the same experiment, and a new experiment (a new salt)
//! reshuffles customers independently of the last one.
//!
//! The control takes the low buckets and the challenger the high ones, so
//! ramping a challenger up (10 % → 50 %) only moves customers from the
//! control to the challenger, never back: a customer who saw the new model
//! keeps seeing it.
//!
//! Transitions are pure: [`Experiment::promote`] starts or ramps an
//! experiment (at 100 % the challenger becomes the sole model),
//! [`Experiment::rollback`] ends one in favour of the control.

use serde::{Deserialize, Serialize};

/// The variant name when no experiment runs.
pub const DEFAULT_VARIANT: &str = "default";
/// The control's variant name while an experiment runs.
pub const CONTROL_VARIANT: &str = "control";
/// The challenger's variant name unless another is given.
pub const TREATMENT_VARIANT: &str = "treatment";

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Its name, in every decision and the decision log.
    pub name: String,
    /// The model version that scores its customers.
    pub model_version: String,
    /// Its share of customers, in percent.
    pub share: u32,
}

/// Which model serves which customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    /// Mixed into the assignment hash: each experiment has its own, so
    /// customers are reshuffled between experiments.
    pub salt: String,
    /// The variants, the control first; shares add up to 100.
    pub variants: Vec<Variant>,
}

/// Why an experiment cannot change as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExperimentError {
    /// A share outside 1–100.
    #[error("share {0} % is not between 1 and 100")]
    BadShare(u32),
    /// The model already serves everyone.
    #[error("model {0} already serves every customer")]
    AlreadyServing(String),
    /// Another challenger is being tried.
    #[error(
        "model {running} is being tried as variant {variant}; roll it back or promote it to 100 % first"
    )]
    AnotherRunning {
        /// The running challenger's model.
        running: String,
        /// Its variant.
        variant: String,
    },
    /// The variant name is taken or not an id.
    #[error(
        "variant name '{0}' cannot be used: it must be a short id other than 'control' and 'default'"
    )]
    BadName(String),
    /// No experiment runs.
    #[error("no experiment is running: nothing to roll back")]
    NothingRunning,
}

/// FNV-1a over the salt, a separator and the customer id.
fn bucket(salt: &str, customer_id: &str) -> u32 {
    let hash = crate::hash::fnv1a(
        salt.bytes()
            .chain(std::iter::once(0xff))
            .chain(customer_id.bytes()),
    );
    // The high bits mix best.
    u32::try_from((hash >> 32) % 100).unwrap_or(0)
}

impl Experiment {
    /// Everyone on `model_version`, as variant `default`.
    pub fn single(model_version: &str) -> Self {
        Self {
            salt: String::new(),
            variants: vec![Variant {
                name: DEFAULT_VARIANT.to_owned(),
                model_version: model_version.to_owned(),
                share: 100,
            }],
        }
    }

    /// The control: the model that served everyone before the experiment.
    pub fn control(&self) -> Option<&Variant> {
        self.variants.first()
    }

    /// The challenger being tried, if an experiment runs.
    pub fn challenger(&self) -> Option<&Variant> {
        self.variants.get(1)
    }

    /// The variant of `customer_id`.
    pub fn assign(&self, customer_id: &str) -> Option<&Variant> {
        self.variants.get(self.arm_of(customer_id)?)
    }

    /// The index of `customer_id`'s variant (0: the control), `None` when
    /// there are no variants.
    pub fn arm_of(&self, customer_id: &str) -> Option<usize> {
        match self.variants.len() {
            0 => return None,
            1 => return Some(0),
            _ => {}
        }
        let bucket = bucket(&self.salt, customer_id);
        let mut upper = 0;
        for (index, variant) in self.variants.iter().enumerate() {
            upper += variant.share;
            if bucket < upper {
                return Some(index);
            }
        }
        Some(self.variants.len() - 1)
    }

    /// Tries `model_version` on `share` % of customers as variant `name`
    /// (`treatment` when `None`) beside the control; ramps the share of the
    /// challenger already running (same model); at 100 % the challenger
    /// becomes the one model everyone gets.
    pub fn promote(
        &self,
        model_version: &str,
        share: u32,
        name: Option<&str>,
    ) -> Result<Experiment, ExperimentError> {
        if !(1..=100).contains(&share) {
            return Err(ExperimentError::BadShare(share));
        }
        let control = self.control().map(|control| control.model_version.as_str());
        if control == Some(model_version) {
            return Err(ExperimentError::AlreadyServing(model_version.to_owned()));
        }
        if let Some(running) = self.challenger()
            && running.model_version != model_version
        {
            return Err(ExperimentError::AnotherRunning {
                running: running.model_version.clone(),
                variant: running.name.clone(),
            });
        }
        if share == 100 {
            return Ok(Experiment::single(model_version));
        }
        let name = match (name, self.challenger()) {
            (Some(name), _) => name.to_owned(),
            (None, Some(running)) => running.name.clone(),
            (None, None) => TREATMENT_VARIANT.to_owned(),
        };
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && name != CONTROL_VARIANT
            && name != DEFAULT_VARIANT;
        if !valid {
            return Err(ExperimentError::BadName(name));
        }
        let Some(control) = control else {
            return Ok(Experiment::single(model_version));
        };
        Ok(Experiment {
            // The challenger's version: the same on every node, and a new
            // one for each model tried.
            salt: model_version.to_owned(),
            variants: vec![
                Variant {
                    name: CONTROL_VARIANT.to_owned(),
                    model_version: control.to_owned(),
                    share: 100 - share,
                },
                Variant {
                    name,
                    model_version: model_version.to_owned(),
                    share,
                },
            ],
        })
    }

    /// Ends the running experiment: everyone back on the control.
    pub fn rollback(&self) -> Result<Experiment, ExperimentError> {
        match (self.control(), self.challenger()) {
            (Some(control), Some(_)) => Ok(Experiment::single(&control.model_version)),
            _ => Err(ExperimentError::NothingRunning),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customers() -> impl Iterator<Item = String> {
        (0..10_000).map(|n| format!("customer-{n}"))
    }

    #[test]
    fn one_model_serves_everyone_as_default() {
        let experiment = Experiment::single("m1");
        let variant = experiment.assign("anyone").expect("a variant");
        assert_eq!(
            (variant.name.as_str(), variant.model_version.as_str()),
            ("default", "m1")
        );
    }

    #[test]
    fn shares_are_kept_within_a_binomial_tolerance() {
        let experiment = Experiment::single("m1")
            .promote("m2", 30, None)
            .expect("promoted");
        let treated = customers()
            .filter(|customer| experiment.assign(customer).expect("a variant").name == "treatment")
            .count();
        // 10,000 × 0.3 = 3,000, standard deviation √(10,000 × 0.3 × 0.7) ≈ 46:
        // four of them either side.
        assert!((2_816..=3_184).contains(&treated), "{treated}");
    }

    #[test]
    fn ramping_up_only_moves_customers_to_the_challenger() {
        let at = |share| {
            Experiment::single("m1")
                .promote("m2", 10, Some("new-model"))
                .and_then(|experiment| experiment.promote("m2", share, None))
                .expect("ramped")
        };
        let (low, high) = (at(10), at(60));
        assert_eq!(
            high.challenger().map(|v| v.name.as_str()),
            Some("new-model")
        );
        for customer in customers() {
            let before = &low.assign(&customer).expect("a variant").model_version;
            let after = &high.assign(&customer).expect("a variant").model_version;
            assert!(!(before == "m2" && after == "m1"), "{customer} moved back");
        }
    }

    #[test]
    fn assignment_depends_on_the_salt_only_through_the_experiment() {
        let a = Experiment::single("m1").promote("m2", 50, None).expect("a");
        let again = Experiment::single("m1")
            .promote("m2", 50, None)
            .expect("again");
        let other = Experiment::single("m1")
            .promote("m3", 50, None)
            .expect("other");
        let same = customers().all(|c| a.assign(&c) == again.assign(&c));
        assert!(same, "the same experiment assigns the same way");
        let moved = customers()
            .filter(|c| {
                a.assign(c).map(|v| v.name.as_str()) != other.assign(c).map(|v| v.name.as_str())
            })
            .count();
        assert!(
            (4_000..=6_000).contains(&moved),
            "a new experiment reshuffles: {moved}"
        );
    }

    #[test]
    fn promotion_to_everyone_and_rollback() {
        let running = Experiment::single("m1").promote("m2", 50, None).expect("a");
        assert_eq!(running.rollback(), Ok(Experiment::single("m1")));
        assert_eq!(
            running.promote("m2", 100, None),
            Ok(Experiment::single("m2"))
        );
        assert_eq!(
            Experiment::single("m1").rollback(),
            Err(ExperimentError::NothingRunning)
        );
    }

    #[test]
    fn bad_promotions_are_refused() {
        let single = Experiment::single("m1");
        assert_eq!(
            single.promote("m2", 0, None),
            Err(ExperimentError::BadShare(0))
        );
        assert_eq!(
            single.promote("m2", 101, None),
            Err(ExperimentError::BadShare(101))
        );
        assert_eq!(
            single.promote("m1", 50, None),
            Err(ExperimentError::AlreadyServing("m1".to_owned()))
        );
        for name in ["control", "default", "", "a b"] {
            assert_eq!(
                single.promote("m2", 50, Some(name)),
                Err(ExperimentError::BadName(name.to_owned()))
            );
        }
        let running = single.promote("m2", 50, None).expect("a");
        assert_eq!(
            running.promote("m3", 50, None),
            Err(ExperimentError::AnotherRunning {
                running: "m2".to_owned(),
                variant: "treatment".to_owned()
            })
        );
    }
}
