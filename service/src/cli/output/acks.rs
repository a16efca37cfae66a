//! Text for the commands whose answer is one sentence: `track`, `outcome`,
//! `consent`, `suppress`, `unsuppress` and `forget`.

use nudge_proto::v1::{
    Event, ForgetRequest, ForgetResponse, ReportOutcomeRequest, ReportOutcomeResponse,
    SetConsentRequest, SetConsentResponse, SuppressRequest, SuppressResponse, TrackResponse,
    UnsuppressRequest,
};

use super::{consent_words, plural};
use crate::cli::names::{number_text, outcome_name, rfc3339, suppression_reason_name};

/// A channel for sentences: `email`, or `every channel` when empty.
fn channel_phrase(channel: &str) -> String {
    if channel.is_empty() {
        "every channel".to_owned()
    } else {
        channel.to_owned()
    }
}

/// Whether the event was applied or was a duplicate.
pub fn track(event: &Event, r: &TrackResponse) -> String {
    if r.duplicate {
        format!(
            "Duplicate: event {} of {} was already applied; not applied again.",
            event.event_id, event.customer_id
        )
    } else {
        let at = event
            .timestamp
            .as_ref()
            .map_or_else(|| "now".to_owned(), rfc3339);
        format!(
            "Tracked {} for {} at {at} (event id {}).",
            event.name, event.customer_id, event.event_id
        )
    }
}

/// Whether the outcome was applied and whether a cap slot was given back.
pub fn outcome(request: &ReportOutcomeRequest, r: &ReportOutcomeResponse) -> String {
    let what = format!(
        "{} on {} (decision {})",
        outcome_name(request.outcome),
        request.action_id,
        request.decision_id
    );
    let mut text = if r.applied {
        let reward = request
            .reward
            .map(|x| format!(", reward {}", number_text(x)))
            .unwrap_or_default();
        format!("Recorded {what} for {}{reward}.", request.customer_id)
    } else {
        format!("Not applied: {what} was already reported.")
    };
    if r.slot_released {
        text.push_str(" The cap slot was given back.");
    }
    text
}

/// The new consent state and the one it replaced.
pub fn consent(request: &SetConsentRequest, r: &SetConsentResponse) -> String {
    let change = if r.previous == request.state {
        "unchanged".to_owned()
    } else {
        format!("was {}", consent_words(r.previous))
    };
    format!(
        "Consent of {} on {}: {} ({change}).",
        request.customer_id,
        request.channel,
        consent_words(request.state)
    )
}

/// Whether the suppression was added.
pub fn suppress(request: &SuppressRequest, r: &SuppressResponse) -> String {
    let reason = suppression_reason_name(request.reason);
    let channel = channel_phrase(&request.channel);
    if r.changed {
        let note = if request.note.is_empty() {
            String::new()
        } else {
            format!(" Note: {}", request.note)
        };
        format!(
            "Suppressed {} on {channel} ({reason}).{note}",
            request.customer_id
        )
    } else {
        format!(
            "{} was already suppressed on {channel} ({reason}); nothing changed.",
            request.customer_id
        )
    }
}

/// Whether a suppression was lifted.
pub fn unsuppress(request: &UnsuppressRequest, r: &SuppressResponse) -> String {
    let channel = channel_phrase(&request.channel);
    let reason = suppression_reason_name(request.reason);
    if r.changed {
        if reason == "unspecified" {
            format!(
                "Lifted every suppression of {} on {channel}.",
                request.customer_id
            )
        } else {
            format!(
                "Lifted the {reason} suppression of {} on {channel}.",
                request.customer_id
            )
        }
    } else {
        format!(
            "No matching suppression of {} on {channel}; nothing changed.",
            request.customer_id
        )
    }
}

/// What was erased, or that nothing was stored.
pub fn forget(request: &ForgetRequest, r: &ForgetResponse) -> String {
    let customer = &request.customer_id;
    if !r.state_erased && r.decisions_erased == 0 && r.outcomes_erased == 0 {
        return format!("Nothing was stored about {customer}; nothing erased.");
    }
    let state = if r.state_erased {
        "their profile, consent, suppressions and contacts"
    } else {
        "no customer state (none was stored)"
    };
    format!(
        "Forgot {customer}: erased {state}, and {} and {} from the decision log.",
        plural(r.decisions_erased, "decision"),
        plural(r.outcomes_erased, "outcome")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{ConsentState, SuppressionReason};
    use prost_types::Timestamp;

    #[test]
    fn small_responses_read_as_sentences() {
        let req = ReportOutcomeRequest {
            customer_id: "c".into(),
            decision_id: "d".into(),
            action_id: "a".into(),
            outcome: nudge_proto::v1::Outcome::Failed as i32,
            reward: None,
            timestamp: None,
            dispatch_id: String::new(),
        };
        let text = outcome(
            &req,
            &ReportOutcomeResponse {
                applied: true,
                slot_released: true,
            },
        );
        assert_eq!(
            text,
            "Recorded failed on a (decision d) for c. The cap slot was given back."
        );
        let text = consent(
            &SetConsentRequest {
                customer_id: "c".into(),
                channel: "sms".into(),
                state: ConsentState::OptedIn as i32,
            },
            &SetConsentResponse {
                previous: ConsentState::Unspecified as i32,
            },
        );
        assert_eq!(text, "Consent of c on sms: opted in (was unset).");
        let text = suppress(
            &SuppressRequest {
                customer_id: "c".into(),
                channel: String::new(),
                reason: SuppressionReason::Bounce as i32,
                note: String::new(),
            },
            &SuppressResponse { changed: false },
        );
        assert_eq!(
            text,
            "c was already suppressed on every channel (bounce); nothing changed."
        );
        let text = unsuppress(
            &UnsuppressRequest {
                customer_id: "c".into(),
                channel: "email".into(),
                reason: 0,
            },
            &SuppressResponse { changed: true },
        );
        assert_eq!(text, "Lifted every suppression of c on email.");
        let event = Event {
            customer_id: "c".into(),
            event_id: "e-1".into(),
            name: "login".into(),
            timestamp: Some(Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            properties: Default::default(),
        };
        assert_eq!(
            track(&event, &TrackResponse { duplicate: false }),
            "Tracked login for c at 1970-01-01T00:00:00Z (event id e-1)."
        );
        assert!(track(&event, &TrackResponse { duplicate: true }).starts_with("Duplicate"));
        let request = ForgetRequest {
            customer_id: "c".into(),
        };
        assert_eq!(
            forget(
                &request,
                &ForgetResponse {
                    state_erased: true,
                    decisions_erased: 1,
                    outcomes_erased: 2,
                }
            ),
            "Forgot c: erased their profile, consent, suppressions and contacts, and 1 decision and 2 outcomes from the decision log."
        );
        assert_eq!(
            forget(&request, &ForgetResponse::default()),
            "Nothing was stored about c; nothing erased."
        );
        assert!(
            forget(
                &request,
                &ForgetResponse {
                    state_erased: false,
                    decisions_erased: 4,
                    outcomes_erased: 0,
                }
            )
            .contains("erased no customer state (none was stored), and 4 decisions and 0 outcomes")
        );
    }
}
