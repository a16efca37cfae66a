//! Journeys in the real binary: a run waiting when `nudge serve` is killed
//! with SIGKILL resumes on the restarted server and its next step fires
//! exactly once, the wait having ended while the server was down (and the
//! timer lateness metric shows the downtime).

mod common;

use common::{Server, TempDir, poll, scrape};
use serde_json::Value as Json;
use std::time::Duration;

/// A journey on the demo catalog with a wait short enough for a test on the
/// wall clock: a banner at once, two seconds, then the getting-started
/// guide. Neither channel has quiet hours, whatever the time of day.
const JOURNEY: &str = r#"
[[journeys]]
id = "quick_follow_up"
name = "Quick follow-up"
trigger = { event = "page_view" }

[[journeys.steps]]
id = "first"
send = { placement = "home_banner" }

[[journeys.steps]]
id = "pause"
wait = "2s"

[[journeys.steps]]
id = "second"
send = { action = "guide_getting_started" }
"#;

/// The demo catalog with `journeys` added, written into `dir`; its path.
fn demo_with(dir: &TempDir, journeys: &str) -> String {
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!("{}\n{journeys}", nudge_models::demo::CATALOG_TOML),
    )
    .expect("write the catalog");
    catalog.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Kills the server with SIGKILL: nothing is flushed or closed.
fn kill_9(server: Server) {
    let pid = server.pid();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}");
    drop(server);
}

/// The customer's run of the journey, as `nudge journeys runs --json` shows it.
fn run(server: &Server, customer: &str) -> Json {
    let runs = server.json(&["journeys", "runs", customer]);
    runs["runs"]
        .as_array()
        .and_then(|runs| {
            runs.iter()
                .find(|run| run["journey_id"] == "quick_follow_up")
                .cloned()
        })
        .unwrap_or_else(|| panic!("no run of quick_follow_up: {runs}"))
}

/// How many times the run's history says `step` sent.
fn sends_of(run: &Json, step: &str) -> usize {
    run["history"].as_array().map_or(0, |history| {
        history
            .iter()
            .filter(|entry| entry["what"] == "sent" && entry["step"] == step)
            .count()
    })
}

#[test]
fn a_wait_that_ends_while_the_server_is_killed_fires_once_after_the_restart() {
    let dir = TempDir::new("journey-kill");
    let catalog = demo_with(&dir, JOURNEY);
    let server = Server::start(&dir, &["--catalog", &catalog]);
    server.ok(&["track", "--customer", "k1", "--event", "page_view"]);
    let waiting = run(&server, "k1");
    assert_eq!(waiting["state"], "waiting", "{waiting}");
    assert_eq!(sends_of(&waiting, "first"), 1, "{waiting}");
    kill_9(server);
    // Down past the end of the wait.
    std::thread::sleep(Duration::from_millis(2_500));

    let server = Server::start_with_metrics(&dir, &["--catalog", &catalog]);
    let done = poll(Duration::from_secs(20), "the run completes", || {
        let run = run(&server, "k1");
        if run["state"] == "ended" {
            Ok(run)
        } else {
            Err(run.to_string())
        }
    });
    assert_eq!(done["ending"], "completed", "{done}");
    assert_eq!(sends_of(&done, "first"), 1, "{done}");
    assert_eq!(sends_of(&done, "second"), 1, "{done}");
    // Exactly once: later, still one guide in the customer's ledger.
    std::thread::sleep(Duration::from_millis(1_500));
    let profile = server.json(&["profile", "k1"]);
    let guides = profile["contacts"].as_array().map_or(0, |contacts| {
        contacts
            .iter()
            .filter(|contact| contact["action_id"] == "guide_getting_started")
            .count()
    });
    assert_eq!(guides, 1, "{profile}");
    // The timer fired late by the time the server was down (half a second
    // at least), and the lateness metric says so.
    let metrics = scrape(server.metrics_address());
    let fired = metrics.value("nudge_journey_timer_lateness_seconds_count", &[]);
    let late = metrics.value("nudge_journey_timer_lateness_seconds_sum", &[]);
    assert!(
        fired >= 1.0 && late >= 0.5,
        "{fired} wake-ups, {late} s late"
    );
}

