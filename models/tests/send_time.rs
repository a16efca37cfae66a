//! Send-time optimization against simulated customers: each has a true
//! preferred local hour and engages around it; the suggestion must find it
//! once there is enough history, fall back to the population's best hour
//! without it, and always give way to quiet hours, blackouts and caps.

use chrono::{TimeZone as _, Timelike as _};
use chrono_tz::Tz;
use nudge_models::catalog::QuietHours;
use nudge_models::send_time::{
    Basis, EngagementClock, HourOfWeek, Placement, PopulationClock, SendTimeEstimate,
    SendTimePolicy, best_time, next_local_hour_start,
};
use nudge_models::time::{DAY_MS, HOUR_MS, Span, Timestamp, next_local_minute};
use proptest::prelude::*;

/// SplitMix64: a small, seeded, reproducible generator (no dependency).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

const TIMEZONES: [Tz; 3] = [
    chrono_tz::America::New_York,
    chrono_tz::Europe::Berlin,
    chrono_tz::Asia::Kolkata,
];

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("valid instant")
}

/// A simulated customer's hour of day for one engagement: 70 % around
/// their true hour (the hour itself half of those times, the hour before or
/// after a quarter each), the rest any hour of the day.
fn engagement_hour(random: &mut SplitMix64, true_hour: u32) -> u32 {
    if random.unit() < 0.7 {
        let offset = match random.below(4) {
            0 => 23,
            1 => 1,
            _ => 0,
        };
        (true_hour + offset) % 24
    } else {
        random.below(24) as u32
    }
}

/// `engagements` engagements of a customer whose true local hour is
/// `true_hour`, spread over the eight weeks before `now`, on the customer's
/// local clock in `timezone`.
fn simulated_clock(
    random: &mut SplitMix64,
    timezone: Tz,
    true_hour: u32,
    engagements: usize,
    now: Timestamp,
) -> EngagementClock {
    let today = now
        .to_utc()
        .expect("representable")
        .with_timezone(&timezone)
        .date_naive();
    let mut clock = EngagementClock::new();
    while (clock.total() as usize) < engagements {
        let days_back = 1 + random.below(56);
        let date = today - chrono::Days::new(days_back);
        let hour = engagement_hour(random, true_hour);
        let minute = random.below(60) as u32;
        let naive = date.and_hms_opt(hour, minute, 0).expect("valid time");
        // A local time a clock change skips did not happen: draw again.
        if let Some(local) = timezone.from_local_datetime(&naive).earliest() {
            clock.record(Timestamp(local.timestamp_millis()), timezone);
        }
    }
    clock
}

/// The population: many customers whose true hours are mostly in the
/// evening (half at 20:00, the rest anywhere from 07:00 to 22:00), so its
/// pattern has a clear peak at 20:00 every day.
fn simulated_population(random: &mut SplitMix64, now: Timestamp) -> PopulationClock {
    let mut population = PopulationClock::new();
    for customer in 0..600 {
        let timezone = TIMEZONES[customer % TIMEZONES.len()];
        let true_hour = if random.unit() < 0.5 {
            20
        } else {
            7 + random.below(16) as u32
        };
        let engagements = 5 + random.below(40) as usize;
        population.add(&simulated_clock(
            random,
            timezone,
            true_hour,
            engagements,
            now,
        ));
    }
    population
}

/// A moment some time in March 2026 (both clock changes of New York and
/// Berlin fall in it), at any minute.
fn some_now(random: &mut SplitMix64) -> Timestamp {
    at("2026-03-01T00:00:00Z").plus(Span(random.below(31 * DAY_MS as u64) as i64))
}

fn no_policy(_: Timestamp) -> Option<Timestamp> {
    None
}

