//! Local time in the simulated world: the timezones customers live in and
//! the hour of day they are active at. The few IANA zones of the world have
//! their daylight-saving rules written out here (the United States' since
//! 2007, the European Union's since 1996), so the world needs no timezone
//! database and a seed's customers never change with one; a unit test
//! checks them against the database the server uses.

use chrono::{Datelike, NaiveDate, Weekday};
use nudge_models::time::{DAY_MS, HOUR_MS};

/// Milliseconds in one minute.
const MINUTE_MS: i64 = 60_000;

/// A customer's timezone, sent as the `timezone` attribute (its IANA name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Zone {
    /// `America/New_York`: UTC−5, UTC−4 in summer (US rules).
    NewYork,
    /// `America/Los_Angeles`: UTC−8, UTC−7 in summer (US rules).
    LosAngeles,
    /// `Europe/Berlin`: UTC+1, UTC+2 in summer (EU rules).
    Berlin,
    /// `Asia/Kolkata`: UTC+5:30 all year.
    Kolkata,
    /// `UTC`.
    Utc,
}

impl Zone {
    /// Every zone of the world.
    pub const ALL: [Self; 5] = [
        Self::NewYork,
        Self::LosAngeles,
        Self::Berlin,
        Self::Kolkata,
        Self::Utc,
    ];

    /// The IANA name, as the `timezone` attribute holds it.
    pub fn name(self) -> &'static str {
        match self {
            Self::NewYork => "America/New_York",
            Self::LosAngeles => "America/Los_Angeles",
            Self::Berlin => "Europe/Berlin",
            Self::Kolkata => "Asia/Kolkata",
            Self::Utc => "UTC",
        }
    }

    /// The offset from UTC at the instant `at` (ms since the epoch), in ms.
    pub fn offset_ms(self, at: i64) -> i64 {
        match self {
            Self::NewYork => united_states(at, -5),
            Self::LosAngeles => united_states(at, -8),
            Self::Berlin => european_union(at, 1),
            Self::Kolkata => 330 * MINUTE_MS,
            Self::Utc => 0,
        }
    }

    /// The local wall-clock time at `at`, as ms since the local epoch (the
    /// instant that would show the same date and time in UTC).
    pub fn local(self, at: i64) -> i64 {
        at + self.offset_ms(at)
    }

    /// The local hour of day at `at`, in [0, 24) with its fraction (9.5 is
    /// 09:30).
    pub fn hour_of_day(self, at: i64) -> f64 {
        self.local(at).rem_euclid(DAY_MS) as f64 / HOUR_MS as f64
    }

    /// The instant at which the local wall clock shows `local` (ms since
    /// the local epoch). A wall-clock time that a daylight-saving change
    /// skips or repeats maps to an instant within an hour of it.
    pub fn instant(self, local: i64) -> i64 {
        let guess = local - self.offset_ms(local);
        local - self.offset_ms(guess)
    }

    /// The first instant after `after` at which the local time of day is
    /// `hour` (fractions allowed: 10.0 is 10:00, 9.5 is 09:30).
    pub fn next_at(self, after: i64, hour: f64) -> i64 {
        let local = self.local(after);
        let midnight = local - local.rem_euclid(DAY_MS);
        let time_of_day = (hour.rem_euclid(24.0) * HOUR_MS as f64) as i64;
        (0..3)
            .map(|day| self.instant(midnight + day * DAY_MS + time_of_day))
            .find(|&at| at > after)
            .unwrap_or(after + DAY_MS)
    }
}

/// `hour`:00 UTC on `date`, in ms since the epoch.
fn utc_ms(date: NaiveDate, hour: u32) -> Option<i64> {
    Some(date.and_hms_opt(hour, 0, 0)?.and_utc().timestamp_millis())
}

/// The `n`-th Sunday of `month` in `year` (`n` = 5: the last one).
fn sunday(year: i32, month: u32, n: u8) -> Option<NaiveDate> {
    if n >= 5 {
        return NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, 5)
            .or_else(|| NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, 4));
    }
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n)
}

