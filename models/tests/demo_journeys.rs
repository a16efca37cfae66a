//! The embedded demo's journeys on the host the service runs them on, with
//! the demo model and an explicit clock: the trial-conversion journey walks
//! its 13 days with branches taken by the customer's events and its sends
//! decided through the full pipeline (the email cap defers the last one to
//! the moment a slot frees); a subscription on day 5 ends the run at once,
//! its pending wait included, and nothing fires after; churn prevention
//! routes a paying customer by risk tier.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::demo::{CATALOG_TOML, MODEL_JSON};
use nudge_models::journey::{
    CustomerJourneys, Ending, Happened, Outcome, PipelineHost, Run, RunState, Versions,
};
use nudge_models::model::Model;
use nudge_models::pipeline::Environment;
use nudge_models::profile::{Event, IDENTIFY_EVENT};
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;

/// 2026-11-23T10:00:00Z, a Monday morning (the demo's timezone is UTC).
const START: i64 = 1_795_428_000_000;

fn at(days: f64) -> Timestamp {
    #[allow(clippy::cast_possible_truncation)]
    Timestamp(START + (days * DAY_MS as f64) as i64)
}

struct Demo {
    catalog: Catalog,
    model: Model,
    budgets: BudgetCounters,
    state: CustomerState,
    events: u32,
    decisions: u32,
    /// (action, when) of every send that went out.
    sent: Vec<(String, Timestamp)>,
}

impl Demo {
    fn new() -> Self {
        Self {
            catalog: Catalog::from_toml(CATALOG_TOML).expect("the demo catalog"),
            model: Model::from_json(MODEL_JSON.as_bytes()).expect("the demo model"),
            budgets: BudgetCounters::default(),
            state: CustomerState::default(),
            events: 0,
            decisions: 0,
            sent: Vec::new(),
        }
    }

    fn with_host(
        &mut self,
        now: Timestamp,
        step: impl FnOnce(&mut CustomerJourneys, &Catalog, &mut PipelineHost<'_>) -> Outcome,
    ) -> Outcome {
        let mut journeys = std::mem::take(&mut self.state.journeys);
        let mut decisions = self.decisions;
        let mut new_decision_id = || {
            decisions += 1;
            format!("d{decisions}")
        };
        let mut host = PipelineHost {
            env: Environment {
                catalog: &self.catalog,
                model: Some(&self.model),
                budgets: &self.budgets,
            },
            state: &mut self.state,
            customer_id: "trialist",
            variant: "default",
            shadow: None,
            now,
            new_decision_id: &mut new_decision_id,
            sent: Vec::new(),
        };
        let outcome = step(&mut journeys, &self.catalog, &mut host);
        self.sent.extend(
            host.sent
                .iter()
                .map(|sent| (sent.decision.served[0].action_id.clone(), now)),
        );
        self.state.journeys = journeys;
        self.decisions = decisions;
        outcome
    }

    fn event_with(&mut self, name: &str, now: Timestamp, properties: &[(&str, AttrValue)]) {
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
        });
    }

    fn event(&mut self, name: &str, now: Timestamp) {
        self.event_with(name, now, &[]);
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
            self.with_host(due, |journeys, catalog, host| {
                journeys.on_time(&catalog.journeys, due, host)
            });
        }
        panic!("timers keep firing");
    }

    fn run(&self, journey: &str) -> &Run {
        self.state
            .journeys
            .runs
            .iter()
            .rev()
            .find(|run| run.journey == journey)
            .unwrap_or_else(|| panic!("no run of {journey}"))
    }

    fn steps_entered(&self, journey: &str) -> Vec<String> {
        self.run(journey)
            .history
            .iter()
            .filter_map(|entry| match &entry.what {
                Happened::Started { step, .. } => Some(step.clone()),
                Happened::Moved { to: Some(to), .. } => Some(to.clone()),
                _ => None,
            })
            .collect()
    }

    fn sent_actions(&self) -> Vec<&str> {
        self.sent
            .iter()
            .map(|(action, _)| action.as_str())
            .collect()
    }

    /// Starts a trial at `START`.
    fn start_trial(&mut self) {
        self.event_with(
            IDENTIFY_EVENT,
            at(0.0),
            &[("plan", AttrValue::Str("trial".to_owned()))],
        );
        self.event("trial_started", at(0.0));
    }
}

