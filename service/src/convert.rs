//! The one place where wire types meet domain types: validation of every
//! request (limits, required fields, ranges) into domain inputs, and domain
//! results into responses. Errors name the field and the offending value.

use crate::config::Limits;
use crate::engine::{
    ConsentInput, DecideInput, DecideReply, IngestSummary, OutcomeInput, StatsSnapshot,
    SuppressionInput,
};
use crate::error::ServiceError;
use crate::store::{LoggedDecision, TimeRange};
use nudge_models::catalog::{Catalog, CatalogProblems, CatalogSummary};
use nudge_models::customer::{ConsentState, CustomerState, SuppressionReason};
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::{FallbackReason, FilterReason};
use nudge_models::profile::{Event, IDENTIFY_EVENT, TIMEZONE_ATTRIBUTE, Window, is_valid_timezone};
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
fn text(field: &str, value: &str, limits: &Limits) -> Result<(), ServiceError> {
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

/// A map of typed values with at most `max_entries` entries.
fn values(
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
fn any_timestamp(field: &str, value: prost_types::Timestamp) -> Result<Timestamp, ServiceError> {
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
    Ok(OutcomeInput {
        customer_id: request.customer_id,
        decision_id: request.decision_id,
        action_id: request.action_id,
        outcome,
        reward: request.reward,
        at,
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
fn optional_channel(channel: String, limits: &Limits) -> Result<Option<String>, ServiceError> {
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

fn consent_to_proto(state: Option<ConsentState>) -> proto::ConsentState {
    match state {
        Some(ConsentState::OptedIn) => proto::ConsentState::OptedIn,
        Some(ConsentState::OptedOut) => proto::ConsentState::OptedOut,
        None => proto::ConsentState::Unspecified,
    }
}

/// The wire form of a previous consent state.
pub fn consent_response(previous: Option<ConsentState>) -> proto::SetConsentResponse {
    proto::SetConsentResponse {
        previous: consent_to_proto(previous).into(),
    }
}

/// The domain suppression reason (`None`: unspecified).
pub fn suppression_reason(value: i32) -> Result<Option<SuppressionReason>, ServiceError> {
    match proto::SuppressionReason::try_from(value) {
        Ok(proto::SuppressionReason::Bounce) => Ok(Some(SuppressionReason::Bounce)),
        Ok(proto::SuppressionReason::Complaint) => Ok(Some(SuppressionReason::Complaint)),
        Ok(proto::SuppressionReason::Legal) => Ok(Some(SuppressionReason::Legal)),
        Ok(proto::SuppressionReason::Manual) => Ok(Some(SuppressionReason::Manual)),
        Ok(proto::SuppressionReason::Unspecified) => Ok(None),
        Err(_) => Err(ServiceError::invalid(
            "reason",
            format!("{value} is not a suppression reason"),
        )),
    }
}

fn suppression_reason_to_proto(reason: SuppressionReason) -> proto::SuppressionReason {
    match reason {
        SuppressionReason::Bounce => proto::SuppressionReason::Bounce,
        SuppressionReason::Complaint => proto::SuppressionReason::Complaint,
        SuppressionReason::Legal => proto::SuppressionReason::Legal,
        SuppressionReason::Manual => proto::SuppressionReason::Manual,
    }
}

/// The wire form of a filter reason.
pub fn filter_reason_to_proto(reason: FilterReason) -> proto::FilterReason {
    use proto::FilterReason as Wire;
    match reason {
        FilterReason::UnknownAction => Wire::UnknownAction,
        FilterReason::Inactive => Wire::Inactive,
        FilterReason::OutsideValidity => Wire::OutsideValidity,
        FilterReason::ChannelNotAllowed => Wire::ChannelNotAllowed,
        FilterReason::CategoryNotAllowed => Wire::CategoryNotAllowed,
        FilterReason::NoConsent => Wire::NoConsent,
        FilterReason::OptedOut => Wire::OptedOut,
        FilterReason::Suppressed => Wire::Suppressed,
        FilterReason::NotEligible => Wire::NotEligible,
        FilterReason::RuleError => Wire::RuleError,
        FilterReason::CapChannel => Wire::CapChannel,
        FilterReason::CapTotal => Wire::CapTotal,
        FilterReason::CapAction => Wire::CapAction,
        FilterReason::CapCategory => Wire::CapCategory,
        FilterReason::Cooldown => Wire::Cooldown,
        FilterReason::QuietHours => Wire::QuietHours,
        FilterReason::Blackout => Wire::Blackout,
        FilterReason::BudgetExhausted => Wire::BudgetExhausted,
        FilterReason::RankedBelowLimit => Wire::RankedBelowLimit,
        FilterReason::Diversity => Wire::Diversity,
    }
}

fn fallback_reason_to_proto(reason: FallbackReason) -> proto::FallbackReason {
    match reason {
        FallbackReason::ModelMissing => proto::FallbackReason::ModelMissing,
        FallbackReason::Deadline => proto::FallbackReason::Deadline,
        FallbackReason::Overloaded => proto::FallbackReason::Overloaded,
        FallbackReason::ModelError => proto::FallbackReason::ModelError,
    }
}

/// The wire form of a decision. Without `explain`, filtered candidates are
/// summarized as counts only.
pub fn decide_response(
    reply: DecideReply,
    explain: bool,
    request_id: String,
    server_time_us: u64,
) -> proto::DecideResponse {
    let decision = reply.decision;
    let filtered_counts = decision
        .filtered_counts()
        .into_iter()
        .map(|(reason, count)| proto::ReasonCount {
            reason: filter_reason_to_proto(reason).into(),
            count,
        })
        .collect();
    let served = decision
        .served
        .into_iter()
        .map(|served| proto::ServedAction {
            action_id: served.action_id,
            channel: served.channel,
            category: served.category,
            rank: served.rank,
            score: served.score,
            propensity: served.propensity,
            selection_probability: served.selection_probability,
            confidence: served.confidence,
            value: served.value,
            rationale: served
                .rationale
                .into_iter()
                .map(|reason| proto::Contribution {
                    feature: reason.feature,
                    value: reason.value,
                    contribution: reason.contribution,
                    text: reason.text,
                })
                .collect(),
            payload: served.payload.into_iter().collect(),
        })
        .collect();
    let filtered = if explain {
        decision
            .filtered
            .into_iter()
            .map(|filtered| proto::FilteredCandidate {
                action_id: filtered.action_id,
                reason: filter_reason_to_proto(filtered.reason).into(),
                message: filtered.message,
                score: filtered.score.unwrap_or(0.0),
                propensity: filtered.propensity.unwrap_or(0.0),
            })
            .collect()
    } else {
        Vec::new()
    };
    proto::DecideResponse {
        decision_id: reply.decision_id.unwrap_or_default(),
        served,
        filtered,
        filtered_counts,
        model_version: decision.model_version.unwrap_or_default(),
        variant: reply.variant,
        fallback: decision.fallback.is_some(),
        fallback_reason: decision
            .fallback
            .map_or(proto::FallbackReason::Unspecified, fallback_reason_to_proto)
            .into(),
        server_time_us,
        catalog_version: reply.catalog_version,
        request_id,
        dry_run: reply.dry_run,
    }
}

/// The wire form of a customer's state.
pub fn profile(
    customer_id: &str,
    state: &CustomerState,
    catalog: &Catalog,
    now: Timestamp,
) -> proto::Profile {
    let profile = &state.profile;
    let attributes = profile
        .attributes
        .iter()
        .map(|(name, attribute)| {
            let kind = match &attribute.value {
                AttrValue::Str(text) => proto::value::Kind::StringValue(text.clone()),
                AttrValue::Num(number) => proto::value::Kind::NumberValue(*number),
                AttrValue::Bool(flag) => proto::value::Kind::BoolValue(*flag),
            };
            (name.to_owned(), proto::Value { kind: Some(kind) })
        })
        .collect();
    let counters = profile
        .events
        .iter()
        .map(|(name, stats)| proto::EventCounter {
            name: name.to_owned(),
            last_1d: stats.count(Window::Day, now),
            last_7d: stats.count(Window::Week, now),
            last_30d: stats.count(Window::Month, now),
            last_seen: stats.last_seen.map(to_proto_timestamp),
        })
        .collect();
    let engagement = profile
        .engagement
        .iter()
        .map(|(channel, stats)| proto::ChannelEngagement {
            channel: channel.to_owned(),
            sends: stats.sends,
            impressions: stats.impressions,
            clicks: stats.clicks,
            conversions: stats.conversions,
            dismisses: stats.dismisses,
            failures: stats.failures,
        })
        .collect();
    let consent = state
        .consent
        .iter()
        .map(|(channel, record)| proto::ChannelConsent {
            channel: channel.clone(),
            state: consent_to_proto(Some(record.state)).into(),
            updated_at: Some(to_proto_timestamp(record.updated_at)),
        })
        .collect();
    let suppressions = state
        .suppressions
        .iter()
        .map(|suppression| proto::Suppression {
            channel: suppression.channel.clone().unwrap_or_default(),
            reason: suppression_reason_to_proto(suppression.reason).into(),
            since: Some(to_proto_timestamp(suppression.since)),
            note: suppression.note.clone(),
        })
        .collect();
    let contacts = state
        .ledger
        .contacts()
        .rev()
        .map(|contact| proto::Contact {
            decision_id: contact.decision_id.clone(),
            action_id: contact.action_id.clone(),
            channel: contact.channel.clone(),
            category: contact.category.clone(),
            at: Some(to_proto_timestamp(contact.at)),
            released: contact.released,
            dismissed: contact.dismissed_at.is_some(),
        })
        .collect();
    proto::Profile {
        customer_id: customer_id.to_owned(),
        attributes,
        counters,
        engagement,
        consent,
        suppressions,
        contacts,
        first_seen: profile.first_seen.map(to_proto_timestamp),
        last_seen: profile.last_seen.map(to_proto_timestamp),
        derived: profile
            .derived(&catalog.known_events, now)
            .into_iter()
            .collect(),
    }
}

/// The wire form of a catalog summary.
pub fn catalog_summary(summary: CatalogSummary) -> proto::CatalogSummary {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    proto::CatalogSummary {
        version: summary.version,
        actions: count(summary.actions),
        placements: count(summary.placements),
        channels: count(summary.channels),
        caps: count(summary.caps),
    }
}

/// The wire form of catalog problems.
pub fn catalog_problems(problems: CatalogProblems) -> Vec<proto::CatalogProblem> {
    problems
        .0
        .into_iter()
        .map(|problem| proto::CatalogProblem {
            field: problem.field,
            line: problem.line.unwrap_or(0),
            message: problem.message,
        })
        .collect()
}

/// The wire form of the counters.
pub fn stats(snapshot: StatsSnapshot) -> proto::StatsResponse {
    proto::StatsResponse {
        uptime_seconds: snapshot.uptime_seconds,
        live_customers: snapshot.live_customers,
        decisions: snapshot.decisions,
        fallbacks: snapshot.fallbacks,
        events: snapshot.events,
        duplicate_events: snapshot.duplicate_events,
        outcomes: snapshot.outcomes,
        filtered: snapshot
            .filtered
            .into_iter()
            .map(|(reason, count)| proto::ReasonCountTotal { reason, count })
            .collect(),
        served: snapshot
            .served
            .into_iter()
            .map(|(action_id, count)| proto::ActionCount { action_id, count })
            .collect(),
        catalog_version: snapshot.catalog_version,
        model_version: snapshot.model_version,
        activations: snapshot.activations,
        passivations: snapshot.passivations,
        rejected_requests: snapshot.rejected,
        latency: Some(proto::LatencySummary {
            window_seconds: snapshot.latency.window_seconds,
            count: snapshot.latency.count,
            p50_micros: snapshot.latency.p50_micros,
            p90_micros: snapshot.latency.p90_micros,
            p99_micros: snapshot.latency.p99_micros,
            p999_micros: snapshot.latency.p999_micros,
            max_micros: snapshot.latency.max_micros,
        }),
        fallbacks_by_reason: snapshot
            .fallbacks_by_reason
            .into_iter()
            .map(|(reason, count)| proto::ReasonCountTotal { reason, count })
            .collect(),
        variants: snapshot
            .variants
            .into_iter()
            .map(|(variant, decisions)| proto::VariantCount { variant, decisions })
            .collect(),
    }
}

/// Validates an export request: well-formed bounds, `since` before `until`.
pub fn export_range(request: proto::ExportDecisionsRequest) -> Result<TimeRange, ServiceError> {
    let since = request
        .since
        .map(|since| any_timestamp("since", since))
        .transpose()?;
    let until = request
        .until
        .map(|until| any_timestamp("until", until))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(ServiceError::invalid(
            "until",
            format!("{until} is not after since ({since})"),
        ));
    }
    Ok(TimeRange { since, until })
}

/// The wire form of a stream's ingestion summary.
pub fn track_stream_summary(summary: IngestSummary) -> proto::TrackStreamResponse {
    proto::TrackStreamResponse {
        accepted: summary.accepted,
        duplicates: summary.duplicates,
        rejected: summary.rejected,
        rejections: summary
            .rejections
            .into_iter()
            .map(|rejection| proto::EventRejection {
                index: rejection.index,
                event_id: rejection.event_id,
                message: rejection.message,
            })
            .collect(),
    }
}

/// The wire form of a logged decision.
pub fn logged_decision(logged: LoggedDecision) -> proto::LoggedDecision {
    let LoggedDecision {
        record,
        feature_names,
        outcomes,
    } = logged;
    proto::LoggedDecision {
        decision_id: record.decision_id,
        customer_id: record.customer_id,
        decided_at: Some(to_proto_timestamp(record.at)),
        placement: record.placement,
        catalog_version: record.catalog_version,
        model_version: record.model_version.unwrap_or_default(),
        variant: record.variant,
        fallback: record
            .fallback
            .map(|reason| reason.code().to_owned())
            .unwrap_or_default(),
        feature_names,
        served: record
            .served
            .into_iter()
            .map(|served| proto::LoggedServe {
                action_id: served.action_id,
                channel: served.channel,
                category: served.category,
                rank: served.rank,
                score: served.score,
                propensity: served.propensity,
                selection_probability: served.selection_probability,
                features: served.features,
            })
            .collect(),
        outcomes: outcomes
            .into_iter()
            .map(|outcome| proto::LoggedOutcome {
                action_id: outcome.action_id,
                outcome: outcome.outcome.name().to_owned(),
                at: Some(to_proto_timestamp(outcome.at)),
                reward: outcome.reward.unwrap_or(0.0),
                has_reward: outcome.reward.is_some(),
            })
            .collect(),
    }
}
