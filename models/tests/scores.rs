//! Profile scores and tiers (`nudge_models::scores`): what they compute,
//! when a refresh is due (a score changes when its inputs do and not
//! otherwise), tiers in rules, journeys and features, and the catalog's and
//! a score model's validation.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::features::{FeatureInput, FeatureSet};
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact, sigmoid};
use nudge_models::pipeline::{DecisionRequest, Environment, FilterReason, Scoring, decide};
use nudge_models::profile::Event;
use nudge_models::scores::{RefreshPath, ScoreModels, Staleness};
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::sync::Arc;

const CATALOG: &str = r#"[catalog]
name = "scores"
version = "scores-1"
events = ["login", "feature_activated", "page_view", "payment_failed"]

[channels.in_app]
[channels.task]

[[actions]]
id = "tip"
channel = "in_app"
category = "tips"

[[actions]]
id = "rescue_call"
channel = "task"
category = "retention"
rule = "profile.tiers.churn == 'high'"

[[actions]]
id = "power_tips"
channel = "in_app"
category = "tips"
rule = "has(profile.scores.adoption) && profile.scores.adoption > 70.0"

[placements.home]
channels = ["in_app", "task"]
slots = 3

[[scores]]
id = "adoption"
description = "feature adoption, 0-100"
formula = { bias = 0, min = 0, max = 100, terms = [
  { feature = "count(feature_activated,30d)", weight = 10 },
  { feature = "count(login,7d)", weight = 5 },
] }

[[scores]]
id = "churn_risk"
model = true

[[scores]]
id = "clv"
clv = { value = "attr(mrr)", churn = "churn_risk", default_churn = 0.1, months = 12 }

[[tiers]]
id = "churn"
score = "churn_risk"
bands = [
  { name = "high", min = 0.6, when = "profile.days_since_login >= 14.0" },
  { name = "medium", min = 0.3, when = "profile.count_7d.login < 2" },
  { name = "low" },
]

[[tiers]]
id = "adopter"
score = "adoption"
bands = [{ name = "power", min = 70.0 }, { name = "casual" }]

[score_policy]
max_age = "1h"
min_interval = "5m"
"#;

const NOW: i64 = 1_800_000_000_000;

fn catalog() -> Catalog {
    Catalog::from_toml(CATALOG).unwrap_or_else(|problems| panic!("{problems}"))
}

fn event(name: &str, at: i64, index: usize) -> Event {
    Event {
        event_id: format!("{name}-{at}-{index}"),
        name: name.to_owned(),
        timestamp: Timestamp(at),
        properties: BTreeMap::new(),
    }
}

fn track(state: &mut CustomerState, name: &str, at: i64, index: usize) {
    state.track(&event(name, at, index), Timestamp(at));
}

fn identify(state: &mut CustomerState, name: &str, value: AttrValue, at: i64) {
    let mut identify = event("identify", at, 0);
    identify.properties.insert(name.to_owned(), value);
    state.track(&identify, Timestamp(at));
}

fn churn_model(features: &[&str], weights: &[f64], intercept: f64) -> Model {
    Model::from_artifact(ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "churn-1".to_owned(),
        description: String::new(),
        trained_at: None,
        features: features
            .iter()
            .map(|feature| (*feature).to_owned())
            .collect(),
        weights: weights.to_vec(),
        intercept,
        evidence: Default::default(),
    })
    .expect("a valid artifact")
}

fn models_with(model: Model) -> ScoreModels {
    ScoreModels::new(BTreeMap::from([("churn_risk".to_owned(), Arc::new(model))]))
}

fn refresh(catalog: &Catalog, models: &ScoreModels, state: &mut CustomerState, at: i64) -> bool {
    catalog.scores.refresh(
        models,
        &mut state.profile,
        &catalog.known_events,
        Timestamp(at),
    )
}

