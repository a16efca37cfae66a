//! The embedded demo (`models/demo/`): the catalog and model load, and the story
//! the demo tells holds — a new customer gets an explained answer, pricing views
//! raise the upsell banner, and every policy the catalog declares (consent,
//! caps, cooldowns, quiet hours, blackout, validity, budget, diversity) stops
//! candidates with a reason and a message.
//!
//! Only the crate's public API is used, and time is always an explicit `now`.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::journeys::is_journey_placement;
use nudge_models::catalog::{Catalog, ConsentPolicy, Exploration};
use nudge_models::customer::{ConsentState, CustomerState, SuppressionReason};
use nudge_models::demo::{CATALOG_TOML, MODEL_JSON};
use nudge_models::features::Term;
use nudge_models::ledger::OutcomeKind;
use nudge_models::model::Model;
use nudge_models::pipeline::{
    Decision, DecisionRequest, Environment, FallbackReason, FilterReason, Scoring, decide,
};
use nudge_models::profile::{Event, IDENTIFY_EVENT};
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::{BTreeMap, BTreeSet};

/// 2026-11-23T12:00:00Z, a Monday noon: outside every quiet period.
const NOW: Timestamp = Timestamp::from_millis(1_795_435_200_000);
const MINUTE_MS: i64 = 60_000;

/// The six in-app actions a brand-new customer is eligible for in `home_banner`.
const FRESH_IN_APP: [&str; 6] = [
    "welcome_tour",
    "connect_first_integration",
    "create_first_report",
    "invite_teammates",
    "upgrade_to_pro_banner",
    "template_gallery",
];

const PRICING_FEATURE: &str = "category(upsell) * count(pricing_page_view,7d)";

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("a valid RFC 3339 instant")
}

fn later(start: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_millis(start.millis() + millis)
}

/// The demo catalog and model, and the budgets they share.
struct Demo {
    catalog: Catalog,
    model: Model,
    budgets: BudgetCounters,
}

/// One `decide` call's inputs beyond the customer.
struct Ask<'a> {
    placement: &'a str,
    now: Timestamp,
    candidates: Vec<String>,
    context: BTreeMap<String, AttrValue>,
    scoring: Scoring,
}

impl<'a> Ask<'a> {
    fn new(placement: &'a str, now: Timestamp) -> Self {
        Self {
            placement,
            now,
            candidates: Vec::new(),
            context: BTreeMap::new(),
            scoring: Scoring::Model,
        }
    }

    fn candidates(mut self, ids: &[&str]) -> Self {
        self.candidates = ids.iter().map(|id| (*id).to_owned()).collect();
        self
    }
}

impl Demo {
    fn load() -> Self {
        let catalog = Catalog::from_toml(CATALOG_TOML)
            .unwrap_or_else(|problems| panic!("demo catalog: {problems}"));
        let model = Model::from_json(MODEL_JSON.as_bytes())
            .unwrap_or_else(|error| panic!("demo model: {error}"));
        Self {
            catalog,
            model,
            budgets: BudgetCounters::default(),
        }
    }

    /// Runs the pipeline (not a dry run) and checks no rule failed to evaluate.
    fn decide(&self, state: &CustomerState, ask: &Ask<'_>) -> Decision {
        let env = Environment {
            catalog: &self.catalog,
            model: Some(&self.model),
            budgets: &self.budgets,
        };
        let request = DecisionRequest {
            placement: ask.placement,
            context: &ask.context,
            candidates: &ask.candidates,
            limit: 0,
            dry_run: false,
            scoring: ask.scoring,
            seed: 7,
            now: ask.now,
        };
        let decision = decide(&env, state, &request).expect("the placement exists");
        let errors: Vec<_> = decision
            .filtered
            .iter()
            .filter(|f| f.reason == FilterReason::RuleError)
            .collect();
        assert!(errors.is_empty(), "demo rules must never fail: {errors:?}");
        decision
    }

    fn at(&self, state: &CustomerState, placement: &str, now: Timestamp) -> Decision {
        self.decide(state, &Ask::new(placement, now))
    }
}

fn track(state: &mut CustomerState, name: &str, when: Timestamp, now: Timestamp) {
    let event = Event {
        event_id: format!("{name}@{}", when.millis()),
        name: name.to_owned(),
        timestamp: when,
        properties: BTreeMap::new(),
    };
    state.track(&event, now);
}

