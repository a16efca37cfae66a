//! The whole server as `nudge serve` runs it: the background tasks (idle
//! sweeper, decision-log retention, reloads) on the service clock, and a clean
//! shutdown.

use nudge_models::time::Span;
use nudge_service::engine::Engine;
use nudge_service::store::TimeRange;
use nudge_tests::{DAY_MS, HOUR_MS, TempDir, TestServer, decide_request};

/// The customer ids in the decision log, oldest decision first.
fn logged_customers(engine: &Engine) -> Vec<String> {
    let mut customers = Vec::new();
    engine
        .export_blocking(
            TimeRange {
                since: None,
                until: None,
            },
            &mut |logged| {
                customers.push(logged.record.customer_id);
                true
            },
        )
        .expect("the log is readable");
    customers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_tasks_run_on_the_service_clock_and_shutdown_is_clean() {
    let files = TempDir::new("server");
    let catalog = files.join("catalog.toml");
    let model = files.join("model.json");
    std::fs::write(&catalog, nudge_models::demo::CATALOG_TOML).expect("write the catalog");
    std::fs::write(&model, nudge_models::demo::MODEL_JSON).expect("write the model");
    let server = TestServer::start_with(|config| {
        config.catalog = Some(catalog.clone());
        config.model = Some(model.clone());
        config.actors.idle_timeout_secs = 60;
        config.actors.sweep_interval_secs = 10;
        config.storage.decision_retention_days = 1;
        config.storage.compaction_interval_secs = 3_600;
    })
    .await;

    // The sweeper: an actor idle past the timeout is passivated without
    // anyone calling `passivate_idle`.
    server.decide(decide_request("c-old", "home_banner")).await;
    assert_eq!(server.engine.registry().live(), 1);
    server.clock.advance(Span(61_000));
    server
        .eventually("the sweeper has passivated the idle actor", |engine| {
            engine.registry().live() == 0
        })
        .await;
    assert_eq!(server.engine.stats().passivations, 1);

    // Retention: a day later, a decision older than a day is deleted at the
    // next compaction interval; a recent one stays.
    server.clock.advance(Span(DAY_MS - HOUR_MS));
    server
        .decide(decide_request("c-recent", "home_banner"))
        .await;
    assert_eq!(logged_customers(&server.engine), ["c-old", "c-recent"]);
    server.clock.advance(Span(2 * HOUR_MS));
    server
        .eventually("retention has deleted the old decision", |engine| {
            logged_customers(engine) == ["c-recent"]
        })
        .await;

    // Reload: the trigger re-reads the catalog and model files.
    let new_catalog = nudge_models::demo::CATALOG_TOML.replacen(
        "version = \"demo-2026-11\"",
        "version = \"demo-2026-12\"",
        1,
    );
    assert_ne!(new_catalog, nudge_models::demo::CATALOG_TOML);
    std::fs::write(&catalog, new_catalog).expect("write the new catalog");
    let new_model = nudge_models::demo::MODEL_JSON.replacen(
        &format!("\"version\": \"{}\"", nudge_models::demo::MODEL_VERSION),
        "\"version\": \"demo-reloaded\"",
        1,
    );
    assert_ne!(new_model, nudge_models::demo::MODEL_JSON);
    std::fs::write(&model, new_model).expect("write the new model");
    assert_eq!(server.engine.catalog().version, "demo-2026-11");
    server.reload();
    server
        .eventually("catalog and model are reloaded", |engine| {
            let serving = engine.shared().models.serving();
            engine.catalog().version == "demo-2026-12"
                && serving
                    .champion()
                    .is_some_and(|model| model.version() == "demo-reloaded")
        })
        .await;
    let response = server
        .decide(decide_request("c-reloaded", "home_banner"))
        .await;
    assert_eq!(response.catalog_version, "demo-2026-12");
    assert_eq!(response.model_version, "demo-reloaded");

    // Shutdown drains, stops every actor and ends without error.
    let engine = server.engine.clone();
    assert!(engine.registry().live() >= 1);
    server.stop().await;
    assert_eq!(engine.registry().live(), 0);
}
