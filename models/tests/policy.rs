//! Deterministic tests of the decision pipeline's policy, with explicit times:
//! one test per filter reason, the arbitration, the fallback ladder and
//! exploration.

use nudge_models::Error;
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::{ConsentState, CustomerState, SuppressionReason};
use nudge_models::ledger::OutcomeKind;
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact, sigmoid};
use nudge_models::pipeline::{
    Decision, DecisionRequest, Environment, FallbackReason, FilterReason, Filtered, Scoring, decide,
};
use nudge_models::profile::Event;
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;

/// Channels, four actions and three placements every test starts from.
const BASE: &str = r#"[catalog]
name = "policy"
version = "policy-1"
timezone = "UTC"
events = ["login"]

[channels.in_app]

[channels.email]
quiet_hours = { start = "21:00", end = "08:00" }

[channels.sms]
consent = "opt_in"

[channels.push]
quiet_hours = { start = "13:00", end = "14:00" }

[[actions]]
id = "tip"
channel = "in_app"
category = "tips"

[[actions]]
id = "promo_mail"
channel = "email"
category = "promo"
value = 2.0

[[actions]]
id = "sms_alert"
channel = "sms"
category = "alerts"

[[actions]]
id = "push_ping"
channel = "push"
category = "tips"

[placements.everywhere]
channels = ["in_app", "email", "sms", "push"]
slots = 4

[placements.inbox]
channels = ["email"]

[placements.tips_only]
channels = ["in_app", "email"]
categories = ["tips"]
"#;

/// Three more in_app actions of known value, for ranking.
const RANKED: &str = r#"
[[actions]]
id = "tip_big"
channel = "in_app"
category = "tips"
value = 5.0

[[actions]]
id = "tip_mid"
channel = "in_app"
category = "tips"
value = 3.0

[[actions]]
id = "upsell_x"
channel = "in_app"
category = "upsell"
value = 2.0
"#;

/// `2026-11-23T12:00:00Z`, a Monday.
fn noon() -> Timestamp {
    at("2026-11-23T12:00:00Z")
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap_or_else(|| panic!("'{text}' is RFC 3339"))
}

fn plus(instant: Timestamp, millis: i64) -> Timestamp {
    Timestamp(instant.0 + millis)
}

/// A model whose propensity is sigmoid(ctx(boost)): 0.5 for every action
/// unless the request says otherwise, so ranking follows V·L·C.
fn model() -> Model {
    Model::from_artifact(ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "policy-model-1".to_owned(),
        description: String::new(),
        trained_at: None,
        features: vec![
            "ctx(boost)".to_owned(),
            "action_value".to_owned(),
            "category(tips)".to_owned(),
        ],
        weights: vec![1.0, 0.0, 0.0],
        intercept: 0.0,
        evidence: Default::default(),
    })
    .expect("valid model")
}

/// A catalog (the base plus `extra`), a model and global budgets.
struct World {
    catalog: Catalog,
    model: Model,
    budgets: BudgetCounters,
}

/// One decision's inputs, with defaults for everything but the placement.
#[derive(Clone)]
struct Ask {
    placement: &'static str,
    candidates: Vec<String>,
    context: BTreeMap<String, AttrValue>,
    limit: u32,
    dry_run: bool,
    scoring: Scoring,
    seed: u64,
    now: Timestamp,
}

impl Ask {
    fn new(placement: &'static str, candidates: &[&str], now: Timestamp) -> Self {
        Self {
            placement,
            candidates: candidates.iter().map(|id| (*id).to_owned()).collect(),
            context: BTreeMap::new(),
            limit: 0,
            dry_run: false,
            scoring: Scoring::Model,
            seed: 1,
            now,
        }
    }
}

impl World {
    fn new(extra: &str) -> Self {
        Self::from_text(&format!("{BASE}{extra}"))
    }

    fn from_text(text: &str) -> Self {
        let catalog = Catalog::from_toml(text).unwrap_or_else(|problems| panic!("{problems}"));
        Self {
            catalog,
            model: model(),
            budgets: BudgetCounters::default(),
        }
    }

    fn env(&self) -> Environment<'_> {
        Environment {
            catalog: &self.catalog,
            model: Some(&self.model),
            budgets: &self.budgets,
        }
    }

    fn try_run(&self, state: &CustomerState, ask: &Ask) -> Result<Decision, Error> {
        self.try_run_in(&self.env(), state, ask)
    }

    fn try_run_in(
        &self,
        env: &Environment<'_>,
        state: &CustomerState,
        ask: &Ask,
    ) -> Result<Decision, Error> {
        let request = DecisionRequest {
            placement: ask.placement,
            context: &ask.context,
            candidates: &ask.candidates,
            limit: ask.limit,
            dry_run: ask.dry_run,
            scoring: ask.scoring,
            seed: ask.seed,
            now: ask.now,
        };
        decide(env, state, &request)
    }

    fn run(&self, state: &CustomerState, ask: &Ask) -> Decision {
        self.try_run(state, ask).expect("the decision succeeds")
    }

    /// A decision with default options.
    fn decide(
        &self,
        state: &CustomerState,
        placement: &'static str,
        candidates: &[&str],
        now: Timestamp,
    ) -> Decision {
        self.run(state, &Ask::new(placement, candidates, now))
    }

    /// A real (non-dry-run) decision, recorded in the customer's ledger.
    fn serve(
        &self,
        state: &mut CustomerState,
        decision_id: &str,
        placement: &'static str,
        candidates: &[&str],
        now: Timestamp,
    ) -> Decision {
        let decision = self.decide(state, placement, candidates, now);
        nudge_models::pipeline::record(state, decision_id, &decision, &self.catalog, now);
        decision
    }
}

fn served_ids(decision: &Decision) -> Vec<&str> {
    decision
        .served
        .iter()
        .map(|served| served.action_id.as_str())
        .collect()
}

