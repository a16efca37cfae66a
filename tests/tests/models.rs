//! The model registry against the real server: load a model, try it on half
//! the customers, ramp, promote, roll back; the assignment survives a
//! restart; bad artifacts are refused while the serving model keeps serving.

use nudge_proto::v1::{
    ListModelsRequest, LoadModelRequest, PromoteModelRequest, RollbackRequest, ServingVariant,
    StatsRequest,
};
use nudge_service::store::{RedbStore, StoreOptions};
use nudge_tests::{TempDir, TestServer, decide_request};
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::Code;

const DEMO: &str = "demo-2026-11";

/// The demo model under another version, with the upsell weights raised so
/// it ranks differently.
fn challenger(version: &str) -> Vec<u8> {
    let mut artifact: serde_json::Value =
        serde_json::from_str(nudge_models::demo::MODEL_JSON).expect("the demo model");
    artifact["version"] = version.into();
    artifact["intercept"] = (-1.5).into();
    serde_json::to_vec(&artifact).expect("JSON")
}

async fn start(dir: &TempDir) -> TestServer {
    let store = Arc::new(RedbStore::open(dir.path(), StoreOptions::default()).expect("open"));
    let data_dir = dir.path().to_owned();
    TestServer::start_with_store(store, move |config| {
        config.storage.in_memory = false;
        config.storage.data_dir = data_dir;
    })
    .await
}

/// (variant, model version) of each of `customers`' decisions.
async fn assignments(server: &TestServer, customers: usize) -> Vec<(String, String)> {
    let mut seen = Vec::with_capacity(customers);
    for n in 0..customers {
        let response = server
            .decide(decide_request(&format!("c-{n}"), "home_banner"))
            .await;
        seen.push((response.variant, response.model_version));
    }
    seen
}

fn counts(seen: &[(String, String)]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for pair in seen {
        *counts.entry(pair.clone()).or_insert(0) += 1;
    }
    counts
}

