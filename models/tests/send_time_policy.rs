//! Send-time optimization under the catalog's policy: the engagements a
//! profile counts, the suggested time of an outbound action (quiet hours,
//! caps and blackout dates win over it), a journey send that waits for the
//! customer's best time, and `[send_time]`'s validation.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::journey::{
    CustomerJourneys, Happened, Outcome, PipelineHost, RunState, Versions,
};
use nudge_models::pipeline::{Environment, next_allowed, record};
use nudge_models::profile::{Event, IDENTIFY_EVENT};
use nudge_models::send_time::{
    HourOfWeek, Placement, PopulationClock, SendTime, record_engagement, suggest,
};
use nudge_models::time::{DAY_MS, HOUR_MS, Span, Timestamp};
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;

/// 2026-12-07T00:00:00Z, a Monday.
const MONDAY: i64 = 1_796_601_600_000;

const CATALOG: &str = r#"
[catalog]
name = "send times"
timezone = "UTC"
events = ["signed_up", "email_opened"]

[channels.email]
quiet_hours = { start = "21:00", end = "08:00" }
[channels.in_app]

[[actions]]
id = "digest"
channel = "email"
category = "news"

[[actions]]
id = "banner"
channel = "in_app"
category = "news"

[placements.inbox]
channels = ["email", "in_app"]
slots = 2
fallback = ["digest", "banner"]

[[caps]]
scope = "channel"
channel = "email"
limit = 1
window = "7d"

[send_time]
channels = ["email"]
engagement_events = ["email_opened"]

[[journeys]]
id = "welcome"
trigger = { event = "signed_up" }

[[journeys.steps]]
id = "hello"
send = { action = "digest", at = "best_time", within = "24h" }
"#;

/// The digest's suggested send time at `now` with no population data.
fn suggest_digest(catalog: &Catalog, state: &CustomerState, now: Timestamp) -> SendTime {
    let digest = catalog.action("digest").expect("digest");
    suggest(
        catalog,
        state,
        digest,
        &PopulationClock::default(),
        now,
        None,
    )
    .expect("email is a send-time channel")
}

fn catalog() -> Catalog {
    Catalog::from_toml(CATALOG).unwrap_or_else(|problems| panic!("{problems}"))
}

fn at_hour(day: i64, hour: i64) -> Timestamp {
    Timestamp(MONDAY + day * DAY_MS + hour * HOUR_MS)
}

/// A customer in `timezone` who engaged at `hours` (UTC hours of the
/// day) on each of the two weeks before Monday.
fn customer(catalog: &Catalog, timezone: &str, hours: &[i64]) -> CustomerState {
    let mut state = CustomerState::default();
    let mut identify = Event {
        event_id: "identify".to_owned(),
        name: IDENTIFY_EVENT.to_owned(),
        timestamp: at_hour(-14, 0),
        properties: BTreeMap::new(),
    };
    identify
        .properties
        .insert("timezone".to_owned(), AttrValue::from(timezone));
    state.track(&identify, at_hour(-14, 0));
    for day in -14..0 {
        for hour in hours {
            record_engagement(catalog, &mut state.profile, at_hour(day, *hour))
                .expect("the catalog has [send_time]");
        }
    }
    state
}

#[test]
fn a_customer_who_engages_in_the_evening_gets_an_evening_send_time() {
    let catalog = catalog();
    let state = customer(&catalog, "UTC", &[18]);
    let digest = catalog.action("digest").expect("digest");
    let suggested = suggest(
        &catalog,
        &state,
        digest,
        &PopulationClock::default(),
        at_hour(0, 9),
        None,
    )
    .expect("email is a send-time channel");
    assert_eq!(suggested.at, at_hour(0, 18));
    assert_eq!(
        suggested.hour,
        HourOfWeek::from_day_and_hour(0, 18).expect("an hour")
    );
    assert_eq!(suggested.placement, Placement::Best);
    // In-app is not a send-time channel.
    let banner = catalog.action("banner").expect("banner");
    assert!(
        suggest(
            &catalog,
            &state,
            banner,
            &PopulationClock::default(),
            at_hour(0, 9),
            None
        )
        .is_none()
    );
}

