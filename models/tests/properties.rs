//! Property tests of the decision domain: caps and budgets are never exceeded,
//! decisions are deterministic and account for every candidate, scores stay
//! finite, and feature specs and extraction are consistent.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::{Action, Catalog};
use nudge_models::customer::CustomerState;
use nudge_models::features::{FeatureInput, FeatureSet, FeatureSpec};
use nudge_models::ledger::OutcomeKind;
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact};
use nudge_models::pipeline::{
    Decision, DecisionRequest, Environment, FallbackReason, Scoring, decide,
};
use nudge_models::profile::Event;
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

/// Caps on every scope, cooldowns, budgets, a rule, exploration on two
/// placements, diversity on one, a segment and placement fallbacks.
const CATALOG: &str = r#"
[catalog]
name = "properties"
version = "props-1"
events = ["login", "page_view", "purchase"]

[channels.in_app]

[channels.email]
quiet_hours = { start = "22:00", end = "07:00" }

[channels.push]

[[caps]]
scope = "channel"
channel = "email"
limit = 2
window = "7d"

[[caps]]
scope = "channel"
channel = "push"
limit = 3
window = "1d"

[[caps]]
scope = "channel"
channel = "in_app"
limit = 4
window = "12h"

[[caps]]
scope = "total"
limit = 6
window = "2d"

[[caps]]
scope = "action"
action = "tip_a"
limit = 2
window = "3d"

[[caps]]
scope = "category"
category = "promo"
limit = 2
window = "7d"

[[actions]]
id = "tip_a"
channel = "in_app"
category = "tips"

[[actions]]
id = "tip_b"
channel = "in_app"
category = "tips"
value = 2.0
cooldown = "6h"
dismiss_cooldown = "2d"

[[actions]]
id = "tip_c"
channel = "in_app"
category = "onboarding"
value = 1.5
rule = "profile.count_7d.login >= 1"

[[actions]]
id = "promo_a"
channel = "email"
category = "promo"
value = 5.0
cooldown = "1d"

[[actions]]
id = "promo_b"
channel = "email"
category = "promo"
value = 4.0
dismiss_cooldown = "3d"

[[actions]]
id = "promo_c"
channel = "push"
category = "promo"
value = 3.0

[[actions]]
id = "news_a"
channel = "email"
category = "news"

[[actions]]
id = "news_b"
channel = "push"
category = "news"
value = 2.0
cooldown = "2h"

[[actions]]
id = "alert"
channel = "push"
category = "alerts"
value = 6.0
budget = 3

[[actions]]
id = "coupon"
channel = "in_app"
category = "promo"
value = 8.0
budget = 5
cooldown = "1d"

[[actions]]
id = "retired"
channel = "in_app"
category = "tips"
active = false

[levers.categories]
promo = 1.5

[[segments]]
name = "never_bought"
rule = "profile.count_30d.purchase == 0"
actions = ["tip_a", "promo_c"]

[placements.home]
channels = ["in_app", "push"]
slots = 3
exploration = { method = "epsilon", epsilon = 0.3 }
fallback = ["tip_b"]

[placements.inbox]
channels = ["email"]
slots = 2
one_per_category = true

[placements.everywhere]
channels = ["in_app", "email", "push"]
slots = 4
fallback = ["tip_a", "news_a"]
exploration = { method = "softmax", temperature = 0.5 }
context_weights = { news = 0.5 }
"#;

const PLACEMENTS: [&str; 3] = ["home", "inbox", "everywhere"];
/// Every catalog action plus one unknown id.
const IDS: [&str; 12] = [
    "tip_a", "tip_b", "tip_c", "promo_a", "promo_b", "promo_c", "news_a", "news_b", "alert",
    "coupon", "retired", "ghost",
];
const EVENTS: [&str; 4] = ["login", "page_view", "purchase", "search"];

const FEATURES: [&str; 16] = [
    "count(login,7d)",
    "log_count(page_view,30d)",
    "days_since(purchase)",
    "tenure_days",
    "attr(score)",
    "is(plan,pro)",
    "ctx(x)",
    "ctx_is(page,home)",
    "click_rate(email)",
    "category(promo)",
    "channel(push)",
    "action(tip_a)",
    "action_value",
    "category(promo) * attr(score)",
    "channel(email) * ctx(x)",
    "attr(score) * ctx(x) * count(login,1d)",
];

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").expect("valid instant")
}