/// The UTC year of `at`.
fn year(at: i64) -> Option<i32> {
    chrono::DateTime::from_timestamp_millis(at).map(|instant| instant.year())
}

/// The offset of a US zone `standard` hours from UTC: an hour more from
/// 02:00 local standard time on the second Sunday of March to 02:00 local
/// daylight time on the first Sunday of November.
fn united_states(at: i64, standard: i64) -> i64 {
    let standard_ms = standard * HOUR_MS;
    let summer = year(at).and_then(|year| {
        let start = utc_ms(sunday(year, 3, 2)?, 2)? - standard_ms;
        let end = utc_ms(sunday(year, 11, 1)?, 2)? - standard_ms - HOUR_MS;
        Some((start..end).contains(&at))
    });
    standard_ms + if summer == Some(true) { HOUR_MS } else { 0 }
}

/// The offset of an EU zone `standard` hours from UTC: an hour more from
/// 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
/// October.
fn european_union(at: i64, standard: i64) -> i64 {
    let summer = year(at).and_then(|year| {
        let start = utc_ms(sunday(year, 3, 5)?, 1)?;
        let end = utc_ms(sunday(year, 10, 5)?, 1)?;
        Some((start..end).contains(&at))
    });
    standard * HOUR_MS + if summer == Some(true) { HOUR_MS } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Offset as _, TimeZone as _};

    #[test]
    fn offsets_match_the_timezone_database_the_server_uses() {
        // The server reads the `timezone` attribute with chrono-tz (through
        // the catalog): every hour of 2024–2030 agrees.
        for zone in Zone::ALL {
            assert!(nudge_models::profile::is_valid_timezone(zone.name()));
            let text = nudge_models::demo::CATALOG_TOML.replacen(
                "timezone = \"UTC\"",
                &format!("timezone = \"{}\"", zone.name()),
                1,
            );
            let catalog =
                nudge_models::catalog::Catalog::from_toml(&text).expect("the demo catalog");
            let tz = catalog.default_timezone;
            let from = utc_ms(NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date"), 0)
                .expect("an instant");
            for hour in 0..7 * 366 * 24 {
                let at = from + hour * HOUR_MS + 30 * MINUTE_MS;
                let utc = chrono::DateTime::from_timestamp_millis(at).expect("in range");
                let expected = tz
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc();
                assert_eq!(
                    zone.offset_ms(at),
                    i64::from(expected) * 1_000,
                    "{} at {utc}",
                    zone.name()
                );
            }
        }
    }

    #[test]
    fn local_times_go_both_ways() {
        // 2026-07-01 12:00 UTC: summer in New York and Berlin.
        let noon =
            utc_ms(NaiveDate::from_ymd_opt(2026, 7, 1).expect("a date"), 12).expect("an instant");
        assert_eq!(Zone::NewYork.hour_of_day(noon), 8.0);
        assert_eq!(Zone::Berlin.hour_of_day(noon), 14.0);
        assert_eq!(Zone::Kolkata.hour_of_day(noon), 17.5);
        assert_eq!(Zone::LosAngeles.hour_of_day(noon), 5.0);
        for zone in Zone::ALL {
            assert_eq!(zone.instant(zone.local(noon)), noon, "{zone:?}");
            let next = zone.next_at(noon, 10.0);
            assert!(next > noon && next - noon <= DAY_MS, "{zone:?}");
            assert_eq!(zone.hour_of_day(next), 10.0, "{zone:?}");
            assert_eq!(zone.next_at(next - 1, 10.0), next);
            assert_eq!(zone.next_at(next, 10.0), next + DAY_MS);
        }
        // Across the autumn change (2026-11-01 in New York) a day is 25 h.
        let before =
            utc_ms(NaiveDate::from_ymd_opt(2026, 10, 30).expect("a date"), 16).expect("an instant");
        let first = Zone::NewYork.next_at(before, 10.0);
        let second = Zone::NewYork.next_at(first, 10.0);
        assert_eq!(second - first, DAY_MS + HOUR_MS);
    }
}