/// The one filtered entry of `id`.
#[track_caller]
fn filtered<'d>(decision: &'d Decision, id: &str) -> &'d Filtered {
    let found: Vec<&Filtered> = decision
        .filtered
        .iter()
        .filter(|filtered| *filtered.action_id == *id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "'{id}' should be filtered exactly once in {decision:#?}"
    );
    found[0]
}

/// Asserts `id` was filtered for `reason` with a message naming `words`.
#[track_caller]
fn assert_filtered(decision: &Decision, id: &str, reason: FilterReason, words: &[&str]) {
    let entry = filtered(decision, id);
    assert_eq!(entry.reason, reason, "{entry:?}");
    for word in words {
        assert!(
            entry.message.contains(word),
            "the message of {entry:?} should mention '{word}'"
        );
    }
}

#[track_caller]
fn assert_served(decision: &Decision, id: &str) {
    assert!(
        served_ids(decision).contains(&id),
        "'{id}' should be served in {decision:#?}"
    );
}

/// An `identify` event setting `attributes`.
fn identify(state: &mut CustomerState, attributes: &[(&str, AttrValue)], when: Timestamp) {
    let event = Event {
        event_id: format!("identify-{}-{}", when.0, attributes.len()),
        name: "identify".to_owned(),
        timestamp: when,
        properties: attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
    };
    state.track(&event, when);
}

fn track(state: &mut CustomerState, name: &str, when: Timestamp, index: usize) {
    let event = Event {
        event_id: format!("{name}-{}-{index}", when.0),
        name: name.to_owned(),
        timestamp: when,
        properties: BTreeMap::new(),
    };
    state.track(&event, when);
}

fn in_timezone(timezone: &str) -> CustomerState {
    let mut state = CustomerState::default();
    identify(
        &mut state,
        &[("timezone", AttrValue::from(timezone))],
        at("2026-11-01T00:00:00Z"),
    );
    state
}

// ── The placement, the catalog and the request ──────────────────────────────

#[test]
fn an_unknown_placement_is_an_error() {
    let world = World::new("");
    let error = world
        .try_run(&CustomerState::default(), &Ask::new("nowhere", &[], noon()))
        .expect_err("unknown placement");
    assert!(matches!(error, Error::UnknownPlacement(ref id) if id == "nowhere"));
}

#[test]
fn an_unknown_candidate_is_filtered() {
    let world = World::new("");
    let decision = world.decide(
        &CustomerState::default(),
        "everywhere",
        &["ghost", "tip"],
        noon(),
    );
    assert_filtered(
        &decision,
        "ghost",
        FilterReason::UnknownAction,
        &["'ghost'", "not in catalog policy-1"],
    );
    assert_eq!(served_ids(&decision), ["tip"]);
}

#[test]
fn repeated_candidates_are_considered_once() {
    let world = World::new("");
    let decision = world.decide(
        &CustomerState::default(),
        "inbox",
        &["tip", "tip", "promo_mail", "tip"],
        noon(),
    );
    assert_eq!(served_ids(&decision), ["promo_mail"]);
    assert_eq!(decision.filtered.len(), 1, "{decision:#?}");
    assert_filtered(&decision, "tip", FilterReason::ChannelNotAllowed, &[]);
}

#[test]
fn an_inactive_action_is_filtered() {
    let world = World::new(
        "\n[[actions]]\nid = \"old_tip\"\nchannel = \"in_app\"\ncategory = \"tips\"\nactive = false\n",
    );
    let state = CustomerState::default();
    let decision = world.decide(&state, "everywhere", &["old_tip", "tip"], noon());
    assert_filtered(
        &decision,
        "old_tip",
        FilterReason::Inactive,
        &["switched off"],
    );
    assert_served(&decision, "tip");
    // Without explicit candidates an inactive action is not a candidate at all.
    let decision = world.decide(&state, "everywhere", &[], noon());
    assert!(
        decision
            .filtered
            .iter()
            .all(|filtered| &*filtered.action_id != "old_tip")
    );
    assert!(!served_ids(&decision).contains(&"old_tip"));
}

#[test]
fn an_action_outside_its_validity_is_filtered() {
    let world = World::new(
        "\n[[actions]]\nid = \"advent\"\nchannel = \"in_app\"\ncategory = \"seasonal\"\nvalid_from = \"2026-12-01T00:00:00Z\"\nvalid_until = \"2026-12-24T23:59:59Z\"\n",
    );
    let state = CustomerState::default();
    let before = world.decide(&state, "everywhere", &["advent"], noon());
    assert_filtered(
        &before,
        "advent",
        FilterReason::OutsideValidity,
        &["valid from 2026-12-01T00:00:00"],
    );
    for inside in [
        "2026-12-01T00:00:00Z",
        "2026-12-10T12:00:00Z",
        "2026-12-24T23:59:59Z",
    ] {
        let decision = world.decide(&state, "everywhere", &["advent"], at(inside));
        assert_eq!(served_ids(&decision), ["advent"], "at {inside}");
    }
    let after = world.decide(
        &state,
        "everywhere",
        &["advent"],
        at("2026-12-25T00:00:00Z"),
    );
    assert_filtered(
        &after,
        "advent",
        FilterReason::OutsideValidity,
        &["expired at 2026-12-24T23:59:59"],
    );
}

#[test]
fn a_channel_the_placement_does_not_allow_is_filtered() {
    let world = World::new("");
    let decision = world.decide(
        &CustomerState::default(),
        "inbox",
        &["tip", "promo_mail"],
        noon(),
    );
    assert_filtered(
        &decision,
        "tip",
        FilterReason::ChannelNotAllowed,
        &["placement inbox", "channel in_app"],
    );
    assert_eq!(served_ids(&decision), ["promo_mail"]);
}