fn catalog() -> &'static Catalog {
    static CATALOG_CELL: OnceLock<Catalog> = OnceLock::new();
    CATALOG_CELL
        .get_or_init(|| Catalog::from_toml(CATALOG).unwrap_or_else(|error| panic!("{error}")))
}

fn model() -> &'static Model {
    static MODEL_CELL: OnceLock<Model> = OnceLock::new();
    MODEL_CELL.get_or_init(|| {
        let weights = (0..FEATURES.len())
            .map(|index| ((index * 7 % 11) as f64 - 5.0) / 10.0)
            .collect();
        Model::from_artifact(ModelArtifact {
            format: MODEL_FORMAT.to_owned(),
            version: "props-model-1".to_owned(),
            description: String::new(),
            trained_at: None,
            features: FEATURES.iter().map(|spec| (*spec).to_owned()).collect(),
            weights,
            intercept: -1.0,
            evidence: Default::default(),
        })
        .expect("valid model")
    })
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

// ── A simulated stream of decisions, outcomes and time ──────────────────────

#[derive(Debug, Clone)]
struct DecideOp {
    customer: usize,
    placement: usize,
    /// Indices into `IDS`; empty: every action the placement allows.
    candidates: Vec<usize>,
    limit: u32,
    dry_run: bool,
    fallback: bool,
    seed: u64,
    x: f64,
}

#[derive(Debug, Clone)]
enum Op {
    Decide(DecideOp),
    /// An outcome for the `pick`-th action served so far.
    Outcome {
        pick: usize,
        kind: OutcomeKind,
    },
    Advance {
        millis: i64,
    },
    Track {
        customer: usize,
        event: usize,
    },
}

fn outcome_kind() -> impl Strategy<Value = OutcomeKind> {
    prop_oneof![
        3 => Just(OutcomeKind::Failed),
        3 => Just(OutcomeKind::Dismiss),
        1 => Just(OutcomeKind::Impression),
        1 => Just(OutcomeKind::Click),
        1 => Just(OutcomeKind::Conversion),
        1 => Just(OutcomeKind::Delivered),
    ]
}