/// The policy check of an email channel with quiet hours in `timezone`, as
/// the pipeline reads quiet hours: closed inside them, open at their end.
fn quiet_hours(timezone: Tz, quiet: QuietHours) -> impl Fn(Timestamp) -> Option<Timestamp> {
    move |moment| {
        let local = moment.to_utc()?.with_timezone(&timezone);
        let minute_of_day = (local.hour() * 60 + local.minute()) as u16;
        quiet
            .contains(minute_of_day)
            .then(|| next_local_minute(moment, timezone, quiet.end_minute))
    }
}

/// How often `best_time` over the next 24 hours picks the true hour of
/// `customers` simulated customers with `engagements` engagements each, and
/// how far its misses were (in hours of the day, either way).
fn true_hour_rate(
    random: &mut SplitMix64,
    population: &PopulationClock,
    customers: usize,
    engagements: usize,
) -> (f64, u32) {
    let policy = SendTimePolicy::default();
    let mut found = 0;
    let mut farthest = 0;
    for customer in 0..customers {
        let timezone = TIMEZONES[customer % TIMEZONES.len()];
        let true_hour = random.below(24) as u32;
        let now = some_now(random);
        let clock = simulated_clock(random, timezone, true_hour, engagements, now);
        let send = best_time(
            &clock,
            population,
            &policy,
            timezone,
            now,
            policy.window,
            no_policy,
        )
        .expect("nothing is closed");
        assert!(send.at >= now && send.at < now.plus(policy.window));
        assert_eq!(send.basis, Basis::Personal);
        assert_eq!(send.placement, Placement::Best);
        let picked = u32::from(send.hour.hour_of_day());
        found += usize::from(picked == true_hour);
        let distance = (picked + 24 - true_hour) % 24;
        farthest = farthest.max(distance.min(24 - distance));
    }
    (found as f64 / customers as f64, farthest)
}

// What to expect. Only 35 % of a simulated customer's engagements fall on
// their true hour itself, 17.5 % on each neighbour, the rest anywhere, over
// eight weeks: with 20 engagements, even the maximum-likelihood pick of the
// hour of day with the true model and no prior is right for 98.6 % of
// customers (measured over 2,000), and `best_time` with a flat population
// for 97 %. A population peaked at 20:00 pulls customers whose true hour is
// near the evening toward it: with 20 engagements `best_time` is right for
// 92 % (over 2,000), with 40 for 99 %. That pull is the shrinkage doing
// its job; it fades as history grows. The floors below leave room for the
// sampling spread of 400 customers (a standard error of 1.4 points at 92 %).

#[test]
fn enough_history_finds_each_customers_true_hour() {
    let mut random = SplitMix64(20_260_301);
    let (rate, farthest) = true_hour_rate(&mut random, &PopulationClock::new(), 400, 20);
    println!("flat population, 20 engagements: {rate:.3}, misses within {farthest} h");
    assert!(rate >= 0.93, "flat population, 20 engagements: {rate:.3}");
    // With no pull, a miss is a neighbouring hour.
    assert!(farthest <= 1, "flat population, a miss by {farthest} h");
    let population = simulated_population(&mut random, at("2026-03-01T00:00:00Z"));
    let (rate, farthest) = true_hour_rate(&mut random, &population, 400, 20);
    println!("peaked population, 20 engagements: {rate:.3}, misses within {farthest} h");
    assert!(rate >= 0.88, "peaked population, 20 engagements: {rate:.3}");
    let (rate, farthest) = true_hour_rate(&mut random, &population, 400, 40);
    println!("peaked population, 40 engagements: {rate:.3}, misses within {farthest} h");
    assert!(rate >= 0.97, "peaked population, 40 engagements: {rate:.3}");
    assert!(
        farthest <= 1,
        "peaked population, 40 engagements: a miss by {farthest} h"
    );
}

/// The population's best hour among the local hours of `[now, now + 24h)`.
fn population_best_in_window(
    population: &PopulationClock,
    timezone: Tz,
    now: Timestamp,
) -> HourOfWeek {
    let end = now.plus(Span::hours(24));
    let mut best = HourOfWeek::of(now, timezone);
    let mut moment = next_local_hour_start(now, timezone);
    while moment < end {
        let hour = HourOfWeek::of(moment, timezone);
        if population.share(hour) > population.share(best) {
            best = hour;
        }
        moment = next_local_hour_start(moment, timezone);
    }
    best
}

