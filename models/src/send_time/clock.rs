//! The engagement counts kept by local hour of week: one customer's
//! ([`EngagementClock`], small enough for the customer's durable state) and
//! the population's ([`PopulationClock`], the prior).

use super::hour::{HOURS_PER_WEEK, HourOfWeek};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One customer's engagements (opens, clicks, sessions) counted by local
/// hour of week: the evidence of when this customer pays attention.
///
/// It lives in the customer's durable state, so it is kept small: only the
/// hours with engagements, as sorted `(hour of week, count)` pairs — at most
/// 168 pairs of three bytes, and a handful for most customers. It is bounded
/// and forgets: once the total reaches [`EngagementClock::CAP`], every count
/// is halved before the next engagement is counted (rounding down, so an
/// hour seen once long ago drops out). Old habits fade by half each time the
/// customer engages another ~500 times, and the total never exceeds the cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u8, u16)>", into = "Vec<(u8, u16)>")]
pub struct EngagementClock {
    /// `(hour of week, count)` for the hours with a non-zero count, sorted
    /// by hour, each hour once.
    hours: Vec<(u8, u16)>,
    /// The sum of the counts (kept, so a record need not add them up).
    total: u32,
}

impl EngagementClock {
    /// The most engagements a clock holds: at this total, every count is
    /// halved before the next one is counted.
    pub const CAP: u32 = 1_000;

    /// An empty clock: no engagement seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one engagement at `at`, counted in the customer's local hour
    /// of week in `timezone`.
    pub fn record(&mut self, at: Timestamp, timezone: chrono_tz::Tz) {
        self.record_hour(HourOfWeek::of(at, timezone));
    }

    /// Records one engagement in `hour` (already local).
    pub fn record_hour(&mut self, hour: HourOfWeek) {
        // Halved before counting, so the newest engagement is never the one
        // rounded away.
        if self.total >= Self::CAP {
            self.halve();
        }
        match self
            .hours
            .binary_search_by_key(&hour.0, |(index, _)| *index)
        {
            Ok(position) => {
                let count = &mut self.hours[position].1;
                *count = count.saturating_add(1);
            }
            Err(position) => {
                // Exactly one more slot: the clock stays as small as it is.
                self.hours.reserve_exact(1);
                self.hours.insert(position, (hour.0, 1));
            }
        }
        self.total += 1;
        debug_assert!(self.total <= Self::CAP);
        debug_assert_eq!(self.total, Self::sum(&self.hours));
    }

    /// Halves every count, rounding down, dropping the hours that reach zero.
    fn halve(&mut self) {
        self.hours.retain_mut(|(_, count)| {
            *count /= 2;
            *count > 0
        });
        self.hours.shrink_to_fit();
        self.total = Self::sum(&self.hours);
    }

    fn sum(hours: &[(u8, u16)]) -> u32 {
        hours.iter().map(|(_, count)| u32::from(*count)).sum()
    }

    /// Engagements counted (after any halving).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Engagements counted in `hour`.
    pub fn count(&self, hour: HourOfWeek) -> u32 {
        self.hours
            .binary_search_by_key(&hour.0, |(index, _)| *index)
            .map_or(0, |position| u32::from(self.hours[position].1))
    }

    /// Whether no engagement is counted.
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// The hours with engagements and their counts, Monday 00:00 first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (HourOfWeek, u32)> + '_ {
        self.hours
            .iter()
            .map(|(index, count)| (HourOfWeek(*index), u32::from(*count)))
    }

    /// How many hours have a count (the pairs stored).
    pub fn hours_stored(&self) -> usize {
        self.hours.len()
    }
}

impl TryFrom<Vec<(u8, u16)>> for EngagementClock {
    type Error = String;

