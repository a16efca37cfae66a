//! A profile score's rows from the event log (`nudge train --score`): the
//! leak test (no feature at a cut-off reads an event applied after it, the
//! label reads only the horizon after it), on random logs and by hand;
//! cut-offs, censoring at the end of the data, customers left out from
//! their first label event on, refused features, incomplete histories, the
//! row cap, the default features, and a churn model trained on the rows.

use chrono::{TimeZone as _, Utc};
use nudge_models::features::{FeatureInput, FeatureSet};
use nudge_models::log::EventRecord;
use nudge_models::profile::{Event as ProfileEvent, Profile};
use nudge_models::time::{Span, Timestamp};
use nudge_models::value::AttrValue;
use nudge_training::score::{self, Example, ScoreOptions, ScoreSummary};
use nudge_training::{Error, Event, Silent, TrainOptions, train};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::{BTreeMap, BTreeSet};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// A midnight, UTC (2026-12-13).
const T0: i64 = 20_800 * DAY;
const LABEL: &str = "subscription_cancelled";

/// Every kind of term a score trained from events may read.
const FEATURES: [&str; 12] = [
    "count(login,1d)",
    "count(login,7d)",
    "log_count(login,30d)",
    "days_since(login)",
    "days_since(report_created)",
    "count(support_ticket_opened,30d)",
    "tenure_days",
    "attr(seats)",
    "is(plan,pro)",
    "is_none_of(plan,pro)",
    "count(login,7d) * is(plan,pro)",
    "days_since(subscription_cancelled)",
];

fn features() -> FeatureSet {
    FeatureSet::parse(&FEATURES).expect("valid specs")
}

fn options(horizon_days: i64) -> ScoreOptions {
    ScoreOptions::new("churn_risk", LABEL, Span::days(horizon_days))
}

/// One applied event.
fn record(customer: &str, ordinal: u64, received: i64, name: &str, at: i64) -> EventRecord {
    EventRecord {
        customer_id: customer.to_owned(),
        ordinal,
        received_at: Timestamp::from_millis(received),
        event: ProfileEvent {
            event_id: format!("{customer}-{ordinal}"),
            name: name.to_owned(),
            timestamp: Timestamp::from_millis(at),
            properties: BTreeMap::new(),
        },
    }
}

/// One customer's events, numbered as the service numbers them.
struct History {
    customer: String,
    events: Vec<EventRecord>,
}

impl History {
    fn new(customer: &str) -> Self {
        Self {
            customer: customer.to_owned(),
            events: Vec::new(),
        }
    }

    /// An event applied at `received` that happened at `at`.
    fn late(&mut self, name: &str, received: i64, at: i64) -> &mut EventRecord {
        let ordinal = self.events.len() as u64 + 1;
        self.events
            .push(record(&self.customer, ordinal, received, name, at));
        self.events.last_mut().expect("just pushed")
    }

    /// An event applied as it happened.
    fn at(&mut self, name: &str, at: i64) -> &mut EventRecord {
        self.late(name, at, at)
    }
}

fn examples(events: &[EventRecord], options: &ScoreOptions) -> (Vec<Example>, ScoreSummary) {
    score::examples("events.parquet", events, &features(), options, &mut Silent)
        .expect("rows are built")
}

/// The features at `cut_off` the slow way: the customer's events applied by
/// then, replayed from scratch, then evaluated at the cut-off.
fn truncated_features(events: &[EventRecord], customer: &str, cut_off: i64) -> Vec<f64> {
    let mut applied: Vec<&EventRecord> = events
        .iter()
        .filter(|event| event.customer_id == customer && event.received_at.millis() <= cut_off)
        .collect();
    applied.sort_by_key(|event| event.ordinal);
    let mut profile = Profile::default();
    for event in applied {
        profile.apply_event(&event.event, event.received_at);
    }
    features().customer_factors(&FeatureInput {
        profile: &profile,
        context: &BTreeMap::new(),
        now: Timestamp::from_millis(cut_off),
    })
}

