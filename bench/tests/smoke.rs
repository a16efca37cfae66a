//! The load bench's smoke check against the real server: the generator's
//! mix of Decide (with a hot customer), Track, ReportOutcome and health
//! Check for a few seconds over 4 connections, on the durable store and the
//! synthetic 50-action × 64-feature catalog. It checks correctness only:
//! every call accounted for, none failed, every kind answered. No times.

use nudge_bench::load::{self, generator::Kind, process};
use nudge_service::store::{RedbStore, StoreOptions};
use nudge_tests::{TempDir, TestServer};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_mix_is_answered_in_full_on_the_durable_store() {
    let dir = TempDir::new("bench-smoke");
    let (catalog, model) =
        process::write_synthetic(dir.path()).expect("write the catalog and model");
    let store = Arc::new(
        RedbStore::open(&dir.join("data"), StoreOptions::default()).expect("open the store"),
    );
    let server = TestServer::start_with_store(store, |config| {
        config.catalog = Some(catalog);
        config.model = Some(model);
        // Correctness only: a shared 2-core runner building in debug can
        // queue calls past the queueing-delay target, and shedding them is
        // right there but not what this checks (the admission tests do).
        config.grpc.queue_delay_target_ms = 0;
    })
    .await;
    let channels = load::connect(server.addr, 4).await.expect("connect");

    let tallies = load::smoke(&channels).await.expect("every call answered");

    let decides = tallies[&Kind::Decide].ok + tallies[&Kind::DecideHot].ok;
    assert!(decides > 0);
    assert!(
        tallies[&Kind::DecideHot].ok > 0,
        "the hot customer was answered"
    );
    assert!(
        tallies[&Kind::Outcome].ok > 0,
        "outcomes found served actions"
    );
    // What the server counted agrees with what the generator sent.
    let stats = server.engine.stats();
    assert_eq!(stats.decisions, decides, "{stats:?}");
    assert_eq!(stats.events, tallies[&Kind::Track].ok, "{stats:?}");
    assert_eq!(stats.outcomes, tallies[&Kind::Outcome].ok, "{stats:?}");
}
