use super::bootstrap::{SplitMix64, interval, nearest_rank};
use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn sample(reward: f64, logging: f64, target: f64, predicted: f64, target_predicted: f64) -> Sample {
    Sample {
        reward,
        logging_probability: Some(logging),
        target_probability: target,
        predicted_reward: predicted,
        target_predicted_reward: target_predicted,
    }
}

/// Options that evaluate tiny logs: no effective sample size minimum.
fn tiny() -> Options {
    Options {
        min_effective_sample_size: 0.0,
        ..Options::default()
    }
}

/// Five decisions with mixed propensities. Columns: reward, logging
/// probability μ, target probability π, q̂ of the logged action, q̂ under
/// the target policy; w = π / μ.
fn hand_log() -> Vec<Sample> {
    vec![
        sample(1.0, 0.5, 1.0, 0.6, 0.6),  // w = 2
        sample(0.0, 0.25, 0.5, 0.2, 0.3), // w = 2
        sample(1.0, 0.8, 0.4, 0.7, 0.5),  // w = 0.5
        sample(0.0, 0.5, 0.0, 0.4, 0.2),  // w = 0
        sample(1.0, 0.2, 0.2, 0.5, 0.6),  // w = 1
    ]
}

/// A random log of `n` decisions: two actions, the logging policy taking
/// action 0 with probability 0.3, the target with probability `target_0`.
fn random_log(n: usize, target_0: f64, seed: u64) -> Vec<Sample> {
    let mut generator = SplitMix64::new(seed);
    let mut uniform = move || (generator.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let (logging, target) = ([0.3, 0.7], [target_0, 1.0 - target_0]);
    let (model, truth) = ([0.9, 0.1], [0.5, 0.2]);
    let target_predicted = target[0] * model[0] + target[1] * model[1];
    (0..n)
        .map(|_| {
            let action = usize::from(uniform() >= logging[0]);
            let reward = f64::from(u8::from(uniform() < truth[action]));
            sample(
                reward,
                logging[action],
                target[action],
                model[action],
                target_predicted,
            )
        })
        .collect()
}

fn intervals(evaluation: &Evaluation) -> [Interval; 7] {
    [
        evaluation.logging,
        evaluation.ips,
        evaluation.snips,
        evaluation.doubly_robust,
        evaluation.ips_improvement,
        evaluation.snips_improvement,
        evaluation.doubly_robust_improvement,
    ]
}

#[test]
fn estimators_match_the_hand_computed_values() {
    let evaluation = evaluate(&hand_log(), &tiny()).expect("evaluates");
    assert_eq!(evaluation.decisions, 5);
    // Logging: (1 + 0 + 1 + 0 + 1) / 5 = 0.6.
    assert!(close(evaluation.logging.estimate, 0.6));
    // Σ w·r = 2·1 + 2·0 + 0.5·1 + 0·0 + 1·1 = 3.5; IPS = 3.5 / 5 = 0.7.
    assert!(close(evaluation.ips.estimate, 0.7));
    // Σ w = 2 + 2 + 0.5 + 0 + 1 = 5.5; SNIPS = 3.5 / 5.5 = 7/11.
    assert!(close(evaluation.snips.estimate, 7.0 / 11.0));
    // DR terms q̂_π + w·(r − q̂):
    //   0.6 + 2·(1 − 0.6)   =  1.4
    //   0.3 + 2·(0 − 0.2)   = −0.1
    //   0.5 + 0.5·(1 − 0.7) =  0.65
    //   0.2 + 0·(0 − 0.4)   =  0.2
    //   0.6 + 1·(1 − 0.5)   =  1.1
    // Σ = 3.25; DR = 3.25 / 5 = 0.65.
    assert!(close(evaluation.doubly_robust.estimate, 0.65));
    assert!(close(evaluation.ips_improvement.estimate, 0.1));
    assert!(close(
        evaluation.snips_improvement.estimate,
        7.0 / 11.0 - 0.6
    ));
    assert!(close(evaluation.doubly_robust_improvement.estimate, 0.05));
}

#[test]
fn weight_diagnostics_match_the_hand_computed_values() {
    let evaluation = evaluate(&hand_log(), &tiny()).expect("evaluates");
    // Weights 2, 2, 0.5, 0, 1: Σ w = 5.5, Σ w² = 4 + 4 + 0.25 + 0 + 1 = 9.25,
    // ESS = 5.5² / 9.25 = 30.25 / 9.25 = 121/37 ≈ 3.27.
    assert!(close(evaluation.effective_sample_size, 121.0 / 37.0));
    assert!(close(evaluation.max_weight, 2.0));
    assert!(close(evaluation.mean_weight, 1.1));
    // Row 3 alone has target probability 0: 4 of 5 match.
    assert!(close(evaluation.match_rate, 0.8));
    // Equal weights: ESS is the number of decisions.
    let equal: Vec<Sample> = (0..7).map(|_| sample(1.0, 0.5, 0.25, 0.5, 0.5)).collect();
    let evaluation = evaluate(&equal, &tiny()).expect("evaluates");
    assert!(close(evaluation.effective_sample_size, 7.0));
}

#[test]
fn the_logging_policy_as_target_gets_the_logging_value() {
    // The hand log with π = μ: every weight is 1.
    let same: Vec<Sample> = hand_log()
        .into_iter()
        .map(|s| Sample {
            target_probability: s.logging_probability.unwrap_or(0.0),
            ..s
        })
        .collect();
    let evaluation = evaluate(&same, &tiny()).expect("evaluates");
    // IPS = Σ 1·r / n and SNIPS = Σ 1·r / Σ 1: both the mean reward, 0.6.
    assert!(close(evaluation.logging.estimate, 0.6));
    assert!(close(evaluation.ips.estimate, 0.6));
    assert!(close(evaluation.snips.estimate, 0.6));
    // DR with w = 1 is mean(q̂_π + r − q̂) = 0.6 + mean(q̂_π − q̂)
    //   = 0.6 + (0 + 0.1 − 0.2 − 0.2 + 0.1) / 5 = 0.56:
    // not the logging value on a given log (only on average, below).
    assert!(close(evaluation.doubly_robust.estimate, 0.56));
    // A reward model that ignores the action (q̂_π = q̂) gives exactly 0.6,
    // whatever its values.
    let flat: Vec<Sample> = same
        .iter()
        .zip([0.9, 0.0, 0.3, 0.5, 0.7])
        .map(|(s, q)| Sample {
            predicted_reward: q,
            target_predicted_reward: q,
            ..*s
        })
        .collect();
    let evaluation = evaluate(&flat, &tiny()).expect("evaluates");
    assert!(close(evaluation.doubly_robust.estimate, 0.6));
    assert!(close(evaluation.doubly_robust_improvement.estimate, 0.0));
}

#[test]
fn doubly_robust_of_the_logging_policy_is_its_value_on_average() {
    // Actions drawn from the logging policy (0.3, 0.7) and a wrong model
    // (0.9, 0.1): DR − logging = mean(q̂_π − q̂(a)), with q̂_π = 0.34, has
    // mean 0 and standard deviation 0.8·√(0.3·0.7) / √n ≈ 0.0026 at n =
    // 20,000; 5 of them is 0.013.
    let log = random_log(20_000, 0.3, 7);
    let options = Options {
        bootstrap: 1,
        ..Options::default()
    };
    let evaluation = evaluate(&log, &options).expect("evaluates");
    let gap = evaluation.doubly_robust.estimate - evaluation.logging.estimate;
    assert!(gap.abs() < 0.013, "{gap}");
    assert!(gap != 0.0, "equal only on average");
    assert!(close(evaluation.ips.estimate, evaluation.logging.estimate));
}

#[test]
fn the_bootstrap_is_deterministic_for_a_seed_and_contains_the_estimates() {
    let log = random_log(200, 0.6, 11);
    let options = Options {
        min_effective_sample_size: 30.0,
        ..Options::default()
    };
    let first = evaluate(&log, &options).expect("evaluates");
    let again = evaluate(&log, &options).expect("evaluates");
    assert_eq!(first, again, "same log, same options: same output");
    for interval in intervals(&first) {
        assert!(
            interval.low <= interval.estimate && interval.estimate <= interval.high,
            "{interval:?}"
        );
    }
    assert!(first.ips.low < first.ips.high, "{:?}", first.ips);
    assert_eq!(first.snips_resamples, 1000);
    let reseeded = evaluate(&log, &Options { seed: 1, ..options }).expect("evaluates");
    assert_eq!(reseeded.ips.estimate, first.ips.estimate);
    assert_ne!(reseeded.ips, first.ips, "another seed, other resamples");
}

#[test]
fn equal_rewards_and_weights_give_point_intervals() {
    // Every resample of 40 decisions with reward 1 and weight 1 has mean 1.
    let log: Vec<Sample> = (0..40)
        .map(|row| {
            let p = [0.2, 0.5, 0.9][row % 3];
            sample(1.0, p, p, 0.5, 0.5)
        })
        .collect();
    let evaluation = evaluate(&log, &Options::default()).expect("evaluates");
    for (interval, value) in intervals(&evaluation)
        .into_iter()
        .zip([1., 1., 1., 1., 0., 0., 0.])
    {
        let point = Interval {
            estimate: value,
            low: value,
            high: value,
        };
        assert_eq!(interval, point);
    }
}

#[test]
fn a_two_decision_bootstrap_matches_its_enumerated_resamples() {
    // Rewards 0 and 1, weight 1. The resamples {0,0}, {0,1}, {1,0}, {1,1}
    // are equally likely: means 0 (¼), ½ (½) and 1 (¼). Of 1000, about 250
    // are 0 and 250 are 1, so the 25th smallest is 0 and the 975th is 1.
    let log = [
        sample(0.0, 0.5, 0.5, 0.5, 0.5),
        sample(1.0, 0.5, 0.5, 0.5, 0.5),
    ];
    let evaluation = evaluate(&log, &tiny()).expect("evaluates");
    let whole = Interval {
        estimate: 0.5,
        low: 0.0,
        high: 1.0,
    };
    assert_eq!(evaluation.logging, whole);
    assert_eq!(evaluation.ips, whole);
    // At 40 %: the 300th and 700th smallest, both among the ~500 halves.
    let options = Options {
        confidence: 0.4,
        ..tiny()
    };
    let evaluation = evaluate(&log, &options).expect("evaluates");
    let middle = Interval {
        estimate: 0.5,
        low: 0.5,
        high: 0.5,
    };
    assert_eq!(evaluation.logging, middle);
    assert_eq!(evaluation.doubly_robust, middle);
}

#[test]
fn snips_intervals_skip_resamples_without_weight() {
    // Row 0 alone has weight: a resample misses it with probability ¼
    // ({1,1}), and SNIPS = Σ w·r / Σ w is row 0's reward, 1, on every other.
    let log = [
        sample(1.0, 0.5, 0.5, 0.5, 0.5),
        sample(0.0, 0.5, 0.0, 0.5, 0.5),
    ];
    let evaluation = evaluate(&log, &tiny()).expect("evaluates");
    assert!(
        (700..=800).contains(&evaluation.snips_resamples),
        "{}",
        evaluation.snips_resamples
    );
    let one = Interval {
        estimate: 1.0,
        low: 1.0,
        high: 1.0,
    };
    assert_eq!(evaluation.snips, one);
    // With one resample, about one seed in four draws no weight at all.
    let refusals: Vec<Refusal> = (0..64)
        .filter_map(|seed| {
            let options = Options {
                bootstrap: 1,
                seed,
                ..tiny()
            };
            evaluate(&log, &options).err()
        })
        .collect();
    assert!((4..=32).contains(&refusals.len()), "{}", refusals.len());
    for refusal in &refusals {
        assert_eq!(
            refusal,
            &Refusal::NoResample {
                estimator: "SNIPS",
                bootstrap: 1
            }
        );
    }
}

#[test]
fn percentiles_take_the_nearest_rank() {
    assert_eq!(nearest_rank((1.0 - 0.95) / 2.0, 1000), 25, "not 26");
    assert_eq!(nearest_rank((1.0 + 0.95) / 2.0, 1000), 975);
    assert_eq!(nearest_rank(0.05, 20), 1);
    assert_eq!(nearest_rank(0.001, 20), 1, "at least the smallest");
    assert_eq!(nearest_rank(0.999, 20), 20);
    let descending: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
    let found = interval(500.0, descending, 0.95).expect("values");
    assert_eq!((found.low, found.high), (25.0, 975.0));
    let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
    let found = interval(10.0, twenty, 0.9).expect("values");
    assert_eq!((found.low, found.high), (1.0, 19.0));
    let found = interval(3.0, vec![3.0], 0.95).expect("values");
    assert_eq!((found.low, found.high), (3.0, 3.0));
    assert_eq!(interval(0.0, Vec::new(), 0.95), None);
}

#[test]
fn splitmix64_matches_the_reference_outputs() {
    let mut generator = SplitMix64::new(1_234_567);
    let outputs: Vec<u64> = (0..5).map(|_| generator.next_u64()).collect();
    let reference = [
        6_457_827_717_110_365_317,
        3_203_168_211_198_807_973,
        9_817_491_932_198_370_423,
        4_593_380_528_125_082_431,
        16_408_922_859_458_223_821,
    ];
    assert_eq!(outputs, reference);
    let mut counts = [0usize; 6];
    for _ in 0..60_000 {
        counts[generator.below(6) as usize] += 1;
    }
    // 10,000 expected each, standard deviation ≈ 91.
    assert!(
        counts.iter().all(|c| c.abs_diff(10_000) < 500),
        "{counts:?}"
    );
    assert!((0..100).all(|_| generator.below(1) == 0));
}

fn refusal(samples: &[Sample], options: &Options) -> Refusal {
    match evaluate(samples, options) {
        Ok(evaluation) => panic!("evaluated: {evaluation:?}"),
        Err(refusal) => refusal,
    }
}

#[test]
fn refuses_an_empty_log() {
    assert_eq!(refusal(&[], &tiny()), Refusal::Empty);
}

#[test]
fn refuses_a_missing_logging_probability_naming_its_row() {
    let mut log = hand_log();
    log[2].logging_probability = None;
    log[4].logging_probability = None;
    let found = refusal(&log, &tiny());
    assert_eq!(found, Refusal::MissingLoggingProbability { row: 2 });
    assert!(
        found
            .to_string()
            .starts_with("row 2: no logged selection probability")
    );
}

#[test]
fn refuses_an_impossible_logging_probability() {
    for (value, reason) in [
        (0.0, "is not positive"),
        (-0.5, "is not positive"),
        (1.5, "is above 1"),
        (f64::NAN, "is not a finite number"),
        (f64::INFINITY, "is not a finite number"),
        (1e-320, "is too small to divide by"),
    ] {
        let mut log = hand_log();
        log[3].logging_probability = Some(value);
        match refusal(&log, &tiny()) {
            Refusal::BadLoggingProbability {
                row: 3,
                value: found,
                reason: why,
            } => {
                assert!(found.to_bits() == value.to_bits() && why.starts_with(reason));
            }
            other => panic!("{value}: {other:?}"),
        }
    }
    let mut log = hand_log();
    log[1].logging_probability = Some(0.0);
    let message = refusal(&log, &tiny()).to_string();
    assert!(message.starts_with("row 1: logged selection probability 0 is not positive"));
}

#[test]
fn refuses_an_impossible_target_probability_or_a_non_finite_value() {
    for value in [-0.1, 1.5, f64::NAN] {
        let mut log = hand_log();
        log[4].target_probability = value;
        assert!(matches!(
            refusal(&log, &tiny()),
            Refusal::BadTargetProbability { row: 4, .. }
        ));
    }
    let mut log = hand_log();
    log[1].reward = f64::NAN;
    log[0].predicted_reward = f64::INFINITY;
    let found = refusal(&log, &tiny());
    assert!(matches!(
        found,
        Refusal::NotFinite {
            row: 0,
            field: "predicted_reward",
            ..
        }
    ));
    assert_eq!(
        found.to_string(),
        "row 0: predicted_reward inf is not a finite number"
    );
    let mut log = hand_log();
    log[3].target_predicted_reward = f64::NEG_INFINITY;
    assert!(matches!(
        refusal(&log, &tiny()),
        Refusal::NotFinite {
            row: 3,
            field: "target_predicted_reward",
            ..
        }
    ));
}

#[test]
fn refuses_a_logging_policy_that_never_explored_unless_the_target_agrees() {
    let certain: Vec<Sample> = [1.0, 0.0, 1.0, 1.0]
        .into_iter()
        .map(|reward| sample(reward, 1.0, 1.0, 0.5, 0.5))
        .collect();
    let mut differs = certain.clone();
    differs[2].target_probability = 0.3;
    differs[3].target_probability = 0.0;
    let found = refusal(&differs, &tiny());
    assert_eq!(
        found,
        Refusal::NoExploration {
            decisions: 4,
            row: 2
        }
    );
    assert!(found.to_string().contains("never explored"));
    // The same policy on every logged decision: the logging value.
    let evaluation = evaluate(&certain, &tiny()).expect("policies agree");
    assert!(close(evaluation.ips.estimate, 0.75));
    assert!(close(evaluation.snips.estimate, 0.75));
    assert!(close(evaluation.doubly_robust.estimate, 0.75));
    assert!(close(evaluation.effective_sample_size, 4.0));
}

#[test]
fn refuses_a_target_policy_that_takes_no_logged_action() {
    let log: Vec<Sample> = hand_log()
        .into_iter()
        .map(|s| Sample {
            target_probability: 0.0,
            ..s
        })
        .collect();
    assert_eq!(refusal(&log, &tiny()), Refusal::NoOverlap { decisions: 5 });
}

#[test]
fn refuses_too_small_an_effective_sample_size() {
    // The hand log's ESS is 121/37 ≈ 3.27, below the default 30.
    let found = refusal(&hand_log(), &Options::default());
    match &found {
        Refusal::TooFewEffective {
            effective_sample_size,
            minimum,
        } => assert!(close(*effective_sample_size, 121.0 / 37.0) && *minimum == 30.0),
        other => panic!("{other:?}"),
    }
    assert!(
        found
            .to_string()
            .starts_with("effective sample size 3.27 is below the minimum 30")
    );
    let options = Options {
        min_effective_sample_size: 3.2,
        ..Options::default()
    };
    assert!(evaluate(&hand_log(), &options).is_ok(), "3.27 ≥ 3.2");
}

#[test]
fn refuses_bad_options() {
    let cases = [
        (
            Options {
                bootstrap: 0,
                ..tiny()
            },
            "bootstrap",
        ),
        (
            Options {
                confidence: 0.0,
                ..tiny()
            },
            "confidence",
        ),
        (
            Options {
                confidence: 1.0,
                ..tiny()
            },
            "confidence",
        ),
        (
            Options {
                confidence: f64::NAN,
                ..tiny()
            },
            "confidence",
        ),
        (
            Options {
                min_effective_sample_size: -1.0,
                ..tiny()
            },
            "min_effective_sample_size",
        ),
        (
            Options {
                min_effective_sample_size: f64::INFINITY,
                ..tiny()
            },
            "min_effective_sample_size",
        ),
    ];
    for (options, name) in cases {
        match refusal(&hand_log(), &options) {
            Refusal::BadOption { option, .. } => assert_eq!(option, name),
            other => panic!("{options:?}: {other:?}"),
        }
    }
    // Options are checked first, even on an empty log.
    let message = refusal(
        &[],
        &Options {
            bootstrap: 0,
            ..tiny()
        },
    )
    .to_string();
    assert_eq!(
        message,
        "off-policy evaluation option bootstrap = 0 must be at least 1"
    );
}
