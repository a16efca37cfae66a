//! What profile scores and send times cost a decision, on the embedded demo
//! (4 scores, 2 tiers whose rule-based bands are CEL, its model):
//!
//! - `scores/fresh_check`: the check a decision makes when the scores are
//!   fresh (all it costs on the hot path then);
//! - `scores/refresh`: recomputing every score and tier (what a stale
//!   board costs the decision that refreshes it);
//! - `scores/refresh_with_churn_model`: the same with a 10-feature churn
//!   model loaded for `churn_risk` (tiers by its bands);
//! - `decide/demo_home_banner`: the decision itself, for scale;
//! - `send_time/suggest_email`: an email's suggested send time (a 24-hour
//!   search against caps, cooldowns, quiet hours and blackouts), what a
//!   decision serving an outbound action adds.
//!
//! Run: `cargo bench -p nudge-models --bench scores`.

use criterion::{Criterion, criterion_group, criterion_main};
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact};
use nudge_models::pipeline::{DecisionRequest, Environment, Scoring, decide};
use nudge_models::profile::{Event, IDENTIFY_EVENT};
use nudge_models::scores::{RefreshPath, ScoreModels};
use nudge_models::send_time::{PopulationClock, record_engagement, suggest};
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

/// 2026-11-23T12:00:00Z.
const NOW: i64 = 1_795_435_200_000;

fn customer(catalog: &Catalog) -> CustomerState {
    let mut state = CustomerState::default();
    let mut index = 0;
    let mut track =
        |state: &mut CustomerState, name: &str, at: i64, properties: &[(&str, AttrValue)]| {
            index += 1;
            let event = Event {
                event_id: format!("e{index}"),
                name: name.to_owned(),
                timestamp: Timestamp(at),
                properties: properties
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), value.clone()))
                    .collect(),
            };
            state.track(&event, Timestamp(NOW));
        };
    track(
        &mut state,
        IDENTIFY_EVENT,
        NOW - 60 * DAY_MS,
        &[
            ("plan", AttrValue::from("pro")),
            ("seats", AttrValue::Num(12.0)),
            ("timezone", AttrValue::from("Europe/Berlin")),
        ],
    );
    for day in 0..30 {
        let at = NOW - day * DAY_MS - 5 * HOUR_MS;
        track(&mut state, "login", at, &[]);
        track(&mut state, "page_view", at, &[]);
        if day % 3 == 0 {
            track(&mut state, "feature_activated", at, &[]);
            track(&mut state, "email_opened", at, &[]);
            record_engagement(catalog, &mut state.profile, Timestamp(at));
        }
    }
    state
}

fn churn_model() -> Model {
    let features = [
        "days_since(login)",
        "log_count(login,7d)",
        "log_count(login,30d)",
        "count(support_ticket_opened,30d)",
        "count(payment_failed,30d)",
        "log_count(feature_activated,30d)",
        "log_count(report_created,30d)",
        "tenure_days",
        "attr(seats)",
        "is(plan,trial)",
    ];
    Model::from_artifact(ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "churn-bench".to_owned(),
        description: String::new(),
        trained_at: None,
        features: features
            .iter()
            .map(|feature| (*feature).to_owned())
            .collect(),
        weights: vec![0.08, -0.4, -0.2, 0.3, 0.5, -0.3, -0.2, -0.001, -0.01, 0.4],
        intercept: -2.0,
        evidence: Default::default(),
    })
    .expect("a valid artifact")
}

fn benches(criterion: &mut Criterion) {
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("the demo catalog");
    let model =
        Model::from_json(nudge_models::demo::MODEL_JSON.as_bytes()).expect("the demo model");
    let now = Timestamp(NOW);
    let no_models = ScoreModels::default();
    let with_churn = ScoreModels::new(BTreeMap::from([(
        "churn_risk".to_owned(),
        Arc::new(churn_model()),
    )]));
    let mut state = customer(&catalog);
    catalog
        .scores
        .refresh(&no_models, &mut state.profile, &catalog.known_events, now);
    assert_eq!(
        catalog.scores.refresh_due(
            &no_models,
            &state.profile.scores,
            now,
            RefreshPath::Decision
        ),
        None
    );
    eprintln!("bench scores: {:?}", state.profile.scores);

    let mut group = criterion.benchmark_group("scores");
    group.bench_function("fresh_check", |bencher| {
        bencher.iter(|| {
            catalog.scores.refresh_due(
                black_box(&no_models),
                black_box(&state.profile.scores),
                black_box(now),
                RefreshPath::Decision,
            )
        })
    });
    let mut scratch = state.clone();
    group.bench_function("refresh", |bencher| {
        bencher.iter(|| {
            catalog.scores.refresh(
                black_box(&no_models),
                black_box(&mut scratch.profile),
                &catalog.known_events,
                black_box(now),
            )
        })
    });
    group.bench_function("refresh_with_churn_model", |bencher| {
        bencher.iter(|| {
            catalog.scores.refresh(
                black_box(&with_churn),
                black_box(&mut scratch.profile),
                &catalog.known_events,
                black_box(now),
            )
        })
    });
    group.finish();

    let budgets = BudgetCounters::default();
    let env = Environment {
        catalog: &catalog,
        model: Some(&model),
        budgets: &budgets,
    };
    let context = BTreeMap::new();
    let request = DecisionRequest {
        placement: "home_banner",
        context: &context,
        candidates: &[],
        limit: 1,
        dry_run: true,
        scoring: Scoring::Model,
        seed: 7,
        now,
    };
    let decision = decide(&env, &state, &request).expect("decides");
    assert_eq!(decision.served.len(), 1);
    let mut group = criterion.benchmark_group("decide");
    group.bench_function("demo_home_banner", |bencher| {
        bencher.iter(|| decide(black_box(&env), black_box(&state), black_box(&request)))
    });
    group.finish();

    let population = PopulationClock::default();
    let email = catalog
        .actions
        .iter()
        .find(|action| action.channel == "email")
        .expect("the demo has emails");
    assert!(suggest(&catalog, &state, email, &population, now, None).is_some());
    let mut group = criterion.benchmark_group("send_time");
    group.bench_function("suggest_email", |bencher| {
        bencher.iter(|| {
            suggest(
                black_box(&catalog),
                black_box(&state),
                black_box(email),
                black_box(&population),
                black_box(now),
                None,
            )
        })
    });
    group.finish();
}

criterion_group!(scores, benches);
criterion_main!(scores);
