//! Each request, validated into its domain input.

use super::*;
use crate::config::Limits;
use crate::engine::{ConsentInput, DecideInput, OutcomeInput, SuppressionInput};
use crate::error::ServiceError;
use nudge_models::customer::ConsentState;
use nudge_models::ledger::OutcomeKind;
use nudge_models::profile::{Event, IDENTIFY_EVENT, TIMEZONE_ATTRIBUTE, is_valid_timezone};
use nudge_models::time::Timestamp;
use nudge_proto::v1 as proto;

/// Validates a Decide request.
pub fn decide_input(
    request: proto::DecideRequest,
    limits: &Limits,
) -> Result<DecideInput, ServiceError> {
    id("customer_id", &request.customer_id, limits)?;
    id("placement", &request.placement, limits)?;
    if request.candidate_action_ids.len() > limits.max_candidates {
        return Err(ServiceError::invalid(
            "candidate_action_ids",
            format!(
                "has {} ids, more than the limit of {}",
                request.candidate_action_ids.len(),
                limits.max_candidates
            ),
        ));
    }
    for candidate in &request.candidate_action_ids {
        id("candidate_action_ids", candidate, limits)?;
    }
    if request.limit > limits.max_limit {
        return Err(ServiceError::invalid(
            "limit",
            format!(
                "{} is more than the limit of {}",
                request.limit, limits.max_limit
            ),
        ));
    }
    if request.request_id.len() > limits.max_id_bytes {
        return Err(ServiceError::invalid(
            "request_id",
            format!("is longer than {} bytes", limits.max_id_bytes),
        ));
    }
    let context = values(
        "context",
        request.context,
        limits.max_context_entries,
        limits,
    )?;
    Ok(DecideInput {
        customer_id: request.customer_id,
        placement: request.placement,
        context,
        candidates: request.candidate_action_ids,
        limit: request.limit,
        dry_run: request.dry_run,
        explain: request.explain,
        request_id: request.request_id,
    })
}

/// Validates an event; returns its customer id and the domain event. An
/// unset timestamp means `now`.
pub fn event(
    event: proto::Event,
    now: Timestamp,
    limits: &Limits,
) -> Result<(String, Event), ServiceError> {
    id("customer_id", &event.customer_id, limits)?;
    id("event_id", &event.event_id, limits)?;
    id("name", &event.name, limits)?;
    let timestamp = timestamp("timestamp", event.timestamp, now, limits)?.unwrap_or(now);
    let properties = values(
        "properties",
        event.properties,
        limits.max_event_properties,
        limits,
    )?;
    if event.name == IDENTIFY_EVENT
        && let Some(zone) = properties.get(TIMEZONE_ATTRIBUTE)
        && zone.as_str().is_none_or(|name| !is_valid_timezone(name))
    {
        return Err(ServiceError::invalid(
            "properties['timezone']",
            format!("'{zone}' is not an IANA timezone like Europe/Paris"),
        ));
    }
    Ok((
        event.customer_id,
        Event {
            event_id: event.event_id,
            name: event.name,
            timestamp,
            properties,
        },
    ))
}

/// Validates a ReportOutcome request.
pub fn report_outcome(
    request: proto::ReportOutcomeRequest,
    now: Timestamp,
    limits: &Limits,
) -> Result<OutcomeInput, ServiceError> {
    id("customer_id", &request.customer_id, limits)?;
    id("decision_id", &request.decision_id, limits)?;
    id("action_id", &request.action_id, limits)?;
    let outcome = outcome(request.outcome)?;
    if let Some(reward) = request.reward.filter(|reward| !reward.is_finite()) {
        return Err(ServiceError::invalid(
            "reward",
            format!("{reward} is not a finite number"),
        ));
    }
    let at = timestamp("timestamp", request.timestamp, now, limits)?;
    let dispatch_id = if request.dispatch_id.is_empty() {
        None
    } else {
        id("dispatch_id", &request.dispatch_id, limits)?;
        Some(request.dispatch_id)
    };
    Ok(OutcomeInput {
        customer_id: request.customer_id,
        decision_id: request.decision_id,
        action_id: request.action_id,
        outcome,
        reward: request.reward,
        at,
        dispatch_id,
    })
}

