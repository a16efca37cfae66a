//! The registry's live guardrail: a challenger that converts clearly worse
//! is rolled back by itself (and the rollback survives a restart), an equal
//! one is left alone, a stage that ended is not acted on, and a ramp or a
//! restart begins a new stage.

use super::*;
use crate::testing::TempDir;
use nudge_models::catalog::Catalog;
use nudge_models::guardrail::Verdict;

fn demo(version: &str) -> Model {
    let mut artifact: serde_json::Value =
        serde_json::from_str(nudge_models::demo::MODEL_JSON).expect("the demo model");
    artifact["version"] = version.into();
    Model::from_json(artifact.to_string().as_bytes()).expect("a valid model")
}

fn catalog() -> Catalog {
    Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("the demo catalog")
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

/// A registry serving `m1`, with `m2` loaded and tried on half the
/// customers from time 1,000.
fn experimenting(dir: Option<PathBuf>, guardrail: Option<SequentialTest>) -> ModelRegistry {
    let registry = ModelRegistry::open(dir, Some(demo("m1")), at(0), guardrail).expect("opened");
    registry
        .load(demo("m2"), &catalog(), None)
        .expect("m2 loads");
    registry
        .promote("m2", 50, None, None, at(1_000))
        .expect("m2 is tried");
    registry
}

/// A customer of each arm: the control's, the challenger's.
fn customers(registry: &ModelRegistry) -> [String; 2] {
    let serving = registry.serving();
    [0, 1].map(|arm| {
        (0..1_000)
            .map(|n| format!("customer-{n}"))
            .find(|customer| serving.experiment.arm_of(customer) == Some(arm))
            .expect("a customer in each arm")
    })
}

/// Serves `served` actions to each arm and converts the given numbers,
/// for decisions made at `decision_at`.
fn feed(registry: &ModelRegistry, served: usize, conversions: [usize; 2], decision_at: i64) {
    let serving = registry.serving();
    let trial = serving.trial().expect("a trial runs");
    for (customer, conversions) in customers(registry).iter().zip(conversions) {
        trial.served(customer, served);
        for _ in 0..conversions {
            trial.converted(customer, at(decision_at));
        }
    }
}

#[test]
fn a_clearly_worse_challenger_is_rolled_back_and_the_record_survives_a_restart() {
    let dir = TempDir::new("registry-guardrail");
    let registry = experimenting(Some(dir.path().to_owned()), Some(SequentialTest::default()));
    feed(&registry, 2_000, [200, 80], 1_500);
    let trial = registry.serving().trial().cloned().expect("a trial");
    let rollback = registry
        .check_guardrail(&trial, at(9_000))
        .expect("written")
        .expect("rolled back");
    assert_eq!(rollback.at, at(9_000));
    assert_eq!(rollback.status.since, at(1_000));
    assert_eq!(rollback.status.challenger.model_version, "m2");
    assert_eq!(rollback.status.reading.verdict, Verdict::Worse);
    let reason = rollback.reason();
    assert!(
        reason.contains("treatment (model m2) converted 4.00 % of 2000")
            && reason.contains("10.00 % of 2000"),
        "{reason}"
    );
    let serving = registry.serving();
    assert_eq!(serving.experiment, Experiment::single("m1"));
    assert!(serving.trial().is_none());
    // Read again, the same trial acts no more.
    assert_eq!(
        registry
            .check_guardrail(&trial, at(9_500))
            .expect("no error"),
        None
    );

    let listing = registry.list();
    assert_eq!(listing.guardrail, None, "no experiment runs");
    assert_eq!(listing.last_guardrail_rollback, Some(rollback.clone()));
    drop(registry);
    let reopened = ModelRegistry::open(
        Some(dir.path().to_owned()),
        Some(demo("m1")),
        at(20_000),
        Some(SequentialTest::default()),
    )
    .expect("reopened");
    assert_eq!(reopened.list().last_guardrail_rollback, Some(rollback));
    assert_eq!(reopened.serving().experiment, Experiment::single("m1"));
}

#[test]
fn an_equal_challenger_is_left_alone_and_shown_live() {
    let registry = experimenting(None, Some(SequentialTest::default()));
    feed(&registry, 5_000, [400, 400], 1_500);
    let trial = registry.serving().trial().cloned().expect("a trial");
    assert_eq!(
        registry
            .check_guardrail(&trial, at(9_000))
            .expect("no error"),
        None
    );
    assert_eq!(registry.serving().experiment.variants.len(), 2);
    let status = registry.list().guardrail.expect("a live reading");
    assert_eq!(status.since, at(1_000));
    assert_eq!(status.reading.verdict, Verdict::NoDifference);
    assert_eq!(
        (
            status.reading.control.served,
            status.reading.challenger.conversions
        ),
        (5_000, 400)
    );
    assert_eq!(status.challenger.variant, "treatment");
}

#[test]
fn conversions_of_decisions_before_the_stage_do_not_count() {
    let registry = experimenting(None, Some(SequentialTest::default()));
    feed(&registry, 2_000, [200, 80], 999);
    let trial = registry.serving().trial().cloned().expect("a trial");
    assert_eq!(trial.arms()[0].conversions, 0);
    assert_eq!(
        registry
            .check_guardrail(&trial, at(9_000))
            .expect("no error"),
        None
    );
}

#[test]
fn the_guardrail_off_never_rolls_back() {
    let registry = experimenting(None, None);
    feed(&registry, 2_000, [200, 0], 1_500);
    let trial = registry
        .serving()
        .trial()
        .cloned()
        .expect("figures are still counted");
    assert_eq!(
        registry
            .check_guardrail(&trial, at(9_000))
            .expect("no error"),
        None
    );
    assert_eq!(registry.serving().experiment.variants.len(), 2);
    assert_eq!(registry.list().guardrail, None);
}

#[test]
fn a_ramp_or_a_restart_begins_a_new_stage_and_an_ended_one_is_not_acted_on() {
    let dir = TempDir::new("registry-stages");
    let registry = experimenting(Some(dir.path().to_owned()), Some(SequentialTest::default()));
    feed(&registry, 2_000, [200, 80], 1_500);
    let first = registry.serving().trial().cloned().expect("a trial");
    registry
        .promote("m2", 60, None, None, at(5_000))
        .expect("ramped");
    let second = registry.serving().trial().cloned().expect("a new trial");
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.since(), at(5_000));
    assert_eq!(second.arms()[0].served, 0);
    // The first stage's "worse" reading no longer acts.
    assert_eq!(
        registry
            .check_guardrail(&first, at(9_000))
            .expect("no error"),
        None
    );
    assert_eq!(registry.serving().experiment.variants.len(), 2);

    drop(registry);
    let reopened = ModelRegistry::open(
        Some(dir.path().to_owned()),
        Some(demo("m1")),
        at(20_000),
        Some(SequentialTest::default()),
    )
    .expect("reopened");
    let serving = reopened.serving();
    let trial = serving.trial().expect("the experiment still runs");
    assert_eq!(trial.since(), at(20_000));
    assert_eq!(trial.arms(), [Default::default(); 2]);
    // A manual rollback ends the trial.
    reopened.rollback().expect("rolled back");
    assert!(reopened.serving().trial().is_none());
}

