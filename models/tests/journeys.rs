//! Journeys as the spec describes them, driven with an explicit clock: the
//! trial-conversion journey walked over its 13 days, goals that cancel a
//! pending wait at once, deferred and blocked sends, entry rules, priority
//! between journeys, pause, versions, opt-out, and a run that survives a
//! restart (serialized mid-wait) and fires exactly once.
//!
//! The host is a fake customer: a real profile (so CEL rules read real
//! counts), sends answered from a small cap and quiet-hours model, and a
//! timer loop that fires each run when it is due, as the actor will.

use chrono_tz::Tz;
use nudge_models::Error;
use nudge_models::catalog::{Catalog, Rule};
use nudge_models::journey::{
    self, CustomerJourneys, Ending, Happened, Host, Journey, Outcome, Refused, RunState,
    SendAttempt, SendRequest, SendTarget, Versions, Via,
};
use nudge_models::profile::{Event, Profile};
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// 2026-12-01T00:00:00Z, a Tuesday.
const START: i64 = 1_796_083_200_000;

const CATALOG: &str = r#"
[catalog]
name = "journeys"
events = ["login", "feature_activated", "teammate_invited", "subscription_started",
          "trial_started", "usage_dropped", "pricing_viewed"]

[channels.email]
[channels.push]
[channels.in_app]

[[actions]]
id = "welcome_email"
channel = "email"
category = "onboarding"

[[actions]]
id = "login_push"
channel = "push"
category = "onboarding"

[[actions]]
id = "tips_email"
channel = "email"
category = "onboarding"

[[actions]]
id = "invite_email"
channel = "email"
category = "expansion"

[[actions]]
id = "engaged_offer"
channel = "email"
category = "offer"

[[actions]]
id = "urgency_email"
channel = "email"
category = "offer"

[[actions]]
id = "final_offer"
channel = "email"
category = "offer"

[[actions]]
id = "win_back_email"
channel = "email"
category = "offer"

[placements.home]
channels = ["in_app"]

[journey_policy]
max_concurrent = 2

[[journeys]]
id = "trial_conversion"
name = "Trial conversion"
priority = 10
trigger = { event = "trial_started" }
goals = [{ event = "subscription_started" }]
exits = [{ event = "account_closed" }]
reentry_after = "60d"

[[journeys.steps]]
id = "welcome"
send = { action = "welcome_email" }

[[journeys.steps]]
id = "day1"
wait = "1d"

[[journeys.steps]]
id = "logged_in"
branch = [{ when = "profile.count_1d.login > 0", goto = "day3" }]
else = "login_reminder"

[[journeys.steps]]
id = "login_reminder"
send = { action = "login_push" }

[[journeys.steps]]
id = "day3"
wait = "2d"

[[journeys.steps]]
id = "activated"
branch = [{ when = "profile.count_7d.feature_activated > 0", goto = "day5" }]

[[journeys.steps]]
id = "activation_tips"
send = { action = "tips_email" }

[[journeys.steps]]
id = "day5"
wait = "2d"

[[journeys.steps]]
id = "teammates"
wait_for = { event = "teammate_invited", timeout = "2d", on_timeout = "invite_nudge" }
next = "engagement"

[[journeys.steps]]
id = "invite_nudge"
send = { action = "invite_email" }

[[journeys.steps]]
id = "engagement"
branch = [{ when = "profile.count_7d.login >= 3", goto = "engaged" }]
else = "day10"

[[journeys.steps]]
id = "engaged"
send = { action = "engaged_offer" }
next = "end"

[[journeys.steps]]
id = "day10"
wait = "3d"

[[journeys.steps]]
id = "urgency"
send = { action = "urgency_email" }
on_blocked = "day13"

[[journeys.steps]]
id = "day13"
wait = "3d"

[[journeys.steps]]
id = "final"
send = { action = "final_offer" }

[[journeys]]
id = "win_back"
priority = 1
trigger = { event = "usage_dropped", when = "event.drop >= 0.5" }

[[journeys.steps]]
id = "settle"
wait = "1d"

[[journeys.steps]]
id = "offer"
send = { action = "win_back_email" }

[[journeys.steps]]
id = "mark"
update = { lifecycle_stage = "win_back", win_back_offers = 1 }

