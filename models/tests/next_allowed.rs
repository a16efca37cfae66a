//! `pipeline::next_allowed`: the moment caps, cooldowns, quiet hours and
//! blackouts next let an action go, in the customer's timezone. Checked
//! against the pipeline itself: at that moment `decide` does not refuse the
//! action for any of those reasons, and a minute before it does.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::ledger::Contact;
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact};
use nudge_models::pipeline::{
    DecisionRequest, Environment, FilterReason, Scoring, decide, next_allowed,
};
use nudge_models::time::{HOUR_MS, Timestamp};
use proptest::prelude::*;
use std::collections::BTreeMap;

const CATALOG: &str = r#"
[catalog]
name = "allowed"
timezone = "Europe/Paris"

[channels.email]
quiet_hours = { start = "21:00", end = "08:00" }

[channels.in_app]

[[actions]]
id = "promo"
channel = "email"
category = "promo"
cooldown = "3d"

[[actions]]
id = "news"
channel = "email"
category = "news"

[[actions]]
id = "tip"
channel = "in_app"
category = "tips"

[placements.inbox]
channels = ["email", "in_app"]
slots = 3

[[caps]]
scope = "channel"
channel = "email"
limit = 2
window = "7d"

[[blackouts]]
name = "Christmas"
dates = ["2026-12-25"]
channels = ["email"]
"#;

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap_or_else(|| panic!("'{text}' is RFC 3339"))
}

fn catalog() -> Catalog {
    Catalog::from_toml(CATALOG).expect("valid")
}

/// A customer who was sent `action` at each of `times`.
fn sent(catalog: &Catalog, contacts: &[(&str, Timestamp)]) -> CustomerState {
    let mut state = CustomerState::default();
    for (position, (action_id, when)) in contacts.iter().enumerate() {
        let action = catalog.action(action_id).expect("an action of the catalog");
        state.ledger.push(Contact::new(
            &format!("d{position}"),
            action_id,
            &action.channel,
            &action.category,
            *when,
        ));
    }
    state
}

fn allowed(catalog: &Catalog, state: &CustomerState, action: &str, now: Timestamp) -> Timestamp {
    let action = catalog.action(action).expect("an action of the catalog");
    next_allowed(catalog, state, action, now).expect("a moment")
}

/// Why the pipeline refuses `action` at `now`, if it does.
fn refusal(
    catalog: &Catalog,
    state: &CustomerState,
    action: &str,
    now: Timestamp,
) -> Option<FilterReason> {
    let model = Model::from_artifact(ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "m".to_owned(),
        description: String::new(),
        trained_at: None,
        features: vec!["action_value".to_owned()],
        weights: vec![0.0],
        intercept: 0.0,
        evidence: Default::default(),
    })
    .expect("valid model");
    let budgets = BudgetCounters::default();
    let env = Environment {
        catalog,
        model: Some(&model),
        budgets: &budgets,
    };
    let context = BTreeMap::new();
    let candidates = vec![action.to_owned()];
    let decision = decide(
        &env,
        state,
        &DecisionRequest {
            placement: "inbox",
            context: &context,
            candidates: &candidates,
            limit: 1,
            dry_run: true,
            scoring: Scoring::Model,
            seed: 1,
            now,
        },
    )
    .expect("decides");
    decision
        .filtered
        .iter()
        .find(|filtered| filtered.action_id.as_ref() == action)
        .map(|filtered| filtered.reason)
}

fn time_bound(reason: Option<FilterReason>) -> bool {
    reason.is_some_and(FilterReason::lifts_with_time)
}

#[test]
fn an_action_nothing_holds_back_is_allowed_now() {
    let catalog = catalog();
    let now = at("2026-12-02T23:30:00Z");
    // In-app has no quiet hours and no cap.
    assert_eq!(
        allowed(&catalog, &CustomerState::default(), "tip", now),
        now
    );
}

#[test]
fn a_full_cap_frees_when_its_oldest_contact_leaves_the_window() {
    let catalog = catalog();
    // Monday and Tuesday at 10:00 in Paris (09:00Z); it is Thursday noon.
    let state = sent(
        &catalog,
        &[
            ("news", at("2026-11-30T09:00:00Z")),
            ("news", at("2026-12-01T09:00:00Z")),
        ],
    );
    let now = at("2026-12-03T11:00:00Z");
    assert_eq!(
        allowed(&catalog, &state, "news", now),
        at("2026-12-07T09:00:00Z")
    );
}

#[test]
fn quiet_hours_end_at_their_local_end() {
    let catalog = catalog();
    // 22:30 in Paris: email waits until 08:00 there (07:00Z).
    let now = at("2026-12-02T21:30:00Z");
    assert_eq!(
        allowed(&catalog, &CustomerState::default(), "news", now),
        at("2026-12-03T07:00:00Z")
    );
}

#[test]
fn a_cooldown_ends_its_length_after_the_last_send() {
    let catalog = catalog();
    let state = sent(&catalog, &[("promo", at("2026-12-01T10:00:00Z"))]);
    assert_eq!(
        allowed(&catalog, &state, "promo", at("2026-12-02T10:00:00Z")),
        at("2026-12-04T10:00:00Z")
    );
}

#[test]
fn each_constraint_is_checked_again_at_the_moment_another_allows() {
    let catalog = catalog();
    // The cap frees at 23:00 in Paris, inside quiet hours: 08:00 next day.
    let state = sent(
        &catalog,
        &[
            ("news", at("2026-11-30T22:00:00Z")),
            ("news", at("2026-12-01T09:00:00Z")),
        ],
    );
    assert_eq!(
        allowed(&catalog, &state, "news", at("2026-12-03T12:00:00Z")),
        at("2026-12-08T07:00:00Z")
    );
    // Christmas Eve, 22:00 in Paris: quiet hours end on Christmas, a
    // blackout day; the 26th opens at midnight, inside quiet hours: 08:00.
    assert_eq!(
        allowed(
            &catalog,
            &CustomerState::default(),
            "news",
            at("2026-12-24T21:00:00Z")
        ),
        at("2026-12-26T07:00:00Z")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// At the moment given, the pipeline refuses the action for no
    /// time-bound reason; a minute before it (when that is not before now),
    /// it does.
    #[test]
    fn the_moment_given_is_the_first_the_pipeline_allows(
        contacts in prop::collection::vec((0_usize..2, 0_i64..240), 0..5),
        now_hours in 240_i64..480,
        which in 0_usize..2,
    ) {
        let catalog = catalog();
        let start = at("2026-12-10T00:00:00Z");
        let actions = ["promo", "news"];
        let contacts: Vec<(&str, Timestamp)> = contacts
            .iter()
            .map(|(action, hours)| (actions[*action], Timestamp(start.millis() + hours * HOUR_MS)))
            .collect();
        let state = sent(&catalog, &contacts);
        let now = Timestamp(start.millis() + now_hours * HOUR_MS);
        let action = actions[which];
        let moment = allowed(&catalog, &state, action, now);
        prop_assert!(moment >= now);
        prop_assert!(!time_bound(refusal(&catalog, &state, action, moment)), "refused at {}", moment);
        let before = Timestamp(moment.millis() - 60_000);
        if before >= now {
            prop_assert!(time_bound(refusal(&catalog, &state, action, before)), "allowed at {}", before);
        }
    }
}