#[test]
fn thin_history_falls_back_to_the_populations_best_hour() {
    let mut random = SplitMix64(7);
    let policy = SendTimePolicy::default();
    let population = simulated_population(&mut random, at("2026-03-01T00:00:00Z"));
    // The population's best hour is 20:00 on every day.
    let best = SendTimeEstimate::new(&EngagementClock::new(), &population, &policy).best_hour();
    assert_eq!(best.hour_of_day(), 20);
    for engagements in [0, 1, 2] {
        for customer in 0..300 {
            let timezone = TIMEZONES[customer % TIMEZONES.len()];
            // Anywhere but around the evening peak.
            let true_hour = random.below(12) as u32 + 4;
            let now = some_now(&mut random);
            let clock = simulated_clock(&mut random, timezone, true_hour, engagements, now);
            let send = best_time(
                &clock,
                &population,
                &policy,
                timezone,
                now,
                Span::hours(24),
                no_policy,
            )
            .expect("nothing is closed");
            assert_eq!(
                send.hour,
                population_best_in_window(&population, timezone, now),
                "{engagements} engagements at {true_hour}:00 ({timezone}, {now})"
            );
            assert_eq!(send.hour.hour_of_day(), 20);
            assert_eq!(send.basis, Basis::Population);
            assert_eq!(send.placement, Placement::Best);
        }
    }
}

/// A customer who engages at 22:00 local, every day, for weeks.
fn late_evening_customer(timezone: Tz, now: Timestamp) -> EngagementClock {
    simulated_clock(&mut SplitMix64(22), timezone, 22, 60, now)
}

#[test]
fn quiet_hours_override_the_suggested_time() {
    let policy = SendTimePolicy::default();
    let population = PopulationClock::new();
    let quiet = QuietHours {
        start_minute: 21 * 60,
        end_minute: 8 * 60,
    };
    for timezone in TIMEZONES {
        // Midday local, in and out of summer time.
        for day in ["2026-01-14", "2026-07-14"] {
            let noon = timezone
                .from_local_datetime(
                    &chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                        .expect("date")
                        .and_hms_opt(12, 0, 0)
                        .expect("time"),
                )
                .single()
                .expect("unambiguous");
            let now = Timestamp(noon.timestamp_millis());
            let clock = late_evening_customer(timezone, now);
            let unconstrained = best_time(
                &clock,
                &population,
                &policy,
                timezone,
                now,
                policy.window,
                no_policy,
            )
            .expect("nothing is closed");
            assert_eq!(unconstrained.hour.hour_of_day(), 22);
            let is_closed = quiet_hours(timezone, quiet);
            let send = best_time(
                &clock,
                &population,
                &policy,
                timezone,
                now,
                policy.window,
                &is_closed,
            )
            .expect("open during the day");
            assert_eq!(is_closed(send.at), None, "{timezone}: {send:?}");
            let local_hour = send.hour.hour_of_day();
            assert!((8..21).contains(&local_hour), "{timezone}: {send:?}");
            // The latest open hour, next to the customer's evening.
            assert_eq!(local_hour, 20, "{timezone}: {send:?}");
            match send.placement {
                Placement::Moved {
                    from,
                    from_hour,
                    from_share,
                } => {
                    assert_eq!(from_hour.hour_of_day(), 22);
                    assert_eq!(from, unconstrained.at);
                    assert!(from_share > send.share);
                }
                other => panic!("{timezone}: not moved: {other:?}"),
            }
            assert!(send.at >= now && send.at < now.plus(policy.window));
        }
    }
}

