//! The decision pipeline for one customer: 50 candidates × 64 features.
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
use nudge_models::catalog::{Action, Catalog};
use nudge_models::customer::CustomerState;
use nudge_models::features::FeatureInput;
use nudge_models::ledger::Contact;
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact};
use nudge_models::pipeline::{Decision, DecisionRequest, Environment, Scoring, decide};
use nudge_models::profile::Event;
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;

const ACTIONS: usize = 50;
const FEATURES: usize = 64;
const CATEGORIES: [&str; 6] = [
    "onboarding",
    "activation",
    "upsell",
    "retention",
    "education",
    "winback",
];
const EVENTS: [&str; 12] = [
    "page_view",
    "pricing_page_view",
    "login",
    "feature_activated",
    "invite_sent",
    "report_created",
    "integration_connected",
    "payment_failed",
    "support_ticket_opened",
    "email_opened",
    "seat_limit_reached",
    "search",
];
/// Rules of the generated catalog, one per fifth action (10 of 50).
const RULES: [&str; 5] = [
    "profile.count_7d.login >= 1",
    "has(profile.plan) && profile.plan != \"enterprise\"",
    "profile.days_since_signup < 400.0 && profile.count_30d.report_created > 0",
    "profile.days_since_payment_failed > 1.0",
    "profile.engagement.in_app.click_rate < 0.9 || profile.count_7d.search > 2",
];

/// 50 in_app/content actions, the standard caps, a 3-slot feed placement.
fn catalog_toml(with_rules: bool) -> String {
    let mut text = String::new();
    let events: Vec<String> = EVENTS.iter().map(|event| format!("\"{event}\"")).collect();
    writeln!(
        text,
        "[catalog]\nname = \"bench\"\nversion = \"bench-1\"\nevents = [{}]\n",
        events.join(", ")
    )
    .expect("write");
    text.push_str("[channels.in_app]\n\n[channels.content]\n\n");
    text.push_str(
        "[[caps]]\nscope = \"channel\"\nchannel = \"in_app\"\nlimit = 5\nwindow = \"7d\"\n\n\
         [[caps]]\nscope = \"channel\"\nchannel = \"content\"\nlimit = 10\nwindow = \"7d\"\n\n\
         [[caps]]\nscope = \"total\"\nlimit = 12\nwindow = \"7d\"\n\n\
         [[caps]]\nscope = \"category\"\ncategory = \"upsell\"\nlimit = 3\nwindow = \"7d\"\n\n",
    );
    text.push_str("[levers.categories]\nretention = 1.2\neducation = 0.8\n\n");
    for index in 0..ACTIONS {
        let channel = if index % 3 == 0 { "content" } else { "in_app" };
        let category = CATEGORIES[index % CATEGORIES.len()];
        write!(
            text,
            "[[actions]]\nid = \"action_{index:02}\"\nchannel = \"{channel}\"\ncategory = \"{category}\"\nvalue = {}\ncooldown = \"1d\"\ndismiss_cooldown = \"7d\"\n",
            1.0 + (index % 7) as f64 * 3.5
        )
        .expect("write");
        if with_rules && index % 5 == 0 {
            writeln!(text, "rule = '{}'", RULES[(index / 5) % RULES.len()]).expect("write");
        }
        writeln!(text, "payload = {{ title = \"Action {index}\" }}\n").expect("write");
    }
    text.push_str(
        "[placements.feed]\nchannels = [\"in_app\", \"content\"]\nslots = 3\n\
         exploration = { method = \"epsilon\", epsilon = 0.05 }\n\
         context_weights = { upsell = 1.3 }\n",
    );
    text
}

