//! Hours of the week on a customer's own clock, and where local hours
//! start: the unit send times are counted and searched in.

use crate::time::{HOUR_MS, Span, Timestamp};
use chrono::{Datelike as _, Timelike as _};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Hours in a week: the number of [`HourOfWeek`]s.
pub const HOURS_PER_WEEK: usize = 168;

/// One hour of the week in the customer's LOCAL time: 0 is Monday
/// 00:00–01:00, 167 is Sunday 23:00–24:00. Habits follow the local clock
/// (people open mail over breakfast wherever they are), so engagement is
/// counted by local hour, not UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct HourOfWeek(pub(super) u8);

impl HourOfWeek {
    /// Monday 00:00–01:00, the first hour of the week.
    pub const MONDAY_MIDNIGHT: HourOfWeek = HourOfWeek(0);

    /// The hour of week `index` (0..168), `None` past the week.
    pub fn new(index: u8) -> Option<Self> {
        (usize::from(index) < HOURS_PER_WEEK).then_some(Self(index))
    }

    /// The hour of week on `day` (0 = Monday .. 6 = Sunday) at `hour_of_day`
    /// (0..24), `None` if either is out of range.
    pub fn from_day_and_hour(day: u8, hour_of_day: u8) -> Option<Self> {
        (day < 7 && hour_of_day < 24).then(|| Self(day * 24 + hour_of_day))
    }

    /// The local hour of week in `timezone` that the instant `at` falls in.
    /// An instant chrono cannot represent (hundreds of thousands of years
    /// away) is read in UTC.
    pub fn of(at: Timestamp, timezone: chrono_tz::Tz) -> Self {
        match at.to_utc() {
            Some(utc) => {
                let local = utc.with_timezone(&timezone);
                // Both are in range: a weekday is 0..7, an hour 0..24.
                let day = local.weekday().num_days_from_monday() as u8;
                let hour = local.hour() as u8;
                Self(day * 24 + hour)
            }
            None => {
                // The epoch was a Thursday (day 3), at 00:00 UTC.
                let hours = at.hour_index().rem_euclid(7 * 24) + 3 * 24;
                Self((hours % (7 * 24)) as u8)
            }
        }
    }

    /// The index, 0..168 (Monday 00:00 is 0).
    pub fn index(self) -> u8 {
        self.0
    }

    /// The local hour of the day, 0..24.
    pub fn hour_of_day(self) -> u8 {
        self.0 % 24
    }

    /// The local day of the week, 0 (Monday) .. 6 (Sunday).
    pub fn day_of_week(self) -> u8 {
        self.0 / 24
    }

    /// This hour of week moved by `hours` (either way), wrapping around the
    /// week: Sunday 23:00 plus one is Monday 00:00.
    pub fn shifted(self, hours: i32) -> Self {
        let week = HOURS_PER_WEEK as i32;
        Self((i32::from(self.0) + hours).rem_euclid(week) as u8)
    }

    /// Every hour of the week, Monday 00:00 first.
    pub fn all() -> impl ExactSizeIterator<Item = HourOfWeek> {
        (0..HOURS_PER_WEEK as u8).map(Self)
    }
}

impl TryFrom<u8> for HourOfWeek {
    type Error = String;

    fn try_from(index: u8) -> Result<Self, String> {
        Self::new(index).ok_or_else(|| format!("hour of week {index} is not in 0..168"))
    }
}

impl From<HourOfWeek> for u8 {
    fn from(hour: HourOfWeek) -> u8 {
        hour.0
    }
}

impl fmt::Display for HourOfWeek {
    /// `Mon 09:00`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let day = DAYS[usize::from(self.day_of_week())];
        write!(formatter, "{day} {:02}:00", self.hour_of_day())
    }
}