[[journeys]]
id = "pricing_follow_up"
priority = 5
trigger = { event = "pricing_viewed" }
entry = "!has(profile.plan) || profile.plan != 'enterprise'"
reentry_after = "7d"

[[journeys.steps]]
id = "later"
wait = "1d"

[[journeys.steps]]
id = "arm"
split = [{ weight = 1, goto = "a" }, { weight = 1, goto = "b" }]

[[journeys.steps]]
id = "a"
send = { placement = "home" }
next = "end"

[[journeys.steps]]
id = "b"
send = { placement = "home" }
"#;

fn at(days: f64) -> Timestamp {
    #[allow(clippy::cast_possible_truncation)]
    Timestamp(START + (days * DAY_MS as f64) as i64)
}

/// A customer as the actor would host one: a real profile, sends answered
/// from a cap on email and from quiet hours.
struct Customer {
    id: String,
    profile: Profile,
    known_events: Vec<String>,
    env: std::sync::Arc<cel::Env>,
    channels: HashMap<String, String>,
    now: Timestamp,
    /// Email sends left before the cap says no.
    email_slots: u32,
    /// Sends wait for this moment (quiet hours).
    quiet_until: Option<Timestamp>,
    sent: Vec<String>,
    updated: Vec<(String, AttrValue)>,
}

impl Customer {
    fn new(id: &str, catalog: &Catalog) -> Self {
        Self {
            id: id.to_owned(),
            profile: Profile::default(),
            known_events: catalog.known_events.clone(),
            env: catalog.cel_env().clone(),
            channels: catalog
                .actions
                .iter()
                .map(|action| (action.id.to_string(), action.channel.clone()))
                .collect(),
            now: at(0.0),
            email_slots: 100,
            quiet_until: None,
            sent: Vec::new(),
            updated: Vec::new(),
        }
    }
}

impl Host for Customer {
    fn customer_id(&self) -> &str {
        &self.id
    }

    fn timezone(&self) -> Tz {
        chrono_tz::UTC
    }

    fn holds(&self, rule: &Rule, event: Option<&Event>) -> Result<bool, Error> {
        journey::holds(
            &self.env,
            rule,
            &self.profile,
            &self.known_events,
            event,
            self.now,
        )
    }

    fn has_done(&self, event: &str) -> bool {
        self.profile.days_since(event, self.now) < nudge_models::profile::NEVER_DAYS
    }

    fn send(&mut self, request: &SendRequest<'_>) -> SendAttempt {
        if let Some(until) = self.quiet_until
            && self.now < until
        {
            return SendAttempt::Deferred {
                until,
                reason: "quiet hours 21:00–08:00 on email".to_owned(),
                cause: "quiet_hours".to_owned(),
            };
        }
        let (action, channel) = match request.target {
            SendTarget::Action(action) => {
                (action.to_string(), self.channels[action.as_ref()].clone())
            }
            SendTarget::Placement(placement) => {
                (format!("best of {placement}"), "in_app".to_owned())
            }
        };
        if channel == "email" {
            if self.email_slots == 0 {
                return SendAttempt::Blocked {
                    reason: "cap email 1/7d reached".to_owned(),
                    cause: "cap_channel".to_owned(),
                };
            }
            self.email_slots -= 1;
        }
        self.sent.push(action.clone());
        SendAttempt::Sent {
            decision_id: format!("d-{}", self.sent.len()),
            action,
            channel,
        }
    }

    fn update(&mut self, attribute: &str, value: &AttrValue) {
        self.updated.push((attribute.to_owned(), value.clone()));
    }
}

/// One customer's journeys over one catalog, and a clock.
struct World {
    catalog: Catalog,
    /// The versions runs may be on (the catalog's, plus any kept).
    versions: Vec<Arc<Journey>>,
    customer: Customer,
    journeys: CustomerJourneys,
    events: u32,
}

impl World {
    fn new() -> Self {
        Self::with_catalog(CATALOG)
    }

    fn with_catalog(text: &str) -> Self {
        let catalog = Catalog::from_toml(text).expect("the test catalog is valid");
        let customer = Customer::new("alice", &catalog);
        Self {
            versions: catalog.journeys.clone(),
            catalog,
            customer,
            journeys: CustomerJourneys::default(),
            events: 0,
        }
    }

