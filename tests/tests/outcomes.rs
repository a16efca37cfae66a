//! ReportOutcome: failed deliveries give the cap slot back, repeats are not
//! applied twice, dismissals start the dismiss cooldown.

use nudge_models::time::Span;
use nudge_proto::v1::{DecideRequest, FilterReason, Outcome, ReportOutcomeRequest};
use nudge_tests::{
    HOUR_MS, TestServer, contacts_on, decide_request, filter_reason, filtered, probe_request,
    reason_count, served_ids,
};

fn outcome(
    customer: &str,
    decision_id: &str,
    action_id: &str,
    kind: Outcome,
) -> ReportOutcomeRequest {
    ReportOutcomeRequest {
        customer_id: customer.into(),
        decision_id: decision_id.into(),
        action_id: action_id.into(),
        outcome: kind.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_gives_the_cap_slot_back() {
    let server = TestServer::start().await;
    let customer = "c-failed";
    let mut decisions = server.decisions().await;
    let mut serves = Vec::new();
    for _ in 0..5 {
        let response = server.decide(decide_request(customer, "home_banner")).await;
        assert_eq!(response.served[0].channel, "in_app");
        serves.push((
            response.decision_id.clone(),
            response.served[0].action_id.clone(),
        ));
    }
    let capped = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_ne!(
        capped.served[0].channel, "in_app",
        "the in-app cap is reached"
    );
    assert!(reason_count(&capped, FilterReason::CapChannel) > 0);

    let (decision_id, action_id) = &serves[0];
    let released = decisions
        .report_outcome(outcome(customer, decision_id, action_id, Outcome::Failed))
        .await
        .expect("outcome accepted")
        .into_inner();
    assert!(released.applied);
    assert!(released.slot_released);

    // The same outcome again: acknowledged, not applied, no second slot.
    let repeated = decisions
        .report_outcome(outcome(customer, decision_id, action_id, Outcome::Failed))
        .await
        .expect("outcome accepted")
        .into_inner();
    assert!(!repeated.applied);
    assert!(!repeated.slot_released);

    let profile = server.profile(customer).await.expect("known");
    assert_eq!(contacts_on(&profile, "in_app"), 4);
    let contact = profile
        .contacts
        .iter()
        .find(|contact| &contact.decision_id == decision_id)
        .expect("the failed contact is kept");
    assert!(contact.released);
    let engagement = profile
        .engagement
        .iter()
        .find(|channel| channel.channel == "in_app")
        .expect("in-app engagement");
    assert_eq!(engagement.failures, 1);

    // Exactly one more in-app serve is possible.
    let extra = server.decide(decide_request(customer, "home_banner")).await;
    assert_eq!(
        extra.served[0].channel,
        "in_app",
        "{:?}",
        served_ids(&extra)
    );
    let capped_again = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_ne!(capped_again.served[0].channel, "in_app");
    assert!(reason_count(&capped_again, FilterReason::CapChannel) > 0);
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(contacts_on(&profile, "in_app"), 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_applied_once_and_counted() {
    let server = TestServer::start().await;
    let customer = "c-outcomes";
    let mut decisions = server.decisions().await;
    let response = server.decide(decide_request(customer, "home_banner")).await;
    let action_id = response.served[0].action_id.clone();
    for kind in [Outcome::Impression, Outcome::Click, Outcome::Conversion] {
        let first = decisions
            .report_outcome(ReportOutcomeRequest {
                reward: Some(1.5),
                ..outcome(customer, &response.decision_id, &action_id, kind)
            })
            .await
            .expect("accepted")
            .into_inner();
        assert!(first.applied, "{kind:?}");
        assert!(!first.slot_released, "{kind:?}");
        let second = decisions
            .report_outcome(outcome(customer, &response.decision_id, &action_id, kind))
            .await
            .expect("accepted")
            .into_inner();
        assert!(!second.applied, "{kind:?} again");
    }
    let profile = server.profile(customer).await.expect("known");
    let engagement = profile
        .engagement
        .iter()
        .find(|channel| channel.channel == "in_app")
        .expect("in-app engagement");
    assert_eq!(
        (
            engagement.sends,
            engagement.impressions,
            engagement.clicks,
            engagement.conversions
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(server.engine.stats().outcomes, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_decisions_and_actions_are_not_found() {
    let server = TestServer::start().await;
    let customer = "c-unknown-decision";
    let mut decisions = server.decisions().await;
    let response = server.decide(decide_request(customer, "home_banner")).await;
    let action_id = response.served[0].action_id.clone();

    let status = decisions
        .report_outcome(outcome(
            customer,
            "no-such-decision",
            &action_id,
            Outcome::Click,
        ))
        .await
        .expect_err("an unknown decision is refused");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // A real decision, but an action it did not serve.
    let status = decisions
        .report_outcome(outcome(
            customer,
            &response.decision_id,
            "template_gallery_x",
            Outcome::Click,
        ))
        .await
        .expect_err("an action not served is refused");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // Another customer's decision.
    let status = decisions
        .report_outcome(outcome(
            "c-someone-else",
            &response.decision_id,
            &action_id,
            Outcome::Click,
        ))
        .await
        .expect_err("another customer's decision is refused");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(server.engine.stats().outcomes, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dismissal_starts_the_dismiss_cooldown() {
    let server = TestServer::start().await;
    let customer = "c-dismiss";
    let mut decisions = server.decisions().await;
    // welcome_tour: cooldown 1h, dismiss_cooldown 3d; template_gallery: 1h.
    let pair = ["welcome_tour", "template_gallery"];
    let response = server
        .decide(DecideRequest {
            candidate_action_ids: pair.iter().map(|id| (*id).to_owned()).collect(),
            limit: 2,
            ..decide_request(customer, "home_banner")
        })
        .await;
    let mut ids = served_ids(&response);
    ids.sort_unstable();
    assert_eq!(ids, vec!["template_gallery", "welcome_tour"]);

    // Right after serving, both are in their ordinary cooldown.
    let now = server
        .decide(probe_request(customer, "home_banner", &pair))
        .await;
    assert_eq!(
        filter_reason(&now, "welcome_tour"),
        Some(FilterReason::Cooldown)
    );
    assert_eq!(
        filter_reason(&now, "template_gallery"),
        Some(FilterReason::Cooldown)
    );

    let dismissed = decisions
        .report_outcome(outcome(
            customer,
            &response.decision_id,
            "welcome_tour",
            Outcome::Dismiss,
        ))
        .await
        .expect("accepted")
        .into_inner();
    assert!(dismissed.applied);
    assert!(!dismissed.slot_released, "a dismissal keeps the slot");

    // Two hours later the ordinary cooldown is over; the dismiss cooldown is not.
    server.clock.advance(Span(2 * HOUR_MS));
    let later = server
        .decide(probe_request(customer, "home_banner", &pair))
        .await;
    assert_eq!(served_ids(&later), vec!["template_gallery"]);
    let blocked = filtered(&later, "welcome_tour").expect("explained");
    assert_eq!(blocked.reason(), FilterReason::Cooldown);
    assert!(blocked.message.contains("dismiss"), "{}", blocked.message);

    // After three days it may be served again.
    server.clock.advance(Span::days(3));
    let after = server
        .decide(probe_request(customer, "home_banner", &["welcome_tour"]))
        .await;
    assert_eq!(served_ids(&after), vec!["welcome_tour"]);

    let profile = server.profile(customer).await.expect("known");
    assert!(
        profile
            .contacts
            .iter()
            .any(|contact| contact.action_id == "welcome_tour" && contact.dismissed)
    );
    server.stop().await;
}