fn identify(state: &mut CustomerState, attributes: &[(&str, &str)], now: Timestamp) {
    let event = Event {
        event_id: format!("identify@{}-{}", now.millis(), attributes.len()),
        name: IDENTIFY_EVENT.to_owned(),
        timestamp: now,
        properties: attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), AttrValue::from(*value)))
            .collect(),
    };
    state.track(&event, now);
}

fn served_ids(decision: &Decision) -> Vec<&str> {
    decision
        .served
        .iter()
        .map(|served| served.action_id.as_str())
        .collect()
}

/// The propensity of `action`, whether it was served or ranked out.
fn propensity(decision: &Decision, action: &str) -> Option<f64> {
    let served = decision
        .served
        .iter()
        .find(|s| s.action_id == action)
        .map(|s| s.propensity);
    served.or_else(|| {
        decision
            .filtered
            .iter()
            .find(|f| &*f.action_id == action)
            .and_then(|f| f.propensity)
    })
}

/// The reason and message that stopped `action`; fails if it was not filtered.
fn filtered(decision: &Decision, action: &str) -> (FilterReason, String) {
    decision
        .filtered
        .iter()
        .find(|f| &*f.action_id == action)
        .map(|f| (f.reason, f.message.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "{action} should be filtered: served {:?}",
                served_ids(decision)
            )
        })
}

fn assert_filtered(decision: &Decision, action: &str, reason: FilterReason, message_part: &str) {
    let (actual, message) = filtered(decision, action);
    assert_eq!(actual, reason, "{action}: {message}");
    assert!(
        message.contains(message_part),
        "{action}: '{message}' should mention '{message_part}'"
    );
}

#[test]
fn the_fixed_now_is_monday_noon_utc() {
    assert_eq!(NOW, at("2026-11-23T12:00:00Z"));
}

#[test]
fn the_demo_catalog_loads_with_the_documented_policy() {
    let catalog = Demo::load().catalog;
    assert_eq!(catalog.version, "demo-2026-11");
    assert_eq!(catalog.default_timezone, chrono_tz_utc());
    assert!(
        (18..=22).contains(&catalog.actions.len()),
        "{} actions",
        catalog.actions.len()
    );

    let channels: BTreeSet<&str> = catalog
        .actions
        .iter()
        .map(|action| action.channel.as_str())
        .collect();
    assert_eq!(
        channels,
        BTreeSet::from(["content", "email", "in_app", "push", "sms", "task"])
    );
    for (channel, quiet) in [
        ("email", Some("21:00–08:00")),
        ("sms", Some("20:00–09:00")),
        ("push", Some("22:00–08:00")),
    ]
    .into_iter()
    .chain([("in_app", None), ("content", None), ("task", None)])
    {
        let declared = catalog
            .channel(channel)
            .expect("declared")
            .quiet_hours
            .map(|quiet| quiet.describe());
        assert_eq!(declared.as_deref(), quiet, "quiet hours of {channel}");
    }
    assert_eq!(
        catalog.channel("sms").expect("declared").consent,
        ConsentPolicy::OptIn
    );
    assert_eq!(
        catalog.channel("email").expect("declared").consent,
        ConsentPolicy::OptOut
    );

    let caps: Vec<String> = catalog.caps.iter().map(|cap| cap.describe()).collect();
    assert_eq!(
        caps,
        [
            "email channel cap 2 per 7d",
            "push channel cap 3 per 7d",
            "sms channel cap 1 per 7d",
            "in_app channel cap 5 per 7d",
            "total cap 8 per 7d",
            "upsell category cap 3 per 7d",
        ]
    );
    let christmas = chrono::NaiveDate::from_ymd_opt(2026, 12, 25).expect("a date");
    for channel in ["email", "sms", "push"] {
        assert!(
            catalog
                .blackouts
                .iter()
                .any(|b| b.closes(channel, christmas)),
            "{channel} closed on Christmas"
        );
    }
    for channel in ["in_app", "content", "task"] {
        assert!(
            !catalog
                .blackouts
                .iter()
                .any(|b| b.closes(channel, christmas)),
            "{channel} open on Christmas"
        );
    }

    let banner = catalog.placement("home_banner").expect("home_banner");
    assert_eq!((banner.slots, banner.exploration), (1, Exploration::None));
    assert_eq!(banner.channels, ["in_app", "content"]);
    let sidebar = catalog
        .placement("onboarding_sidebar")
        .expect("onboarding_sidebar");
    assert_eq!((sidebar.slots, sidebar.one_per_category), (3, true));
    assert_eq!(
        catalog
            .placement("daily_email")
            .expect("daily_email")
            .channels,
        ["email"]
    );
    for placement in catalog
        .placements
        .values()
        .filter(|placement| !is_journey_placement(&placement.id))
    {
        assert!(
            !placement.fallback.is_empty(),
            "{} has fallback actions",
            placement.id
        );
        assert!(
            !placement.context_weights.is_empty(),
            "{} has context weights",
            placement.id
        );
    }
    assert_eq!(
        catalog.segments.last().map(|segment| segment.rule.source()),
        Some("true")
    );

    let coupon = catalog.action("trial_discount_email").expect("the coupon");
    assert_eq!(coupon.budget, Some(1000));
    for id in FRESH_IN_APP {
        let action = catalog.action(id).expect("declared");
        assert_eq!(action.channel, "in_app", "{id}");
        assert!(
            action
                .cooldown
                .is_none_or(|cooldown| cooldown.millis() <= HOUR_MS),
            "{id}: short cooldown"
        );
    }
}