    /// The customer does `name` (with `properties`) at `now`.
    fn event_with(
        &mut self,
        name: &str,
        now: Timestamp,
        properties: &[(&str, AttrValue)],
    ) -> Outcome {
        self.customer.now = now;
        self.events += 1;
        let event = Event {
            event_id: format!("e{}", self.events),
            name: name.to_owned(),
            timestamp: now,
            properties: properties
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect::<BTreeMap<_, _>>(),
        };
        self.customer.profile.apply_event(&event, now);
        self.journeys.on_event(
            &self.catalog.journeys,
            &self.versions,
            &self.catalog.journey_policy,
            &event,
            now,
            &mut self.customer,
        )
    }

    fn event(&mut self, name: &str, now: Timestamp) -> Outcome {
        self.event_with(name, now, &[])
    }

    /// Fires every timer due up to `until`, each at its due time, as the
    /// actor's timer does; returns how many times a timer fired.
    fn run_until(&mut self, until: Timestamp) -> usize {
        let mut fired = 0;
        while let Some(due) = self.journeys.next_due(&self.versions) {
            if due > until {
                break;
            }
            self.customer.now = due;
            let outcome = self
                .journeys
                .on_time(&self.versions, due, &mut self.customer);
            assert!(!outcome.reports.is_empty(), "a due run moves");
            fired += 1;
            assert!(fired < 1_000, "timers keep firing");
        }
        self.customer.now = until;
        fired
    }

    fn run_of(&self, journey: &str) -> &journey::Run {
        self.journeys
            .runs
            .iter()
            .rev()
            .find(|run| run.journey == journey)
            .unwrap_or_else(|| panic!("no run of {journey}"))
    }

    fn step_of(&self, journey: &str) -> String {
        let run = self.run_of(journey);
        let version = self
            .versions
            .version(&run.journey, run.version)
            .expect("known version");
        version.steps[run.step].id.clone()
    }
}

fn ending(run: &journey::Run) -> Option<&Ending> {
    match &run.state {
        RunState::Ended { ending, .. } => Some(ending),
        _ => None,
    }
}

#[test]
fn the_trial_journey_walks_its_13_days_with_branches_taken_by_events() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    assert_eq!(world.customer.sent, ["welcome_email"], "day 0: welcome");
    assert_eq!(world.step_of("trial_conversion"), "day1");

    // Logged in within the day before day 1: no reminder.
    world.event("login", at(0.5));
    world.run_until(at(1.0));
    assert_eq!(world.step_of("trial_conversion"), "day3");
    // No feature activated by day 3: tips.
    world.run_until(at(3.0));
    assert_eq!(world.customer.sent, ["welcome_email", "tips_email"]);
    // Day 5 to 7: no teammate invited, so the wait_for times out.
    world.run_until(at(7.0));
    assert_eq!(
        world.customer.sent.last().map(String::as_str),
        Some("invite_email")
    );
    // One login in the last 7 days: not engaged, on to day 10 and 13.
    world.run_until(at(13.0));
    assert_eq!(
        world.customer.sent,
        [
            "welcome_email",
            "tips_email",
            "invite_email",
            "urgency_email",
            "final_offer"
        ]
    );
    let run = world.run_of("trial_conversion");
    assert_eq!(ending(run), Some(&Ending::Completed));

    // The history names every step, how it was left and how long it took.
    let moves: Vec<(String, Option<String>, Via, i64)> = run
        .history
        .iter()
        .filter_map(|entry| match &entry.what {
            Happened::Moved {
                from,
                to,
                via,
                in_step_ms,
            } => Some((from.clone(), to.clone(), via.clone(), *in_step_ms)),
            _ => None,
        })
        .collect();
    let step = |from: &str| {
        moves
            .iter()
            .find(|(left, ..)| left == from)
            .unwrap_or_else(|| panic!("no move from {from}: {moves:?}"))
    };
    assert_eq!(step("logged_in").2, Via::Case { index: 0 });
    assert_eq!(step("activated").2, Via::Else);
    assert_eq!(step("teammates").2, Via::Timeout);
    assert_eq!(step("teammates").3, 2 * DAY_MS);
    assert_eq!(step("day10").3, 3 * DAY_MS);
    assert_eq!(step("final").1, None, "past the last step");
}

