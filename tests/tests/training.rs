//! `nudge train` → the running server: a model trained from a CSV of
//! customer attributes is reloaded as SIGHUP reloads it, and the next
//! decision is scored by it, with exactly the propensity the artifact gives
//! that customer.

use nudge_models::catalog::Catalog;
use nudge_models::features::FeatureInput;
use nudge_models::model::Model;
use nudge_models::profile::Profile;
use nudge_models::time::Timestamp;
use nudge_models::value::AttrValue;
use nudge_proto::v1::value::Kind;
use nudge_service::cli::train::{TrainArgs, train};
use nudge_tests::{DAY_MS, NOON, TempDir, TestServer, decide_request, event, number, text};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A deterministic number in [0, 1) for `n` (splitmix64).
fn uniform(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// 400 customers with attributes the demo's customers carry (`plan`) and
/// two more (`seats`, `vip`): pro and many seats convert more.
fn customers_csv() -> String {
    let mut csv = String::from("customer,plan,seats,vip,converted\n");
    for row in 0..400_u64 {
        let plan = ["trial", "starter", "pro", "enterprise"][(row % 4) as usize];
        let seats = 1 + (uniform(row) * 30.0) as u64;
        let vip = uniform(row + 1_000) < 0.3;
        let logit = match plan {
            "pro" | "enterprise" => 0.8,
            "starter" => 0.0,
            _ => -1.0,
        } + seats as f64 / 15.0
            - 1.0;
        let converted = uniform(row + 2_000) < nudge_models::model::sigmoid(logit);
        let _ = writeln!(csv, "c{row},{plan},{seats},{vip},{}", u8::from(converted));
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_model_is_reloaded_and_scores_the_next_decision() {
    let dir = TempDir::new("train");
    let csv = dir.join("customers.csv");
    std::fs::write(&csv, customers_csv()).expect("write the csv");
    let model_file = dir.join("model.json");
    // The server starts on the demo model, from the file it will re-read.
    std::fs::write(&model_file, nudge_models::demo::MODEL_JSON).expect("write the demo model");
    let server = TestServer::start_with({
        let model_file = model_file.clone();
        move |config| config.model = Some(model_file)
    })
    .await;
    let customer = "c-trained";
    let mut identify = event(customer, "id-1", "identify", NOON - DAY_MS);
    identify.properties = [
        ("plan".to_owned(), text("pro")),
        ("seats".to_owned(), number(12.0)),
        (
            "vip".to_owned(),
            nudge_proto::v1::Value {
                kind: Some(Kind::BoolValue(true)),
            },
        ),
    ]
    .into_iter()
    .collect();
    assert!(!server.track(identify).await);
    let before = server.decide(decide_request(customer, "home_banner")).await;
    assert_eq!(before.model_version, nudge_models::demo::MODEL_VERSION);

    let summary = tokio::task::spawn_blocking({
        let args = TrainArgs {
            csv: Some(csv),
            log: None,
            events: None,
            features: Vec::new(),
            catalog: None,
            score: Default::default(),
            label: Some("converted".to_owned()),
            id: Some("customer".to_owned()),
            time: None,
            action: None,
            ignore: Vec::new(),
            out: dir.path().to_owned(),
            holdout: 0.2,
            validation: 0.2,
            grid_rows: nudge_training::train::DEFAULT_GRID_ROWS,
            cold_start: false,
            grid_threads: None,
            balance: false,
            version: Some("trained-e2e-1".to_owned()),
            max_levels: 20,
            min_level_count: 5,
            // The demo model is there: replaced, as a retraining job would.
            force: true,
        };
        move || train(&args)
    })
    .await
    .expect("the training task does not panic")
    .expect("nudge train succeeds");
    assert_eq!(summary.version, "trained-e2e-1");
    let artifact = std::fs::read(&model_file).expect("model.json written");
    let model = Model::from_json(&artifact).expect("the service's loader accepts it");
    assert!(
        model
            .artifact()
            .features
            .iter()
            .any(|feature| feature == "is(plan,pro)"),
        "{:?}",
        model.artifact().features
    );

    // SIGHUP's reload: the server re-reads its model file.
    server.reload();
    server
        .eventually("the trained model serves", |engine| {
            engine.stats().model_version == "trained-e2e-1"
        })
        .await;
    let after = server.decide(decide_request(customer, "home_banner")).await;
    assert_eq!(after.model_version, "trained-e2e-1");
    assert!(!after.fallback);
    let served = after.served.first().expect("an action is served");

    // The artifact's own score for this customer, computed offline.
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("demo catalog");
    let action = catalog.action(&served.action_id).expect("a catalog action");
    let mut profile = Profile::default();
    let attributes: BTreeMap<String, AttrValue> = [
        ("plan".to_owned(), AttrValue::from("pro")),
        ("seats".to_owned(), AttrValue::from(12.0)),
        ("vip".to_owned(), AttrValue::from(true)),
    ]
    .into_iter()
    .collect();
    profile.apply_event(
        &nudge_models::profile::Event {
            event_id: "id-1".to_owned(),
            name: "identify".to_owned(),
            timestamp: Timestamp::from_millis(NOON - DAY_MS),
            properties: attributes,
        },
        Timestamp::from_millis(NOON),
    );
    let context = BTreeMap::new();
    let input = FeatureInput {
        profile: &profile,
        context: &context,
        now: Timestamp::from_millis(NOON),
    };
    let (_, scores) = model.score_actions(&input, &[action]);
    assert!(
        (served.propensity - scores[0]).abs() < 1e-12,
        "served propensity {} vs the artifact's {}",
        served.propensity,
        scores[0]
    );
    server.stop().await;
}
