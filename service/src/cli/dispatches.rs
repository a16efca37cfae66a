//! `nudge dispatches [watch|ack]`: the journeys' sends as a delivery
//! service receives them (`Dispatches.Subscribe`), one line each as they
//! come — to see what a journey sends, to debug a delivery worker, or as
//! the simplest worker of all in a script (`--json`, one object per line;
//! `--ack` to take each) — and acknowledging one dispatch by hand.

use std::io::Write as _;

use anyhow::bail;
use nudge_proto::v1::{AckRequest, Dispatch, SubscribeRequest};
use serde_json::{Value as Json, json};

use super::names::{rfc3339, timestamp_json};
use super::{ClientArgs, client, render};

/// What `nudge dispatches` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DispatchesAction {
    /// Print the dispatches as they come, until interrupted.
    Watch,
    /// Acknowledge CUSTOMER's dispatch DISPATCH.
    Ack,
}

/// Arguments of `nudge dispatches`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  nudge dispatches                          # every channel's sends, as they come
  nudge dispatches --channel email --ack    # take the email sends
  nudge dispatches --json --count 1         # one send as JSON, then exit
  nudge dispatches ack c-42 9f3c2a...       # acknowledge one by hand
Then report each one with: nudge outcome --customer C --decision D --action A
--outcome delivered|failed --dispatch DISPATCH.
Several watchers of one channel share its sends; one not acknowledged in time
(journeys.ack_timeout_ms) is handed out again.")]
pub struct DispatchesArgs {
    /// watch or ack.
    #[arg(value_enum, default_value = "watch")]
    pub action: DispatchesAction,
    /// The customer (ack).
    #[arg(value_name = "CUSTOMER")]
    pub customer: Option<String>,
    /// The dispatch id (ack).
    #[arg(value_name = "DISPATCH")]
    pub dispatch: Option<String>,
    /// Only this channel's sends (repeat for several); every channel when
    /// none is given (watch).
    #[arg(long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// Acknowledge each dispatch as it is printed, taking it (watch).
    #[arg(long)]
    pub ack: bool,
    /// Exit after this many dispatches (watch).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Runs `nudge dispatches ack`.
pub async fn run(args: &DispatchesArgs, options: &ClientArgs) -> anyhow::Result<String> {
    let (Some(customer_id), Some(dispatch_id)) = (&args.customer, &args.dispatch) else {
        bail!("nudge dispatches ack needs the CUSTOMER and the DISPATCH");
    };
    let response = client::ask(
        options,
        AckRequest {
            customer_id: customer_id.clone(),
            dispatch_id: dispatch_id.clone(),
        },
    )
    .await?;
    render(
        options,
        || json!({"customer_id": customer_id, "dispatch_id": dispatch_id, "state": response.state}),
        || match response.state.as_str() {
            "taken" => format!("acknowledged {dispatch_id}: it waits for its outcome"),
            "already" => format!("{dispatch_id} was acknowledged before"),
            _ => format!(
                "{customer_id} has no dispatch {dispatch_id} waiting (its outcome came, it expired or was withdrawn): do not deliver it"
            ),
        },
    )
}

/// Runs `nudge dispatches watch`: prints each dispatch as it comes (and
/// acknowledges it with `--ack`) until the server ends the stream, `--count`
/// are printed, or the command is interrupted.
pub async fn watch(args: &DispatchesArgs, options: &ClientArgs) -> anyhow::Result<()> {
    if args.action != DispatchesAction::Watch {
        bail!("nudge dispatches: only watch streams");
    }
    let connection = client::connect(options).await?;
    let mut stream = client::answer(
        connection.clone(),
        SubscribeRequest {
            channels: args.channels.clone(),
        },
    )
    .await?;
    let mut printed = 0_u64;
    while args.count.is_none_or(|count| printed < count) {
        let dispatch = match stream.message().await {
            Ok(Some(dispatch)) => dispatch,
            Ok(None) => break,
            Err(status) => return Err(client::status_error(status)),
        };
        let state = if args.ack {
            let response = client::answer(
                connection.clone(),
                AckRequest {
                    customer_id: dispatch.customer_id.clone(),
                    dispatch_id: dispatch.dispatch_id.clone(),
                },
            )
            .await?;
            Some(response.state)
        } else {
            None
        };
        let line = if options.json {
            dispatch_json(&dispatch, state.as_deref()).to_string()
        } else {
            dispatch_text(&dispatch, state.as_deref())
        };
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            // `nudge dispatches | head -1` closes the pipe early.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(error.into()),
            Ok(()) => {}
        }
        printed += 1;
    }
    Ok(())
}