/// Whether the customer had the label event in `(cut_off, cut_off + horizon]`.
fn labelled(events: &[EventRecord], customer: &str, cut_off: i64, horizon: i64) -> bool {
    events.iter().any(|event| {
        event.customer_id == customer
            && event.event.name == LABEL
            && event.event.timestamp.millis() > cut_off
            && event.event.timestamp.millis() <= cut_off + horizon
    })
}

/// The rows the rules allow, the slow way: every midnight from the first
/// applied event, whose horizon ends by `until`, before any label event
/// happened or was applied; and the censored cut-offs (horizon past
/// `until`, otherwise eligible).
fn expected_rows(
    events: &[EventRecord],
    horizon: i64,
    until: i64,
) -> (BTreeSet<(String, i64)>, usize) {
    let customers: BTreeSet<&str> = events.iter().map(|e| e.customer_id.as_str()).collect();
    let mut rows = BTreeSet::new();
    let mut censored = 0;
    for customer in customers {
        let mine: Vec<&EventRecord> = events
            .iter()
            .filter(|event| event.customer_id == customer)
            .collect();
        let first = mine
            .iter()
            .find(|event| event.ordinal == 1)
            .map(|event| event.received_at.millis())
            .expect("a first event");
        let mut cut_off = first.div_euclid(DAY) * DAY;
        if cut_off < first {
            cut_off += DAY;
        }
        while cut_off <= until {
            let churned = mine.iter().any(|event| {
                event.event.name == LABEL
                    && (event.event.timestamp.millis() <= cut_off
                        || event.received_at.millis() <= cut_off)
            });
            if !churned {
                if cut_off + horizon <= until {
                    rows.insert((customer.to_owned(), cut_off));
                } else {
                    censored += 1;
                }
            }
            cut_off += DAY;
        }
    }
    (rows, censored)
}

/// A random log: a few customers, logins and other events at random
/// moments, some arriving late, identify with a plan and seats, and now
/// and then a cancellation (sometimes followed by a return).
fn random_log(rng: &mut SmallRng, customers: usize, from: i64, to: i64) -> Vec<EventRecord> {
    let mut events = Vec::new();
    for number in 0..customers {
        let mut history = History::new(&format!("c{number}"));
        let mut received = from + rng.random_range(0..10 * DAY);
        while received < to {
            append_random(rng, &mut history, received);
            received += rng.random_range(HOUR..2 * DAY);
        }
        events.extend(history.events);
    }
    events
}

/// One random event applied at `received`.
fn append_random(rng: &mut SmallRng, history: &mut History, received: i64) {
    let name = match rng.random_range(0..40) {
        0..=17 => "login",
        18..=23 => "report_created",
        24..=27 => "support_ticket_opened",
        28..=31 => "identify",
        32 => LABEL,
        _ => "page_view",
    };
    let lateness = if rng.random_bool(0.3) {
        rng.random_range(0..3 * DAY)
    } else {
        0
    };
    let event = history.late(name, received, received - lateness);
    if name == "identify" {
        let plan = ["trial", "pro", "enterprise"][rng.random_range(0..3)];
        event
            .event
            .properties
            .insert("plan".to_owned(), AttrValue::Str(plan.to_owned()));
        event.event.properties.insert(
            "seats".to_owned(),
            AttrValue::Num(f64::from(rng.random_range(1..50_u32))),
        );
    }
}

