//! Global budgets survive a crash: the real `nudge serve` with a budget of
//! three serves three customers, is killed with SIGKILL, and after the
//! restart a fourth customer is refused `budget_exhausted`; a `failed`
//! delivery gives its unit back, durably too.

mod common;

use common::{Server, TempDir};
use serde_json::Value as Json;
use std::time::Duration;

/// One budgeted in-app action and one plain one, on one placement.
const CATALOG: &str = r#"[catalog]
name = "budgets"
version = "budgets-1"
timezone = "UTC"

[channels.in_app]

[[actions]]
id = "coupon"
channel = "in_app"
category = "promo"
value = 10.0
budget = 3

[[actions]]
id = "tip"
channel = "in_app"
category = "tips"

[placements.banner]
channels = ["in_app"]
slots = 1
"#;

fn decide(server: &Server, customer: &str) -> Json {
    server.json(&[
        "decide",
        "--customer",
        customer,
        "--placement",
        "banner",
        "--explain",
    ])
}

fn served(decision: &Json) -> Vec<String> {
    decision["served"]
        .as_array()
        .unwrap_or_else(|| panic!("no served array: {decision}"))
        .iter()
        .map(|action| action["action_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn filtered_reason(decision: &Json, action: &str) -> String {
    decision["filtered"]
        .as_array()
        .and_then(|filtered| {
            filtered
                .iter()
                .find(|f| f["action_id"] == action)
                .map(|f| f["reason"].as_str().unwrap_or_default().to_owned())
        })
        .unwrap_or_else(|| panic!("{action} not filtered: {decision}"))
}

/// SIGKILL, then wait until the process is gone.
fn kill_9(server: Server) {
    server.signal("-9");
    drop(server);
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn a_global_budget_survives_kill_9_and_a_failed_delivery_gives_its_unit_back() {
    let dir = TempDir::new("budgets");
    let catalog = dir.join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("write the catalog");
    let catalog = catalog.to_str().expect("a UTF-8 temp path").to_owned();

    let server = Server::start(&dir, &["--catalog", &catalog]);
    let mut first_decision = String::new();
    for customer in ["c1", "c2", "c3"] {
        let decision = decide(&server, customer);
        assert_eq!(served(&decision), ["coupon"], "{customer}: {decision}");
        if customer == "c1" {
            first_decision = decision["decision_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
    }
    let fourth = decide(&server, "c4");
    assert_eq!(served(&fourth), ["tip"], "{fourth}");
    assert_eq!(filtered_reason(&fourth, "coupon"), "budget_exhausted");
    kill_9(server);

    // Every acknowledged serve took its unit durably.
    let server = Server::start(&dir, &["--catalog", &catalog]);
    let after_restart = decide(&server, "c4");
    assert_eq!(served(&after_restart), ["tip"], "{after_restart}");
    assert_eq!(
        filtered_reason(&after_restart, "coupon"),
        "budget_exhausted",
        "the budget was reset by the restart: {after_restart}"
    );

    // A failed delivery gives c1's unit back, and that survives a crash too.
    server.ok(&[
        "outcome",
        "--customer",
        "c1",
        "--decision",
        &first_decision,
        "--action",
        "coupon",
        "--outcome",
        "failed",
    ]);
    kill_9(server);
    let server = Server::start(&dir, &["--catalog", &catalog]);
    let fifth = decide(&server, "c5");
    assert_eq!(served(&fifth), ["coupon"], "the unit came back: {fifth}");
    let sixth = decide(&server, "c6");
    assert_eq!(filtered_reason(&sixth, "coupon"), "budget_exhausted");
}
