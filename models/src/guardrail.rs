//! The live guardrail's sequential test: is the variant being tried
//! converting worse than the control?
//!
//! An experiment's figures grow with every decision and the guardrail looks
//! at them after every conversion, so a fixed-sample test (a z-test read at
//! a planned size) would raise false alarms far above its nominal rate when
//! read that often. This is a **mixture sequential probability ratio test**
//! (mSPRT, the "always valid" test of Johari, Koomen, Pekelis and Walsh,
//! *Always Valid Inference*, Operations Research 70(3), 2022) on the
//! difference of the two conversion rates, with the normal approximation:
//!
//! - θ̂ = p̂₁ − p̂₀, the challenger's rate minus the control's (conversions
//!   per served action);
//! - s² = p̄ (1 − p̄) (1/n₀ + 1/n₁), its variance under equal rates, from the
//!   pooled rate p̄;
//! - τ = `effect` × p̄, the spread of the normal mixture over the true
//!   difference: the size of difference the test is most eager to find;
//! - Λ = √(s² / (s² + τ²)) · exp(θ̂² τ² / (2 s² (s² + τ²))), the likelihood
//!   ratio of "the rates differ by some θ ~ N(0, τ²)" against "they are
//!   equal".
//!
//! Under equal rates Λ is a martingale, so by Ville's inequality the chance
//! that it **ever** reaches 1/α, however often it is read, is at most α: α
//! is the false-alarm rate of the whole experiment, not of one look (for
//! Gaussian data exactly; for conversions as the counts grow, which is why
//! nothing is decided before `min_served` and `min_conversions`). The test
//! declares the challenger worse when Λ ≥ 1/α and θ̂ < 0, better when
//! Λ ≥ 1/α and θ̂ > 0; only "worse" rolls a variant back.
//!
//! Everything is computed in logarithms, from counts: no state but the
//! counts, no I/O, no clock.

use serde::{Deserialize, Serialize};

/// One arm's figures: served actions and how many of them converted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arm {
    /// Actions served by decisions of this arm.
    pub served: u64,
    /// Of those, how many converted.
    pub conversions: u64,
}

impl Arm {
    /// Conversions per served action (`None` before anything was served).
    pub fn rate(&self) -> Option<f64> {
        (self.served > 0).then(|| self.conversions as f64 / self.served as f64)
    }
}

/// The test's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialTest {
    /// The false-alarm rate: with equal conversion rates, the chance that
    /// the test ever declares a difference over the whole experiment.
    pub alpha: f64,
    /// The size of difference the test is tuned to, relative to the pooled
    /// conversion rate (0.2: a fifth of the rate either way). Smaller finds
    /// small differences sooner and large ones later.
    pub effect: f64,
    /// Served actions each arm needs before anything is decided.
    pub min_served: u64,
    /// Conversions, both arms together, needed before anything is decided.
    pub min_conversions: u64,
}

impl Default for SequentialTest {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            effect: 0.2,
            min_served: 500,
            min_conversions: 30,
        }
    }
}

/// What the figures say so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not enough served or converted yet to read anything.
    TooFewData,
    /// No difference shown yet: keep going.
    NoDifference,
    /// The challenger converts worse than the control.
    Worse,
    /// The challenger converts better than the control.
    Better,
}

impl Verdict {
    /// Its code, as the API and the CLI show it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::TooFewData => "too_few_data",
            Verdict::NoDifference => "no_difference",
            Verdict::Worse => "worse",
            Verdict::Better => "better",
        }
    }
}

/// One reading of the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The control's figures.
    pub control: Arm,
    /// The challenger's figures.
    pub challenger: Arm,
    /// ln Λ (0 before there is enough data to compute it).
    pub log_likelihood_ratio: f64,
    /// ln(1/α): the line ln Λ must reach.
    pub threshold: f64,
    /// What it says.
    pub verdict: Verdict,
}

impl Reading {
    /// The challenger's rate minus the control's.
    pub fn difference(&self) -> Option<f64> {
        Some(self.challenger.rate()? - self.control.rate()?)
    }
}