/// A journey that sends the getting-started guide (the content channel has
/// no quiet hours) as soon as a page is viewed.
const PING: &str = r#"
[[journeys]]
id = "ping"
name = "Ping"
trigger = { event = "page_view" }

[[journeys.steps]]
id = "guide"
send = { action = "guide_getting_started" }
"#;

/// `nudge dispatches --json` against `server` with `extra` arguments, its
/// JSON lines sent to the returned receiver as they come.
fn watch_dispatches(
    server: &Server,
    extra: &[&str],
) -> (common::ChildGuard, std::sync::mpsc::Receiver<Json>) {
    let mut args = vec!["dispatches", "--json", "--server", server.url()];
    args.extend_from_slice(extra);
    let mut child = common::nudge_command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn nudge dispatches");
    let stdout = child.stdout.take().expect("a piped stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let parsed: Json = serde_json::from_str(&line).expect("a JSON line");
            if lines.send(parsed).is_err() {
                return;
            }
        }
    });
    (common::ChildGuard(child), received)
}

fn next_dispatch(received: &std::sync::mpsc::Receiver<Json>) -> Json {
    received
        .recv_timeout(Duration::from_secs(30))
        .expect("a dispatch from nudge dispatches")
}

#[test]
fn a_dispatch_not_acknowledged_when_the_server_is_killed_is_handed_out_again_after_the_restart() {
    let dir = TempDir::new("dispatch-kill");
    let catalog = demo_with(&dir, PING);
    let args = [
        "--catalog",
        &catalog,
        "--set",
        "journeys.ack_timeout_ms=500",
    ];
    let server = Server::start(&dir, &args);
    let (_watcher, received) = watch_dispatches(&server, &["--channel", "content"]);
    // Two sends; the watcher prints them (it does not acknowledge).
    server.ok(&["track", "--customer", "k1", "--event", "page_view"]);
    server.ok(&["track", "--customer", "k2", "--event", "page_view"]);
    let mut first = std::collections::BTreeMap::new();
    while first.len() < 2 {
        let dispatch = next_dispatch(&received);
        let customer = dispatch["customer_id"]
            .as_str()
            .expect("a customer")
            .to_owned();
        first.entry(customer).or_insert(dispatch);
    }
    // k1's is acknowledged (durable once answered); k2's is not.
    let taken = server.json(&[
        "dispatches",
        "ack",
        "k1",
        first["k1"]["dispatch_id"].as_str().expect("an id"),
    ]);
    assert_eq!(taken["state"], "taken", "{taken}");
    kill_9(server);

    let server = Server::start_with_metrics(&dir, &args);
    let (_watcher, received) = watch_dispatches(&server, &["--ack"]);
    // k2's comes again, the same dispatch, and is taken now.
    let again = next_dispatch(&received);
    assert_eq!(again["customer_id"], "k2", "{again}");
    assert_eq!(again["dispatch_id"], first["k2"]["dispatch_id"], "{again}");
    assert!(again["delivery"].as_u64().expect("a count") >= 2, "{again}");
    assert_eq!(again["acknowledged"], "taken", "{again}");
    // Then only a new send: neither k1's nor k2's is handed out again.
    server.ok(&["track", "--customer", "k3", "--event", "page_view"]);
    let next = next_dispatch(&received);
    assert_eq!(next["customer_id"], "k3", "{next}");
    let runs = server.json(&["journeys", "runs", "k1"]);
    assert_eq!(runs["outbox"][0]["acknowledged"], true, "{runs}");
    // The dispatch metrics say the same: one subscriber, k2's handed out
    // again, k3's for the first time, both acknowledged.
    let metrics = scrape(server.metrics_address());
    assert_eq!(
        metrics.value("nudge_journey_dispatch_subscribers", &[]),
        1.0
    );
    let count = |result: &str| {
        metrics.value(
            "nudge_journey_dispatches_total",
            &[("channel", "content"), ("result", result)],
        )
    };
    assert!(
        count("redelivered") >= 1.0,
        "redelivered {}",
        count("redelivered")
    );
    assert!(
        count("handed_out") >= 1.0,
        "handed out {}",
        count("handed_out")
    );
    assert!(
        count("acknowledged") >= 2.0,
        "acknowledged {}",
        count("acknowledged")
    );
}
