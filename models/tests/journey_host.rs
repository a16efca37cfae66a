//! Journeys on the host the service runs them on ([`PipelineHost`]): every
//! send is a decision through the full pipeline on the customer's own state.
//! A fixed action decides in the journey's placement; caps and quiet hours
//! defer a send to the moment `next_allowed` gives; consent blocks it and
//! the run takes its `on_blocked` path; a send that does not go changes
//! nothing; two journeys due at once compete for the last cap slot and the
//! higher priority takes it.
//!
//! The embedded demo's journeys, with the demo model: the trial-conversion
//! journey walks its 13 days with branches taken by the customer's events
//! (the email cap defers the last send to the moment a slot frees); a
//! subscription on day 5 ends the run at once, its pending wait included,
//! and nothing fires after; churn prevention routes by risk tier.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::{ConsentState, CustomerState};
use nudge_models::demo::{CATALOG_TOML, MODEL_JSON};
use nudge_models::journey::{
    Acknowledged, CustomerJourneys, DispatchPolicy, Ending, Happened, Outcome, PipelineHost,
    RunState, Versions, Via,
};
use nudge_models::model::Model;
use nudge_models::pipeline::Environment;
use nudge_models::profile::{Event, IDENTIFY_EVENT};
use nudge_models::scores::{RefreshPath, ScoreModels};
use nudge_models::send_time::PopulationClock;
use nudge_models::time::{DAY_MS, HOUR_MS, Span, Timestamp};
use nudge_models::value::AttrValue;

/// 2026-12-01T00:00:00Z.
const START: i64 = 1_796_083_200_000;

const CATALOG: &str = r#"
[catalog]
name = "journey host"
events = ["signed_up", "trial_started", "churn_risk", "went_quiet"]

[channels.email]
quiet_hours = { start = "21:00", end = "08:00" }

[channels.sms]
consent = "opt_in"

[channels.in_app]

[channels.push]

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

[[actions]]
id = "login_push"
channel = "push"
category = "reminder"

[[actions]]
id = "login_sms"
channel = "sms"
category = "reminder"

[[actions]]
id = "login_email"
channel = "email"
category = "reminder"

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
id = "come_back"
trigger = { event = "went_quiet" }

[[journeys.steps]]
id = "remind"
send = { action = "login_push", failover = ["login_sms", "login_email"] }

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

/// An event of the customer's past: name, time, properties.
type Past<'a> = (&'a str, Timestamp, &'a [(&'a str, AttrValue)]);

/// One customer on a catalog (and, for the demo, its model), with the
/// pipeline as the host of its journeys.
struct World {
    catalog: Catalog,
    model: Option<Model>,
    budgets: BudgetCounters,
    state: CustomerState,
    events: u32,
    decisions: u32,
    /// (action, when) of every send that went out.
    sent: Vec<(String, Timestamp)>,
}

impl World {
    fn new() -> Self {
        Self::on(
            Catalog::from_toml(CATALOG).expect("the test catalog is valid"),
            None,
        )
    }

    /// The embedded demo's catalog and model.
    fn demo() -> Self {
        Self::on(
            Catalog::from_toml(CATALOG_TOML).expect("the demo catalog"),
            Some(Model::from_json(MODEL_JSON.as_bytes()).expect("the demo model")),
        )
    }

    fn on(catalog: Catalog, model: Option<Model>) -> Self {
        Self {
            catalog,
            model,
            budgets: BudgetCounters::default(),
            state: CustomerState::default(),
            events: 0,
            decisions: 0,
            sent: Vec::new(),
        }
    }

