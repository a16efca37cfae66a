//! The estimate of when one customer engages: their own counts, spread over
//! nearby hours, shrunk toward the population's pattern (the formula is in
//! the [module docs](super)).

use super::clock::{EngagementClock, PopulationClock};
use super::hour::{HOURS_PER_WEEK, HourOfWeek};
use crate::time::Span;
use serde::{Deserialize, Serialize};

/// How send times are estimated and searched. The defaults are the
/// product's; a catalog may set its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendTimePolicy {
    /// The prior's weight `k`, in pseudo-engagements: the population's
    /// pattern counts as this many engagements of the customer's own. Below
    /// `k` engagements a customer's estimate is mostly the population's;
    /// past it, mostly their own. Large enough that one or two engagements
    /// do not overturn the population's best hour unless the population
    /// barely prefers it (see the module docs).
    pub prior_strength: f64,
    /// Weight of the hours just before and after an engagement's hour,
    /// relative to the hour itself: someone who opens at 9:00 is likely
    /// around 8:00 and 10:00 too.
    pub neighbour_hour_weight: f64,
    /// Weight of the same hour of the day on each of the six other days,
    /// relative to the engagement's own day: daily habits repeat, so a
    /// Monday 9:00 open is evidence for Tuesday 9:00. Below one, so a
    /// weekly habit (Saturday mornings) still shows.
    pub other_days_weight: f64,
    /// Engagements from which a customer's estimate is called personal
    /// (for the explanation; it does not change the estimate).
    pub personal_min_engagements: u32,
    /// The window searched when the caller gives none (`best_time` within
    /// the next 24 hours).
    pub window: Span,
}

impl Default for SendTimePolicy {
    fn default() -> Self {
        Self {
            prior_strength: 12.0,
            neighbour_hour_weight: 0.75,
            other_days_weight: 0.5,
            personal_min_engagements: 12,
            window: Span::hours(24),
        }
    }
}

impl SendTimePolicy {
    /// Checks the policy: weights finite and not negative, the window
    /// positive; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let weights = [
            ("prior_strength", self.prior_strength),
            ("neighbour_hour_weight", self.neighbour_hour_weight),
            ("other_days_weight", self.other_days_weight),
        ];
        for (name, weight) in weights {
            if !weight.is_finite() || weight < 0.0 {
                return Err(format!(
                    "send-time {name} must be a finite number at least 0, not {weight}"
                ));
            }
        }
        if self.window.millis() <= 0 {
            return Err(format!(
                "send-time window must be longer than zero, not {}",
                self.window
            ));
        }
        Ok(())
    }
}

/// Whose pattern a send time mostly follows: what the explanation says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Basis {
    /// The customer's own history: at least
    /// [`SendTimePolicy::personal_min_engagements`] engagements.
    Personal,
    /// The population's pattern: the customer's history is too thin to
    /// stand on its own (it still counts, weighted by its size).
    Population,
}

/// One customer's estimated engagement by local hour of week: the
/// posterior mean share of each hour (summing to one over the week).
#[derive(Debug, Clone, PartialEq)]
pub struct SendTimeEstimate {
    /// The posterior share of each hour of week, Monday 00:00 first.
    shares: [f64; HOURS_PER_WEEK],
    /// The customer's engagements behind it (`N`).
    engagements: u32,
    /// `N / (N + k)`: the weight of the customer's own history.
    personal_weight: f64,
    /// Personal or population, per the policy's threshold.
    basis: Basis,
}

