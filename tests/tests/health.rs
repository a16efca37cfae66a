//! Health checking and server reflection.

use nudge_models::time::Timestamp;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_proto::v1::events_client::EventsClient;
use nudge_service::clock::ManualClock;
use nudge_service::config::Config;
use nudge_service::grpc::Readiness;
use nudge_tests::{NOON, TestServer, decide_request, event};
use std::sync::Arc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    assert_eq!(statuses(&mut health).await, [ServingStatus::Serving; 5]);
    let unknown = health
        .check(HealthCheckRequest {
            service: "nudge.v1.Nope".into(),
        })
        .await
        .expect_err("an unknown service is not found");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service() {
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .next()
        .await
        .expect("one response")
        .expect("not an error");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<&str> = list
        .service
        .iter()
        .map(|service| service.name.as_str())
        .collect();
    for expected in [
        "nudge.v1.Decisions",
        "nudge.v1.Events",
        "nudge.v1.Profiles",
        "nudge.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // The descriptors behind a service can be fetched too.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "nudge.v1.Decisions".into(),
        )),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .next()
        .await
        .expect("one response")
        .expect("not an error");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("not a file descriptor: {response:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.stop().await;
}

/// The status of every health name: the server and each `nudge.v1` service.
async fn statuses(health: &mut HealthClient<Channel>) -> Vec<ServingStatus> {
    let mut statuses = Vec::new();
    for service in [
        "",
        "nudge.v1.Decisions",
        "nudge.v1.Events",
        "nudge.v1.Profiles",
        "nudge.v1.Admin",
    ] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("{service:?}: {status:?}"))
            .into_inner();
        statuses.push(response.status());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_until_the_engine_has_started() {
    // What `nudge serve` does: bind, answer health, then start the engine.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("a local address");
    let mut config = Config {
        budget_ms: 10_000,
        ..Config::default()
    };
    config.storage.in_memory = true;
    let readiness = Readiness::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let (config, readiness) = (config.clone(), readiness.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let browsers = nudge_service::web::BrowserAccess::from_config(
                &config,
                Arc::new(nudge_service::clock::SystemClock),
            )
            .expect("the default web settings");
            nudge_service::grpc::serve_until_ready(listener, &config, browsers, readiness, shutdown)
                .await
        })
    };
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    assert_eq!(statuses(&mut health).await, [ServingStatus::NotServing; 5]);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch answers")
        .into_inner();
    let first = watch.next().await.expect("a status").expect("not an error");
    assert_eq!(first.status(), ServingStatus::NotServing);
    let mut decisions = DecisionsClient::new(channel.clone());
    let starting = decisions
        .decide(decide_request("acme-1", "home_banner"))
        .await
        .expect_err("no engine yet");
    assert_eq!(starting.code(), tonic::Code::Unavailable, "{starting:?}");
    assert!(starting.message().contains("starting"), "{starting:?}");

    let store = nudge_service::open_store(&config).expect("an in-memory store");
    let engine = nudge_service::start(
        config,
        store,
        Arc::new(ManualClock::new(Timestamp::from_millis(NOON))),
    )
    .expect("the demo starts");
    readiness.ready(Arc::new(engine)).await;
    let next = watch.next().await.expect("a status").expect("not an error");
    assert_eq!(next.status(), ServingStatus::Serving, "the watcher is told");
    assert_eq!(statuses(&mut health).await, [ServingStatus::Serving; 5]);
    let response = decisions
        .decide(decide_request("acme-1", "home_banner"))
        .await
        .expect("the engine answers")
        .into_inner();
    assert!(!response.served.is_empty());
    drop(watch);
    let _ = stop.send(());
    server
        .await
        .expect("the server task")
        .expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_at_once_when_shutdown_begins_and_calls_still_drain() {
    let mut server = TestServer::start().await;
    let channel = server.channel().await;
    // A call in flight: an event stream the client keeps open.
    let (events, receiver) = tokio::sync::mpsc::channel(4);
    let mut client = EventsClient::new(channel.clone());
    let in_flight =
        tokio::spawn(async move { client.track_stream(ReceiverStream::new(receiver)).await });
    events
        .send(event("acme-1", "e1", "login", NOON))
        .await
        .expect("the stream is open");
    server
        .eventually("the first event is applied", |engine| {
            engine.stats().events == 1
        })
        .await;
    let mut health = HealthClient::new(channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch answers")
        .into_inner();
    let first = watch.next().await.expect("a status").expect("not an error");
    assert_eq!(first.status(), ServingStatus::Serving);

    server.begin_shutdown();
    let next = watch.next().await.expect("a status").expect("not an error");
    assert_eq!(next.status(), ServingStatus::NotServing);
    drop(watch);

    // The call in flight still completes.
    events
        .send(event("acme-1", "e2", "login", NOON))
        .await
        .expect("the stream is open");
    drop(events);
    let summary = in_flight
        .await
        .expect("the call task")
        .expect("the stream completes while draining")
        .into_inner();
    assert_eq!(summary.accepted, 2, "{summary:?}");
    server.stop().await;
}
