//! The search: the best moment to send within a window, among the moments
//! the caller's policy (quiet hours, blackout dates, caps) leaves open.

use super::clock::{EngagementClock, PopulationClock};
use super::estimate::{Basis, SendTimeEstimate, SendTimePolicy};
use super::hour::{HOURS_PER_WEEK, HourOfWeek, next_local_hour_start};
use crate::time::{HOUR_MS, Span, Timestamp};
use serde::{Deserialize, Serialize};

/// The longest window searched: four weeks. The pattern repeats every
/// week, so a longer search would only find the same hours later; it
/// would cost a policy check per hour.
pub const MAX_SEARCH: Span = Span::days(28);

/// How many times one moment's closure is followed to the moment it opens
/// (quiet hours end on a blackout date, which ends under a cap, ...) before
/// giving up on it, as [`crate::pipeline::next_allowed`] does.
const MAX_ROUNDS: usize = 32;

/// The local hours a search may visit: one per hour of [`MAX_SEARCH`], and
/// as many again for the half hours a clock change of thirty minutes makes.
const MAX_SLOTS: i64 = 2 * (MAX_SEARCH.millis() / HOUR_MS) + 2;

/// A suggested send time and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendTime {
    /// When to send: the start of a local hour, `now` when the current hour
    /// is best, or the first open moment of an hour that opens part-way.
    pub at: Timestamp,
    /// The customer's local hour of week at `at`.
    pub hour: HourOfWeek,
    /// The estimated share of the customer's engagements in that hour of
    /// week (the posterior mean; 1/168 is no preference): the score the
    /// moment was chosen by.
    pub share: f64,
    /// Whose pattern the estimate mostly follows.
    pub basis: Basis,
    /// Whether the caller's policy moved it from the best hour.
    pub placement: Placement,
}

impl SendTime {
    /// The share relative to an even spread over the week: 2.0 means
    /// twice as likely as an hour picked at random.
    pub fn lift(&self) -> f64 {
        self.share * HOURS_PER_WEEK as f64
    }
}

/// Where the send time fell and what moved it: for the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Placement {
    /// The best hour of the window; nothing stood in its way.
    Best,
    /// Policy closed a better hour of the window (quiet hours, a blackout,
    /// a cap); this is the best open one.
    Moved {
        /// The start of the better hour that was closed (or `now`).
        from: Timestamp,
        /// Its local hour of week.
        from_hour: HourOfWeek,
        /// Its share.
        from_share: f64,
    },
    /// Policy closed the whole window: this is the earliest moment after it
    /// that it opens.
    AfterWindow,
}

/// The best moment to send to a customer with engagement `clock`, in
/// `[now, now + window)`, that `is_closed` leaves open: see
/// [`SendTimeEstimate::best_time`]. The window is the journey step's, or
/// [`SendTimePolicy::window`] when it gives none. Builds the estimate; a
/// caller choosing times for several actions of one customer builds it
/// once instead.
pub fn best_time(
    clock: &EngagementClock,
    population: &PopulationClock,
    policy: &SendTimePolicy,
    timezone: chrono_tz::Tz,
    now: Timestamp,
    window: Span,
    is_closed: impl FnMut(Timestamp) -> Option<Timestamp>,
) -> Option<SendTime> {
    SendTimeEstimate::new(clock, population, policy).best_time(timezone, now, window, is_closed)
}

/// Whether and when a moment opens, per the caller's policy.
enum Opening {
    /// Open at this moment.
    Open(Timestamp),
    /// Closed until at least this moment, at or past the limit asked.
    ClosedUntil(Timestamp),
    /// No open moment found: the policy gave none, or not in time.
    Unknown,
}

/// The first moment from `from` that `is_closed` lets through, following
/// its answers; stops with [`Opening::ClosedUntil`] once they reach
/// `limit`.
fn first_open(
    from: Timestamp,
    limit: Option<Timestamp>,
    is_closed: &mut impl FnMut(Timestamp) -> Option<Timestamp>,
) -> Opening {
    let mut at = from;
    for _ in 0..MAX_ROUNDS {
        match is_closed(at) {
            None => return Opening::Open(at),
            Some(next) if next > at => {
                if limit.is_some_and(|limit| next >= limit) {
                    return Opening::ClosedUntil(next);
                }
                at = next;
            }
            // A closure that opens no later than now: no answer to follow.
            Some(_) => return Opening::Unknown,
        }
    }
    Opening::Unknown
}