impl SendTimeEstimate {
    /// The customer's estimate from their `clock`, the `population`'s
    /// pattern and the `policy` (see the module docs for the formula).
    pub fn new(
        clock: &EngagementClock,
        population: &PopulationClock,
        policy: &SendTimePolicy,
    ) -> Self {
        let usable = |weight: f64| {
            if weight.is_finite() && weight >= 0.0 {
                weight
            } else {
                0.0
            }
        };
        let prior_strength = usable(policy.prior_strength);
        let smoothed = smoothed_counts(
            clock,
            usable(policy.neighbour_hour_weight),
            usable(policy.other_days_weight),
        );
        let engagements = clock.total();
        let own = f64::from(engagements);
        let prior = population.shares();
        let mut shares = [0.0; HOURS_PER_WEEK];
        let denominator = own + prior_strength;
        for ((share, count), prior_share) in shares.iter_mut().zip(smoothed).zip(prior) {
            *share = if denominator > 0.0 {
                (count + prior_strength * prior_share) / denominator
            } else {
                // No history and no prior weight: the population's pattern.
                prior_share
            };
        }
        debug_assert!(
            shares
                .iter()
                .all(|share| share.is_finite() && *share >= 0.0),
            "posterior shares are finite and not negative"
        );
        let personal_weight = if denominator > 0.0 {
            own / denominator
        } else {
            0.0
        };
        let basis = if engagements >= policy.personal_min_engagements && engagements > 0 {
            Basis::Personal
        } else {
            Basis::Population
        };
        Self {
            shares,
            engagements,
            personal_weight,
            basis,
        }
    }

    /// The estimated share of the customer's engagements that fall in
    /// `hour` (1/168 would be no preference).
    pub fn share(&self, hour: HourOfWeek) -> f64 {
        self.shares[usize::from(hour.index())]
    }

    /// The hour of the week with the highest share (the earliest in the
    /// week on a tie).
    pub fn best_hour(&self) -> HourOfWeek {
        HourOfWeek::all().fold(HourOfWeek::MONDAY_MIDNIGHT, |best, hour| {
            if self.share(hour) > self.share(best) {
                hour
            } else {
                best
            }
        })
    }

    /// The customer's engagements behind the estimate (`N`).
    pub fn engagements(&self) -> u32 {
        self.engagements
    }

    /// `N / (N + k)`: how much of the estimate is the customer's own
    /// history, 0 with none.
    pub fn personal_weight(&self) -> f64 {
        self.personal_weight
    }

    /// Personal or population, per [`SendTimePolicy::personal_min_engagements`].
    pub fn basis(&self) -> Basis {
        self.basis
    }
}

