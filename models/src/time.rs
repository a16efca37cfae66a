//! Time in the domain: instants as milliseconds since the Unix epoch, and the
//! duration syntax of the catalog file (`30m`, `12h`, `7d`, `2w`).
//!
//! The domain never reads a clock: every function that depends on time takes
//! `now` as an argument, so tests drive time explicitly.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `span` (saturating).
    pub fn plus(self, span: Span) -> Self {
        Self(self.0.saturating_add(span.0))
    }

    /// This instant moved back by `span` (saturating).
    pub fn minus(self, span: Span) -> Self {
        Self(self.0.saturating_sub(span.0))
    }

    /// The whole hours since the epoch (the hour bucket this instant falls in).
    pub fn hour_index(self) -> i64 {
        self.0.div_euclid(HOUR_MS)
    }

    /// Fractional days from `earlier` to `self` (negative if `earlier` is later).
    pub fn days_since(self, earlier: Timestamp) -> f64 {
        // Saturating: a finite but extreme instant (e.g. a `signup_at` of -1e300
        // ms) must not overflow.
        self.0.saturating_sub(earlier.0) as f64 / DAY_MS as f64
    }

    /// Parses an RFC 3339 date-time such as `2026-11-23T09:00:00Z`.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        // Instants are mostly stored in UTC to the second, and some (a
        // `signup_at` attribute) are read in every decision: that one shape
        // is read directly, to the same instant chrono would read.
        if let Some(instant) = Self::parse_utc_seconds(text) {
            return Some(instant);
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|instant| Self(instant.timestamp_millis()))
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, a valid date and time of day; `None` for
    /// anything else (a leap second included), which chrono then reads.
    fn parse_utc_seconds(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 20
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes[10] == b'T'
            && bytes[13] == b':'
            && bytes[16] == b':'
            && bytes[19] == b'Z';
        if !shape_ok {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            bytes[range].iter().try_fold(0_u32, |number, byte| {
                byte.is_ascii_digit()
                    .then(|| number * 10 + u32::from(byte - b'0'))
            })
        };
        let year = i32::try_from(number(0..4)?).ok()?;
        let date = chrono::NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)?;
        let time = date.and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)?;
        Some(Self(time.and_utc().timestamp_millis()))
    }

    /// The instant as a UTC chrono date-time, if representable.
    pub fn to_utc(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_millis(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_utc() {
            Some(instant) => match rfc3339_millis(&instant) {
                // Filter messages print instants: the common years directly.
                Some(text) => {
                    formatter.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
                }
                None => write!(
                    formatter,
                    "{}",
                    instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            },
            None => write!(formatter, "{}ms", self.0),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as chrono's RFC 3339 with milliseconds writes
/// it, for years 0 to 9999 (chrono writes others with a sign and more
/// digits) outside leap seconds; `None` otherwise.
fn rfc3339_millis(instant: &chrono::DateTime<chrono::Utc>) -> Option<[u8; 24]> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(instant.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    let nanosecond = instant.nanosecond();
    if nanosecond >= 1_000_000_000 {
        return None;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |end: usize, digits: usize, mut number: u32| {
        for position in (end - digits..end).rev() {
            text[position] = b'0' + (number % 10) as u8;
            number /= 10;
        }
    };
    put(4, 4, year);
    put(7, 2, instant.month());
    put(10, 2, instant.day());
    put(13, 2, instant.hour());
    put(16, 2, instant.minute());
    put(19, 2, instant.second());
    put(23, 3, nanosecond / 1_000_000);
    Some(text)
}

/// A length of time in milliseconds, written in the catalog as `<n><unit>` with
/// unit `s`, `m`, `h`, `d` or `w` (e.g. `90m`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span(pub i64);

impl Span {
    /// A span of `days` days.
    pub const fn days(days: i64) -> Self {
        Self(days * DAY_MS)
    }

    /// A span of `hours` hours.
    pub const fn hours(hours: i64) -> Self {
        Self(hours * HOUR_MS)
    }

    /// The span in milliseconds.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses the catalog's duration syntax. Returns a message naming what is
    /// wrong on failure.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|character: char| !character.is_ascii_digit())
            .ok_or_else(|| format!("'{text}' has no unit (use s, m, h, d or w, e.g. '7d')"))?;
        let (digits, unit) = text.split_at(split);
        let amount: i64 = digits
            .parse()
            .map_err(|_| format!("'{text}' does not start with a whole number"))?;
        let unit_ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => HOUR_MS,
            "d" => DAY_MS,
            "w" => 7 * DAY_MS,
            other => {
                return Err(format!(
                    "'{text}' has unknown unit '{other}' (use s, m, h, d or w)"
                ));
            }
        };
        if amount == 0 {
            return Err(format!("'{text}' must be longer than zero"));
        }
        amount
            .checked_mul(unit_ms)
            .filter(|millis| *millis <= 3_650 * DAY_MS)
            .map(Self)
            .ok_or_else(|| format!("'{text}' is longer than ten years"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0;
        // Days rather than weeks: caps and cooldowns read as written (`7d`).
        let units = [(DAY_MS, "d"), (HOUR_MS, "h"), (60_000, "m"), (1_000, "s")];
        for (unit_ms, suffix) in units {
            if millis != 0 && millis % unit_ms == 0 {
                return write!(formatter, "{}{suffix}", millis / unit_ms);
            }
        }
        write!(formatter, "{millis}ms")
    }
}

/// The first instant at or after `now` at which the local clock in
/// `timezone` shows `minute_of_day`. A minute that a clock change skips
/// that day is taken an hour later.
pub fn next_local_minute(now: Timestamp, timezone: chrono_tz::Tz, minute_of_day: u16) -> Timestamp {
    use chrono::TimeZone as _;
    let Some(utc) = now.to_utc() else {
        return now;
    };
    let local_date = utc.with_timezone(&timezone).date_naive();
    let hour = u32::from(minute_of_day / 60);
    let minute = u32::from(minute_of_day % 60);
    for day in 0..3 {
        let Some(date) = local_date.checked_add_days(chrono::Days::new(day)) else {
            break;
        };
        let Some(naive) = date.and_hms_opt(hour, minute, 0) else {
            break;
        };
        let local = timezone.from_local_datetime(&naive).earliest().or_else(|| {
            timezone
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        });
        if let Some(local) = local {
            let instant = Timestamp(local.timestamp_millis());
            if instant >= now {
                return instant;
            }
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_print_as_chrono_prints_them() {
        let chrono = |millis: i64| {
            chrono::DateTime::from_timestamp_millis(millis)
                .map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        // From before year 0 to after year 9999.
        let (first, span) = (-63_000_000_000_000_i64, 317_000_000_000_000_u64);
        let mut state: u64 = 7;
        let edges = [
            0,
            -1,
            1_795_435_200_000,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
            i64::MAX,
            i64::MIN,
        ];
        for &edge in &edges {
            let expected = chrono(edge).unwrap_or_else(|| format!("{edge}ms"));
            assert_eq!(Timestamp(edge).to_string(), expected);
        }
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let millis = first + ((state >> 11) % span) as i64;
            let expected = chrono(millis).unwrap_or_else(|| format!("{millis}ms"));
            assert_eq!(Timestamp(millis).to_string(), expected, "{millis}");
        }
    }

    #[test]
    fn utc_instants_to_the_second_read_as_chrono_reads_them() {
        for text in [
            "2026-11-23T12:00:00Z",
            "1970-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-02-29T10:00:00Z",
            "2023-02-29T10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-11-23t12:00:00z",
            "2026-11-23T12:00:00+02:00",
            "2026-11-23T12:00:00.250Z",
            "2026-11-23 12:00:00Z",
            "2026-1a-23T12:00:00Z",
            "+026-11-23T12:00:00Z",
            "2026-11-23T12:00:00",
            "",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|instant| Timestamp(instant.timestamp_millis()));
            assert_eq!(Timestamp::parse_rfc3339(text), chrono, "{text}");
        }
    }

    #[test]
    fn spans_parse_every_unit_and_print_back() {
        for (text, millis) in [
            ("30s", 30_000),
            ("90m", 5_400_000),
            ("12h", 12 * HOUR_MS),
            ("7d", 7 * DAY_MS),
            ("14d", 14 * DAY_MS),
        ] {
            let span = Span::parse(text).expect("valid span");
            assert_eq!(span.millis(), millis);
            assert_eq!(Span::parse(&span.to_string()), Ok(span));
        }
        assert_eq!(Span::parse("2w"), Span::parse("14d"));
    }

    #[test]
    fn bad_spans_say_what_is_wrong() {
        assert!(Span::parse("7").expect_err("invalid").contains("no unit"));
        assert!(
            Span::parse("7y")
                .expect_err("invalid")
                .contains("unknown unit 'y'")
        );
        assert!(
            Span::parse("d")
                .expect_err("invalid")
                .contains("whole number")
        );
        assert!(
            Span::parse("0d")
                .expect_err("invalid")
                .contains("longer than zero")
        );
        assert!(
            Span::parse("99999w")
                .expect_err("invalid")
                .contains("ten years")
        );
    }

    #[test]
    fn timestamps_round_trip_rfc3339() {
        let instant = Timestamp::parse_rfc3339("2026-11-23T09:30:00Z").expect("valid");
        assert_eq!(instant.to_string(), "2026-11-23T09:30:00.000Z");
        assert_eq!(instant.hour_index(), instant.millis() / HOUR_MS);
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }
}