impl SendTimeEstimate {
    /// The moment in `[now, now + window)` with the highest estimated
    /// engagement that `is_closed` leaves open.
    ///
    /// The window is cut into the customer's local hours: the hour `now`
    /// falls in (from `now`), then each local hour from its start. They are
    /// walked in real time and each is read on the local clock, so clock
    /// changes come out right: on the night clocks go back the repeated
    /// local hour is two hours of the window with the same hour of week
    /// (the first wins the tie), and the hour skipped when they go forward
    /// is not in the window at all. A zone whose offset is not whole hours
    /// (Asia/Kolkata, UTC+05:30) has its hours start on its own clock.
    ///
    /// `is_closed(t)` is the caller's policy — quiet hours, blackout dates,
    /// caps — and always wins: `None` when sending at `t` is allowed,
    /// `Some(next)` with the earliest moment it could be. A closed hour is
    /// skipped, or stands for its first open moment when it opens part-way
    /// (quiet hours that end at 08:30). Moments before a `next` it returned
    /// are taken as closed without asking again.
    ///
    /// The highest share wins and the earliest moment wins a tie (with no
    /// history and no population data, that is the first open moment).
    /// When the policy closes the whole window, the earliest moment after
    /// it that the policy opens ([`Placement::AfterWindow`]); `None` when it
    /// gives none. A window longer than [`MAX_SEARCH`] is searched over its
    /// first four weeks; a window of zero length holds no hour, so the
    /// answer is the first open moment from `now`.
    pub fn best_time(
        &self,
        timezone: chrono_tz::Tz,
        now: Timestamp,
        window: Span,
        mut is_closed: impl FnMut(Timestamp) -> Option<Timestamp>,
    ) -> Option<SendTime> {
        let end = now.plus(Span(window.millis().clamp(0, MAX_SEARCH.millis())));
        // (moment, its hour of week, its share)
        let mut best_open: Option<(Timestamp, HourOfWeek, f64)> = None;
        let mut best_any: Option<(Timestamp, HourOfWeek, f64)> = None;
        let mut closed_until = now;
        let mut slot_start = now;
        for _ in 0..MAX_SLOTS {
            if slot_start >= end {
                break;
            }
            let slot_end = next_local_hour_start(slot_start, timezone).min(end);
            debug_assert!(slot_end > slot_start, "every local hour moves on");
            let hour = HourOfWeek::of(slot_start, timezone);
            let share = self.share(hour);
            if best_any.is_none_or(|(_, _, best)| share > best) {
                best_any = Some((slot_start, hour, share));
            }
            if closed_until < slot_end {
                match first_open(closed_until.max(slot_start), Some(slot_end), &mut is_closed) {
                    Opening::Open(at) => {
                        let hour = HourOfWeek::of(at, timezone);
                        let share = self.share(hour);
                        if best_open.is_none_or(|(_, _, best)| share > best) {
                            best_open = Some((at, hour, share));
                        }
                    }
                    Opening::ClosedUntil(next) => closed_until = next,
                    Opening::Unknown => closed_until = slot_end,
                }
            }
            slot_start = slot_end;
        }
        let basis = self.basis();
        if let Some((at, hour, share)) = best_open {
            let placement = match best_any {
                Some((from, from_hour, from_share)) if from_share > share => Placement::Moved {
                    from,
                    from_hour,
                    from_share,
                },
                _ => Placement::Best,
            };
            return Some(SendTime {
                at,
                hour,
                share,
                basis,
                placement,
            });
        }
        match first_open(closed_until.max(end), None, &mut is_closed) {
            Opening::Open(at) => {
                let hour = HourOfWeek::of(at, timezone);
                Some(SendTime {
                    at,
                    hour,
                    share: self.share(hour),
                    basis,
                    placement: Placement::AfterWindow,
                })
            }
            Opening::ClosedUntil(_) | Opening::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe};

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("valid instant")
    }

    fn hour(day: u8, hour_of_day: u8) -> HourOfWeek {
        HourOfWeek::from_day_and_hour(day, hour_of_day).expect("in range")
    }

    fn estimate_of(hours: &[(HourOfWeek, u32)]) -> SendTimeEstimate {
        let mut clock = EngagementClock::new();
        for (every, count) in hours {
            for _ in 0..*count {
                clock.record_hour(*every);
            }
        }
        SendTimeEstimate::new(&clock, &PopulationClock::new(), &SendTimePolicy::default())
    }

    fn open(_: Timestamp) -> Option<Timestamp> {
        None
    }