/// The customer's counts with each engagement spread over nearby hours:
/// weight 1 on its own hour, `neighbour` on the hour before and after,
/// `other_days` on the same hour of each other day of the week (and
/// `other_days × neighbour` on their neighbours), all divided by their sum
/// so each engagement still adds up to one.
fn smoothed_counts(
    clock: &EngagementClock,
    neighbour: f64,
    other_days: f64,
) -> [f64; HOURS_PER_WEEK] {
    let kernel_sum = (1.0 + 6.0 * other_days) * (1.0 + 2.0 * neighbour);
    let mut smoothed = [0.0; HOURS_PER_WEEK];
    for (hour, count) in clock.iter() {
        let mass = f64::from(count) / kernel_sum;
        for day in 0..7_i32 {
            let day_weight = if day == 0 { 1.0 } else { other_days };
            for (offset, hour_weight) in [(-1, neighbour), (0, 1.0), (1, neighbour)] {
                let target = hour.shifted(24 * day + offset);
                smoothed[usize::from(target.index())] += mass * day_weight * hour_weight;
            }
        }
    }
    smoothed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(day: u8, hour_of_day: u8) -> HourOfWeek {
        HourOfWeek::from_day_and_hour(day, hour_of_day).expect("in range")
    }

    fn peaked_population() -> PopulationClock {
        let mut population = PopulationClock::new();
        for every in HourOfWeek::all() {
            population.record(every);
        }
        for day in 0..7 {
            for _ in 0..3 {
                population.record(hour(day, 19));
            }
        }
        population
    }

    #[test]
    fn with_no_history_the_estimate_is_the_population() {
        let population = peaked_population();
        let estimate = SendTimeEstimate::new(
            &EngagementClock::new(),
            &population,
            &SendTimePolicy::default(),
        );
        for every in HourOfWeek::all() {
            assert!((estimate.share(every) - population.share(every)).abs() < 1e-15);
        }
        assert_eq!(estimate.best_hour(), hour(0, 19));
        assert_eq!(estimate.basis(), Basis::Population);
        assert_eq!(estimate.personal_weight(), 0.0);
        // No prior weight either: still the population, not 0/0.
        let policy = SendTimePolicy {
            prior_strength: 0.0,
            ..SendTimePolicy::default()
        };
        let estimate = SendTimeEstimate::new(&EngagementClock::new(), &population, &policy);
        assert_eq!(estimate.share(hour(0, 19)), population.share(hour(0, 19)));
    }

    #[test]
    fn the_posterior_follows_the_documented_formula() {
        let policy = SendTimePolicy::default();
        let population = peaked_population();
        let mut clock = EngagementClock::new();
        for _ in 0..4 {
            clock.record_hour(hour(2, 9));
        }
        let estimate = SendTimeEstimate::new(&clock, &population, &policy);
        let (a, b, k, n) = (0.75, 0.5, 12.0, 4.0);
        let kernel_sum = (1.0 + 2.0 * a) * (1.0 + 6.0 * b);
        let expect = |spread: f64, at: HourOfWeek| {
            (n * spread / kernel_sum + k * population.share(at)) / (n + k)
        };
        assert!((estimate.share(hour(2, 9)) - expect(1.0, hour(2, 9))).abs() < 1e-12);
        assert!((estimate.share(hour(2, 10)) - expect(a, hour(2, 10))).abs() < 1e-12);
        assert!((estimate.share(hour(5, 9)) - expect(b, hour(5, 9))).abs() < 1e-12);
        assert!((estimate.share(hour(5, 8)) - expect(a * b, hour(5, 8))).abs() < 1e-12);
        assert!((estimate.share(hour(5, 11)) - expect(0.0, hour(5, 11))).abs() < 1e-12);
        let total: f64 = HourOfWeek::all().map(|every| estimate.share(every)).sum();
        assert!((total - 1.0).abs() < 1e-12, "shares sum to one: {total}");
        assert_eq!(estimate.engagements(), 4);
        assert!((estimate.personal_weight() - n / (n + k)).abs() < 1e-12);
        assert_eq!(estimate.basis(), Basis::Population);
    }

    #[test]
    fn enough_history_is_personal_and_wins_over_the_population() {
        let policy = SendTimePolicy::default();
        let mut clock = EngagementClock::new();
        for day in 0..7 {
            for _ in 0..3 {
                clock.record_hour(hour(day, 7));
            }
        }
        let estimate = SendTimeEstimate::new(&clock, &peaked_population(), &policy);
        assert_eq!(estimate.basis(), Basis::Personal);
        assert_eq!(estimate.best_hour().hour_of_day(), 7);
    }

    #[test]
    fn smoothing_wraps_around_the_week() {
        let mut clock = EngagementClock::new();
        clock.record_hour(hour(6, 23));
        let estimate =
            SendTimeEstimate::new(&clock, &PopulationClock::new(), &SendTimePolicy::default());
        assert!(estimate.share(HourOfWeek::MONDAY_MIDNIGHT) > estimate.share(hour(0, 1)));
        assert!(estimate.share(hour(0, 23)) > estimate.share(hour(0, 22)));
    }

    #[test]
    fn a_policy_says_what_is_wrong() {
        assert_eq!(SendTimePolicy::default().validate(), Ok(()));
        let negative = SendTimePolicy {
            prior_strength: -1.0,
            ..SendTimePolicy::default()
        };
        assert_eq!(
            negative.validate(),
            Err("send-time prior_strength must be a finite number at least 0, not -1".to_owned())
        );
        let nan = SendTimePolicy {
            other_days_weight: f64::NAN,
            ..SendTimePolicy::default()
        };
        assert!(
            nan.validate()
                .is_err_and(|message| message.contains("other_days_weight"))
        );
        let empty = SendTimePolicy {
            window: Span(0),
            ..SendTimePolicy::default()
        };
        assert!(
            empty
                .validate()
                .is_err_and(|message| message.contains("window"))
        );
        // An invalid policy still estimates: bad weights count as zero.
        let estimate =
            SendTimeEstimate::new(&EngagementClock::new(), &PopulationClock::new(), &nan);
        assert!(estimate.share(HourOfWeek::MONDAY_MIDNIGHT).is_finite());
    }
}