#[test]
fn a_category_the_placement_does_not_allow_is_filtered() {
    let world = World::new("");
    let decision = world.decide(
        &CustomerState::default(),
        "tips_only",
        &["tip", "promo_mail"],
        noon(),
    );
    assert_filtered(
        &decision,
        "promo_mail",
        FilterReason::CategoryNotAllowed,
        &["placement tips_only", "category promo"],
    );
    assert_eq!(served_ids(&decision), ["tip"]);
    // Without explicit candidates the placement only considers what it allows.
    let decision = world.decide(&CustomerState::default(), "tips_only", &[], noon());
    assert_eq!(served_ids(&decision), ["tip"]);
    assert!(decision.filtered.is_empty(), "{decision:#?}");
}

// ── Consent and suppression ─────────────────────────────────────────────────

#[test]
fn an_opt_in_channel_needs_consent() {
    let world = World::new("");
    let mut state = CustomerState::default();
    let decision = world.decide(&state, "everywhere", &["sms_alert"], noon());
    assert_filtered(
        &decision,
        "sms_alert",
        FilterReason::NoConsent,
        &["sms requires an opt-in"],
    );
    state.set_consent("sms", Some(ConsentState::OptedIn), noon());
    let decision = world.decide(&state, "everywhere", &["sms_alert"], noon());
    assert_eq!(served_ids(&decision), ["sms_alert"]);
}

#[test]
fn an_opted_out_channel_is_filtered() {
    let world = World::new("");
    let mut state = CustomerState::default();
    state.set_consent("in_app", Some(ConsentState::OptedOut), noon());
    state.set_consent("sms", Some(ConsentState::OptedOut), noon());
    let decision = world.decide(
        &state,
        "everywhere",
        &["tip", "sms_alert", "promo_mail"],
        noon(),
    );
    assert_filtered(
        &decision,
        "tip",
        FilterReason::OptedOut,
        &["opted out of in_app"],
    );
    assert_filtered(
        &decision,
        "sms_alert",
        FilterReason::OptedOut,
        &["opted out of sms"],
    );
    assert_eq!(served_ids(&decision), ["promo_mail"]);
    // Clearing the choice restores the channel's default (opt-out: allowed).
    assert_eq!(
        state.set_consent("in_app", None, noon()),
        Some(ConsentState::OptedOut)
    );
    let decision = world.decide(&state, "everywhere", &["tip"], noon());
    assert_eq!(served_ids(&decision), ["tip"]);
}

#[test]
fn a_suppressed_channel_is_filtered() {
    let world = World::new("");
    let mut state = CustomerState::default();
    assert!(state.suppress(
        Some("email"),
        SuppressionReason::Bounce,
        "hard bounce",
        noon()
    ));
    let decision = world.decide(&state, "everywhere", &["tip", "promo_mail"], noon());
    assert_filtered(
        &decision,
        "promo_mail",
        FilterReason::Suppressed,
        &["email suppressed (bounce)", "2026-11-23T12:00:00"],
    );
    assert_eq!(served_ids(&decision), ["tip"]);
    assert!(state.unsuppress(Some("email"), None));
    let decision = world.decide(&state, "everywhere", &["promo_mail"], noon());
    assert_eq!(served_ids(&decision), ["promo_mail"]);
}

#[test]
fn an_all_channel_suppression_filters_every_channel() {
    let world = World::new("");
    let mut state = CustomerState::default();
    state.set_consent("sms", Some(ConsentState::OptedIn), noon());
    assert!(state.suppress(None, SuppressionReason::Legal, "legal hold", noon()));
    let decision = world.decide(
        &state,
        "everywhere",
        &["tip", "promo_mail", "sms_alert", "push_ping"],
        noon(),
    );
    assert!(decision.served.is_empty(), "{decision:#?}");
    for id in ["tip", "promo_mail", "sms_alert", "push_ping"] {
        assert_filtered(
            &decision,
            id,
            FilterReason::Suppressed,
            &["every channel suppressed (legal)"],
        );
    }
    assert!(state.unsuppress(None, Some(SuppressionReason::Legal)));
    let decision = world.decide(&state, "everywhere", &["tip"], noon());
    assert_eq!(served_ids(&decision), ["tip"]);
}

// ── Rules ───────────────────────────────────────────────────────────────────

#[test]
fn an_action_whose_rule_is_false_is_not_eligible() {
    let world = World::new(
        "\n[[actions]]\nid = \"power_tip\"\nchannel = \"in_app\"\ncategory = \"tips\"\nrule = \"profile.count_7d.login >= 3\"\n\
         \n[[actions]]\nid = \"pricing_help\"\nchannel = \"in_app\"\ncategory = \"help\"\nrule = 'has(context.page) && context.page == \"pricing\"'\n",
    );
    let mut state = CustomerState::default();
    let decision = world.decide(&state, "everywhere", &["power_tip", "pricing_help"], noon());
    assert_filtered(
        &decision,
        "power_tip",
        FilterReason::NotEligible,
        &["rule is false: profile.count_7d.login >= 3"],
    );
    assert_filtered(
        &decision,
        "pricing_help",
        FilterReason::NotEligible,
        &["context.page"],
    );
    for index in 0..3 {
        track(
            &mut state,
            "login",
            plus(noon(), -(index as i64 + 1) * DAY_MS),
            index,
        );
    }
    let mut ask = Ask::new("everywhere", &["power_tip", "pricing_help"], noon());
    ask.context
        .insert("page".to_owned(), AttrValue::from("pricing"));
    let decision = world.run(&state, &ask);
    assert_eq!(served_ids(&decision), ["power_tip", "pricing_help"]);
}

#[test]
fn a_rule_that_fails_to_evaluate_is_a_rule_error() {
    let world = World::new(
        "\n[[actions]]\nid = \"not_bool\"\nchannel = \"in_app\"\ncategory = \"tips\"\nrule = \"1 + 1\"\n\
         \n[[actions]]\nid = \"needs_plan\"\nchannel = \"in_app\"\ncategory = \"upsell\"\nrule = 'profile.plan == \"pro\"'\n",
    );
    let mut state = CustomerState::default();
    let decision = world.decide(
        &state,
        "everywhere",
        &["not_bool", "needs_plan", "tip"],
        noon(),
    );
    assert_filtered(
        &decision,
        "not_bool",
        FilterReason::RuleError,
        &["1 + 1", "not a bool"],
    );
    assert_filtered(
        &decision,
        "needs_plan",
        FilterReason::RuleError,
        &["profile.plan == \"pro\"", "plan"],
    );
    assert_served(&decision, "tip");
    // Once the attribute exists the rule evaluates.
    identify(&mut state, &[("plan", AttrValue::from("pro"))], noon());
    let decision = world.decide(&state, "everywhere", &["needs_plan"], noon());
    assert_eq!(served_ids(&decision), ["needs_plan"]);
}

