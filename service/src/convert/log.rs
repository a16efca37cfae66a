//! The decision and event logs on the wire: export ranges, and logged
//! decisions and events in both directions (the server sends them, `nudge
//! export` reads them back).

use super::*;
use crate::error::ServiceError;
use crate::store::{EventRecord, LoggedDecision, TimeRange};
use nudge_models::ledger::OutcomeKind;
use nudge_models::log;
use nudge_models::pipeline::FallbackReason;
use nudge_models::profile::Event;
use nudge_proto::v1 as proto;

/// A value as the server exported it: a string, a finite number or a
/// boolean (the server checked its size when it accepted it).
fn exported_value(field: &str, value: proto::Value) -> Result<AttrValue, ServiceError> {
    use proto::value::Kind;
    match value.kind {
        Some(Kind::StringValue(text)) => Ok(AttrValue::Str(text)),
        Some(Kind::NumberValue(number)) if number.is_finite() => Ok(AttrValue::Num(number)),
        Some(Kind::BoolValue(flag)) => Ok(AttrValue::Bool(flag)),
        _ => Err(ServiceError::invalid(
            field,
            "is not a string, finite number or boolean",
        )),
    }
}

/// A map of exported values.
fn exported_values(
    field: &str,
    map: HashMap<String, proto::Value>,
) -> Result<BTreeMap<String, AttrValue>, ServiceError> {
    map.into_iter()
        .map(|(key, value)| {
            let value = exported_value(&format!("{field}['{key}']"), value)?;
            Ok((key, value))
        })
        .collect()
}

/// A map of values on the wire.
fn values_to_proto(values: &BTreeMap<String, AttrValue>) -> HashMap<String, proto::Value> {
    values
        .iter()
        .map(|(key, value)| (key.clone(), value_to_proto(value)))
        .collect()
}

/// The wire form of a logged event.
pub fn logged_event(record: EventRecord) -> proto::LoggedEvent {
    let EventRecord {
        customer_id,
        ordinal,
        received_at,
        event,
    } = record;
    proto::LoggedEvent {
        ordinal,
        received_at: Some(to_proto_timestamp(received_at)),
        event: Some(proto::Event {
            customer_id,
            properties: values_to_proto(&event.properties),
            event_id: event.event_id,
            name: event.name,
            timestamp: Some(to_proto_timestamp(event.timestamp)),
        }),
    }
}

