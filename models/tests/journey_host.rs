//! Journeys on the host the service runs them on ([`PipelineHost`]): every
//! send is a decision through the full pipeline on the customer's own state.
//! A fixed action decides in the journey's placement; caps and quiet hours
//! defer a send to the moment `next_allowed` gives; consent blocks it and
//! the run takes its `on_blocked` path; a send that does not go changes
//! nothing; two journeys due at once compete for the last cap slot and the
//! higher priority takes it.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::{ConsentState, CustomerState};
use nudge_models::journey::{
    CustomerJourneys, Ending, Happened, Outcome, PipelineHost, RunState, Via,
};
use nudge_models::pipeline::Environment;
use nudge_models::profile::Event;
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use std::collections::BTreeMap;

/// 2026-12-01T00:00:00Z.
const START: i64 = 1_796_083_200_000;

const CATALOG: &str = r#"
[catalog]
name = "journey host"
events = ["signed_up", "trial_started", "churn_risk"]

[channels.email]
quiet_hours = { start = "21:00", end = "08:00" }

[channels.sms]
consent = "opt_in"

[channels.in_app]

[[caps]]
scope = "channel"
channel = "email"
limit = 1
window = "1d"

[[actions]]
id = "welcome_email"
channel = "email"
category = "onboarding"

[[actions]]
id = "rescue_email"
channel = "email"
category = "retention"

[[actions]]
id = "welcome_sms"
channel = "sms"
category = "onboarding"

[[actions]]
id = "banner_a"
channel = "in_app"
category = "onboarding"
value = 1.0

[[actions]]
id = "banner_b"
channel = "in_app"
category = "onboarding"
value = 3.0

[placements.home]
channels = ["in_app"]
fallback = ["banner_b", "banner_a"]

[[journeys]]
id = "welcome"
priority = 1
trigger = { event = "signed_up" }
max_defer = "3d"

[[journeys.steps]]
id = "sms"
send = { action = "welcome_sms" }
on_blocked = "email"

[[journeys.steps]]
id = "banner"
send = { placement = "home" }
next = "end"

[[journeys.steps]]
id = "email"
send = { action = "welcome_email" }

[[journeys]]
id = "rescue"
priority = 9
trigger = { event = "churn_risk" }

[[journeys.steps]]
id = "settle"
wait = "1h"

[[journeys.steps]]
id = "rescue"
send = { action = "rescue_email" }
"#;

fn at(hours: i64) -> Timestamp {
    Timestamp(START + hours * HOUR_MS)
}

struct World {
    catalog: Catalog,
    budgets: BudgetCounters,
    state: CustomerState,
    decisions: u32,
}

impl World {
    fn new() -> Self {
        Self {
            catalog: Catalog::from_toml(CATALOG).expect("the test catalog is valid"),
            budgets: BudgetCounters::default(),
            state: CustomerState::default(),
            decisions: 0,
        }
    }