// ── Frequency caps ──────────────────────────────────────────────────────────

const TIP2: &str = "\n[[actions]]\nid = \"tip2\"\nchannel = \"in_app\"\ncategory = \"tips\"\n";

#[test]
fn a_channel_cap_counts_contacts_on_the_channel() {
    let world = World::new(&format!(
        "{TIP2}\n[[caps]]\nscope = \"channel\"\nchannel = \"in_app\"\nlimit = 1\nwindow = \"7d\"\n"
    ));
    let mut state = CustomerState::default();
    let first = world.serve(&mut state, "d1", "everywhere", &["tip"], noon());
    assert_eq!(served_ids(&first), ["tip"]);
    let later = plus(noon(), 6 * DAY_MS);
    let decision = world.decide(&state, "everywhere", &["tip2", "promo_mail"], later);
    assert_filtered(
        &decision,
        "tip2",
        FilterReason::CapChannel,
        &["in_app channel cap 1 per", "reached (1 contacts)"],
    );
    assert_eq!(served_ids(&decision), ["promo_mail"]);
    // The window rolls: seven days later the contact no longer counts.
    let decision = world.decide(&state, "everywhere", &["tip2"], plus(noon(), 7 * DAY_MS));
    assert_eq!(served_ids(&decision), ["tip2"]);
}

#[test]
fn a_cap_also_binds_within_one_decision() {
    let world = World::new(&format!(
        "{TIP2}\n[[caps]]\nscope = \"channel\"\nchannel = \"in_app\"\nlimit = 1\nwindow = \"7d\"\n"
    ));
    let decision = world.decide(
        &CustomerState::default(),
        "everywhere",
        &["tip", "tip2"],
        noon(),
    );
    assert_eq!(served_ids(&decision), ["tip"], "ties break by id");
    let entry = filtered(&decision, "tip2");
    assert_eq!(entry.reason, FilterReason::CapChannel);
    assert_eq!(
        entry.score,
        Some(0.5),
        "it passed the filters and was scored"
    );
    assert_eq!(entry.propensity, Some(0.5));
}

#[test]
fn a_total_cap_counts_every_channel() {
    let world = World::new("\n[[caps]]\nscope = \"total\"\nlimit = 2\nwindow = \"1d\"\n");
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["tip"], noon());
    world.serve(
        &mut state,
        "d2",
        "everywhere",
        &["promo_mail"],
        plus(noon(), HOUR_MS),
    );
    let decision = world.decide(
        &state,
        "everywhere",
        &["push_ping"],
        plus(noon(), 2 * HOUR_MS),
    );
    assert_filtered(
        &decision,
        "push_ping",
        FilterReason::CapTotal,
        &["total cap 2 per", "reached (2 contacts)"],
    );
}

#[test]
fn an_action_cap_counts_serves_of_the_action() {
    let world = World::new(&format!(
        "{TIP2}\n[[caps]]\nscope = \"action\"\naction = \"tip\"\nlimit = 1\nwindow = \"1d\"\n"
    ));
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["tip"], noon());
    let decision = world.decide(
        &state,
        "everywhere",
        &["tip", "tip2"],
        plus(noon(), HOUR_MS),
    );
    assert_filtered(
        &decision,
        "tip",
        FilterReason::CapAction,
        &["action tip cap 1 per", "reached (1 contacts)"],
    );
    assert_eq!(served_ids(&decision), ["tip2"]);
}

#[test]
fn a_category_cap_counts_the_category_on_every_channel() {
    let world = World::new(
        "\n[[caps]]\nscope = \"category\"\ncategory = \"tips\"\nlimit = 1\nwindow = \"1d\"\n",
    );
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["tip"], noon());
    // push_ping is on another channel but in the same category.
    let decision = world.decide(
        &state,
        "everywhere",
        &["push_ping", "promo_mail"],
        plus(noon(), 3 * HOUR_MS),
    );
    assert_filtered(
        &decision,
        "push_ping",
        FilterReason::CapCategory,
        &["tips category cap 1 per", "reached (1 contacts)"],
    );
    assert_eq!(served_ids(&decision), ["promo_mail"]);
}

#[test]
fn a_failed_delivery_gives_the_cap_slot_back() {
    let world = World::new("\n[[caps]]\nscope = \"total\"\nlimit = 1\nwindow = \"1d\"\n");
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["promo_mail"], noon());
    let decision = world.decide(&state, "everywhere", &["tip"], noon());
    assert_filtered(&decision, "tip", FilterReason::CapTotal, &[]);
    let result = state
        .report_outcome(
            "d1",
            "promo_mail",
            OutcomeKind::Failed,
            None,
            noon(),
            &world.budgets,
        )
        .expect("served");
    assert!(result.applied && result.slot_released);
    let decision = world.decide(&state, "everywhere", &["tip"], noon());
    assert_eq!(served_ids(&decision), ["tip"]);
}

// ── Cooldowns ───────────────────────────────────────────────────────────────

#[test]
fn an_action_cools_down_after_it_is_served() {
    let world = World::new(
        "\n[[actions]]\nid = \"cool\"\nchannel = \"in_app\"\ncategory = \"tips\"\ncooldown = \"1d\"\ndismiss_cooldown = \"7d\"\n",
    );
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["cool"], noon());
    let decision = world.decide(&state, "everywhere", &["cool"], plus(noon(), DAY_MS - 1));
    assert_filtered(
        &decision,
        "cool",
        FilterReason::Cooldown,
        &["served at 2026-11-23T12:00:00", "cooldown 1d"],
    );
    let decision = world.decide(&state, "everywhere", &["cool"], plus(noon(), DAY_MS));
    assert_eq!(served_ids(&decision), ["cool"]);
}