fn chrono_tz_utc() -> chrono_tz::Tz {
    "UTC".parse().expect("UTC is a timezone")
}

#[test]
fn the_demo_model_loads_and_speaks_the_catalogs_language() {
    let Demo { catalog, model, .. } = Demo::load();
    let artifact = model.artifact();
    assert_eq!(model.version(), nudge_models::demo::MODEL_VERSION);
    // Trained by the learning loop on the simulator, and it says so.
    for part in [
        "regenerate.sh",
        "nudge simulate",
        "trained by `nudge train`",
    ] {
        assert!(
            artifact.description.contains(part),
            "{part}: {}",
            artifact.description
        );
    }
    assert!(
        (30..=64).contains(&model.features().len()),
        "{} features",
        model.features().len()
    );
    assert!(
        (-3.0..=-2.0).contains(&artifact.intercept),
        "intercept {}",
        artifact.intercept
    );

    // Every event, category and channel a feature names exists in the catalog,
    // so a typo can't silently make a feature always 0.
    let categories: BTreeSet<&str> = catalog
        .actions
        .iter()
        .map(|action| action.category.as_str())
        .collect();
    for spec in model.features().specs() {
        for term in spec.terms() {
            match term {
                Term::Count { event, .. }
                | Term::LogCount { event, .. }
                | Term::DaysSince { event } => {
                    assert!(
                        catalog.known_events.contains(event),
                        "{spec}: event {event} is not in [catalog] events"
                    );
                }
                Term::Category { name } => assert!(
                    categories.contains(name.as_str()),
                    "{spec}: no category {name}"
                ),
                Term::Channel { name } => {
                    assert!(catalog.channel(name).is_some(), "{spec}: no channel {name}")
                }
                Term::Action { id } => {
                    assert!(catalog.action(id).is_some(), "{spec}: no action {id}")
                }
                _ => {}
            }
        }
    }
    // The simulated placements (home_banner, onboarding_sidebar) serve the
    // in-app and content actions: those have training rows, the others none.
    assert!(artifact.evidence.total > 0);
    for action in &catalog.actions {
        let simulated = ["in_app", "content"].contains(&&*action.channel);
        assert_eq!(
            artifact.evidence.per_action.contains_key(&*action.id),
            simulated,
            "evidence for {} ({})",
            action.id,
            action.channel
        );
    }
    for id in artifact.evidence.per_action.keys() {
        assert!(
            catalog.action(id).is_some(),
            "evidence for unknown action {id}"
        );
    }
    let weight = |feature: &str| {
        let position = artifact
            .features
            .iter()
            .position(|spec| spec == feature)
            .expect("feature present");
        artifact.weights[position]
    };
    // What the simulator's truth says, learned: buying intent sells the
    // upgrade, a failed payment gets fixed, onboarding fades with tenure, and
    // a first report needs a data source.
    assert!(weight(PRICING_FEATURE) > 0.0);
    assert!(weight("category(billing) * count(payment_failed,7d)") > 0.0);
    assert!(weight("category(onboarding) * tenure_days") < 0.0);
    assert!(weight("category(activation) * count(integration_connected,30d)") > 0.0);
    // A feature the log never varies (no email, push, SMS or CSM action is
    // served there) keeps weight 0.
    for feature in [
        "channel(email)",
        "channel(task)",
        "category(winback) * days_since(login)",
    ] {
        assert_eq!(weight(feature), 0.0, "{feature}");
    }
}