#[test]
fn the_trial_journey_walks_its_13_days_with_branches_taken_by_events() {
    let mut demo = Demo::new();
    demo.start_trial();
    // Day 0: the welcome in the onboarding sidebar.
    assert_eq!(demo.sent.len(), 1);
    let welcome = demo.sent[0].0.clone();
    let welcome_action = demo.catalog.action(&welcome).expect("a demo action");
    assert_eq!(welcome_action.channel, "in_app", "{welcome}");

    // Logged in that evening: no login reminder on day 1.
    demo.event("login", at(0.5));
    // No feature activated by day 3: the check-in email. Nobody invited by
    // day 7: the in-app nudge. One login in 7 days: low engagement, tips.
    // Day 10 the urgency email; day 13 waits for the next morning, when
    // the email cap (2 a week) is still full from days 7 and 10: the final
    // offer waits for the slot day 7's email frees.
    demo.run_until(at(20.0));
    assert_eq!(
        demo.steps_entered("trial_conversion"),
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
    let sent = demo.sent_actions();
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
    assert_eq!(demo.sent[1].1, at(3.0));
    assert_eq!(
        demo.sent[2].1,
        at(7.0),
        "the invite wait timed out on day 7"
    );
    assert_eq!(demo.sent[4].1, at(10.0));
    let run = demo.run("trial_conversion");
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
    let (final_action, final_at) = &demo.sent[5];
    assert_eq!(
        demo.catalog
            .action(final_action)
            .expect("an action")
            .channel,
        "email"
    );
    assert_eq!(*final_at, at(14.0));
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
    let mut demo = Demo::new();
    demo.start_trial();
    demo.run_until(at(5.0));
    let before = demo.sent.len();
    assert!(matches!(
        demo.run("trial_conversion").state,
        RunState::Waiting { .. } | RunState::WaitingFor { .. }
    ));
    demo.event(
        "subscription_started",
        at(5.0).plus(nudge_models::time::Span(HOUR_MS)),
    );
    assert_eq!(
        demo.run("trial_conversion").state,
        RunState::Ended {
            at: Timestamp(at(5.0).millis() + HOUR_MS),
            ending: Ending::Converted {
                event: "subscription_started".to_owned()
            }
        }
    );
    assert_eq!(demo.state.journeys.next_due(&demo.catalog.journeys), None);
    demo.run_until(at(30.0));
    assert_eq!(demo.sent.len(), before, "{:?}", demo.sent);
}

#[test]
fn churn_prevention_routes_a_paying_customer_by_risk_tier() {
    let tiers = [
        // (days since the last login, tickets in 30 days, the tier's step)
        (20.0, 1, "csm_call"),
        (1.0, 2, "usage_tips"),
        (1.0, 1, "feature_discovery"),
    ];
    for (away, tickets, expected) in tiers {
        let mut demo = Demo::new();
        let now = at(away);
        // The history, applied to the profile only (no journey sees it).
        let mut history = vec![(IDENTIFY_EVENT, at(0.0)), ("login", at(0.0))];
        history.extend((1..tickets).map(|_| ("support_ticket_opened", now)));
        for (index, (name, when)) in history.into_iter().enumerate() {
            let mut properties = BTreeMap::new();
            if name == IDENTIFY_EVENT {
                properties.insert("plan".to_owned(), AttrValue::Str("enterprise".to_owned()));
            }
            demo.state.track(
                &Event {
                    event_id: format!("h{index}"),
                    name: name.to_owned(),
                    timestamp: when,
                    properties,
                },
                when,
            );
        }
        // The ticket that triggers the journey.
        demo.event("support_ticket_opened", now);
        let steps = demo.steps_entered("churn_prevention");
        assert_eq!(
            steps[..2],
            ["risk_tier", expected],
            "away {away} d, {tickets} ticket(s)"
        );
        assert!(
            demo.catalog
                .journeys
                .version("churn_prevention", 1)
                .is_some(),
            "the demo's journeys are version 1"
        );
    }
}
