//! Domain results into their wire responses.

use super::*;
use crate::engine::{DecideReply, IngestSummary, StatsSnapshot};
use crate::error::ServiceError;
use nudge_models::catalog::{Catalog, CatalogProblems, CatalogSummary};
use nudge_models::customer::{ConsentState, CustomerState, SuppressionReason};
use nudge_models::pipeline::{FallbackReason, FilterReason};
use nudge_models::profile::Window;
use nudge_models::time::Timestamp;
use nudge_proto::v1 as proto;

pub(crate) fn consent_to_proto(state: Option<ConsentState>) -> proto::ConsentState {
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

pub(crate) fn suppression_reason_to_proto(reason: SuppressionReason) -> proto::SuppressionReason {
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

pub(crate) fn fallback_reason_to_proto(reason: FallbackReason) -> proto::FallbackReason {
    match reason {
        FallbackReason::ModelMissing => proto::FallbackReason::ModelMissing,
        FallbackReason::Deadline => proto::FallbackReason::Deadline,
        FallbackReason::Overloaded => proto::FallbackReason::Overloaded,
        FallbackReason::ModelError => proto::FallbackReason::ModelError,
    }
}

/// A suggested send time on the wire.
fn send_time(suggested: &nudge_models::send_time::SendTime) -> proto::SendTime {
    use nudge_models::send_time::{Basis, Placement};
    proto::SendTime {
        at: Some(to_proto_timestamp(suggested.at)),
        local_hour: suggested.hour.to_string(),
        lift: suggested.lift(),
        basis: match suggested.basis {
            Basis::Personal => "personal",
            Basis::Population => "population",
        }
        .to_owned(),
        placement: match suggested.placement {
            Placement::Best => "best",
            Placement::Moved { .. } => "moved",
            Placement::AfterWindow => "after_window",
        }
        .to_owned(),
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
    let mut send_at = reply.send_at.into_iter();
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
            send_at: send_at
                .next()
                .flatten()
                .map(|suggested| send_time(&suggested)),
        })
        .collect();
    let filtered = if explain {
        decision
            .filtered
            .into_iter()
            .map(|filtered| proto::FilteredCandidate {
                action_id: filtered.action_id.to_string(),
                reason: filter_reason_to_proto(filtered.reason).into(),
                message: filtered.message.to_string(),
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
        .map(|(name, attribute)| (name.to_owned(), value_to_proto(&attribute.value)))
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
        scores: (!profile.scores.is_empty()).then(|| profile_scores(&profile.scores)),
    }
}

/// A customer's score board on the wire.
fn profile_scores(board: &nudge_models::scores::ScoreBoard) -> proto::ProfileScores {
    let nudge_models::log::LoggedScores { values, tiers } =
        nudge_models::log::LoggedScores::of(board);
    proto::ProfileScores {
        values: values.into_iter().collect(),
        tiers: tiers.into_iter().collect(),
        computed_at: board.computed_at.map(to_proto_timestamp),
        stale: board.stale,
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
            .map(|totals| proto::VariantCount {
                variant: totals.variant,
                decisions: totals.decisions,
                impressions: totals.impressions,
                clicks: totals.clicks,
                conversions: totals.conversions,
            })
            .collect(),
    }
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

/// The wire form of the variants serving.
pub fn serving_variants(
    variants: &[nudge_models::experiment::Variant],
) -> Vec<proto::ServingVariant> {
    variants
        .iter()
        .map(|variant| proto::ServingVariant {
            name: variant.name.clone(),
            model_version: variant.model_version.clone(),
            share_percent: variant.share,
        })
        .collect()
}

/// The wire form of a loaded model.
pub fn loaded_model(entry: crate::registry::ModelEntry) -> proto::LoadedModel {
    proto::LoadedModel {
        version: entry.version,
        description: entry.description,
        trained_at: entry.trained_at,
        features: u32::try_from(entry.features).unwrap_or(u32::MAX),
        holdout_auc: entry.holdout_auc,
    }
}

/// The registry on the wire.
pub fn models_listing(listing: crate::registry::Listing) -> proto::ListModelsResponse {
    proto::ListModelsResponse {
        variants: serving_variants(&listing.experiment.variants),
        models: listing.models.into_iter().map(loaded_model).collect(),
        previous: listing.previous,
        shadow: listing.shadow.unwrap_or_default(),
        score_models: listing.score_models.into_iter().collect(),
        guardrail: listing.guardrail.as_ref().map(guardrail_status),
        last_guardrail_rollback: listing.last_guardrail_rollback.map(|rollback| {
            proto::GuardrailRollback {
                at_ms: rollback.at.millis(),
                reason: rollback.reason(),
                reading: Some(guardrail_status(&rollback.status)),
                variant: rollback.status.challenger.variant,
                model_version: rollback.status.challenger.model_version,
                control_model_version: rollback.status.control.model_version,
            }
        }),
    }
}

/// The guardrail's reading on the wire.
fn guardrail_status(status: &crate::registry::GuardrailStatus) -> proto::GuardrailReading {
    let arm =
        |name: &crate::registry::ArmName, arm: nudge_models::guardrail::Arm| proto::GuardrailArm {
            variant: name.variant.clone(),
            model_version: name.model_version.clone(),
            served: arm.served,
            conversions: arm.conversions,
        };
    let reading = &status.reading;
    proto::GuardrailReading {
        since_ms: status.since.millis(),
        arms: vec![
            arm(&status.control, reading.control),
            arm(&status.challenger, reading.challenger),
        ],
        log_likelihood_ratio: reading.log_likelihood_ratio,
        threshold: reading.threshold,
        verdict: reading.verdict.name().to_owned(),
        alpha: status.alpha,
    }
}
