//! Admission control: calls beyond `grpc.max_concurrent_requests` are refused
//! at once with RESOURCE_EXHAUSTED (health is never refused), a flood against
//! a short budget and a queueing-delay limit is answered or refused but never
//! left to the client's deadline, connections beyond `grpc.max_connections`
//! are closed, and the server answers normally once the load is gone.

use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_proto::v1::events_client::EventsClient;
use nudge_tests::{NOON, TestServer, decide_request, event};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_limit_are_shed_and_health_still_answers() {
    let server = TestServer::start_with(|config| config.grpc.max_concurrent_requests = 2).await;
    let channel = server.channel().await;
    // Two calls in flight: event streams the client keeps open.
    let mut open_streams = Vec::new();
    for index in 0..2 {
        let (events, receiver) = mpsc::channel(4);
        let mut client = EventsClient::new(channel.clone());
        let call =
            tokio::spawn(async move { client.track_stream(ReceiverStream::new(receiver)).await });
        events
            .send(event("acme-1", &format!("e{index}"), "login", NOON))
            .await
            .expect("the stream is open");
        open_streams.push((events, call));
    }
    server
        .eventually("both streams are being handled", |engine| {
            engine.stats().events == 2
        })
        .await;

    let mut decisions = DecisionsClient::new(channel.clone());
    let shed = decisions
        .decide(decide_request("acme-2", "home_banner"))
        .await
        .expect_err("both slots are taken");
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted, "{shed:?}");
    assert!(shed.message().contains("overloaded"), "{shed:?}");
    assert_eq!(
        server.engine.stats().decisions,
        0,
        "a shed call reaches no handler"
    );
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is never shed")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    for (events, call) in open_streams {
        drop(events);
        let summary = call
            .await
            .expect("the call task")
            .expect("the stream completes")
            .into_inner();
        assert_eq!(summary.accepted, 1);
    }
    let response = decisions
        .decide(decide_request("acme-2", "home_banner"))
        .await
        .expect("a slot is free again")
        .into_inner();
    assert!(!response.served.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_far_above_the_limit_is_answered_or_refused_and_never_hangs() {
    const CALLS: usize = 400;
    let server = TestServer::start_with(|config| config.grpc.max_concurrent_requests = 4).await;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(server.channel().await);
    }
    let mut calls = tokio::task::JoinSet::new();
    for index in 0..CALLS {
        let mut client = DecisionsClient::new(channels[index % channels.len()].clone());
        calls.spawn(async move {
            // A generous deadline: a call queued instead of refused would end
            // in DEADLINE_EXCEEDED, which fails the test below.
            let mut request = tonic::Request::new(decide_request(
                &format!("burst-{}", index % 50),
                "home_banner",
            ));
            request.set_timeout(std::time::Duration::from_secs(20));
            client.decide(request).await
        });
    }
    let (mut answered, mut shed) = (0, 0);
    while let Some(result) = calls.join_next().await {
        match result.expect("the call task did not panic") {
            Ok(response) => {
                let response = response.into_inner();
                assert!(
                    !response.served.is_empty() || response.fallback,
                    "{response:?}"
                );
                answered += 1;
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => shed += 1,
            Err(status) => panic!("neither an answer nor RESOURCE_EXHAUSTED: {status:?}"),
        }
    }
    assert_eq!(answered + shed, CALLS);
    assert!(answered > 0, "some calls were admitted");
    assert_eq!(server.engine.stats().decisions, answered as u64);

    // Afterwards the service answers normally.
    let response = server
        .decide(decide_request("after-burst", "home_banner"))
        .await;
    assert!(!response.served.is_empty());
    assert!(!response.fallback);
    server.stop().await;
}

/// How a call of the flood ended.
#[derive(Debug, Default)]
struct Ends {
    answered: usize,
    fallbacks: usize,
    refused: usize,
    not_stored_yet: usize,
}

impl Ends {
    /// Counts one end; fails the test on anything but an answer, a refusal
    /// (RESOURCE_EXHAUSTED), or the budget running out while the call was
    /// being stored (UNAVAILABLE, "may still be stored").
    fn count(&mut self, result: Result<bool, tonic::Status>) {
        match result {
            Ok(fallback) => {
                self.answered += 1;
                self.fallbacks += usize::from(fallback);
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                assert!(status.message().contains("overloaded"), "{status:?}");
                self.refused += 1;
            }
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && status.message().contains("may still be stored") =>
            {
                self.not_stored_yet += 1;
            }
            Err(status) => panic!("neither answered nor refused: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_answered_or_refused_and_never_waits_for_the_clients_deadline() {
    const CALLS: usize = 1_000;
    // A short service budget and a queueing-delay limit that reacts within
    // milliseconds; the clients wait 10 s. Whatever the machine's speed,
    // every call must end with an answer (perhaps a fallback) or a refusal
    // well before that, never with DEADLINE_EXCEEDED.
    let server = TestServer::start_with(|config| {
        config.budget_ms = 25;
        config.grpc.max_concurrent_requests = 64;
        config.grpc.min_concurrent_requests = 1;
        config.grpc.queue_delay_target_ms = 1;
        config.grpc.queue_delay_interval_ms = 10;
    })
    .await;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(server.channel().await);
    }
    // Calls one at a time first: what a call takes without a queue.
    let mut ends = Ends::default();
    for index in 0..20 {
        let mut request =
            tonic::Request::new(decide_request(&format!("calm-{index}"), "home_banner"));
        request.set_timeout(std::time::Duration::from_secs(10));
        let result = DecisionsClient::new(channels[0].clone())
            .decide(request)
            .await;
        ends.count(result.map(|response| response.into_inner().fallback));
    }

    let mut calls = tokio::task::JoinSet::new();
    for index in 0..CALLS {
        let channel = channels[index % channels.len()].clone();
        calls.spawn(async move {
            let customer = format!("flood-{}", index % 100);
            if index % 5 == 0 {
                let mut request = tonic::Request::new(event(
                    &customer,
                    &format!("flood-event-{index}"),
                    "login",
                    NOON,
                ));
                request.set_timeout(std::time::Duration::from_secs(10));
                EventsClient::new(channel)
                    .track(request)
                    .await
                    .map(|_| false)
            } else {
                let mut request = tonic::Request::new(decide_request(&customer, "home_banner"));
                request.set_timeout(std::time::Duration::from_secs(10));
                DecisionsClient::new(channel)
                    .decide(request)
                    .await
                    .map(|response| response.into_inner().fallback)
            }
        });
    }
    while let Some(result) = calls.join_next().await {
        ends.count(result.expect("the call task did not panic"));
    }
    assert_eq!(
        ends.answered + ends.refused + ends.not_stored_yet,
        CALLS + 20,
        "{ends:?}"
    );

    // After the flood, calls are admitted again (the limit recovers within
    // intervals of 10 ms; a slow machine may still refuse a few).
    let mut decisions = DecisionsClient::new(channels[0].clone());
    let mut admitted = None;
    for attempt in 0..200 {
        let mut request =
            tonic::Request::new(decide_request(&format!("after-{attempt}"), "home_banner"));
        request.set_timeout(std::time::Duration::from_secs(10));
        match decisions.decide(request).await {
            Ok(response) => {
                admitted = Some(response.into_inner());
                break;
            }
            Err(status) => ends.count(Err(status)),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let admitted = admitted.expect("a call is admitted again after the flood");
    assert!(
        !admitted.served.is_empty() || admitted.fallback,
        "{admitted:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_until_one_ends() {
    let server = TestServer::start_with(|config| config.grpc.max_connections = 1).await;
    let first = server.channel().await;
    DecisionsClient::new(first.clone())
        .decide(decide_request("acme-1", "home_banner"))
        .await
        .expect("the first connection is served");

    let second = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("a URI")
        .connect_lazy();
    let refused = DecisionsClient::new(second)
        .decide(decide_request("acme-1", "home_banner"))
        .await
        .expect_err("a second connection is closed on accept");
    assert!(closed_connection(&refused), "{refused:?}");
    assert_eq!(
        server.engine.stats().decisions,
        1,
        "the refused call reached no handler"
    );

    // Once the first connection is gone, a new one is served. The server
    // notices the close asynchronously: retry until it has.
    drop(first);
    let mut answered = None;
    for _ in 0..200 {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
            .expect("a URI")
            .connect_lazy();
        match DecisionsClient::new(channel)
            .decide(decide_request("acme-1", "home_banner"))
            .await
        {
            Ok(response) => {
                answered = Some(response.into_inner());
                break;
            }
            Err(status) => assert!(closed_connection(&status), "{status:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        answered.is_some(),
        "a connection is served once the first closed"
    );
    server.stop().await;
}

/// Whether a call failed because the server closed its connection, not with
/// a status the server sent: depending on when the client noticed, it reports
/// UNAVAILABLE, or UNKNOWN or CANCELLED caused by a transport error.
fn closed_connection(status: &tonic::Status) -> bool {
    let transport = std::error::Error::source(status)
        .is_some_and(|source| source.is::<tonic::transport::Error>());
    status.code() == tonic::Code::Unavailable || transport
}
