//! The one place where wire types meet domain types: validation of every
//! request (limits, required fields, ranges) into domain inputs, and domain
//! results into responses. Errors name the field and the offending value.

//!
//! - this file: ids, strings, typed values and timestamps, the checks every
//!   conversion shares;
//! - `requests.rs`: each request into its domain input;
//! - `responses.rs`: domain results into responses;
//! - `log.rs`: the decision log (export ranges, logged decisions both ways);
//! - `cluster.rs`: cluster mode's topology.

mod cluster;
mod journeys;
mod log;
mod requests;
mod responses;

pub use cluster::topology;
pub use journeys::{acknowledged, customer_journeys, dispatch, journey_report};
pub use log::{
    export_range, logged_decision, logged_decision_from_proto, logged_event,
    logged_event_from_proto,
};
pub use requests::{
    consent, decide_input, event, outcome, outcome_to_proto, report_outcome, set_consent, suppress,
    unsuppress,
};
pub use responses::{
    catalog_problems, catalog_summary, consent_response, decide_response, filter_reason_to_proto,
    loaded_model, models_listing, profile, serving_variants, stats, suppression_reason,
    track_stream_summary,
};

use crate::config::Limits;
use crate::error::ServiceError;
use nudge_models::time::{DAY_MS, Timestamp};
use nudge_models::value::AttrValue;
use nudge_proto::v1 as proto;
use std::collections::{BTreeMap, HashMap};

/// Checks a required id: non-empty, at most `max_id_bytes`.
pub fn id(field: &str, value: &str, limits: &Limits) -> Result<(), ServiceError> {
    if value.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if value.len() > limits.max_id_bytes {
        return Err(ServiceError::invalid(
            field,
            format!(
                "is {} bytes, more than the limit of {}",
                value.len(),
                limits.max_id_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks an optional string against `max_string_bytes`.
pub(crate) fn text(field: &str, value: &str, limits: &Limits) -> Result<(), ServiceError> {
    if value.len() > limits.max_string_bytes {
        return Err(ServiceError::invalid(
            field,
            format!(
                "is {} bytes, more than the limit of {}",
                value.len(),
                limits.max_string_bytes
            ),
        ));
    }
    Ok(())
}

/// A typed value.
pub fn value(field: &str, value: proto::Value, limits: &Limits) -> Result<AttrValue, ServiceError> {
    use proto::value::Kind;
    match value.kind {
        None => Err(ServiceError::invalid(
            field,
            "has no value (set string_value, number_value or bool_value)",
        )),
        Some(Kind::StringValue(string)) => {
            text(field, &string, limits)?;
            Ok(AttrValue::Str(string))
        }
        Some(Kind::NumberValue(number)) if number.is_finite() => Ok(AttrValue::Num(number)),
        Some(Kind::NumberValue(number)) => Err(ServiceError::invalid(
            field,
            format!("{number} is not a finite number"),
        )),
        Some(Kind::BoolValue(flag)) => Ok(AttrValue::Bool(flag)),
    }
}

/// The wire form of a typed value.
pub fn value_to_proto(value: &AttrValue) -> proto::Value {
    let kind = match value {
        AttrValue::Str(text) => proto::value::Kind::StringValue(text.clone()),
        AttrValue::Num(number) => proto::value::Kind::NumberValue(*number),
        AttrValue::Bool(flag) => proto::value::Kind::BoolValue(*flag),
    };
    proto::Value { kind: Some(kind) }
}

/// A map of typed values with at most `max_entries` entries.
pub(crate) fn values(
    field: &str,
    map: HashMap<String, proto::Value>,
    max_entries: usize,
    limits: &Limits,
) -> Result<BTreeMap<String, AttrValue>, ServiceError> {
    if map.len() > max_entries {
        return Err(ServiceError::invalid(
            field,
            format!(
                "has {} entries, more than the limit of {max_entries}",
                map.len()
            ),
        ));
    }
    map.into_iter()
        .map(|(key, entry)| {
            id(&format!("{field} key"), &key, limits)?;
            let converted = value(&format!("{field}['{key}']"), entry, limits)?;
            Ok((key, converted))
        })
        .collect()
}

/// A timestamp within the accepted range around `now`; `None` if unset.
pub fn timestamp(
    field: &str,
    value: Option<prost_types::Timestamp>,
    now: Timestamp,
    limits: &Limits,
) -> Result<Option<Timestamp>, ServiceError> {
    let Some(value) = value else { return Ok(None) };
    let instant = any_timestamp(field, value)?;
    let millis = instant.millis();
    let skew = i64::try_from(limits.max_future_skew_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000);
    let past = i64::try_from(limits.max_past_days)
        .unwrap_or(i64::MAX)
        .saturating_mul(DAY_MS);
    if millis > now.millis().saturating_add(skew) {
        return Err(ServiceError::invalid(
            field,
            format!(
                "{instant} is more than {}s in the future",
                limits.max_future_skew_secs
            ),
        ));
    }
    if millis < now.millis().saturating_sub(past) {
        return Err(ServiceError::invalid(
            field,
            format!(
                "{instant} is more than {} days in the past",
                limits.max_past_days
            ),
        ));
    }
    Ok(Some(instant))
}

/// A well-formed timestamp, at millisecond precision, whatever its distance
/// from now.
pub(crate) fn any_timestamp(
    field: &str,
    value: prost_types::Timestamp,
) -> Result<Timestamp, ServiceError> {
    if !(0..1_000_000_000).contains(&value.nanos) {
        return Err(ServiceError::invalid(
            field,
            format!("nanos {} is out of range", value.nanos),
        ));
    }
    value
        .seconds
        .checked_mul(1_000)
        .and_then(|millis| millis.checked_add(i64::from(value.nanos / 1_000_000)))
        .map(Timestamp::from_millis)
        .ok_or_else(|| {
            ServiceError::invalid(field, format!("{} seconds is out of range", value.seconds))
        })
}

/// The wire form of an instant.
pub fn to_proto_timestamp(instant: Timestamp) -> prost_types::Timestamp {
    let millis = instant.millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1_000),
        nanos: i32::try_from(millis.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}
