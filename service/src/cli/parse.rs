//! Parsers for command-line values: typed `KEY=VALUE` pairs, RFC 3339 times,
//! export time bounds (a time, a date or an age such as `7d`) and finite
//! numbers. Each returns a `String` error that clap shows next to the
//! offending argument.

use chrono::{DateTime, NaiveDate, Utc};
use nudge_models::time::Span;
use nudge_proto::v1::{Value, value::Kind};
use prost_types::Timestamp;
use std::collections::HashMap;
use std::time::Duration;

use super::names::from_datetime;

/// One `KEY=VALUE` argument: the key and its typed value.
pub type KeyValue = (String, Value);

/// Parses `KEY=VALUE` into a key and a typed [`Value`].
///
/// The value's type follows its text: `true` / `false` is a bool, anything that
/// parses as a finite number is a number, everything else is a string. A type
/// tag after the key forces a type: `KEY:s=VALUE` (string), `KEY:n=VALUE`
/// (number), `KEY:b=VALUE` (bool). The value may itself contain `=`.
pub fn parse_key_value(arg: &str) -> Result<KeyValue, String> {
    let Some((lhs, text)) = arg.split_once('=') else {
        return Err(format!(
            "expected KEY=VALUE (e.g. device=mobile, or zip:s=02134 to force a string), got '{arg}'"
        ));
    };
    let (key, tag) = match lhs.rsplit_once(':') {
        Some((key, tag @ ("s" | "n" | "b"))) => (key, Some(tag)),
        _ => (lhs, None),
    };
    if key.trim().is_empty() {
        return Err(format!("the key is empty in '{arg}'; expected KEY=VALUE"));
    }
    let kind = match tag {
        Some("s") => Kind::StringValue(text.to_owned()),
        Some("n") => {
            Kind::NumberValue(finite_number(text).ok_or_else(|| {
                format!("'{text}' is not a finite number (required by '{key}:n')")
            })?)
        }
        Some(_) => Kind::BoolValue(
            boolean(text)
                .ok_or_else(|| format!("'{text}' is not true or false (required by '{key}:b')"))?,
        ),
        None => infer_kind(text),
    };
    Ok((key.to_owned(), Value { kind: Some(kind) }))
}

/// Types an untagged value: bool, then finite number, else string.
fn infer_kind(text: &str) -> Kind {
    if let Some(b) = boolean(text) {
        Kind::BoolValue(b)
    } else if let Some(n) = finite_number(text) {
        Kind::NumberValue(n)
    } else {
        Kind::StringValue(text.to_owned())
    }
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn finite_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Parses a finite number (no NaN or infinity), e.g. for `--reward`.
pub fn parse_finite(arg: &str) -> Result<f64, String> {
    finite_number(arg).ok_or_else(|| format!("expected a finite number, got '{arg}'"))
}

/// The shortest refresh interval of `nudge stats`.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Parses a refresh interval in seconds, fractions allowed (`1`, `0.5`), at
/// least [`MIN_INTERVAL`] and at most an hour.
pub fn parse_interval(arg: &str) -> Result<Duration, String> {
    let seconds = finite_number(arg.trim())
        .ok_or_else(|| format!("expected a number of seconds such as 1 or 0.5, got '{arg}'"))?;
    if !(MIN_INTERVAL.as_secs_f64()..=3_600.0).contains(&seconds) {
        return Err(format!(
            "the interval must be between {} and 3600 seconds, got '{arg}'",
            MIN_INTERVAL.as_secs_f64()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses an RFC 3339 date-time such as `2024-05-01T10:00:00Z` or
/// `2024-05-01T12:00:00+02:00` into a protobuf timestamp.
pub fn parse_timestamp(arg: &str) -> Result<Timestamp, String> {
    DateTime::parse_from_rfc3339(arg.trim())
        .map(|at| from_datetime(at.to_utc()))
        .map_err(|e| {
            format!("expected an RFC 3339 time such as 2024-05-01T10:00:00Z, got '{arg}' ({e})")
        })
}

/// A bound of a time range as written on the command line: an instant, or an
/// age resolved against the current time when the request is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// A fixed instant (`2026-11-01T00:00:00Z`, or `2026-11-01` for midnight UTC).
    At(Timestamp),
    /// This long before now (`7d`, `12h`).
    Ago(Span),
}

impl TimeBound {
    /// The instant this bound stands for, with ages counted back from `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> Timestamp {
        match self {
            Self::At(at) => at,
            Self::Ago(span) => {
                let millis = now.timestamp_millis().saturating_sub(span.millis());
                from_datetime(DateTime::from_timestamp_millis(millis).unwrap_or(now))
            }
        }
    }
}

/// Parses a time-range bound: an RFC 3339 time (`2026-11-01T00:00:00Z`), a
/// date (`2026-11-01`, midnight UTC) or an age (`7d`, `12h`, `30m`: that long
/// before now; units `s`, `m`, `h`, `d`, `w`).
pub fn parse_time_bound(arg: &str) -> Result<TimeBound, String> {
    let text = arg.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(TimeBound::At(from_datetime(at.to_utc())));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(TimeBound::At(from_datetime(
            date.and_time(chrono::NaiveTime::MIN).and_utc(),
        )));
    }
    if text.starts_with(|character: char| character.is_ascii_digit()) && !text.contains(['-', ':'])
    {
        return Span::parse(text).map(TimeBound::Ago);
    }
    Err(format!(
        "expected an RFC 3339 time (2026-11-01T00:00:00Z), a date (2026-11-01) or an age such as 7d or 12h, got '{arg}'"
    ))
}

/// Collects parsed pairs into a map, refusing a key given twice. `flag` names
/// the argument in the error, e.g. `--context`.
pub fn into_map(pairs: &[KeyValue], flag: &str) -> anyhow::Result<HashMap<String, Value>> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        if map.insert(key.clone(), value.clone()).is_some() {
            anyhow::bail!("{flag}: key '{key}' is given more than once");
        }
    }
    Ok(map)
}

