//! Journeys run in the customer actors of the real server, on its clock: a
//! trigger starts a run and its first send goes through the full pipeline;
//! the timer task moves runs when they are due, waking passivated customers;
//! an event a run waits for moves it at once; a goal ends it at once, its
//! pending wait included; quiet hours defer a send to the next allowed
//! moment; an opt-out removes the customer; a timer due while the service
//! was down fires once when it is back.

use nudge_models::journey::{Ending, Happened, Run, RunState, Via};
use nudge_models::time::{Span, Timestamp};
use nudge_proto::v1::{ConsentState, SetConsentRequest};
use nudge_service::store::{RedbStore, StoreOptions};
use nudge_tests::{DAY_MS, HOUR_MS, MINUTE_MS, NOON, TempDir, TestServer, contacts_on, event};
use std::sync::Arc;

/// The demo catalog with one journey: a welcome email, then a day for the
/// customer to log in (else a reminder in the home banner), two more days,
/// and a getting-started guide. Subscribing ends it as converted.
fn catalog() -> String {
    format!(
        r#"{}
[[journeys]]
id = "trial_tips"
name = "Trial tips"
priority = 10
trigger = {{ event = "trial_started" }}
goals = [{{ event = "subscription_started" }}]
reentry_after = "30d"

[[journeys.steps]]
id = "welcome"
send = {{ action = "tips_newsletter_email" }}

[[journeys.steps]]
id = "first_login"
wait_for = {{ event = "login", timeout = "1d", on_timeout = "reminder" }}
next = "day3"

[[journeys.steps]]
id = "reminder"
send = {{ placement = "home_banner" }}

[[journeys.steps]]
id = "day3"
wait = "2d"

[[journeys.steps]]
id = "guide"
send = {{ action = "guide_getting_started" }}
"#,
        nudge_tests::demo_without_journeys()
    )
}

/// How long a send waits, here, between two tries to find a delivery
/// service: no delivery service subscribes in these tests (the dispatch
/// tests are in `dispatches.rs`), so each send is held in the outbox, tried
/// hourly, for a month.
const HELD_RETRY_MS: i64 = HOUR_MS;

/// A server on the journey catalog (written into `files`) and `store`.
async fn start(files: &TempDir, store: Arc<RedbStore>) -> TestServer {
    let path = files.join("catalog.toml");
    std::fs::write(&path, catalog()).expect("write the catalog");
    TestServer::start_with_store(store, move |config| {
        config.catalog = Some(path);
        config.actors.idle_timeout_secs = 60;
        config.journeys.ack_timeout_ms = HELD_RETRY_MS.unsigned_abs();
        config.journeys.longest_backoff_secs = (HELD_RETRY_MS / 1_000).unsigned_abs();
        config.journeys.dispatch_expiry_secs = (30 * DAY_MS / 1_000).unsigned_abs();
    })
    .await
}

/// Waits until the timer task has handled the send made at `at`: held
/// (nobody subscribed), the customer's next moment is the retry.
async fn until_held(server: &TestServer, at: i64) {
    server
        .eventually("the send is held", |engine| {
            engine.shared().timers.next_due() == Some(Timestamp(at + HELD_RETRY_MS))
        })
        .await;
}

async fn start_in_memory(tag: &str) -> (TempDir, TestServer) {
    let files = TempDir::new(tag);
    let store = Arc::new(RedbStore::in_memory(StoreOptions::default()));
    let server = start(&files, store).await;
    (files, server)
}

/// The customer's run of `trial_tips` (the latest), read through the engine.
async fn run_of(server: &TestServer, customer_id: &str) -> Run {
    let state = server
        .engine
        .profile(customer_id)
        .await
        .expect("the customer is known");
    state
        .journeys
        .runs
        .iter()
        .rev()
        .find(|run| run.journey == "trial_tips")
        .cloned()
        .expect("the customer has a run of trial_tips")
}