fn decide_op() -> impl Strategy<Value = DecideOp> {
    (
        0..32usize,
        0..PLACEMENTS.len(),
        prop::collection::vec(0..IDS.len(), 0..7),
        0..5u32,
        any::<bool>(),
        prop::bool::weighted(0.15),
        any::<u64>(),
        -10.0..10.0f64,
    )
        .prop_map(
            |(customer, placement, candidates, limit, dry_run, fallback, seed, x)| DecideOp {
                customer,
                placement,
                candidates,
                limit,
                dry_run,
                fallback,
                seed,
                x,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => decide_op().prop_map(Op::Decide),
        3 => (any::<usize>(), outcome_kind()).prop_map(|(pick, kind)| Op::Outcome { pick, kind }),
        2 => prop_oneof![
            Just(0i64),
            0..2 * HOUR_MS,
            0..3 * DAY_MS,
        ]
        .prop_map(|millis| Op::Advance { millis }),
        1 => (0..32usize, 0..EVENTS.len()).prop_map(|(customer, event)| Op::Track { customer, event }),
    ]
}

/// What a decision was asked and answered.
struct Decided {
    candidates: Vec<String>,
    placement: &'static str,
    decision: Decision,
}

/// Customers sharing one catalog, model and budget, driven through time.
struct Sim {
    customers: Vec<CustomerState>,
    budgets: BudgetCounters,
    now: Timestamp,
    step: usize,
    /// (customer, decision id, action id) of every recorded serve.
    served: Vec<(usize, String, String)>,
    /// Recorded serves whose budget unit was not given back, per action.
    budget_held: HashMap<String, u64>,
}

impl Sim {
    fn new(customers: usize) -> Self {
        Self {
            customers: vec![CustomerState::default(); customers],
            budgets: BudgetCounters::default(),
            now: start(),
            step: 0,
            served: Vec::new(),
            budget_held: HashMap::new(),
        }
    }

    fn env(&self) -> Environment<'_> {
        Environment {
            catalog: catalog(),
            model: Some(model()),
            budgets: &self.budgets,
        }
    }

    fn apply(&mut self, op: &Op) -> Option<Decided> {
        self.step += 1;
        match op {
            Op::Decide(ask) => {
                let customer = ask.customer % self.customers.len();
                let candidates: Vec<String> = ask
                    .candidates
                    .iter()
                    .map(|index| IDS[*index].to_owned())
                    .collect();
                let context = BTreeMap::from([("x".to_owned(), AttrValue::Num(ask.x))]);
                let request = DecisionRequest {
                    placement: PLACEMENTS[ask.placement],
                    context: &context,
                    candidates: &candidates,
                    limit: ask.limit,
                    dry_run: ask.dry_run,
                    scoring: if ask.fallback {
                        Scoring::Fallback(FallbackReason::Deadline)
                    } else {
                        Scoring::Model
                    },
                    seed: ask.seed,
                    now: self.now,
                };
                let decision =
                    decide(&self.env(), &self.customers[customer], &request).expect("decides");
                if !ask.dry_run {
                    let decision_id = format!("d{}", self.step);
                    nudge_models::pipeline::record(
                        &mut self.customers[customer],
                        &decision_id,
                        &decision,
                        catalog(),
                        self.now,
                    );
                    for served in &decision.served {
                        self.served
                            .push((customer, decision_id.clone(), served.action_id.clone()));
                        if catalog()
                            .action(&served.action_id)
                            .is_some_and(|action| action.budget.is_some())
                        {
                            *self
                                .budget_held
                                .entry(served.action_id.clone())
                                .or_default() += 1;
                        }
                    }
                }
                Some(Decided {
                    candidates,
                    placement: PLACEMENTS[ask.placement],
                    decision,
                })
            }
            Op::Outcome { pick, kind } => {
                if !self.served.is_empty() {
                    let (customer, decision_id, action_id) =
                        self.served[pick % self.served.len()].clone();
                    // Outcomes of contacts older than the ledger keeps are refused.
                    if let Ok(result) = self.customers[customer].report_outcome(
                        &decision_id,
                        &action_id,
                        *kind,
                        None,
                        self.now,
                        &self.budgets,
                    ) && result.slot_released
                        && let Some(held) = self.budget_held.get_mut(&action_id)
                    {
                        *held -= 1;
                    }
                }
                None
            }
            Op::Advance { millis } => {
                self.now = Timestamp(self.now.0 + millis);
                None
            }
            Op::Track { customer, event } => {
                let customer = customer % self.customers.len();
                let event = Event {
                    event_id: format!("e{}", self.step),
                    name: EVENTS[*event].to_owned(),
                    timestamp: self.now,
                    properties: BTreeMap::new(),
                };
                self.customers[customer].track(&event, self.now);
                None
            }
        }
    }

    /// Every cap of every customer at the current time.
    fn check_caps(&self) -> Result<(), TestCaseError> {
        for (index, state) in self.customers.iter().enumerate() {
            for cap in &catalog().caps {
                let count = state.ledger.count(cap, self.now);
                prop_assert!(
                    count <= cap.limit,
                    "customer {index}: {} counts {count} at step {}",
                    cap.describe(),
                    self.step
                );
            }
        }
        Ok(())
    }

    /// Every budget: the shared counter equals the serves still holding a unit
    /// and never exceeds the budget.
    fn check_budgets(&self) -> Result<(), TestCaseError> {
        for action in &catalog().actions {
            if let Some(budget) = action.budget {
                let used = self.budgets.used(&action.id);
                let held = self.budget_held.get(&*action.id).copied().unwrap_or(0);
                prop_assert!(used <= budget, "{} used {used} of {budget}", action.id);
                prop_assert_eq!(used, held, "{}: counter vs recorded serves", &action.id);
            }
        }
        Ok(())
    }
}