/// One dispatch as a JSON object; `acknowledged` is the Ack's answer.
fn dispatch_json(dispatch: &Dispatch, acknowledged: Option<&str>) -> Json {
    json!({
        "dispatch_id": dispatch.dispatch_id,
        "decision_id": dispatch.decision_id,
        "customer_id": dispatch.customer_id,
        "journey_id": dispatch.journey_id,
        "journey_version": dispatch.journey_version,
        "step_id": dispatch.step_id,
        "action_id": dispatch.action_id,
        "channel": dispatch.channel,
        "payload": dispatch.payload,
        "attempt": dispatch.attempt,
        "delivery": dispatch.delivery,
        "created_at": timestamp_json(dispatch.created_at.as_ref()),
        "failed_channels": dispatch.failed_channels,
        "acknowledged": acknowledged,
    })
}

/// One dispatch as a line for a person.
fn dispatch_text(dispatch: &Dispatch, acknowledged: Option<&str>) -> String {
    let made = dispatch
        .created_at
        .as_ref()
        .map_or_else(|| "-".to_owned(), rfc3339);
    let mut line = format!(
        "{made}  {:<8} {}  {} ({}/{})  dispatch {}",
        dispatch.channel,
        dispatch.customer_id,
        dispatch.action_id,
        dispatch.journey_id,
        dispatch.step_id,
        dispatch.dispatch_id,
    );
    if dispatch.attempt > 1 {
        line.push_str(&format!("  attempt {}", dispatch.attempt));
    }
    if dispatch.delivery > 1 {
        line.push_str(&format!("  redelivery {}", dispatch.delivery - 1));
    }
    if !dispatch.failed_channels.is_empty() {
        line.push_str(&format!(
            "  after {} failed",
            dispatch.failed_channels.join(", ")
        ));
    }
    if let Some(state) = acknowledged {
        line.push_str(&format!("  [ack: {state}]"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Dispatch {
        Dispatch {
            dispatch_id: "d9.2".to_owned(),
            decision_id: "d9".to_owned(),
            customer_id: "c-42".to_owned(),
            journey_id: "dunning".to_owned(),
            step_id: "notice".to_owned(),
            action_id: "payment_failed_sms".to_owned(),
            channel: "sms".to_owned(),
            attempt: 2,
            delivery: 3,
            created_at: Some(prost_types::Timestamp {
                seconds: 1_796_083_200,
                nanos: 0,
            }),
            failed_channels: vec!["email".to_owned()],
            ..Dispatch::default()
        }
    }

    #[test]
    fn a_dispatch_reads_as_one_line_with_its_attempt_and_redelivery() {
        assert_eq!(
            dispatch_text(&retry(), Some("taken")),
            "2026-12-01T00:00:00Z  sms      c-42  payment_failed_sms (dunning/notice)  dispatch d9.2  \
             attempt 2  redelivery 2  after email failed  [ack: taken]"
        );
        let first = Dispatch {
            attempt: 1,
            delivery: 1,
            failed_channels: Vec::new(),
            ..retry()
        };
        assert!(dispatch_text(&first, None).ends_with("dispatch d9.2"));
        let json = dispatch_json(&retry(), None);
        assert_eq!(json["failed_channels"][0], "email");
        assert_eq!(json["acknowledged"], Json::Null);
        assert_eq!(json["created_at"], "2026-12-01T00:00:00Z");
    }
}