/// 64 features: customer terms, action terms and crosses.
fn model() -> Model {
    let mut features: Vec<String> = Vec::new();
    for event in &EVENTS[..8] {
        features.push(format!("count({event},7d)"));
        features.push(format!("log_count({event},30d)"));
    }
    features.push("days_since(login)".to_owned());
    features.push("days_since(feature_activated)".to_owned());
    features.push("tenure_days".to_owned());
    features.push("is(plan,trial)".to_owned());
    features.push("is(plan,pro)".to_owned());
    features.push("attr(seats)".to_owned());
    features.push("click_rate(in_app)".to_owned());
    features.push("ctx_is(device,mobile)".to_owned());
    features.push("ctx(hour)".to_owned());
    features.push("channel(in_app)".to_owned());
    features.push("channel(content)".to_owned());
    features.push("action_value".to_owned());
    for category in CATEGORIES {
        features.push(format!("category({category})"));
    }
    for index in 0..8 {
        features.push(format!("action(action_{index:02})"));
    }
    let crosses = [
        "category(upsell) * count(pricing_page_view,7d)",
        "category(upsell) * is(plan,trial)",
        "category(upsell) * attr(seats)",
        "category(onboarding) * tenure_days",
        "category(onboarding) * is(plan,trial)",
        "category(activation) * days_since(feature_activated)",
        "category(activation) * count(integration_connected,30d)",
        "category(retention) * days_since(login)",
        "category(retention) * count(support_ticket_opened,30d)",
        "category(education) * log_count(report_created,30d)",
        "category(winback) * days_since(login)",
        "channel(in_app) * ctx_is(device,mobile)",
        "channel(in_app) * click_rate(in_app)",
        "channel(content) * log_count(page_view,7d)",
    ];
    features.extend(crosses.iter().map(|cross| (*cross).to_owned()));
    let mut extra = 0;
    while features.len() < FEATURES {
        features.push(format!("category(upsell) * count({},1d)", EVENTS[extra]));
        extra += 1;
    }
    assert_eq!(features.len(), FEATURES);
    let weights = (0..FEATURES)
        .map(|index| ((index * 37 % 19) as f64 - 9.0) / 40.0)
        .collect();
    Model::from_artifact(ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "bench-1".to_owned(),
        description: "generated for the benchmark".to_owned(),
        trained_at: None,
        features,
        weights,
        intercept: -2.0,
        evidence: Default::default(),
    })
    .expect("the generated model is valid")
}

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").expect("valid instant")
}

/// A customer active for a month: ~300 events, attributes, engagement and a
/// week of contacts (caps partly used, some actions on cooldown).
fn customer(catalog: &Catalog) -> CustomerState {
    let now = now();
    let mut state = CustomerState::default();
    let identify = Event {
        event_id: "identify-1".to_owned(),
        name: "identify".to_owned(),
        timestamp: Timestamp(now.0 - 20 * DAY_MS),
        properties: BTreeMap::from([
            ("plan".to_owned(), AttrValue::from("pro")),
            ("timezone".to_owned(), AttrValue::from("Europe/Berlin")),
            (
                "signup_at".to_owned(),
                AttrValue::from("2026-09-01T10:00:00Z"),
            ),
            ("seats".to_owned(), AttrValue::Num(12.0)),
            ("company".to_owned(), AttrValue::from("Initech")),
        ]),
    };
    state.track(&identify, now);
    for index in 0..300_i64 {
        let event = EVENTS[(index * 7 % 11) as usize];
        let at = Timestamp(now.0 - (index * 2 * HOUR_MS + index * 7_919) % (30 * DAY_MS));
        state.track(
            &Event {
                event_id: format!("event-{index}"),
                name: event.to_owned(),
                timestamp: at,
                properties: BTreeMap::new(),
            },
            now,
        );
    }
    // Two in_app and one content contact this week (caps partly used), one of
    // them 20 hours ago (on its 1-day cooldown), one dismissed (7-day cooldown).
    for (hours_ago, action) in [(6 * 24, 1), (3 * 24, 3), (20, 4)] {
        let action = &catalog.actions[action];
        state.ledger.push(Contact::new(
            &format!("decision-{hours_ago}"),
            &action.id,
            &action.channel,
            &action.category,
            Timestamp(now.0 - hours_ago * HOUR_MS),
        ));
    }
    if let Some(contact) = state.ledger.find_mut("decision-72", "action_03") {
        contact.dismissed_at = Some(Timestamp(now.0 - 70 * HOUR_MS));
    }
    let engagement = state.profile.engagement_mut("in_app");
    engagement.sends = 40;
    engagement.impressions = 35;
    engagement.clicks = 6;
    state
}

fn benches(criterion: &mut Criterion) {
    let catalog = Catalog::from_toml(&catalog_toml(true)).expect("the catalog is valid");
    let plain = Catalog::from_toml(&catalog_toml(false)).expect("the catalog is valid");
    let model = model();
    let budgets = BudgetCounters::default();
    let state = customer(&catalog);
    let context = BTreeMap::from([
        ("device".to_owned(), AttrValue::from("mobile")),
        ("hour".to_owned(), AttrValue::Num(13.0)),
        ("page".to_owned(), AttrValue::from("home")),
    ]);
    let request = DecisionRequest {
        placement: "feed",
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
    assert_eq!(decision.served.len() + decision.filtered.len(), ACTIONS);
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