#[test]
fn formulas_clamp_models_score_and_clv_discounts_by_churn() {
    let catalog = catalog();
    let mut state = CustomerState::default();
    for index in 0..3 {
        track(&mut state, "feature_activated", NOW - DAY_MS, index);
    }
    track(&mut state, "login", NOW - HOUR_MS, 0);
    identify(&mut state, "mrr", AttrValue::Num(100.0), NOW - HOUR_MS);
    // Without a churn model: no churn score, CLV at the default churn.
    assert!(refresh(&catalog, &ScoreModels::default(), &mut state, NOW));
    let board = &state.profile.scores;
    assert_eq!(board.value("adoption"), Some(35.0));
    assert_eq!(board.value("churn_risk"), None);
    let expected_clv: f64 = (0..12).map(|month| 100.0 * 0.9f64.powi(month)).sum();
    assert!((board.value("clv").expect("clv") - expected_clv).abs() < 1e-9);
    assert_eq!(board.tier("adopter"), Some("casual"));
    // One login in 7 days: the rule-based default says medium.
    assert_eq!(board.tier("churn"), Some("medium"));

    // Forty activations would be 400: the formula's max holds it at 100.
    for index in 3..40 {
        track(&mut state, "feature_activated", NOW - DAY_MS, index);
    }
    let model = churn_model(&["days_since(login)"], &[0.5], -1.0);
    let models = models_with(model);
    assert!(refresh(&catalog, &models, &mut state, NOW));
    let board = &state.profile.scores;
    assert_eq!(board.value("adoption"), Some(100.0));
    let churn = sigmoid(0.5 * (1.0 / 24.0) - 1.0);
    assert!((board.value("churn_risk").expect("churn risk") - churn).abs() < 1e-12);
    // With the model, the bands compare the score: 0.27 is low.
    assert_eq!(board.tier("churn"), Some("low"));
    assert_eq!(board.tier("adopter"), Some("power"));
    let expected_clv: f64 = (0..12).map(|month| 100.0 * (1.0 - churn).powi(month)).sum();
    assert!((board.value("clv").expect("clv") - expected_clv).abs() < 1e-9);
}

#[test]
fn a_score_updates_when_its_inputs_change_and_not_otherwise() {
    let catalog = catalog();
    let scores = &catalog.scores;
    let models = ScoreModels::default();
    let mut state = CustomerState::default();
    track(&mut state, "login", NOW, 0);
    let due = |state: &CustomerState, at: i64, path| {
        scores.refresh_due(&models, &state.profile.scores, Timestamp(at), path)
    };
    assert_eq!(
        due(&state, NOW, RefreshPath::Background),
        Some(Staleness::Never)
    );
    refresh(&catalog, &models, &mut state, NOW);
    assert_eq!(due(&state, NOW, RefreshPath::Decision), None);
    let computed = state.profile.scores.clone();

    // An event no score reads: nothing is stale, and a refresh would
    // change nothing.
    let later = NOW + 60_000;
    assert!(!scores.reads_event(&models, "page_view"));
    track(&mut state, "page_view", later, 1);
    assert_eq!(due(&state, later, RefreshPath::Decision), None);
    assert_eq!(state.profile.scores, computed);

    // An input: stale. Off the decision path the throttle (5 minutes)
    // holds the refresh back; a decision refreshes first.
    assert!(scores.reads_event(&models, "feature_activated"));
    track(&mut state, "feature_activated", later, 2);
    state.profile.scores.stale = true;
    assert_eq!(due(&state, later, RefreshPath::Background), None);
    assert_eq!(
        due(&state, later, RefreshPath::Decision),
        Some(Staleness::Changed)
    );
    assert_eq!(
        due(&state, NOW + 5 * 60_000, RefreshPath::Background),
        Some(Staleness::Changed)
    );
    assert!(refresh(&catalog, &models, &mut state, later));
    assert_eq!(state.profile.scores.value("adoption"), Some(15.0));
    assert!(!state.profile.scores.stale);

    // Identify changes attributes the churn tier's rules and the CLV read.
    assert!(scores.reads_event(&models, "identify"));
    // A model's features are inputs too.
    let with_model = models_with(churn_model(&["count(payment_failed,30d)"], &[1.0], 0.0));
    assert!(!scores.reads_event(&models, "payment_failed"));
    assert!(scores.reads_event(&with_model, "payment_failed"));
    // Loading a model makes the scores computed without it stale.
    assert_eq!(
        scores.refresh_due(
            &with_model,
            &state.profile.scores,
            Timestamp(later),
            RefreshPath::Decision
        ),
        Some(Staleness::Redefined)
    );

    // Time alone moves windows and recency: past max_age a decision
    // refreshes.
    let hour_later = later + HOUR_MS;
    assert_eq!(
        due(&state, hour_later, RefreshPath::Decision),
        Some(Staleness::Aged)
    );
}

#[test]
fn a_catalog_without_scores_never_refreshes() {
    let catalog = Catalog::from_toml(
        r#"[catalog]
name = "plain"
[channels.in_app]
[[actions]]
id = "tip"
channel = "in_app"
category = "tips"
[placements.home]
channels = ["in_app"]
"#,
    )
    .expect("valid");
    let models = ScoreModels::default();
    assert!(catalog.scores.is_empty());
    assert!(!catalog.scores.reads_event(&models, "login"));
    let board = Default::default();
    assert_eq!(
        catalog
            .scores
            .refresh_due(&models, &board, Timestamp(NOW), RefreshPath::Decision),
        None
    );
}

