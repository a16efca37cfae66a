//! Journeys to the wire: a journey with its analytics, a customer's runs
//! with their audit trail and outbox, a dispatch for a delivery service.

use super::to_proto_timestamp;
use crate::engine::JourneyView;
use crate::journeys::{Book, Handed};
use nudge_models::journey::{
    Acknowledged, CustomerJourneys, Dispatch, Happened, Run, RunState, Versions,
};
use nudge_proto::v1 as proto;
use std::collections::BTreeMap;

fn counts(map: &BTreeMap<String, u64>) -> Vec<proto::NamedCount> {
    map.iter()
        .map(|(name, count)| proto::NamedCount {
            name: name.clone(),
            count: *count,
        })
        .collect()
}

/// A journey and its analytics.
pub fn journey_report(view: &JourneyView) -> proto::JourneyReport {
    let JourneyView {
        journey,
        paused,
        paused_by_operator,
        figures,
    } = view;
    let steps = journey
        .steps
        .iter()
        .map(|step| {
            let step_figures = figures.steps.get(&step.id);
            proto::JourneyStepReport {
                id: step.id.clone(),
                kind: step.kind.code().to_owned(),
                entered: step_figures.map_or(0, |figures| figures.entered),
                exited: step_figures.map_or_else(Vec::new, |figures| counts(&figures.exited)),
                median_seconds: step_figures
                    .and_then(crate::journeys::StepFigures::median_seconds)
                    .unwrap_or(0.0),
                drop_off: step_figures.map_or(0.0, crate::journeys::StepFigures::drop_off),
                sent: step_figures.map_or(0, |figures| figures.sent),
                deferred: step_figures.map_or(0, |figures| figures.deferred),
                blocked: step_figures.map_or(0, |figures| figures.blocked),
            }
        })
        .collect();
    proto::JourneyReport {
        id: journey.id.to_string(),
        name: journey.name.clone(),
        version: journey.version,
        paused: *paused,
        paused_by_operator: *paused_by_operator,
        priority: journey.priority,
        trigger_event: journey.trigger.event.clone(),
        triggered: figures.triggered(),
        started: figures.started,
        active: figures.active(),
        completed: figures.ended_as("completed"),
        converted: figures.ended_as("converted"),
        conversion_rate: figures.conversion_rate(),
        ended: counts(&figures.ended),
        refused: counts(&figures.refused),
        sent: figures.sent,
        deferred: counts(&figures.deferred),
        blocked: counts(&figures.blocked),
        steps,
        delivered: figures.delivered,
        failed_deliveries: counts(&figures.failed_deliveries),
        failed_over: figures.failed_over,
        undelivered: figures.undelivered,
        withdrawn: figures.withdrawn,
    }
}

/// A customer's runs, oldest first.
pub fn customer_journeys(
    journeys: &CustomerJourneys,
    book: &Book,
) -> proto::GetCustomerJourneysResponse {
    proto::GetCustomerJourneysResponse {
        runs: journeys
            .runs
            .iter()
            .map(|run| journey_run(run, book))
            .collect(),
        outbox: journeys.outbox.iter().map(outbox_entry).collect(),
    }
}

fn outbox_entry(dispatch: &Dispatch) -> proto::OutboxEntry {
    proto::OutboxEntry {
        dispatch_id: dispatch.id.clone(),
        decision_id: dispatch.decision_id.clone(),
        journey_id: dispatch.journey.clone(),
        step_id: dispatch.step.clone(),
        action_id: dispatch.action.clone(),
        channel: dispatch.channel.clone(),
        attempt: dispatch.attempt,
        handed_out: dispatch.handed_out,
        held: dispatch.held > 0,
        acknowledged: dispatch.acknowledged,
        created_at: Some(to_proto_timestamp(dispatch.created_at)),
        due: Some(to_proto_timestamp(dispatch.due)),
    }
}

/// A dispatch as a delivery service receives it.
pub fn dispatch(handed: Handed) -> proto::Dispatch {
    let Handed {
        customer_id,
        dispatch,
    } = handed;
    proto::Dispatch {
        dispatch_id: dispatch.id,
        decision_id: dispatch.decision_id,
        customer_id: customer_id.to_string(),
        journey_id: dispatch.journey,
        journey_version: dispatch.version,
        step_id: dispatch.step,
        action_id: dispatch.action,
        channel: dispatch.channel,
        payload: dispatch.payload.into_iter().collect(),
        attempt: dispatch.attempt,
        delivery: dispatch.handed_out,
        created_at: Some(to_proto_timestamp(dispatch.created_at)),
        failed_channels: dispatch.failed_channels,
    }
}

/// The `state` of an Ack's answer.
pub fn acknowledged(acknowledged: Acknowledged) -> proto::AckResponse {
    let state = match acknowledged {
        Acknowledged::Taken => "taken",
        Acknowledged::Already => "already",
        Acknowledged::Unknown => "unknown",
    };
    proto::AckResponse {
        state: state.to_owned(),
    }
}

fn journey_run(run: &Run, book: &Book) -> proto::JourneyRun {
    let step = book
        .version(&run.journey, run.version)
        .and_then(|journey| journey.steps.get(run.step))
        .map_or_else(|| format!("#{}", run.step), |step| step.id.clone());
    let (state, until, ending, ended_at) = match &run.state {
        RunState::Ready => ("ready", None, None, None),
        RunState::Waiting { until } => ("waiting", Some(*until), None, None),
        RunState::WaitingFor { until } => ("waiting_for", Some(*until), None, None),
        RunState::Deferred { until, .. } => ("deferred", Some(*until), None, None),
        RunState::Ended { at, ending } => ("ended", None, Some(ending), Some(*at)),
    };
    proto::JourneyRun {
        journey_id: run.journey.clone(),
        version: run.version,
        started_at: Some(to_proto_timestamp(run.started_at)),
        step,
        step_entered_at: Some(to_proto_timestamp(run.step_entered_at)),
        state: state.to_owned(),
        until: until.map(to_proto_timestamp),
        ending: ending
            .map(|ending| ending.code().to_owned())
            .unwrap_or_default(),
        ending_detail: ending
            .map(nudge_models::journey::Ending::detail)
            .unwrap_or_default(),
        ended_at: ended_at.map(to_proto_timestamp),
        paused: !run.is_ended() && book.paused(&run.journey),
        history: run
            .history
            .iter()
            .map(|entry| {
                let (decision_id, action_id, channel) = match &entry.what {
                    Happened::Sent {
                        decision_id,
                        action,
                        channel,
                        ..
                    }
                    | Happened::FailedOver {
                        decision_id,
                        action,
                        channel,
                        ..
                    } => (decision_id.clone(), action.clone(), channel.clone()),
                    _ => Default::default(),
                };
                proto::JourneyHistoryEntry {
                    at: Some(to_proto_timestamp(entry.at)),
                    what: entry.what.code().to_owned(),
                    step: entry.what.step().unwrap_or_default().to_owned(),
                    text: entry.what.describe(),
                    decision_id,
                    action_id,
                    channel,
                }
            })
            .collect(),
    }
}
