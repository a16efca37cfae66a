//! A generated catalog, model and customer of the size the quality bars name
//! (50 candidate actions × 64 features, 10 CEL rules), shared by the
//! criterion benches of the pipeline and the load bench (`nudge-bench load`),
//! so both measure the same work.
//!
//! Everything here is deterministic: the same call gives the same catalog,
//! model and customer.

use crate::catalog::Catalog;
use crate::customer::CustomerState;
use crate::ledger::Contact;
use crate::model::{MODEL_FORMAT, ModelArtifact};
use crate::pipeline::{DecisionRequest, Scoring};
use crate::profile::Event;
use crate::time::{DAY_MS, HOUR_MS, Timestamp};
use crate::value::AttrValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Candidate actions in the generated catalog.
pub const ACTIONS: usize = 50;
/// Features of the generated model.
pub const FEATURES: usize = 64;
/// The generated catalog's placement: 3 slots over both channels.
pub const PLACEMENT: &str = "feed";
/// Action categories, in the order actions cycle through them.
pub const CATEGORIES: [&str; 6] = [
    "onboarding",
    "activation",
    "upsell",
    "retention",
    "education",
    "winback",
];
/// The catalog's behavioural events (what `Track` sends).
pub const EVENTS: [&str; 12] = [
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
/// Rules of the generated catalog, one on every fifth action (10 of 50).
pub const RULES: [&str; 5] = [
    "profile.count_7d.login >= 1",
    "has(profile.plan) && profile.plan != \"enterprise\"",
    "profile.days_since_signup < 400.0 && profile.count_30d.report_created > 0",
    "profile.days_since_payment_failed > 1.0",
    "profile.engagement.in_app.click_rate < 0.9 || profile.count_7d.search > 2",
];

/// The instant the benches decide at: Monday 2026-11-23, 12:00 UTC.
pub fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").expect("a valid instant")
}

/// The request the benches decide with: a dry run on [`PLACEMENT`] over
/// every action, scored by the model, with a fixed exploration seed.
pub fn request(context: &BTreeMap<String, AttrValue>, now: Timestamp) -> DecisionRequest<'_> {
    DecisionRequest {
        placement: PLACEMENT,
        context,
        candidates: &[],
        limit: 0,
        dry_run: true,
        scoring: Scoring::Model,
        seed: 7,
        now,
    }
}

/// The request context the benches decide with: a mobile device at 13:00 on
/// the home page.
pub fn context() -> BTreeMap<String, AttrValue> {
    BTreeMap::from([
        ("device".to_owned(), AttrValue::from("mobile")),
        ("hour".to_owned(), AttrValue::Num(13.0)),
        ("page".to_owned(), AttrValue::from("home")),
    ])
}

/// The catalog (TOML): [`ACTIONS`] in_app/content actions with cooldowns,
/// the usual caps (per channel, total, upsell), a category lever, and the
/// 3-slot [`PLACEMENT`] with 5 % exploration. With `with_rules`, every fifth
/// action carries one of [`RULES`].
pub fn catalog_toml(with_rules: bool) -> String {
    let mut text = String::new();
    let events: Vec<String> = EVENTS.iter().map(|event| format!("\"{event}\"")).collect();
    let _ = writeln!(
        text,
        "[catalog]\nname = \"synthetic\"\nversion = \"synthetic-1\"\nevents = [{}]\n",
        events.join(", ")
    );
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
        let _ = write!(
            text,
            "[[actions]]\nid = \"action_{index:02}\"\nchannel = \"{channel}\"\ncategory = \"{category}\"\nvalue = {}\ncooldown = \"1d\"\ndismiss_cooldown = \"7d\"\n",
            1.0 + (index % 7) as f64 * 3.5
        );
        if with_rules && index % 5 == 0 {
            let _ = writeln!(text, "rule = '{}'", RULES[(index / 5) % RULES.len()]);
        }
        let _ = writeln!(text, "payload = {{ title = \"Action {index}\" }}\n");
    }
    let _ = write!(
        text,
        "[placements.{PLACEMENT}]\nchannels = [\"in_app\", \"content\"]\nslots = 3\n\
         exploration = {{ method = \"epsilon\", epsilon = 0.05 }}\n\
         context_weights = {{ upsell = 1.3 }}\n",
    );
    text
}

/// The compiled catalog of [`catalog_toml`].
pub fn catalog(with_rules: bool) -> Catalog {
    Catalog::from_toml(&catalog_toml(with_rules)).expect("the synthetic catalog is valid")
}

/// The model artifact: [`FEATURES`] features — customer terms (counts,
/// recency, tenure, attributes, engagement, context), action terms
/// (channel, value, category, identity) and crosses of the two — with
/// fixed weights.
pub fn model_artifact() -> ModelArtifact {
    let mut features: Vec<String> = Vec::new();
    for event in &EVENTS[..8] {
        features.push(format!("count({event},7d)"));
        features.push(format!("log_count({event},30d)"));
    }
    features.extend(
        [
            "days_since(login)",
            "days_since(feature_activated)",
            "tenure_days",
            "is(plan,trial)",
            "is(plan,pro)",
            "attr(seats)",
            "click_rate(in_app)",
            "ctx_is(device,mobile)",
            "ctx(hour)",
            "channel(in_app)",
            "channel(content)",
            "action_value",
        ]
        .map(str::to_owned),
    );
    features.extend(CATEGORIES.map(|category| format!("category({category})")));
    features.extend((0..8).map(|index| format!("action(action_{index:02})")));
    features.extend(
        [
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
        ]
        .map(str::to_owned),
    );
    let mut extra = 0;
    while features.len() < FEATURES {
        features.push(format!("category(upsell) * count({},1d)", EVENTS[extra]));
        extra += 1;
    }
    debug_assert_eq!(features.len(), FEATURES);
    let weights = (0..FEATURES)
        .map(|index| ((index * 37 % 19) as f64 - 9.0) / 40.0)
        .collect();
    ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "synthetic-1".to_owned(),
        description: "generated: 64 features over the synthetic catalog, fixed weights".to_owned(),
        trained_at: None,
        features,
        weights,
        intercept: -2.0,
        evidence: Default::default(),
    }
}

/// The identify event of a synthetic customer: plan, timezone, signup date,
/// seats and company, `days_ago` before `now`.
pub fn identify(event_id: &str, now: Timestamp, days_ago: i64) -> Event {
    Event {
        event_id: event_id.to_owned(),
        name: "identify".to_owned(),
        timestamp: Timestamp(now.0 - days_ago * DAY_MS),
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
    }
}

/// A customer active for a month before `now`: ~300 events, attributes,
/// engagement and a week of contacts (caps partly used, one action on its
/// cooldown, one dismissed).
pub fn customer(catalog: &Catalog, now: Timestamp) -> CustomerState {
    let mut state = CustomerState::default();
    state.track(&identify("identify-1", now, 20), now);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    #[test]
    fn the_catalog_and_model_are_valid_and_of_the_named_size() {
        let catalog = catalog(true);
        assert_eq!(catalog.actions.len(), ACTIONS);
        let rules = catalog.actions.iter().filter(|a| a.rule.is_some()).count();
        assert_eq!(rules, 10);
        assert!(catalog.placements.contains_key(PLACEMENT));
        let model = Model::from_artifact(model_artifact()).expect("valid model");
        assert_eq!(model.artifact().features.len(), FEATURES);
    }

    #[test]
    fn the_customer_has_history() {
        let catalog = catalog(false);
        let now = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").expect("instant");
        let state = customer(&catalog, now);
        assert_eq!(state.ledger.len(), 3);
    }
}
