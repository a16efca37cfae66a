//! The guardrail's sequential test on simulated experiments: read after
//! every batch of decisions, it keeps its false-alarm rate when both arms
//! convert alike, finds a clearly worse challenger, and never calls a better
//! one worse.

use nudge_models::guardrail::{Arm, SequentialTest, Verdict};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

/// Serves `batch` actions to each arm at a time, up to `limit` each, and
/// reads the test after every batch; the first verdict other than "keep
/// going", if any.
fn run(test: &SequentialTest, rates: (f64, f64), limit: u64, seed: u64) -> Option<(Verdict, u64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut control, mut challenger) = (Arm::default(), Arm::default());
    let batch = 25;
    while control.served < limit {
        for _ in 0..batch {
            control.served += 1;
            control.conversions += u64::from(rng.random_bool(rates.0));
            challenger.served += 1;
            challenger.conversions += u64::from(rng.random_bool(rates.1));
        }
        let reading = test.read(control, challenger);
        if matches!(reading.verdict, Verdict::Worse | Verdict::Better) {
            return Some((reading.verdict, control.served));
        }
    }
    None
}

#[test]
fn equal_arms_raise_false_alarms_at_most_at_alpha_however_often_read() {
    let test = SequentialTest::default();
    let experiments = 300;
    // 800 reads of each experiment, up to 20,000 served per arm.
    let alarms = (0..experiments)
        .filter(|&seed| run(&test, (0.08, 0.08), 20_000, seed).is_some())
        .count();
    // α = 5 %: at most 15 of 300 expected; three binomial standard
    // deviations (√(300 × 0.05 × 0.95) ≈ 3.8) of slack.
    assert!(
        alarms <= 26,
        "{alarms} false alarms in {experiments} experiments"
    );
}

#[test]
fn a_clearly_worse_challenger_is_found_and_never_called_better() {
    let test = SequentialTest::default();
    let mut served_until_found = Vec::new();
    for seed in 0..100 {
        match run(&test, (0.10, 0.07), 20_000, seed) {
            Some((Verdict::Worse, served)) => served_until_found.push(served),
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    served_until_found.sort_unstable();
    let median = served_until_found[served_until_found.len() / 2];
    // 10 % against 7 %: found well before 20,000 a side.
    assert!(median < 5_000, "median {median} served per arm");
}

#[test]
fn a_better_challenger_is_never_rolled_back() {
    let test = SequentialTest::default();
    for seed in 0..100 {
        let verdict = run(&test, (0.07, 0.10), 20_000, seed).map(|(verdict, _)| verdict);
        assert_ne!(verdict, Some(Verdict::Worse), "seed {seed}");
    }
}
