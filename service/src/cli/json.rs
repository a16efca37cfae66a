//! Machine-readable output (`--json`): one JSON object per command, built by
//! hand because the prost types do not implement `Serialize`. Enum values are
//! lowercase names (`cap_channel`, `opted_out`) and timestamps RFC 3339 strings.

use std::path::Path;

use nudge_proto::v1::{
    CatalogSummary, DecideResponse, Event, ForgetRequest, ForgetResponse, Profile,
    ReloadCatalogResponse, ReportOutcomeRequest, ReportOutcomeResponse, SetConsentRequest,
    SetConsentResponse, StatsResponse, SuppressRequest, SuppressResponse, TrackResponse,
    UnsuppressRequest,
};
use serde_json::{Map, Value as Json, json};

use super::export::ExportSummary;

use super::names::{
    consent_state_name, fallback_reason_name, filter_reason_name, outcome_name,
    suppression_reason_name, timestamp_json, value_json,
};

/// `text`, or `null` if it is empty (for fields where empty means "none").
fn string_or_null(text: &str) -> Json {
    if text.is_empty() {
        Json::Null
    } else {
        text.into()
    }
}

/// The whole decision: served actions with rationale and payload, filtered
/// candidates, counts by reason, and the decision's metadata.
pub fn decide(r: &DecideResponse) -> Json {
    let served: Vec<Json> = r
        .served
        .iter()
        .map(|a| {
            let rationale: Vec<Json> = a
                .rationale
                .iter()
                .map(|c| {
                    json!({
                        "feature": c.feature,
                        "value": c.value,
                        "contribution": c.contribution,
                        "text": c.text,
                    })
                })
                .collect();
            let payload: Map<String, Json> = a
                .payload
                .iter()
                .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                .collect();
            json!({
                "rank": a.rank,
                "action_id": a.action_id,
                "channel": a.channel,
                "category": a.category,
                "score": a.score,
                "propensity": a.propensity,
                "selection_probability": a.selection_probability,
                "confidence": a.confidence,
                "value": a.value,
                "rationale": rationale,
                "payload": payload,
                "send_at": a.send_at.as_ref().map(|send_at| json!({
                    "at": timestamp_json(send_at.at.as_ref()),
                    "local_hour": send_at.local_hour,
                    "lift": send_at.lift,
                    "basis": send_at.basis,
                    "placement": send_at.placement,
                })),
            })
        })
        .collect();
    let filtered: Vec<Json> = r
        .filtered
        .iter()
        .map(|f| {
            json!({
                "action_id": f.action_id,
                "reason": filter_reason_name(f.reason),
                "message": f.message,
                "score": f.score,
                "propensity": f.propensity,
            })
        })
        .collect();
    let counts: Vec<Json> = r
        .filtered_counts
        .iter()
        .map(|c| json!({ "reason": filter_reason_name(c.reason), "count": c.count }))
        .collect();
    let fallback_reason = if r.fallback_reason == 0 {
        Json::Null
    } else {
        fallback_reason_name(r.fallback_reason).into()
    };
    json!({
        "decision_id": string_or_null(&r.decision_id),
        "served": served,
        "filtered": filtered,
        "filtered_counts": counts,
        "model_version": r.model_version,
        "variant": r.variant,
        "fallback": r.fallback,
        "fallback_reason": fallback_reason,
        "server_time_us": r.server_time_us,
        "catalog_version": r.catalog_version,
        "request_id": string_or_null(&r.request_id),
        "dry_run": r.dry_run,
    })
}

/// The event as sent (with its generated id and time) and whether it was a
/// duplicate.
pub fn track(event: &Event, r: &TrackResponse) -> Json {
    let properties: Map<String, Json> = event
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect();
    json!({
        "customer_id": event.customer_id,
        "event_id": event.event_id,
        "name": event.name,
        "timestamp": timestamp_json(event.timestamp.as_ref()),
        "properties": properties,
        "duplicate": r.duplicate,
    })
}

