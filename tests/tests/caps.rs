//! Frequency caps are exact under concurrency: every call of one customer is
//! serialized through its actor.

use nudge_proto::v1::{DecideResponse, FilterReason};
use nudge_tests::{TestServer, contacts_on, decide_request, reason_count, served_ids};

const CALLS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_serve_exactly_the_in_app_cap() {
    // The harness's generous budget matters here: 50 concurrent calls on a
    // loaded debug build must not time out (a call that timed out after its
    // actor recorded the serve would hide a served action from the count).
    let server = TestServer::start().await;
    let customer = "c-concurrent";
    let shared_client = server.decisions().await;
    // Every task waits at the barrier, so the calls leave together.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CALLS));
    let mut tasks = Vec::with_capacity(CALLS);
    for call in 0..CALLS {
        // Half the calls share one connection, half bring their own.
        let mut client = if call % 2 == 0 {
            shared_client.clone()
        } else {
            server.decisions().await
        };
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            client
                .decide(decide_request(customer, "home_banner"))
                .await
                .map(tonic::Response::into_inner)
        }));
    }
    let mut responses: Vec<DecideResponse> = Vec::with_capacity(CALLS);
    for task in tasks {
        responses.push(
            task.await
                .expect("the task does not panic")
                .expect("every call is answered"),
        );
    }

    let in_app = |response: &DecideResponse| {
        response
            .served
            .iter()
            .filter(|action| action.channel == "in_app")
            .count()
    };
    let total_in_app: usize = responses.iter().map(in_app).sum();
    assert_eq!(total_in_app, 5, "the in-app cap is 5 per 7 days");
    let mut in_app_actions: Vec<&str> = responses
        .iter()
        .flat_map(|response| response.served.iter())
        .filter(|action| action.channel == "in_app")
        .map(|action| action.action_id.as_str())
        .collect();
    in_app_actions.sort_unstable();
    in_app_actions.dedup();
    assert_eq!(
        in_app_actions.len(),
        5,
        "a 1h cooldown: five different actions"
    );

    for response in responses.iter().filter(|response| in_app(response) == 0) {
        assert!(
            reason_count(response, FilterReason::CapChannel) > 0
                || reason_count(response, FilterReason::CapTotal) > 0,
            "served {:?}, counts {:?}",
            served_ids(response),
            response.filtered_counts
        );
    }
    // After the in-app cap, content fills the banner until the total cap of 8.
    let served_total: usize = responses.iter().map(|response| response.served.len()).sum();
    assert_eq!(served_total, 8, "the total cap is 8 per 7 days");
    let decision_ids: std::collections::BTreeSet<&str> = responses
        .iter()
        .map(|response| response.decision_id.as_str())
        .collect();
    assert_eq!(decision_ids.len(), CALLS, "every decision has its own id");

    let profile = server
        .profile(customer)
        .await
        .expect("the customer is known");
    assert_eq!(contacts_on(&profile, "in_app"), 5);
    assert_eq!(profile.contacts.len(), 8);
    let engagement = profile
        .engagement
        .iter()
        .find(|channel| channel.channel == "in_app")
        .expect("in-app engagement");
    assert_eq!(engagement.sends, 5);
    server.stop().await;
}
