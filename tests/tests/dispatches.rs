//! Journeys' sends reach delivery services over `Dispatches.Subscribe`, on
//! the real server with its clock: a dispatch not acknowledged in time is
//! handed out again and an acknowledged one never is; `delivered` closes
//! it; a failed channel is tried once more, then the send fails over to the
//! next channel consent allows; a send made while no delivery service
//! listens is handed out as soon as one subscribes; an opt-out withdraws
//! the sends not yet taken; shutdown ends the stream with UNAVAILABLE; bad
//! input is refused and changes nothing.

use nudge_models::time::Span;
use nudge_proto::v1::{
    AckRequest, ConsentState, Dispatch, GetCustomerJourneysRequest, GetCustomerJourneysResponse,
    Outcome, ReportOutcomeRequest, SetConsentRequest, SubscribeRequest,
};
use nudge_tests::{MINUTE_MS, NOON, TestServer, event};
use std::time::Duration;
use tonic::Streaming;

/// The acknowledgement timeout of these tests (the default).
const ACK_TIMEOUT_MS: i64 = 30_000;

/// The demo catalog with a payment-recovery journey: the notice by email,
/// failing over to SMS (opt-in) and then the in-app banner, then three
/// days' grace.
fn catalog() -> String {
    format!(
        r#"{}
[[journeys]]
id = "dunning"
name = "Payment recovery"
trigger = {{ event = "payment_failed" }}

[[journeys.steps]]
id = "notice"
send = {{ action = "payment_failed_email", failover = ["payment_failed_sms", "payment_failed_banner"] }}

[[journeys.steps]]
id = "grace"
wait = "3d"
"#,
        nudge_tests::demo_without_journeys()
    )
}

async fn start() -> TestServer {
    TestServer::start_on(&catalog(), |_| {}).await
}

/// A payment of `customer_id` failed (starting the journey).
async fn payment_failed(server: &TestServer, customer_id: &str, at: i64) {
    let event_id = format!("{customer_id}-{at}");
    server
        .track(event(customer_id, &event_id, "payment_failed", at))
        .await;
}

async fn subscribe(server: &TestServer, channels: &[&str]) -> Streaming<Dispatch> {
    server
        .dispatches()
        .await
        .subscribe(SubscribeRequest {
            channels: channels.iter().map(|&channel| channel.to_owned()).collect(),
        })
        .await
        .expect("subscribed")
        .into_inner()
}

/// The next dispatch on `stream` (waits up to ten seconds).
async fn next(stream: &mut Streaming<Dispatch>) -> Dispatch {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a dispatch in time")
        .expect("the stream is healthy")
        .expect("the stream goes on")
}

async fn ack(server: &TestServer, dispatch: &Dispatch) -> String {
    server
        .dispatches()
        .await
        .ack(AckRequest {
            customer_id: dispatch.customer_id.clone(),
            dispatch_id: dispatch.dispatch_id.clone(),
        })
        .await
        .expect("an answer")
        .into_inner()
        .state
}

