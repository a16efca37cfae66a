//! The decision pipeline for one customer: 50 candidates × 64 features
//! (`nudge_models::synthetic`, the catalog and model the load bench serves).
//!
//! - `decide/50x64`: the whole pipeline (`decide`), rules included.
//! - `decide/50x64_no_rules`: the same catalog without CEL rules, to isolate
//!   the cost of building the CEL scope and evaluating rules.
//! - `score/extract_and_score_50x64`: feature extraction and scoring only.
//! - `record/record_decision`: recording a served decision (3 actions).
//!
//! Run: `cargo bench -p nudge-models --bench decide`. The target is ≤ 10 µs per
//! decision.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Action;
use nudge_models::features::FeatureInput;
use nudge_models::model::Model;
use nudge_models::pipeline::{Decision, DecisionRequest, Environment, Scoring, decide};
use nudge_models::synthetic;
use nudge_models::time::{HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::hint::black_box;

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").expect("valid instant")
}

fn benches(criterion: &mut Criterion) {
    let catalog = synthetic::catalog(true);
    let plain = synthetic::catalog(false);
    let model = Model::from_artifact(synthetic::model_artifact()).expect("the model is valid");
    let budgets = BudgetCounters::default();
    let state = synthetic::customer(&catalog, now());
    let context = BTreeMap::from([
        ("device".to_owned(), AttrValue::from("mobile")),
        ("hour".to_owned(), AttrValue::Num(13.0)),
        ("page".to_owned(), AttrValue::from("home")),
    ]);
    let request = DecisionRequest {
        placement: synthetic::PLACEMENT,
        context: &context,
        candidates: &[],
        limit: 0,
        dry_run: true,
        scoring: Scoring::Model,
        seed: 7,
        now: now(),
    };
    let env = Environment {
        catalog: &catalog,
        model: Some(&model),
        budgets: &budgets,
    };
    let plain_env = Environment {
        catalog: &plain,
        ..env
    };

    // Sanity: the benchmarked decision does real work.
    let decision = decide(&env, &state, &request).expect("decides");
    assert_eq!(decision.served.len(), 3, "{decision:#?}");
    assert_eq!(
        decision.served.len() + decision.filtered.len(),
        synthetic::ACTIONS
    );
    assert!(decision.fallback.is_none());
    let counts = decision.filtered_counts();
    eprintln!("bench decision: served 3, filtered {counts:?}");

    let mut group = criterion.benchmark_group("decide");
    group.bench_function("50x64", |bencher| {
        bencher.iter(|| decide(black_box(&env), black_box(&state), black_box(&request)))
    });
    group.bench_function("50x64_no_rules", |bencher| {
        bencher.iter(|| {
            decide(
                black_box(&plain_env),
                black_box(&state),
                black_box(&request),
            )
        })
    });
    group.finish();

    let actions: Vec<&Action> = catalog.actions.iter().collect();
    let input = FeatureInput {
        profile: &state.profile,
        context: &context,
        now: now(),
    };
    criterion.bench_function("score/extract_and_score_50x64", |bencher| {
        bencher.iter(|| model.score_actions(black_box(&input), black_box(&actions)))
    });
    criterion.bench_function("score/score_candidates_50x64", |bencher| {
        bencher.iter(|| {
            model.score_candidates(black_box(&catalog), black_box(&input), black_box(&actions))
        })
    });

    let served: Decision = decision;
    let later = Timestamp(now().0 + HOUR_MS);
    criterion.bench_function("record/record_decision", |bencher| {
        bencher.iter_batched_ref(
            || state.clone(),
            |fresh| {
                nudge_models::pipeline::record(
                    fresh,
                    "decision-bench",
                    black_box(&served),
                    &catalog,
                    later,
                )
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(decide_benches, benches);
criterion_main!(decide_benches);
