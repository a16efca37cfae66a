//! Validation: every bad input is refused with INVALID_ARGUMENT naming the
//! field, and refusing it changes nothing.

use nudge_proto::v1::{
    ConsentState, DecideRequest, Event, Outcome, ReportOutcomeRequest, SetConsentRequest,
    SuppressRequest, SuppressionReason, Value,
};
use nudge_tests::{DAY_MS, NOON, TestServer, at, decide_request, event, number, text};
use std::collections::HashMap;
use tonic::Code;

fn assert_invalid(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    field: &str,
    case: &str,
) -> String {
    let status = result.expect_err(case);
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    assert!(
        status.message().contains(field),
        "{case}: message {:?} does not name {field}",
        status.message()
    );
    status.message().to_owned()
}

/// Nothing is known about `customer` and nothing was counted.
async fn assert_untouched(server: &TestServer, customer: &str) {
    let status = server
        .profile(customer)
        .await
        .expect_err("the customer must still be unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let stats = server.engine.stats();
    assert_eq!(stats.decisions, 0, "no decision was made");
    assert_eq!(stats.events, 0, "no event was applied");
    assert_eq!(stats.outcomes, 0, "no outcome was applied");
    assert_eq!(server.engine.registry().live(), 0, "no actor was activated");
}

fn entries(count: usize, value: impl Fn(usize) -> Value) -> HashMap<String, Value> {
    (0..count)
        .map(|key| (format!("k{key}"), value(key)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_decide_requests_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let customer = "c-invalid";
    let mut decisions = server.decisions().await;
    let base = || decide_request(customer, "home_banner");
    let cases: Vec<(&str, DecideRequest, &str)> = vec![
        (
            "empty customer id",
            DecideRequest {
                customer_id: String::new(),
                ..base()
            },
            "customer_id",
        ),
        (
            "257-byte customer id",
            DecideRequest {
                customer_id: "c".repeat(257),
                ..base()
            },
            "customer_id",
        ),
        (
            "1001 candidates",
            DecideRequest {
                candidate_action_ids: vec!["welcome_tour".to_owned(); 1001],
                ..base()
            },
            "candidate_action_ids",
        ),
        (
            "257 context entries",
            DecideRequest {
                context: entries(257, |_| text("v")),
                ..base()
            },
            "context",
        ),
        (
            "5000-byte context value",
            DecideRequest {
                context: entries(1, |_| text(&"x".repeat(5000))),
                ..base()
            },
            "context['k0']",
        ),
        (
            "NaN context value",
            DecideRequest {
                context: entries(1, |_| number(f64::NAN)),
                ..base()
            },
            "context['k0']",
        ),
        (
            "infinite context value",
            DecideRequest {
                context: entries(1, |_| number(f64::INFINITY)),
                ..base()
            },
            "context['k0']",
        ),
        (
            "context value without a kind",
            DecideRequest {
                context: entries(1, |_| Value { kind: None }),
                ..base()
            },
            "context['k0']",
        ),
        (
            "empty placement",
            DecideRequest {
                placement: String::new(),
                ..base()
            },
            "placement",
        ),
        (
            "unknown placement",
            DecideRequest {
                placement: "front_page".into(),
                ..base()
            },
            "placement",
        ),
        (
            "a journey's own placement",
            DecideRequest {
                placement: "journey/trial_conversion".into(),
                ..base()
            },
            "placement",
        ),
        (
            "unknown candidate",
            DecideRequest {
                candidate_action_ids: vec!["welcome_tour".into(), "x".into()],
                ..base()
            },
            "candidate 'x' is not in the catalog",
        ),
        (
            "limit over 50",
            DecideRequest {
                limit: 51,
                ..base()
            },
            "limit",
        ),
    ];
    for (case, request, field) in cases {
        let message = assert_invalid(decisions.decide(request).await, field, case);
        if case == "unknown placement" {
            assert!(message.contains("front_page"), "{message}");
        }
        if case == "a journey's own placement" {
            assert!(message.contains("journey"), "{message}");
        }
        if case == "NaN context value" {
            assert!(message.contains("finite"), "{message}");
        }
    }
    assert_untouched(&server, customer).await;

    // The limits themselves are accepted.
    let at_limits = DecideRequest {
        candidate_action_ids: vec!["welcome_tour".to_owned(); 1000],
        context: entries(256, |key| {
            if key == 0 {
                text(&"x".repeat(4096))
            } else {
                number(key as f64)
            }
        }),
        dry_run: true,
        ..decide_request(&"c".repeat(256), "home_banner")
    };
    let response = decisions
        .decide(at_limits)
        .await
        .expect("inputs at the limits are accepted")
        .into_inner();
    assert_eq!(response.served[0].action_id, "welcome_tour");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let customer = "c-invalid-events";
    let mut events = server.events().await;
    let base = || event(customer, "e-1", "page_view", NOON);
    let with_properties = |properties: HashMap<String, Value>| Event {
        properties,
        ..base()
    };
    let cases: Vec<(&str, Event, &str)> = vec![
        (
            "empty customer id",
            Event {
                customer_id: String::new(),
                ..base()
            },
            "customer_id",
        ),
        (
            "257-byte customer id",
            Event {
                customer_id: "c".repeat(257),
                ..base()
            },
            "customer_id",
        ),
        (
            "empty event id",
            Event {
                event_id: String::new(),
                ..base()
            },
            "event_id",
        ),
        (
            "empty name",
            Event {
                name: String::new(),
                ..base()
            },
            "name",
        ),
        (
            "65 properties",
            with_properties(entries(65, |_| text("v"))),
            "properties",
        ),
        (
            "5000-byte property",
            with_properties(entries(1, |_| text(&"x".repeat(5000)))),
            "properties['k0']",
        ),
        (
            "NaN property",
            with_properties(entries(1, |_| number(f64::NAN))),
            "properties['k0']",
        ),
        (
            "timestamp an hour in the future",
            Event {
                timestamp: Some(at(NOON + 3_600_000)),
                ..base()
            },
            "timestamp",
        ),
        (
            "timestamp 301 s in the future",
            Event {
                timestamp: Some(at(NOON + 301_000)),
                ..base()
            },
            "timestamp",
        ),
        (
            "timestamp 400 days in the past",
            Event {
                timestamp: Some(at(NOON - 400 * DAY_MS)),
                ..base()
            },
            "timestamp",
        ),
        (
            "timestamp with bad nanos",
            Event {
                timestamp: Some(prost_types::Timestamp {
                    seconds: NOON / 1000,
                    nanos: -1,
                }),
                ..base()
            },
            "timestamp",
        ),
        (
            "identify with an invalid timezone",
            Event {
                name: "identify".into(),
                properties: [("timezone".to_owned(), text("Mars/Olympus_Mons"))]
                    .into_iter()
                    .collect(),
                ..base()
            },
            "properties['timezone']",
        ),
        (
            "identify with a numeric timezone",
            Event {
                name: "identify".into(),
                properties: [("timezone".to_owned(), number(2.0))].into_iter().collect(),
                ..base()
            },
            "properties['timezone']",
        ),
    ];
    for (case, event, field) in cases {
        let message = assert_invalid(events.track(event).await, field, case);
        if case.starts_with("timestamp an hour") {
            assert!(message.contains("future"), "{message}");
        }
        if case.starts_with("timestamp 400") {
            assert!(message.contains("past"), "{message}");
        }
    }
    assert_untouched(&server, customer).await;

    // The same event within the limits is accepted: 64 properties, 300 s ahead.
    let fine = Event {
        timestamp: Some(at(NOON + 300_000)),
        properties: entries(64, |_| text("v")),
        ..base()
    };
    assert!(
        !events
            .track(fine)
            .await
            .expect("accepted")
            .into_inner()
            .duplicate
    );
    let old = event(customer, "e-2", "page_view", NOON - 364 * DAY_MS);
    assert!(
        !events
            .track(old)
            .await
            .expect("accepted")
            .into_inner()
            .duplicate
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_outcomes_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let customer = "c-invalid-outcome";
    let mut decisions = server.decisions().await;
    let response = server.decide(decide_request(customer, "home_banner")).await;
    let action_id = response.served[0].action_id.clone();
    let base = || ReportOutcomeRequest {
        customer_id: customer.into(),
        decision_id: response.decision_id.clone(),
        action_id: action_id.clone(),
        outcome: Outcome::Failed.into(),
        ..Default::default()
    };
    let cases: Vec<(&str, ReportOutcomeRequest, &str)> = vec![
        (
            "unspecified outcome",
            ReportOutcomeRequest {
                outcome: Outcome::Unspecified.into(),
                ..base()
            },
            "outcome",
        ),
        (
            "unknown outcome number",
            ReportOutcomeRequest {
                outcome: 99,
                ..base()
            },
            "outcome",
        ),
        (
            "empty decision id",
            ReportOutcomeRequest {
                decision_id: String::new(),
                ..base()
            },
            "decision_id",
        ),
        (
            "empty action id",
            ReportOutcomeRequest {
                action_id: String::new(),
                ..base()
            },
            "action_id",
        ),
        (
            "NaN reward",
            ReportOutcomeRequest {
                reward: Some(f64::NAN),
                ..base()
            },
            "reward",
        ),
        (
            "timestamp in the future",
            ReportOutcomeRequest {
                timestamp: Some(at(NOON + 3_600_000)),
                ..base()
            },
            "timestamp",
        ),
        (
            "257-byte dispatch id",
            ReportOutcomeRequest {
                dispatch_id: "d".repeat(257),
                ..base()
            },
            "dispatch_id",
        ),
    ];
    for (case, request, field) in cases {
        assert_invalid(decisions.report_outcome(request).await, field, case);
    }
    // Nothing was applied: no failure counted, the slot not released…
    let profile = server.profile(customer).await.expect("known");
    assert!(profile.contacts.iter().all(|contact| !contact.released));
    assert!(
        profile
            .engagement
            .iter()
            .all(|channel| channel.failures == 0)
    );
    assert_eq!(server.engine.stats().outcomes, 0);
    // …so the valid outcome is still applied the first time.
    let applied = decisions
        .report_outcome(base())
        .await
        .expect("accepted")
        .into_inner();
    assert!(applied.applied && applied.slot_released);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_consent_and_suppression_changes_are_refused() {
    let server = TestServer::start().await;
    let customer = "c-invalid-consent";
    let mut profiles = server.profiles().await;
    let consent = |channel: &str, state: i32| SetConsentRequest {
        customer_id: customer.into(),
        channel: channel.into(),
        state,
    };
    let message = assert_invalid(
        profiles
            .set_consent(consent("fax", ConsentState::OptedOut.into()))
            .await,
        "channel",
        "unknown channel",
    );
    assert!(message.contains("fax"), "{message}");
    assert_invalid(
        profiles
            .set_consent(consent("", ConsentState::OptedOut.into()))
            .await,
        "channel",
        "empty channel",
    );
    assert_invalid(
        profiles.set_consent(consent("email", 7)).await,
        "state",
        "unknown state",
    );
    let suppress = |channel: &str, reason: SuppressionReason, note: String| SuppressRequest {
        customer_id: customer.into(),
        channel: channel.into(),
        reason: reason.into(),
        note,
    };
    assert_invalid(
        profiles
            .suppress(suppress("fax", SuppressionReason::Bounce, String::new()))
            .await,
        "channel",
        "suppress an unknown channel",
    );
    assert_invalid(
        profiles
            .suppress(suppress(
                "email",
                SuppressionReason::Unspecified,
                String::new(),
            ))
            .await,
        "reason",
        "suppress without a reason",
    );
    assert_invalid(
        profiles
            .suppress(suppress(
                "email",
                SuppressionReason::Manual,
                "n".repeat(5000),
            ))
            .await,
        "note",
        "suppress with a 5000-byte note",
    );
    assert_invalid(
        server.profile(&"c".repeat(257)).await,
        "customer_id",
        "get the profile of a 257-byte id",
    );
    assert_untouched(&server, customer).await;

    // An existing customer's consent is unchanged by a refused call.
    profiles
        .set_consent(consent("sms", ConsentState::OptedIn.into()))
        .await
        .expect("accepted");
    assert_invalid(
        profiles
            .set_consent(consent("fax", ConsentState::OptedOut.into()))
            .await,
        "channel",
        "unknown channel",
    );
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(profile.consent.len(), 1);
    assert_eq!(profile.consent[0].channel, "sms");
    assert_eq!(profile.consent[0].state(), ConsentState::OptedIn);
    assert!(profile.suppressions.is_empty());
    server.stop().await;
}