/// The outcome reported and whether it was applied.
pub fn outcome(request: &ReportOutcomeRequest, r: &ReportOutcomeResponse) -> Json {
    json!({
        "customer_id": request.customer_id,
        "decision_id": request.decision_id,
        "action_id": request.action_id,
        "outcome": outcome_name(request.outcome),
        "reward": request.reward,
        "applied": r.applied,
        "slot_released": r.slot_released,
    })
}

/// The consent recorded and the state it replaced.
pub fn consent(request: &SetConsentRequest, r: &SetConsentResponse) -> Json {
    json!({
        "customer_id": request.customer_id,
        "channel": request.channel,
        "state": consent_state_name(request.state),
        "previous": consent_state_name(r.previous),
    })
}

/// The suppression asked for and whether it changed anything. `channel` is
/// `null` for every channel.
pub fn suppress(request: &SuppressRequest, r: &SuppressResponse) -> Json {
    json!({
        "customer_id": request.customer_id,
        "channel": string_or_null(&request.channel),
        "reason": suppression_reason_name(request.reason),
        "note": string_or_null(&request.note),
        "changed": r.changed,
    })
}

/// The suppression to lift and whether it changed anything. `channel` is `null`
/// for the all-channel suppression, `reason` `null` for every reason.
pub fn unsuppress(request: &UnsuppressRequest, r: &SuppressResponse) -> Json {
    let reason = if request.reason == 0 {
        Json::Null
    } else {
        suppression_reason_name(request.reason).into()
    };
    json!({
        "customer_id": request.customer_id,
        "channel": string_or_null(&request.channel),
        "reason": reason,
        "changed": r.changed,
    })
}

/// The whole profile.
pub fn profile(p: &Profile) -> Json {
    let attributes: Map<String, Json> = p
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect();
    let derived: Map<String, Json> = p
        .derived
        .iter()
        .map(|(k, v)| (k.clone(), Json::from(*v)))
        .collect();
    let counters: Vec<Json> = p
        .counters
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "last_1d": c.last_1d,
                "last_7d": c.last_7d,
                "last_30d": c.last_30d,
                "last_seen": timestamp_json(c.last_seen.as_ref()),
            })
        })
        .collect();
    let engagement: Vec<Json> = p
        .engagement
        .iter()
        .map(|e| {
            json!({
                "channel": e.channel,
                "sends": e.sends,
                "impressions": e.impressions,
                "clicks": e.clicks,
                "conversions": e.conversions,
                "dismisses": e.dismisses,
                "failures": e.failures,
            })
        })
        .collect();
    let consent: Vec<Json> = p
        .consent
        .iter()
        .map(|c| {
            json!({
                "channel": c.channel,
                "state": consent_state_name(c.state),
                "updated_at": timestamp_json(c.updated_at.as_ref()),
            })
        })
        .collect();
    let suppressions: Vec<Json> = p
        .suppressions
        .iter()
        .map(|s| {
            json!({
                "channel": string_or_null(&s.channel),
                "reason": suppression_reason_name(s.reason),
                "since": timestamp_json(s.since.as_ref()),
                "note": s.note,
            })
        })
        .collect();
    let contacts: Vec<Json> = p
        .contacts
        .iter()
        .map(|c| {
            json!({
                "decision_id": c.decision_id,
                "action_id": c.action_id,
                "channel": c.channel,
                "category": c.category,
                "at": timestamp_json(c.at.as_ref()),
                "released": c.released,
                "dismissed": c.dismissed,
            })
        })
        .collect();
    json!({
        "customer_id": p.customer_id,
        "first_seen": timestamp_json(p.first_seen.as_ref()),
        "last_seen": timestamp_json(p.last_seen.as_ref()),
        "attributes": attributes,
        "derived": derived,
        "scores": p.scores.as_ref().map(|scores| json!({
            "values": scores.values,
            "tiers": scores.tiers,
            "computed_at": timestamp_json(scores.computed_at.as_ref()),
            "stale": scores.stale,
        })),
        "counters": counters,
        "engagement": engagement,
        "consent": consent,
        "suppressions": suppressions,
        "contacts": contacts,
    })
}