#[test]
fn quiet_hours_override_the_suggested_time() {
    let catalog = catalog();
    // Engages at 21:00–23:00 local, all inside email's quiet hours
    // (21:00–08:00), in Berlin (UTC+1 in December).
    let state = customer(&catalog, "Europe/Berlin", &[20, 21, 22]);
    let digest = catalog.action("digest").expect("digest");
    let now = at_hour(0, 9);
    let suggested = suggest_digest(&catalog, &state, now);
    let local = HourOfWeek::of(suggested.at, "Europe/Berlin".parse().expect("a timezone"));
    assert!(
        (8..21).contains(&local.hour_of_day()),
        "{local} is inside the quiet hours"
    );
    assert!(
        matches!(suggested.placement, Placement::Moved { .. }),
        "{suggested:?}"
    );
    // The nearest open hour to the habit: 20:00 local.
    assert_eq!(local.hour_of_day(), 20);
    assert_eq!(
        next_allowed(&catalog, &state, digest, suggested.at),
        Some(suggested.at)
    );
}

#[test]
fn a_full_cap_moves_the_suggestion_to_the_moment_it_frees() {
    let catalog = catalog();
    let mut state = customer(&catalog, "UTC", &[18]);
    // An email went out Saturday at 10:00: the weekly cap is full until the
    // next Saturday 10:00, past the 24-hour window.
    let sent_at = at_hour(-2, 10);
    let environment = Environment {
        catalog: &catalog,
        model: None,
        budgets: &BudgetCounters::default(),
    };
    let decision = nudge_models::pipeline::decide(
        &environment,
        &state,
        &nudge_models::pipeline::DecisionRequest {
            placement: "inbox",
            context: &BTreeMap::new(),
            candidates: &["digest".to_owned()],
            limit: 1,
            dry_run: false,
            scoring: nudge_models::pipeline::Scoring::Model,
            seed: 1,
            now: sent_at,
        },
    )
    .expect("decides");
    assert_eq!(decision.served.len(), 1);
    record(&mut state, "d1", &decision, &catalog, sent_at);
    let digest = catalog.action("digest").expect("digest");
    let now = at_hour(0, 9);
    let suggested = suggest_digest(&catalog, &state, now);
    assert_eq!(suggested.placement, Placement::AfterWindow);
    assert_eq!(
        Some(suggested.at),
        next_allowed(&catalog, &state, digest, now)
    );
    assert_eq!(suggested.at, at_hour(5, 10));
}

#[test]
fn without_history_the_population_s_best_hour_is_suggested() {
    let catalog = catalog();
    let state = customer(&catalog, "UTC", &[]);
    let mut population = PopulationClock::default();
    for day in 0..7 {
        for _ in 0..50 {
            population.record(HourOfWeek::from_day_and_hour(day, 12).expect("an hour"));
        }
    }
    let digest = catalog.action("digest").expect("digest");
    let suggested =
        suggest(&catalog, &state, digest, &population, at_hour(0, 9), None).expect("a moment");
    assert_eq!(suggested.at, at_hour(0, 12));
}

#[test]
fn engagements_count_only_with_a_send_time_table() {
    let without = Catalog::from_toml(
        &CATALOG
            .replace(
                "[send_time]\nchannels = [\"email\"]\nengagement_events = [\"email_opened\"]\n",
                "",
            )
            .replace(", at = \"best_time\", within = \"24h\"", ""),
    )
    .unwrap_or_else(|problems| panic!("{problems}"));
    let mut state = CustomerState::default();
    assert_eq!(
        record_engagement(&without, &mut state.profile, at_hour(0, 9)),
        None
    );
    assert!(state.profile.send_times.is_empty());
    let catalog = catalog();
    assert!(record_engagement(&catalog, &mut state.profile, at_hour(0, 9)).is_some());
    assert_eq!(state.profile.send_times.total(), 1);
}