#[test]
fn every_model_weight_is_documented_in_the_readme() {
    let readme = include_str!("../demo/README.md");
    let model = Demo::load().model;
    let artifact = model.artifact();
    for (feature, weight) in artifact.features.iter().zip(&artifact.weights) {
        let prefix = format!("| `{feature}` |");
        let row = readme
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("README.md has no row for {feature}"));
        let documented: f64 = row
            .split('|')
            .nth(2)
            .and_then(|cell| cell.trim().replace('−', "-").parse().ok())
            .unwrap_or_else(|| panic!("README.md row for {feature} has no weight: {row}"));
        // The README gives learned weights to three significant figures.
        assert!(
            (documented - weight).abs() <= 5e-3 * weight.abs(),
            "{feature}: README says {documented}, model.json {weight}"
        );
    }
}

/// A trialist who signed up at `NOW`, identified as every simulated customer
/// the demo model learned from is (with a plan and a signup time).
fn new_trialist() -> CustomerState {
    let mut state = CustomerState::default();
    identify(
        &mut state,
        &[("plan", "trial"), ("signup_at", "2026-11-23T12:00:00Z")],
        NOW,
    );
    state
}

#[test]
fn a_new_customer_gets_an_explained_home_banner_action() {
    let demo = Demo::load();
    let trialist = new_trialist();
    let decision = demo.at(&trialist, "home_banner", NOW);
    assert_eq!(
        decision.model_version.as_deref(),
        Some(nudge_models::demo::MODEL_VERSION)
    );
    assert_eq!(decision.fallback, None);
    let [served] = decision.served.as_slice() else {
        panic!("one slot: {:?}", served_ids(&decision))
    };
    // P·V·L·C: the upgrade (value 30) at a low propensity ranks just above
    // the welcome tour (value 3, context weight 1.2) at a high one.
    assert_eq!(served.action_id, "upgrade_to_pro_banner");
    assert!(
        (0.01..=0.1).contains(&served.propensity),
        "propensity {}",
        served.propensity
    );
    assert!(served.confidence > 0.5, "confidence {}", served.confidence);
    assert_eq!(
        served.rationale[0].text,
        "plan is trial, for upsell actions"
    );
    assert!(served.rationale[0].contribution < 0.0);
    assert!(served.payload.contains_key("title") && served.payload.contains_key("url"));
    let tour = propensity(&decision, "welcome_tour").expect("the tour is scored");
    assert!(tour > 4.0 * served.propensity, "tour {tour}");
    assert_filtered(
        &decision,
        "welcome_tour",
        FilterReason::RankedBelowLimit,
        "ranked below the limit of 1",
    );

    // Several in-app and content actions are eligible and scored for a new
    // customer; every propensity is realistic.
    for id in FRESH_IN_APP.into_iter().chain(["guide_getting_started"]) {
        let p = propensity(&decision, id).unwrap_or_else(|| panic!("{id} should be scored"));
        assert!((0.01..=0.3).contains(&p), "{id}: propensity {p}");
    }
    assert_filtered(
        &decision,
        "seat_limit_upgrade",
        FilterReason::NotEligible,
        "rule is false: profile.count_7d",
    );

    // The sidebar serves three kinds of help, one per category, the tour
    // first, explained by its category.
    let sidebar = demo.at(&trialist, "onboarding_sidebar", NOW);
    assert_eq!(
        served_ids(&sidebar),
        [
            "welcome_tour",
            "connect_first_integration",
            "template_gallery"
        ]
    );
    assert_eq!(
        sidebar.served[0].rationale[0].text,
        "for onboarding actions"
    );
    assert_filtered(
        &sidebar,
        "invite_teammates",
        FilterReason::Diversity,
        "an action of category activation was already served",
    );
}