/// What `forget` erased.
pub fn forget(request: &ForgetRequest, r: &ForgetResponse) -> Json {
    json!({
        "customer_id": request.customer_id,
        "state_erased": r.state_erased,
        "decisions_erased": r.decisions_erased,
        "outcomes_erased": r.outcomes_erased,
    })
}

/// The file an export wrote, its format, and how much it holds.
pub fn export(summary: &ExportSummary) -> Json {
    if let Some(events) = summary.events {
        return json!({
            "file": summary.path.display().to_string(),
            "format": summary.format.name(),
            "events": events,
        });
    }
    json!({
        "file": summary.path.display().to_string(),
        "format": summary.format.name(),
        "decisions": summary.decisions,
        "rows": summary.rows,
    })
}

fn summary(s: Option<&CatalogSummary>) -> Json {
    s.map_or(Json::Null, |s| {
        json!({
            "version": s.version,
            "actions": s.actions,
            "placements": s.placements,
            "channels": s.channels,
            "caps": s.caps,
        })
    })
}

/// The catalog now running, the version it replaced, and the file sent
/// (`null` if the server re-read its own file).
pub fn reload(source: Option<&Path>, r: &ReloadCatalogResponse) -> Json {
    json!({
        "file": source.map(|p| p.display().to_string()),
        "summary": summary(r.summary.as_ref()),
        "previous_version": r.previous_version,
    })
}

/// Every counter and gauge, and the latency summary (`null` from a server
/// that does not report one); lists keep the server's order.
pub fn stats(r: &StatsResponse) -> Json {
    let reasons = |counts: &[nudge_proto::v1::ReasonCountTotal]| -> Vec<Json> {
        counts
            .iter()
            .map(|f| json!({ "reason": f.reason, "count": f.count }))
            .collect()
    };
    let latency = r.latency.as_ref().map_or(Json::Null, |l| {
        json!({
            "window_seconds": l.window_seconds,
            "count": l.count,
            "p50_micros": l.p50_micros,
            "p90_micros": l.p90_micros,
            "p99_micros": l.p99_micros,
            "p999_micros": l.p999_micros,
            "max_micros": l.max_micros,
        })
    });
    let variants: Vec<Json> = r
        .variants
        .iter()
        .map(|v| {
            json!({
                "variant": v.variant, "decisions": v.decisions,
                "impressions": v.impressions, "clicks": v.clicks, "conversions": v.conversions,
            })
        })
        .collect();
    let served: Vec<Json> = r
        .served
        .iter()
        .map(|a| json!({ "action_id": a.action_id, "count": a.count }))
        .collect();
    json!({
        "uptime_seconds": r.uptime_seconds,
        "catalog_version": r.catalog_version,
        "model_version": r.model_version,
        "live_customers": r.live_customers,
        "activations": r.activations,
        "passivations": r.passivations,
        "decisions": r.decisions,
        "fallbacks": r.fallbacks,
        "fallbacks_by_reason": reasons(&r.fallbacks_by_reason),
        "variants": variants,
        "latency": latency,
        "events": r.events,
        "duplicate_events": r.duplicate_events,
        "outcomes": r.outcomes,
        "rejected_requests": r.rejected_requests,
        "filtered": reasons(&r.filtered),
        "served": served,
    })
}

/// One tally of `nudge simulate`: counts, the observed conversion rate and
/// the true rewards (`null` where nothing was served).
fn simulation_tally(t: &crate::simulate::Tally) -> Json {
    json!({
        "decisions": t.decisions,
        "fallbacks": t.fallbacks,
        "empty": t.empty,
        "served": t.served,
        "impressions": t.impressions,
        "clicks": t.clicks,
        "conversions": t.conversions,
        "dismisses": t.dismisses,
        "observed_conversion_rate": t.observed_conversion_rate(),
        "true_reward": t.true_reward(),
        "true_value": t.true_value_per_served(),
        "first_slot_reward": t.first_slot_reward(),
        "best_eligible_reward": t.best_eligible_reward(),
        "regret": t.regret(),
        "true_priority": t.true_priority(),
        "best_eligible_priority": t.best_priority(),
    })
}