/// Runs the customer's journeys with the pipeline as host; returns what
/// went out.
fn run_journeys(
    catalog: &Catalog,
    state: &mut CustomerState,
    now: Timestamp,
    step: impl FnOnce(&mut CustomerJourneys, &Catalog, &mut PipelineHost<'_>) -> Outcome,
) -> Vec<String> {
    let budgets = BudgetCounters::default();
    let population = PopulationClock::default();
    let mut journeys = std::mem::take(&mut state.journeys);
    let mut next_id = 0;
    let mut new_decision_id = || {
        next_id += 1;
        format!("j{next_id}")
    };
    let mut host = PipelineHost {
        env: Environment {
            catalog,
            model: None,
            budgets: &budgets,
        },
        state,
        customer_id: "c",
        variant: "control",
        shadow: None,
        now,
        new_decision_id: &mut new_decision_id,
        population: &population,
        sent: Vec::new(),
    };
    step(&mut journeys, catalog, &mut host);
    let sent = host
        .sent
        .iter()
        .map(|sent| sent.decision.served[0].action_id.clone())
        .collect();
    state.journeys = journeys;
    sent
}

#[test]
fn a_journey_send_at_best_time_waits_for_the_customer_s_hour() {
    let catalog = catalog();
    let mut state = customer(&catalog, "UTC", &[18]);
    let signed_up = Event {
        event_id: "s".to_owned(),
        name: "signed_up".to_owned(),
        timestamp: at_hour(0, 9),
        properties: BTreeMap::new(),
    };
    let now = at_hour(0, 9);
    state.track(&signed_up, now);
    let sent = run_journeys(&catalog, &mut state, now, |journeys, catalog, host| {
        journeys.on_event(
            &catalog.journeys,
            &catalog.journeys as &dyn Versions,
            &catalog.journey_policy,
            &signed_up,
            now,
            host,
        )
    });
    assert!(sent.is_empty(), "nothing goes before the best time");
    let run = &state.journeys.runs[0];
    assert!(
        matches!(run.state, RunState::Deferred { until, .. } if until == at_hour(0, 18)),
        "{:?}",
        run.state
    );
    let deferral = run
        .history
        .iter()
        .find_map(|entry| match &entry.what {
            Happened::Deferred { cause, reason, .. } => Some((cause.clone(), reason.clone())),
            _ => None,
        })
        .expect("the wait is in the history");
    assert_eq!(deferral.0, "best_time");
    assert!(deferral.1.contains("18:00"), "{}", deferral.1);
    assert_eq!(
        state.journeys.next_due(&catalog.journeys),
        Some(at_hour(0, 18))
    );

    // At 18:00 the send goes through the pipeline.
    let later = at_hour(0, 18);
    let sent = run_journeys(&catalog, &mut state, later, |journeys, catalog, host| {
        journeys.on_time(&catalog.journeys, later, host)
    });
    assert_eq!(sent, ["digest"]);
}

#[test]
fn send_time_declarations_are_checked() {
    let base = CATALOG.replace(
        "[send_time]\nchannels = [\"email\"]\nengagement_events = [\"email_opened\"]\n",
        "",
    );
    let cases: &[(&str, &str)] = &[
        (&base, "send.at: \"best_time\" needs a [send_time] table"),
        (
            &CATALOG.replace(
                "channels = [\"email\"]\nengagement",
                "channels = [\"fax\"]\nengagement",
            ),
            "send_time.channels[0]: channel 'fax' is not declared",
        ),
        (
            &CATALOG.replace("at = \"best_time\", within = \"24h\"", "within = \"24h\""),
            "`within` goes with `at = \"best_time\"`",
        ),
        (
            &CATALOG.replace("at = \"best_time\"", "at = \"soon\""),
            "'soon' is not \"now\" or \"best_time\"",
        ),
        (
            &CATALOG.replace("within = \"24h\"", "within = \"60d\""),
            "within: must be more than 0 and at most",
        ),
        (
            &CATALOG.replace(
                "engagement_events = [\"email_opened\"]",
                "engagement_events = [\"email_opened\"]\nprior_strength = -1.0",
            ),
            "send_time.prior_strength",
        ),
    ];
    for (text, expected) in cases {
        let problems = Catalog::from_toml(text).expect_err("refused").to_string();
        assert!(
            problems.contains(expected),
            "want {expected:?} in {problems}"
        );
    }
    let _ = Span::hours(1);
}