#[test]
fn a_closed_window_gives_the_earliest_open_moment() {
    let policy = SendTimePolicy::default();
    let population = PopulationClock::new();
    let timezone = chrono_tz::Europe::Berlin;
    let quiet = QuietHours {
        start_minute: 21 * 60,
        end_minute: 8 * 60,
    };
    // Wednesday 2026-12-23 22:00 in Berlin; Christmas Eve and Day are
    // blackout dates for the channel, on top of its quiet hours.
    let now = at("2026-12-23T21:00:00Z");
    let clock = late_evening_customer(timezone, now);
    let quiet_check = quiet_hours(timezone, quiet);
    let blackout_ends = at("2026-12-25T23:00:00Z");
    let is_closed = |moment: Timestamp| {
        if moment >= at("2026-12-23T23:00:00Z") && moment < blackout_ends {
            return Some(blackout_ends);
        }
        quiet_check(moment)
    };
    let send = best_time(
        &clock,
        &population,
        &policy,
        timezone,
        now,
        Span::hours(24),
        is_closed,
    )
    .expect("opens after christmas");
    // The 26th at 08:00, when the quiet hours after the blackout end.
    assert_eq!(send.at, at("2026-12-26T07:00:00Z"));
    assert_eq!(send.placement, Placement::AfterWindow);
    assert_eq!(is_closed(send.at), None);
    // A window of two days still finds nothing sooner.
    let later = best_time(
        &clock,
        &population,
        &policy,
        timezone,
        now,
        Span::hours(48),
        is_closed,
    )
    .expect("opens after christmas");
    assert_eq!(later.at, send.at);
    // Three days reach the 26th: its best open hour, 20:00.
    let third = best_time(
        &clock,
        &population,
        &policy,
        timezone,
        now,
        Span::hours(72),
        is_closed,
    )
    .expect("opens on the 26th");
    assert_eq!(third.at, at("2026-12-26T19:00:00Z"));
    assert!(matches!(third.placement, Placement::Moved { .. }));
}

#[test]
fn the_clock_stays_small_however_much_is_recorded() {
    let mut random = SplitMix64(99);
    let timezone = chrono_tz::America::New_York;
    let mut clock = EngagementClock::new();
    let start = at("2025-01-01T00:00:00Z");
    let mut previous_total = 0;
    let mut halvings = 0;
    for engagement in 0..100_000 {
        let moment = start.plus(Span(random.below(365 * DAY_MS as u64) as i64));
        clock.record(moment, timezone);
        assert!(clock.total() <= EngagementClock::CAP);
        halvings += usize::from(clock.total() < previous_total);
        previous_total = clock.total();
        assert!(clock.hours_stored() <= 168, "{engagement}");
    }
    assert!(halvings >= 100_000 / 1_000, "{halvings} halvings");
    let stored = rmp_serde::to_vec(&clock).expect("serializes");
    assert!(stored.len() <= 3 + 168 * 6, "{} bytes", stored.len());
    println!("a full clock: {} bytes stored", stored.len());
    // A customer who engages at a few hours stores a few pairs.
    let mut habitual = EngagementClock::new();
    for day in 0..400 {
        habitual.record(start.plus(Span(day * DAY_MS + 13 * HOUR_MS)), timezone);
    }
    assert!(habitual.hours_stored() <= 14, "{habitual:?}");
    let stored = rmp_serde::to_vec(&habitual).expect("serializes");
    assert!(stored.len() <= 64, "{} bytes", stored.len());
    let back: EngagementClock = rmp_serde::from_slice(&stored).expect("reads back");
    assert_eq!(back, habitual);

    // Halving forgets: an old habit gives way to a new one.
    let mut moving = EngagementClock::new();
    let morning = HourOfWeek::from_day_and_hour(0, 8).expect("in range");
    let evening = HourOfWeek::from_day_and_hour(0, 19).expect("in range");
    for _ in 0..EngagementClock::CAP {
        moving.record_hour(morning);
    }
    for _ in 0..600 {
        moving.record_hour(evening);
    }
    assert!(moving.count(evening) > moving.count(morning), "{moving:?}");
    assert_eq!(moving.count(morning), 250);
    assert!(moving.total() <= EngagementClock::CAP);
}

