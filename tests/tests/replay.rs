//! Point-in-time replay against the real server: the features training
//! recomputes for a logged decision, from the exported event log replayed
//! through the profile code, equal — bit for bit — the features the serving
//! model scored when it decided. Events, late events, duplicates, identify
//! attributes, request context and reported outcomes all take part.

use nudge_models::catalog::Catalog;
use nudge_models::features::FeatureSet;
use nudge_models::model::Model;
use nudge_proto::v1::{DecideRequest, Outcome, ReportOutcomeRequest};
use nudge_service::cli::export::read;
use nudge_service::cli::train::{TrainArgs, train};
use nudge_service::cli::{ClientArgs, ExportArgs, export_decisions};
use nudge_tests::{HOUR_MS, MINUTE_MS, NOON, TempDir, TestServer, event, text};
use nudge_training::log::{Features, dataset};
use std::collections::HashMap;

fn decide(customer: &str, placement: &str, context: &[(&str, &str)]) -> DecideRequest {
    DecideRequest {
        customer_id: customer.to_owned(),
        placement: placement.to_owned(),
        context: context
            .iter()
            .map(|(key, value)| ((*key).to_owned(), text(value)))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_features_equal_the_features_logged_at_decision_time() {
    let server = TestServer::start().await;
    let minute = nudge_models::time::Span(MINUTE_MS);
    let mut decisions = 0;
    for (customer, plan) in [("replay-a", "trial"), ("replay-b", "enterprise")] {
        let mut identify = event(
            customer,
            &format!("{customer}-id"),
            "identify",
            NOON - 40 * HOUR_MS,
        );
        identify.properties = [("plan".to_owned(), text(plan))].into_iter().collect();
        server.track(identify).await;
        for (n, name) in [
            "login",
            "page_view",
            "pricing_page_view",
            "feature_activated",
            "email_opened",
            "report_created",
        ]
        .iter()
        .enumerate()
        {
            let at = NOON - (n as i64 + 1) * 3 * HOUR_MS;
            server
                .track(event(customer, &format!("{customer}-{n}"), name, at))
                .await;
            server.clock.advance(minute);
        }
        for round in 0..4 {
            let context: &[(&str, &str)] = if round % 2 == 0 {
                &[("device", "mobile"), ("page", "billing")]
            } else {
                &[("page", "docs")]
            };
            let placement = if round < 2 {
                "home_banner"
            } else {
                "onboarding_sidebar"
            };
            let response = server.decide(decide(customer, placement, context)).await;
            decisions += 1;
            if let Some(served) = response.served.first() {
                for outcome in [Outcome::Impression, Outcome::Click] {
                    server
                        .decisions()
                        .await
                        .report_outcome(ReportOutcomeRequest {
                            customer_id: customer.to_owned(),
                            decision_id: response.decision_id.clone(),
                            action_id: served.action_id.clone(),
                            outcome: outcome.into(),
                            ..Default::default()
                        })
                        .await
                        .expect("the outcome is accepted");
                }
            }
            // More behaviour between decisions: a late event (an old
            // timestamp), a duplicate (not applied, not logged), a login.
            server.clock.advance(minute);
            server
                .track(event(
                    customer,
                    &format!("{customer}-late-{round}"),
                    "login",
                    NOON - 20 * HOUR_MS,
                ))
                .await;
            assert!(
                server
                    .track(event(customer, &format!("{customer}-0"), "login", NOON))
                    .await,
                "a duplicate"
            );
            server
                .track(event(
                    customer,
                    &format!("{customer}-pricing-{round}"),
                    "pricing_page_view",
                    NOON + round * MINUTE_MS,
                ))
                .await;
            server.clock.advance(minute);
        }
    }

    let scratch = TempDir::new("replay");
    let options = ClientArgs {
        server: format!("http://{}", server.addr),
        ..ClientArgs::default()
    };
    let export = |out, events| ExportArgs {
        out,
        since: None,
        until: None,
        format: None,
        data_dir: None,
        events,
    };
    let decisions_file = scratch.join("decisions.parquet");
    let events_file = scratch.join("events.parquet");
    let summary = export_decisions(&export(decisions_file.clone(), false), &options)
        .await
        .expect("the decision export succeeds");
    assert_eq!(summary.decisions, decisions);
    let summary = export_decisions(&export(events_file.clone(), true), &options)
        .await
        .expect("the event export succeeds");
    // Per customer: identify, 6 events, 3 per round (the duplicate is not
    // applied).
    assert_eq!(summary.events, Some(2 * (1 + 6 + 4 * 2)));

    let logged = read::decisions(&decisions_file).expect("the decision export reads back");
    let events = read::events(&events_file).expect("the event export reads back");
    let ordinals: Vec<u64> = events
        .iter()
        .filter(|event| event.customer_id == "replay-a")
        .map(|event| event.ordinal)
        .collect();
    assert_eq!(ordinals, (1..=15).collect::<Vec<_>>(), "numbered in order");
    assert!(
        logged
            .iter()
            .all(|decision| decision.record.events_applied.is_some()
                && decision.record.eligible.is_empty()),
        "every decision records its event count; the eligible actions only where the placement explores"
    );
    assert!(
        logged
            .iter()
            .any(|decision| decision.record.context.contains_key("device")),
        "the context is logged"
    );

    let model =
        Model::from_json(nudge_models::demo::MODEL_JSON.as_bytes()).expect("the demo model");
    let features = FeatureSet::parse(&model.feature_names()).expect("its features parse");
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("the demo catalog");
    let (data, summary) = dataset(
        "decisions.parquet",
        &logged,
        Features::Replayed {
            features: &features,
            events: &events,
            catalog: &catalog,
        },
    )
    .expect("the decisions replay");
    assert!(summary.rows > 0, "{summary:?}");
    assert_eq!(summary.skipped_unreplayable, 0, "{summary:?}");
    assert_eq!(summary.replay_checked, summary.rows, "{summary:?}");
    assert_eq!(
        summary.replay_mismatches, 0,
        "replayed features differ from the logged ones: {summary:?}"
    );
    // The logged-features dataset holds the very same matrix.
    let (logged_data, _) =
        dataset("decisions.parquet", &logged, Features::Logged).expect("logged features");
    assert_eq!(data.x, logged_data.x);
    assert_eq!(data.propensities, logged_data.propensities);

    // Without the customers' first events the replay refuses, saying why.
    let truncated: Vec<_> = events
        .iter()
        .filter(|event| event.ordinal > 1)
        .cloned()
        .collect();
    let error = dataset(
        "decisions.parquet",
        &logged,
        Features::Replayed {
            features: &features,
            events: &truncated,
            catalog: &catalog,
        },
    )
    .expect_err("no decision is replayable")
    .to_string();
    assert!(error.contains("not replayable"), "{error}");
    assert!(error.contains("start at number 2"), "{error}");
}

/// A deterministic number in [0, 1) for `n` (splitmix64).
fn uniform(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// `nudge train --log --events` on a log the real server made while
/// exploring: the new model is trained on replayed features, and its policy
/// is evaluated off-line against the logging policy on the holdout, with
/// every estimate inside its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_from_the_log_evaluates_the_new_policy_off_line() {
    let scratch = TempDir::new("train-log");
    // The demo catalog, with the home banner exploring: half of the time a
    // random eligible action.
    let catalog_file = scratch.join("catalog.toml");
    let catalog_text = nudge_models::demo::CATALOG_TOML.replacen(
        "exploration = { method = \"none\" }",
        "exploration = { method = \"epsilon\", epsilon = 0.5 }",
        1,
    );
    std::fs::write(&catalog_file, &catalog_text).expect("write the catalog");
    let server = TestServer::start_with({
        let catalog_file = catalog_file.clone();
        move |config| config.catalog = Some(catalog_file)
    })
    .await;
    let minute = nudge_models::time::Span(MINUTE_MS);
    for n in 0..800_u64 {
        let customer = format!("log-{n}");
        let plan = ["trial", "starter", "pro", "enterprise"][(n % 4) as usize];
        let mut identify = event(
            &customer,
            &format!("{customer}-id"),
            "identify",
            NOON - 30 * HOUR_MS,
        );
        identify.properties = [("plan".to_owned(), text(plan))].into_iter().collect();
        server.track(identify).await;
        for k in 0..(n % 5) {
            server
                .track(event(
                    &customer,
                    &format!("{customer}-{k}"),
                    "login",
                    NOON - (k as i64 + 1) * HOUR_MS,
                ))
                .await;
        }
        let device = if n % 3 == 0 { "mobile" } else { "desktop" };
        let response = server
            .decide(decide(&customer, "home_banner", &[("device", device)]))
            .await;
        if let Some(served) = response.served.first() {
            // Onboarding converts trials; everything converts a little.
            let rate = match (plan, served.action_id.as_str()) {
                ("trial", "welcome_tour") => 0.6,
                ("trial", _) => 0.25,
                (_, "welcome_tour") => 0.05,
                _ => 0.2,
            };
            if uniform(n) < rate {
                server
                    .decisions()
                    .await
                    .report_outcome(ReportOutcomeRequest {
                        customer_id: customer.clone(),
                        decision_id: response.decision_id.clone(),
                        action_id: served.action_id.clone(),
                        outcome: Outcome::Conversion.into(),
                        ..Default::default()
                    })
                    .await
                    .expect("the outcome is accepted");
            }
        }
        server.clock.advance(minute);
    }
    let options = ClientArgs {
        server: format!("http://{}", server.addr),
        ..ClientArgs::default()
    };
    let export = |out, events| ExportArgs {
        out,
        since: None,
        until: None,
        format: None,
        data_dir: None,
        events,
    };
    let decisions_file = scratch.join("decisions.parquet");
    let events_file = scratch.join("events.parquet");
    export_decisions(&export(decisions_file.clone(), false), &options)
        .await
        .expect("the decision export succeeds");
    export_decisions(&export(events_file.clone(), true), &options)
        .await
        .expect("the event export succeeds");

    let out = scratch.join("model");
    let args = TrainArgs {
        csv: None,
        log: Some(decisions_file),
        events: Some(events_file),
        features: Vec::new(),
        catalog: Some(catalog_file),
        score: Default::default(),
        label: None,
        id: None,
        time: None,
        action: None,
        ignore: Vec::new(),
        out: out.clone(),
        holdout: 0.25,
        validation: 0.2,
        grid_rows: nudge_training::train::DEFAULT_GRID_ROWS,
        cold_start: false,
        grid_threads: None,
        balance: false,
        version: Some("from-the-log".to_owned()),
        max_levels: 20,
        min_level_count: 5,
        force: false,
    };
    let summary = tokio::task::spawn_blocking(move || train(&args))
        .await
        .expect("the training task does not panic")
        .expect("nudge train --log succeeds");
    assert_eq!(summary.version, "from-the-log");
    let model = Model::from_json(&std::fs::read(&summary.model).expect("model.json"))
        .expect("the service's loader accepts it");
    let demo = Model::from_json(nudge_models::demo::MODEL_JSON.as_bytes()).expect("the demo model");
    assert_eq!(
        model.feature_names(),
        demo.feature_names(),
        "without --feature, the newest logged model's specs"
    );

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
            .expect("JSON");
    let ope = &report["ope"];
    assert!(ope.is_object(), "OPE reported: {}", report["ope_note"]);
    let decisions = ope["decisions"].as_u64().unwrap_or(0);
    assert!(decisions > 50, "{ope}");
    let note = report["ope_note"].as_str().unwrap_or_default();
    assert!(
        note.contains(&format!(
            "holdout decisions the model scored in placements that explore (only they log the eligible actions: home_banner {decisions})"
        )),
        "the note names the placements evaluated: {note}"
    );
    for estimator in ["logging", "ips", "snips", "doubly_robust"] {
        let interval = &ope[estimator];
        let (Some(low), Some(estimate), Some(high)) = (
            interval["low"].as_f64(),
            interval["estimate"].as_f64(),
            interval["high"].as_f64(),
        ) else {
            panic!("{estimator}: {interval}");
        };
        assert!(
            (0.0..=1.5).contains(&estimate) && low <= estimate && estimate <= high,
            "{estimator}: {interval}"
        );
    }
    assert!(ope["effective_sample_size"].as_f64().unwrap_or(0.0) >= 30.0);
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("doubly robust"),
        "the report shows the estimates"
    );
}