    fn try_from(hours: Vec<(u8, u16)>) -> Result<Self, String> {
        if let Some((index, _)) = hours
            .iter()
            .find(|(index, _)| usize::from(*index) >= HOURS_PER_WEEK)
        {
            return Err(format!("hour of week {index} is not in 0..168"));
        }
        if hours.iter().any(|(_, count)| *count == 0) {
            return Err("engagement clock has an hour with a count of zero".to_owned());
        }
        if hours.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err("engagement clock hours are not sorted and distinct".to_owned());
        }
        let mut clock = Self {
            total: Self::sum(&hours),
            hours,
        };
        // A clock written under a larger cap is brought under this one.
        while clock.total > Self::CAP {
            clock.halve();
        }
        Ok(clock)
    }
}

impl From<EngagementClock> for Vec<(u8, u16)> {
    fn from(clock: EngagementClock) -> Self {
        clock.hours
    }
}

/// The population's engagement by local hour of week: the prior a
/// customer's own thin history is shrunk toward. Counts of engagements,
/// aggregated over customers (each in their own timezone) by whoever builds
/// it, e.g. a training job over the profiles.
///
/// With no data it is the uniform distribution: every hour of the week
/// equally likely, so a customer with no history and no population data
/// simply gets the earliest open moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u64>", into = "Vec<u64>")]
pub struct PopulationClock {
    /// Engagements per hour of week; always 168 entries.
    counts: Vec<u64>,
    /// Their sum.
    total: u64,
}

impl Default for PopulationClock {
    fn default() -> Self {
        Self {
            counts: vec![0; HOURS_PER_WEEK],
            total: 0,
        }
    }
}

impl PopulationClock {
    /// No data: the uniform distribution.
    pub fn new() -> Self {
        Self::default()
    }

    /// The population with these counts, one per hour of week.
    pub fn from_counts(counts: [u64; HOURS_PER_WEEK]) -> Self {
        let mut clock = Self::default();
        for (hour, count) in HourOfWeek::all().zip(counts) {
            clock.add_count(hour, count);
        }
        clock
    }

    /// Counts one engagement in `hour`.
    pub fn record(&mut self, hour: HourOfWeek) {
        self.add_count(hour, 1);
    }

    /// Adds one customer's engagements. Counts are engagements, not
    /// customers: an active customer weighs more, but no more than
    /// [`EngagementClock::CAP`].
    pub fn add(&mut self, clock: &EngagementClock) {
        for (hour, count) in clock.iter() {
            self.add_count(hour, u64::from(count));
        }
    }

    /// Adds another population's counts (aggregating shards).
    pub fn merge(&mut self, other: &PopulationClock) {
        for (hour, count) in HourOfWeek::all().zip(other.counts.iter()) {
            self.add_count(hour, *count);
        }
    }

    fn add_count(&mut self, hour: HourOfWeek, count: u64) {
        let slot = &mut self.counts[usize::from(hour.0)];
        *slot = slot.saturating_add(count);
        self.total = self.total.saturating_add(count);
    }

    /// Engagements counted in `hour`.
    pub fn count(&self, hour: HourOfWeek) -> u64 {
        self.counts[usize::from(hour.0)]
    }

    /// Engagements counted in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The share of the population's engagements that fall in `hour`
    /// (summing to one over the week); 1/168 for every hour with no data.
    pub fn share(&self, hour: HourOfWeek) -> f64 {
        if self.total == 0 {
            1.0 / HOURS_PER_WEEK as f64
        } else {
            self.count(hour) as f64 / self.total as f64
        }
    }

    /// Every hour's share, Monday 00:00 first.
    pub fn shares(&self) -> [f64; HOURS_PER_WEEK] {
        let mut shares = [0.0; HOURS_PER_WEEK];
        for (share, hour) in shares.iter_mut().zip(HourOfWeek::all()) {
            *share = self.share(hour);
        }
        shares
    }
}

impl TryFrom<Vec<u64>> for PopulationClock {
    type Error = String;

    fn try_from(counts: Vec<u64>) -> Result<Self, String> {
        if counts.len() != HOURS_PER_WEEK {
            return Err(format!(
                "population clock has {} hours, not 168",
                counts.len()
            ));
        }
        let total = counts
            .iter()
            .fold(0_u64, |total, count| total.saturating_add(*count));
        Ok(Self { counts, total })
    }
}