#[test]
fn a_dismissal_starts_the_longer_dismiss_cooldown() {
    let world = World::new(
        "\n[[actions]]\nid = \"cool\"\nchannel = \"in_app\"\ncategory = \"tips\"\ncooldown = \"1d\"\ndismiss_cooldown = \"7d\"\n",
    );
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["cool"], noon());
    let dismissed = plus(noon(), HOUR_MS);
    state
        .report_outcome(
            "d1",
            "cool",
            OutcomeKind::Dismiss,
            None,
            dismissed,
            &world.budgets,
        )
        .expect("served");
    // Past the serve cooldown, still inside the dismiss cooldown.
    for millis in [2 * DAY_MS, 7 * DAY_MS - 1] {
        let decision = world.decide(&state, "everywhere", &["cool"], plus(dismissed, millis));
        assert_filtered(
            &decision,
            "cool",
            FilterReason::Cooldown,
            &["dismissed at 2026-11-23T13:00:00", "dismiss cooldown"],
        );
    }
    let decision = world.decide(&state, "everywhere", &["cool"], plus(dismissed, 7 * DAY_MS));
    assert_eq!(served_ids(&decision), ["cool"]);
}

#[test]
fn without_a_dismiss_cooldown_a_dismissal_uses_the_cooldown() {
    let world = World::new(
        "\n[[actions]]\nid = \"cool\"\nchannel = \"in_app\"\ncategory = \"tips\"\ncooldown = \"2d\"\n",
    );
    let mut state = CustomerState::default();
    world.serve(&mut state, "d1", "everywhere", &["cool"], noon());
    let dismissed = plus(noon(), DAY_MS);
    state
        .report_outcome(
            "d1",
            "cool",
            OutcomeKind::Dismiss,
            None,
            dismissed,
            &world.budgets,
        )
        .expect("served");
    let decision = world.decide(
        &state,
        "everywhere",
        &["cool"],
        plus(dismissed, 2 * DAY_MS - 1),
    );
    assert_filtered(&decision, "cool", FilterReason::Cooldown, &["dismissed at"]);
    let decision = world.decide(&state, "everywhere", &["cool"], plus(dismissed, 2 * DAY_MS));
    assert_eq!(served_ids(&decision), ["cool"]);
}

// ── Quiet hours and blackouts, in the customer's local time ─────────────────

#[test]
fn quiet_hours_follow_the_customers_timezone() {
    let world = World::new("");
    // 12:00 UTC is 07:00 in New York (EST), inside email's 21:00–08:00.
    let new_yorker = in_timezone("America/New_York");
    let decision = world.decide(&new_yorker, "inbox", &["promo_mail"], noon());
    assert_filtered(
        &decision,
        "promo_mail",
        FilterReason::QuietHours,
        &[
            "email quiet hours 21:00–08:00",
            "it is 07:00 in America/New_York",
        ],
    );
    // The same instant is noon for a UTC customer (no attribute: the catalog's).
    let decision = world.decide(&CustomerState::default(), "inbox", &["promo_mail"], noon());
    assert_eq!(served_ids(&decision), ["promo_mail"]);
    let londoner = in_timezone("Europe/London");
    let decision = world.decide(&londoner, "inbox", &["promo_mail"], noon());
    assert_eq!(served_ids(&decision), ["promo_mail"]);
    // An hour later it is 08:00 in New York: the end is exclusive.
    let decision = world.decide(&new_yorker, "inbox", &["promo_mail"], plus(noon(), HOUR_MS));
    assert_eq!(served_ids(&decision), ["promo_mail"]);
}

#[test]
fn customers_without_a_valid_timezone_use_the_catalogs() {
    let world = World::from_text(&BASE.replace("timezone = \"UTC\"", "timezone = \"Asia/Tokyo\""));
    // 12:00 UTC is 21:00 in Tokyo.
    let decision = world.decide(&CustomerState::default(), "inbox", &["promo_mail"], noon());
    assert_filtered(
        &decision,
        "promo_mail",
        FilterReason::QuietHours,
        &["it is 21:00 in Asia/Tokyo"],
    );
    let confused = in_timezone("Mars/Olympus_Mons");
    let decision = world.decide(&confused, "inbox", &["promo_mail"], noon());
    assert_filtered(
        &decision,
        "promo_mail",
        FilterReason::QuietHours,
        &["Asia/Tokyo"],
    );
    let parisian = in_timezone("Europe/Paris");
    let decision = world.decide(&parisian, "inbox", &["promo_mail"], noon());
    assert_eq!(served_ids(&decision), ["promo_mail"]);
}

#[test]
fn quiet_hours_may_wrap_midnight() {
    let world = World::new("");
    let state = CustomerState::default();
    for (time, quiet) in [
        ("2026-11-23T20:59:00Z", false),
        ("2026-11-23T21:00:00Z", true),
        ("2026-11-23T23:30:00Z", true),
        ("2026-11-24T00:00:00Z", true),
        ("2026-11-24T07:59:59Z", true),
        ("2026-11-24T08:00:00Z", false),
    ] {
        let decision = world.decide(&state, "inbox", &["promo_mail"], at(time));
        if quiet {
            assert_filtered(&decision, "promo_mail", FilterReason::QuietHours, &[]);
        } else {
            assert_eq!(served_ids(&decision), ["promo_mail"], "at {time}");
        }
    }
    // A period that does not wrap: push is quiet 13:00–14:00.
    for (time, quiet) in [
        ("2026-11-23T12:59:00Z", false),
        ("2026-11-23T13:00:00Z", true),
        ("2026-11-23T13:59:00Z", true),
        ("2026-11-23T14:00:00Z", false),
        ("2026-11-23T23:00:00Z", false),
    ] {
        let decision = world.decide(&state, "everywhere", &["push_ping"], at(time));
        if quiet {
            assert_filtered(
                &decision,
                "push_ping",
                FilterReason::QuietHours,
                &["push quiet hours 13:00–14:00"],
            );
        } else {
            assert_eq!(served_ids(&decision), ["push_ping"], "at {time}");
        }
    }
}

