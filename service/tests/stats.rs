//! `nudge stats` of the real binary against a running `nudge serve`: off a
//! terminal (here stdout is a pipe) or with `--once` it prints one dashboard
//! and exits, without escape codes; `--json` prints one JSON snapshot.

mod common;

use common::{Server, TempDir};

#[test]
fn stats_once_prints_the_dashboard_sections() {
    let dir = TempDir::new("stats");
    let server = Server::start(&dir, &[]);
    server.ok(&["track", "--customer", "c-1", "--event", "login"]);
    server.ok(&[
        "consent",
        "--customer",
        "c-3",
        "--channel",
        "in_app",
        "--state",
        "opted-out",
    ]);
    for customer in ["c-1", "c-2", "c-3"] {
        server.ok(&[
            "decide",
            "--customer",
            customer,
            "--placement",
            "home_banner",
        ]);
    }

    let text = server.ok(&["stats", "--once"]);
    assert!(
        text.starts_with("nudge server up "),
        "the header comes first:\n{text}"
    );
    let versions = format!(
        "catalog demo-2026-11 · model {}",
        nudge_models::demo::MODEL_VERSION
    );
    let variants = format!(
        "Variants (serving everyone outside an experiment: model {})",
        nudge_models::demo::MODEL_VERSION
    );
    for needle in [
        versions.as_str(),
        "Rates per second averaged since the server started.",
        "PER SEC",
        "decisions",
        "events",
        "live customers 3",
        "Decide latency, last 60 s (3 decisions)",
        "p50 ",
        "p99 ",
        "p99.9 ",
        "Top actions served (",
        "Filtered by reason (",
        "opted_out",
        "not_eligible",
        "Fallbacks: none",
        variants.as_str(),
        "default",
        "100.0%",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(
        !text.contains('\x1b'),
        "no escape codes off a terminal:\n{text}"
    );

    // Without --once, stdout is still not a terminal: one snapshot, then exit.
    let piped = server.ok(&["stats", "--interval", "0.2"]);
    assert!(piped.starts_with("nudge server up "), "{piped}");
    assert!(!piped.contains("Ctrl-C"), "not the live view:\n{piped}");

    let json = server.json(&["stats"]);
    assert_eq!(json["decisions"], 3, "{json}");
    assert_eq!(json["latency"]["count"], 3, "{json}");
    assert!(json["latency"]["p50_micros"].as_u64() > Some(0), "{json}");
    assert_eq!(json["variants"][0]["variant"], "default", "{json}");
    assert_eq!(json["variants"][0]["decisions"], 3, "{json}");
    assert_eq!(json["fallbacks_by_reason"], serde_json::json!([]), "{json}");

    let refused = server.client(&["stats", "--interval", "0"]);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(
        refused.stderr.contains("--interval"),
        "{}",
        refused.describe()
    );
}
