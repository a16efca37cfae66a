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

const DEMO: &str = nudge_models::demo::MODEL_VERSION;

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
            holdout_auc: None,
            score: String::new(),
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
            force: false,
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
            force: false,
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
            .load_model(LoadModelRequest {
                artifact,
                holdout_auc: None,
                score: String::new(),
            })
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
                force: false,
            })
            .await
            .expect_err("refused");
        assert_eq!(error.code(), code, "{version} at {share}: {error:?}");
    }
    admin
        .load_model(LoadModelRequest {
            artifact: good,
            holdout_auc: None,
            score: String::new(),
        })
        .await
        .expect("a good artifact loads");
    for share in [0, 101] {
        let error = admin
            .promote_model(PromoteModelRequest {
                version: "v3".into(),
                share_percent: share,
                variant: String::new(),
                force: false,
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

/// A shadow model scores every decision silently: its scores land in the
/// export beside the serving model's, and `nudge evaluate` estimates off
/// line what it would have earned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_model_scores_silently_and_is_evaluated_from_the_export() {
    use nudge_proto::v1::{Outcome, ReportOutcomeRequest, SetShadowRequest};
    use nudge_service::cli::evaluate::{EvaluateArgs, evaluate};
    use nudge_service::cli::export::read;
    use nudge_service::cli::{ClientArgs, ExportArgs, export_decisions};

    let scratch = TempDir::new("shadow");
    let catalog_file = scratch.join("catalog.toml");
    std::fs::write(
        &catalog_file,
        nudge_models::demo::CATALOG_TOML.replacen(
            "exploration = { method = \"none\" }",
            "exploration = { method = \"epsilon\", epsilon = 0.5 }",
            1,
        ),
    )
    .expect("write the catalog");
    let server = TestServer::start_with({
        let catalog_file = catalog_file.clone();
        move |config| config.catalog = Some(catalog_file)
    })
    .await;
    let mut admin = server.admin().await;
    let mut artifact: serde_json::Value =
        serde_json::from_str(nudge_models::demo::MODEL_JSON).expect("the demo model");
    artifact["version"] = "shadow-1".into();
    // It likes upsells more than the serving model does (-0.8).
    let upsell = artifact["features"]
        .as_array()
        .and_then(|features| features.iter().position(|f| f == "category(upsell)"))
        .expect("the demo has an upsell feature");
    artifact["weights"][upsell] = (-0.2).into();
    admin
        .load_model(LoadModelRequest {
            artifact: serde_json::to_vec(&artifact).expect("JSON"),
            holdout_auc: None,
            score: String::new(),
        })
        .await
        .expect("loaded");
    let error = admin
        .set_shadow(SetShadowRequest {
            version: "not-loaded".into(),
        })
        .await
        .expect_err("an unknown model");
    assert_eq!(error.code(), Code::NotFound);
    admin
        .set_shadow(SetShadowRequest {
            version: "shadow-1".into(),
        })
        .await
        .expect("set");
    let listed = admin
        .list_models(ListModelsRequest {})
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.shadow, "shadow-1");

    for n in 0..300_u64 {
        let customer = format!("s-{n}");
        let response = server
            .decide(decide_request(&customer, "home_banner"))
            .await;
        assert_eq!(response.model_version, DEMO, "the shadow serves no one");
        if n % 3 == 0
            && let Some(served) = response.served.first()
        {
            server
                .decisions()
                .await
                .report_outcome(ReportOutcomeRequest {
                    customer_id: customer,
                    decision_id: response.decision_id.clone(),
                    action_id: served.action_id.clone(),
                    outcome: Outcome::Conversion.into(),
                    ..Default::default()
                })
                .await
                .expect("accepted");
        }
    }
    // A placement that does not explore: the shadow scores its decisions
    // too, but they cannot be evaluated by reweighting and are left out.
    for n in 300..330_u64 {
        server
            .decide(decide_request(&format!("s-{n}"), "onboarding_sidebar"))
            .await;
    }
    let file = scratch.join("decisions.parquet");
    export_decisions(
        &ExportArgs {
            out: file.clone(),
            since: None,
            until: None,
            format: None,
            data_dir: None,
            events: false,
        },
        &ClientArgs {
            server: format!("http://{}", server.addr),
            ..ClientArgs::default()
        },
    )
    .await
    .expect("exported");
    let logged = read::decisions(&file).expect("it reads back");
    assert_eq!(logged.len(), 330);
    let mut disagreements = 0;
    for decision in &logged {
        let shadow = decision
            .record
            .shadow
            .as_ref()
            .expect("scored by the shadow");
        assert_eq!(shadow.model_version, "shadow-1");
        assert_eq!(shadow.propensities.len(), decision.record.served.len());
        assert!(shadow.propensities.iter().all(|p| (0.0..=1.0).contains(p)));
        let choice = shadow.choice.as_deref().expect("something was eligible");
        if decision.record.placement != "home_banner" {
            continue;
        }
        assert!(decision.record.eligible.iter().any(|id| id == choice));
        if decision.record.served[0].action_id != choice {
            disagreements += 1;
        }
    }
    assert!(disagreements > 0, "the shadow ranks differently");

    let text = evaluate(&EvaluateArgs {
        log: file.clone(),
        shadow: None,
        json: true,
    })
    .expect("evaluated");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(report["shadow"], "shadow-1");
    assert_eq!(
        report["not_exploring"],
        serde_json::json!({"onboarding_sidebar": 30})
    );
    let evaluation = &report["evaluation"];
    assert_eq!(evaluation["decisions"], 300);
    let logging = evaluation["logging"]["estimate"].as_f64().unwrap_or(-1.0);
    assert!((logging - 100.0 / 300.0).abs() < 1e-9, "{evaluation}");
    for estimator in ["ips", "snips", "doubly_robust"] {
        let interval = &evaluation[estimator];
        let (Some(low), Some(estimate), Some(high)) = (
            interval["low"].as_f64(),
            interval["estimate"].as_f64(),
            interval["high"].as_f64(),
        ) else {
            panic!("{estimator}: {interval}");
        };
        assert!(
            low <= estimate && estimate <= high,
            "{estimator}: {interval}"
        );
    }
    let text = evaluate(&EvaluateArgs {
        log: file.clone(),
        shadow: None,
        json: false,
    })
    .expect("evaluated");
    assert!(
        text.starts_with("Shadow model shadow-1 on 300 logged decisions")
            && text.contains(
                "left out: decisions of placements that do not explore, onboarding_sidebar (30)"
            ),
        "{text}"
    );
    let error = evaluate(&EvaluateArgs {
        log: file,
        shadow: Some("never-set".into()),
        json: false,
    })
    .expect_err("no decision scored by it");
    assert!(
        error
            .to_string()
            .contains("scored by shadow model never-set (shadow models in the file: shadow-1)"),
        "{error}"
    );
}

/// Promotion compares holdout AUCs from the training reports: a model worse
/// than the serving one by more than `models.max_auc_drop` is refused unless
/// forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_a_worse_holdout_auc_is_promoted_only_when_forced() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    for (version, auc) in [("good", 0.80), ("worse", 0.75), ("close", 0.795)] {
        let loaded = admin
            .load_model(LoadModelRequest {
                artifact: challenger(version),
                holdout_auc: Some(auc),
                score: String::new(),
            })
            .await
            .expect("loaded")
            .into_inner();
        assert_eq!(loaded.model.and_then(|m| m.holdout_auc), Some(auc));
    }
    let error = admin
        .load_model(LoadModelRequest {
            artifact: challenger("odd"),
            holdout_auc: Some(1.5),
            score: String::new(),
        })
        .await
        .expect_err("an AUC above 1");
    assert_eq!(error.code(), Code::InvalidArgument);
    let promote = |version: &str, share, force| PromoteModelRequest {
        version: version.into(),
        share_percent: share,
        variant: String::new(),
        force,
    };
    // The demo serves with no known AUC: nothing to compare, allowed.
    admin
        .promote_model(promote("good", 100, false))
        .await
        .expect("promoted");
    let error = admin
        .promote_model(promote("worse", 50, false))
        .await
        .expect_err("0.05 below the serving model");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains(
            "model worse's holdout AUC 0.7500 is below the serving model good's 0.8000 by more than the allowed 0.01"
        ),
        "{}",
        error.message()
    );
    let listed = admin
        .list_models(ListModelsRequest {})
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(
        variants(&listed.variants),
        [("default".to_owned(), "good".to_owned(), 100)],
        "nothing changed"
    );
    admin
        .promote_model(promote("close", 50, false))
        .await
        .expect("within the margin");
    admin
        .rollback(RollbackRequest {})
        .await
        .expect("rolled back");
    admin
        .promote_model(promote("worse", 50, true))
        .await
        .expect("forced");
}