fn variants(list: &[ServingVariant]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|v| (v.name.clone(), v.model_version.clone(), v.share_percent))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_is_tried_on_half_the_customers_kept_across_a_restart_and_rolled_back() {
    let dir = TempDir::new("registry");
    let server = start(&dir).await;
    let mut admin = server.admin().await;
    let loaded = admin
        .load_model(LoadModelRequest {
            artifact: challenger("v2"),
        })
        .await
        .expect("loaded")
        .into_inner();
    assert_eq!(loaded.model.map(|m| m.version), Some("v2".to_owned()));
    // Loaded, not serving.
    assert!(
        assignments(&server, 20)
            .await
            .iter()
            .all(|(variant, model)| variant == "default" && model == DEMO)
    );

    let changed = admin
        .promote_model(PromoteModelRequest {
            version: "v2".into(),
            share_percent: 50,
            variant: String::new(),
        })
        .await
        .expect("promoted")
        .into_inner();
    assert_eq!(
        variants(&changed.variants),
        [
            ("control".to_owned(), DEMO.to_owned(), 50),
            ("treatment".to_owned(), "v2".to_owned(), 50)
        ]
    );
    let before = assignments(&server, 400).await;
    let split = counts(&before);
    // Every decision is scored by its variant's model, and the split is
    // 200 ± 40 (four standard deviations of a fair binomial over 400).
    assert_eq!(split.len(), 2, "{split:?}");
    let treated = split
        .get(&("treatment".to_owned(), "v2".to_owned()))
        .copied()
        .unwrap_or(0);
    let control = split
        .get(&("control".to_owned(), DEMO.to_owned()))
        .copied()
        .unwrap_or(0);
    assert_eq!(treated + control, 400, "{split:?}");
    assert!((160..=240).contains(&treated), "{split:?}");
    // Admin.Stats counts decisions per variant (20 "default" before).
    let stats = admin
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    let by_variant: BTreeMap<&str, u64> = stats
        .variants
        .iter()
        .map(|v| (v.variant.as_str(), v.decisions))
        .collect();
    assert_eq!(
        by_variant,
        BTreeMap::from([
            ("control", control as u64),
            ("default", 20),
            ("treatment", treated as u64)
        ])
    );

    // A restart keeps the models, the experiment and every assignment.
    server.stop().await;
    let server = start(&dir).await;
    let after = assignments(&server, 400).await;
    assert_eq!(after, before, "the same customers get the same variants");
    let mut admin = server.admin().await;
    let listed = admin
        .list_models(ListModelsRequest {})
        .await
        .expect("listed")
        .into_inner();
    let versions: Vec<&str> = listed.models.iter().map(|m| m.version.as_str()).collect();
    assert_eq!(versions, [DEMO, "v2"]);

    // Rollback: everyone on the control again.
    let changed = admin
        .rollback(RollbackRequest {})
        .await
        .expect("rolled back")
        .into_inner();
    assert_eq!(
        variants(&changed.variants),
        [("default".to_owned(), DEMO.to_owned(), 100)]
    );
    assert!(
        assignments(&server, 50)
            .await
            .iter()
            .all(|(variant, model)| variant == "default" && model == DEMO)
    );

    // Promoted to everyone, then rolled back to the model before.
    admin
        .promote_model(PromoteModelRequest {
            version: "v2".into(),
            share_percent: 100,
            variant: String::new(),
        })
        .await
        .expect("promoted");
    assert!(
        assignments(&server, 20)
            .await
            .iter()
            .all(|(variant, model)| variant == "default" && model == "v2")
    );
    let listed = admin
        .list_models(ListModelsRequest {})
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.previous, [DEMO]);
    admin
        .rollback(RollbackRequest {})
        .await
        .expect("rolled back");
    assert!(
        assignments(&server, 20)
            .await
            .iter()
            .all(|(_, model)| model == DEMO)
    );
    let error = admin
        .rollback(RollbackRequest {})
        .await
        .expect_err("nothing left to roll back");
    assert_eq!(error.code(), Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_artifacts_and_promotions_are_refused_and_the_serving_model_keeps_serving() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let listing = || async {
        server
            .admin()
            .await
            .list_models(ListModelsRequest {})
            .await
            .expect("listed")
            .into_inner()
    };
    let before = listing().await;

    let good = challenger("v3");
    let mut nan: serde_json::Value = serde_json::from_slice(&good).expect("JSON");
    nan["weights"][0] = serde_json::Value::String("NaN".into());
    let mut unknown_format: serde_json::Value = serde_json::from_slice(&good).expect("JSON");
    unknown_format["format"] = "nudge.forest/v9".into();
    let mut unfit: serde_json::Value = serde_json::from_slice(&good).expect("JSON");
    unfit["features"][0] = "category(teleport) * is(plan,pro)".into();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "invalid model artifact",
        ),
        (
            "unknown format",
            serde_json::to_vec(&unknown_format).expect("JSON"),
            "nudge.forest/v9",
        ),
        (
            "NaN weight",
            serde_json::to_vec(&nan).expect("JSON"),
            "invalid model artifact",
        ),
        (
            "a feature the catalog cannot compute",
            serde_json::to_vec(&unfit).expect("JSON"),
            "category(teleport)",
        ),
    ];
    for (what, artifact, says) in cases {
        let error = admin
            .load_model(LoadModelRequest { artifact })
            .await
            .expect_err(what);
        assert_eq!(error.code(), Code::InvalidArgument, "{what}: {error:?}");
        assert!(
            error.message().contains(says),
            "{what}: {}",
            error.message()
        );
    }
    assert_eq!(listing().await, before, "nothing was loaded");

    let refused = [
        ("v-unknown", 50, Code::NotFound),
        (DEMO, 50, Code::FailedPrecondition),
    ];
    for (version, share, code) in refused {
        let error = admin
            .promote_model(PromoteModelRequest {
                version: version.into(),
                share_percent: share,
                variant: String::new(),
            })
            .await
            .expect_err("refused");
        assert_eq!(error.code(), code, "{version} at {share}: {error:?}");
    }
    admin
        .load_model(LoadModelRequest { artifact: good })
        .await
        .expect("a good artifact loads");
    for share in [0, 101] {
        let error = admin
            .promote_model(PromoteModelRequest {
                version: "v3".into(),
                share_percent: share,
                variant: String::new(),
            })
            .await
            .expect_err("refused");
        assert_eq!(error.code(), Code::InvalidArgument, "{share}: {error:?}");
    }
    let response = server.decide(decide_request("c-1", "home_banner")).await;
    assert_eq!(
        (response.variant.as_str(), response.model_version.as_str()),
        ("default", DEMO),
        "the serving model keeps serving"
    );
}