#[test]
fn features_at_a_cut_off_are_those_of_the_log_truncated_there() {
    let mut rng = SmallRng::seed_from_u64(11);
    let mut compared = 0;
    for case in 0..40 {
        let events = random_log(&mut rng, 5, T0, T0 + 60 * DAY);
        let horizon = rng.random_range(1..15) * DAY;
        let until = T0 + 60 * DAY + rng.random_range(0..DAY);
        let options = ScoreOptions {
            until: Some(Timestamp::from_millis(until)),
            ..options(horizon / DAY)
        };
        let (rows, summary) = examples(&events, &options);
        // Exactly the rows the rules allow, no more: censoring and
        // exclusion included.
        let (expected, censored) = expected_rows(&events, horizon, until);
        let got: BTreeSet<(String, i64)> = rows
            .iter()
            .map(|row| (row.customer.clone(), row.cut_off.millis()))
            .collect();
        assert_eq!(got, expected, "case {case}");
        assert_eq!(rows.len(), expected.len(), "case {case}: one row each");
        assert_eq!(summary.censored, censored, "case {case}");
        for row in &rows {
            let cut_off = row.cut_off.millis();
            assert!(cut_off + horizon <= until, "case {case}: censored");
            assert_eq!(cut_off.rem_euclid(DAY), 0, "case {case}: a midnight");
            assert_eq!(
                row.features,
                truncated_features(&events, &row.customer, cut_off),
                "case {case}: {} at {}",
                row.customer,
                row.cut_off
            );
            assert_eq!(
                row.label,
                labelled(&events, &row.customer, cut_off, horizon),
                "case {case}: {} at {}",
                row.customer,
                row.cut_off
            );
            compared += 1;
        }
        // In cut-off order, then customer.
        assert!(
            rows.windows(2)
                .all(|pair| (pair[0].cut_off, &pair[0].customer)
                    < (pair[1].cut_off, &pair[1].customer)),
            "case {case}: ordered"
        );
    }
    assert!(compared > 1_000, "enough rows compared: {compared}");
}

/// The customer's events applied after `after` replaced by other random
/// ones (names, times, properties, how many: anything, the label event
/// included), numbered on from the kept ones.
fn rewrite_after(
    rng: &mut SmallRng,
    events: &[EventRecord],
    after: i64,
    to: i64,
) -> Vec<EventRecord> {
    let customers: BTreeSet<&str> = events.iter().map(|e| e.customer_id.as_str()).collect();
    let mut rewritten = Vec::new();
    for customer in customers {
        let mut history = History::new(customer);
        let mut kept: Vec<&EventRecord> = events
            .iter()
            .filter(|e| e.customer_id == customer && e.received_at.millis() <= after)
            .collect();
        kept.sort_by_key(|event| event.ordinal);
        history.events = kept.into_iter().cloned().collect();
        let mut received = after + rng.random_range(1..DAY);
        while received < to && rng.random_bool(0.95) {
            append_random(rng, &mut history, received);
            received += rng.random_range(HOUR..3 * DAY);
        }
        rewritten.extend(history.events);
    }
    rewritten
}

