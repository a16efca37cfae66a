//! Events: idempotent Track, and TrackStream summaries.

use nudge_proto::v1::Event;
use nudge_tests::{DAY_MS, HOUR_MS, NOON, TestServer, at, counter, event, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_event_id_is_applied_once() {
    let server = TestServer::start().await;
    let customer = "c-dup";
    let login = event(customer, "evt-1", "login", NOON - HOUR_MS);
    assert!(!server.track(login.clone()).await, "first time: applied");
    assert!(server.track(login.clone()).await, "second time: duplicate");
    // Same id, different content: still the same event.
    let mut changed = login.clone();
    changed.timestamp = Some(at(NOON - 2 * HOUR_MS));
    assert!(server.track(changed).await);

    let profile = server.profile(customer).await.expect("known");
    let logins = counter(&profile, "login").expect("a login counter");
    assert_eq!((logins.last_1d, logins.last_7d, logins.last_30d), (1, 1, 1));
    assert_eq!(logins.last_seen, Some(at(NOON - HOUR_MS)));

    // Event ids are per customer: another customer may reuse it.
    assert!(
        !server
            .track(event("c-dup-other", "evt-1", "login", NOON))
            .await
    );

    let stats = server.engine.stats();
    assert_eq!(stats.events, 2);
    assert_eq!(stats.duplicate_events, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_windows_count_by_event_time() {
    let server = TestServer::start().await;
    let customer = "c-windows";
    for (id, days_ago) in [("a", 0), ("b", 3), ("c", 10), ("d", 40)] {
        assert!(
            !server
                .track(event(
                    customer,
                    id,
                    "report_created",
                    NOON - days_ago * DAY_MS - HOUR_MS
                ))
                .await
        );
    }
    let profile = server.profile(customer).await.expect("known");
    let reports = counter(&profile, "report_created").expect("counter");
    assert_eq!(
        (reports.last_1d, reports.last_7d, reports.last_30d),
        (1, 2, 3)
    );

    // Time passes: the windows roll.
    server.clock.advance(nudge_models::time::Span::days(5));
    let profile = server.profile(customer).await.expect("known");
    let reports = counter(&profile, "report_created").expect("counter");
    assert_eq!(
        (reports.last_1d, reports.last_7d, reports.last_30d),
        (0, 1, 3)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_stream_counts_good_duplicate_and_bad_events() {
    let server = TestServer::start().await;
    let customer = "c-stream";
    let mut nameless = event(customer, "s-bad-name", "", NOON);
    nameless.name.clear();
    let mut too_many = event(customer, "s-bad-props", "page_view", NOON);
    too_many.properties = (0..65).map(|key| (format!("k{key}"), text("v"))).collect();
    let future = event(customer, "s-bad-time", "page_view", NOON + HOUR_MS);
    let stream: Vec<Event> = vec![
        event(customer, "s-1", "page_view", NOON - 3 * HOUR_MS),
        event(customer, "s-2", "page_view", NOON - 2 * HOUR_MS),
        event(customer, "s-1", "page_view", NOON - 3 * HOUR_MS),
        nameless,
        event(customer, "s-3", "login", NOON - HOUR_MS),
        too_many,
        event(customer, "s-2", "page_view", NOON - 2 * HOUR_MS),
        future,
        event("c-stream-2", "s-1", "page_view", NOON),
    ];
    let summary = server
        .events()
        .await
        .track_stream(tokio_stream::iter(stream))
        .await
        .expect("the stream is summarized")
        .into_inner();
    assert_eq!(summary.accepted, 4, "{summary:?}");
    assert_eq!(summary.duplicates, 2, "{summary:?}");
    assert_eq!(summary.rejected, 3, "{summary:?}");
    assert_eq!(summary.rejections.len(), 3);

    let rejection = |index: u64| {
        summary
            .rejections
            .iter()
            .find(|rejection| rejection.index == index)
            .unwrap_or_else(|| panic!("event {index} is listed as rejected: {summary:?}"))
    };
    assert_eq!(rejection(3).event_id, "s-bad-name");
    assert!(
        rejection(3).message.contains("name"),
        "{}",
        rejection(3).message
    );
    assert_eq!(rejection(5).event_id, "s-bad-props");
    assert!(
        rejection(5).message.contains("properties"),
        "{}",
        rejection(5).message
    );
    assert_eq!(rejection(7).event_id, "s-bad-time");
    assert!(
        rejection(7).message.contains("timestamp"),
        "{}",
        rejection(7).message
    );

    // Only the good events changed the profile, each once.
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(counter(&profile, "page_view").map(|c| c.last_1d), Some(2));
    assert_eq!(counter(&profile, "login").map(|c| c.last_1d), Some(1));
    assert_eq!(profile.counters.len(), 2, "{:?}", profile.counters);
    let other = server.profile("c-stream-2").await.expect("known");
    assert_eq!(counter(&other, "page_view").map(|c| c.last_1d), Some(1));

    // An empty stream is an empty summary.
    let empty = server
        .events()
        .await
        .track_stream(tokio_stream::iter(Vec::<Event>::new()))
        .await
        .expect("summarized")
        .into_inner();
    assert_eq!(
        (empty.accepted, empty.duplicates, empty.rejected),
        (0, 0, 0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_sets_attributes() {
    let server = TestServer::start().await;
    let customer = "c-identify";
    let mut identify = event(customer, "id-1", "identify", NOON - DAY_MS);
    identify.properties = [
        ("plan".to_owned(), text("trial")),
        ("timezone".to_owned(), text("Europe/Paris")),
        ("seats".to_owned(), nudge_tests::number(5.0)),
    ]
    .into_iter()
    .collect();
    assert!(!server.track(identify).await);
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(profile.attributes.get("plan"), Some(&text("trial")));
    assert_eq!(
        profile.attributes.get("timezone"),
        Some(&text("Europe/Paris"))
    );
    assert_eq!(
        profile.attributes.get("seats"),
        Some(&nudge_tests::number(5.0))
    );
    assert_eq!(profile.first_seen, Some(at(NOON - DAY_MS)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_interleaved_stream_applies_each_event_once_in_order() {
    let server = TestServer::start().await;
    // 3,000 events over 40 customers, one per customer per round; every
    // tenth round repeats the previous round's ids: applied in chunks,
    // customers in parallel.
    let mut stream = Vec::new();
    let mut expected_accepted = 0;
    let mut expected_duplicates = 0;
    for index in 0..3_000_i64 {
        let customer = format!("bulk-{}", index % 40);
        if (index / 40) % 10 == 9 {
            expected_duplicates += 1;
            let earlier = index - 40;
            stream.push(event(
                &customer,
                &format!("bulk-e{earlier}"),
                "page_view",
                NOON - HOUR_MS,
            ));
        } else {
            expected_accepted += 1;
            stream.push(event(
                &customer,
                &format!("bulk-e{index}"),
                "page_view",
                NOON - HOUR_MS,
            ));
        }
    }
    let summary = server
        .events()
        .await
        .track_stream(tokio_stream::iter(stream))
        .await
        .expect("summarized")
        .into_inner();
    assert_eq!(summary.accepted, expected_accepted, "{summary:?}");
    assert_eq!(summary.duplicates, expected_duplicates, "{summary:?}");
    assert_eq!(summary.rejected, 0, "{summary:?}");
    let mut total = 0;
    for customer in 0..40 {
        let profile = server
            .profile(&format!("bulk-{customer}"))
            .await
            .expect("known");
        total += counter(&profile, "page_view").map_or(0, |counter| counter.last_1d);
    }
    assert_eq!(u64::from(total), expected_accepted);
    server.stop().await;
}