/// The candidates a decision considers: the request's without repeats, or
/// every active action the placement allows.
fn considered(placement: &str, requested: &[String]) -> Vec<String> {
    if requested.is_empty() {
        let placement = catalog().placement(placement).expect("known placement");
        return catalog()
            .actions
            .iter()
            .filter(|action| {
                action.active
                    && placement.channels.contains(&action.channel)
                    && (placement.categories.is_empty()
                        || placement.categories.contains(&action.category))
            })
            .map(|action| action.id.to_string())
            .collect();
    }
    let mut seen = BTreeSet::new();
    requested
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

fn check_accounting(decided: &Decided) -> Result<(), TestCaseError> {
    let decision = &decided.decision;
    let expected: BTreeSet<String> = considered(decided.placement, &decided.candidates)
        .into_iter()
        .collect();
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for served in &decision.served {
        *seen.entry(&served.action_id).or_default() += 1;
    }
    for filtered in &decision.filtered {
        prop_assert!(
            !filtered.message.trim().is_empty(),
            "{} filtered ({:?}) without a message",
            &filtered.action_id,
            filtered.reason
        );
        *seen.entry(&filtered.action_id).or_default() += 1;
    }
    for (id, count) in &seen {
        prop_assert_eq!(
            *count,
            1,
            "'{}' appears {} times in {:#?}",
            id,
            count,
            decision
        );
    }
    let accounted: BTreeSet<String> = seen.keys().map(|id| (*id).to_owned()).collect();
    prop_assert_eq!(accounted, expected, "served ∪ filtered vs candidates");
    for (position, served) in decision.served.iter().enumerate() {
        prop_assert_eq!(served.rank as usize, position + 1);
        prop_assert!(served.selection_probability > 0.0 && served.selection_probability <= 1.0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// (a) However decisions, outcomes and time interleave, no customer ever
    /// has more contacts in a cap's window than the cap allows.
    #[test]
    fn no_cap_is_ever_exceeded(
        customers in 1..4usize,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut sim = Sim::new(customers);
        for op in &ops {
            sim.apply(op);
            sim.check_caps()?;
        }
    }

    /// (d) Every candidate is either served or filtered, exactly once, and
    /// every filtered one says why.
    #[test]
    fn every_candidate_is_served_or_filtered_exactly_once(
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut sim = Sim::new(2);
        for op in &ops {
            if let Some(decided) = sim.apply(op) {
                check_accounting(&decided)?;
            }
        }
    }

    /// (g) Across many customers a global budget is never exceeded, and the
    /// shared counter matches the serves that still hold a unit.
    #[test]
    fn a_global_budget_is_never_exceeded(
        customers in 1..24usize,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(customers);
        for op in &ops {
            sim.apply(op);
            sim.check_budgets()?;
        }
    }

    /// (b) The same state, request and seed give the same decision, also after
    /// the state went through serialization, and with equal budgets.
    #[test]
    fn ranking_is_deterministic(
        ops in prop::collection::vec(op(), 0..30),
        ask in decide_op(),
    ) {
        let mut sim = Sim::new(1);
        for op in &ops {
            sim.apply(op);
        }
        let state = &sim.customers[0];
        let restored: CustomerState =
            serde_json::from_str(&serde_json::to_string(state).expect("serializes"))
                .expect("deserializes");
        prop_assert_eq!(&restored, state);
        let candidates: Vec<String> =
            ask.candidates.iter().map(|index| IDS[*index].to_owned()).collect();
        let context = BTreeMap::from([("x".to_owned(), AttrValue::Num(ask.x))]);
        let request = DecisionRequest {
            placement: PLACEMENTS[ask.placement],
            context: &context,
            candidates: &candidates,
            limit: ask.limit,
            dry_run: ask.dry_run,
            scoring: if ask.fallback {
                Scoring::Fallback(FallbackReason::Overloaded)
            } else {
                Scoring::Model
            },
            seed: ask.seed,
            now: sim.now,
        };
        // Two independent but equal budget counters, so a real (non-dry-run)
        // decision can be repeated.
        let copy_budgets = || {
            let budgets = BudgetCounters::default();
            for action in &catalog().actions {
                if let Some(limit) = action.budget {
                    for _ in 0..sim.budgets.used(&action.id) {
                        budgets.try_reserve(&action.id, limit);
                    }
                }
            }
            budgets
        };
        let (left_budgets, right_budgets) = (copy_budgets(), copy_budgets());
        let left_env = Environment { budgets: &left_budgets, ..sim.env() };
        let right_env = Environment { budgets: &right_budgets, ..sim.env() };
        let left = decide(&left_env, state, &request).expect("decides");
        let right = decide(&right_env, &restored, &request).expect("decides");
        prop_assert_eq!(&left, &right);
        let again = decide(&right_env, state, &DecisionRequest { dry_run: true, ..request.clone() })
            .expect("decides");
        if ask.dry_run {
            prop_assert_eq!(&again, &left);
        }
        for action in &catalog().actions {
            prop_assert_eq!(left_budgets.used(&action.id), right_budgets.used(&action.id));
        }
    }
}

// ── Finite scores for finite inputs ─────────────────────────────────────────

/// A random customer: events over the last 40 days, attributes and engagement.
#[derive(Debug, Clone)]
struct CustomerSpec {
    events: Vec<(usize, i64)>,
    score: Option<f64>,
    plan: Option<bool>,
    signup: Option<f64>,
    engagement: [u32; 4],
}

fn customer_spec() -> impl Strategy<Value = CustomerSpec> {
    (
        prop::collection::vec((0..EVENTS.len(), 0..40 * DAY_MS), 0..60),
        prop::option::of(-1e6..1e6f64),
        prop::option::of(any::<bool>()),
        prop::option::of(-1e6..1e6f64),
        [any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()],
    )
        .prop_map(|(events, score, plan, signup, engagement)| CustomerSpec {
            events,
            score,
            plan,
            signup,
            engagement,
        })
}

fn build_customer(spec: &CustomerSpec, now: Timestamp) -> CustomerState {
    let mut state = CustomerState::default();
    let mut attributes = BTreeMap::new();
    if let Some(score) = spec.score {
        attributes.insert("score".to_owned(), AttrValue::Num(score));
    }
    if let Some(pro) = spec.plan {
        attributes.insert(
            "plan".to_owned(),
            AttrValue::from(if pro { "pro" } else { "free" }),
        );
    }
    if let Some(signup) = spec.signup {
        attributes.insert("signup_at".to_owned(), AttrValue::Num(signup));
    }
    state.track(
        &Event {
            event_id: "identify".to_owned(),
            name: "identify".to_owned(),
            timestamp: now,
            properties: attributes,
        },
        now,
    );
    for (index, (event, ago)) in spec.events.iter().enumerate() {
        state.track(
            &Event {
                event_id: format!("event-{index}"),
                name: EVENTS[*event].to_owned(),
                timestamp: Timestamp(now.0 - ago),
                properties: BTreeMap::new(),
            },
            now,
        );
    }
    for channel in ["email", "in_app", "push"] {
        let engagement = state.profile.engagement_mut(channel);
        engagement.sends = spec.engagement[0];
        engagement.impressions = spec.engagement[1];
        engagement.clicks = spec.engagement[2];
        engagement.dismisses = spec.engagement[3];
    }
    state
}

fn context_spec() -> impl Strategy<Value = BTreeMap<String, AttrValue>> {
    (
        prop::option::of(-1e6..1e6f64),
        prop::option::of(prop_oneof![Just("home"), Just("docs")]),
    )
        .prop_map(|(x, page)| {
            let mut context = BTreeMap::new();
            if let Some(x) = x {
                context.insert("x".to_owned(), AttrValue::Num(x));
            }
            if let Some(page) = page {
                context.insert("page".to_owned(), AttrValue::from(page));
            }
            context
        })
}

// ── Feature specs ───────────────────────────────────────────────────────────

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,8}"
}

fn text_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:-]{1,8}"
}

