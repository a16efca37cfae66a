//! `nudge journeys [show|runs|cancel|pause|resume]`: the journeys of the
//! running catalog as a live dashboard (per journey active, completed,
//! converted, conversion rate, sends deferred or blocked by cause; per step
//! entries, exits by how, median time in step and drop-off), one customer's
//! runs with their audit trail, and the operator's changes, over
//! `Admin.ListJourneys`, `GetCustomerJourneys`, `CancelJourneyRun`,
//! `PauseJourney` and `ResumeJourney`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;
use nudge_proto::v1::{
    CancelJourneyRunRequest, GetCustomerJourneysRequest, GetCustomerJourneysResponse,
    JourneyReport, ListJourneysRequest, ListJourneysResponse, NamedCount, PauseJourneyRequest,
    ResumeJourneyRequest,
};
use serde_json::{Value as Json, json};

use super::parse::parse_interval;
use super::{ClientArgs, client, render};

/// What `nudge journeys` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JourneysAction {
    /// The journeys and their analytics (live on a terminal).
    Show,
    /// CUSTOMER's runs: where each is and its audit trail.
    Runs,
    /// End CUSTOMER's run of JOURNEY at once.
    Cancel,
    /// Pause JOURNEY: no new entries, runs hold where they are.
    Pause,
    /// Resume JOURNEY: held runs go on.
    Resume,
}

/// Arguments of `nudge journeys`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  nudge journeys                               # live dashboard
  nudge journeys show --json                   # one snapshot for scripts
  nudge journeys runs c-42                     # a customer's runs and audit trail
  nudge journeys cancel c-42 trial_conversion  # end that run now
  nudge journeys pause trial_conversion        # the emergency pause
  nudge journeys resume trial_conversion
Counts are since the server started.")]
pub struct JourneysArgs {
    /// show, runs, cancel, pause or resume.
    #[arg(value_enum, default_value = "show")]
    pub action: JourneysAction,
    /// The customer (runs, cancel) or the journey (pause, resume).
    #[arg(value_name = "CUSTOMER|JOURNEY")]
    pub target: Option<String>,
    /// The journey (cancel).
    #[arg(value_name = "JOURNEY")]
    pub journey: Option<String>,
    /// Print one snapshot and exit, even on a terminal (show).
    #[arg(long)]
    pub once: bool,
    /// Seconds between two refreshes of the live view, e.g. 1 or 0.5.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_interval)]
    pub interval: Duration,
}

impl JourneysArgs {
    /// Whether to redraw live: `show` as text on a terminal, without `--once`.
    pub fn live(&self, json: bool, terminal: bool) -> bool {
        self.action == JourneysAction::Show && terminal && !json && !self.once
    }
}

/// Runs one `nudge journeys` action and renders its answer.
pub async fn run(args: &JourneysArgs, options: &ClientArgs) -> anyhow::Result<String> {
    let target = |what: &str| match &args.target {
        Some(target) => Ok(target.clone()),
        None => bail!("nudge journeys {what}"),
    };
    match args.action {
        JourneysAction::Show => {
            let response = client::ask(options, ListJourneysRequest {}).await?;
            render(options, || listing_json(&response), || dashboard(&response))
        }
        JourneysAction::Runs => {
            let customer_id = target("runs needs the CUSTOMER")?;
            let response = client::ask(
                options,
                GetCustomerJourneysRequest {
                    customer_id: customer_id.clone(),
                },
            )
            .await?;
            render(
                options,
                || runs_json(&response),
                || runs_text(&customer_id, &response),
            )
        }
        JourneysAction::Cancel => {
            let customer_id = target("cancel needs the CUSTOMER and the JOURNEY")?;
            let Some(journey_id) = args.journey.clone() else {
                bail!("nudge journeys cancel needs the CUSTOMER and the JOURNEY");
            };
            let response = client::ask(
                options,
                CancelJourneyRunRequest {
                    customer_id: customer_id.clone(),
                    journey_id: journey_id.clone(),
                },
            )
            .await?;
            render(
                options,
                || json!({"customer_id": customer_id, "journey_id": journey_id, "cancelled": response.cancelled}),
                || {
                    if response.cancelled {
                        format!("cancelled {customer_id}'s run of {journey_id}")
                    } else {
                        format!(
                            "{customer_id} has no run of {journey_id} in progress: nothing cancelled"
                        )
                    }
                },
            )
        }
        JourneysAction::Pause => {
            let journey_id = target("pause needs the JOURNEY")?;
            let response = client::ask(
                options,
                PauseJourneyRequest {
                    journey_id: journey_id.clone(),
                },
            )
            .await?;
            render(
                options,
                || json!({"journey_id": journey_id, "paused": true, "changed": response.changed}),
                || {
                    if response.changed {
                        format!("paused {journey_id}: no new entries, its runs hold where they are")
                    } else {
                        format!("{journey_id} was paused already")
                    }
                },
            )
        }
        JourneysAction::Resume => {
            let journey_id = target("resume needs the JOURNEY")?;
            let response = client::ask(
                options,
                ResumeJourneyRequest {
                    journey_id: journey_id.clone(),
                },
            )
            .await?;
            render(
                options,
                || json!({"journey_id": journey_id, "paused": false, "changed": response.changed, "customers_woken": response.customers_woken}),
                || {
                    if response.changed {
                        format!(
                            "resumed {journey_id}: {} customer(s) with held runs woken",
                            response.customers_woken
                        )
                    } else {
                        format!("{journey_id} was not paused by an operator: nothing changed")
                    }
                },
            )
        }
    }
}

