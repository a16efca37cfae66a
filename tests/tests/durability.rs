//! Durable state through the real server: forget erases a customer from the
//! store itself, a failing disk refuses writes with a clear error while
//! reads keep working and health says so (and the service recovers by
//! itself), a customer whose
//! state cannot be loaded gets the storage error and nothing applied, and a
//! passivated customer comes back exactly as it was.

use nudge_models::customer::CustomerState;
use nudge_models::time::{Span, Timestamp};
use nudge_proto::v1::{
    ConsentState, ExportDecisionsRequest, ForgetRequest, GetProfileRequest, Outcome,
    ReportOutcomeRequest, SetConsentRequest,
};
use nudge_service::clock::Clock;
use nudge_service::store::{
    Commit, FaultSwitch, RedbStore, StateStore, StoreError, StoreFuture, StoreOptions, Stores,
};
use nudge_tests::{
    HOUR_MS, MINUTE_MS, NOON, TempDir, TestServer, decide_request, event, probe_request,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A customer with events, a served decision and its outcomes.
async fn make_history(server: &TestServer, customer: &str) -> String {
    for (index, minutes) in [90, 30, 5].into_iter().enumerate() {
        server
            .track(event(
                customer,
                &format!("{customer}-e{index}"),
                "pricing_page_view",
                NOON - minutes * MINUTE_MS,
            ))
            .await;
    }
    let decision = server.decide(decide_request(customer, "home_banner")).await;
    let action = decision.served[0].action_id.clone();
    for outcome in [Outcome::Impression, Outcome::Click] {
        server
            .decisions()
            .await
            .report_outcome(ReportOutcomeRequest {
                customer_id: customer.into(),
                decision_id: decision.decision_id.clone(),
                action_id: action.clone(),
                outcome: outcome.into(),
                ..Default::default()
            })
            .await
            .expect("outcome recorded");
    }
    decision.decision_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_erases_every_trace_of_the_customer_from_the_store() {
    let dir = TempDir::new("forget");
    let store = Arc::new(RedbStore::open(dir.path(), StoreOptions::default()).expect("open"));
    let server = TestServer::start_with_store(store.clone(), |_| {}).await;
    let alice_decision = make_history(&server, "alice").await;
    make_history(&server, "bob").await;
    assert!(!store.traces_of("alice").expect("readable").is_empty());

    let mut profiles = server.profiles().await;
    let erased = profiles
        .forget(ForgetRequest {
            customer_id: "alice".into(),
        })
        .await
        .expect("forgotten")
        .into_inner();
    assert!(erased.state_erased);
    assert_eq!(erased.decisions_erased, 1);
    assert_eq!(erased.outcomes_erased, 2);

    // Read the store itself: nothing about alice in any table.
    assert_eq!(
        store.traces_of("alice").expect("readable"),
        Vec::<String>::new()
    );
    assert_eq!(store.load_now("alice").expect("readable"), None);
    let status = profiles
        .get_profile(GetProfileRequest {
            customer_id: "alice".into(),
        })
        .await
        .expect_err("alice is unknown now");
    assert_eq!(status.code(), Code::NotFound);
    // Her old decision is unknown too: its outcome has nothing to attach to.
    let status = server
        .decisions()
        .await
        .report_outcome(ReportOutcomeRequest {
            customer_id: "alice".into(),
            decision_id: alice_decision,
            action_id: "welcome_tour".into(),
            outcome: Outcome::Conversion.into(),
            ..Default::default()
        })
        .await
        .expect_err("the decision was erased");
    assert_eq!(status.code(), Code::NotFound);
    // Bob is untouched.
    assert!(
        store
            .traces_of("bob")
            .expect("readable")
            .iter()
            .any(|trace| trace.starts_with("decisions")),
    );
    assert!(server.profile("bob").await.is_ok());

    // Forgetting again, or someone never seen, erases nothing and succeeds.
    let again = profiles
        .forget(ForgetRequest {
            customer_id: "alice".into(),
        })
        .await
        .expect("idempotent")
        .into_inner();
    assert!(!again.state_erased && again.decisions_erased == 0 && again.outcomes_erased == 0);
    let status = profiles
        .forget(ForgetRequest {
            customer_id: String::new(),
        })
        .await
        .expect_err("an empty id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("customer_id"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_refuses_writes_keeps_reads_and_recovers_without_restart() {
    let dir = TempDir::new("faults");
    let switch = FaultSwitch::default();
    let store = Arc::new(
        RedbStore::open_with_faults(dir.path(), StoreOptions::default(), switch.clone())
            .expect("open"),
    );
    // No retention: its first pass (a compaction, which is a write) runs
    // just after start-up, and must not meet the full disk before the
    // writes this test makes.
    let server = TestServer::start_with_store(store, |config| {
        config.storage.decision_retention_days = 0;
    })
    .await;
    server
        .track(event("carol", "c-1", "login", NOON - HOUR_MS))
        .await;
    let before = server.profile("carol").await.expect("known");

    switch.set(true);
    let mut events = server.events().await;
    // The first write finds the disk full when it commits; the ones after are
    // refused before they change anything.
    for id in ["c-2", "c-3"] {
        let status = events
            .track(event("carol", id, "login", NOON - MINUTE_MS))
            .await
            .expect_err("the disk is full");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("storage is full"), "{status:?}");
    }
    let status = server
        .decisions()
        .await
        .decide(decide_request("carol", "home_banner"))
        .await
        .expect_err("a decision is a write");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = server
        .profiles()
        .await
        .set_consent(SetConsentRequest {
            customer_id: "carol".into(),
            channel: "email".into(),
            state: ConsentState::OptedOut.into(),
        })
        .await
        .expect_err("consent is a write");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Reads keep working, and the refused calls changed nothing.
    let during = server.profile("carol").await.expect("reads work");
    assert_eq!(during.consent, before.consent);
    assert_eq!(during.contacts, before.contacts);
    let probe = server
        .decide(probe_request("carol", "home_banner", &[]))
        .await;
    assert!(!probe.served.is_empty(), "dry runs need no write");
    // Health says so on the next storage probe: NOT_SERVING for the whole
    // server and the services that write, SERVING for reads.
    let refusing = [
        ServingStatus::NotServing,
        ServingStatus::NotServing,
        ServingStatus::NotServing,
        ServingStatus::Serving,
    ];
    health_becomes(&server, refusing).await;

    switch.set(false);
    let mut recovered = false;
    for _ in 0..400 {
        match events
            .track(event("carol", "c-4", "login", NOON - MINUTE_MS))
            .await
        {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                // The storage probe runs on the service clock.
                server.clock.advance(Span(250));
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        }
    }
    assert!(recovered, "writes are accepted again once space is back");
    let decision = server.decide(decide_request("carol", "home_banner")).await;
    assert!(!decision.decision_id.is_empty());
    health_becomes(&server, [ServingStatus::Serving; 4]).await;
}

/// Advances the service clock by storage probes until health of the whole
/// server, Decisions, Events and Profiles is `expected`.
async fn health_becomes(server: &TestServer, expected: [ServingStatus; 4]) {
    let mut health = HealthClient::new(server.channel().await);
    let mut seen = Vec::new();
    for _ in 0..400 {
        seen.clear();
        for service in [
            "",
            "nudge.v1.Decisions",
            "nudge.v1.Events",
            "nudge.v1.Profiles",
        ] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health answers")
                .into_inner()
                .status();
            seen.push(status);
        }
        if seen == expected {
            return;
        }
        server.clock.advance(Span(250));
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("health stayed {seen:?}, expected {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_customer_comes_back_exactly_as_it_was() {
    let dir = TempDir::new("passivation");
    let store = Arc::new(RedbStore::open(dir.path(), StoreOptions::default()).expect("open"));
    let server =
        TestServer::start_with_store(store, |config| config.actors.idle_timeout_secs = 60).await;
    let customer = "dave";
    make_history(&server, customer).await;
    // A dismissed action: its cooldown must survive passivation.
    let decision = server.decide(decide_request(customer, "home_banner")).await;
    server
        .decisions()
        .await
        .report_outcome(ReportOutcomeRequest {
            customer_id: customer.into(),
            decision_id: decision.decision_id.clone(),
            action_id: decision.served[0].action_id.clone(),
            outcome: Outcome::Dismiss.into(),
            ..Default::default()
        })
        .await
        .expect("dismissed");
    server.clock.advance(Span(2 * HOUR_MS));
    let state_before = server.engine.profile(customer).await.expect("live");
    let probe_before = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;

    // Idle past the timeout: the server's sweeper passivates the actor.
    server.clock.advance(Span(61_000));
    server
        .eventually("the sweeper has stopped the actor", |engine| {
            engine.registry().live() == 0
        })
        .await;
    let state_after = server.engine.profile(customer).await.expect("stored");
    assert_eq!(state_after, state_before, "read back from the store");

    // Reactivated by a dry run at the same time: the same answer, the same
    // filters (caps, the dismiss cooldown), the same windowed counts.
    server
        .clock
        .set(Timestamp::from_millis(server.clock.now().millis() - 61_000));
    let probe_after = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(server.engine.registry().live(), 1);
    assert_eq!(probe_after.served, probe_before.served);
    assert_eq!(probe_after.filtered, probe_before.filtered);
    assert_eq!(
        server.engine.profile(customer).await.expect("live"),
        state_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_range_that_cannot_be_read_is_refused_naming_the_bound() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let refusal = |request: ExportDecisionsRequest| {
        let mut admin = admin.clone();
        async move {
            admin
                .export_decisions(request)
                .await
                .expect_err("an unusable range")
        }
    };
    let backwards = refusal(ExportDecisionsRequest {
        since: Some(nudge_tests::at(NOON)),
        until: Some(nudge_tests::at(NOON - HOUR_MS)),
    })
    .await;
    assert_eq!(backwards.code(), Code::InvalidArgument, "{backwards:?}");
    assert!(backwards.message().starts_with("until:"), "{backwards:?}");
    let bad_nanos = refusal(ExportDecisionsRequest {
        since: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: -5,
        }),
        until: None,
    })
    .await;
    assert_eq!(bad_nanos.code(), Code::InvalidArgument, "{bad_nanos:?}");
    assert!(bad_nanos.message().starts_with("since:"), "{bad_nanos:?}");
    // An empty log is an empty stream, not an error.
    let mut stream = admin
        .export_decisions(ExportDecisionsRequest::default())
        .await
        .expect("an export")
        .into_inner();
    assert!(stream.message().await.expect("a clean end").is_none());
    server.stop().await;
}

/// A state store whose loads fail while its switch is on; everything else
/// is the in-memory store's.
#[derive(Debug)]
struct FailingLoads {
    store: Arc<RedbStore>,
    failing: Arc<AtomicBool>,
}

impl StateStore for FailingLoads {
    fn load<'a>(&'a self, customer_id: &'a str) -> StoreFuture<'a, Option<CustomerState>> {
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(StoreError::Io {
                location: "(test store)".into(),
                source: Arc::new(std::io::Error::other("the read failed")),
            })));
        }
        StateStore::load(self.store.as_ref(), customer_id)
    }

    fn write(&self, customer_id: &Arc<str>, state: &CustomerState) -> Commit {
        StateStore::write(self.store.as_ref(), customer_id, state)
    }

    fn forget(&self, customer_id: &Arc<str>) -> Commit {
        StateStore::forget(self.store.as_ref(), customer_id)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        StateStore::check_writable(self.store.as_ref())
    }

    fn flush(&self) -> Result<(), StoreError> {
        StateStore::flush(self.store.as_ref())
    }

    fn len(&self) -> Result<u64, StoreError> {
        StateStore::len(self.store.as_ref())
    }

    fn journey_timers(&self) -> Result<Vec<(Arc<str>, Timestamp)>, StoreError> {
        StateStore::journey_timers(self.store.as_ref())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_activation_refuses_the_call_with_the_storage_error_and_changes_nothing() {
    let store = Arc::new(RedbStore::in_memory(StoreOptions::default()));
    let failing = Arc::new(AtomicBool::new(true));
    let stores = Stores {
        state: Arc::new(FailingLoads {
            store: store.clone(),
            failing: failing.clone(),
        }),
        log: store.clone(),
        budgets: store,
    };
    let server = TestServer::start_with_store(stores, |_| {}).await;
    let login = || event("dave", "d-1", "login", NOON - MINUTE_MS);

    // The actor cannot load dave's state: the call is refused, not applied
    // to an empty state.
    let status = server
        .events()
        .await
        .track(login())
        .await
        .expect_err("the state cannot be loaded");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("the read failed"), "{status:?}");

    // Once loads work, the next call activates dave afresh; the refused
    // event was not applied, so it is new now, and a duplicate after.
    failing.store(false, Ordering::SeqCst);
    assert!(
        !server.track(login()).await,
        "the refused event was not applied"
    );
    assert!(server.track(login()).await, "applied once");
}
