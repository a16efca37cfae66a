//! Names and formats shared by the text and JSON output: proto enum codes as
//! lowercase names (`cap_channel`, `opted_out`), timestamps as RFC 3339, typed
//! values as text or JSON, and a few number formats.

use chrono::{DateTime, SecondsFormat, Utc};
use nudge_proto::v1::{
    ConsentState, FallbackReason, FilterReason, Outcome, SuppressionReason, Value, value::Kind,
};
use prost_types::Timestamp;

/// Lowercases a proto enum name and strips its type prefix:
/// `FILTER_REASON_CAP_CHANNEL` → `cap_channel`.
fn short_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

/// The name of a code this client does not know (a newer server).
fn unknown_name(code: i32) -> String {
    format!("unknown_{code}")
}

/// A [`FilterReason`] code as its lowercase name, e.g. `cap_channel`.
pub fn filter_reason_name(code: i32) -> String {
    FilterReason::try_from(code).map_or_else(
        |_| unknown_name(code),
        |r| short_name(r.as_str_name(), "FILTER_REASON_"),
    )
}

/// A [`FallbackReason`] code as its lowercase name, e.g. `deadline`.
pub fn fallback_reason_name(code: i32) -> String {
    FallbackReason::try_from(code).map_or_else(
        |_| unknown_name(code),
        |r| short_name(r.as_str_name(), "FALLBACK_REASON_"),
    )
}

/// An [`Outcome`] code as its lowercase name, e.g. `click`.
pub fn outcome_name(code: i32) -> String {
    Outcome::try_from(code).map_or_else(
        |_| unknown_name(code),
        |o| short_name(o.as_str_name(), "OUTCOME_"),
    )
}

/// A [`ConsentState`] code as its lowercase name: `opted_in`, `opted_out`, or
/// `unset` when no choice is recorded.
pub fn consent_state_name(code: i32) -> String {
    match ConsentState::try_from(code) {
        Ok(ConsentState::Unspecified) => "unset".to_owned(),
        Ok(state) => short_name(state.as_str_name(), "CONSENT_STATE_"),
        Err(_) => unknown_name(code),
    }
}

/// A [`SuppressionReason`] code as its lowercase name, e.g. `bounce`.
pub fn suppression_reason_name(code: i32) -> String {
    SuppressionReason::try_from(code).map_or_else(
        |_| unknown_name(code),
        |r| short_name(r.as_str_name(), "SUPPRESSION_REASON_"),
    )
}

/// A protobuf timestamp as a UTC date-time, `None` if it is out of range.
pub fn to_datetime(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::<Utc>::from_timestamp(ts.seconds, nanos)
}

/// A UTC date-time as a protobuf timestamp.
pub fn from_datetime(at: DateTime<Utc>) -> Timestamp {
    // Leap seconds are represented by chrono with nanos >= 1e9; protobuf forbids that.
    let nanos = at.timestamp_subsec_nanos().min(999_999_999);
    Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(nanos).unwrap_or(999_999_999),
    }
}

/// A timestamp as RFC 3339 with full precision (for JSON), e.g.
/// `2024-05-01T10:00:00.250Z`. Out-of-range timestamps are shown raw.
pub fn rfc3339(ts: &Timestamp) -> String {
    to_datetime(ts).map_or_else(
        || format!("invalid timestamp ({}s {}ns)", ts.seconds, ts.nanos),
        |at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

/// An optional timestamp as a JSON RFC 3339 string, or `null` if unset.
pub fn timestamp_json(ts: Option<&Timestamp>) -> serde_json::Value {
    ts.map_or(serde_json::Value::Null, |ts| rfc3339(ts).into())
}

/// A timestamp for a person: RFC 3339 to the second, plus its age relative to
/// `now`, e.g. `2024-05-01T10:00:00Z (3h ago)`. Unset timestamps are `-`.
pub fn timestamp_text(ts: Option<&Timestamp>, now: DateTime<Utc>) -> String {
    let Some(ts) = ts else {
        return "-".to_owned();
    };
    match to_datetime(ts) {
        Some(at) => format!(
            "{} ({})",
            at.to_rfc3339_opts(SecondsFormat::Secs, true),
            age(at, now)
        ),
        None => rfc3339(ts),
    }
}

/// How long ago `at` was, coarsely: `just now`, `42s ago`, `5m ago`, `3h ago`,
/// `12d ago`; future instants read `in 5m`.
pub fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    if seconds.abs() < 1 {
        return "just now".to_owned();
    }
    let span = duration_text(seconds.unsigned_abs(), 1);
    if seconds > 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A duration in seconds using the largest units first, with at most `parts`
/// units: `duration_text(11_530, 2)` is `3h 12m`.
pub fn duration_text(seconds: u64, parts: usize) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = UNITS.iter().position(|(size, _)| seconds >= *size) else {
        return "0s".to_owned();
    };
    let mut rest = seconds;
    let mut out: Vec<String> = Vec::new();
    for (size, unit) in UNITS.iter().skip(first).take(parts.max(1)) {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push(format!("{n}{unit}"));
        }
    }
    out.join(" ")
}