impl From<PopulationClock> for Vec<u64> {
    fn from(population: PopulationClock) -> Self {
        population.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("valid instant")
    }

    fn hour(day: u8, hour_of_day: u8) -> HourOfWeek {
        HourOfWeek::from_day_and_hour(day, hour_of_day).expect("in range")
    }

    #[test]
    fn a_clock_keeps_only_the_hours_seen_and_halves_past_its_cap() {
        let mut clock = EngagementClock::new();
        assert!(clock.is_empty());
        clock.record(at("2026-01-05T08:15:00Z"), Europe::Berlin);
        clock.record(at("2026-01-12T08:45:00Z"), Europe::Berlin);
        clock.record_hour(hour(2, 20));
        assert_eq!(clock.total(), 3);
        assert_eq!(clock.count(hour(0, 9)), 2);
        assert_eq!(clock.count(hour(2, 20)), 1);
        assert_eq!(clock.count(hour(2, 21)), 0);
        assert_eq!(clock.hours_stored(), 2);
        let hours: Vec<(HourOfWeek, u32)> = clock.iter().collect();
        assert_eq!(hours, vec![(hour(0, 9), 2), (hour(2, 20), 1)]);
        for _ in 3..EngagementClock::CAP {
            clock.record_hour(hour(0, 9));
        }
        assert_eq!(clock.total(), EngagementClock::CAP);
        clock.record_hour(hour(0, 9));
        // 999 at Monday 09:00 halve to 499 and Wednesday's one drops out,
        // then the new one is counted.
        assert_eq!(clock.total(), 500);
        assert_eq!(clock.count(hour(0, 9)), 500);
        assert_eq!(clock.hours_stored(), 1);
    }

    #[test]
    fn a_clock_is_stored_as_its_pairs_and_checked_when_read() {
        let mut clock = EngagementClock::new();
        clock.record_hour(hour(0, 9));
        clock.record_hour(hour(0, 9));
        clock.record_hour(hour(1, 10));
        let json = serde_json::to_string(&clock).expect("serializes");
        assert_eq!(json, "[[9,2],[34,1]]");
        let back: EngagementClock = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, clock);
        assert_eq!(back.total(), 3);
        for (text, message) in [
            ("[[168,1]]", "hour of week 168 is not in 0..168"),
            ("[[3,0]]", "count of zero"),
            ("[[4,1],[3,1]]", "not sorted and distinct"),
            ("[[3,1],[3,1]]", "not sorted and distinct"),
        ] {
            let error = serde_json::from_str::<EngagementClock>(text).expect_err(text);
            assert!(error.to_string().contains(message), "{text}: {error}");
        }
        let over_cap: EngagementClock = serde_json::from_str("[[1,1500],[2,1]]").expect("reads");
        assert_eq!(over_cap.total(), 750);
        assert_eq!(over_cap.hours_stored(), 1);
        assert!(serde_json::from_str::<HourOfWeek>("168").is_err());
        assert_eq!(
            serde_json::from_str::<HourOfWeek>("9").ok(),
            HourOfWeek::new(9)
        );
    }

    #[test]
    fn a_population_with_no_data_is_uniform() {
        let mut population = PopulationClock::new();
        assert_eq!(population.share(hour(3, 3)), 1.0 / 168.0);
        let total: f64 = population.shares().iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        let mut clock = EngagementClock::new();
        clock.record_hour(hour(0, 9));
        clock.record_hour(hour(0, 9));
        population.add(&clock);
        population.record(hour(0, 10));
        let mut other = PopulationClock::new();
        other.record(hour(0, 10));
        population.merge(&other);
        assert_eq!(population.total(), 4);
        assert_eq!(population.share(hour(0, 9)), 0.5);
        assert_eq!(population.share(hour(0, 10)), 0.5);
        assert_eq!(population.share(hour(0, 11)), 0.0);
        let json = serde_json::to_string(&population).expect("serializes");
        let back: PopulationClock = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, population);
        let error = serde_json::from_str::<PopulationClock>("[1,2]").expect_err("short");
        assert!(error.to_string().contains("2 hours, not 168"), "{error}");
    }
}