    /// Runs `step` on the customer's journeys with the pipeline as host;
    /// returns the outcome and the actions sent.
    fn with_host(
        &mut self,
        now: Timestamp,
        step: impl FnOnce(&mut CustomerJourneys, &Catalog, &mut PipelineHost<'_>) -> Outcome,
    ) -> (Outcome, Vec<String>) {
        // Journey rules read fresh profile scores, as the actor makes them.
        let no_models = ScoreModels::default();
        if self
            .catalog
            .scores
            .refresh_due(
                &no_models,
                &self.state.profile.scores,
                now,
                RefreshPath::Decision,
            )
            .is_some()
        {
            self.catalog.scores.refresh(
                &no_models,
                &mut self.state.profile,
                &self.catalog.known_events,
                now,
            );
        }
        let mut journeys = std::mem::take(&mut self.state.journeys);
        let population = PopulationClock::default();
        let mut decisions = self.decisions;
        let mut new_decision_id = || {
            decisions += 1;
            format!("d{decisions}")
        };
        let mut host = PipelineHost {
            env: Environment {
                catalog: &self.catalog,
                model: self.model.as_ref(),
                budgets: &self.budgets,
            },
            state: &mut self.state,
            customer_id: "alice",
            variant: "control",
            shadow: None,
            now,
            new_decision_id: &mut new_decision_id,
            population: &population,
            sent: Vec::new(),
        };
        let outcome = step(&mut journeys, &self.catalog, &mut host);
        let sent: Vec<String> = host
            .sent
            .iter()
            .map(|sent| {
                assert!(sent.log.is_some(), "a send is logged");
                sent.decision.served[0].action_id.clone()
            })
            .collect();
        // What went out waits in the outbox for a delivery service, as
        // the actor does it.
        for made in &host.sent {
            journeys.dispatch(made, now);
        }
        self.state.journeys = journeys;
        self.decisions = decisions;
        self.sent
            .extend(sent.iter().map(|action| (action.clone(), now)));
        (outcome, sent)
    }

    fn event(&mut self, name: &str, now: Timestamp) -> Vec<String> {
        self.event_with(name, now, &[])
    }

    fn event_with(
        &mut self,
        name: &str,
        now: Timestamp,
        properties: &[(&str, AttrValue)],
    ) -> Vec<String> {
        self.events += 1;
        let event = Event {
            event_id: format!("e{}", self.events),
            name: name.to_owned(),
            timestamp: now,
            properties: properties
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
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

    /// Time is `now`, as a timer's wake-up: due runs move, and the due
    /// dispatches are handed out (nobody acknowledges them here).
    fn tick(&mut self, now: Timestamp) -> Vec<String> {
        let sent = self
            .with_host(now, |journeys, catalog, host| {
                journeys.on_time(&catalog.journeys, now, host)
            })
            .1;
        self.state.journeys.deliverable(
            now,
            &DispatchPolicy::default(),
            &self.catalog.journeys,
            |_| true,
        );
        sent
    }

    /// Fires every run due up to `until`, each at its moment.
    fn run_until(&mut self, until: Timestamp) {
        for _ in 0..1_000 {
            let Some(due) = self.state.journeys.next_due(&self.catalog.journeys) else {
                return;
            };
            if due > until {
                return;
            }
            self.tick(due);
        }
        panic!("timers keep firing");
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

    /// The steps the run entered, in order.
    fn steps_entered(&self, journey: &str) -> Vec<&str> {
        self.run(journey).steps_entered().collect()
    }

    /// Applies `events` to the profile only: no journey sees them.
    fn history(&mut self, events: &[Past<'_>]) {
        for (name, when, properties) in events {
            self.events += 1;
            self.state.track(
                &Event {
                    event_id: format!("e{}", self.events),
                    name: (*name).to_owned(),
                    timestamp: *when,
                    properties: properties
                        .iter()
                        .map(|(key, value)| ((*key).to_owned(), value.clone()))
                        .collect(),
                },
                *when,
            );
        }
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

/// 2026-11-23T10:00:00Z, a Monday morning (the demo's timezone is UTC).
const DEMO_START: i64 = 1_795_428_000_000;

/// `days` after [`DEMO_START`].
fn day(days: f64) -> Timestamp {
    #[allow(clippy::cast_possible_truncation)]
    Timestamp(DEMO_START + (days * DAY_MS as f64) as i64)
}

/// A trialist: on the trial plan, starting the trial at [`DEMO_START`].
fn start_trial(world: &mut World) {
    world.history(&[(
        IDENTIFY_EVENT,
        day(0.0),
        &[("plan", AttrValue::Str("trial".to_owned()))],
    )]);
    world.event("trial_started", day(0.0));
}

#[test]
fn the_trial_journey_walks_its_13_days_with_branches_taken_by_events() {
    let mut world = World::demo();
    start_trial(&mut world);
    // Day 0: the welcome in the onboarding sidebar.
    assert_eq!(world.sent.len(), 1);
    let welcome = world.sent[0].0.clone();
    let welcome_action = world.catalog.action(&welcome).expect("a demo action");
    assert_eq!(welcome_action.channel, "in_app", "{welcome}");

    // Logged in that evening: no login reminder on day 1.
    world.event("login", day(0.5));
    // No feature activated by day 3: the check-in email. Nobody invited by
    // day 7: the in-app nudge. One login in 7 days: low engagement, tips.
    // Day 10 the urgency email; day 13 waits for the next morning, when
    // the email cap (2 a week) is still full from days 7 and 10: the final
    // offer waits for the slot day 7's email frees.
    world.run_until(day(20.0));
    assert_eq!(
        world.steps_entered("trial_conversion"),
        [
            "welcome",
            "day1",
            "logged_in",
            "day3",
            "activated",
            "activation_email",
            "day5",
            "teammates",
            "invite_nudge",
            "engagement",
            "low_engagement",
            "day10",
            "urgency",
            "day13",
            "morning",
            "final_offer",
        ]
    );
    let sent = world
        .sent
        .iter()
        .map(|(action, _)| action.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        &sent[1..5],
        [
            "trial_checkin_email",
            "invite_teammates",
            "tips_newsletter_email",
            "trial_discount_email"
        ],
        "{sent:?}"
    );
    assert_eq!(world.sent[1].1, day(3.0));
    assert_eq!(
        world.sent[2].1,
        day(7.0),
        "the invite wait timed out on day 7"
    );
    assert_eq!(world.sent[4].1, day(10.0));
    let run = world.run("trial_conversion");
    assert!(
        run.history.iter().any(|entry| matches!(
            &entry.what,
            Happened::Deferred { step, cause, .. } if step == "final_offer" && cause == "cap_channel"
        )),
        "{:?}",
        run.history
    );
    // The final offer went on day 14 at 10:00, when day 7's email left the
    // week's window.
    assert_eq!(sent.len(), 6, "{sent:?}");
    let (final_action, final_at) = &world.sent[5];
    assert_eq!(
        world
            .catalog
            .action(final_action)
            .expect("an action")
            .channel,
        "email"
    );
    assert_eq!(*final_at, day(14.0));
    assert!(matches!(
        run.state,
        RunState::Ended {
            ending: Ending::Completed,
            ..
        }
    ));
}

#[test]
fn a_subscription_on_day_5_ends_the_trial_journey_at_once_and_nothing_fires_after() {
    let mut world = World::demo();
    start_trial(&mut world);
    world.run_until(day(5.0));
    let before = world.sent.len();
    assert!(matches!(
        world.run("trial_conversion").state,
        RunState::Waiting { .. } | RunState::WaitingFor { .. }
    ));
    world.event(
        "subscription_started",
        day(5.0).plus(nudge_models::time::Span(HOUR_MS)),
    );
    assert_eq!(
        world.run("trial_conversion").state,
        RunState::Ended {
            at: Timestamp(day(5.0).millis() + HOUR_MS),
            ending: Ending::Converted {
                event: "subscription_started".to_owned()
            }
        }
    );
    assert_eq!(world.state.journeys.next_due(&world.catalog.journeys), None);
    world.run_until(day(30.0));
    assert_eq!(world.sent.len(), before, "{:?}", world.sent);
}

#[test]
fn churn_prevention_routes_a_paying_customer_by_risk_tier() {
    let tiers = [
        // (days since the last login, tickets in 30 days, the churn tier,
        // the tier's step)
        (20.0, 1, "high", "csm_call"),
        (1.0, 2, "medium", "usage_tips"),
        (1.0, 1, "none", "feature_discovery"),
    ];
    for (away, tickets, tier, expected) in tiers {
        let mut world = World::demo();
        let now = day(away);
        let enterprise = [("plan", AttrValue::Str("enterprise".to_owned()))];
        let mut history: Vec<Past<'_>> = vec![
            (IDENTIFY_EVENT, day(0.0), &enterprise),
            ("login", day(0.0), &[]),
        ];
        history.extend((1..tickets).map(|_| ("support_ticket_opened", now, &[][..])));
        world.history(&history);
        // The ticket that triggers the journey.
        world.event("support_ticket_opened", now);
        // The branch reads the profile's churn tier (by the demo's rules:
        // no churn model is loaded).
        assert_eq!(world.state.profile.scores.tier("churn"), Some(tier));
        let steps = world.steps_entered("churn_prevention");
        assert_eq!(
            steps[..2],
            ["risk_tier", expected],
            "away {away} d, {tickets} ticket(s)"
        );
        assert!(
            world
                .catalog
                .journeys
                .version("churn_prevention", 1)
                .is_some(),
            "the demo's journeys are version 1"
        );
    }
}

/// A delivery failed on `decision_id`, with the pipeline as the host of
/// the failover; returns the actions the failover sent.
fn fail(world: &mut World, decision_id: &str, now: Timestamp) -> Vec<String> {
    world
        .with_host(now, |journeys, catalog, host| {
            journeys.failed(decision_id, None, &catalog.journeys, now, host)
        })
        .1
}

fn history_codes(world: &World, journey: &str) -> Vec<&'static str> {
    world
        .run(journey)
        .history
        .iter()
        .map(|entry| entry.what.code())
        .collect()
}

#[test]
fn an_unacknowledged_dispatch_is_handed_out_again_and_an_acknowledged_one_never() {
    let mut world = World::new();
    let versions = world.catalog.journeys.clone();
    let policy = DispatchPolicy::default();
    let ack_timeout = policy.ack_timeout;
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    let outbox = &world.state.journeys.outbox;
    assert_eq!(outbox.len(), 1);
    let id = outbox[0].id.clone();
    assert_eq!((outbox[0].channel.as_str(), outbox[0].attempt), ("push", 1));
    assert_eq!(
        world.state.journeys.next_due(&world.catalog.journeys),
        Some(at(10)),
        "due at once: the outbox is a timer"
    );
    let handed = |journeys: &mut CustomerJourneys, now: Timestamp| -> Vec<String> {
        let (out, outcome) = journeys.deliverable(now, &policy, &versions, |_| true);
        assert!(outcome.is_empty());
        out.into_iter().map(|dispatch| dispatch.id).collect()
    };
    let just = vec![id.clone()];
    let journeys = &mut world.state.journeys;
    assert_eq!(handed(journeys, at(10)), just);
    assert!(handed(journeys, at(10).plus(Span(ack_timeout.0 - 1))).is_empty());
    // Not acknowledged: handed out again, then after twice as long.
    let again = at(10).plus(ack_timeout);
    assert_eq!(handed(journeys, again), just);
    assert!(handed(journeys, again.plus(Span(2 * ack_timeout.0 - 1))).is_empty());
    assert_eq!(handed(journeys, again.plus(Span(2 * ack_timeout.0))), just);
    // Acknowledged: never handed out again; due only to expire.
    assert_eq!(journeys.acknowledge(&id, &policy), Acknowledged::Taken);
    assert_eq!(journeys.acknowledge(&id, &policy), Acknowledged::Already);
    assert_eq!(journeys.acknowledge("nope", &policy), Acknowledged::Unknown);
    assert!(handed(journeys, at(20)).is_empty());
    assert_eq!(
        journeys.next_due(&world.catalog.journeys),
        Some(at(10).plus(policy.expire_after))
    );
    // Delivered: out of the outbox, in the history.
    let decision_id = journeys.outbox[0].decision_id.clone();
    let outcome = journeys.delivered(&decision_id, None, at(11));
    assert_eq!(outcome.reports.len(), 1);
    assert!(journeys.outbox.is_empty());
    assert_eq!(
        history_codes(&world, "come_back"),
        ["started", "sent", "moved", "ended", "delivered"]
    );
}

#[test]
fn a_dispatch_nobody_takes_leaves_the_outbox_when_it_expires() {
    let mut world = World::new();
    let policy = DispatchPolicy::default();
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    // Handed out again and again, further apart up to the longest backoff,
    // then gone at its expiry, with the reason in the history.
    world.run_until(at(10).plus(policy.expire_after));
    assert!(world.state.journeys.outbox.is_empty());
    assert_eq!(world.state.journeys.next_due(&world.catalog.journeys), None);
    let codes = history_codes(&world, "come_back");
    assert_eq!(codes.last(), Some(&"undelivered"), "{codes:?}");
}

#[test]
fn a_failed_channel_is_tried_once_more_then_fails_over_as_consent_and_caps_allow() {
    let mut world = World::new();
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    let decision_id = world.state.journeys.outbox[0].decision_id.clone();
    // First failure: the same channel once more.
    assert!(fail(&mut world, &decision_id, at(10)).is_empty());
    let retry = &world.state.journeys.outbox[0];
    assert_eq!((retry.channel.as_str(), retry.attempt), ("push", 2));
    assert_eq!(retry.id, format!("{decision_id}.2"));
    // Second failure: fail over. SMS needs an opt-in the customer never
    // gave, so the pipeline takes email.
    assert_eq!(fail(&mut world, &decision_id, at(10)), ["login_email"]);
    let failover = &world.state.journeys.outbox[0];
    assert_eq!(failover.channel, "email");
    assert_eq!(failover.failed_channels, ["push"]);
    assert_ne!(failover.decision_id, decision_id);
    let run = world.run("come_back");
    assert!(
        run.history.iter().any(|entry| matches!(
            &entry.what,
            Happened::FailedOver { from_channel, action, channel, .. }
                if from_channel == "push" && action == "login_email" && channel == "email"
        )),
        "{:?}",
        run.history
    );
    // Email fails twice too: SMS is all that is left, and without consent
    // the send is blocked, with the reason in the history.
    let email = failover.decision_id.clone();
    assert!(fail(&mut world, &email, at(11)).is_empty());
    assert!(fail(&mut world, &email, at(11)).is_empty());
    assert!(world.state.journeys.outbox.is_empty());
    let run = world.run("come_back");
    assert!(
        run.history.iter().any(|entry| matches!(
            &entry.what,
            Happened::Blocked { reason, cause, .. } if reason.starts_with("failover:") && cause == "no_consent"
        )),
        "{:?}",
        run.history
    );
    assert_eq!(
        history_codes(&world, "come_back"),
        [
            "started",
            "sent",
            "moved",
            "ended",
            "delivery_failed",
            "delivery_failed",
            "failed_over",
            "delivery_failed",
            "delivery_failed",
            "blocked"
        ]
    );
}

#[test]
fn a_dispatch_no_delivery_service_takes_is_held_then_handed_out_once_one_does() {
    let mut world = World::new();
    let versions = world.catalog.journeys.clone();
    let policy = DispatchPolicy::default();
    let ack_timeout = policy.ack_timeout;
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    let journeys = &mut world.state.journeys;
    let nobody = |_: &str| false;
    let push_only = |channel: &str| channel == "push";
    // Nobody takes push: held, due again after a backoff that doubles.
    let (out, _) = journeys.deliverable(at(10), &policy, &versions, nobody);
    assert!(out.is_empty());
    assert_eq!(journeys.outbox[0].held, 1);
    assert_eq!(journeys.outbox[0].handed_out, 0);
    assert_eq!(journeys.outbox[0].due, at(10).plus(ack_timeout));
    assert_eq!(journeys.held_channels().collect::<Vec<_>>(), ["push"]);
    // A send waiting in the outbox keeps the customer's journeys busy,
    // whatever became of its run.
    let mut without_runs = journeys.clone();
    without_runs.runs.clear();
    assert!(!without_runs.is_idle());
    let (out, _) = journeys.deliverable(at(10).plus(ack_timeout), &policy, &versions, nobody);
    assert!(out.is_empty());
    assert_eq!(
        journeys.outbox[0].due,
        at(10).plus(ack_timeout).plus(Span(2 * ack_timeout.0))
    );
    // A delivery service for push comes: handed out at once, before it is
    // due, and no longer held.
    let soon = at(11);
    let (out, _) = journeys.deliverable(soon, &policy, &versions, push_only);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].handed_out, out[0].held), (1, 0));
    assert_eq!(journeys.outbox[0].due, soon.plus(ack_timeout));
    assert_eq!(journeys.held_channels().count(), 0);
    // Not due and not held: nothing more until its moment.
    let (out, _) = journeys.deliverable(soon, &policy, &versions, push_only);
    assert!(out.is_empty());
    // Held again, then taken by hand (`nudge dispatches ack`): no longer
    // waiting for a delivery service.
    let later = soon.plus(ack_timeout);
    let (out, _) = journeys.deliverable(later, &policy, &versions, nobody);
    assert!(out.is_empty());
    assert_eq!(journeys.held_channels().count(), 1);
    let id = journeys.outbox[0].id.clone();
    assert_eq!(journeys.acknowledge(&id, &policy), Acknowledged::Taken);
    assert_eq!(journeys.held_channels().count(), 0);
}

#[test]
fn an_outcome_naming_an_attempt_already_retried_changes_nothing() {
    let mut world = World::new();
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    let decision_id = world.state.journeys.outbox[0].decision_id.clone();
    let first = world.state.journeys.outbox[0].id.clone();
    assert!(
        world
            .state
            .journeys
            .retries_on_failure(&decision_id, Some(&first))
    );
    let failed_first = world.with_host(at(10), |journeys, catalog, host| {
        journeys.failed(&decision_id, Some(&first), &catalog.journeys, at(10), host)
    });
    assert_eq!(failed_first.0.reports.len(), 1);
    let retry = world.state.journeys.outbox[0].clone();
    assert_eq!(retry.attempt, 2);
    assert!(
        !world
            .state
            .journeys
            .retries_on_failure(&decision_id, Some(&retry.id))
    );
    // The delivery service reports attempt 1's failure again: nothing
    // happens, the retry stays.
    let repeated = world.with_host(at(10), |journeys, catalog, host| {
        journeys.failed(&decision_id, Some(&first), &catalog.journeys, at(10), host)
    });
    assert!(repeated.0.is_empty());
    assert!(repeated.1.is_empty());
    assert_eq!(world.state.journeys.outbox, std::slice::from_ref(&retry));
    assert!(
        world
            .state
            .journeys
            .delivered(&decision_id, Some(&first), at(11))
            .is_empty()
    );
    // Delivered on the retry: closed.
    let delivered = world
        .state
        .journeys
        .delivered(&decision_id, Some(&retry.id), at(11));
    assert_eq!(delivered.reports.len(), 1);
    assert!(world.state.journeys.outbox.is_empty());
}

/// The catalog's journeys, every one paused by an operator.
struct AllPaused(Vec<std::sync::Arc<nudge_models::journey::Journey>>);

impl nudge_models::journey::Versions for AllPaused {
    fn version(&self, id: &str, version: u32) -> Option<&nudge_models::journey::Journey> {
        self.0.version(id, version)
    }

    fn paused(&self, _id: &str) -> bool {
        true
    }
}

#[test]
fn a_paused_journeys_dispatches_are_not_handed_out_until_it_is_resumed() {
    let mut world = World::new();
    let policy = DispatchPolicy::default();
    let running = world.catalog.journeys.clone();
    let paused = AllPaused(running.clone());
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    let journeys = &mut world.state.journeys;
    assert_eq!(journeys.next_due(&paused), None);
    assert!(journeys.has_paused(&paused));
    // Paused past its expiry, even: it stays, untouched.
    let late = at(10).plus(policy.expire_after).plus(Span(1));
    let (out, outcome) = journeys.deliverable(late, &policy, &paused, |_| true);
    assert!(out.is_empty() && outcome.is_empty());
    assert_eq!(journeys.outbox.len(), 1);
    assert_eq!(journeys.outbox[0].handed_out, 0);
    // Resumed: it goes, once, unless it expired meanwhile.
    let (out, _) = journeys.deliverable(at(20), &policy, &running, |_| true);
    assert_eq!(out.len(), 1);
}

#[test]
fn a_goal_withdraws_the_runs_sends_no_delivery_service_took_and_keeps_the_taken_ones() {
    let policy = DispatchPolicy::default();
    let converted = |world: &mut World| {
        world.event("subscription_started", day(0.5));
    };
    let mut world = World::demo();
    start_trial(&mut world);
    assert_eq!(world.state.journeys.outbox.len(), 1, "the day-0 welcome");
    converted(&mut world);
    assert!(world.state.journeys.outbox.is_empty());
    let codes = history_codes(&world, "trial_conversion");
    assert!(codes.contains(&"withdrawn"), "{codes:?}");
    assert_eq!(codes.last(), Some(&"withdrawn"), "{codes:?}");

    // Taken (acknowledged) before the goal: it stays, for its outcome.
    let mut world = World::demo();
    start_trial(&mut world);
    let id = world.state.journeys.outbox[0].id.clone();
    world.state.journeys.acknowledge(&id, &policy);
    converted(&mut world);
    assert_eq!(world.state.journeys.outbox.len(), 1);
    assert!(!history_codes(&world, "trial_conversion").contains(&"withdrawn"));
}

#[test]
fn a_failover_respects_the_caps_of_the_channel_it_would_take() {
    let mut world = World::new();
    // The welcome journey's SMS needs an opt-in: its email goes instead,
    // and takes the day's one email slot.
    assert_eq!(world.event("signed_up", at(9)), ["welcome_email"]);
    assert_eq!(world.event("went_quiet", at(10)), ["login_push"]);
    let decision_id = world
        .state
        .journeys
        .outbox
        .iter()
        .find(|dispatch| dispatch.channel == "push")
        .expect("the push")
        .decision_id
        .clone();
    assert!(fail(&mut world, &decision_id, at(10)).is_empty());
    // Push failed twice: SMS has no consent and email's cap is full, so
    // nothing goes, and the history says why.
    assert!(fail(&mut world, &decision_id, at(10)).is_empty());
    let run = world.run("come_back");
    assert!(
        run.history.iter().any(|entry| matches!(
            &entry.what,
            Happened::Blocked { reason, cause, .. } if reason.starts_with("failover:") && cause == "cap_channel"
        )),
        "{:?}",
        run.history
    );
    assert!(
        world
            .state
            .journeys
            .outbox
            .iter()
            .all(|dispatch| dispatch.journey != "come_back")
    );
}
