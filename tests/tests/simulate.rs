//! `nudge simulate` against the real server: the simulator's summary
//! agrees with what the server logged (decisions, served actions,
//! outcomes, events), its true rewards come from the world's ground truth
//! of the served actions, the same seed gives the same run at any
//! concurrency, and the learning loop closes: simulate → export →
//! `nudge train --log --events` → reload → simulate the same customers
//! again under the trained model.

use nudge_models::model::Model;
use nudge_models::time::Span;
use nudge_service::cli::export::read;
use nudge_service::cli::model::{self, ModelAction, ModelArgs};
use nudge_service::cli::simulate::{Run, SimulateArgs};
use nudge_service::cli::train::{TrainArgs, train};
use nudge_service::clock::Clock as _;
use nudge_service::simulate::{ActionRef, Customer};
use nudge_tests::simulation::{
    client_args as client, export_logs as export, run_simulation as run, simulate_args as args,
};
use nudge_tests::{DAY_MS, TempDir, TestServer, demo_without_journeys};
use std::collections::HashMap;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_agrees_with_the_decision_log_and_the_truth() {
    let server = TestServer::start_on(demo_without_journeys(), |_| {}).await;
    let started_at = server.clock.now().millis();
    let mut simulation = args(200, 2, 7).simulation().expect("valid arguments");
    simulation.keep_records = true;
    let run = run(&server, &simulation).await;
    let summary = &run.summary;
    assert_eq!(summary.errors.total(), 0, "{:?}", summary.errors);
    assert_eq!(run.started_at, started_at);
    assert!(summary.visits > 100, "{summary:?}");
    assert_eq!(summary.events.duplicates, 0);

    let dir = TempDir::new("simulate");
    let (decisions_file, events_file) = export(&server, &dir).await;
    let logged = read::decisions(&decisions_file).expect("the decision export reads back");
    let events = read::events(&events_file).expect("the event export reads back");

    // Every decision the simulator counted is in the log, and nothing else.
    let overall = &summary.overall;
    assert_eq!(overall.decisions, logged.len() as u64);
    assert_eq!(run.records.len(), logged.len());
    assert_eq!(
        overall.decisions,
        summary.visits * 2,
        "two placements a visit"
    );
    // Every event it sent was applied and logged.
    let sent = summary.events.history
        + summary.events.sessions
        + summary.events.daily
        + summary.events.effects;
    assert_eq!(sent, events.len() as u64);
    assert!(summary.events.effects > 0, "conversions changed accounts");

    // The same served actions, in the same order, and the outcomes it
    // counted are the log's.
    let by_id: HashMap<&str, _> = logged
        .iter()
        .map(|decision| (decision.record.decision_id.as_str(), decision))
        .collect();
    let (mut served, mut impressions, mut clicks, mut conversions, mut dismisses) = (0, 0, 0, 0, 0);
    for record in &run.records {
        let decision = by_id[record.decision_id.as_str()];
        assert_eq!(decision.record.customer_id, record.customer_id);
        assert_eq!(decision.record.placement, record.placement);
        assert_eq!(
            decision.record.model_version.as_deref(),
            Some(record.model_version.as_str())
        );
        let ids: Vec<&str> = decision
            .record
            .served
            .iter()
            .map(|s| s.action_id.as_str())
            .collect();
        let seen: Vec<&str> = record.served.iter().map(|s| s.action_id.as_str()).collect();
        assert_eq!(ids, seen);
        for (outcomes, simulated) in decision.outcomes.iter().zip(&record.served) {
            served += 1;
            impressions += u64::from(outcomes.impression_at.is_some());
            clicks += u64::from(outcomes.click_at.is_some());
            conversions += u64::from(outcomes.converted);
            dismisses += u64::from(outcomes.dismiss_at.is_some());
            assert_eq!(outcomes.converted, simulated.outcome.conversion.is_some());
            if outcomes.converted {
                assert!(close(outcomes.reward, simulated.value), "{outcomes:?}");
            }
            if let (Some(at), Some(after)) = (outcomes.impression_at, simulated.outcome.impression)
            {
                assert_eq!(at.millis(), decision.record.at.millis() + after);
            }
        }
    }
    assert_eq!(
        (served, impressions, clicks, conversions, dismisses),
        (
            overall.served,
            overall.impressions,
            overall.clicks,
            overall.conversions,
            overall.dismisses
        )
    );
    assert!(overall.conversions > 0 && overall.clicks > overall.conversions);

    // The true reward is the mean truth of what was served, in [0, 1].
    let truths: Vec<f64> = run
        .records
        .iter()
        .flat_map(|r| r.served.iter().map(|s| s.truth.conversion))
        .collect();
    let true_reward = overall.true_reward().expect("something was served");
    assert!((0.0..=1.0).contains(&true_reward));
    assert!(close(
        true_reward,
        truths.iter().sum::<f64>() / truths.len() as f64
    ));
    for tally in summary.placements.values() {
        for rate in [
            tally.true_reward(),
            tally.observed_conversion_rate(),
            tally.best_eligible_reward(),
        ] {
            assert!(rate.is_some_and(|r| (0.0..=1.0).contains(&r)), "{tally:?}");
        }
        assert!(tally.regret().is_some_and(|r| r >= 0.0), "{tally:?}");
        // Without exploration the demo model serves its best P·V·L·C:
        // never above the best with the true probabilities.
        let (Some(priority), Some(best)) = (tally.true_priority(), tally.best_priority()) else {
            panic!("the model scored every decision: {tally:?}");
        };
        assert!(0.0 < priority && priority <= best, "{tally:?}");
    }
    let models: Vec<_> = summary.models.keys().cloned().collect();
    assert_eq!(
        models,
        [(
            nudge_models::demo::MODEL_VERSION.to_owned(),
            "default".to_owned()
        )],
        "the demo model served everything"
    );

    // Independently of the driver: a round-1 home banner decision comes
    // first in its visit, so a fresh copy of the customer with only its
    // history and round-1 session has the very truth recorded for it.
    let mut checked = 0;
    for record in run
        .records
        .iter()
        .filter(|r| r.round == 1 && r.placement == "home_banner")
    {
        let index: u64 = record.customer_id["sim7-".len()..]
            .parse()
            .expect("an index");
        let mut customer = Customer::new(7, "sim7", index, started_at);
        customer.history();
        customer.session(1, started_at).expect("they visited");
        let context = customer.context(1, "home_banner");
        for served in &record.served {
            let info = &simulation.actions[&served.action_id];
            let action = ActionRef {
                id: &served.action_id,
                channel: &info.channel,
                category: &info.category,
            };
            assert_eq!(customer.respond(action, context, started_at), served.truth);
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");

    // The same seed against the same (fresh) server and model: the same
    // run, one customer at a time as four.
    let again = TestServer::start_on(demo_without_journeys(), |_| {}).await;
    again
        .clock
        .set(nudge_models::time::Timestamp::from_millis(started_at));
    let mut serial = simulation.clone();
    serial.concurrency = 1;
    let second = self::run(&again, &serial).await;
    assert_eq!(second.summary, run.summary);
    let strip = |run: &Run| {
        run.records
            .iter()
            .map(|r| (r.customer_id.clone(), r.placement.clone(), r.served.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&second), strip(&run));
    again.stop().await;
    server.stop().await;
}

/// simulate → export → train on the log with replayed features → load →
/// promote to 50 % → simulate the same customers (same seed, fresh ids):
/// each model decides for about half of them → rollback → only the demo
/// model decides. Asserts that the loop runs; prints whether the true
/// reward improved (it is a small sample).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learning_loop_closes() {
    let dir = TempDir::new("simulate-loop");
    // The demo catalog with an exploring home banner, as a log for
    // training and off-policy evaluation needs.
    let catalog_file = dir.join("catalog.toml");
    let catalog_text = nudge_models::demo::CATALOG_TOML.replacen(
        "exploration = { method = \"none\" }",
        "exploration = { method = \"epsilon\", epsilon = 0.3 }",
        1,
    );
    std::fs::write(&catalog_file, &catalog_text).expect("write the catalog");
    let model_file = dir.join("model.json");
    std::fs::write(&model_file, nudge_models::demo::MODEL_JSON).expect("write the demo model");
    let server = TestServer::start_with({
        let (catalog_file, model_file) = (catalog_file.clone(), model_file.clone());
        move |config| {
            config.catalog = Some(catalog_file);
            config.model = Some(model_file);
        }
    })
    .await;
    let simulation = SimulateArgs {
        catalog: Some(catalog_file.clone()),
        ..args(400, 3, 11)
    }
    .simulation()
    .expect("valid arguments");
    let before = run(&server, &simulation).await;
    assert_eq!(
        before.summary.errors.total(),
        0,
        "{:?}",
        before.summary.errors
    );

    let (decisions_file, events_file) = export(&server, &dir).await;
    let out = dir.join("trained");
    let training = TrainArgs {
        csv: None,
        log: Some(decisions_file),
        events: Some(events_file),
        features: Vec::new(),
        catalog: Some(catalog_file.clone()),
        score: Default::default(),
        label: None,
        id: None,
        time: None,
        action: None,
        ignore: Vec::new(),
        out: out.clone(),
        holdout: 0.2,
        validation: 0.2,
        grid_rows: nudge_training::train::DEFAULT_GRID_ROWS,
        cold_start: false,
        grid_threads: None,
        balance: false,
        version: Some("simulated-1".to_owned()),
        max_levels: 20,
        min_level_count: 5,
        force: false,
    };
    let trained = tokio::task::spawn_blocking(move || train(&training))
        .await
        .expect("the training task does not panic")
        .expect("nudge train --log --events succeeds on the simulated log");
    // Load the trained model beside the demo's and try it on half the
    // customers, as `nudge model load` and `nudge model promote` do.
    let cli = |action, target: Option<String>, share| {
        let args = ModelArgs {
            action,
            target,
            share,
            variant: None,
            report: None,
            force: false,
            score: None,
        };
        let options = client(&server);
        async move {
            model::run(&args, &options)
                .await
                .expect("nudge model succeeds")
        }
    };
    let loaded = cli(
        ModelAction::Load,
        Some(trained.model.display().to_string()),
        None,
    )
    .await;
    assert!(loaded.contains("simulated-1"), "{loaded}");
    let promoted = cli(
        ModelAction::Promote,
        Some("simulated-1".to_owned()),
        Some(50),
    )
    .await;
    let demo = Model::from_json(nudge_models::demo::MODEL_JSON.as_bytes()).expect("the demo model");
    let demo = demo.version().to_owned();
    assert!(
        promoted.contains(&format!("control {demo} 50 %, treatment simulated-1 50 %")),
        "{promoted}"
    );
    server.clock.advance(Span(DAY_MS));

    // The very same customers and outcome draws, under fresh ids.
    let mut after_simulation = SimulateArgs {
        catalog: Some(catalog_file.clone()),
        prefix: Some("after".to_owned()),
        ..args(400, 3, 11)
    }
    .simulation()
    .expect("valid arguments");
    after_simulation.keep_records = true;
    let after = run(&server, &after_simulation).await;
    assert_eq!(
        after.summary.errors.total(),
        0,
        "{:?}",
        after.summary.errors
    );
    assert_eq!(after.summary.events.duplicates, 0, "fresh customers");
    assert_eq!(
        after.summary.visits, before.summary.visits,
        "the same visits"
    );
    let served_by: Vec<(String, String)> = after.summary.models.keys().cloned().collect();
    assert_eq!(
        served_by,
        [
            (demo.clone(), "control".to_owned()),
            ("simulated-1".to_owned(), "treatment".to_owned())
        ]
    );
    // Each customer is decided for by one model, and about half of the
    // customers by each: the assignment hashes the customer id, so the
    // treated count is binomial(n, ½); three standard deviations either side.
    let mut model_of: HashMap<&str, &str> = HashMap::new();
    for record in &after.records {
        let model = model_of
            .entry(&record.customer_id)
            .or_insert(&record.model_version);
        assert_eq!(*model, record.model_version, "{}", record.customer_id);
    }
    let customers = model_of.len() as f64;
    let treated = model_of.values().filter(|m| **m == "simulated-1").count() as f64;
    let tolerance = 3.0 * (customers * 0.25).sqrt();
    assert!(
        (treated - customers / 2.0).abs() <= tolerance,
        "{treated} of {customers} customers treated (tolerance ±{tolerance:.0})"
    );
    let listing = cli(ModelAction::List, None, None).await;
    assert!(
        listing.contains("Live guardrail (since")
            && listing.contains(&format!("control {demo} converted")),
        "{listing}"
    );

    // Rolled back: only the demo model again, for everyone.
    let rolled_back = cli(ModelAction::Rollback, None, None).await;
    assert!(
        rolled_back.contains(&format!("default {demo} 100 %")),
        "{rolled_back}"
    );
    server.clock.advance(Span(DAY_MS));
    let back = run(
        &server,
        &SimulateArgs {
            catalog: Some(catalog_file),
            prefix: Some("back".to_owned()),
            ..args(100, 1, 11)
        }
        .simulation()
        .expect("valid arguments"),
    )
    .await;
    let served_by: Vec<(String, String)> = back.summary.models.keys().cloned().collect();
    assert_eq!(served_by, [(demo.clone(), "default".to_owned())]);

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
            .expect("JSON");
    let figure = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
    eprintln!(
        "before: true reward {}, the first slot's true P·V·L·C {}",
        figure(before.summary.overall.true_reward()),
        figure(before.summary.overall.true_priority()),
    );
    for ((model, variant), tally) in &after.summary.models {
        eprintln!(
            "after, {variant} ({model}): true reward {}, true value {}, the first slot's true P·V·L·C {} (best {})",
            figure(tally.true_reward()),
            figure(tally.true_value_per_served()),
            figure(tally.true_priority()),
            figure(tally.best_priority()),
        );
    }
    eprintln!(
        "holdout AUC {}; OPE {}",
        report["auc"],
        if report["ope"].is_object() {
            report["ope"]["snips"].to_string()
        } else {
            report["ope_note"].to_string()
        }
    );
    server.stop().await;
}