#[test]
fn three_pricing_page_views_raise_the_upsell_banner_and_explain_why() {
    let demo = Demo::load();
    let mut state = CustomerState::default();
    let before = demo.at(&state, "home_banner", NOW);
    let before_propensity =
        propensity(&before, "upgrade_to_pro_banner").expect("scored for a new customer");

    for hours_ago in [5, 3, 1] {
        track(
            &mut state,
            "pricing_page_view",
            later(NOW, -hours_ago * HOUR_MS),
            NOW,
        );
    }
    let after = demo.at(&state, "home_banner", NOW);
    let [served] = after.served.as_slice() else {
        panic!("one slot: {:?}", served_ids(&after))
    };
    assert_eq!(served.action_id, "upgrade_to_pro_banner");
    assert!(
        served.propensity > before_propensity + 0.05,
        "propensity {before_propensity} → {}",
        served.propensity
    );
    let top = &served.rationale[0];
    assert_eq!(top.feature, PRICING_FEATURE);
    assert_eq!(top.value, 3.0);
    assert_eq!(
        top.text,
        "pricing page view 3× in the last 7 days, for upsell actions"
    );
    assert!(top.contribution > 0.0);
}

#[test]
fn sms_is_filtered_until_the_customer_opts_in() {
    let demo = Demo::load();
    let mut state = CustomerState::default();
    track(&mut state, "payment_failed", later(NOW, -2 * HOUR_MS), NOW);

    let decision = demo.at(&state, "push_moment", NOW);
    assert_filtered(
        &decision,
        "payment_failed_sms",
        FilterReason::NoConsent,
        "sms requires an opt-in",
    );
    assert!(
        decision.served.is_empty(),
        "no push is eligible: {:?}",
        served_ids(&decision)
    );

    state.set_consent("sms", Some(ConsentState::OptedIn), NOW);
    let decision = demo.at(&state, "push_moment", NOW);
    assert_eq!(served_ids(&decision), ["payment_failed_sms"]);

    // The billing banner tops the home banner for the same customer.
    assert_eq!(
        served_ids(&demo.at(&state, "home_banner", NOW)),
        ["payment_failed_banner"]
    );
}

#[test]
fn the_in_app_cap_stops_the_home_banner_at_five_a_week() {
    let demo = Demo::load();
    let mut state = CustomerState::default();
    let mut in_app_served = Vec::new();
    let mut now = NOW;
    for round in 0..10 {
        let decision = demo.at(&state, "home_banner", now);
        for served in &decision.served {
            if served.channel == "in_app" {
                in_app_served.push(served.action_id.clone());
            }
        }
        if round == 5 {
            // In-app has reached its cap: the one fresh in-app action not yet
            // served is stopped by the cap, not by a cooldown; content answers.
            assert_eq!(served_ids(&decision), ["guide_getting_started"]);
            let sixth = FRESH_IN_APP
                .iter()
                .find(|id| !in_app_served.iter().any(|s| s == *id))
                .expect("a sixth");
            assert_filtered(
                &decision,
                sixth,
                FilterReason::CapChannel,
                "in_app channel cap 5 per 7d reached (5 contacts)",
            );
        }
        if round == 8 {
            // Five in-app and three content serves: the total cap of 8 a week.
            assert!(decision.served.is_empty(), "{:?}", served_ids(&decision));
            assert_filtered(
                &decision,
                "guide_getting_started",
                FilterReason::CapTotal,
                "total cap 8 per 7d reached",
            );
        }
        nudge_models::pipeline::record(
            &mut state,
            &format!("d{round}"),
            &decision,
            &demo.catalog,
            now,
        );
        now = later(now, 5 * MINUTE_MS);
    }
    assert_eq!(in_app_served.len(), 5, "{in_app_served:?}");
    let distinct: BTreeSet<&String> = in_app_served.iter().collect();
    assert_eq!(
        distinct.len(),
        5,
        "1h cooldowns rotate the banner: {in_app_served:?}"
    );

    // A week later the window has rolled past every serve.
    let next_week = demo.at(&state, "home_banner", later(NOW, 7 * DAY_MS + HOUR_MS));
    assert_eq!(
        next_week
            .served
            .first()
            .map(|served| served.channel.as_str()),
        Some("in_app")
    );
}