fn window() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("1d"), Just("7d"), Just("30d")]
}

/// One term as written canonically, e.g. `count(login,7d)`.
fn term() -> impl Strategy<Value = String> {
    prop_oneof![
        (name(), window()).prop_map(|(event, window)| format!("count({event},{window})")),
        (name(), window()).prop_map(|(event, window)| format!("log_count({event},{window})")),
        name().prop_map(|event| format!("days_since({event})")),
        Just("tenure_days".to_owned()),
        name().prop_map(|attr| format!("attr({attr})")),
        (name(), text_value()).prop_map(|(attr, value)| format!("is({attr},{value})")),
        name().prop_map(|key| format!("ctx({key})")),
        (name(), text_value()).prop_map(|(key, value)| format!("ctx_is({key},{value})")),
        name().prop_map(|channel| format!("click_rate({channel})")),
        name().prop_map(|category| format!("category({category})")),
        name().prop_map(|channel| format!("channel({channel})")),
        name().prop_map(|id| format!("action({id})")),
        Just("action_value".to_owned()),
    ]
}

/// A canonical spec of 1–4 terms.
fn spec_text() -> impl Strategy<Value = String> {
    prop::collection::vec(term(), 1..5).prop_map(|terms| terms.join(" * "))
}

/// The same spec with extra spaces around names, parentheses, commas and `*`.
fn spaced(canonical: &str) -> String {
    canonical
        .replace('(', " ( ")
        .replace(',', " , ")
        .replace(')', " )")
        .replace(" * ", "  *   ")
}

