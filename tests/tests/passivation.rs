//! Passivation: idle customers' actors stop and their state survives in the
//! store; a bound on live actors evicts the least recently active.

use nudge_models::time::Span;
use nudge_proto::v1::{ConsentState, FilterReason, SetConsentRequest};
use nudge_tests::{
    MINUTE_MS, NOON, TestServer, contacts_on, counter, decide_request, event, filter_reason,
    probe_request,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_customers_are_passivated_and_keep_their_state() {
    // The server's own sweeper passivates, once a second of service time.
    let server = TestServer::start_with(|config| {
        config.actors.idle_timeout_secs = 60;
        config.actors.sweep_interval_secs = 1;
    })
    .await;
    let customer = "c-idle";
    assert!(
        !server
            .track(event(customer, "i-1", "login", NOON - 5 * MINUTE_MS))
            .await
    );
    assert!(
        !server
            .track(event(customer, "i-2", "login", NOON - 2 * MINUTE_MS))
            .await
    );
    let first = server.decide(decide_request(customer, "home_banner")).await;
    let first_action = first.served[0].action_id.clone();
    server
        .profiles()
        .await
        .set_consent(SetConsentRequest {
            customer_id: customer.into(),
            channel: "email".into(),
            state: ConsentState::OptedOut.into(),
        })
        .await
        .expect("recorded");
    assert_eq!(server.engine.registry().live(), 1);

    // Not idle long enough yet: nothing happens (whether or not the
    // sweeper has looked yet).
    server.clock.advance(Span(59_000));
    assert_eq!(server.engine.passivate_idle(), 0);
    assert_eq!(server.engine.registry().live(), 1);

    // Past the timeout: the sweeper passivates the actor.
    server.clock.advance(Span(2_000));
    server
        .eventually("the sweeper has stopped the idle actor", |engine| {
            engine.registry().live() == 0
        })
        .await;
    assert_eq!(server.engine.stats().passivations, 1);

    // Reading the profile comes from the store and does not reactivate.
    let profile = server.profile(customer).await.expect("still known");
    assert_eq!(server.engine.registry().live(), 0);
    assert_eq!(
        counter(&profile, "login").map(|login| login.last_1d),
        Some(2)
    );
    assert_eq!(profile.contacts.len(), 1);
    assert_eq!(profile.contacts[0].action_id, first_action);
    assert_eq!(profile.consent.len(), 1);

    // A decision reactivates the customer with the same ledger and consent.
    let probe = server
        .decide(probe_request(customer, "home_banner", &[&first_action]))
        .await;
    assert_eq!(
        filter_reason(&probe, &first_action),
        Some(FilterReason::Cooldown)
    );
    let email = server
        .decide(probe_request(customer, "daily_email", &[]))
        .await;
    assert!(email.served.is_empty());
    assert_eq!(
        filter_reason(&email, "tips_newsletter_email"),
        Some(FilterReason::OptedOut)
    );
    // Event ids survive too: a replay is still a duplicate.
    assert!(
        server
            .track(event(customer, "i-1", "login", NOON - 5 * MINUTE_MS))
            .await
    );
    assert_eq!(server.engine.registry().live(), 1);
    assert_eq!(server.engine.stats().activations, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_actors_are_bounded_and_evicted_state_survives() {
    const CUSTOMERS: usize = 10;
    const MAX_LIVE: usize = 3;
    let server = TestServer::start_with(|config| config.actors.max_live_customers = MAX_LIVE).await;
    let name = |index: usize| format!("c-bounded-{index}");

    let mut now = NOON;
    for round in 0..2 {
        for index in 0..CUSTOMERS {
            let customer = name(index);
            // Distinct activity times, so "least recently active" is well defined.
            server.clock.advance(Span(1_000));
            now += 1_000;
            let view = event(&customer, &format!("b-{round}"), "page_view", now);
            assert!(!server.track(view).await);
            let response = server
                .decide(decide_request(&customer, "home_banner"))
                .await;
            assert_eq!(response.served.len(), 1, "{customer} round {round}");
            assert_eq!(
                response.served[0].channel, "in_app",
                "{customer} round {round}"
            );
            // The evicted actor may still be stopping: one over, at most.
            let live = server.engine.registry().live();
            assert!(live <= MAX_LIVE + 1, "{live} live actors after {customer}");
            server
                .eventually("the evicted actor has stopped", |engine| {
                    engine.registry().live() <= MAX_LIVE
                })
                .await;
            assert!(
                server.engine.registry().get(&customer).is_some(),
                "{customer} is live"
            );
        }
    }
    assert!(server.engine.stats().passivations >= (2 * CUSTOMERS - MAX_LIVE) as u64);

    // Every customer has both rounds of events and both serves, live or not.
    for index in 0..CUSTOMERS {
        let customer = name(index);
        let profile = server.profile(&customer).await.expect("known");
        assert_eq!(
            counter(&profile, "page_view").map(|views| views.last_1d),
            Some(2),
            "{customer}"
        );
        assert_eq!(contacts_on(&profile, "in_app"), 2, "{customer}");
        let mut actions: Vec<&str> = profile
            .contacts
            .iter()
            .map(|contact| contact.action_id.as_str())
            .collect();
        actions.dedup();
        assert_eq!(
            actions.len(),
            2,
            "{customer}: the 1h cooldown held across activations"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_activations_stay_bounded() {
    const CUSTOMERS: usize = 10;
    const MAX_LIVE: usize = 3;
    let server = TestServer::start_with(|config| config.actors.max_live_customers = MAX_LIVE).await;
    let client = server.decisions().await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CUSTOMERS));
    let tasks: Vec<_> = (0..CUSTOMERS)
        .map(|index| {
            let mut client = client.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                client
                    .decide(decide_request(&format!("c-burst-{index}"), "home_banner"))
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .collect();
    for task in tasks {
        let response = task.await.expect("no panic").expect("answered");
        assert_eq!(response.served.len(), 1);
    }
    // Activations racing past the bound may overshoot it by the few that
    // were in flight together, but each eviction takes a different actor.
    server
        .eventually("evicted actors have stopped", |engine| {
            let stats = engine.stats();
            stats.passivations + stats.live_customers == stats.activations
        })
        .await;
    let live = server.engine.registry().live();
    assert!(
        live <= MAX_LIVE + 2,
        "{live} live actors for a bound of {MAX_LIVE}"
    );
    for index in 0..CUSTOMERS {
        let profile = server
            .profile(&format!("c-burst-{index}"))
            .await
            .expect("known");
        assert_eq!(contacts_on(&profile, "in_app"), 1);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_actor_is_the_one_evicted() {
    let server = TestServer::start_with(|config| config.actors.max_live_customers = 3).await;
    // The clock stands still: recency is the order of calls, not of times.
    for customer in ["lru-a", "lru-b", "lru-c"] {
        server
            .decide(probe_request(customer, "home_banner", &[]))
            .await;
    }
    // a is used again, so b is now the least recently used.
    server
        .decide(probe_request("lru-a", "home_banner", &[]))
        .await;
    server
        .decide(probe_request("lru-d", "home_banner", &[]))
        .await;
    server
        .eventually("the evicted actor has stopped", |engine| {
            engine.registry().live() == 3
        })
        .await;
    let registry = server.engine.registry();
    assert!(registry.get("lru-b").is_none(), "b was evicted");
    for customer in ["lru-a", "lru-c", "lru-d"] {
        assert!(registry.get(customer).is_some(), "{customer} is live");
    }
    server.stop().await;
}
