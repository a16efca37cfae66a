//! Deadlines: a tiny client deadline never hangs, and the fallback ladder
//! answers when the budget is too short to score — still applying policy.

use nudge_models::time::Span;
use nudge_proto::v1::{ConsentState, FallbackReason, FilterReason, SetConsentRequest};
use nudge_tests::{
    HOUR_MS, NOON, TestServer, decide_request, event, filter_reason, probe_request, reason_count,
    served_ids,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_millisecond_deadline_answers_or_fails_cleanly() {
    let server = TestServer::start().await;
    let mut decisions = server.decisions().await;
    for attempt in 0..20 {
        let mut request = tonic::Request::new(decide_request(
            &format!("c-deadline-{attempt}"),
            "home_banner",
        ));
        request.set_timeout(Duration::from_millis(1));
        let result = tokio::time::timeout(Duration::from_secs(10), decisions.decide(request))
            .await
            .expect("a 1 ms deadline never hangs");
        match result {
            Ok(response) => {
                let response = response.into_inner();
                assert!(
                    response.fallback,
                    "attempt {attempt}: answered without fallback"
                );
                assert_eq!(response.fallback_reason(), FallbackReason::Deadline);
                assert!(response.model_version.is_empty());
            }
            Err(status) => assert!(
                matches!(
                    status.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ),
                "attempt {attempt}: {status:?}"
            ),
        }
    }
    // The server is fine afterwards.
    let response = server
        .decide(decide_request("c-after-deadlines", "home_banner"))
        .await;
    assert!(!response.fallback);
    assert_eq!(response.served.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_shorter_than_the_clients_deadline_never_answers_deadline_exceeded() {
    // A 1 ms budget with no fallback headroom: many calls cannot finish in
    // it. The clients wait 10 s, so the budget running out is the service's
    // overload, answered RESOURCE_EXHAUSTED (not applied) or UNAVAILABLE (may
    // still be stored), never DEADLINE_EXCEEDED.
    let server = TestServer::start_with(|config| {
        config.budget_ms = 1;
        config.fallback_headroom_ms = 0;
    })
    .await;
    let mut decisions = server.decisions().await;
    let mut events = server.events().await;
    let check = |what: &str, status: tonic::Status| match status.code() {
        tonic::Code::ResourceExhausted => {
            assert!(
                status.message().contains("1 ms budget"),
                "{what}: {status:?}"
            )
        }
        tonic::Code::Unavailable => assert!(
            status.message().contains("may still be stored"),
            "{what}: {status:?}"
        ),
        _ => panic!("{what}: {status:?}"),
    };
    for attempt in 0..20 {
        let mut request = tonic::Request::new(decide_request(
            &format!("c-budget-{attempt}"),
            "home_banner",
        ));
        request.set_timeout(Duration::from_secs(10));
        if let Err(status) = decisions.decide(request).await {
            check("decide", status);
        }
        let mut request = tonic::Request::new(event(
            &format!("c-budget-{attempt}"),
            &format!("budget-{attempt}"),
            "login",
            NOON,
        ));
        request.set_timeout(Duration::from_secs(10));
        if let Err(status) = events.track(request).await {
            check("track", status);
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generous_client_deadline_is_scored_normally() {
    let server = TestServer::start().await;
    let mut decisions = server.decisions().await;
    let mut request = tonic::Request::new(decide_request("c-slow-client", "home_banner"));
    request.set_timeout(Duration::from_secs(5));
    let response = decisions
        .decide(request)
        .await
        .expect("answered")
        .into_inner();
    assert!(!response.fallback);
    assert_eq!(response.fallback_reason(), FallbackReason::Unspecified);
    assert_eq!(response.model_version, nudge_models::demo::MODEL_VERSION);
    server.stop().await;
}

/// A service whose headroom exceeds its budget: every decision uses the ladder.
async fn fallback_server() -> TestServer {
    TestServer::start_with(|config| {
        config.budget_ms = 5_000;
        config.fallback_headroom_ms = 10_000;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_ladder_answers_and_is_explained() {
    let server = fallback_server().await;
    let response = server
        .decide(nudge_proto::v1::DecideRequest {
            explain: true,
            ..decide_request("c-ladder", "home_banner")
        })
        .await;
    assert!(response.fallback);
    assert_eq!(response.fallback_reason(), FallbackReason::Deadline);
    assert!(response.model_version.is_empty());
    assert!(
        !response.decision_id.is_empty(),
        "a fallback is still a real decision"
    );
    // The "everyone" segment's first default.
    assert_eq!(served_ids(&response), vec!["welcome_tour"]);
    let served = &response.served[0];
    assert_eq!(served.rank, 1);
    assert!(!served.rationale.is_empty());
    assert!(
        served.rationale[0].text.contains("fallback"),
        "{:?}",
        served.rationale
    );
    assert!(
        served.rationale[0].text.contains("everyone"),
        "{:?}",
        served.rationale
    );
    // Actions off the ladder are explained.
    assert_eq!(
        filter_reason(&response, "connect_first_integration"),
        Some(FilterReason::RankedBelowLimit)
    );
    assert_eq!(server.engine.stats().fallbacks, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_still_respects_caps() {
    let server = fallback_server().await;
    let customer = "c-ladder-caps";
    // The ladder's in-app actions are welcome_tour and template_gallery (1h
    // cooldowns): two in-app serves an hour, then the content guide.
    let mut in_app = 0;
    for hour in 0..3 {
        for _ in 0..2 {
            let response = server.decide(decide_request(customer, "home_banner")).await;
            assert!(response.fallback);
            assert_eq!(response.served.len(), 1);
            if response.served[0].channel == "in_app" {
                in_app += 1;
            }
        }
        if hour < 2 {
            server.clock.advance(Span(HOUR_MS));
        }
    }
    assert_eq!(in_app, 5, "two serves an hour until the in-app cap of 5");
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(nudge_tests::contacts_on(&profile, "in_app"), 5);

    server.clock.advance(Span(HOUR_MS));
    let capped = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert!(capped.fallback);
    assert_eq!(served_ids(&capped), vec!["guide_getting_started"]);
    assert_eq!(
        filter_reason(&capped, "welcome_tour"),
        Some(FilterReason::CapChannel)
    );
    assert_eq!(
        filter_reason(&capped, "template_gallery"),
        Some(FilterReason::CapChannel)
    );
    assert!(reason_count(&capped, FilterReason::CapChannel) >= 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_still_respects_consent() {
    let server = fallback_server().await;
    let customer = "c-ladder-consent";
    let mut profiles = server.profiles().await;
    let consent = |channel: &str, state: ConsentState| SetConsentRequest {
        customer_id: customer.into(),
        channel: channel.into(),
        state: state.into(),
    };

    // Opted out of in-app: the ladder skips welcome_tour and template_gallery.
    profiles
        .set_consent(consent("in_app", ConsentState::OptedOut))
        .await
        .expect("recorded");
    let banner = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert!(banner.fallback);
    assert_eq!(served_ids(&banner), vec!["guide_getting_started"]);
    assert_eq!(
        filter_reason(&banner, "welcome_tour"),
        Some(FilterReason::OptedOut)
    );
    assert_eq!(
        filter_reason(&banner, "template_gallery"),
        Some(FilterReason::OptedOut)
    );

    // The billing segment puts the SMS first, but SMS needs an opt-in.
    assert!(
        !server
            .track(event(customer, "pf-1", "payment_failed", NOON - HOUR_MS))
            .await
    );
    let push = server
        .decide(probe_request(customer, "push_moment", &[]))
        .await;
    assert!(push.fallback);
    assert!(push.served.is_empty(), "{:?}", served_ids(&push));
    assert_eq!(
        filter_reason(&push, "payment_failed_sms"),
        Some(FilterReason::NoConsent)
    );

    profiles
        .set_consent(consent("sms", ConsentState::OptedIn))
        .await
        .expect("recorded");
    let push = server
        .decide(probe_request(customer, "push_moment", &[]))
        .await;
    assert!(push.fallback);
    assert_eq!(served_ids(&push), vec!["payment_failed_sms"]);
    assert!(
        push.served[0].rationale[0].text.contains("billing-issue"),
        "{:?}",
        push.served[0].rationale
    );
    server.stop().await;
}