#[test]
fn no_feature_changes_when_events_after_the_cut_off_change() {
    let mut rng = SmallRng::seed_from_u64(12);
    let mut compared = 0;
    for case in 0..40 {
        let until = T0 + 70 * DAY;
        let events = random_log(&mut rng, 5, T0, until);
        let after = T0 + rng.random_range(5..50) * DAY + rng.random_range(0..DAY);
        let other = rewrite_after(&mut rng, &events, after, until);
        let options = ScoreOptions {
            until: Some(Timestamp::from_millis(until)),
            ..options(rng.random_range(1..10))
        };
        let (rows, _) = examples(&events, &options);
        let (other_rows, _) = examples(&other, &options);
        let by_key: BTreeMap<(&str, i64), &Example> = rows
            .iter()
            .map(|row| ((row.customer.as_str(), row.cut_off.millis()), row))
            .collect();
        for row in other_rows
            .iter()
            .filter(|row| row.cut_off.millis() <= after)
        {
            // A rewritten late cancellation may end a customer's rows
            // earlier (they had churned by then): the rows both logs have
            // must agree on every feature.
            if let Some(original) = by_key.get(&(row.customer.as_str(), row.cut_off.millis())) {
                assert_eq!(
                    row.features,
                    original.features,
                    "case {case}: {} at {} (events rewritten after {})",
                    row.customer,
                    row.cut_off,
                    Timestamp::from_millis(after)
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 500, "enough rows compared: {compared}");
}

#[test]
fn labels_read_only_the_label_event_within_the_horizon() {
    let mut rng = SmallRng::seed_from_u64(13);
    let mut compared = 0;
    for case in 0..40 {
        let until = T0 + 60 * DAY;
        let events = random_log(&mut rng, 5, T0, until);
        let options = ScoreOptions {
            until: Some(Timestamp::from_millis(until)),
            ..options(7)
        };
        // Other events dropped at random (the first of each customer kept,
        // so the cut-offs start where they did), renumbered.
        let mut thinned = Vec::new();
        let mut numbers: BTreeMap<String, u64> = BTreeMap::new();
        for event in &events {
            if event.event.name == LABEL || event.ordinal == 1 || rng.random_bool(0.5) {
                let number = numbers.entry(event.customer_id.clone()).or_insert(0);
                *number += 1;
                let mut kept = event.clone();
                kept.ordinal = *number;
                thinned.push(kept);
            }
        }
        let (rows, _) = examples(&events, &options);
        let (thinned_rows, _) = examples(&thinned, &options);
        let labels = |rows: &[Example]| -> Vec<(String, i64, bool)> {
            rows.iter()
                .map(|row| (row.customer.clone(), row.cut_off.millis(), row.label))
                .collect()
        };
        assert_eq!(labels(&rows), labels(&thinned_rows), "case {case}");
        compared += rows.len();
    }
    assert!(compared > 1_000, "enough rows compared: {compared}");
}

#[test]
fn the_horizon_is_after_the_cut_off_and_includes_its_end() {
    let mut history = History::new("c");
    history.at("login", T0 + 10 * HOUR);
    for day in 1..10 {
        history.at("login", T0 + day * DAY + 9 * HOUR);
    }
    // Cancelled exactly at midnight, day 10: 7 days after day 3's cut-off.
    history.at(LABEL, T0 + 10 * DAY);
    history.at("login", T0 + 30 * DAY);
    let (rows, summary) = examples(&history.events, &options(7));
    let labels: Vec<(i64, bool)> = rows
        .iter()
        .map(|row| ((row.cut_off.millis() - T0) / DAY, row.label))
        .collect();
    // Day 10's own cut-off sees the cancellation (at the cut-off): no row.
    assert_eq!(
        labels,
        vec![
            (1, false),
            (2, false),
            (3, true),
            (4, true),
            (5, true),
            (6, true),
            (7, true),
            (8, true),
            (9, true),
        ]
    );
    // Days 10 to 23 (the last whose 7 days end by day 30) left out.
    assert_eq!(summary.excluded_after_label, 14);
    assert_eq!(summary.last_cut_off, Timestamp::from_millis(T0 + 23 * DAY));
    assert_eq!(summary.labelled_customers, 1);
}

#[test]
fn cut_offs_are_the_midnights_from_the_first_event_to_the_last_observed_horizon() {
    let mut history = History::new("c");
    for day in 0..=40 {
        history.at("login", T0 + day * DAY + 10 * HOUR);
    }
    let (rows, summary) = examples(&history.events, &options(7));
    let days: Vec<i64> = rows
        .iter()
        .map(|row| (row.cut_off.millis() - T0) / DAY)
        .collect();
    // The data ends on day 40 at 10:00: day 33's horizon is the last whole.
    assert_eq!(days, (1..=33).collect::<Vec<_>>());
    assert_eq!(
        summary.until,
        Timestamp::from_millis(T0 + 40 * DAY + 10 * HOUR)
    );
    assert_eq!(summary.censored, 7, "days 34 to 40");
    assert_eq!(
        (summary.cut_offs, summary.rows, summary.positives),
        (33, 33, 0)
    );
    // The features at day 5: the logins of days 0 to 4, the last 14 hours ago.
    let day5 = &rows[4];
    assert_eq!(day5.features[1], 5.0, "count(login,7d)");
    assert!(
        (day5.features[3] - 14.0 / 24.0).abs() < 1e-9,
        "days_since(login)"
    );

    // Every 12 hours, from 3 days in.
    let twice = ScoreOptions {
        cadence: Span::hours(12),
        min_history: Span::days(3),
        ..options(7)
    };
    let (rows, _) = examples(&history.events, &twice);
    let first = rows.first().expect("rows").cut_off.millis();
    let last = rows.last().expect("rows").cut_off.millis();
    assert_eq!(first, T0 + 3 * DAY + 12 * HOUR);
    assert_eq!(last, T0 + 33 * DAY);
    assert_eq!(rows.len(), 60);
}

#[test]
fn a_customer_has_no_row_from_their_first_label_event_on() {
    let mut history = History::new("c");
    for day in 0..20 {
        history.at("login", T0 + day * DAY + 9 * HOUR);
    }
    history.at(LABEL, T0 + 20 * DAY + 15 * HOUR);
    // Back, and cancelling again: no row either.
    for day in 25..60 {
        if day == 40 {
            history.at(LABEL, T0 + 40 * DAY);
        }
        history.at("login", T0 + day * DAY + 9 * HOUR);
    }
    let (rows, summary) = examples(&history.events, &options(7));
    let positives: Vec<i64> = rows
        .iter()
        .filter(|row| row.label)
        .map(|row| (row.cut_off.millis() - T0) / DAY)
        .collect();
    assert_eq!(rows.len(), 20, "days 1 to 20");
    assert_eq!(positives, (14..=20).collect::<Vec<_>>());
    // Days 21 to 52 (the data ends on day 59 at 09:00).
    assert_eq!(summary.excluded_after_label, 32);
    assert_eq!(summary.censored, 0);

    // A cancellation that arrived late still ends the rows where it happened:
    // the customer had gone, whatever the service knew.
    let mut late = History::new("c");
    for day in 0..30 {
        late.at("login", T0 + day * DAY + 9 * HOUR);
    }
    late.late(LABEL, T0 + 30 * DAY, T0 + 12 * DAY + HOUR);
    late.at("login", T0 + 50 * DAY);
    let (rows, _) = examples(&late.events, &options(7));
    assert_eq!(
        rows.last().map(|row| row.cut_off),
        Some(Timestamp::from_millis(T0 + 12 * DAY))
    );
    assert!(rows.last().is_some_and(|row| row.label));
}

#[test]
fn features_an_event_log_cannot_rebuild_are_refused_naming_them() {
    let mut history = History::new("c");
    history.at("login", T0);
    history.at("login", T0 + 30 * DAY);
    for (spec, reason) in [
        ("ctx(hour_of_day)", "request context"),
        ("ctx_is(device,mobile)", "request context"),
        ("category(upsell) * is(plan,pro)", "the action"),
        ("action(upgrade_offer)", "the action"),
        ("action_value", "the action"),
        (
            "score(adoption)",
            "scores at past cut-offs are not in the event log",
        ),
        (
            "tier(churn,high)",
            "tiers at past cut-offs are not in the event log",
        ),
        (
            "click_rate(email)",
            "engagement at past cut-offs is not in the event log",
        ),
    ] {
        let features = FeatureSet::parse(&["count(login,7d)", spec]).expect("a valid spec");
        for error in [
            score::check_features("churn_risk", &features).expect_err("refused"),
            score::examples(
                "events.parquet",
                &history.events,
                &features,
                &options(7),
                &mut Silent,
            )
            .expect_err("refused"),
        ] {
            assert!(matches!(error, Error::ScoreFeature { .. }), "{error}");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!(
                    "'{}' cannot be a feature of score churn_risk: ",
                    features.specs()[1]
                )),
                "{message}"
            );
            assert!(message.contains(reason), "{message}");
        }
    }
}

#[test]
fn incomplete_histories_are_left_out_and_counted() {
    let mut whole = History::new("a");
    let mut truncated = History::new("b");
    let mut gap = History::new("c");
    for day in 0..20 {
        whole.at("login", T0 + day * DAY);
        truncated.at("login", T0 + day * DAY);
        gap.at("login", T0 + day * DAY);
    }
    truncated.events.remove(0);
    gap.events.remove(5);
    let events: Vec<EventRecord> = [whole.events, truncated.events, gap.events].concat();
    let (rows, summary) = examples(&events, &options(7));
    assert!(rows.iter().all(|row| row.customer == "a"));
    assert_eq!((summary.customers, summary.skipped_incomplete), (3, 2));
    assert_eq!(
        summary.incomplete_reason.as_deref(),
        Some(
            "customer b: the events start at number 2, not 1 (older events were deleted by retention or left out of the export)"
        )
    );

    // Nothing left to learn from: an error naming the export.
    let error = score::examples(
        "events.parquet",
        &events[..3],
        &features(),
        &options(7),
        &mut Silent,
    )
    .expect_err("no row");
    assert!(
        error.to_string().starts_with(
            "events.parquet: no customer has a cut-off whose 7d horizon ends by the end of the data"
        ),
        "{error}"
    );
    let error = score::examples("events.parquet", &[], &features(), &options(7), &mut Silent)
        .expect_err("no row");
    assert_eq!(error.to_string(), "events.parquet: the event log is empty");
}

#[test]
fn the_row_cap_thins_evenly_over_customers_and_their_days() {
    let mut events = Vec::new();
    for number in 0..10 {
        let mut history = History::new(&format!("c{number}"));
        for day in 0..=57 {
            history.at("login", T0 + day * DAY + HOUR);
        }
        events.extend(history.events);
    }
    let all = examples(&events, &options(7)).0;
    assert_eq!(all.len(), 500, "50 cut-offs each");
    let capped_options = ScoreOptions {
        max_rows: 100,
        ..options(7)
    };
    let mut progress = Vec::new();
    let (capped, summary) = score::examples(
        "events.parquet",
        &events,
        &features(),
        &capped_options,
        &mut |event: &Event| progress.push(event.clone()),
    )
    .expect("rows");
    assert_eq!((summary.cut_offs, summary.rows), (500, 100));
    assert_eq!(
        progress,
        vec![Event::Replayed {
            customers: 10,
            of: 10,
            rows: 100
        }]
    );
    let mut per_customer: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for row in &capped {
        per_customer
            .entry(&row.customer)
            .or_default()
            .push((row.cut_off.millis() - T0) / DAY);
        // A kept row is the row the whole set has.
        let whole = all
            .iter()
            .find(|other| other.customer == row.customer && other.cut_off == row.cut_off)
            .expect("a row of the whole set");
        assert_eq!(whole, row);
    }
    for (customer, mut days) in per_customer {
        days.sort_unstable();
        assert_eq!(days, (1..=50).step_by(5).collect::<Vec<_>>(), "{customer}");
    }
    assert!(
        capped
            .windows(2)
            .all(|pair| pair[0].cut_off <= pair[1].cut_off)
    );
}

#[test]
fn default_features_come_from_the_events_and_attributes_of_the_log() {
    let mut events = Vec::new();
    for number in 0..12 {
        let mut history = History::new(&format!("c{number}"));
        let identify = history.at("identify", T0);
        let plan = match number {
            0..=5 => "trial",
            6..=10 => "pro",
            _ => "enterprise",
        };
        for (name, value) in [
            ("plan", AttrValue::Str(plan.to_owned())),
            ("seats", AttrValue::Num(f64::from(number))),
            ("vip", AttrValue::Bool(number % 2 == 0)),
            ("email", AttrValue::Str(format!("c{number}@example.com"))),
            (
                "signup_at",
                AttrValue::Str("2026-11-01T00:00:00Z".to_owned()),
            ),
            ("odd,name", AttrValue::Num(1.0)),
        ] {
            identify.event.properties.insert(name.to_owned(), value);
        }
        history.at("login", T0 + HOUR);
        if number < 5 {
            history.at("report_created", T0 + 2 * HOUR);
        }
        if number < 4 {
            // Too few customers.
            history.at("invite_sent", T0 + 2 * HOUR);
        }
        if number < 6 {
            history.at(LABEL, T0 + 3 * HOUR);
        }
        // After the last cut-off: no row sees it.
        history.at("late_feature_seen", T0 + 39 * DAY);
        history.at("login", T0 + 40 * DAY);
        events.extend(history.events);
    }
    let features = score::default_features(&events, &options(7));
    assert_eq!(
        features,
        [
            "days_since(login)",
            "log_count(login,7d)",
            "log_count(login,30d)",
            "days_since(report_created)",
            "log_count(report_created,7d)",
            "log_count(report_created,30d)",
            "tenure_days",
            "is(plan,pro)",
            "is(plan,trial)",
            "is_none_of(plan,pro|trial)",
            "attr(seats)",
            "attr(vip)",
        ]
    );
    let parsed = FeatureSet::parse(&features).expect("valid specs");
    score::check_features("churn_risk", &parsed).expect("a score may read them");
}

/// A churn world: every customer logs in most days while engaged; some stop
/// at a random day and cancel 5 to 20 days later; trial customers stop more
/// often.
fn churn_world(seed: u64, customers: usize, days: i64) -> Vec<EventRecord> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut events = Vec::new();
    for number in 0..customers {
        let mut history = History::new(&format!("c{number:04}"));
        let start = rng.random_range(0..10) * DAY + rng.random_range(0..DAY);
        let trial = rng.random_bool(0.4);
        let identify = history.at("identify", T0 + start);
        identify.event.properties.insert(
            "plan".to_owned(),
            AttrValue::Str(if trial { "trial" } else { "pro" }.to_owned()),
        );
        let leaves = rng.random_bool(if trial { 0.6 } else { 0.3 });
        let stop = if leaves {
            start + rng.random_range(10..days) * DAY
        } else {
            i64::MAX
        };
        let cancel = stop.saturating_add(rng.random_range(5..20) * DAY);
        let mut at = start + HOUR;
        while at < days * DAY {
            if at >= cancel {
                history.at(LABEL, T0 + cancel);
                break;
            }
            if at < stop && rng.random_bool(0.8) {
                history.at("login", T0 + at);
            }
            at += DAY;
        }
        events.extend(history.events);
    }
    events
}