#[test]
fn blackout_dates_are_local_dates() {
    let world = World::new(
        "\n[[blackouts]]\nname = \"Christmas Day\"\ndates = [\"2026-12-25\"]\nchannels = [\"push\"]\n",
    );
    let utc = CustomerState::default();
    let new_yorker = in_timezone("America/New_York");
    // 03:00 UTC on the 25th is still the 24th (22:00) in New York.
    let christmas_utc = at("2026-12-25T03:00:00Z");
    let decision = world.decide(&utc, "everywhere", &["push_ping", "tip"], christmas_utc);
    assert_filtered(
        &decision,
        "push_ping",
        FilterReason::Blackout,
        &["2026-12-25 is a blackout date (Christmas Day)"],
    );
    assert_eq!(served_ids(&decision), ["tip"], "in_app is not closed");
    let decision = world.decide(&new_yorker, "everywhere", &["push_ping"], christmas_utc);
    assert_eq!(served_ids(&decision), ["push_ping"]);
    // A day later it is Boxing Day in UTC but still Christmas in New York.
    let boxing_day_utc = at("2026-12-26T03:00:00Z");
    let decision = world.decide(&new_yorker, "everywhere", &["push_ping"], boxing_day_utc);
    assert_filtered(
        &decision,
        "push_ping",
        FilterReason::Blackout,
        &["2026-12-25"],
    );
    let decision = world.decide(&utc, "everywhere", &["push_ping"], boxing_day_utc);
    assert_eq!(served_ids(&decision), ["push_ping"]);
}

#[test]
fn a_blackout_without_channels_closes_every_channel() {
    let world = World::new("\n[[blackouts]]\nname = \"outage\"\ndates = [\"2026-11-23\"]\n");
    let decision = world.decide(
        &CustomerState::default(),
        "everywhere",
        &["tip", "promo_mail"],
        noon(),
    );
    assert!(decision.served.is_empty());
    assert_filtered(&decision, "tip", FilterReason::Blackout, &["(outage)"]);
    assert_filtered(
        &decision,
        "promo_mail",
        FilterReason::Blackout,
        &["(outage)"],
    );
}

// ── Global budgets ──────────────────────────────────────────────────────────

#[test]
fn a_used_up_budget_filters_the_action_for_everyone() {
    let world = World::new(
        "\n[[actions]]\nid = \"coupon\"\nchannel = \"in_app\"\ncategory = \"promo\"\nbudget = 1\n",
    );
    let mut alice = CustomerState::default();
    let bob = CustomerState::default();
    // A dry run does not take the unit.
    let mut dry = Ask::new("everywhere", &["coupon"], noon());
    dry.dry_run = true;
    assert_eq!(served_ids(&world.run(&bob, &dry)), ["coupon"]);
    assert_eq!(world.budgets.used("coupon"), 0);
    let decision = world.serve(&mut alice, "d1", "everywhere", &["coupon"], noon());
    assert_eq!(served_ids(&decision), ["coupon"]);
    assert_eq!(world.budgets.used("coupon"), 1);
    let decision = world.decide(&bob, "everywhere", &["coupon", "tip"], noon());
    assert_filtered(
        &decision,
        "coupon",
        FilterReason::BudgetExhausted,
        &["global budget of 1 is used up"],
    );
    assert_eq!(served_ids(&decision), ["tip"]);
    assert_eq!(world.budgets.used("coupon"), 1);
    // A failed delivery gives the unit back.
    alice
        .report_outcome(
            "d1",
            "coupon",
            OutcomeKind::Failed,
            None,
            noon(),
            &world.budgets,
        )
        .expect("served");
    assert_eq!(world.budgets.used("coupon"), 0);
    let decision = world.decide(&bob, "everywhere", &["coupon"], noon());
    assert_eq!(served_ids(&decision), ["coupon"]);
}

// ── Arbitration ─────────────────────────────────────────────────────────────

#[test]
fn priority_is_propensity_value_lever_and_context_weight() {
    let world = World::new(&format!(
        "{RANKED}\n[levers.categories]\nupsell = 3.0\n\n[placements.weighted]\nchannels = [\"in_app\"]\nslots = 4\ncontext_weights = {{ tips = 0.5 }}\n"
    ));
    let decision = world.decide(
        &CustomerState::default(),
        "weighted",
        &["tip_big", "tip_mid", "upsell_x", "tip"],
        noon(),
    );
    // upsell_x: 0.5 × 2 × 3 × 1 = 3; tip_big: 0.5 × 5 × 1 × 0.5 = 1.25; ...
    assert_eq!(
        served_ids(&decision),
        ["upsell_x", "tip_big", "tip_mid", "tip"]
    );
    let scores: Vec<f64> = decision.served.iter().map(|served| served.score).collect();
    assert_eq!(scores, [3.0, 1.25, 0.75, 0.25]);
    for (position, served) in decision.served.iter().enumerate() {
        assert_eq!(served.rank as usize, position + 1);
        assert_eq!(served.propensity, 0.5);
        assert_eq!(served.selection_probability, 1.0);
        assert_eq!(served.features.len(), 3, "the features used are returned");
    }
    assert_eq!(decision.model_version.as_deref(), Some("policy-model-1"));
    assert_eq!(decision.fallback, None);
}