/// A typed value as JSON: string, number or boolean; `null` if unset.
pub fn value_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::NumberValue(n)) => (*n).into(),
        Some(Kind::BoolValue(b)) => (*b).into(),
        None => serde_json::Value::Null,
    }
}

/// A typed value for a person: strings quoted, numbers and booleans bare,
/// `-` if unset.
pub fn value_text(value: &Value) -> String {
    match &value.kind {
        Some(Kind::StringValue(s)) => format!("{s:?}"),
        Some(Kind::NumberValue(n)) => n.to_string(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        None => "-".to_owned(),
    }
}

/// A number for a table: integers without decimals, others with at most
/// four decimals and no trailing zeros (`0.3333`, `2.5`, `12`).
pub fn number_text(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let fixed = format!("{x:.4}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// An integer with thousands separators: `1234567` → `1,234,567`.
pub fn count_text(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_are_lowercase_without_prefix() {
        assert_eq!(
            filter_reason_name(FilterReason::CapChannel as i32),
            "cap_channel"
        );
        assert_eq!(
            filter_reason_name(FilterReason::RankedBelowLimit as i32),
            "ranked_below_limit"
        );
        assert_eq!(filter_reason_name(999), "unknown_999");
        assert_eq!(
            fallback_reason_name(FallbackReason::ModelMissing as i32),
            "model_missing"
        );
        assert_eq!(outcome_name(Outcome::Conversion as i32), "conversion");
        assert_eq!(
            consent_state_name(ConsentState::OptedOut as i32),
            "opted_out"
        );
        assert_eq!(
            consent_state_name(ConsentState::Unspecified as i32),
            "unset"
        );
        assert_eq!(
            suppression_reason_name(SuppressionReason::Complaint as i32),
            "complaint"
        );
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let ts = Timestamp {
            seconds: 1_714_557_600,
            nanos: 250_000_000,
        };
        assert_eq!(rfc3339(&ts), "2024-05-01T10:00:00.250Z");
        let back = to_datetime(&ts).map(from_datetime);
        assert_eq!(back, Some(ts));
        assert_eq!(timestamp_json(None), serde_json::Value::Null);
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(rfc3339(&bad).starts_with("invalid timestamp"));
    }

    #[test]
    fn timestamp_text_shows_age() {
        let ts = Timestamp {
            seconds: 1_714_557_600,
            nanos: 0,
        };
        let now = DateTime::<Utc>::from_timestamp(1_714_557_600 + 3 * 3600 + 5, 0)
            .expect("valid test time");
        assert_eq!(
            timestamp_text(Some(&ts), now),
            "2024-05-01T10:00:00Z (3h ago)"
        );
        assert_eq!(timestamp_text(None, now), "-");
        let earlier =
            DateTime::<Utc>::from_timestamp(1_714_557_600 - 300, 0).expect("valid test time");
        assert_eq!(age(to_datetime(&ts).expect("valid"), earlier), "in 5m");
    }

    #[test]
    fn durations_use_largest_units() {
        assert_eq!(duration_text(0, 2), "0s");
        assert_eq!(duration_text(42, 2), "42s");
        assert_eq!(duration_text(11_530, 2), "3h 12m");
        assert_eq!(duration_text(3_600, 2), "1h");
        assert_eq!(duration_text(3_605, 2), "1h");
        assert_eq!(duration_text(3_605, 3), "1h 5s");
        assert_eq!(duration_text(90_061, 1), "1d");
    }

    #[test]
    fn values_render_by_kind() {
        let s = Value {
            kind: Some(Kind::StringValue("pro".into())),
        };
        let n = Value {
            kind: Some(Kind::NumberValue(2.5)),
        };
        let b = Value {
            kind: Some(Kind::BoolValue(true)),
        };
        assert_eq!(value_text(&s), "\"pro\"");
        assert_eq!(value_text(&n), "2.5");
        assert_eq!(value_text(&b), "true");
        assert_eq!(value_json(&s), serde_json::json!("pro"));
        assert_eq!(value_json(&n), serde_json::json!(2.5));
        assert_eq!(value_json(&Value { kind: None }), serde_json::Value::Null);
    }

    #[test]
    fn numbers_and_counts_are_compact() {
        assert_eq!(number_text(12.0), "12");
        assert_eq!(number_text(1.0 / 3.0), "0.3333");
        assert_eq!(number_text(2.5), "2.5");
        assert_eq!(number_text(-0.00001), "0");
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(999), "999");
        assert_eq!(count_text(1_234_567), "1,234,567");
    }
}
