//! The demo answers with ranked, explained actions.

use nudge_proto::v1::DecideRequest;
use nudge_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_returns_ranked_explained_actions() {
    let server = TestServer::start().await;
    let mut decisions = server.decisions().await;
    let response = decisions
        .decide(DecideRequest {
            customer_id: "c-smoke".into(),
            placement: "onboarding_sidebar".into(),
            explain: true,
            ..Default::default()
        })
        .await
        .expect("decide succeeds")
        .into_inner();
    assert!(!response.decision_id.is_empty());
    assert!(!response.served.is_empty());
    assert!(
        response
            .served
            .iter()
            .all(|served| !served.rationale.is_empty())
    );
    assert_eq!(response.served[0].rank, 1);
    assert!(!response.fallback);
    assert!(!response.model_version.is_empty());
    server.stop().await;
}