#[test]
fn a_customer_who_does_not_log_in_gets_the_reminder_and_one_who_invites_skips_the_nudge() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    world.run_until(at(1.0));
    assert_eq!(world.customer.sent, ["welcome_email", "login_push"]);

    world.event("feature_activated", at(2.0));
    world.run_until(at(5.5));
    // Activated before day 3: no tips; the run waits for an invitation.
    assert_eq!(world.customer.sent, ["welcome_email", "login_push"]);
    assert_eq!(world.step_of("trial_conversion"), "teammates");
    for day in [5.6, 5.7, 5.8] {
        world.event("login", at(day));
    }
    world.event("teammate_invited", at(6.0));
    // The invitation moves the run at once: no nudge; three logins in 7
    // days make an engaged customer, who gets the offer and is done.
    assert_eq!(
        world.customer.sent,
        ["welcome_email", "login_push", "engaged_offer"]
    );
    assert_eq!(
        ending(world.run_of("trial_conversion")),
        Some(&Ending::Completed)
    );
    assert_eq!(world.journeys.next_due(&world.versions), None);
}

#[test]
fn a_goal_on_day_5_cancels_the_pending_wait_at_once_and_no_later_step_fires() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    world.run_until(at(5.0));
    let sent_before = world.customer.sent.clone();
    let outcome = world.event("subscription_started", at(5.2));
    let run = world.run_of("trial_conversion");
    assert_eq!(
        ending(run),
        Some(&Ending::Converted {
            event: "subscription_started".to_owned()
        })
    );
    assert!(
        outcome
            .reports
            .iter()
            .any(|report| matches!(report.entry.what, Happened::Ended { .. }))
    );
    assert_eq!(
        world.journeys.next_due(&world.versions),
        None,
        "no timer left"
    );
    assert_eq!(world.run_until(at(30.0)), 0);
    assert_eq!(world.customer.sent, sent_before);
    // A converted customer does not enter again, even after the throttle.
    let again = world.event("trial_started", at(70.0));
    assert_eq!(again.refused[0].reason, Refused::GoalReached);
}

#[test]
fn an_exit_event_ends_the_run_and_a_trigger_whose_condition_cannot_hold_starts_nothing() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    world.event("account_closed", at(0.5));
    assert_eq!(
        ending(world.run_of("trial_conversion")),
        Some(&Ending::Exited {
            event: "account_closed".to_owned()
        })
    );

    // `event.drop` is missing: the trigger cannot hold, nothing starts.
    let outcome = world.event("usage_dropped", at(1.0));
    assert!(outcome.is_empty(), "{outcome:?}");
    let outcome = world.event_with("usage_dropped", at(1.0), &[("drop", AttrValue::Num(0.2))]);
    assert!(outcome.is_empty(), "a drop of 0.2 does not trigger");
    world.event_with("usage_dropped", at(1.0), &[("drop", AttrValue::Num(0.6))]);
    assert_eq!(world.step_of("win_back"), "settle");
}

#[test]
fn quiet_hours_defer_a_send_which_goes_when_they_end() {
    let mut world = World::new();
    world.customer.quiet_until = Some(Timestamp(at(0.0).millis() + 8 * HOUR_MS));
    world.event("trial_started", at(0.0));
    assert!(world.customer.sent.is_empty());
    let run = world.run_of("trial_conversion");
    assert!(
        matches!(run.state, RunState::Deferred { .. }),
        "{:?}",
        run.state
    );
    assert_eq!(run.due(), Some(Timestamp(at(0.0).millis() + 8 * HOUR_MS)));
    world.run_until(at(0.5));
    assert_eq!(world.customer.sent, ["welcome_email"]);
    // The wait after it counts from when it went.
    assert_eq!(
        world.run_of("trial_conversion").due(),
        Some(Timestamp(at(1.0).millis() + 8 * HOUR_MS))
    );
}