fn decide_home(catalog: &Catalog, state: &CustomerState) -> nudge_models::pipeline::Decision {
    let budgets = BudgetCounters::default();
    let model = churn_model(&["action_value"], &[0.1], -1.0);
    let env = Environment {
        catalog,
        model: Some(&model),
        budgets: &budgets,
    };
    let context = BTreeMap::new();
    let request = DecisionRequest {
        placement: "home",
        context: &context,
        candidates: &[],
        limit: 3,
        dry_run: true,
        scoring: Scoring::Model,
        seed: 7,
        now: Timestamp(NOW),
    };
    decide(&env, state, &request).expect("decides")
}

#[test]
fn eligibility_rules_read_tiers_and_scores() {
    let catalog = catalog();
    let models = ScoreModels::default();
    // Logged in two weeks ago and not since: the rule-based tier is high.
    let mut lapsed = CustomerState::default();
    track(&mut lapsed, "login", NOW - 15 * DAY_MS, 0);
    refresh(&catalog, &models, &mut lapsed, NOW);
    assert_eq!(lapsed.profile.scores.tier("churn"), Some("high"));
    let decision = decide_home(&catalog, &lapsed);
    assert!(
        decision
            .served
            .iter()
            .any(|served| served.action_id == "rescue_call")
    );
    let power = decision
        .filtered
        .iter()
        .find(|filtered| &*filtered.action_id == "power_tips")
        .expect("power_tips filtered");
    assert_eq!(power.reason, FilterReason::NotEligible);

    // Active and adopting: not high, and a power user.
    let mut active = CustomerState::default();
    for index in 0..8 {
        track(&mut active, "feature_activated", NOW - DAY_MS, index);
        track(&mut active, "login", NOW - DAY_MS, index);
    }
    refresh(&catalog, &models, &mut active, NOW);
    assert_eq!(active.profile.scores.tier("churn"), Some("low"));
    let decision = decide_home(&catalog, &active);
    let served: Vec<&str> = decision
        .served
        .iter()
        .map(|served| served.action_id.as_str())
        .collect();
    assert!(served.contains(&"power_tips"), "{served:?}");
    assert!(!served.contains(&"rescue_call"), "{served:?}");
}

#[test]
fn features_read_scores_and_tiers() {
    let catalog = catalog();
    let mut state = CustomerState::default();
    track(&mut state, "feature_activated", NOW - DAY_MS, 0);
    refresh(&catalog, &ScoreModels::default(), &mut state, NOW);
    let features = FeatureSet::parse(&[
        "score(adoption)",
        "tier(adopter,casual)",
        "tier(churn,high)",
        "score(churn_risk)",
    ])
    .expect("parses");
    let context = BTreeMap::new();
    let input = FeatureInput {
        profile: &state.profile,
        context: &context,
        now: Timestamp(NOW),
    };
    // Never logged in: the rule-based churn tier says high.
    assert_eq!(features.customer_factors(&input), vec![10.0, 1.0, 1.0, 0.0]);
    let tip = catalog.action("tip").expect("tip");
    let words = features.specs()[0].describe(&input, tip);
    assert_eq!(words, "adoption score 10");
    let missing = features.specs()[3].describe(&input, tip);
    assert_eq!(missing, "no churn risk score yet");
    // An action model naming a score the catalog lacks does not fit it.
    let unknown =
        FeatureSet::parse(&["score(upsell_propensity)", "tier(churn,extreme)"]).expect("parses");
    assert_eq!(catalog.unknown_features(&unknown).len(), 2);
}

#[test]
fn a_score_model_is_refused_when_its_features_are_not_computable() {
    let catalog = catalog();
    let scores = &catalog.scores;
    let good = churn_model(
        &["days_since(login)", "score(adoption)"],
        &[0.1, -0.01],
        0.0,
    );
    assert_eq!(scores.check_model("churn_risk", &good), Ok(()));

    let context = churn_model(
        &["ctx(device_mobile)", "days_since(login)"],
        &[0.1, 0.1],
        0.0,
    );
    let problems = scores
        .check_model("churn_risk", &context)
        .expect_err("refused");
    assert!(problems[0].contains("ctx(device_mobile)"), "{problems:?}");
    assert!(problems[0].contains("request context"), "{problems:?}");

    let action = churn_model(&["category(tips)"], &[0.1], 0.0);
    assert!(scores.check_model("churn_risk", &action).is_err());

    // A score computed after it, or a tier (tiers come after every score).
    let later = churn_model(&["score(clv)"], &[0.1], 0.0);
    let problems = scores
        .check_model("churn_risk", &later)
        .expect_err("refused");
    assert!(problems[0].contains("not declared before"), "{problems:?}");
    let tier = churn_model(&["tier(adopter,power)"], &[0.1], 0.0);
    assert!(scores.check_model("churn_risk", &tier).is_err());

    // Not a model score, or not declared.
    assert!(scores.check_model("adoption", &good).is_err());
    let problems = scores.check_model("upsell", &good).expect_err("refused");
    assert_eq!(problems, ["the catalog declares no score 'upsell'"]);
}