/// Terms over data the generated customers have, for extraction.
fn data_term() -> impl Strategy<Value = String> {
    let event = prop::sample::select(EVENTS.to_vec());
    let id = prop::sample::select(IDS.to_vec());
    prop_oneof![
        (event.clone(), window()).prop_map(|(event, window)| format!("count({event},{window})")),
        (event.clone(), window())
            .prop_map(|(event, window)| format!("log_count({event},{window})")),
        event.prop_map(|event| format!("days_since({event})")),
        Just("tenure_days".to_owned()),
        Just("attr(score)".to_owned()),
        Just("is(plan,pro)".to_owned()),
        Just("ctx(x)".to_owned()),
        Just("ctx_is(page,home)".to_owned()),
        Just("click_rate(email)".to_owned()),
        prop::sample::select(vec!["promo", "tips", "news"])
            .prop_map(|category| format!("category({category})")),
        prop::sample::select(vec!["email", "push", "in_app"])
            .prop_map(|channel| format!("channel({channel})")),
        id.prop_map(|id| format!("action({id})")),
        Just("action_value".to_owned()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// (c) Finite inputs (counts, attributes and context within ±1e6) give
    /// finite propensities, scores and features: the model never falls back.
    #[test]
    fn scores_and_propensities_are_finite(
        customer in customer_spec(),
        context in context_spec(),
        placement in 0..PLACEMENTS.len(),
        limit in 0..6u32,
    ) {
        let now = start();
        let state = build_customer(&customer, now);
        let budgets = BudgetCounters::default();
        let env = Environment { catalog: catalog(), model: Some(model()), budgets: &budgets };
        let request = DecisionRequest {
            placement: PLACEMENTS[placement],
            context: &context,
            candidates: &[],
            limit,
            dry_run: true,
            scoring: Scoring::Model,
            seed: 3,
            now,
        };
        let decision = decide(&env, &state, &request).expect("decides");
        prop_assert_eq!(decision.fallback, None);
        for served in &decision.served {
            prop_assert!(served.propensity.is_finite() && (0.0..=1.0).contains(&served.propensity));
            prop_assert!(served.score.is_finite(), "{:?}", served);
            prop_assert!(served.confidence.is_finite());
            prop_assert!(served.features.iter().all(|value| value.is_finite()), "{:?}", served);
            prop_assert!(served.rationale.iter().all(|reason| reason.contribution.is_finite()));
        }
        for filtered in &decision.filtered {
            prop_assert!(filtered.score.is_none_or(f64::is_finite), "{:?}", filtered);
            prop_assert!(filtered.propensity.is_none_or(f64::is_finite), "{:?}", filtered);
        }
        // Extraction over every action, not only the eligible ones.
        let actions: Vec<&Action> = catalog().actions.iter().collect();
        let input = FeatureInput { profile: &state.profile, context: &context, now };
        let (matrix, scores) = model().score_actions(&input, &actions);
        prop_assert!(matrix.iter().all(|value| value.is_finite()));
        prop_assert!(scores.iter().all(|score| score.is_finite()));
        // The serving path (cached action factors) computes the same features
        // and, up to rounding, the same scores.
        let catalog = catalog();
        let served = model().score_candidates(catalog, &input, &actions);
        for (row, action) in actions.iter().enumerate() {
            prop_assert_eq!(served.features(action), matrix.row(row).to_owned());
            prop_assert!((served.propensities[row] - scores[row]).abs() <= 1e-12 * scores[row].abs().max(1.0));
        }
    }

    /// (e) A spec prints canonically and parses back to itself, however it
    /// was spaced.
    #[test]
    fn feature_specs_round_trip(canonical in spec_text()) {
        let spec = FeatureSpec::parse(&canonical).expect("a generated spec parses");
        prop_assert_eq!(spec.to_string(), canonical.clone());
        let reparsed = FeatureSpec::parse(&spec.to_string()).expect("its display parses");
        prop_assert_eq!(&reparsed, &spec);
        let loose = FeatureSpec::parse(&spaced(&canonical)).expect("spaces are allowed");
        prop_assert_eq!(&loose, &spec);
        prop_assert_eq!(spec.terms().len(), canonical.matches(" * ").count() + 1);
    }

    /// Parsing never panics, whatever the text.
    #[test]
    fn feature_spec_parsing_never_panics(text in ".{0,40}") {
        if let Ok(spec) = FeatureSpec::parse(&text) {
            let again = FeatureSpec::parse(&spec.to_string()).expect("a display parses");
            prop_assert_eq!(again, spec);
        }
    }

    /// (f) The matrix rows of `extract` are exactly `extract_one` of each action.
    #[test]
    fn extract_rows_equal_extract_one(
        specs in prop::collection::btree_set(
            prop::collection::vec(data_term(), 1..4).prop_map(|terms| terms.join(" * ")),
            1..24,
        ),
        customer in customer_spec(),
        context in context_spec(),
    ) {
        let specs: Vec<String> = specs.into_iter().collect();
        let set = FeatureSet::parse(&specs).expect("generated specs parse");
        let now = start();
        let state = build_customer(&customer, now);
        let input = FeatureInput { profile: &state.profile, context: &context, now };
        let actions: Vec<&Action> = catalog().actions.iter().collect();
        let matrix = set.extract(&input, &actions);
        prop_assert_eq!(matrix.dim(), (actions.len(), set.len()));
        for (row, action) in matrix.rows().into_iter().zip(&actions) {
            let one = set.extract_one(&input, action);
            prop_assert_eq!(row.to_vec(), one, "action {}", &action.id);
        }
    }
}

#[test]
fn an_extreme_but_finite_signup_time_does_not_overflow() {
    // Regression: `Timestamp::days_since` subtracted without saturating, so a
    // `signup_at` of -1e300 ms (finite, accepted by the service) panicked in
    // debug builds and wrapped in release.
    let now = start();
    for signup in [-1e300, 1e300, f64::from(i32::MIN) * 1e12] {
        let spec = CustomerSpec {
            events: vec![(0, HOUR_MS)],
            score: None,
            plan: None,
            signup: Some(signup),
            engagement: [0; 4],
        };
        let state = build_customer(&spec, now);
        let tenure = state.profile.tenure_days(now);
        assert!(tenure.is_finite() && tenure >= 0.0, "{signup}: {tenure}");
        let budgets = BudgetCounters::default();
        let env = Environment {
            catalog: catalog(),
            model: Some(model()),
            budgets: &budgets,
        };
        let context = BTreeMap::new();
        let request = DecisionRequest {
            placement: "everywhere",
            context: &context,
            candidates: &[],
            limit: 0,
            dry_run: true,
            scoring: Scoring::Model,
            seed: 0,
            now,
        };
        let decision = decide(&env, &state, &request).expect("decides");
        assert_eq!(decision.fallback, None);
    }
}

/// The properties above are only as good as the situations the simulation
/// reaches: with proptest's deterministic seed, its streams must run into every
/// cap scope, cooldowns, budgets, diversity, rules and the fallback ladder.
#[test]
fn the_simulation_reaches_every_policy() {
    use nudge_models::pipeline::FilterReason;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut reasons: BTreeSet<FilterReason> = BTreeSet::new();
    let (mut served, mut fallbacks, mut budgeted) = (0, 0, 0);
    for _ in 0..64 {
        let ops = prop::collection::vec(op(), 1..60)
            .new_tree(&mut runner)
            .expect("a stream")
            .current();
        let mut sim = Sim::new(3);
        for op in &ops {
            if let Some(decided) = sim.apply(op) {
                reasons.extend(decided.decision.filtered.iter().map(|f| f.reason));
                served += decided.decision.served.len();
                fallbacks += usize::from(decided.decision.fallback.is_some());
            }
        }
        budgeted += sim.budgets.used("alert") + sim.budgets.used("coupon");
    }
    for reason in [
        FilterReason::UnknownAction,
        FilterReason::Inactive,
        FilterReason::ChannelNotAllowed,
        FilterReason::NotEligible,
        FilterReason::CapChannel,
        FilterReason::CapTotal,
        FilterReason::CapAction,
        FilterReason::CapCategory,
        FilterReason::Cooldown,
        FilterReason::QuietHours,
        FilterReason::BudgetExhausted,
        FilterReason::RankedBelowLimit,
        FilterReason::Diversity,
    ] {
        assert!(
            reasons.contains(&reason),
            "never reached {reason:?}: {reasons:?}"
        );
    }
    assert!(served > 100 && fallbacks > 10 && budgeted > 10);
}