/// Polls the customer's unreleased contacts on `channel` until there are
/// `count` (the timer task works asynchronously after the clock moves).
async fn until_contacts(server: &TestServer, customer_id: &str, channel: &str, count: usize) {
    for _ in 0..2_000 {
        if let Ok(profile) = server.profile(customer_id).await
            && contacts_on(&profile, channel) == count
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{customer_id} never had {count} contact(s) on {channel}");
}

async fn contacts(server: &TestServer, customer_id: &str, channel: &str) -> usize {
    contacts_on(
        &server.profile(customer_id).await.expect("a profile"),
        channel,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_walks_its_steps_on_the_service_clock_and_its_sends_go_through_the_pipeline() {
    let (_files, server) = start_in_memory("journey-walk").await;
    server
        .track(event("ana", "e1", "trial_started", NOON))
        .await;
    // The welcome email went at once, as a contact in the ledger (a cap
    // slot taken), and the run waits a day for a login.
    assert_eq!(contacts(&server, "ana", "email").await, 1);
    let run = run_of(&server, "ana").await;
    assert_eq!(
        run.state,
        RunState::WaitingFor {
            until: Timestamp(NOON + DAY_MS)
        }
    );
    assert!(
        run.history.iter().any(|entry| matches!(
            &entry.what,
            Happened::Sent { action, channel, .. } if action == "tips_newsletter_email" && channel == "email"
        )),
        "{:?}",
        run.history
    );
    // The customer's next moment: the held welcome's retry, before the
    // run's timeout.
    until_held(&server, NOON).await;

    // No login within the day: the timeout sends the reminder in the home
    // banner, then the run waits two days.
    server.clock.advance(Span(DAY_MS));
    until_contacts(&server, "ana", "in_app", 1).await;
    let run = run_of(&server, "ana").await;
    assert_eq!(
        run.state,
        RunState::Waiting {
            until: Timestamp(NOON + 3 * DAY_MS)
        }
    );

    // Two days on, the guide, and the run is complete.
    server.clock.advance(Span(2 * DAY_MS));
    until_contacts(&server, "ana", "content", 1).await;
    let run = run_of(&server, "ana").await;
    assert!(
        matches!(
            run.state,
            RunState::Ended {
                ending: Ending::Completed,
                ..
            }
        ),
        "{:?}",
        run.state
    );
    assert_eq!(
        run.steps_entered().collect::<Vec<_>>(),
        ["welcome", "first_login", "reminder", "day3", "guide"]
    );
    assert!(run.history.iter().any(|entry| matches!(
        &entry.what,
        Happened::Moved { from, via: Via::Timeout, .. } if from == "first_login"
    )));
    // Nothing is left to move; its three sends wait in the outbox for a
    // delivery service, retried hourly.
    let state = server.engine.profile("ana").await.expect("known");
    assert_eq!(state.journeys.outbox.len(), 3);
    assert_eq!(server.engine.shared().timers.len(), (1, 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_awaited_event_moves_the_run_at_once_and_the_reminder_never_goes() {
    let (_files, server) = start_in_memory("journey-event").await;
    server
        .track(event("ben", "e1", "trial_started", NOON))
        .await;
    server.clock.advance(Span(3 * HOUR_MS));
    server
        .track(event("ben", "e2", "login", NOON + 3 * HOUR_MS))
        .await;
    let run = run_of(&server, "ben").await;
    assert_eq!(
        run.state,
        RunState::Waiting {
            until: Timestamp(NOON + 3 * HOUR_MS + 2 * DAY_MS)
        }
    );
    assert_eq!(
        run.steps_entered().collect::<Vec<_>>(),
        ["welcome", "first_login", "day3"]
    );
    // Past the day the reminder would have gone: nothing in the banner.
    server.clock.advance(Span(DAY_MS));
    assert_eq!(contacts(&server, "ben", "in_app").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_ends_the_run_at_once_with_its_pending_wait_and_no_later_step_fires() {
    let (_files, server) = start_in_memory("journey-goal").await;
    server
        .track(event("cleo", "e1", "trial_started", NOON))
        .await;
    server.clock.advance(Span(2 * HOUR_MS));
    server
        .track(event(
            "cleo",
            "e2",
            "subscription_started",
            NOON + 2 * HOUR_MS,
        ))
        .await;
    // Ended as the goal was tracked, not when the wait would have ended.
    let run = run_of(&server, "cleo").await;
    assert_eq!(
        run.state,
        RunState::Ended {
            at: Timestamp(NOON + 2 * HOUR_MS),
            ending: Ending::Converted {
                event: "subscription_started".to_owned()
            }
        }
    );
    assert_eq!(server.engine.shared().timers.len(), (0, 0));
    // Days later nothing else was sent.
    server.clock.advance(Span(4 * DAY_MS));
    assert_eq!(contacts(&server, "cleo", "email").await, 1);
    assert_eq!(contacts(&server, "cleo", "in_app").await, 0);
    assert_eq!(contacts(&server, "cleo", "content").await, 0);
    // The same trigger again is refused: the customer reached the goal.
    server
        .track(event("cleo", "e3", "trial_started", NOON + 4 * DAY_MS))
        .await;
    let state = server.engine.profile("cleo").await.expect("known");
    assert_eq!(state.journeys.active().count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_a_send_to_the_next_allowed_moment_instead_of_dropping_it() {
    let (_files, server) = start_in_memory("journey-quiet").await;
    // 22:00 UTC: email's quiet hours (21:00-08:00) for a customer in UTC.
    let late = NOON + 10 * HOUR_MS;
    server.clock.set(Timestamp(late));
    server
        .track(event("dan", "e1", "trial_started", late))
        .await;
    let eight = NOON + 20 * HOUR_MS;
    let run = run_of(&server, "dan").await;
    assert!(
        matches!(run.state, RunState::Deferred { until, .. } if until == Timestamp(eight)),
        "{:?}",
        run.state
    );
    assert_eq!(contacts(&server, "dan", "email").await, 0);
    // At 08:00 the email goes and the run waits for a login from then.
    server.clock.set(Timestamp(eight));
    until_contacts(&server, "dan", "email", 1).await;
    let run = run_of(&server, "dan").await;
    assert_eq!(
        run.state,
        RunState::WaitingFor {
            until: Timestamp(eight + DAY_MS)
        }
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opting_out_of_a_channel_the_journey_sends_on_removes_the_customer_at_once() {
    let (_files, server) = start_in_memory("journey-opt-out").await;
    server
        .track(event("eve", "e1", "trial_started", NOON))
        .await;
    server
        .profiles()
        .await
        .set_consent(SetConsentRequest {
            customer_id: "eve".to_owned(),
            channel: "email".to_owned(),
            state: ConsentState::OptedOut.into(),
        })
        .await
        .expect("consent is recorded");
    let run = run_of(&server, "eve").await;
    assert_eq!(
        run.state,
        RunState::Ended {
            at: Timestamp(NOON),
            ending: Ending::Removed {
                reason: "opted out of email".to_owned()
            }
        }
    );
    assert_eq!(server.engine.shared().timers.len(), (0, 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_customer_is_woken_by_its_timer() {
    let (_files, server) = start_in_memory("journey-passivated").await;
    server
        .track(event("fay", "e1", "trial_started", NOON))
        .await;
    until_held(&server, NOON).await;
    server.clock.advance(Span(2 * MINUTE_MS));
    // Idle: passivated, by the test or by the server's own idle sweep
    // (which the clock's move wakes too).
    server
        .eventually("the idle actor stopped", |engine| {
            engine.passivate_idle();
            engine.registry().live() == 0
        })
        .await;
    server.clock.advance(Span(DAY_MS));
    until_contacts(&server, "fay", "in_app", 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_due_while_the_service_was_down_fires_once_when_it_is_back() {
    let files = TempDir::new("journey-restart");
    let data = files.join("data");
    std::fs::create_dir_all(&data).expect("a data directory");
    {
        let store = Arc::new(RedbStore::open(&data, StoreOptions::default()).expect("open"));
        let server = start(&files, store.clone()).await;
        server
            .track(event("gus", "e1", "trial_started", NOON))
            .await;
        until_held(&server, NOON).await;
        server.stop().await;
        store.close().expect("close");
    }
    // Back two days later: the day's timeout passed while it was down.
    let store = Arc::new(RedbStore::open(&data, StoreOptions::default()).expect("reopen"));
    // The index kept the customer's earliest moment: the held welcome's
    // retry (the run's timeout is later).
    assert_eq!(
        nudge_service::store::StateStore::journey_timers(store.as_ref()).expect("the index"),
        [(Arc::from("gus"), Timestamp(NOON + HELD_RETRY_MS))]
    );
    let server = start(&files, store).await;
    server.clock.set(Timestamp(NOON + 2 * DAY_MS));
    until_contacts(&server, "gus", "in_app", 1).await;
    let run = run_of(&server, "gus").await;
    assert_eq!(
        run.state,
        RunState::Waiting {
            until: Timestamp(NOON + 4 * DAY_MS)
        }
    );
    let reminders = run
        .history
        .iter()
        .filter(|entry| matches!(&entry.what, Happened::Sent { step, .. } if step == "reminder"))
        .count();
    assert_eq!(reminders, 1);
    assert_eq!(contacts(&server, "gus", "email").await, 1);
    server.stop().await;
}

fn count(counts: &[nudge_proto::v1::NamedCount], name: &str) -> u64 {
    counts
        .iter()
        .find(|count| count.name == name)
        .map_or(0, |count| count.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_journeys_with_their_analytics_and_a_customers_runs_with_the_audit_trail() {
    let (_files, server) = start_in_memory("journey-admin").await;
    let mut admin = server.admin().await;
    server
        .track(event("hal", "e1", "trial_started", NOON))
        .await;
    server
        .track(event("ida", "e2", "trial_started", NOON))
        .await;
    server.clock.advance(Span(HOUR_MS));
    server
        .track(event("ida", "e3", "subscription_started", NOON + HOUR_MS))
        .await;
    // Ida again, within the 30 days of the re-entry throttle: kept out.
    server
        .track(event("ida", "e4", "trial_started", NOON + HOUR_MS))
        .await;

    let listing = admin
        .list_journeys(nudge_proto::v1::ListJourneysRequest {})
        .await
        .expect("a listing")
        .into_inner();
    assert_eq!(listing.journeys.len(), 1);
    let journey = &listing.journeys[0];
    assert_eq!(journey.id, "trial_tips");
    assert_eq!(journey.trigger_event, "trial_started");
    assert!(!journey.paused);
    assert_eq!(journey.triggered, 3);
    assert_eq!(journey.started, 2);
    assert_eq!(journey.active, 1);
    assert_eq!(journey.converted, 1);
    assert!((journey.conversion_rate - 1.0).abs() < 1e-9);
    assert_eq!(count(&journey.refused, "too_soon"), 1);
    assert_eq!(journey.sent, 2);
    let steps: Vec<&str> = journey.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(
        steps,
        ["welcome", "first_login", "reminder", "day3", "guide"]
    );
    let welcome = &journey.steps[0];
    assert_eq!(
        (welcome.kind.as_str(), welcome.entered, welcome.sent),
        ("send", 2, 2)
    );
    assert_eq!(count(&welcome.exited, "done"), 2);
    let first_login = &journey.steps[1];
    assert_eq!(first_login.kind, "wait_for");
    assert_eq!(first_login.entered, 2);
    assert_eq!(count(&first_login.exited, "converted"), 1);
    assert!((first_login.median_seconds - 3_600.0).abs() < 60.0);
    assert!(
        first_login.drop_off.abs() < 1e-9,
        "converting is not dropping off"
    );

    let runs = admin
        .get_customer_journeys(nudge_proto::v1::GetCustomerJourneysRequest {
            customer_id: "hal".to_owned(),
        })
        .await
        .expect("hal's runs")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (
            run.journey_id.as_str(),
            run.step.as_str(),
            run.state.as_str()
        ),
        ("trial_tips", "first_login", "waiting_for")
    );
    assert_eq!(run.until, Some(nudge_tests::at(NOON + DAY_MS)));
    let what: Vec<&str> = run
        .history
        .iter()
        .map(|entry| entry.what.as_str())
        .collect();
    assert_eq!(what, ["started", "sent", "moved"]);
    let sent = &run.history[1];
    assert_eq!(
        (sent.action_id.as_str(), sent.channel.as_str()),
        ("tips_newsletter_email", "email")
    );
    assert!(!sent.decision_id.is_empty());
    assert!(
        sent.text.contains("sent tips_newsletter_email on email"),
        "{}",
        sent.text
    );

    let ida = admin
        .get_customer_journeys(nudge_proto::v1::GetCustomerJourneysRequest {
            customer_id: "ida".to_owned(),
        })
        .await
        .expect("ida's runs")
        .into_inner()
        .runs;
    assert_eq!(
        (
            ida[0].state.as_str(),
            ida[0].ending.as_str(),
            ida[0].ending_detail.as_str()
        ),
        ("ended", "converted", "subscription_started")
    );

    let unknown = admin
        .get_customer_journeys(nudge_proto::v1::GetCustomerJourneysRequest {
            customer_id: "nobody".to_owned(),
        })
        .await
        .expect_err("never seen");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_journey_holds_its_runs_and_takes_no_entries_until_it_is_resumed() {
    let (_files, server) = start_in_memory("journey-pause").await;
    let mut admin = server.admin().await;
    server.track(event("jo", "e1", "trial_started", NOON)).await;
    let paused = admin
        .pause_journey(nudge_proto::v1::PauseJourneyRequest {
            journey_id: "trial_tips".to_owned(),
        })
        .await
        .expect("paused")
        .into_inner();
    assert!(paused.changed);
    // Past the day's timeout, the run holds where it is.
    server.clock.advance(Span(DAY_MS + MINUTE_MS));
    server
        .eventually("jo's run is parked", |engine| {
            engine.shared().timers.len() == (0, 1)
        })
        .await;
    assert_eq!(contacts(&server, "jo", "in_app").await, 0);
    let run = run_of(&server, "jo").await;
    assert_eq!(
        run.state,
        RunState::WaitingFor {
            until: Timestamp(NOON + DAY_MS)
        }
    );
    // No new entries while paused.
    server
        .track(event("kim", "e2", "trial_started", NOON + DAY_MS))
        .await;
    let listing = admin
        .list_journeys(nudge_proto::v1::ListJourneysRequest {})
        .await
        .expect("a listing")
        .into_inner();
    assert!(listing.journeys[0].paused && listing.journeys[0].paused_by_operator);
    assert_eq!(count(&listing.journeys[0].refused, "paused"), 1);
    assert_eq!(contacts(&server, "kim", "email").await, 0);

    // Resumed: the held run goes on from where it was.
    let resumed = admin
        .resume_journey(nudge_proto::v1::ResumeJourneyRequest {
            journey_id: "trial_tips".to_owned(),
        })
        .await
        .expect("resumed")
        .into_inner();
    assert!(resumed.changed);
    assert_eq!(resumed.customers_woken, 1);
    until_contacts(&server, "jo", "in_app", 1).await;

    for journey_id in ["nope", ""] {
        let status = admin
            .pause_journey(nudge_proto::v1::PauseJourneyRequest {
                journey_id: journey_id.to_owned(),
            })
            .await
            .expect_err("not a journey");
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(
            status.message().contains("not in the catalog"),
            "{}",
            status.message()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cancels_a_run_at_once_and_a_second_cancel_finds_none() {
    let (_files, server) = start_in_memory("journey-cancel").await;
    let mut admin = server.admin().await;
    server
        .track(event("lou", "e1", "trial_started", NOON))
        .await;
    let cancel = |journey_id: &str| nudge_proto::v1::CancelJourneyRunRequest {
        customer_id: "lou".to_owned(),
        journey_id: journey_id.to_owned(),
    };
    let first = admin
        .cancel_journey_run(cancel("trial_tips"))
        .await
        .expect("cancelled")
        .into_inner();
    assert!(first.cancelled);
    assert_eq!(server.engine.shared().timers.len(), (0, 0));
    let run = run_of(&server, "lou").await;
    assert!(matches!(
        run.state,
        RunState::Ended {
            ending: Ending::Cancelled,
            ..
        }
    ));
    let second = admin
        .cancel_journey_run(cancel("trial_tips"))
        .await
        .expect("answered")
        .into_inner();
    assert!(!second.cancelled);
    let unknown = admin
        .cancel_journey_run(cancel("nope"))
        .await
        .expect_err("not a journey");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let stranger = admin
        .cancel_journey_run(nudge_proto::v1::CancelJourneyRunRequest {
            customer_id: "never-seen".to_owned(),
            journey_id: "trial_tips".to_owned(),
        })
        .await
        .expect_err("not a customer");
    assert_eq!(stranger.code(), tonic::Code::NotFound);
    assert!(
        stranger.message().contains("never-seen"),
        "{}",
        stranger.message()
    );
    let bad_customer = admin
        .cancel_journey_run(nudge_proto::v1::CancelJourneyRunRequest {
            customer_id: String::new(),
            journey_id: "trial_tips".to_owned(),
        })
        .await
        .expect_err("no customer");
    assert_eq!(bad_customer.code(), tonic::Code::InvalidArgument);
    server.clock.advance(Span(2 * DAY_MS));
    assert_eq!(contacts(&server, "lou", "in_app").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_new_entries_and_running_runs_keep_theirs() {
    let (_files, server) = start_in_memory("journey-versions").await;
    server.track(event("mo", "e1", "trial_started", NOON)).await;
    // Version 2 sends the reminder as the getting-started guide instead.
    let version_2 = catalog()
        .replacen(
            "id = \"trial_tips\"\n",
            "id = \"trial_tips\"\nversion = 2\n",
            1,
        )
        .replacen(
            "id = \"reminder\"\nsend = { placement = \"home_banner\" }",
            "id = \"reminder\"\nsend = { action = \"guide_getting_started\" }",
            1,
        );
    assert_ne!(version_2, catalog());
    server
        .admin()
        .await
        .reload_catalog(nudge_proto::v1::ReloadCatalogRequest { toml: version_2 })
        .await
        .expect("the new version loads");
    server
        .track(event("ned", "e2", "trial_started", NOON))
        .await;
    assert_eq!(run_of(&server, "mo").await.version, 1);
    assert_eq!(run_of(&server, "ned").await.version, 2);

    // A day later each run takes its own version's reminder.
    server.clock.advance(Span(DAY_MS));
    until_contacts(&server, "mo", "in_app", 1).await;
    until_contacts(&server, "ned", "content", 1).await;
    assert_eq!(contacts(&server, "mo", "content").await, 0);
    assert_eq!(contacts(&server, "ned", "in_app").await, 0);
    server.stop().await;
}