/// `KEY=VALUE` of `--set`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(arg: &str) -> Kind {
        let (_, value) = parse_key_value(arg).expect("valid pair");
        value.kind.expect("kind is set")
    }

    #[test]
    fn values_are_typed_by_their_text() {
        assert_eq!(kind("premium=true"), Kind::BoolValue(true));
        assert_eq!(kind("premium=false"), Kind::BoolValue(false));
        assert_eq!(kind("visits=3"), Kind::NumberValue(3.0));
        assert_eq!(kind("ratio=-0.25"), Kind::NumberValue(-0.25));
        assert_eq!(kind("big=1e3"), Kind::NumberValue(1000.0));
        assert_eq!(kind("device=mobile"), Kind::StringValue("mobile".into()));
        assert_eq!(kind("flag=True"), Kind::StringValue("True".into()));
        assert_eq!(kind("x=NaN"), Kind::StringValue("NaN".into()));
        assert_eq!(kind("x=inf"), Kind::StringValue("inf".into()));
        assert_eq!(kind("empty="), Kind::StringValue(String::new()));
        assert_eq!(
            kind("url=https://x.io/?a=b"),
            Kind::StringValue("https://x.io/?a=b".into())
        );
    }

    #[test]
    fn type_tags_force_a_type() {
        assert_eq!(kind("zip:s=02134"), Kind::StringValue("02134".into()));
        assert_eq!(kind("on:s=true"), Kind::StringValue("true".into()));
        assert_eq!(kind("n:n=7"), Kind::NumberValue(7.0));
        assert_eq!(kind("b:b=false"), Kind::BoolValue(false));
        let (key, _) = parse_key_value("zip:s=02134").expect("valid pair");
        assert_eq!(key, "zip");
        // A colon that is not a known tag stays part of the key.
        let (key, value) = parse_key_value("utm:source=mail").expect("valid pair");
        assert_eq!(key, "utm:source");
        assert_eq!(value.kind, Some(Kind::StringValue("mail".into())));
    }

    #[test]
    fn bad_pairs_are_explained() {
        let err = parse_key_value("device").expect_err("no '='");
        assert!(err.contains("expected KEY=VALUE"), "{err}");
        let err = parse_key_value("=mobile").expect_err("empty key");
        assert!(err.contains("key is empty"), "{err}");
        let err = parse_key_value("n:n=abc").expect_err("not a number");
        assert!(err.contains("not a finite number"), "{err}");
        let err = parse_key_value("b:b=yes").expect_err("not a bool");
        assert!(err.contains("not true or false"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let pairs = vec![
            parse_key_value("a=1").expect("valid"),
            parse_key_value("a=2").expect("valid"),
        ];
        let err = into_map(&pairs, "--context").expect_err("duplicate");
        assert!(err.to_string().contains("--context: key 'a'"), "{err}");
        let map = into_map(&pairs[..1], "--context").expect("unique");
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn timestamps_and_numbers() {
        let ts = parse_timestamp("2024-05-01T12:00:00.5+02:00").expect("valid time");
        assert_eq!(ts.seconds, 1_714_557_600);
        assert_eq!(ts.nanos, 500_000_000);
        assert!(parse_timestamp("yesterday").is_err());
        assert_eq!(parse_finite("12.5"), Ok(12.5));
        assert!(parse_finite("NaN").is_err());
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "0.01", "-1", "inf", "NaN", "soon", "7200"] {
            let err = parse_interval(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn time_bounds_accept_times_dates_and_ages() {
        let midnight = Timestamp {
            seconds: 1_793_491_200,
            nanos: 0,
        };
        assert_eq!(
            parse_time_bound("2026-11-01T00:00:00Z"),
            Ok(TimeBound::At(midnight))
        );
        assert_eq!(
            parse_time_bound("2026-11-01T01:00:00+01:00"),
            Ok(TimeBound::At(midnight))
        );
        assert_eq!(parse_time_bound("2026-11-01"), Ok(TimeBound::At(midnight)));
        assert_eq!(parse_time_bound(" 7d "), Ok(TimeBound::Ago(Span::days(7))));
        let now = DateTime::<Utc>::from_timestamp(1_793_491_200 + 7 * 86_400, 0)
            .expect("valid test time");
        assert_eq!(
            parse_time_bound("7d").expect("an age").resolve(now),
            midnight
        );
        assert_eq!(TimeBound::At(midnight).resolve(now), midnight);
        let err = parse_time_bound("7x").expect_err("unknown unit");
        assert!(err.contains("unknown unit"), "{err}");
        for bad in ["yesterday", "2026-13-01", "2026-11-01 10:00", ""] {
            let err = parse_time_bound(bad).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{err}");
        }
    }
}