#[test]
fn a_reload_of_the_model_file_during_an_experiment_replaces_the_control_and_begins_a_new_stage() {
    let registry = experimenting(None, Some(SequentialTest::default()));
    feed(&registry, 2_000, [200, 200], 1_500);
    let first = registry.serving().trial().cloned().expect("a trial");
    let replaced = registry
        .replace_champion(demo("m1-retrained"), &catalog(), at(6_000))
        .expect("reloaded");
    assert_eq!(replaced, "m1");
    let serving = registry.serving();
    let versions: Vec<&str> = serving
        .experiment
        .variants
        .iter()
        .map(|variant| variant.model_version.as_str())
        .collect();
    assert_eq!(
        versions,
        ["m1-retrained", "m2"],
        "the challenger keeps its share"
    );
    let trial = serving.trial().expect("a new stage");
    assert!(!Arc::ptr_eq(trial, &first));
    assert_eq!((trial.since(), trial.arms()[0].served), (at(6_000), 0));
    assert_eq!(registry.list().previous, ["m1"]);
}

#[test]
fn the_shadow_and_the_aucs_survive_a_restart() {
    let dir = TempDir::new("registry-restart");
    let open = || {
        ModelRegistry::open(Some(dir.path().to_owned()), Some(demo("m1")), at(0), None)
            .expect("opened")
    };
    let registry = open();
    registry
        .load(demo("m2"), &catalog(), Some(0.71))
        .expect("m2 loads");
    registry.set_shadow(Some("m2")).expect("shadow set");
    drop(registry);
    let reopened = open();
    let listing = reopened.list();
    assert_eq!(listing.shadow.as_deref(), Some("m2"));
    let aucs: Vec<(String, Option<f64>)> = listing
        .models
        .iter()
        .map(|model| (model.version.clone(), model.holdout_auc))
        .collect();
    assert_eq!(
        aucs,
        [("m1".to_owned(), None), ("m2".to_owned(), Some(0.71))]
    );
    assert_eq!(
        reopened.serving().shadow().map(|model| model.version()),
        Some("m2")
    );
}

#[test]
fn a_registry_file_naming_a_missing_artifact_is_refused_with_the_path() {
    let dir = TempDir::new("registry-missing");
    let registry = experimenting(Some(dir.path().to_owned()), None);
    drop(registry);
    let artifact = std::fs::read_dir(dir.path())
        .expect("the models directory")
        .map(|entry| entry.expect("an entry").path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("m2-"))
        })
        .expect("m2's artifact");
    std::fs::remove_file(&artifact).expect("removed");
    let error = ModelRegistry::open(Some(dir.path().to_owned()), Some(demo("m1")), at(0), None)
        .expect_err("a model is missing")
        .to_string();
    assert!(
        error.contains(&artifact.display().to_string()),
        "the error names the file: {error}"
    );
    std::fs::write(
        dir.path().join(REGISTRY_FILE),
        "{\"format\": \"nudge.registry/v9\"}",
    )
    .expect("written");
    let error = ModelRegistry::open(Some(dir.path().to_owned()), Some(demo("m1")), at(0), None)
        .expect_err("another format")
        .to_string();
    assert!(error.contains("registry.json"), "{error}");
}