/// A finished `nudge simulate` against `server`: what was simulated, the
/// events sent, failures, and the tallies overall, per placement, per
/// model version and variant, and per action.
pub fn simulate(run: &super::simulate::Run, server: &str) -> Json {
    let s = &run.summary;
    let per_model: Vec<Json> = s
        .models
        .iter()
        .map(|((model, variant), tally)| {
            let mut object = Map::new();
            object.insert("model_version".to_owned(), string_or_null(model));
            object.insert("variant".to_owned(), variant.as_str().into());
            if let Json::Object(fields) = simulation_tally(tally) {
                object.extend(fields);
            }
            Json::Object(object)
        })
        .collect();
    let tallies = |map: &std::collections::BTreeMap<String, crate::simulate::Tally>| {
        map.iter()
            .map(|(key, tally)| (key.clone(), simulation_tally(tally)))
            .collect::<Map<String, Json>>()
    };
    json!({
        "server": server,
        "seed": run.seed,
        "prefix": run.prefix,
        "customers": s.customers,
        "rounds": s.rounds,
        "placements": run.placements,
        "started_at": nudge_models::time::Timestamp::from_millis(run.started_at).to_string(),
        "elapsed_seconds": run.elapsed.as_secs_f64(),
        "visits": s.visits,
        "events": {
            "history": s.events.history,
            "sessions": s.events.sessions,
            "daily": s.events.daily,
            "effects": s.events.effects,
            "duplicates": s.events.duplicates,
        },
        "errors": {
            "events": s.errors.events,
            "decisions": s.errors.decisions,
            "outcomes": s.errors.outcomes,
            "retried": s.errors.retried,
            "first": s.errors.first,
        },
        "overall": simulation_tally(&s.overall),
        "per_placement": tallies(&s.placements),
        "per_model": per_model,
        "per_action": tallies(&s.actions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{
        ChannelConsent, ConsentState, Contribution, FallbackReason, FilterReason,
        FilteredCandidate, ReasonCount, ServedAction, Suppression, SuppressionReason, Value,
        value::Kind,
    };
    use prost_types::Timestamp;

    #[test]
    fn decide_uses_lowercase_reason_names() {
        let r = DecideResponse {
            decision_id: "d-1".into(),
            served: vec![ServedAction {
                action_id: "a".into(),
                rank: 1,
                rationale: vec![Contribution {
                    feature: "f".into(),
                    value: 1.0,
                    contribution: 0.5,
                    text: "because".into(),
                }],
                payload: [("title".to_owned(), "Hi".to_owned())].into(),
                ..Default::default()
            }],
            filtered: vec![FilteredCandidate {
                action_id: "b".into(),
                reason: FilterReason::CapChannel as i32,
                message: "cap".into(),
                ..Default::default()
            }],
            filtered_counts: vec![ReasonCount {
                reason: FilterReason::OptedOut as i32,
                count: 2,
            }],
            fallback: true,
            fallback_reason: FallbackReason::ModelMissing as i32,
            ..Default::default()
        };
        let j = decide(&r);
        assert_eq!(j["decision_id"], "d-1");
        assert_eq!(j["served"][0]["rationale"][0]["text"], "because");
        assert_eq!(j["served"][0]["payload"]["title"], "Hi");
        assert_eq!(j["filtered"][0]["reason"], "cap_channel");
        assert_eq!(j["filtered_counts"][0]["reason"], "opted_out");
        assert_eq!(j["filtered_counts"][0]["count"], 2);
        assert_eq!(j["fallback_reason"], "model_missing");
        assert_eq!(j["request_id"], Json::Null);

        let dry = decide(&DecideResponse {
            dry_run: true,
            ..Default::default()
        });
        assert_eq!(dry["decision_id"], Json::Null);
        assert_eq!(dry["fallback_reason"], Json::Null);
        assert_eq!(dry["dry_run"], true);
    }

    #[test]
    fn profile_has_typed_attributes_and_rfc3339_times() {
        let p = Profile {
            customer_id: "c".into(),
            attributes: [
                (
                    "plan".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue("pro".into())),
                    },
                ),
                (
                    "seats".to_owned(),
                    Value {
                        kind: Some(Kind::NumberValue(5.0)),
                    },
                ),
            ]
            .into(),
            consent: vec![ChannelConsent {
                channel: "sms".into(),
                state: ConsentState::OptedOut as i32,
                updated_at: Some(Timestamp {
                    seconds: 1_714_557_600,
                    nanos: 0,
                }),
            }],
            suppressions: vec![Suppression {
                channel: String::new(),
                reason: SuppressionReason::Bounce as i32,
                since: None,
                note: String::new(),
            }],
            ..Default::default()
        };
        let j = profile(&p);
        assert_eq!(j["attributes"]["plan"], "pro");
        assert_eq!(j["attributes"]["seats"], 5.0);
        assert_eq!(j["consent"][0]["state"], "opted_out");
        assert_eq!(j["consent"][0]["updated_at"], "2024-05-01T10:00:00Z");
        assert_eq!(j["suppressions"][0]["channel"], Json::Null);
        assert_eq!(j["suppressions"][0]["reason"], "bounce");
        assert_eq!(j["first_seen"], Json::Null);
    }

    #[test]
    fn small_responses() {
        let j = consent(
            &SetConsentRequest {
                customer_id: "c".into(),
                channel: "sms".into(),
                state: ConsentState::OptedIn as i32,
            },
            &SetConsentResponse { previous: 0 },
        );
        assert_eq!(
            j,
            json!({"customer_id": "c", "channel": "sms", "state": "opted_in", "previous": "unset"})
        );
        let j = unsuppress(
            &UnsuppressRequest {
                customer_id: "c".into(),
                channel: "email".into(),
                reason: 0,
            },
            &SuppressResponse { changed: false },
        );
        assert_eq!(j["reason"], Json::Null);
        assert_eq!(j["changed"], false);
        let j = forget(
            &ForgetRequest {
                customer_id: "c".into(),
            },
            &ForgetResponse {
                state_erased: true,
                decisions_erased: 3,
                outcomes_erased: 1,
            },
        );
        assert_eq!(
            j,
            json!({"customer_id": "c", "state_erased": true, "decisions_erased": 3, "outcomes_erased": 1})
        );
        let j = export(&ExportSummary {
            path: "out/d.parquet".into(),
            format: super::super::export::ExportFormat::Parquet,
            decisions: 2,
            events: None,
            rows: 5,
        });
        assert_eq!(
            j,
            json!({"file": "out/d.parquet", "format": "parquet", "decisions": 2, "rows": 5})
        );
        let j = reload(None, &ReloadCatalogResponse::default());
        assert_eq!(j["file"], Json::Null);
        assert_eq!(j["summary"], Json::Null);
    }

    #[test]
    fn stats_has_latency_fallback_reasons_and_variants() {
        use nudge_proto::v1::{LatencySummary, ReasonCountTotal, VariantCount};
        let j = stats(&StatsResponse {
            decisions: 10,
            fallbacks: 2,
            fallbacks_by_reason: vec![ReasonCountTotal {
                reason: "deadline".into(),
                count: 2,
            }],
            variants: vec![VariantCount {
                variant: "default".into(),
                decisions: 10,
                ..VariantCount::default()
            }],
            latency: Some(LatencySummary {
                window_seconds: 60,
                count: 10,
                p50_micros: 150,
                p90_micros: 200,
                p99_micros: 400,
                p999_micros: 400,
                max_micros: 401,
            }),
            ..Default::default()
        });
        assert_eq!(
            j["fallbacks_by_reason"],
            json!([{"reason": "deadline", "count": 2}])
        );
        assert_eq!(
            j["variants"],
            json!([{"variant": "default", "decisions": 10, "impressions": 0, "clicks": 0, "conversions": 0}])
        );
        assert_eq!(j["latency"]["p50_micros"], 150);
        assert_eq!(j["latency"]["window_seconds"], 60);
        assert_eq!(stats(&StatsResponse::default())["latency"], Json::Null);
    }
}