/// Validates a SetConsent request.
pub fn set_consent(
    request: proto::SetConsentRequest,
    limits: &Limits,
) -> Result<ConsentInput, ServiceError> {
    id("customer_id", &request.customer_id, limits)?;
    id("channel", &request.channel, limits)?;
    let state = consent(request.state)?;
    Ok(ConsentInput {
        customer_id: request.customer_id,
        channel: request.channel,
        state,
    })
}

/// An optional channel: empty means every channel.
pub(crate) fn optional_channel(
    channel: String,
    limits: &Limits,
) -> Result<Option<String>, ServiceError> {
    if channel.is_empty() {
        return Ok(None);
    }
    id("channel", &channel, limits)?;
    Ok(Some(channel))
}

/// Validates a Suppress request.
pub fn suppress(
    request: proto::SuppressRequest,
    limits: &Limits,
) -> Result<SuppressionInput, ServiceError> {
    id("customer_id", &request.customer_id, limits)?;
    text("note", &request.note, limits)?;
    let reason = suppression_reason(request.reason)?.ok_or_else(|| {
        ServiceError::invalid(
            "reason",
            "a suppression needs a reason (bounce, complaint, legal or manual)",
        )
    })?;
    Ok(SuppressionInput {
        channel: optional_channel(request.channel, limits)?,
        reason: Some(reason),
        customer_id: request.customer_id,
        note: request.note,
        lift: false,
    })
}

/// Validates an Unsuppress request.
pub fn unsuppress(
    request: proto::UnsuppressRequest,
    limits: &Limits,
) -> Result<SuppressionInput, ServiceError> {
    id("customer_id", &request.customer_id, limits)?;
    Ok(SuppressionInput {
        channel: optional_channel(request.channel, limits)?,
        reason: suppression_reason(request.reason)?,
        customer_id: request.customer_id,
        note: String::new(),
        lift: true,
    })
}

/// The wire form of an outcome kind.
pub fn outcome_to_proto(kind: OutcomeKind) -> proto::Outcome {
    match kind {
        OutcomeKind::Impression => proto::Outcome::Impression,
        OutcomeKind::Click => proto::Outcome::Click,
        OutcomeKind::Conversion => proto::Outcome::Conversion,
        OutcomeKind::Dismiss => proto::Outcome::Dismiss,
        OutcomeKind::Delivered => proto::Outcome::Delivered,
        OutcomeKind::Failed => proto::Outcome::Failed,
    }
}

/// The domain outcome of a wire outcome.
pub fn outcome(value: i32) -> Result<OutcomeKind, ServiceError> {
    match proto::Outcome::try_from(value) {
        Ok(proto::Outcome::Impression) => Ok(OutcomeKind::Impression),
        Ok(proto::Outcome::Click) => Ok(OutcomeKind::Click),
        Ok(proto::Outcome::Conversion) => Ok(OutcomeKind::Conversion),
        Ok(proto::Outcome::Dismiss) => Ok(OutcomeKind::Dismiss),
        Ok(proto::Outcome::Delivered) => Ok(OutcomeKind::Delivered),
        Ok(proto::Outcome::Failed) => Ok(OutcomeKind::Failed),
        Ok(proto::Outcome::Unspecified) | Err(_) => Err(ServiceError::invalid(
            "outcome",
            format!(
                "{value} is not an outcome (impression, click, conversion, dismiss, delivered, failed)"
            ),
        )),
    }
}

/// The domain consent of a wire consent (`None`: unset).
pub fn consent(value: i32) -> Result<Option<ConsentState>, ServiceError> {
    match proto::ConsentState::try_from(value) {
        Ok(proto::ConsentState::OptedIn) => Ok(Some(ConsentState::OptedIn)),
        Ok(proto::ConsentState::OptedOut) => Ok(Some(ConsentState::OptedOut)),
        Ok(proto::ConsentState::Unspecified) => Ok(None),
        Err(_) => Err(ServiceError::invalid(
            "state",
            format!("{value} is not a consent state"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_kind_goes_to_the_wire_and_back() {
        for kind in OutcomeKind::ALL {
            let wire = outcome_to_proto(kind) as i32;
            assert_eq!(outcome(wire).ok(), Some(kind), "{}", kind.name());
        }
    }
}