#[test]
fn candidates_ranked_below_the_limit_are_filtered() {
    let world = World::new(&format!(
        "{RANKED}\n[placements.feed]\nchannels = [\"in_app\"]\nslots = 1\n"
    ));
    let state = CustomerState::default();
    let decision = world.decide(&state, "feed", &[], noon());
    assert_eq!(served_ids(&decision), ["tip_big"]);
    for (id, value) in [("tip_mid", 3.0), ("upsell_x", 2.0), ("tip", 1.0)] {
        assert_filtered(
            &decision,
            id,
            FilterReason::RankedBelowLimit,
            &["ranked below the limit of 1"],
        );
        let entry = filtered(&decision, id);
        assert_eq!(entry.score, Some(0.5 * value));
        assert_eq!(entry.propensity, Some(0.5));
    }
    // The request's limit overrides the placement's slots.
    let mut ask = Ask::new("feed", &[], noon());
    ask.limit = 3;
    let decision = world.run(&state, &ask);
    assert_eq!(served_ids(&decision), ["tip_big", "tip_mid", "upsell_x"]);
    assert_filtered(
        &decision,
        "tip",
        FilterReason::RankedBelowLimit,
        &["limit of 3"],
    );
}

#[test]
fn one_per_category_serves_each_category_once() {
    let world = World::new(&format!(
        "{RANKED}\n[placements.diverse]\nchannels = [\"in_app\"]\nslots = 3\none_per_category = true\n"
    ));
    let decision = world.decide(
        &CustomerState::default(),
        "diverse",
        &["tip_big", "tip_mid", "upsell_x"],
        noon(),
    );
    assert_eq!(served_ids(&decision), ["tip_big", "upsell_x"]);
    assert_filtered(&decision, "tip_mid", FilterReason::Diversity, &["tips"]);
    assert_eq!(filtered(&decision, "tip_mid").score, Some(1.5));
}

#[test]
fn a_model_decision_explains_itself() {
    let world = World::new("");
    let mut ask = Ask::new("everywhere", &["tip"], noon());
    ask.context.insert("boost".to_owned(), AttrValue::Num(2.0));
    let decision = world.run(&CustomerState::default(), &ask);
    let served = &decision.served[0];
    assert_eq!(served.propensity, sigmoid(2.0));
    assert_eq!(served.features, [2.0, 1.0, 1.0]);
    // Only non-zero weights contribute.
    assert_eq!(served.rationale.len(), 1, "{:?}", served.rationale);
    let reason = &served.rationale[0];
    assert_eq!(reason.feature, "ctx(boost)");
    assert_eq!((reason.value, reason.contribution), (2.0, 2.0));
    assert_eq!(reason.text, "boost is 2");
}

// ── The fallback ladder ─────────────────────────────────────────────────────

const LADDER: &str = r#"
[[actions]]
id = "l_cool"
channel = "in_app"
category = "tips"
cooldown = "1d"

[[segments]]
name = "trialists"
rule = 'has(profile.plan) && profile.plan == "trial"'
actions = ["tip_mid", "upsell_x"]

[[segments]]
name = "everyone"
rule = "profile.days_since_signup >= 0.0"
actions = ["l_cool"]

[placements.ladder]
channels = ["in_app"]
slots = 3
fallback = ["tip", "tip_mid"]
exploration = { method = "epsilon", epsilon = 1.0 }
"#;

#[test]
fn the_fallback_ladder_serves_segment_defaults_then_placement_fallbacks() {
    let world = World::new(&format!("{RANKED}{LADDER}"));
    let mut trialist = CustomerState::default();
    identify(&mut trialist, &[("plan", AttrValue::from("trial"))], noon());
    let mut ask = Ask::new("ladder", &[], noon());
    ask.scoring = Scoring::Fallback(FallbackReason::Deadline);
    let decision = world.run(&trialist, &ask);
    // The first matching segment's defaults (tip_mid, upsell_x), then the
    // placement's fallbacks not already listed (tip); the model's favourite
    // (tip_big) and the later segment's default are not on the ladder.
    assert_eq!(served_ids(&decision), ["tip_mid", "upsell_x", "tip"]);
    for id in ["tip_big", "l_cool"] {
        assert_filtered(
            &decision,
            id,
            FilterReason::RankedBelowLimit,
            &["not on the fallback ladder"],
        );
    }
    assert_eq!(decision.fallback, Some(FallbackReason::Deadline));
    assert_eq!(decision.model_version, None);
    for served in &decision.served {
        assert_eq!(served.propensity, 0.0);
        assert_eq!(served.confidence, 0.0);
        assert!(served.features.is_empty());
        // No exploration in a fallback, even with epsilon = 1.
        assert_eq!(served.selection_probability, 1.0);
        assert_eq!(served.rationale.len(), 1);
        assert_eq!(served.rationale[0].feature, "fallback");
    }
    assert_eq!(
        decision.served[0].rationale[0].text,
        "fallback (deadline): default for segment trialists"
    );
    assert_eq!(
        decision.served[2].rationale[0].text,
        "fallback (deadline): fallback of placement ladder"
    );
    // The reported score is V·L·C.
    assert_eq!(decision.served[0].score, 3.0);
}

#[test]
fn the_fallback_ladder_is_still_filtered_by_policy() {
    let world = World::new(&format!("{RANKED}{LADDER}"));
    let mut state = CustomerState::default();
    // No plan: the second segment matches, its default is l_cool.
    let mut ask = Ask::new("ladder", &[], noon());
    ask.scoring = Scoring::Fallback(FallbackReason::Overloaded);
    let decision = world.run(&state, &ask);
    assert_eq!(served_ids(&decision), ["l_cool", "tip", "tip_mid"]);
    assert!(
        decision.served[0].rationale[0]
            .text
            .contains("default for segment everyone")
    );
    nudge_models::pipeline::record(&mut state, "d1", &decision, &world.catalog, noon());
    // An hour later l_cool is cooling down: the ladder continues below it.
    ask.now = plus(noon(), HOUR_MS);
    let decision = world.run(&state, &ask);
    assert_filtered(&decision, "l_cool", FilterReason::Cooldown, &["served at"]);
    assert_eq!(served_ids(&decision), ["tip", "tip_mid"]);
    assert_eq!(decision.fallback, Some(FallbackReason::Overloaded));
}