/// A logged event as the server sent it, back in the domain's types (the
/// client side of `nudge export --events`).
pub fn logged_event_from_proto(logged: proto::LoggedEvent) -> Result<EventRecord, ServiceError> {
    let event = logged
        .event
        .ok_or_else(|| ServiceError::invalid("event", "is missing"))?;
    let received_at = logged
        .received_at
        .map(|at| any_timestamp("received_at", at))
        .transpose()?
        .ok_or_else(|| ServiceError::invalid("received_at", "is missing"))?;
    let timestamp = event
        .timestamp
        .map(|at| any_timestamp("event.timestamp", at))
        .transpose()?
        .ok_or_else(|| ServiceError::invalid("event.timestamp", "is missing"))?;
    Ok(EventRecord {
        customer_id: event.customer_id,
        ordinal: logged.ordinal,
        received_at,
        event: Event {
            event_id: event.event_id,
            name: event.name,
            timestamp,
            properties: exported_values("event.properties", event.properties)?,
        },
    })
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

/// A logged decision as the server sent it, back in the domain's types (the
/// client side of `nudge export`). Outcomes of a kind this client does not
/// know (sent by a newer server) are left out.
pub fn logged_decision_from_proto(
    logged: proto::LoggedDecision,
) -> Result<log::LoggedDecision, ServiceError> {
    let decision_id = logged.decision_id;
    let at = logged
        .decided_at
        .map(|at| any_timestamp("decided_at", at))
        .transpose()?
        .ok_or_else(|| {
            ServiceError::invalid(
                "decided_at",
                format!("decision '{decision_id}' has no decided_at"),
            )
        })?;
    let fallback = match logged.fallback.as_str() {
        "" => None,
        code => Some(FallbackReason::from_code(code).ok_or_else(|| {
            ServiceError::invalid(
                "fallback",
                format!("decision '{decision_id}' has an unknown fallback reason '{code}'"),
            )
        })?),
    };
    let mut outcomes = Vec::with_capacity(logged.outcomes.len());
    for outcome in logged.outcomes {
        let Some(kind) = OutcomeKind::from_name(&outcome.outcome) else {
            continue;
        };
        let outcome_at = outcome
            .at
            .map(|at| any_timestamp("outcomes.at", at))
            .transpose()?
            .unwrap_or(at);
        outcomes.push(log::OutcomeRecord {
            decision_id: decision_id.clone(),
            decision_at: at,
            customer_id: logged.customer_id.clone(),
            action_id: outcome.action_id,
            outcome: kind,
            at: outcome_at,
            reward: outcome.has_reward.then_some(outcome.reward),
        });
    }
    Ok(log::LoggedDecision {
        record: log::DecisionRecord {
            decision_id,
            customer_id: logged.customer_id,
            at,
            placement: logged.placement,
            catalog_version: logged.catalog_version,
            model_version: (!logged.model_version.is_empty()).then_some(logged.model_version),
            variant: logged.variant,
            fallback,
            served: logged
                .served
                .into_iter()
                .map(|served| log::ServedRecord {
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
            context: exported_values("context", logged.context)?,
            eligible: logged.eligible,
            events_applied: logged.events_applied,
            engagement: logged
                .engagement
                .into_iter()
                .map(|engagement| {
                    (
                        engagement.channel,
                        [
                            engagement.sends,
                            engagement.impressions,
                            engagement.clicks,
                            engagement.conversions,
                            engagement.dismisses,
                            engagement.failures,
                        ],
                    )
                })
                .collect(),
            shadow: logged.shadow.map(|shadow| log::ShadowRecord {
                model_version: shadow.model_version,
                propensities: shadow.propensities,
                choice: (!shadow.choice.is_empty()).then_some(shadow.choice),
                choice_propensity: shadow.choice_propensity,
            }),
            scores: log::LoggedScores {
                values: logged.scores.into_iter().collect(),
                tiers: logged.tiers.into_iter().collect(),
            },
        },
        feature_names: logged.feature_names,
        outcomes,
    })
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
        context: values_to_proto(&record.context),
        eligible: record.eligible,
        events_applied: record.events_applied,
        engagement: record
            .engagement
            .into_iter()
            .map(|(channel, counts)| {
                let [sends, impressions, clicks, conversions, dismisses, failures] = counts;
                proto::LoggedEngagement {
                    channel,
                    sends,
                    impressions,
                    clicks,
                    conversions,
                    dismisses,
                    failures,
                }
            })
            .collect(),
        shadow: record.shadow.map(|shadow| proto::LoggedShadow {
            model_version: shadow.model_version,
            propensities: shadow.propensities,
            choice: shadow.choice.unwrap_or_default(),
            choice_propensity: shadow.choice_propensity,
        }),
        scores: record.scores.values.into_iter().collect(),
        tiers: record.scores.tiers.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::contract::{sample_decision, sample_outcome};
    use nudge_models::ledger::OutcomeKind;

    fn logged() -> LoggedDecision {
        let log::LogEntry::Decision { record, .. } = sample_decision("alice", "d1", 0) else {
            unreachable!("a decision entry")
        };
        let outcomes = [OutcomeKind::Impression, OutcomeKind::Conversion]
            .into_iter()
            .map(|kind| match sample_outcome("alice", "d1", 0, kind, 5_000) {
                log::LogEntry::Outcome(outcome) => outcome,
                _ => unreachable!("an outcome entry"),
            })
            .collect();
        LoggedDecision {
            record: log::DecisionRecord {
                fallback: Some(FallbackReason::Deadline),
                ..record
            },
            feature_names: vec!["bias".to_owned(), "count(login,7d)".to_owned()],
            outcomes,
        }
    }

    #[test]
    fn a_logged_decision_goes_to_the_wire_and_back_unchanged() {
        let original = logged();
        let back = logged_decision_from_proto(logged_decision(original.clone())).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn a_wire_decision_without_time_or_with_an_unknown_fallback_is_refused() {
        let mut wire = logged_decision(logged());
        wire.decided_at = None;
        let error = logged_decision_from_proto(wire).unwrap_err().to_string();
        assert!(error.contains("decision 'd1' has no decided_at"), "{error}");

        let mut wire = logged_decision(logged());
        wire.fallback = "teleported".to_owned();
        let error = logged_decision_from_proto(wire).unwrap_err().to_string();
        assert!(
            error.contains("unknown fallback reason 'teleported'"),
            "{error}"
        );
    }

    #[test]
    fn outcomes_of_a_kind_this_client_does_not_know_are_left_out() {
        let mut wire = logged_decision(logged());
        wire.outcomes[0].outcome = "teleported".to_owned();
        let back = logged_decision_from_proto(wire).unwrap();
        let kinds: Vec<OutcomeKind> = back.outcomes.iter().map(|o| o.outcome).collect();
        assert_eq!(kinds, [OutcomeKind::Conversion]);
    }
}