#[test]
fn a_send_deferred_past_max_defer_or_capped_follows_its_configured_path() {
    // Deferred past the default max_defer (1d): blocked, then on to `next`.
    let mut world = World::new();
    world.customer.quiet_until = Some(at(2.0));
    world.event("trial_started", at(0.0));
    let run = world.run_of("trial_conversion");
    assert!(run.history.iter().any(|entry| matches!(
        &entry.what,
        Happened::Blocked { step, reason, .. } if step == "welcome" && reason.contains("quiet hours")
    )));
    assert_eq!(world.step_of("trial_conversion"), "day1");

    // The cap on email is spent by day 10: `urgency` is blocked and its
    // `on_blocked` takes the run to day 13 (which is blocked too, then done).
    let mut world = World::new();
    world.customer.email_slots = 3;
    world.event("trial_started", at(0.0));
    world.run_until(at(20.0));
    let run = world.run_of("trial_conversion");
    let blocked: Vec<&str> = run
        .history
        .iter()
        .filter_map(|entry| match &entry.what {
            Happened::Blocked { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(blocked, ["urgency", "final"]);
    assert!(run.history.iter().any(|entry| matches!(
        &entry.what,
        Happened::Moved { from, to: Some(to), via: Via::Blocked, .. } if from == "urgency" && to == "day13"
    )));
    assert_eq!(ending(run), Some(&Ending::Completed));
}

#[test]
fn entry_rules_keep_out_a_second_run_throttle_reentry_and_check_the_entry_condition() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    let outcome = world.event("trial_started", at(0.1));
    assert_eq!(outcome.refused[0].reason, Refused::AlreadyIn);
    world.run_until(at(14.0));
    // Completed on day 13; the throttle is 60 days from the entry.
    let outcome = world.event("trial_started", at(20.0));
    assert_eq!(
        outcome.refused[0].reason,
        Refused::TooSoon { until: at(60.0) }
    );
    let outcome = world.event("trial_started", at(60.0));
    assert!(outcome.refused.is_empty(), "{outcome:?}");
    assert_eq!(world.journeys.memory["trial_conversion"].entries, 2);

    // A journey without `reentry_after` is entered once.
    let mut world = World::new();
    world.event_with("usage_dropped", at(0.0), &[("drop", AttrValue::Num(0.9))]);
    world.run_until(at(5.0));
    let outcome = world.event_with("usage_dropped", at(30.0), &[("drop", AttrValue::Num(0.9))]);
    assert_eq!(outcome.refused[0].reason, Refused::OnceOnly);

    // The entry condition reads the profile.
    let mut world = World::new();
    world.event_with(
        "identify",
        at(0.0),
        &[("plan", AttrValue::Str("enterprise".into()))],
    );
    let outcome = world.event("pricing_viewed", at(0.1));
    assert_eq!(outcome.refused[0].reason, Refused::EntryRule);
}

#[test]
fn a_customer_is_in_at_most_max_concurrent_journeys() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    world.event_with("usage_dropped", at(0.0), &[("drop", AttrValue::Num(0.9))]);
    let outcome = world.event("pricing_viewed", at(0.1));
    assert_eq!(
        outcome.refused[0].reason,
        Refused::TooManyJourneys { max: 2 }
    );
}

#[test]
fn two_journeys_due_at_once_compete_for_the_last_cap_slot_and_the_higher_priority_wins() {
    // Without its welcome, the trial journey's first email (tips) is due on
    // day 3; the win-back journey, settling 3 days, sends its email then
    // too. One email is left under the cap.
    let catalog = CATALOG
        .replace(
            "[[journeys.steps]]\nid = \"welcome\"\nsend = { action = \"welcome_email\" }\n",
            "",
        )
        .replace(
            "id = \"settle\"\nwait = \"1d\"",
            "id = \"settle\"\nwait = \"3d\"",
        );
    let mut world = World::with_catalog(&catalog);
    world.customer.email_slots = 1;
    // The low-priority journey starts first: the order of entry does not
    // decide, the priority does.
    world.event_with("usage_dropped", at(0.0), &[("drop", AttrValue::Num(0.9))]);
    world.event("trial_started", at(0.0));
    world.event("login", at(0.5));
    world.run_until(at(3.0));
    assert_eq!(
        world.customer.sent,
        ["tips_email"],
        "the trial journey (priority 10) sent first"
    );
    assert!(
        world
            .run_of("win_back")
            .history
            .iter()
            .any(|entry| matches!(
                &entry.what,
                Happened::Blocked { step, reason, .. } if step == "offer" && reason.contains("cap")
            ))
    );
}

#[test]
fn pausing_holds_runs_in_place_and_resuming_continues_them() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    // Paused by an operator: every version of the journey.
    struct Paused<'a>(&'a Vec<Arc<Journey>>);
    impl Versions for Paused<'_> {
        fn version(&self, id: &str, version: u32) -> Option<&Journey> {
            self.0.version(id, version)
        }
        fn paused(&self, _: &str) -> bool {
            true
        }
    }
    let versions = world.versions.clone();
    let paused = Paused(&versions);
    assert_eq!(
        world.journeys.next_due(&paused),
        None,
        "a paused run is not due"
    );
    world.customer.now = at(5.0);
    let outcome = world
        .journeys
        .on_time(&paused, at(5.0), &mut world.customer);
    assert!(outcome.reports.is_empty());
    assert_eq!(world.step_of("trial_conversion"), "day1");
    // No new entries either.
    let mut other = World::new();
    other.customer.now = at(0.0);
    let event = Event {
        event_id: "t".into(),
        name: "trial_started".into(),
        timestamp: at(0.0),
        properties: BTreeMap::new(),
    };
    let outcome = other.journeys.on_event(
        &other.catalog.journeys,
        &Paused(&versions),
        &other.catalog.journey_policy,
        &event,
        at(0.0),
        &mut other.customer,
    );
    assert_eq!(outcome.refused[0].reason, Refused::Paused);

    // Resumed on day 5: the day-1 timer fires now, once, and the run goes on.
    world.customer.now = at(5.0);
    let outcome = world
        .journeys
        .on_time(&world.versions, at(5.0), &mut world.customer);
    assert!(!outcome.reports.is_empty());
    assert_eq!(world.customer.sent, ["welcome_email", "login_push"]);
    assert_eq!(world.step_of("trial_conversion"), "day3");
}