    /// Runs `step` on the customer's journeys with the pipeline as host;
    /// returns the outcome and the actions sent.
    fn with_host(
        &mut self,
        now: Timestamp,
        step: impl FnOnce(&mut CustomerJourneys, &Catalog, &mut PipelineHost<'_>) -> Outcome,
    ) -> (Outcome, Vec<String>) {
        let mut journeys = std::mem::take(&mut self.state.journeys);
        let mut decisions = self.decisions;
        let mut new_decision_id = || {
            decisions += 1;
            format!("d{decisions}")
        };
        let mut host = PipelineHost {
            env: Environment {
                catalog: &self.catalog,
                model: None,
                budgets: &self.budgets,
            },
            state: &mut self.state,
            customer_id: "alice",
            variant: "control",
            shadow: None,
            now,
            new_decision_id: &mut new_decision_id,
            sent: Vec::new(),
        };
        let outcome = step(&mut journeys, &self.catalog, &mut host);
        let sent = host
            .sent
            .iter()
            .map(|sent| {
                assert!(sent.log.is_some(), "a send is logged");
                sent.decision.served[0].action_id.clone()
            })
            .collect();
        self.state.journeys = journeys;
        self.decisions = decisions;
        (outcome, sent)
    }

    fn event(&mut self, name: &str, now: Timestamp) -> Vec<String> {
        let event = Event {
            event_id: format!("{name}-{}", now.millis()),
            name: name.to_owned(),
            timestamp: now,
            properties: BTreeMap::new(),
        };
        self.state.track(&event, now);
        self.with_host(now, |journeys, catalog, host| {
            journeys.on_event(
                &catalog.journeys,
                &catalog.journeys,
                &catalog.journey_policy,
                &event,
                now,
                host,
            )
        })
        .1
    }

    fn tick(&mut self, now: Timestamp) -> Vec<String> {
        self.with_host(now, |journeys, catalog, host| {
            journeys.on_time(&catalog.journeys, now, host)
        })
        .1
    }

    fn run(&self, journey: &str) -> &nudge_models::journey::Run {
        self.state
            .journeys
            .runs
            .iter()
            .rev()
            .find(|run| run.journey == journey)
            .expect("a run")
    }

    fn contacts(&self) -> Vec<(String, String)> {
        self.state
            .ledger
            .contacts()
            .map(|contact| (contact.action_id.clone(), contact.channel.clone()))
            .collect()
    }
}

#[test]
fn a_fixed_action_decides_in_the_journey_placement_and_takes_its_cap_slot() {
    let catalog = Catalog::from_toml(CATALOG).expect("valid");
    let placement = catalog
        .placement("journey/welcome")
        .expect("the journey's placement");
    assert_eq!(placement.slots, 1);
    assert_eq!(placement.fallback, ["welcome_sms", "welcome_email"]);
    assert!(
        catalog.placement("journey/rescue").is_some(),
        "every journey with a fixed action has one"
    );

    let mut world = World::new();
    // No sms opt-in: the sms is blocked, the run goes to email at once.
    let sent = world.event("signed_up", at(10));
    assert_eq!(sent, ["welcome_email"]);
    assert_eq!(
        world.contacts(),
        [("welcome_email".to_owned(), "email".to_owned())]
    );
    let run = world.run("welcome");
    assert!(
        run.history.iter().any(|entry| matches!(
            &entry.what,
            Happened::Blocked { step, reason, cause } if step == "sms" && reason.contains("welcome_sms") && cause == "no_consent"
        )),
        "{:?}",
        run.history
    );
    assert!(run.history.iter().any(|entry| matches!(
        &entry.what,
        Happened::Moved { from, via: Via::Blocked, .. } if from == "sms"
    )));
    assert!(matches!(
        run.state,
        RunState::Ended {
            ending: Ending::Completed,
            ..
        }
    ));
}

#[test]
fn with_consent_the_fixed_action_goes_and_a_placement_send_takes_the_placements_best() {
    let mut world = World::new();
    world
        .state
        .set_consent("sms", Some(ConsentState::OptedIn), at(9));
    let sent = world.event("signed_up", at(10));
    // Without a model the placement answers from its fallback ladder: the
    // highest value first.
    assert_eq!(sent[0], "welcome_sms");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1].starts_with("banner_"), "{sent:?}");
    assert_eq!(world.contacts().len(), 2);
}

#[test]
fn quiet_hours_defer_the_send_to_their_end_and_the_state_is_untouched_meanwhile() {
    let mut world = World::new();
    // 22:00 UTC: the email is in quiet hours until 08:00.
    world
        .state
        .set_consent("sms", Some(ConsentState::OptedOut), at(21));
    let before = world.state.ledger.clone();
    let sent = world.event("signed_up", at(22));
    assert!(sent.is_empty());
    assert_eq!(
        world.state.ledger, before,
        "a send that did not go took no slot"
    );
    let run = world.run("welcome");
    assert!(
        matches!(run.state, RunState::Deferred { until, .. } if until == at(32)),
        "{:?}",
        run.state
    );
    assert_eq!(
        world.state.journeys.next_due(&world.catalog.journeys),
        Some(at(32))
    );
    assert!(world.tick(at(31)).is_empty());
    assert_eq!(world.tick(at(32)), ["welcome_email"]);
}

#[test]
fn a_full_cap_defers_until_a_slot_frees() {
    let mut world = World::new();
    world
        .state
        .set_consent("sms", Some(ConsentState::OptedOut), at(9));
    assert_eq!(world.event("signed_up", at(10)), ["welcome_email"]);
    // The email cap (1 a day) is taken: the rescue email waits for it.
    assert!(world.event("churn_risk", at(11)).is_empty());
    assert!(world.tick(at(12)).is_empty());
    let run = world.run("rescue");
    assert!(
        matches!(run.state, RunState::Deferred { until, .. } if until == Timestamp(at(10).millis() + DAY_MS)),
        "{:?}",
        run.state
    );
    assert_eq!(world.tick(at(34)), ["rescue_email"]);
}

#[test]
fn two_journeys_due_at_once_compete_for_the_last_slot_and_the_higher_priority_wins() {
    let mut world = World::new();
    world
        .state
        .set_consent("sms", Some(ConsentState::OptedOut), at(0));
    // Both due at 10:00: the rescue (priority 9) after its hour's wait,
    // the welcome (priority 1) deferred by quiet hours until 08:00, then
    // held until 10:00 by the clock of this test.
    assert!(world.event("signed_up", at(-3)).is_empty(), "21:00: quiet");
    assert!(world.event("churn_risk", at(9)).is_empty());
    let sent = world.tick(at(10));
    assert_eq!(sent, ["rescue_email"], "the higher priority took the slot");
    let welcome = world.run("welcome");
    assert!(
        matches!(welcome.state, RunState::Deferred { until, .. } if until == at(34)),
        "the lower priority waits for the next slot: {:?}",
        welcome.state
    );
    assert_eq!(world.tick(at(34)), ["welcome_email"]);
}