fn counts_json(counts: &[NamedCount]) -> Json {
    counts
        .iter()
        .map(|count| (count.name.clone(), json!(count.count)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn counts_text(counts: &[NamedCount]) -> String {
    counts
        .iter()
        .map(|count| format!("{} {}", count.name, count.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn listing_json(response: &ListJourneysResponse) -> Json {
    json!({
        "journeys": response.journeys.iter().map(|journey| json!({
            "id": journey.id,
            "name": journey.name,
            "version": journey.version,
            "paused": journey.paused,
            "paused_by_operator": journey.paused_by_operator,
            "priority": journey.priority,
            "trigger_event": journey.trigger_event,
            "triggered": journey.triggered,
            "started": journey.started,
            "active": journey.active,
            "completed": journey.completed,
            "converted": journey.converted,
            "conversion_rate": journey.conversion_rate,
            "ended": counts_json(&journey.ended),
            "refused": counts_json(&journey.refused),
            "sent": journey.sent,
            "deferred": counts_json(&journey.deferred),
            "blocked": counts_json(&journey.blocked),
            "delivered": journey.delivered,
            "failed_deliveries": counts_json(&journey.failed_deliveries),
            "failed_over": journey.failed_over,
            "undelivered": journey.undelivered,
            "withdrawn": journey.withdrawn,
            "steps": journey.steps.iter().map(|step| json!({
                "id": step.id,
                "kind": step.kind,
                "entered": step.entered,
                "exited": counts_json(&step.exited),
                "median_seconds": step.median_seconds,
                "drop_off": step.drop_off,
                "sent": step.sent,
                "deferred": step.deferred,
                "blocked": step.blocked,
            })).collect::<Json>(),
        })).collect::<Json>(),
    })
}

/// A duration in seconds as `45s`, `12m`, `3.5h` or `2.0d`.
fn seconds_text(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.0}s")
    } else if seconds < 3_600.0 {
        format!("{:.0}m", seconds / 60.0)
    } else if seconds < 86_400.0 {
        format!("{:.1}h", seconds / 3_600.0)
    } else {
        format!("{:.1}d", seconds / 86_400.0)
    }
}

fn journey_text(out: &mut String, journey: &JourneyReport) {
    let status = match (journey.paused, journey.paused_by_operator) {
        (true, true) => "PAUSED by an operator",
        (true, false) => "paused in the catalog",
        (false, _) => "active",
    };
    let _ = writeln!(
        out,
        "{} (v{}, priority {}, on {}) — {status}",
        journey.id, journey.version, journey.priority, journey.trigger_event
    );
    let _ = writeln!(
        out,
        "  triggered {}  started {}  active {}  completed {}  converted {}  conversion {:.1} %",
        journey.triggered,
        journey.started,
        journey.active,
        journey.completed,
        journey.converted,
        journey.conversion_rate * 100.0
    );
    let _ = writeln!(
        out,
        "  sent {}  deferred {}  blocked {}",
        journey.sent,
        journey
            .deferred
            .iter()
            .map(|count| count.count)
            .sum::<u64>(),
        journey.blocked.iter().map(|count| count.count).sum::<u64>()
    );
    let failed: u64 = journey
        .failed_deliveries
        .iter()
        .map(|count| count.count)
        .sum();
    if journey.delivered + failed + journey.failed_over + journey.undelivered + journey.withdrawn
        > 0
    {
        let _ = writeln!(
            out,
            "  delivered {}  failed {failed}  failed over {}  undelivered {}  withdrawn {}",
            journey.delivered, journey.failed_over, journey.undelivered, journey.withdrawn
        );
    }
    for (label, counts) in [
        ("ended", &journey.ended),
        ("refused", &journey.refused),
        ("deferred by", &journey.deferred),
        ("blocked by", &journey.blocked),
        ("failed deliveries by channel", &journey.failed_deliveries),
    ] {
        if !counts.is_empty() {
            let _ = writeln!(out, "  {label}: {}", counts_text(counts));
        }
    }
    let width = journey
        .steps
        .iter()
        .map(|step| step.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:width$}  {:10}  {:>7}  {:>8}  {:>8}  exited",
        "step", "kind", "entered", "median", "drop-off"
    );
    for step in &journey.steps {
        let median = if step.exited.is_empty() {
            "-".to_owned()
        } else {
            seconds_text(step.median_seconds)
        };
        let _ = writeln!(
            out,
            "  {:width$}  {:10}  {:>7}  {:>8}  {:>7.1}%  {}",
            step.id,
            step.kind,
            step.entered,
            median,
            step.drop_off * 100.0,
            counts_text(&step.exited)
        );
    }
}

/// The journeys as a dashboard, one block per journey.
pub fn dashboard(response: &ListJourneysResponse) -> String {
    if response.journeys.is_empty() {
        return "the running catalog declares no journeys ([[journeys]])".to_owned();
    }
    let mut out = String::new();
    for (index, journey) in response.journeys.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        journey_text(&mut out, journey);
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

fn time_text(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|at| {
        chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
    })
    .map_or_else(
        || "-".to_owned(),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn runs_json(response: &GetCustomerJourneysResponse) -> Json {
    json!({
        "runs": response.runs.iter().map(|run| json!({
            "journey_id": run.journey_id,
            "version": run.version,
            "started_at": time_text(run.started_at.as_ref()),
            "step": run.step,
            "step_entered_at": time_text(run.step_entered_at.as_ref()),
            "state": run.state,
            "until": run.until.as_ref().map(|until| time_text(Some(until))),
            "ending": (!run.ending.is_empty()).then_some(&run.ending),
            "ending_detail": (!run.ending_detail.is_empty()).then_some(&run.ending_detail),
            "ended_at": run.ended_at.as_ref().map(|at| time_text(Some(at))),
            "paused": run.paused,
            "history": run.history.iter().map(|entry| json!({
                "at": time_text(entry.at.as_ref()),
                "what": entry.what,
                "step": entry.step,
                "text": entry.text,
            })).collect::<Json>(),
        })).collect::<Json>(),
        "outbox": response.outbox.iter().map(|entry| json!({
            "dispatch_id": entry.dispatch_id,
            "decision_id": entry.decision_id,
            "journey_id": entry.journey_id,
            "step_id": entry.step_id,
            "action_id": entry.action_id,
            "channel": entry.channel,
            "attempt": entry.attempt,
            "handed_out": entry.handed_out,
            "held": entry.held,
            "acknowledged": entry.acknowledged,
            "created_at": time_text(entry.created_at.as_ref()),
            "due": time_text(entry.due.as_ref()),
        })).collect::<Json>(),
    })
}

fn runs_text(customer_id: &str, response: &GetCustomerJourneysResponse) -> String {
    if response.runs.is_empty() {
        return format!("{customer_id} has not been in a journey");
    }
    let mut out = String::new();
    for run in &response.runs {
        let state = match run.state.as_str() {
            "ended" if run.ending_detail.is_empty() => format!("ended: {}", run.ending),
            "ended" => format!("ended: {} ({})", run.ending, run.ending_detail),
            state => match &run.until {
                Some(until) => format!("{state} until {}", time_text(Some(until))),
                None => state.to_owned(),
            },
        };
        let paused = if run.paused {
            ", held: journey paused"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{} v{} — at {} ({state}{paused}), started {}",
            run.journey_id,
            run.version,
            run.step,
            time_text(run.started_at.as_ref())
        );
        for entry in &run.history {
            let _ = writeln!(out, "  {}  {}", time_text(entry.at.as_ref()), entry.text);
        }
    }
    if !response.outbox.is_empty() {
        let _ = writeln!(
            out,
            "outbox (sends waiting for a delivery service's outcome):"
        );
        for entry in &response.outbox {
            let state = if entry.acknowledged {
                "taken, waiting for its outcome until".to_owned()
            } else if entry.held {
                "held: no delivery service takes its channel; tried again".to_owned()
            } else {
                format!("handed out {} time(s); again", entry.handed_out)
            };
            let _ = writeln!(
                out,
                "  {} {} on {} ({}/{}, attempt {}): {state} {}",
                entry.dispatch_id,
                entry.action_id,
                entry.channel,
                entry.journey_id,
                entry.step_id,
                entry.attempt,
                time_text(entry.due.as_ref())
            );
        }
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{JourneyHistoryEntry, JourneyRun, JourneyStepReport};

    fn count(name: &str, count: u64) -> NamedCount {
        NamedCount {
            name: name.to_owned(),
            count,
        }
    }

    #[test]
    fn the_dashboard_shows_each_journey_and_its_steps() {
        let response = ListJourneysResponse {
            journeys: vec![JourneyReport {
                id: "trial_conversion".to_owned(),
                version: 2,
                priority: 10,
                trigger_event: "trial_started".to_owned(),
                paused: true,
                paused_by_operator: true,
                triggered: 5,
                started: 4,
                active: 1,
                completed: 1,
                converted: 2,
                conversion_rate: 2.0 / 3.0,
                ended: vec![count("converted", 2), count("completed", 1)],
                refused: vec![count("too_soon", 1)],
                sent: 6,
                deferred: vec![count("quiet_hours", 2)],
                steps: vec![
                    JourneyStepReport {
                        id: "welcome".to_owned(),
                        kind: "send".to_owned(),
                        entered: 4,
                        exited: vec![count("done", 4)],
                        ..JourneyStepReport::default()
                    },
                    JourneyStepReport {
                        id: "day1".to_owned(),
                        kind: "wait".to_owned(),
                        entered: 4,
                        exited: vec![count("done", 2), count("exited", 1)],
                        median_seconds: 86_400.0,
                        drop_off: 1.0 / 3.0,
                        ..JourneyStepReport::default()
                    },
                    JourneyStepReport {
                        id: "final".to_owned(),
                        kind: "send".to_owned(),
                        ..JourneyStepReport::default()
                    },
                ],
                ..JourneyReport::default()
            }],
        };
        let text = dashboard(&response);
        assert!(
            text.starts_with(
                "trial_conversion (v2, priority 10, on trial_started) — PAUSED by an operator"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "triggered 5  started 4  active 1  completed 1  converted 2  conversion 66.7 %"
            ),
            "{text}"
        );
        assert!(text.contains("deferred by: quiet_hours 2"), "{text}");
        assert!(text.contains("refused: too_soon 1"), "{text}");
        let row = |step: &str| {
            text.lines()
                .find(|line| line.trim_start().starts_with(step))
                .unwrap_or_else(|| panic!("no {step} row:\n{text}"))
                .to_owned()
        };
        let day1 = row("day1");
        assert!(
            day1.contains("1.0d") && day1.contains("33.3%") && day1.ends_with("done 2, exited 1"),
            "{day1}"
        );
        assert!(row("welcome").contains(" 0s "), "{}", row("welcome"));
        assert!(
            row("final").contains(" - "),
            "nothing left it: {}",
            row("final")
        );
        assert!(
            text.lines().all(|line| line == line.trim_end()),
            "no trailing spaces:\n{text}"
        );
        let json = listing_json(&response);
        assert_eq!(json["journeys"][0]["steps"][1]["exited"]["exited"], 1);
        assert_eq!(
            dashboard(&ListJourneysResponse::default()),
            "the running catalog declares no journeys ([[journeys]])"
        );
    }

    #[test]
    fn a_customers_runs_read_as_their_audit_trail() {
        let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        let response = GetCustomerJourneysResponse {
            runs: vec![JourneyRun {
                journey_id: "trial_conversion".to_owned(),
                version: 1,
                started_at: Some(at(1_796_083_200)),
                step: "day1".to_owned(),
                state: "waiting".to_owned(),
                until: Some(at(1_796_169_600)),
                history: vec![JourneyHistoryEntry {
                    at: Some(at(1_796_083_200)),
                    what: "started".to_owned(),
                    text: "started by trial_started at welcome".to_owned(),
                    ..JourneyHistoryEntry::default()
                }],
                ..JourneyRun::default()
            }],
            outbox: vec![nudge_proto::v1::OutboxEntry {
                dispatch_id: "d9.2".to_owned(),
                action_id: "trial_checkin_email".to_owned(),
                channel: "email".to_owned(),
                journey_id: "trial_conversion".to_owned(),
                step_id: "welcome".to_owned(),
                attempt: 2,
                acknowledged: true,
                due: Some(at(1_796_169_600)),
                ..nudge_proto::v1::OutboxEntry::default()
            }],
        };
        assert_eq!(
            runs_text("c-1", &response),
            "trial_conversion v1 — at day1 (waiting until 2026-12-02T00:00:00Z), started 2026-12-01T00:00:00Z\n  2026-12-01T00:00:00Z  started by trial_started at welcome\noutbox (sends waiting for a delivery service's outcome):\n  d9.2 trial_checkin_email on email (trial_conversion/welcome, attempt 2): taken, waiting for its outcome until 2026-12-02T00:00:00Z"
        );
        assert_eq!(runs_json(&response)["outbox"][0]["acknowledged"], true);
        assert_eq!(
            runs_text("c-2", &GetCustomerJourneysResponse::default()),
            "c-2 has not been in a journey"
        );
        assert_eq!(
            runs_json(&response)["runs"][0]["until"],
            "2026-12-02T00:00:00Z"
        );
    }
}