impl SequentialTest {
    /// Reads the test on the figures so far.
    pub fn read(&self, control: Arm, challenger: Arm) -> Reading {
        debug_assert!(control.conversions <= control.served);
        debug_assert!(challenger.conversions <= challenger.served);
        let threshold = (1.0 / self.alpha).ln();
        let reading = |log_likelihood_ratio, verdict| Reading {
            control,
            challenger,
            log_likelihood_ratio,
            threshold,
            verdict,
        };
        let enough = control.served >= self.min_served.max(1)
            && challenger.served >= self.min_served.max(1)
            && control.conversions + challenger.conversions >= self.min_conversions;
        let (n0, n1) = (control.served as f64, challenger.served as f64);
        let pooled = (control.conversions + challenger.conversions) as f64 / (n0 + n1);
        let variance = pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1);
        let tau = self.effect * pooled;
        if !enough || variance.is_nan() || variance <= 0.0 || tau.is_nan() || tau <= 0.0 {
            return reading(0.0, Verdict::TooFewData);
        }
        let difference = challenger.conversions as f64 / n1 - control.conversions as f64 / n0;
        let mixed = variance + tau * tau;
        let log_likelihood_ratio = 0.5 * (variance / mixed).ln()
            + difference * difference * tau * tau / (2.0 * variance * mixed);
        let verdict = if log_likelihood_ratio < threshold {
            Verdict::NoDifference
        } else if difference < 0.0 {
            Verdict::Worse
        } else {
            Verdict::Better
        };
        reading(log_likelihood_ratio, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(served: u64, conversions: u64) -> Arm {
        Arm {
            served,
            conversions,
        }
    }

    #[test]
    fn nothing_is_decided_before_the_minimums() {
        let test = SequentialTest::default();
        // A huge difference, but 499 served in one arm.
        let reading = test.read(arm(499, 100), arm(5_000, 0));
        assert_eq!(reading.verdict, Verdict::TooFewData);
        // Enough served, 29 conversions.
        let reading = test.read(arm(1_000, 29), arm(1_000, 0));
        assert_eq!(reading.verdict, Verdict::TooFewData);
        // Nobody converts, or everybody: no variance to test with.
        assert_eq!(
            test.read(arm(1_000, 0), arm(1_000, 0)).verdict,
            Verdict::TooFewData
        );
        let all = SequentialTest {
            min_conversions: 0,
            ..test
        };
        assert_eq!(
            all.read(arm(600, 600), arm(600, 600)).verdict,
            Verdict::TooFewData
        );
    }

    #[test]
    fn a_clear_difference_is_found_in_its_direction() {
        let test = SequentialTest::default();
        let worse = test.read(arm(5_000, 500), arm(5_000, 250));
        assert_eq!(worse.verdict, Verdict::Worse, "{worse:?}");
        assert!(worse.log_likelihood_ratio > worse.threshold);
        assert_eq!(worse.difference(), Some(-0.05));
        let better = test.read(arm(5_000, 250), arm(5_000, 500));
        assert_eq!(better.verdict, Verdict::Better);
        // The same figures either way give the same ratio.
        assert!((worse.log_likelihood_ratio - better.log_likelihood_ratio).abs() < 1e-9);
    }

    #[test]
    fn equal_rates_show_no_difference() {
        let reading = SequentialTest::default().read(arm(10_000, 1_000), arm(10_000, 1_000));
        assert_eq!(reading.verdict, Verdict::NoDifference);
        // With θ̂ = 0 the ratio is below 1: the evidence favours equality.
        assert!(reading.log_likelihood_ratio < 0.0);
    }

    #[test]
    fn a_stricter_alpha_needs_more_evidence() {
        let figures = (arm(2_000, 200), arm(2_000, 150));
        let lenient = SequentialTest {
            alpha: 0.2,
            ..SequentialTest::default()
        };
        let strict = SequentialTest {
            alpha: 0.000_1,
            ..SequentialTest::default()
        };
        assert_eq!(lenient.read(figures.0, figures.1).verdict, Verdict::Worse);
        assert_eq!(
            strict.read(figures.0, figures.1).verdict,
            Verdict::NoDifference
        );
    }
}