/// The first instant strictly after `at` at which the local clock in
/// `timezone` shows a whole hour (`HH:00:00.000`). Whole hours in UTC are
/// not whole hours everywhere (India is UTC+05:30), and a clock change of
/// half an hour (Lord Howe Island) moves them: the instant is re-aligned
/// until the local clock shows minute zero.
pub fn next_local_hour_start(at: Timestamp, timezone: chrono_tz::Tz) -> Timestamp {
    let into_hour = |instant: Timestamp| -> Option<i64> {
        let local = instant.to_utc()?.with_timezone(&timezone);
        Some(
            i64::from(local.minute()) * 60_000
                + i64::from(local.second()) * 1_000
                + i64::from(local.nanosecond() / 1_000_000),
        )
    };
    let mut candidate = at;
    // Twice is enough for any real clock change; the bound only guards the
    // loop.
    for _ in 0..4 {
        let Some(elapsed) = into_hour(candidate) else {
            break;
        };
        if candidate > at && elapsed == 0 {
            return candidate;
        }
        candidate = candidate.plus(Span(HOUR_MS - elapsed));
    }
    if candidate > at {
        candidate
    } else {
        at.plus(Span(HOUR_MS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Australia, Europe};

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("valid instant")
    }

    fn hour(day: u8, hour_of_day: u8) -> HourOfWeek {
        HourOfWeek::from_day_and_hour(day, hour_of_day).expect("in range")
    }

    #[test]
    fn hours_of_week_are_read_on_the_local_clock() {
        // Sunday 23:30 UTC is Monday 00:30 in Berlin (winter, UTC+1).
        let instant = at("2026-01-04T23:30:00Z");
        assert_eq!(HourOfWeek::of(instant, chrono_tz::UTC), hour(6, 23));
        assert_eq!(HourOfWeek::of(instant, Europe::Berlin), hour(0, 0));
        assert_eq!(HourOfWeek::of(instant, Asia::Kolkata), hour(0, 5));
        assert_eq!(HourOfWeek::of(instant, America::New_York), hour(6, 18));
        let monday_nine = HourOfWeek::of(at("2026-01-05T08:00:00Z"), Europe::Berlin);
        assert_eq!(monday_nine.index(), 9);
        assert_eq!(monday_nine.hour_of_day(), 9);
        assert_eq!(monday_nine.day_of_week(), 0);
        assert_eq!(monday_nine.to_string(), "Mon 09:00");
        assert_eq!(hour(6, 23).shifted(1), HourOfWeek::MONDAY_MIDNIGHT);
        assert_eq!(HourOfWeek::MONDAY_MIDNIGHT.shifted(-1), hour(6, 23));
        assert_eq!(HourOfWeek::new(168), None);
        assert_eq!(HourOfWeek::from_day_and_hour(7, 0), None);
        assert_eq!(HourOfWeek::all().len(), HOURS_PER_WEEK);
    }

    #[test]
    fn clock_changes_move_the_local_hour() {
        // New York springs forward on 2026-03-08 at 02:00 (to 03:00).
        assert_eq!(
            HourOfWeek::of(at("2026-03-08T06:30:00Z"), America::New_York),
            hour(6, 1)
        );
        assert_eq!(
            HourOfWeek::of(at("2026-03-08T07:30:00Z"), America::New_York),
            hour(6, 3)
        );
        // And falls back on 2026-11-01: 01:00–02:00 happens twice.
        assert_eq!(
            HourOfWeek::of(at("2026-11-01T05:30:00Z"), America::New_York),
            hour(6, 1)
        );
        assert_eq!(
            HourOfWeek::of(at("2026-11-01T06:30:00Z"), America::New_York),
            hour(6, 1)
        );
    }

    #[test]
    fn instants_chrono_cannot_hold_are_read_in_utc() {
        for millis in [i64::MIN, i64::MAX, -8_640_000_000_000_000_000] {
            let instant = Timestamp(millis);
            assert!(instant.to_utc().is_none());
            let expected = (instant.hour_index().rem_euclid(168) + 72) % 168;
            assert_eq!(
                i64::from(HourOfWeek::of(instant, Europe::Berlin).index()),
                expected
            );
        }
        // The epoch, a Thursday at midnight UTC, as chrono reads it.
        assert_eq!(HourOfWeek::of(Timestamp(0), chrono_tz::UTC), hour(3, 0));
    }

    #[test]
    fn local_hours_start_on_the_local_clock() {
        // India is UTC+05:30: its hours start at half past in UTC.
        assert_eq!(
            next_local_hour_start(at("2026-01-05T08:10:00Z"), Asia::Kolkata),
            at("2026-01-05T08:30:00Z")
        );
        // Strictly after: a whole hour moves to the next one.
        assert_eq!(
            next_local_hour_start(at("2026-01-05T08:30:00Z"), Asia::Kolkata),
            at("2026-01-05T09:30:00Z")
        );
        assert_eq!(
            next_local_hour_start(at("2026-01-05T08:00:00Z"), chrono_tz::UTC),
            at("2026-01-05T09:00:00Z")
        );
        // New York's 01:xx is followed by 03:00 the night clocks go forward.
        let start = next_local_hour_start(at("2026-03-08T06:15:00Z"), America::New_York);
        assert_eq!(start, at("2026-03-08T07:00:00Z"));
        assert_eq!(HourOfWeek::of(start, America::New_York), hour(6, 3));
        // Lord Howe Island goes back half an hour (UTC+11 to UTC+10:30) on
        // 2026-04-05 at 02:00 local: after 01:45 (+11) the clock shows 01:30
        // again a quarter of an hour later, and the next whole hour is 02:00
        // (+10:30), three quarters of an hour after 01:45.
        let before = at("2026-04-04T14:45:00Z");
        let next = next_local_hour_start(before, Australia::Lord_Howe);
        assert_eq!(next, at("2026-04-04T15:30:00Z"));
        assert_eq!(HourOfWeek::of(next, Australia::Lord_Howe).hour_of_day(), 2);
    }
}