#[test]
fn a_journey_declared_paused_takes_no_entries_and_a_cancel_ends_a_run() {
    let paused = CATALOG.replacen(
        "id = \"win_back\"\npriority = 1",
        "id = \"win_back\"\nstatus = \"paused\"\npriority = 1",
        1,
    );
    let mut world = World::with_catalog(&paused);
    let outcome = world.event_with("usage_dropped", at(0.0), &[("drop", AttrValue::Num(0.9))]);
    assert_eq!(outcome.refused[0].reason, Refused::Paused);

    world.event("trial_started", at(0.0));
    let outcome = world.journeys.cancel("trial_conversion", at(0.5));
    assert_eq!(outcome.reports.len(), 1, "{outcome:?}");
    assert_eq!(
        ending(world.run_of("trial_conversion")),
        Some(&Ending::Cancelled)
    );
    assert!(
        world
            .journeys
            .cancel("trial_conversion", at(0.6))
            .is_empty(),
        "nothing left to cancel"
    );
    assert_eq!(world.journeys.next_due(&world.versions), None);
}

#[test]
fn a_running_journey_keeps_its_version_and_new_entries_take_the_new_one() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    // Version 2 ends with another offer.
    let v2_text = CATALOG
        .replacen(
            "reentry_after = \"60d\"",
            "reentry_after = \"60d\"\nversion = 2",
            1,
        )
        .replace(
            "send = { action = \"final_offer\" }",
            "send = { action = \"engaged_offer\" }",
        );
    let v2 = Catalog::from_toml(&v2_text).expect("valid");
    let v2_trial = v2.journeys[0].clone();
    assert_eq!(v2_trial.version, 2);
    world.versions.push(v2_trial.clone());
    world.catalog = v2;
    world.run_until(at(14.0));
    let first = world.run_of("trial_conversion");
    assert_eq!(
        (first.version, ending(first)),
        (1, Some(&Ending::Completed))
    );
    assert_eq!(
        world.customer.sent.last().map(String::as_str),
        Some("final_offer"),
        "the run kept version 1's steps"
    );
    world.event("trial_started", at(61.0));
    assert_eq!(world.run_of("trial_conversion").version, 2);

    // A run whose version is gone ends, saying so.
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    world.versions.clear();
    world.customer.now = at(1.0);
    world
        .journeys
        .on_time(&world.versions, at(1.0), &mut world.customer);
    assert!(matches!(
        ending(world.run_of("trial_conversion")),
        Some(Ending::Failed { reason }) if reason.contains("version 1")
    ));
}