#[test]
fn a_churn_model_trained_on_the_rows_ranks_the_leavers_first() {
    let events = churn_world(21, 150, 100);
    let options = options(14);
    let features = FeatureSet::parse(&score::default_features(&events, &options))
        .expect("valid default features");
    let (dataset, summary) =
        score::dataset("events.parquet", &events, &features, &options, &mut Silent).expect("rows");
    assert!(summary.positives > 200, "{summary:?}");
    assert!(dataset.action_ids.is_none() && dataset.propensities.is_none());
    assert!(dataset.choices.is_err(), "no off-policy evaluation");
    let times = dataset.times.as_ref().expect("cut-off times");
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
    let now = Utc
        .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let trained = train(&dataset, &TrainOptions::new(now), &mut Silent).expect("trains");
    assert!(
        trained.report.auc > 0.75,
        "holdout auc {}",
        trained.report.auc
    );
    eprintln!("holdout auc {}", trained.report.auc);
    assert_eq!(
        score::default_version("churn_risk", now),
        "churn_risk-20261201T1200"
    );
    let description = score::describe(&options, &summary, &trained.artifact.description);
    assert!(
        description.starts_with("the churn_risk profile score's model: the probability of subscription_cancelled within 14d after a cut-off"),
        "{description}"
    );
}