#[test]
fn serving_starts_a_cooldown_and_dismissing_a_longer_one() {
    let demo = Demo::load();
    let budgets = BudgetCounters::default();
    let mut state = CustomerState::default();
    let first = demo.at(&state, "home_banner", NOW);
    assert_eq!(served_ids(&first), ["upgrade_to_pro_banner"]);
    nudge_models::pipeline::record(&mut state, "d1", &first, &demo.catalog, NOW);

    let soon = demo.at(&state, "home_banner", later(NOW, 5 * MINUTE_MS));
    assert_filtered(
        &soon,
        "upgrade_to_pro_banner",
        FilterReason::Cooldown,
        "cooldown 1h",
    );
    assert_eq!(served_ids(&soon), ["welcome_tour"]);

    let after_an_hour = demo.at(&state, "home_banner", later(NOW, HOUR_MS + MINUTE_MS));
    assert_eq!(served_ids(&after_an_hour), ["upgrade_to_pro_banner"]);

    state
        .report_outcome(
            "d1",
            "upgrade_to_pro_banner",
            OutcomeKind::Dismiss,
            None,
            later(NOW, MINUTE_MS),
            &budgets,
        )
        .expect("d1 served it");
    let dismissed = demo.at(&state, "home_banner", later(NOW, 2 * HOUR_MS));
    assert_filtered(
        &dismissed,
        "upgrade_to_pro_banner",
        FilterReason::Cooldown,
        "dismiss cooldown 7d",
    );
}

#[test]
fn quiet_hours_are_the_customers_local_time() {
    let demo = Demo::load();
    let late_evening = at("2026-11-23T23:00:00Z");
    let mut state = CustomerState::default();
    track(
        &mut state,
        "report_created",
        later(NOW, -DAY_MS),
        late_evening,
    );

    let decision = demo.at(&state, "push_moment", late_evening);
    assert_filtered(
        &decision,
        "report_ready_push",
        FilterReason::QuietHours,
        "push quiet hours 22:00–08:00 (it is 23:00 in UTC)",
    );
    assert!(decision.served.is_empty());
    // In-app has no quiet hours.
    assert!(
        !demo
            .at(&state, "home_banner", late_evening)
            .served
            .is_empty()
    );

    // 23:00 UTC is 18:00 in New York: push is fine there.
    identify(
        &mut state,
        &[("timezone", "America/New_York")],
        late_evening,
    );
    assert_eq!(
        served_ids(&demo.at(&state, "push_moment", late_evening)),
        ["report_ready_push"]
    );
}

#[test]
fn christmas_closes_email_sms_and_push_but_not_the_product() {
    let demo = Demo::load();
    let christmas_noon = at("2026-12-25T12:00:00Z");
    let mut state = CustomerState::default();
    track(
        &mut state,
        "payment_failed",
        later(christmas_noon, -HOUR_MS),
        christmas_noon,
    );
    state.set_consent("sms", Some(ConsentState::OptedIn), christmas_noon);

    let email = demo.at(&state, "daily_email", christmas_noon);
    assert!(email.served.is_empty());
    assert_filtered(
        &email,
        "payment_failed_email",
        FilterReason::Blackout,
        "2026-12-25 is a blackout date (Christmas Day)",
    );
    assert_filtered(
        &email,
        "tips_newsletter_email",
        FilterReason::Blackout,
        "Christmas Day",
    );
    let push = demo.at(&state, "push_moment", christmas_noon);
    assert_filtered(
        &push,
        "payment_failed_sms",
        FilterReason::Blackout,
        "Christmas Day",
    );
    assert_eq!(
        served_ids(&demo.at(&state, "home_banner", christmas_noon)),
        ["payment_failed_banner"]
    );

    // The day after, email is open again.
    let boxing_day = later(christmas_noon, DAY_MS);
    assert_eq!(
        served_ids(&demo.at(&state, "daily_email", boxing_day)),
        ["payment_failed_email"]
    );
}

#[test]
fn the_webinar_is_offered_only_until_it_starts() {
    let demo = Demo::load();
    let mut state = CustomerState::default();
    for day in 1..=3 {
        track(&mut state, "report_created", later(NOW, -day * DAY_MS), NOW);
    }
    let ask = |now| Ask::new("onboarding_sidebar", now);
    let decision = demo.decide(&state, &ask(NOW));
    assert!(
        served_ids(&decision).contains(&"webinar_advanced_dashboards"),
        "{:?}",
        served_ids(&decision)
    );

    let expired = demo.decide(&state, &ask(at("2026-12-11T09:00:00Z")));
    assert_filtered(
        &expired,
        "webinar_advanced_dashboards",
        FilterReason::OutsideValidity,
        "expired at 2026-12-10T17:00:00.000Z",
    );
    let early = demo.decide(&state, &ask(at("2026-11-01T09:00:00Z")));
    assert_filtered(
        &early,
        "webinar_advanced_dashboards",
        FilterReason::OutsideValidity,
        "valid from 2026-11-16",
    );
}

