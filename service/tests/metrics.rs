//! The Prometheus exporter of the real `nudge` binary: `nudge serve
//! --metrics-listen 127.0.0.1:PORT`, a few Decide/Track/ReportOutcome calls
//! through the client subcommands, then `/metrics` scraped over plain HTTP/1.1
//! and checked against what the calls returned.
//!
//! The metrics recorder is global to a process, so the server runs as a child
//! process, and this file is its own test binary (an in-process install here
//! cannot disturb any other test).

mod common;

use common::{DEMO_CATALOG, DEMO_VERSION_LINE, Server, TempDir, scrape};
use nudge_models::catalog::Catalog;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Most decisions made while waiting for a frequency cap to stop a candidate.
const MAX_DECISIONS: usize = 12;

/// Runs `decide … --explain --json` for customer `m1` on the onboarding sidebar.
fn decide(server: &Server) -> Json {
    server.json(&[
        "decide",
        "--customer",
        "m1",
        "--placement",
        "onboarding_sidebar",
        "--explain",
    ])
}

#[test]
fn metrics_are_scraped_over_http_and_match_the_calls() {
    let dir = TempDir::new("metrics");
    let server = Server::start_with_metrics(&dir, &[]);
    let address = server.metrics_address().to_owned();
    let catalog =
        Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("the demo catalog is valid");

    // Before any call: the versions, and the fixed label sets at zero.
    let before = scrape(&address);
    assert_eq!(
        before.value("nudge_catalog_info", &[("version", "demo-2026-11")]),
        1.0
    );
    assert_eq!(
        before.value(
            "nudge_model_info",
            &[("version", nudge_models::demo::MODEL_VERSION)]
        ),
        1.0
    );
    assert_eq!(before.value("nudge_actors_live", &[]), 0.0);
    assert_eq!(
        before.value("nudge_decide_filtered_total", &[("reason", "cap_channel")]),
        0.0
    );
    assert!(
        before
            .text
            .contains("# HELP nudge_decide_filtered_total Candidates not served"),
        "{}",
        before.text
    );

    // Decide until a frequency cap stops a candidate (the demo caps in-app
    // contacts at 5 and all contacts at 8 a week; each decision serves up to 3
    // and puts them in a 1 h cooldown), adding up what the answers said.
    let mut decisions = Vec::new();
    let mut served: BTreeMap<String, f64> = BTreeMap::new();
    let mut filtered: BTreeMap<String, f64> = BTreeMap::new();
    let mut cap_hits: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut fallbacks = [0.0_f64; 2];
    while cap_hits.is_empty() {
        assert!(
            decisions.len() < MAX_DECISIONS,
            "no cap stopped a candidate in {MAX_DECISIONS} decisions: {decisions:?}"
        );
        let decision = decide(&server);
        for action in decision["served"].as_array().expect("a served array") {
            let id = action["action_id"].as_str().expect("an action id");
            *served.entry(id.to_owned()).or_default() += 1.0;
        }
        for candidate in decision["filtered"].as_array().expect("a filtered array") {
            let reason = candidate["reason"].as_str().expect("a reason");
            *filtered.entry(reason.to_owned()).or_default() += 1.0;
            if let Some(scope) = reason.strip_prefix("cap_") {
                let id = candidate["action_id"].as_str().expect("an action id");
                let channel = &catalog.action(id).expect("a catalog action").channel;
                *cap_hits
                    .entry((scope.to_owned(), channel.clone()))
                    .or_default() += 1.0;
            }
        }
        let fallback = decision["fallback"].as_bool().expect("a fallback flag");
        fallbacks[usize::from(fallback)] += 1.0;
        decisions.push(decision);
    }
    let decision_id = decisions[0]["decision_id"]
        .as_str()
        .expect("a recorded decision has an id")
        .to_owned();
    let first_action = decisions[0]["served"][0]["action_id"]
        .as_str()
        .expect("the first decision served an action")
        .to_owned();

    // Events: one applied, its duplicate, and a name the catalog does not list.
    let login = [
        "track",
        "--customer",
        "m1",
        "--event",
        "login",
        "--id",
        "ev-1",
    ];
    server.ok(&login);
    server.ok(&login);
    server.ok(&["track", "--customer", "m1", "--event", "made_up_event"]);
    // A trial starts the demo's trial-conversion journey: its welcome goes
    // out in the onboarding sidebar and the run moves on to its first wait.
    server.ok(&["track", "--customer", "m2", "--event", "trial_started"]);
    // An outcome.
    server.ok(&[
        "outcome",
        "--customer",
        "m1",
        "--decision",
        &decision_id,
        "--action",
        &first_action,
        "--outcome",
        "click",
    ]);
    // A refused call: an unknown candidate.
    let refused = server.client(&[
        "decide",
        "--customer",
        "m1",
        "--placement",
        "onboarding_sidebar",
        "--candidate",
        "no_such_action",
    ]);
    assert!(!refused.status.success(), "{}", refused.describe());

    // The changes were acknowledged once in the write-ahead log; its
    // checkpoint (every five seconds) brings them into the data file.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let scraped = scrape(&address);
        if scraped
            .get("nudge_storage_checkpoint_duration_seconds_count", &[])
            .unwrap_or(0.0)
            >= 1.0
        {
            break scraped;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 20 s:\n{}",
            scraped.text
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // Every declared metric is exported, with its type.
    // Those of the Redis store and cluster mode only exist on such a node
    // (tests/tests/cluster.rs checks them there).
    for declaration in nudge_service::metrics::DECLARATIONS
        .iter()
        .filter(|d| !d.name.starts_with("nudge_redis_") && !d.name.starts_with("nudge_cluster_"))
    {
        let kind = match declaration.kind {
            nudge_service::metrics::Kind::Counter => "counter",
            nudge_service::metrics::Kind::Gauge => "gauge",
            nudge_service::metrics::Kind::Histogram => "histogram",
        };
        let line = format!("# TYPE {} {kind}", declaration.name);
        assert!(
            after.text.contains(&line),
            "no {line:?} in:\n{}",
            after.text
        );
    }

    // The checkpoint wrote the customers' snapshots: nothing went through
    // the state journal (used without the log only), nothing was settled.
    assert_eq!(after.value("nudge_storage_journal_records", &[]), 0.0);
    assert_eq!(after.value("nudge_storage_settled_total", &[]), 0.0);

    // Decide latency: one observation per decision, under its fallback label.
    let placement = ("placement", "onboarding_sidebar");
    for (fallback, count) in [("no", fallbacks[0]), ("yes", fallbacks[1])] {
        let labels = [placement, ("fallback", fallback)];
        assert_eq!(
            after.get("nudge_decide_duration_seconds_count", &labels),
            Some(count),
            "{fallback}"
        );
        let le_inf = [placement, ("fallback", fallback), ("le", "+Inf")];
        assert_eq!(
            after.get("nudge_decide_duration_seconds_bucket", &le_inf),
            Some(count)
        );
    }
    assert!(
        after.value(
            "nudge_decide_duration_seconds_sum",
            &[placement, ("fallback", "no")]
        ) > 0.0
    );
    let buckets = after
        .series("nudge_decide_duration_seconds_bucket")
        .into_iter()
        .filter_map(|(labels, _)| labels.get("le").cloned())
        .collect::<Vec<_>>();
    for le in ["0.00005", "0.0001", "0.001", "0.01", "0.1"] {
        assert!(
            buckets.iter().any(|bucket| bucket == le),
            "no le={le}: {buckets:?}"
        );
    }

    // Served per action, filtered per reason, cap hits per scope and channel:
    // exactly what the answers listed.
    for (action, count) in &served {
        let labels = [
            ("action", action.as_str()),
            placement,
            ("variant", "default"),
        ];
        assert_eq!(
            after.value("nudge_decide_served_total", &labels),
            *count,
            "{action}"
        );
    }
    assert_eq!(
        after.series("nudge_decide_served_total").len(),
        served.len(),
        "{}",
        after.text
    );
    let exported_filtered = after.series("nudge_decide_filtered_total");
    assert_eq!(exported_filtered.len(), 20, "one series per filter reason");
    for (labels, value) in exported_filtered {
        let reason = &labels["reason"];
        assert_eq!(
            value,
            filtered.get(reason).copied().unwrap_or(0.0),
            "filtered {reason}"
        );
    }
    let exported_caps = after.series("nudge_decide_cap_hits_total");
    for ((scope, channel), count) in &cap_hits {
        assert_eq!(
            after.value(
                "nudge_decide_cap_hits_total",
                &[("scope", scope), ("channel", channel)]
            ),
            *count,
            "{scope} {channel}"
        );
    }
    let exported_cap_total: f64 = exported_caps.iter().map(|(_, value)| value).sum();
    assert_eq!(exported_cap_total, cap_hits.values().sum::<f64>());
    for reason in ["model_missing", "deadline", "overloaded", "model_error"] {
        assert_eq!(
            after.value("nudge_decide_fallbacks_total", &[("reason", reason)]),
            0.0
        );
    }
    assert_eq!(
        after.value("nudge_actors_mailbox_saturated_total", &[]),
        0.0
    );

    // Actors, events, outcomes, refusals.
    // m1, and m2 of the journey.
    assert_eq!(after.value("nudge_actors_live", &[]), 2.0);
    assert_eq!(after.value("nudge_actors_activations_total", &[]), 2.0);
    assert_eq!(after.value("nudge_actors_passivations_total", &[]), 0.0);
    assert_eq!(
        after.value("nudge_events_ingested_total", &[("event", "login")]),
        1.0
    );
    assert_eq!(
        after.value("nudge_events_ingested_total", &[("event", "other")]),
        1.0
    );
    assert!(!after.text.contains("made_up_event"), "{}", after.text);
    assert_eq!(
        after.value("nudge_events_ingested_total", &[("event", "trial_started")]),
        1.0
    );
    // The journey: one run started, its welcome sent, the step left at once;
    // nothing ended.
    let journey = ("journey", "trial_conversion");
    assert_eq!(
        after.value(
            "nudge_journey_entries_total",
            &[journey, ("result", "started")]
        ),
        1.0
    );
    assert_eq!(
        after.value(
            "nudge_journey_sends_total",
            &[
                journey,
                ("step", "welcome"),
                ("result", "sent"),
                ("cause", "")
            ]
        ),
        1.0
    );
    assert_eq!(
        after.value(
            "nudge_journey_step_exits_total",
            &[journey, ("step", "welcome"), ("how", "done")]
        ),
        1.0
    );
    assert_eq!(
        after.get(
            "nudge_journey_step_seconds_count",
            &[journey, ("step", "welcome")]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.value(
            "nudge_journey_runs_ended_total",
            &[journey, ("ending", "converted")]
        ),
        0.0
    );
    assert_eq!(
        after.value("nudge_journey_timers", &[("state", "due")]),
        1.0
    );
    assert_eq!(after.value("nudge_events_duplicates_total", &[]), 1.0);
    assert_eq!(
        after.value(
            "nudge_outcomes_reported_total",
            &[("outcome", "click"), ("variant", "default")]
        ),
        1.0
    );
    assert_eq!(
        after.value(
            "nudge_outcomes_reported_total",
            &[("outcome", "conversion"), ("variant", "default")]
        ),
        0.0
    );
    assert_eq!(
        after.value("nudge_grpc_rejected_total", &[("reason", "invalid")]),
        1.0
    );
    assert_eq!(
        after.value("nudge_grpc_rejected_total", &[("reason", "deadline")]),
        0.0
    );

    // A catalog reload moves the info gauge to the new version.
    let demo = std::fs::read_to_string(DEMO_CATALOG).expect("read the demo catalog");
    let file = dir.join("catalog.toml");
    std::fs::write(
        &file,
        demo.replacen(DEMO_VERSION_LINE, r#"version = "metrics-2""#, 1),
    )
    .expect("write the new catalog");
    server.ok(&["reload", file.to_str().expect("temp path is UTF-8")]);
    let reloaded = scrape(&address);
    assert_eq!(
        reloaded.value("nudge_catalog_info", &[("version", "demo-2026-11")]),
        0.0
    );
    assert_eq!(
        reloaded.value("nudge_catalog_info", &[("version", "metrics-2")]),
        1.0
    );
}

#[test]
fn installing_over_another_recorder_is_an_error_not_a_panic() {
    use nudge_service::metrics::{InstallError, install};
    let address = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .expect("an address");
    assert!(matches!(install(address), Err(InstallError::NoRuntime)));
    metrics::set_global_recorder(metrics::NoopRecorder)
        .expect("the first recorder of this test process");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert!(matches!(
            install(address),
            Err(InstallError::AlreadyInstalled)
        ));
    });
    // The refused exporter's listener is closed again.
    std::net::TcpListener::bind(address).expect("the metrics port is free again");
}
