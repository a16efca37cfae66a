//! The whole decision pipeline for one customer: 50 candidates × 64 features
//! (`nudge_models::synthetic`, the catalog and model the load bench serves),
//! and recording what it served. Each stage alone is in `benches/stages.rs`.
//!
//! - `decide/50x64`: `decide` with the 10 CEL rules of the catalog.
//! - `decide/50x64_no_rules`: the same catalog without rules, to isolate
//!   what the rules cost inside the pipeline.
//! - `record/record_decision`: recording a served decision (3 actions).
//!
//! Run: `cargo bench -p nudge-models --bench decide`. The target is ≤ 10 µs
//! per decision with the rules.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nudge_models::budget::BudgetCounters;
use nudge_models::model::Model;
use nudge_models::pipeline::{Environment, decide, record};
use nudge_models::synthetic;
use nudge_models::time::{HOUR_MS, Timestamp};
use std::hint::black_box;

fn benches(criterion: &mut Criterion) {
    let now = synthetic::now();
    let catalog = synthetic::catalog(true);
    let plain = synthetic::catalog(false);
    let model = Model::from_artifact(synthetic::model_artifact()).expect("the model is valid");
    let budgets = BudgetCounters::default();
    let state = synthetic::customer(&catalog, now);
    let context = synthetic::context();
    let request = synthetic::request(&context, now);
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

    let later = Timestamp(now.0 + HOUR_MS);
    criterion.bench_function("record/record_decision", |bencher| {
        bencher.iter_batched_ref(
            || state.clone(),
            |fresh| {
                record(
                    fresh,
                    "decision-bench",
                    black_box(&decision),
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