#[test]
fn without_a_model_the_ladder_answers() {
    let world = World::new(&format!("{RANKED}{LADDER}"));
    let env = Environment {
        model: None,
        ..world.env()
    };
    let mut trialist = CustomerState::default();
    identify(&mut trialist, &[("plan", AttrValue::from("trial"))], noon());
    let decision = world
        .try_run_in(&env, &trialist, &Ask::new("ladder", &[], noon()))
        .expect("decides");
    assert_eq!(decision.fallback, Some(FallbackReason::ModelMissing));
    assert_eq!(decision.model_version, None);
    assert_eq!(served_ids(&decision), ["tip_mid", "upsell_x", "tip"]);
    assert!(
        decision.served[0].rationale[0]
            .text
            .starts_with("fallback (model_missing)")
    );
}

#[test]
fn a_non_finite_score_falls_back_with_model_error() {
    // Model validation forbids non-finite weights, but a non-finite request
    // context value still reaches the features (the service refuses them; the
    // domain defends itself anyway).
    let world = World::new(&format!("{RANKED}{LADDER}"));
    let mut ask = Ask::new("ladder", &[], noon());
    ask.context
        .insert("boost".to_owned(), AttrValue::Num(f64::NAN));
    let decision = world.run(&CustomerState::default(), &ask);
    assert_eq!(decision.fallback, Some(FallbackReason::ModelError));
    assert_eq!(decision.model_version, None);
    assert_eq!(served_ids(&decision), ["l_cool", "tip", "tip_mid"]);
    assert!(
        decision.served[0].rationale[0]
            .text
            .starts_with("fallback (model_error)")
    );
    assert!(
        decision
            .filtered
            .iter()
            .all(|filtered| filtered.propensity.is_none()),
        "no NaN propensity leaks out: {decision:#?}"
    );
}

// ── Exploration ─────────────────────────────────────────────────────────────

const EXPLORE: &str = r#"
[placements.explore]
channels = ["in_app"]
slots = 1
exploration = { method = "epsilon", epsilon = 0.4 }

[placements.softly]
channels = ["in_app"]
slots = 2
exploration = { method = "softmax", temperature = 0.5 }
"#;

#[test]
fn epsilon_exploration_reports_its_selection_probability() {
    let world = World::new(&format!("{RANKED}{EXPLORE}"));
    let state = CustomerState::default();
    // Four eligible in_app actions, best first: tip_big, tip_mid, upsell_x, tip.
    let epsilon = 0.4;
    let best_probability = epsilon / 4.0 + (1.0 - epsilon);
    let other_probability = epsilon / 4.0;
    let mut picks: BTreeMap<String, u32> = BTreeMap::new();
    let runs = 400;
    for seed in 0..runs {
        let mut ask = Ask::new("explore", &[], noon());
        ask.seed = seed;
        let decision = world.run(&state, &ask);
        assert_eq!(decision.served.len(), 1);
        let served = &decision.served[0];
        let expected = if served.action_id == "tip_big" {
            best_probability
        } else {
            other_probability
        };
        assert!(
            (served.selection_probability - expected).abs() < 1e-12,
            "seed {seed}: {served:?}"
        );
        *picks.entry(served.action_id.clone()).or_default() += 1;
        // The same seed gives the same decision.
        assert_eq!(world.run(&state, &ask), decision);
    }
    assert_eq!(picks.len(), 4, "every action is explored: {picks:?}");
    // Expected 0.7 × 400 = 280 picks of the best (σ ≈ 9).
    let best = picks["tip_big"];
    assert!((240..=320).contains(&best), "{picks:?}");
    // With two slots the second pick is among the three left.
    for seed in 0..50 {
        let mut ask = Ask::new("explore", &[], noon());
        ask.seed = seed;
        ask.limit = 2;
        let decision = world.run(&state, &ask);
        let first = &decision.served[0].action_id;
        let second = &decision.served[1];
        let best_left = ["tip_big", "tip_mid", "upsell_x", "tip"]
            .into_iter()
            .find(|id| id != first)
            .expect("three are left");
        let expected = epsilon / 3.0
            + if second.action_id == best_left {
                1.0 - epsilon
            } else {
                0.0
            };
        assert!(
            (second.selection_probability - expected).abs() < 1e-12,
            "seed {seed}: {decision:#?}"
        );
    }
}

#[test]
fn softmax_exploration_reports_its_selection_probability() {
    let world = World::new(&format!("{RANKED}{EXPLORE}"));
    let state = CustomerState::default();
    let priorities: BTreeMap<&str, f64> = [
        ("tip_big", 2.5),
        ("tip_mid", 1.5),
        ("upsell_x", 1.0),
        ("tip", 0.5),
    ]
    .into_iter()
    .collect();
    let probability = |id: &str, pool: &[&str]| {
        let best = pool
            .iter()
            .map(|other| priorities[other])
            .fold(f64::NEG_INFINITY, f64::max);
        let weight = |other: &str| ((priorities[other] - best) / 0.5).exp();
        weight(id) / pool.iter().map(|other| weight(other)).sum::<f64>()
    };
    for seed in 0..100 {
        let mut ask = Ask::new("softly", &[], noon());
        ask.seed = seed;
        let decision = world.run(&state, &ask);
        assert_eq!(decision.served.len(), 2);
        let all = ["tip_big", "tip_mid", "upsell_x", "tip"];
        let first = decision.served[0].action_id.as_str();
        assert!((decision.served[0].selection_probability - probability(first, &all)).abs() < 1e-9);
        let rest: Vec<&str> = all.into_iter().filter(|id| *id != first).collect();
        let second = decision.served[1].action_id.as_str();
        assert!(
            (decision.served[1].selection_probability - probability(second, &rest)).abs() < 1e-9,
            "seed {seed}: {decision:#?}"
        );
        assert_eq!(decision.served[0].score, priorities[first]);
    }
}