#[test]
fn the_coupon_budget_and_the_upsell_cap_are_enforced() {
    let demo = Demo::load();
    let mut trialist = CustomerState::default();
    identify(
        &mut trialist,
        &[("plan", "trial"), ("signup_at", "2026-11-11T12:00:00Z")],
        later(NOW, -12 * DAY_MS),
    );
    let decision = demo.at(&trialist, "daily_email", NOW);
    assert_eq!(served_ids(&decision), ["trial_discount_email"]);
    assert_eq!(demo.budgets.used("trial_discount_email"), 1);
    while demo.budgets.try_reserve("trial_discount_email", 1000) {}
    let exhausted = demo.at(&CustomerState::default(), "daily_email", NOW);
    assert_filtered(
        &exhausted,
        "trial_discount_email",
        FilterReason::BudgetExhausted,
        "global budget of 1000 is used up",
    );

    // Three upsell serves in a week, then the category cap (before the in_app cap).
    let mut state = CustomerState::default();
    for hours_ago in [3, 2, 1] {
        track(
            &mut state,
            "pricing_page_view",
            later(NOW, -hours_ago * HOUR_MS),
            NOW,
        );
    }
    let mut now = NOW;
    for round in 0..3 {
        let decision = demo.at(&state, "home_banner", now);
        assert_eq!(
            served_ids(&decision),
            ["upgrade_to_pro_banner"],
            "round {round}"
        );
        nudge_models::pipeline::record(
            &mut state,
            &format!("u{round}"),
            &decision,
            &demo.catalog,
            now,
        );
        now = later(now, HOUR_MS + MINUTE_MS);
    }
    let capped = demo.at(&state, "home_banner", now);
    assert_filtered(
        &capped,
        "upgrade_to_pro_banner",
        FilterReason::CapCategory,
        "upsell category cap 3 per 7d reached (3 contacts)",
    );
}

#[test]
fn consent_suppression_and_placement_filters_name_the_cause() {
    let demo = Demo::load();
    let mut state = CustomerState::default();
    state.set_consent("email", Some(ConsentState::OptedOut), NOW);
    let decision = demo.at(&state, "daily_email", NOW);
    assert_filtered(
        &decision,
        "tips_newsletter_email",
        FilterReason::OptedOut,
        "customer opted out of email",
    );

    let mut state = CustomerState::default();
    state.suppress(Some("email"), SuppressionReason::Bounce, "hard bounce", NOW);
    let decision = demo.at(&state, "daily_email", NOW);
    assert_filtered(
        &decision,
        "tips_newsletter_email",
        FilterReason::Suppressed,
        "email suppressed (bounce)",
    );

    let fresh = CustomerState::default();
    let ask = Ask::new("onboarding_sidebar", NOW).candidates(&[
        "upgrade_to_pro_banner",
        "tips_newsletter_email",
        "no_such_action",
    ]);
    let decision = demo.decide(&fresh, &ask);
    assert_filtered(
        &decision,
        "upgrade_to_pro_banner",
        FilterReason::CategoryNotAllowed,
        "does not allow category upsell",
    );
    assert_filtered(
        &decision,
        "tips_newsletter_email",
        FilterReason::ChannelNotAllowed,
        "does not allow channel email",
    );
    assert_filtered(
        &decision,
        "no_such_action",
        FilterReason::UnknownAction,
        "is not in catalog demo-2026-11",
    );
}

#[test]
fn without_a_model_the_fallback_ladder_answers() {
    let demo = Demo::load();
    let ask = Ask {
        scoring: Scoring::Fallback(FallbackReason::Deadline),
        ..Ask::new("home_banner", NOW)
    };
    let decision = demo.decide(&CustomerState::default(), &ask);
    assert_eq!(decision.fallback, Some(FallbackReason::Deadline));
    assert_eq!(served_ids(&decision), ["welcome_tour"]);
    assert_eq!(
        decision.served[0].rationale[0].text,
        "fallback (deadline): default for segment everyone"
    );

    let mut trialist = CustomerState::default();
    identify(&mut trialist, &[("plan", "trial")], NOW);
    let decision = demo.decide(&trialist, &ask);
    assert_eq!(served_ids(&decision), ["connect_first_integration"]);
    assert_eq!(
        decision.served[0].rationale[0].text,
        "fallback (deadline): default for segment trialists"
    );
}