async fn report(server: &TestServer, dispatch: &Dispatch, outcome: Outcome) -> bool {
    server
        .decisions()
        .await
        .report_outcome(ReportOutcomeRequest {
            customer_id: dispatch.customer_id.clone(),
            decision_id: dispatch.decision_id.clone(),
            action_id: dispatch.action_id.clone(),
            outcome: outcome.into(),
            dispatch_id: dispatch.dispatch_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the outcome is accepted")
        .into_inner()
        .applied
}

async fn journeys_of(server: &TestServer, customer_id: &str) -> GetCustomerJourneysResponse {
    server
        .admin()
        .await
        .get_customer_journeys(GetCustomerJourneysRequest {
            customer_id: customer_id.to_owned(),
        })
        .await
        .expect("the customer's journeys")
        .into_inner()
}

/// What the customer's run's history says happened, in order.
async fn history(server: &TestServer, customer_id: &str) -> Vec<String> {
    journeys_of(server, customer_id).await.runs[0]
        .history
        .iter()
        .map(|entry| entry.what.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_dispatch_is_handed_out_again_and_an_acknowledged_one_never() {
    let server = start().await;
    let mut email = subscribe(&server, &["email"]).await;
    payment_failed(&server, "ann", NOON).await;
    let first = next(&mut email).await;
    assert_eq!(first.customer_id, "ann");
    assert_eq!(first.journey_id, "dunning");
    assert_eq!(first.step_id, "notice");
    assert_eq!(first.action_id, "payment_failed_email");
    assert_eq!(first.channel, "email");
    assert_eq!((first.attempt, first.delivery), (1, 1));
    assert_eq!(first.dispatch_id, first.decision_id);
    assert_eq!(
        first.payload.get("cta").map(String::as_str),
        Some("Update payment method")
    );

    // Not acknowledged within the timeout: handed out again.
    server.clock.advance(Span(ACK_TIMEOUT_MS));
    let again = next(&mut email).await;
    assert_eq!(again.dispatch_id, first.dispatch_id);
    assert_eq!(again.delivery, 2);

    // Acknowledged: never again, however long it waits for its outcome.
    assert_eq!(ack(&server, &again).await, "taken");
    assert_eq!(ack(&server, &again).await, "already");
    server.clock.advance(Span(60 * MINUTE_MS));
    payment_failed(&server, "bob", NOON + 61 * MINUTE_MS).await;
    let marker = next(&mut email).await;
    assert_eq!(marker.customer_id, "bob", "ann's was not handed out again");
    let outbox = journeys_of(&server, "ann").await.outbox;
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].acknowledged);
    assert_eq!(outbox[0].handed_out, 2);

    // Delivered: it leaves the outbox, and the run's history says so.
    assert!(report(&server, &again, Outcome::Delivered).await);
    assert!(journeys_of(&server, "ann").await.outbox.is_empty());
    assert_eq!(
        history(&server, "ann").await.last().map(String::as_str),
        Some("delivered")
    );
    assert_eq!(ack(&server, &again).await, "unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_channel_is_tried_once_more_then_the_send_fails_over_as_consent_allows() {
    let server = start().await;
    let mut all = subscribe(&server, &[]).await;
    // The failover chooses among the SMS and the banner as a decision does,
    // consent and caps first. Cy never opted in to SMS: hers is the banner.
    // Dee opted in to SMS and out of in-app messages: hers goes by SMS.
    for (channel, state) in [
        ("sms", ConsentState::OptedIn),
        ("in_app", ConsentState::OptedOut),
    ] {
        server
            .profiles()
            .await
            .set_consent(SetConsentRequest {
                customer_id: "dee".to_owned(),
                channel: channel.to_owned(),
                state: state.into(),
            })
            .await
            .expect("consent recorded");
    }
    for (customer_id, expected) in [("cy", "in_app"), ("dee", "sms")] {
        payment_failed(&server, customer_id, NOON).await;
        let email = next(&mut all).await;
        assert_eq!(
            (email.customer_id.as_str(), email.channel.as_str()),
            (customer_id, "email")
        );
        assert_eq!(ack(&server, &email).await, "taken");
        // First failure: the same channel once more, as a new attempt.
        assert!(report(&server, &email, Outcome::Failed).await);
        let retry = next(&mut all).await;
        assert_eq!(retry.channel, "email");
        assert_eq!(retry.attempt, 2);
        assert_eq!(retry.decision_id, email.decision_id);
        assert_eq!(retry.dispatch_id, format!("{}.2", email.decision_id));
        // The first attempt's failure reported again changes nothing.
        assert!(!report(&server, &email, Outcome::Failed).await);
        // Second failure: the next channel consent allows.
        assert!(report(&server, &retry, Outcome::Failed).await);
        let failover = next(&mut all).await;
        assert_eq!(failover.customer_id, customer_id);
        assert_eq!(failover.channel, expected, "{customer_id}");
        assert_eq!(failover.failed_channels, ["email"]);
        assert_ne!(failover.decision_id, email.decision_id);
        assert_eq!(
            history(&server, customer_id).await[..],
            [
                "started",
                "sent",
                "moved",
                "delivery_failed",
                "delivery_failed",
                "failed_over"
            ],
        );
    }
    // The failures count once per channel given up, in the analytics.
    let listing = server
        .admin()
        .await
        .list_journeys(nudge_proto::v1::ListJourneysRequest {})
        .await
        .expect("a listing")
        .into_inner();
    let dunning = &listing.journeys[0];
    assert_eq!(dunning.failed_over, 2);
    let email_failures: u64 = dunning
        .failed_deliveries
        .iter()
        .filter(|count| count.name == "email")
        .map(|count| count.count)
        .sum();
    assert_eq!(email_failures, 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_made_while_no_delivery_service_listens_is_handed_out_when_one_subscribes() {
    let server = start().await;
    payment_failed(&server, "eve", NOON).await;
    // Held: no delivery service takes email.
    let mut held = false;
    for _ in 0..2_000 {
        let outbox = journeys_of(&server, "eve").await.outbox;
        if outbox.first().is_some_and(|entry| entry.held) {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(held, "the send is held");
    // A worker for push only changes nothing; one for email gets it at
    // once, without the clock moving.
    let _push = subscribe(&server, &["push"]).await;
    let mut email = subscribe(&server, &["email"]).await;
    let dispatch = next(&mut email).await;
    assert_eq!(dispatch.customer_id, "eve");
    assert_eq!(dispatch.delivery, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_withdraws_the_sends_not_yet_taken() {
    let server = start().await;
    let mut email = subscribe(&server, &["email"]).await;
    payment_failed(&server, "fay", NOON).await;
    let dispatch = next(&mut email).await;
    server
        .profiles()
        .await
        .set_consent(SetConsentRequest {
            customer_id: "fay".to_owned(),
            channel: "email".to_owned(),
            state: ConsentState::OptedOut.into(),
        })
        .await
        .expect("consent recorded");
    let journeys = journeys_of(&server, "fay").await;
    assert!(journeys.outbox.is_empty());
    let codes = history(&server, "fay").await;
    assert_eq!(
        codes[codes.len() - 2..],
        ["ended".to_owned(), "withdrawn".to_owned()]
    );
    // The worker that got it learns it is withdrawn when it acknowledges.
    assert_eq!(ack(&server, &dispatch).await, "unknown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_and_acknowledgements_are_refused_and_change_nothing() {
    let server = start().await;
    let mut client = server.dispatches().await;
    let status = client
        .subscribe(SubscribeRequest {
            channels: vec!["email".to_owned(), "pigeon".to_owned()],
        })
        .await
        .expect_err("not a channel");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("'pigeon'"),
        "{}",
        status.message()
    );
    let status = client
        .subscribe(SubscribeRequest {
            channels: vec![String::new()],
        })
        .await
        .expect_err("an empty channel");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(server.engine.shared().dispatches.subscribers(), 0);
    for (customer_id, dispatch_id) in [("", "d1"), ("gil", ""), ("gil", &"x".repeat(300))] {
        let status = client
            .ack(AckRequest {
                customer_id: customer_id.to_owned(),
                dispatch_id: dispatch_id.to_owned(),
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
    // An outcome naming a dispatch of a decision nudge never made.
    let status = server
        .decisions()
        .await
        .report_outcome(ReportOutcomeRequest {
            customer_id: "gil".to_owned(),
            decision_id: "nope".to_owned(),
            action_id: "payment_failed_email".to_owned(),
            outcome: Outcome::Delivered.into(),
            dispatch_id: "nope.2".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("no such decision");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(
        server
            .engine
            .profile("gil")
            .await
            .map_or(true, |state| state.is_empty()),
        "nothing stored for gil"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_subscriptions_with_unavailable() {
    let mut server = start().await;
    let mut stream = subscribe(&server, &[]).await;
    server.begin_shutdown();
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends in time");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("shutting down"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_keeps_the_budget_ledger_exact() {
    // The notice and the banner each spend a global budget.
    let text = catalog()
        .replace(
            "id = \"payment_failed_email\"\n",
            "id = \"payment_failed_email\"\nbudget = 100\n",
        )
        .replace(
            "id = \"payment_failed_banner\"\n",
            "id = \"payment_failed_banner\"\nbudget = 100\n",
        );
    let server = TestServer::start_on(&text, |_| {}).await;
    let mut all = subscribe(&server, &[]).await;
    payment_failed(&server, "hal", NOON).await;
    let email = next(&mut all).await;
    assert!(report(&server, &email, Outcome::Failed).await);
    let retry = next(&mut all).await;
    // The channel given up: the email's unit comes back, the banner that
    // fails over takes one, both in the same durable write.
    assert!(report(&server, &retry, Outcome::Failed).await);
    let banner = next(&mut all).await;
    assert_eq!(banner.action_id, "payment_failed_banner");
    let shared = server.engine.shared();
    assert_eq!(shared.budgets.used("payment_failed_email"), 0);
    assert_eq!(shared.budgets.used("payment_failed_banner"), 1);
    let mut ledger = shared.stores.budgets.load().expect("the budget ledger");
    ledger.sort();
    assert_eq!(
        ledger
            .iter()
            .filter(|(_, used)| *used > 0)
            .collect::<Vec<_>>(),
        [&("payment_failed_banner".to_owned(), 1)]
    );
    server.stop().await;
}