/// The catalog's problems, as text, for `extra` appended to a valid base.
fn problems_of(extra: &str) -> String {
    let base = r#"[catalog]
name = "bad"
[channels.in_app]
[[actions]]
id = "tip"
channel = "in_app"
category = "tips"
[placements.home]
channels = ["in_app"]
"#;
    match Catalog::from_toml(&format!("{base}{extra}")) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(problems) => problems.to_string(),
    }
}

#[test]
fn bad_score_declarations_are_refused_with_field_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "[[scores]]\nid = \"a\"\nformula = { terms = [{ feature = \"ctx(page)\", weight = 1 }] }\n",
            "line 12: scores[0].formula.terms[0].feature: 'ctx(page)' reads the request context",
        ),
        (
            "[[scores]]\nid = \"a\"\nformula = { terms = [{ feature = \"score(b)\", weight = 1 }] }\n[[scores]]\nid = \"b\"\nmodel = true\n",
            "scores[0].formula.terms[0].feature: 'score(b)' reads score 'b', which is not declared before",
        ),
        (
            "[[scores]]\nid = \"a\"\nmodel = true\nformula = { terms = [{ feature = \"count(login,7d)\", weight = 1 }] }\n",
            "needs exactly one of `formula`, `model = true` and `clv`",
        ),
        (
            "[[scores]]\nid = \"a\"\nformula = { min = 10, max = 5, terms = [{ feature = \"count(login,7d)\", weight = 1 }] }\n",
            "max (5) must be above min (10)",
        ),
        (
            "[[scores]]\nid = \"a\"\nmodel = true\n[[scores]]\nid = \"a\"\nmodel = true\n",
            "score 'a' is declared twice",
        ),
        (
            "[[scores]]\nid = \"v\"\nclv = { value = \"attr(mrr)\", churn = \"risk\", months = 0 }\n",
            "scores[0].clv.churn: score 'risk' is not declared before this one",
        ),
        (
            "[[tiers]]\nid = \"t\"\nbands = [{ name = \"high\", min = 0.5 }]\n",
            "`min` compares the tier's score, and tier 't' has no `score`",
        ),
        (
            "[[tiers]]\nid = \"t\"\nbands = [{ name = \"all\" }, { name = \"never\", when = \"true\" }]\n",
            "band 'never' is never reached: band 'all' before it always holds",
        ),
        (
            "[[tiers]]\nid = \"t\"\nbands = [{ name = \"x\", when = \"context.page == 'home'\" }]\n",
            "reads context, which a tier's rule does not have",
        ),
        (
            "[[tiers]]\nid = \"t\"\nscore = \"nope\"\nbands = [{ name = \"x\" }]\n",
            "tiers[0].score: score 'nope' is not declared in [[scores]]",
        ),
        (
            "[[actions]]\nid = \"call\"\nchannel = \"in_app\"\ncategory = \"x\"\nrule = \"profile.tiers.churn == 'high'\"\n",
            "actions[1].rule: profile.tiers.churn: no tier 'churn' is declared",
        ),
        (
            "[[segments]]\nname = \"s\"\nrule = \"profile.scores.risk > 0.5\"\nactions = [\"tip\"]\n",
            "segments[0].rule: profile.scores.risk: no score 'risk' is declared",
        ),
        (
            "[score_policy]\nmax_age = \"soon\"\n",
            "score_policy.max_age",
        ),
    ];
    for (extra, expected) in cases {
        let problems = problems_of(extra);
        assert!(problems.contains(expected), "for {extra:?}: {problems}");
    }
    // The CLV horizon out of range is reported too.
    assert!(problems_of(cases[5].0).contains("scores[0].clv.months: 0 must be 1..=240"));
}

#[test]
fn scores_survive_the_state_encoding_and_its_delta() {
    let catalog = catalog();
    let mut state = CustomerState::default();
    track(&mut state, "login", NOW, 0);
    let before = state.clone();
    refresh(&catalog, &ScoreModels::default(), &mut state, NOW);
    let delta = nudge_models::delta::StateDelta::between(&before, &state);
    let mut applied = before.clone();
    delta.apply(&mut applied).expect("applies");
    assert_eq!(applied, state);
    let bytes = rmp_serde::to_vec_named(&state).expect("encodes");
    let back: CustomerState = rmp_serde::from_slice(&bytes).expect("decodes");
    assert_eq!(back.profile.scores, state.profile.scores);
    // A state written before scores existed reads back with none.
    let bytes = rmp_serde::to_vec_named(&before).expect("encodes");
    let back: CustomerState = rmp_serde::from_slice(&bytes).expect("decodes");
    assert!(back.profile.scores.is_empty());
}