#[test]
fn opting_out_of_a_channel_removes_the_customer_from_journeys_that_send_on_it() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    world.event("pricing_viewed", at(0.0));
    let outcome =
        world
            .journeys
            .remove_for_channel("email", "opted out of email", &world.versions, at(0.5));
    assert_eq!(outcome.reports.len(), 1, "{outcome:?}");
    assert_eq!(
        ending(world.run_of("trial_conversion")),
        Some(&Ending::Removed {
            reason: "opted out of email".to_owned()
        })
    );
    // The pricing follow-up sends in-app only: it goes on.
    assert!(!world.run_of("pricing_follow_up").is_ended());
    world.run_until(at(2.0));
    assert_eq!(
        world.customer.sent.last().map(String::as_str),
        Some("best of home")
    );
}

#[test]
fn a_run_serialized_mid_wait_resumes_after_a_restart_and_fires_exactly_once() {
    let mut world = World::new();
    world.event("trial_started", at(0.0));
    let stored = serde_json::to_string(&world.journeys).expect("serializes");
    // Down from day 0.5 to day 2: the day-1 timer was due during downtime.
    let mut restarted = World::new();
    restarted.journeys = serde_json::from_str(&stored).expect("deserializes");
    restarted.customer.sent.clear();
    assert_eq!(
        restarted.journeys.next_due(&restarted.versions),
        Some(at(1.0))
    );
    restarted.customer.now = at(2.0);
    let outcome = restarted
        .journeys
        .on_time(&restarted.versions, at(2.0), &mut restarted.customer);
    assert!(!outcome.reports.is_empty());
    assert_eq!(
        restarted.customer.sent,
        ["login_push"],
        "fired once, on recovery"
    );
    let again = restarted
        .journeys
        .on_time(&restarted.versions, at(2.0), &mut restarted.customer);
    assert!(again.reports.is_empty(), "and never again");
    assert_eq!(restarted.customer.sent, ["login_push"]);
}

#[test]
fn an_update_step_sets_attributes_and_a_split_is_deterministic_and_spread_by_weight() {
    let mut world = World::new();
    world.event_with("usage_dropped", at(0.0), &[("drop", AttrValue::Num(0.9))]);
    world.run_until(at(2.0));
    assert_eq!(
        world.customer.updated,
        [
            (
                "lifecycle_stage".to_owned(),
                AttrValue::Str("win_back".into())
            ),
            ("win_back_offers".to_owned(), AttrValue::Num(1.0)),
        ]
    );

    let catalog = Catalog::from_toml(CATALOG).expect("valid");
    let pricing = catalog
        .journeys
        .iter()
        .find(|journey| journey.id.as_ref() == "pricing_follow_up")
        .expect("defined");
    let journey::StepKind::Split { arms } = &pricing.steps[1].kind else {
        panic!("the second step splits");
    };
    let mut counts = [0_u32; 2];
    for customer in 0..2_000 {
        let id = format!("customer-{customer}");
        let arm = journey::split_arm(arms, &id, "pricing_follow_up", "arm");
        assert_eq!(
            arm,
            journey::split_arm(arms, &id, "pricing_follow_up", "arm")
        );
        counts[arm] += 1;
    }
    assert!(
        counts.iter().all(|count| (900..=1_100).contains(count)),
        "{counts:?}"
    );
}

