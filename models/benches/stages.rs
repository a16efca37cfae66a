//! Each stage of the decision pipeline alone, on the inputs of
//! `benches/decide.rs` (`nudge_models::synthetic`: 50 candidates × 64
//! features, 10 CEL rules), so a change to one stage shows where it lands.
//!
//! - `features/customer_64`: the customer side of the 64 features (what a
//!   decision computes once; the action side is cached per catalog).
//! - `score/score_candidates_50x64`: the serving path, features and
//!   propensities of the 50 candidates.
//! - `score/extract_and_score_50x64`: the training path, the full feature
//!   matrix, then the propensities.
//! - `filters/policy_50`: the hard filters without the rules (placement,
//!   consent, quiet hours, blackouts, cooldowns, caps, budgets).
//! - `rules/eligibility_10`: the 10 CEL rules alone, in the one CEL scope a
//!   decision's rules share.
//! - `delta/between_decision`, `delta/apply_decision`: after the step that
//!   follows the pipeline (a recorded decision serving 3 actions), the
//!   change it made to the customer's state found, and applied to the state
//!   before it: what the store journals instead of the whole state.
//!
//! Run: `cargo bench -p nudge-models --bench stages`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Action;
use nudge_models::delta::StateDelta;
use nudge_models::features::FeatureInput;
use nudge_models::model::Model;
use nudge_models::pipeline::stages::{eligibility_rules, policy_filters};
use nudge_models::pipeline::{DecisionRequest, Environment, RecordAs, decide_and_record};
use nudge_models::synthetic;
use std::hint::black_box;

fn benches(criterion: &mut Criterion) {
    let now = synthetic::now();
    let catalog = synthetic::catalog(true);
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
    let input = FeatureInput {
        profile: &state.profile,
        context: &context,
        now,
    };
    let actions: Vec<&Action> = catalog.actions.iter().collect();

    // Sanity: each stage does the work it is named for.
    let policy = policy_filters(&env, &state, &request).expect("filters");
    assert_eq!(
        policy.passed.len() + policy.filtered.len(),
        synthetic::ACTIONS
    );
    let rules = eligibility_rules(&env, &state, &request).expect("evaluates");
    assert_eq!(rules.passed.len() + rules.filtered.len(), 10);
    let mut decided = state.clone();
    let record_as = RecordAs {
        shadow: None,
        decision_id: "decision-bench",
        customer_id: "customer-bench",
        variant: "control",
    };
    let recorded = decide_and_record(
        &env,
        &mut decided,
        &DecisionRequest {
            dry_run: false,
            ..request.clone()
        },
        Some(record_as),
        || true,
    )
    .expect("decides")
    .expect("still wanted");
    assert_eq!(recorded.decision.served.len(), 3);
    let delta = StateDelta::between(&state, &decided);
    let mut rebuilt = state.clone();
    delta.apply(&mut rebuilt).expect("the delta fits");
    assert_eq!(rebuilt, decided);
    eprintln!(
        "bench stages: policy passes {} of {}, rules pass {} of 10",
        policy.passed.len(),
        synthetic::ACTIONS,
        rules.passed.len()
    );

    criterion.bench_function("features/customer_64", |bencher| {
        bencher.iter(|| model.features().customer_factors(black_box(&input)))
    });
    criterion.bench_function("score/score_candidates_50x64", |bencher| {
        bencher.iter(|| {
            model.score_candidates(black_box(&catalog), black_box(&input), black_box(&actions))
        })
    });
    criterion.bench_function("score/extract_and_score_50x64", |bencher| {
        bencher.iter(|| model.score_actions(black_box(&input), black_box(&actions)))
    });
    criterion.bench_function("filters/policy_50", |bencher| {
        bencher.iter(|| policy_filters(black_box(&env), black_box(&state), black_box(&request)))
    });
    criterion.bench_function("rules/eligibility_10", |bencher| {
        bencher.iter(|| eligibility_rules(black_box(&env), black_box(&state), black_box(&request)))
    });
    criterion.bench_function("delta/between_decision", |bencher| {
        bencher.iter(|| StateDelta::between(black_box(&state), black_box(&decided)))
    });
    criterion.bench_function("delta/apply_decision", |bencher| {
        bencher.iter_batched(
            || state.clone(),
            |mut base| black_box(&delta).apply(&mut base).map(|()| base),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(stage_benches, benches);
criterion_main!(stage_benches);