    #[test]
    fn the_current_hour_when_it_is_best_else_the_start_of_the_best_hour() {
        // Monday 2026-01-05 09:20 in Berlin.
        let now = at("2026-01-05T08:20:00Z");
        let estimate = estimate_of(&[(hour(0, 9), 30)]);
        let send = estimate
            .best_time(Europe::Berlin, now, Span::hours(24), open)
            .expect("a time");
        assert_eq!(send.at, now);
        assert_eq!(send.hour, hour(0, 9));
        assert_eq!(send.placement, Placement::Best);
        assert_eq!(send.basis, Basis::Personal);
        assert!(send.lift() > 1.0);
        let estimate = estimate_of(&[(hour(0, 14), 30)]);
        let send = estimate
            .best_time(Europe::Berlin, now, Span::hours(24), open)
            .expect("a time");
        assert_eq!(send.at, at("2026-01-05T13:00:00Z"));
    }

    #[test]
    fn a_weekly_habit_shows_through_the_daily_pooling() {
        // Saturday mornings only; from Friday 00:00 in Berlin, two days.
        let now = at("2026-01-08T23:00:00Z");
        let estimate = estimate_of(&[(hour(5, 10), 20)]);
        let send = estimate
            .best_time(Europe::Berlin, now, Span::hours(48), open)
            .expect("a time");
        assert_eq!(send.hour, hour(5, 10));
        assert_eq!(send.at, at("2026-01-10T09:00:00Z"));
    }

    #[test]
    fn a_repeated_local_hour_is_taken_the_first_time() {
        // New York, Sunday 2026-11-01 00:10 EDT: 01:00–02:00 comes twice.
        let now = at("2026-11-01T04:10:00Z");
        let estimate = estimate_of(&[(hour(6, 1), 30)]);
        let send = estimate
            .best_time(America::New_York, now, Span::hours(24), open)
            .expect("a time");
        assert_eq!(send.at, at("2026-11-01T05:00:00Z"));
        assert_eq!(send.hour, hour(6, 1));
    }

    #[test]
    fn a_skipped_local_hour_is_not_a_candidate() {
        // New York, Sunday 2026-03-08 00:00 EST: 02:00 does not happen that
        // night. The customer's Sunday 02:00 habit spreads to 01:00 and
        // 03:00; the earlier of the two wins the tie.
        let now = at("2026-03-08T05:00:00Z");
        let estimate = estimate_of(&[(hour(6, 2), 30)]);
        let send = estimate
            .best_time(America::New_York, now, Span::hours(24), open)
            .expect("a time");
        assert_eq!(send.hour, hour(6, 1));
        assert_eq!(send.at, at("2026-03-08T06:00:00Z"));
    }

    #[test]
    fn an_hour_that_opens_part_way_counts_from_its_opening() {
        // Quiet until 08:30 local; the customer engages at 08:00.
        let now = at("2026-01-05T00:00:00Z");
        let opens = at("2026-01-05T07:30:00Z");
        let estimate = estimate_of(&[(hour(0, 8), 30)]);
        let send = estimate
            .best_time(Europe::Berlin, now, Span::hours(24), |moment| {
                (moment < opens).then_some(opens)
            })
            .expect("a time");
        assert_eq!(send.at, opens);
        assert_eq!(send.hour, hour(0, 8));
        assert_eq!(send.placement, Placement::Best);
    }

    #[test]
    fn an_empty_window_gives_the_first_open_moment() {
        let now = at("2026-01-05T00:00:00Z");
        let opens = at("2026-01-05T03:00:00Z");
        let estimate = estimate_of(&[]);
        let send = estimate
            .best_time(Europe::Berlin, now, Span(0), |moment| {
                (moment < opens).then_some(opens)
            })
            .expect("a time");
        assert_eq!(send.at, opens);
        assert_eq!(send.placement, Placement::AfterWindow);
        assert_eq!(send.basis, Basis::Population);
        let send = estimate
            .best_time(Europe::Berlin, now, Span(-5), open)
            .expect("a time");
        assert_eq!(send.at, now);
    }

    #[test]
    fn a_policy_that_never_opens_gives_no_time() {
        let now = at("2026-01-05T00:00:00Z");
        let estimate = estimate_of(&[(hour(0, 9), 3)]);
        let always_later = estimate.best_time(Europe::Berlin, now, Span::hours(24), |moment| {
            Some(moment.plus(Span::hours(1)))
        });
        assert_eq!(always_later, None);
        let no_answer = estimate.best_time(Europe::Berlin, now, Span::hours(24), Some);
        assert_eq!(no_answer, None);
    }

    #[test]
    fn long_windows_are_searched_over_four_weeks() {
        let now = at("2026-01-05T00:00:00Z");
        let estimate = estimate_of(&[]);
        let mut asked = 0;
        let send = estimate.best_time(Europe::Berlin, now, Span::days(3_650), |_| {
            asked += 1;
            None
        });
        assert_eq!(send.map(|send| send.at), Some(now));
        assert_eq!(asked, 28 * 24);
    }
}