#[test]
fn wait_until_is_the_next_time_the_customers_clock_shows_it() {
    let paris: Tz = "Europe/Paris".parse().expect("a timezone");
    // 2026-12-01T07:30Z is 08:30 in Paris: 09:00 is half an hour away.
    let now = Timestamp(START + 7 * HOUR_MS + 30 * 60_000);
    assert_eq!(
        nudge_models::time::next_local_minute(now, paris, 9 * 60),
        Timestamp(START + 8 * HOUR_MS)
    );
    // 08:00 has passed: tomorrow.
    assert_eq!(
        nudge_models::time::next_local_minute(now, paris, 8 * 60),
        Timestamp(START + DAY_MS + 7 * HOUR_MS)
    );
    // Exactly now: now.
    assert_eq!(
        nudge_models::time::next_local_minute(now, paris, 8 * 60 + 30),
        now
    );
    // 02:30 does not exist on 2027-03-28 in Paris (clocks go 02:00 → 03:00):
    // an hour later, 03:30 local, 01:30Z.
    let before = Timestamp::parse_rfc3339("2027-03-28T00:00:00Z").expect("valid");
    assert_eq!(
        nudge_models::time::next_local_minute(before, paris, 2 * 60 + 30),
        Timestamp::parse_rfc3339("2027-03-28T01:30:00Z").expect("valid")
    );
}

#[test]
fn history_is_bounded_and_keeps_how_the_run_began() {
    // A journey that loops through a wait for ever.
    let text = format!(
        "{CATALOG}\n[[journeys]]\nid = \"loop\"\ntrigger = {{ event = \"login\" }}\n\n[[journeys.steps]]\nid = \"tick\"\nwait = \"1h\"\nnext = \"tick\"\n"
    );
    let mut world = World::with_catalog(&text);
    world.event("login", at(0.0));
    world.run_until(at(30.0));
    let run = world.run_of("loop");
    assert_eq!(run.history.len(), journey::run::MAX_HISTORY);
    assert!(matches!(run.history[0].what, Happened::Started { .. }));
    assert!(!run.is_ended());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const EVENTS: [&str; 6] = [
        "login",
        "feature_activated",
        "teammate_invited",
        "trial_started",
        "subscription_started",
        "pricing_viewed",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the customer does and whenever the timers fire: nothing
        /// is sent after the goal, no step of the trial journey sends twice
        /// in a run, every run's history moves forward in time, and every
        /// run ends.
        #[test]
        fn runs_never_send_after_their_goal_nor_twice_from_one_step(
            events in prop::collection::vec((0.0_f64..20.0, 0..EVENTS.len()), 1..25),
        ) {
            let mut world = World::new();
            let mut events = events;
            events.sort_by(|left, right| left.0.total_cmp(&right.0));
            let mut converted_at: Option<Timestamp> = None;
            for (day, which) in events {
                world.run_until(at(day));
                world.event(EVENTS[which], at(day));
                if EVENTS[which] == "subscription_started" && converted_at.is_none() {
                    converted_at = Some(at(day));
                }
            }
            world.run_until(at(40.0));
            for run in &world.journeys.runs {
                let times: Vec<Timestamp> = run.history.iter().map(|entry| entry.at).collect();
                prop_assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
                let mut steps_sent: Vec<&str> = run
                    .history
                    .iter()
                    .filter_map(|entry| match &entry.what {
                        Happened::Sent { step, .. } => Some(step.as_str()),
                        _ => None,
                    })
                    .collect();
                let sends = steps_sent.len();
                steps_sent.sort_unstable();
                steps_sent.dedup();
                prop_assert_eq!(steps_sent.len(), sends, "a step sent twice in one run");
                if let Some(goal) = converted_at.filter(|_| run.journey == "trial_conversion") {
                    let sent_after_goal = run
                        .history
                        .iter()
                        .any(|entry| matches!(entry.what, Happened::Sent { .. }) && entry.at > goal);
                    prop_assert!(!sent_after_goal, "sent after the goal: {:?}", run.history);
                }
                // Every run started by day 20 is over by day 40: the longest
                // journey lasts 13 days and nothing here defers.
                prop_assert!(run.is_ended(), "{:?}", run.state);
            }
        }
    }
}

#[test]
fn the_readmes_journey_example_is_valid_on_the_demo_catalog() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## Journeys").expect("a Journeys section")..];
    let start = section.find("```toml").expect("a TOML example") + "```toml".len();
    let example = &section[start..start + section[start..].find("```").expect("closed")];
    let text = format!("{}\n{example}", nudge_models::demo::CATALOG_TOML);
    let catalog = Catalog::from_toml(&text).expect("the README's example is valid");
    assert!(
        catalog
            .journeys
            .iter()
            .any(|journey| journey.id.as_ref() == "trial_tips")
    );
    assert!(catalog.placement("journey/trial_tips").is_some());
}