/// Closed intervals `[start, end)`, sorted and apart: `is_closed` answers
/// with the end of the one a moment is in, the earliest moment it opens.
fn closures(raw: &[(i64, i64)], now: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let mut intervals: Vec<(i64, i64)> = raw
        .iter()
        .map(|(start, length)| (now.millis() + start, now.millis() + start + length))
        .collect();
    intervals.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
        .into_iter()
        .map(|(start, end)| (Timestamp(start), Timestamp(end)))
        .collect()
}

fn closed_at(intervals: &[(Timestamp, Timestamp)], moment: Timestamp) -> Option<Timestamp> {
    intervals
        .iter()
        .find(|(start, end)| *start <= moment && moment < *end)
        .map(|(_, end)| *end)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_suggestion_is_open_in_the_window_or_the_first_open_moment(
        now_offset in 0_i64..(10 * 365 * DAY_MS),
        timezone_index in 0_usize..5,
        engagements in proptest::collection::vec((0_u8..168, 1_u32..6), 0..12),
        raw_closures in proptest::collection::vec(
            (-2 * HOUR_MS..60 * HOUR_MS, 1_i64..20 * HOUR_MS),
            0..8,
        ),
        window_hours in 0_i64..72,
        window_extra in 0_i64..HOUR_MS,
    ) {
        let timezones = [
            chrono_tz::America::New_York,
            chrono_tz::Europe::Berlin,
            chrono_tz::Asia::Kolkata,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::UTC,
        ];
        let timezone = timezones[timezone_index];
        let now = at("2020-01-01T00:00:00Z").plus(Span(now_offset));
        let window = Span(window_hours * HOUR_MS + window_extra);
        let end = now.plus(window);
        let mut clock = EngagementClock::new();
        for (index, count) in &engagements {
            for _ in 0..*count {
                clock.record_hour(HourOfWeek::new(*index).expect("in range"));
            }
        }
        let population = PopulationClock::new();
        let policy = SendTimePolicy::default();
        let intervals = closures(&raw_closures, now);
        let is_closed = |moment| closed_at(&intervals, moment);
        let send = best_time(&clock, &population, &policy, timezone, now, window, is_closed)
            .expect("every closure ends");
        let again = best_time(&clock, &population, &policy, timezone, now, window, is_closed);
        prop_assert_eq!(Some(&send), again.as_ref());
        prop_assert_eq!(is_closed(send.at), None);
        prop_assert_eq!(send.hour, HourOfWeek::of(send.at, timezone));
        // The moments that could be open in the window: `now`, each local
        // hour's start, each closure's end.
        let mut moments = vec![now];
        let mut moment = next_local_hour_start(now, timezone);
        while moment < end {
            moments.push(moment);
            moment = next_local_hour_start(moment, timezone);
        }
        moments.extend(intervals.iter().map(|(_, end)| *end).filter(|at| *at >= now && *at < end));
        let open: Vec<Timestamp> = moments.into_iter().filter(|at| is_closed(*at).is_none()).collect();
        let estimate = SendTimeEstimate::new(&clock, &population, &policy);
        if open.is_empty() {
            // Nothing in the window: the first moment from its end that opens.
            prop_assert_eq!(send.placement, Placement::AfterWindow);
            let mut first = end;
            while let Some(next) = is_closed(first) {
                first = next;
            }
            prop_assert_eq!(send.at, first);
        } else {
            prop_assert!(send.placement != Placement::AfterWindow);
            prop_assert!(send.at >= now && send.at < end, "{:?} outside [{}, {})", send, now, end);
            for moment in open {
                let share = estimate.share(HourOfWeek::of(moment, timezone));
                prop_assert!(share <= send.share, "{} scores {} over {:?}", moment, share, send);
                // A moment as good and earlier would have won the tie.
                if share == send.share {
                    prop_assert!(moment >= send.at, "{} ties {:?} earlier", moment, send);
                }
            }
        }
    }
}
