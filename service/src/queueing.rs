//! Queueing delay: how much longer than usual calls take in the server, and
//! the controller that turns a standing delay into a lower limit on the
//! calls in flight, so the excess is refused at once instead of queueing.
//!
//! **What is measured.** Two things, because calls queue in two ways.
//! Every admitted call's time in the server, from the outermost gRPC layer
//! taking it to its answer being ready: past saturation the server behaves
//! like a processor-sharing queue, hundreds of calls in flight, each waiting
//! its turn on the two runtime threads again at every step (decode, the
//! actor, the commit, the encode). No single wait is long — measured under
//! an open-loop overload, a call's first poll (tokio runs a task spawned by
//! the connection in its LIFO slot, next), a yield on the runtime and an
//! actor's mailbox each had a minimum of a few microseconds while answers
//! took ten times their budget — but every call's total time grows. So the
//! delay is the calls' time beyond the **baseline**: the lowest time of the
//! fastest quarter of calls ([`FAST_SHARE`]) over the last
//! [`BASELINE_INTERVALS`] intervals in which the limit did not hold calls
//! back (what a call takes without a queue, fsync included). An
//! interval that reached the limit does not move the baseline, so a long
//! overload cannot pass itself off as the new normal; one at the floor does
//! (what is left there is not queueing), so a slower disk or a costlier mix
//! of calls becomes the baseline instead of being shed for ever.
//! And the wait of each connection's task between its socket turning
//! readable and the task reading it ([`Gate::connection_waited`]): calls
//! queue there, in the HTTP/2 connections, before any layer sees them, when
//! the runtime is saturated (measured: refusals that cost the server
//! microseconds reached clients after most of a second).
//!
//! **When it counts.** Each interval keeps the time within which the
//! fastest quarter of the calls that ended in it were answered
//! ([`Durations`]), and the shortest connection wait ([`MinDelay`]). A
//! burst that drains within the interval leaves many calls with a short
//! time and some connection read at once; only a queue that stands for the
//! whole interval keeps three calls in four above the target (for calls:
//! above baseline + target). That is CoDel's test (Nichols and Jacobson,
//! "Controlling Queue Delay", 2012), which watches the single fastest
//! packet of one FIFO queue; the server's calls do not wait in one FIFO
//! queue, so a quarter of them stands in for the fastest (see
//! [`FAST_SHARE`]). A low quantile, like the minimum, also ignores long
//! calls such as streams. The standing delay is the larger of the two.
//!
//! **What it does.** The [`Controller`] acts once per interval on a limit of
//! calls in flight: a standing delay above the target lowers the limit below
//! the calls that were in flight, in proportion to how far above it was
//! (target / delay, between ×0.5 and ×0.9). A calm interval raises it, up to
//! the configured maximum, by what the interval showed ([`raised`]): by a
//! quarter if the delay was well within the target (or nothing came), by
//! about its square root if it was near it, not at all if calls came but
//! none was answered OK, and, when the calls did not reach it, to no more
//! than twice the calls that came or an eighth of the maximum. It never goes
//! below its floor, so some calls are always admitted and shedding ends
//! once the queue is gone.
//! Only calls answered OK are timed ([`Gate::answered`]): a refusal takes
//! microseconds, and measured past capacity, while a lagging checkpoint had
//! writes refused, such refusals made a quarter of the calls look fast, set
//! the baseline to 19 µs and let the limit swing to the maximum. A limit rather than CoDel's schedule of drops, because that
//! schedule is made for TCP flows, which halve their rate at each drop; RPC
//! clients do not, and a limit bounds the work and memory taken on directly,
//! with `grpc.max_concurrent_requests` as its ceiling. A cut in proportion
//! to the delay (a gradient, as in Netflix's concurrency-limits) reaches the
//! right limit in a few intervals where a fixed step would take many.
//!
//! [`Gate`] holds the limit where every call reads it (atomics, no lock on a
//! call's path) and runs the controller on [`Gate::end_interval`], which the
//! gRPC layer ([`crate::grpc::admission::control`]) calls every interval.
//! Nothing here reads a clock: tests drive it interval by interval with
//! made-up times.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many intervals the baseline (the shortest time of a call) is the
/// minimum of: with 100 ms intervals, the last 5 s that were not held back
/// by the limit.
pub const BASELINE_INTERVALS: usize = 50;

/// No sample since the last read.
const NO_SAMPLE: u64 = u64::MAX;

/// The minimum duration recorded since it was last taken; lock-free, so every
/// call can record into it.
#[derive(Debug)]
pub struct MinDelay {
    /// Microseconds, or [`NO_SAMPLE`].
    micros: AtomicU64,
}

impl Default for MinDelay {
    fn default() -> Self {
        Self {
            micros: AtomicU64::new(NO_SAMPLE),
        }
    }
}

impl MinDelay {
    /// Records one duration.
    pub fn record(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(NO_SAMPLE - 1);
        self.micros.fetch_min(micros, Ordering::Relaxed);
    }

    /// The minimum since the last call, and starts afresh; `None` when
    /// nothing was recorded.
    pub fn take(&self) -> Option<Duration> {
        match self.micros.swap(NO_SAMPLE, Ordering::Relaxed) {
            NO_SAMPLE => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }
}

/// The share of an interval's calls that may be faster than the time the
/// controller judges the interval by: one in four. The fastest call alone is
/// what CoDel watches, for one FIFO queue; the server's calls do not wait in
/// one queue (a task spawned last is polled first, each customer's actor has
/// its own mailbox). Measured with the fastest call, under an in-memory
/// overload at 6,000 Decide/s, every interval's fastest call stayed within
/// the target while the server's mean Decide took 134 ms, nothing was shed
/// and clients waited most of a second; with the fastest quarter the same
/// overload is shed and answers stay near the budget (`bench/RESULTS.md`,
/// 2026-11-30).
pub const FAST_SHARE: f64 = 0.25;

/// Buckets of [`Durations`]: a quarter octave wide (each bound ×1.19 the
/// last), from 16 µs to about 14 s.
const DURATION_BUCKETS: usize = 80;
/// The first bucket's upper bound, in microseconds.
const FIRST_BUCKET_MICROS: f64 = 16.0;

/// A coarse distribution of the durations recorded since it was last taken;
/// lock-free (one atomic add per record), so every call can record into it.
#[derive(Debug)]
pub struct Durations {
    counts: [AtomicU64; DURATION_BUCKETS],
}

impl Default for Durations {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Durations {
    /// The bucket of `micros`: 0 below [`FIRST_BUCKET_MICROS`], then one per
    /// quarter octave.
    fn bucket(micros: u64) -> usize {
        #[allow(clippy::cast_precision_loss)]
        let ratio = micros as f64 / FIRST_BUCKET_MICROS;
        if ratio < 1.0 {
            return 0;
        }
        // Truncation is the point: the quarter octave the duration falls in.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let quarter_octaves = (ratio.log2() * 4.0) as usize;
        (quarter_octaves + 1).min(DURATION_BUCKETS - 1)
    }

    /// The lower bound of bucket `index`: no duration in it is shorter.
    fn lower_bound(index: usize) -> Duration {
        if index == 0 {
            return Duration::ZERO;
        }
        #[allow(clippy::cast_precision_loss)]
        let exponent = (index - 1) as f64 / 4.0;
        Duration::from_secs_f64(FIRST_BUCKET_MICROS * exponent.exp2() / 1e6)
    }

    /// Records one duration.
    pub fn record(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// A duration that `share` of the recorded ones were shorter than or
    /// equal to, rounded down to its bucket's lower bound (so never longer
    /// than the true quantile), and starts afresh; `None` when nothing was
    /// recorded.
    pub fn take_quantile(&self, share: f64) -> Option<Duration> {
        let counts: [u64; DURATION_BUCKETS] =
            std::array::from_fn(|index| self.counts[index].swap(0, Ordering::Relaxed));
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // At least one duration: with few calls the quantile is the fastest.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let wanted = ((share * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(Self::lower_bound(index));
            }
        }
        Some(Self::lower_bound(DURATION_BUCKETS - 1))
    }
}

/// How the controller behaves (from `grpc.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The standing queueing delay tolerated; `None` turns the control off
    /// (the limit stays at `max_limit`).
    pub target: Option<Duration>,
    /// How long the delay must stand before the limit drops, and how often
    /// the limit is adjusted.
    pub interval: Duration,
    /// The lowest the limit goes.
    pub min_limit: usize,
    /// The configured most calls in flight; the limit starts there.
    pub max_limit: usize,
}

/// What one interval showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// The time in the server within which the fastest quarter
    /// ([`FAST_SHARE`]) of the calls that ended in the interval were
    /// answered; `None` when none ended.
    pub fast_quarter: Option<Duration>,
    /// The shortest wait of a connection's task, from its socket turning
    /// readable to the task reading it; `None` when no connection waited.
    pub connection_wait: Option<Duration>,
    /// The most calls in flight at once during the interval.
    pub peak_in_flight: usize,
}

/// The limit after an interval, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment {
    /// The limit before.
    pub before: usize,
    /// The limit from now on.
    pub limit: usize,
    /// The interval's standing delay: the longer of its fast quarter beyond
    /// the baseline and its shortest connection wait.
    pub standing: Option<Duration>,
    /// The baseline it was measured from.
    pub baseline: Option<Duration>,
    /// Whether the standing delay was above the target.
    pub overloaded: bool,
}

/// The adaptive limit on calls in flight: lowered while a queue stands,
/// raised while none does (see the module documentation). A pure state
/// machine.
#[derive(Debug, Clone)]
pub struct Controller {
    settings: Settings,
    limit: usize,
    /// The fast quarter of each of the last intervals that had calls and were
    /// not held back by the limit, oldest overwritten first.
    recent: [Option<Duration>; BASELINE_INTERVALS],
    /// Where the next interval's fast quarter goes in `recent`.
    next: usize,
}

/// The smallest and largest share of the calls in flight kept when a queue
/// stands.
const MIN_KEEP: f64 = 0.5;
const MAX_KEEP: f64 = 0.9;

impl Controller {
    /// A controller at the maximum limit, with no baseline yet.
    pub fn new(settings: Settings) -> Self {
        debug_assert!(1 <= settings.min_limit && settings.min_limit <= settings.max_limit);
        Self {
            settings,
            limit: settings.max_limit,
            recent: [None; BASELINE_INTERVALS],
            next: 0,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The baseline: the lowest fast quarter of the last [`BASELINE_INTERVALS`]
    /// intervals.
    pub fn baseline(&self) -> Option<Duration> {
        self.recent.iter().flatten().min().copied()
    }

    /// Adjusts the limit at the end of an interval that showed `window`.
    pub fn end_interval(&mut self, window: Window) -> Adjustment {
        let before = self.limit;
        let Settings {
            target,
            min_limit,
            max_limit,
            ..
        } = self.settings;
        let held_back = window.peak_in_flight >= before && before > min_limit;
        if let Some(fast_quarter) = window.fast_quarter
            && !held_back
        {
            self.recent[self.next] = Some(fast_quarter);
            self.next = (self.next + 1) % BASELINE_INTERVALS;
        }
        let baseline = self.baseline();
        let beyond_baseline = window
            .fast_quarter
            .zip(baseline)
            .map(|(fast_quarter, baseline)| fast_quarter.saturating_sub(baseline));
        let standing = beyond_baseline.max(window.connection_wait);
        let overload = match (target, standing) {
            (Some(target), Some(standing)) if standing > target => Some((target, standing)),
            _ => None,
        };
        self.limit = match (target, overload) {
            (None, _) => max_limit,
            (Some(_), Some((target, standing))) => {
                // Below what was actually in flight, so the cut bites at once
                // even when the limit was far above it.
                let base = before.min(window.peak_in_flight.max(min_limit));
                let keep =
                    (target.as_secs_f64() / standing.as_secs_f64()).clamp(MIN_KEEP, MAX_KEEP);
                // Truncation is the point: a cut always lowers the limit.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let cut = (base as f64 * keep) as usize;
                cut.max(min_limit)
            }
            (Some(target), None) => raised(
                before,
                window.fast_quarter.is_some(),
                window.peak_in_flight,
                standing,
                target,
                max_limit,
            )
            .min(max_limit),
        };
        Adjustment {
            before,
            limit: self.limit,
            standing,
            baseline,
            overloaded: overload.is_some(),
        }
    }
}

/// The limit after a calm interval that began at `before`, in which
/// `measured` says whether any call was answered OK (timed), at most
/// `peak_in_flight` calls were in flight, and the standing delay was
/// `standing` (within `target`); `max_limit` is the configured maximum.
///
/// - **Calls in flight but none answered OK**: unchanged. Nothing was
///   measured, only refusals and errors, which take microseconds whatever
///   the queue.
/// - **Well within the target** (at most half of it, or nothing came): a
///   quarter more, so a lowered limit is back up to the calls offered within
///   a second or two once the queue is gone.
/// - **Near the target**: the square root of the limit more, as Netflix's
///   concurrency-limits grows: a few calls' more queueing per interval, so
///   the limit settles below the delay that cuts it instead of overshooting.
/// - **Not reached** (fewer calls came than the limit allowed): no higher
///   than twice the calls that came or an eighth of the maximum, whichever
///   is more (never lowered). Measured past capacity, while a lagging
///   checkpoint had storage refuse most writes, the few calls answered were
///   fast, and raising the limit in those intervals took it from ~150 to
///   1,024 in under a second: the calls admitted once the checkpoint was
///   done waited past the budget. The eighth leaves a lightly loaded server
///   room for a burst (CI's smoke run shed one at twice its calls).
fn raised(
    before: usize,
    measured: bool,
    peak_in_flight: usize,
    standing: Option<Duration>,
    target: Duration,
    max_limit: usize,
) -> usize {
    if !measured && peak_in_flight > 0 {
        return before;
    }
    let well_within = standing.is_none_or(|standing| standing <= target / 2);
    let step = if well_within {
        before / 4
    } else {
        // Truncation is fine: a step of about the square root.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let root = (before as f64).sqrt() as usize;
        root
    };
    let raised = before.saturating_add(step.max(1));
    if peak_in_flight >= before {
        return raised;
    }
    let room = peak_in_flight.saturating_mul(2).max(max_limit / 8);
    raised.min(room).max(before)
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `grpc.max_concurrent_requests` calls were in flight.
    Concurrency,
    /// The limit, lowered because calls queued, was reached.
    QueueDelay,
}

impl Shed {
    /// Every reason, in the order of [`Shed::index`].
    pub const ALL: [Shed; 2] = [Shed::Concurrency, Shed::QueueDelay];

    /// The reason's position in [`Shed::ALL`].
    pub fn index(self) -> usize {
        match self {
            Shed::Concurrency => 0,
            Shed::QueueDelay => 1,
        }
    }

    /// The `reason` label and log field.
    pub fn code(self) -> &'static str {
        match self {
            Shed::Concurrency => "concurrency",
            Shed::QueueDelay => "queue_delay",
        }
    }
}

/// The calls in flight against the controller's limit, and the times of the calls
/// since the last interval ended.
#[derive(Debug)]
pub struct Gate {
    /// Calls admitted and not yet answered.
    in_flight: AtomicUsize,
    /// The most calls in flight since the last interval ended.
    peak: AtomicUsize,
    /// The controller's limit, read by every call.
    limit: AtomicUsize,
    /// The configured maximum.
    max_limit: usize,
    /// The times in the server of the calls answered since the last
    /// interval ended.
    call_times: Durations,
    /// The shortest wait of a connection's task since the last interval
    /// ended.
    connection_wait: MinDelay,
    /// Adjusted once per interval.
    controller: Mutex<Controller>,
}

/// One admitted call: it counts as in flight until dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate at the maximum limit.
    pub fn new(settings: Settings) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit: AtomicUsize::new(settings.max_limit),
            max_limit: settings.max_limit,
            call_times: Durations::default(),
            connection_wait: MinDelay::default(),
            controller: Mutex::new(Controller::new(settings)),
        }
    }

    /// Admits one call, or says why not; never waits.
    pub fn try_enter(gate: &Arc<Gate>) -> Result<Permit, Shed> {
        let limit = gate.limit.load(Ordering::Acquire);
        let entered =
            gate.in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_flight| {
                    (in_flight < limit).then_some(in_flight + 1)
                });
        match entered {
            Ok(before) => {
                gate.peak.fetch_max(before + 1, Ordering::Relaxed);
                Ok(Permit { gate: gate.clone() })
            }
            Err(_) if limit >= gate.max_limit => Err(Shed::Concurrency),
            Err(_) => Err(Shed::QueueDelay),
        }
    }

    /// An admitted call was answered after `elapsed` in the server, having
    /// done its work: its caller leaves out refusals and errors, which take
    /// microseconds whatever the queue.
    pub fn answered(&self, elapsed: Duration) {
        self.call_times.record(elapsed);
    }

    /// A connection's task read its socket `waited` after it turned
    /// readable.
    pub fn connection_waited(&self, waited: Duration) {
        self.connection_wait.record(waited);
    }

    /// The calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    /// Ends an interval: the controller adjusts the limit from the calls
    /// answered since the last one.
    pub fn end_interval(&self) -> Adjustment {
        let window = Window {
            fast_quarter: self.call_times.take_quantile(FAST_SHARE),
            connection_wait: self.connection_wait.take(),
            peak_in_flight: self
                .peak
                .swap(self.in_flight.load(Ordering::Acquire), Ordering::Relaxed),
        };
        let mut controller = self
            .controller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let adjustment = controller.end_interval(window);
        self.limit.store(adjustment.limit, Ordering::Release);
        adjustment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            target: Some(ms(5)),
            interval: ms(100),
            min_limit: 2,
            max_limit: 100,
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn window(fast_quarter_ms: Option<u64>, peak_in_flight: usize) -> Window {
        Window {
            fast_quarter: fast_quarter_ms.map(ms),
            connection_wait: None,
            peak_in_flight,
        }
    }

    /// A controller whose baseline is `baseline_ms` (one calm interval).
    fn with_baseline(baseline_ms: u64) -> Controller {
        let mut controller = Controller::new(settings());
        let calm = controller.end_interval(window(Some(baseline_ms), 1));
        assert!(!calm.overloaded);
        controller
    }

    #[test]
    fn durations_give_a_low_quantile_never_above_the_true_one_and_start_afresh() {
        let times = Durations::default();
        assert_eq!(times.take_quantile(FAST_SHARE), None);
        for millis in 1..=100 {
            times.record(ms(millis));
        }
        let quarter = times.take_quantile(FAST_SHARE).expect("recorded");
        // The 25th of 100 is 25 ms; its bucket starts at most a quarter
        // octave below it.
        assert!(quarter <= ms(25), "{quarter:?}");
        assert!(
            quarter.as_secs_f64() > 0.025 / 2f64.powf(0.25),
            "{quarter:?}"
        );
        assert_eq!(times.take_quantile(FAST_SHARE), None, "taken afresh");
        times.record(ms(7));
        assert!(times.take_quantile(0.0).expect("one") <= ms(7));
    }

    #[test]
    fn every_duration_falls_in_the_bucket_that_bounds_it() {
        let mut last = 0;
        for micros in [
            0, 1, 15, 16, 17, 19, 20, 100, 1_000, 10_000, 99_999, 1_000_000,
        ] {
            let bucket = Durations::bucket(micros);
            assert!(bucket >= last, "buckets rise with the duration");
            last = bucket;
            let duration = Duration::from_micros(micros);
            assert!(Durations::lower_bound(bucket) <= duration, "{micros} µs");
            if bucket + 1 < DURATION_BUCKETS {
                assert!(duration < Durations::lower_bound(bucket + 1), "{micros} µs");
            }
        }
        // Far past the last bound: the last bucket.
        assert_eq!(Durations::bucket(u64::MAX), DURATION_BUCKETS - 1);
    }

    #[test]
    fn a_queue_that_a_few_lucky_calls_skip_is_still_seen() {
        // One call in ten answered at once (the task spawned last, polled
        // first) while the rest queued for 200 ms: the fastest call alone
        // would say there is no queue.
        let gate = Gate::new(settings());
        gate.answered(ms(2));
        assert!(!gate.end_interval().overloaded, "a calm interval first");
        for call in 0..100 {
            gate.answered(if call % 10 == 0 { ms(2) } else { ms(200) });
        }
        let overloaded = gate.end_interval();
        assert!(overloaded.overloaded, "{overloaded:?}");
        assert!(
            overloaded.standing.expect("measured") > ms(100),
            "{overloaded:?}"
        );
    }

    #[test]
    fn the_minimum_is_kept_until_taken() {
        let times = MinDelay::default();
        assert_eq!(times.take(), None);
        for millis in [7, 3, 9] {
            times.record(ms(millis));
        }
        assert_eq!(times.take(), Some(ms(3)));
        assert_eq!(times.take(), None, "taking starts afresh");
    }

    #[test]
    fn a_standing_queue_cuts_the_limit_below_what_was_in_flight() {
        let mut controller = with_baseline(2);
        assert_eq!(controller.limit(), 100);
        // The fast quarter took 52 ms, 50 ms beyond the baseline: ten times
        // the target, so the largest cut, ×0.5 of the 40 calls in flight
        // (not of the limit of 100).
        let cut = controller.end_interval(window(Some(52), 40));
        assert!(cut.overloaded);
        assert_eq!(cut.baseline, Some(ms(2)));
        assert_eq!(cut.standing, Some(ms(50)));
        assert_eq!((cut.before, cut.limit), (100, 20));
        // 6 ms beyond: ×5/6 of the 20 in flight.
        let cut = controller.end_interval(window(Some(8), 20));
        assert_eq!(cut.limit, 16);
        // Just beyond the target: the smallest cut, ×0.9.
        let cut = controller.end_interval(Window {
            fast_quarter: Some(ms(2) + Duration::from_micros(5_100)),
            connection_wait: None,
            peak_in_flight: 16,
        });
        assert_eq!(cut.limit, 14);
        // A cut never goes below the floor.
        for _ in 0..20 {
            controller.end_interval(window(Some(500), 100));
        }
        assert_eq!(controller.limit(), 2);
    }

    #[test]
    fn connections_waiting_to_be_read_are_a_standing_queue_too() {
        // Calls are fast once taken, but the connections' tasks wait 30 ms
        // to read what clients sent: the queue is before the calls.
        let gate = Arc::new(Gate::new(settings()));
        gate.answered(ms(1));
        gate.end_interval();
        let calls: Vec<_> = (0..10)
            .map(|_| Gate::try_enter(&gate).expect("admitted"))
            .collect();
        gate.answered(ms(1));
        for millis in [30, 45, 60] {
            gate.connection_waited(ms(millis));
        }
        let adjustment = gate.end_interval();
        assert!(adjustment.overloaded);
        assert_eq!(adjustment.standing, Some(ms(30)));
        assert_eq!(adjustment.limit, 5);
        drop(calls);
        // Once one connection is read at once, the queue is gone.
        gate.connection_waited(ms(0));
        gate.connection_waited(ms(50));
        assert!(!gate.end_interval().overloaded);
    }

    #[test]
    fn slow_calls_without_a_queue_are_no_overload() {
        // Every call takes 30 ms (a slow disk's fsync), well above the 5 ms
        // target, but none takes longer than the others: no queue.
        let mut controller = Controller::new(settings());
        for _ in 0..10 {
            let adjustment = controller.end_interval(window(Some(30), 50));
            assert!(!adjustment.overloaded, "{adjustment:?}");
        }
        assert_eq!(controller.limit(), 100);
        // Nothing answered in an interval: nothing to go by, no cut.
        assert!(!controller.end_interval(window(None, 100)).overloaded);
    }

    #[test]
    fn a_burst_that_drains_within_the_interval_is_no_standing_queue() {
        let gate = Arc::new(Gate::new(settings()));
        gate.answered(ms(1));
        gate.end_interval();
        // A burst: calls took long, but the queue emptied within the
        // interval (the calls after it as fast as ever, a quarter or more).
        for millis in [40, 80, 30, 60, 1, 1, 1, 1] {
            gate.answered(ms(millis));
        }
        let adjustment = gate.end_interval();
        assert!(!adjustment.overloaded);
        assert_eq!(adjustment.limit, 100);
    }

    #[test]
    fn calls_beyond_a_lowered_limit_are_shed_then_admitted_once_calm() {
        let gate = Arc::new(Gate::new(settings()));
        gate.answered(ms(1));
        gate.end_interval();
        let mut calls: Vec<_> = (0..8)
            .map(|_| Gate::try_enter(&gate).expect("admitted"))
            .collect();
        gate.answered(ms(60));
        let adjustment = gate.end_interval();
        assert!(adjustment.overloaded);
        assert_eq!(adjustment.limit, 4, "×0.5 of the 8 in flight");
        assert_eq!(Gate::try_enter(&gate).err(), Some(Shed::QueueDelay));
        // Calls end; below the limit a call is admitted again, even before
        // the queue is known to be gone.
        calls.truncate(3);
        let fourth = Gate::try_enter(&gate).expect("below the lowered limit");
        assert_eq!(Gate::try_enter(&gate).err(), Some(Shed::QueueDelay));
        drop(fourth);
        drop(calls);

        // Calm intervals with 100 calls offered each (as many admitted as
        // the limit allows, all as fast as the baseline) raise the limit
        // back to the maximum: no shedding outlives the queue.
        let mut limits = Vec::new();
        for _ in 0..60 {
            let admitted: Vec<_> = (0..100)
                .map_while(|_| Gate::try_enter(&gate).ok())
                .collect();
            for _ in &admitted {
                gate.answered(ms(2));
            }
            drop(admitted);
            limits.push(gate.end_interval().limit);
        }
        assert!(limits.is_sorted(), "{limits:?}");
        assert_eq!(gate.limit(), 100);
        assert!(
            limits.iter().position(|limit| *limit == 100) < Some(20),
            "back within 2 s of 100 ms intervals: {limits:?}"
        );
        let all: Vec<_> = (0..100)
            .map(|_| Gate::try_enter(&gate).expect("admitted"))
            .collect();
        assert_eq!(Gate::try_enter(&gate).err(), Some(Shed::Concurrency));
        assert_eq!(all.len(), gate.in_flight());
    }

    #[test]
    fn the_controller_settles_where_the_queue_stops_standing() {
        // A synthetic server: calls take 2 ms alone, and each call in flight
        // beyond 12 adds 1 ms (more work admitted than it can do). 80 calls
        // are offered at once, whatever the answers.
        let mut controller = with_baseline(2);
        let mut history = Vec::new();
        for _ in 0..200 {
            let in_flight = controller.limit().min(80);
            let fast_quarter = 2 + in_flight.saturating_sub(12) as u64;
            controller.end_interval(window(Some(fast_quarter), in_flight));
            history.push(controller.limit());
        }
        let settled = &history[100..];
        assert!(
            settled.iter().all(|limit| (8..=18).contains(limit)),
            "{settled:?}"
        );
    }

    #[test]
    fn a_long_overload_does_not_become_the_baseline() {
        let mut controller = with_baseline(2);
        // 80 calls offered at once, for a long time: a call takes 2 ms
        // alone, and 2 ms more per call in flight beyond 4.
        let mut limits = Vec::new();
        for _ in 0..10 * BASELINE_INTERVALS {
            let in_flight = controller.limit().min(80);
            let fast_quarter = 2 + 2 * in_flight.saturating_sub(4) as u64;
            controller.end_interval(window(Some(fast_quarter), in_flight));
            limits.push(controller.limit());
        }
        // Only the intervals at the floor, without a queue, reach the
        // baseline; the queue never does, so the limit stays low.
        assert!(
            controller.baseline() <= Some(ms(2)),
            "{:?}",
            controller.baseline()
        );
        assert!(limits[100..].iter().all(|limit| *limit <= 12), "{limits:?}");
    }

    #[test]
    fn a_slower_floor_becomes_the_baseline_and_the_limit_recovers() {
        let mut controller = with_baseline(2);
        // The disk slows down: even alone a call now takes 20 ms. At first
        // that looks like a queue, and the limit drops to the floor; there,
        // the calls' time becomes the baseline and the limit climbs back.
        let mut limits = Vec::new();
        for _ in 0..3 * BASELINE_INTERVALS {
            let limit = controller.limit();
            controller.end_interval(window(Some(20), limit.min(30)));
            limits.push(controller.limit());
        }
        assert!(limits.contains(&2), "{limits:?}");
        assert_eq!(controller.baseline(), Some(ms(20)));
        // Back above the 30 calls offered, with room for twice as many.
        assert_eq!(controller.limit(), 60, "{limits:?}");
    }

    #[test]
    fn an_interval_with_calls_but_none_answered_ok_leaves_the_limit_as_it_is() {
        let mut controller = with_baseline(2);
        // A queue cuts the limit to 40 (half the 80 in flight).
        controller.end_interval(window(Some(40), 80));
        assert_eq!(controller.limit(), 40);
        // Then storage refuses every write while it catches up: calls come
        // and go in microseconds, none answered OK, none timed.
        for _ in 0..20 {
            controller.end_interval(window(None, 10));
        }
        assert_eq!(controller.limit(), 40, "no evidence, no change");
        // A few fast answers among the refusals: no higher than twice the
        // calls that came (never lower).
        for _ in 0..20 {
            controller.end_interval(window(Some(2), 30));
        }
        assert_eq!(controller.limit(), 60);
        // Calls that reach it, answered well within the target: a quarter
        // more per interval, up to the maximum.
        controller.end_interval(window(Some(2), 60));
        assert_eq!(controller.limit(), 75);
    }

    #[test]
    fn a_lightly_loaded_server_keeps_room_for_a_burst() {
        let mut controller = with_baseline(2);
        // Cut to the floor (2) by a long delay with 4 calls in flight.
        controller.end_interval(window(Some(400), 4));
        assert_eq!(controller.limit(), 2);
        // Calm, one call at a time: up to an eighth of the maximum (100 / 8).
        for _ in 0..20 {
            controller.end_interval(window(Some(2), 1));
        }
        assert_eq!(controller.limit(), 12);
        // And idle: the same.
        for _ in 0..20 {
            controller.end_interval(window(None, 0));
        }
        assert_eq!(controller.limit(), 12);
    }

    #[test]
    fn a_reached_limit_climbs_fast_when_calm_and_creeps_near_the_target() {
        let mut controller = with_baseline(2);
        controller.end_interval(window(Some(40), 64));
        assert_eq!(controller.limit(), 32);
        // Well within the target (5 ms): a quarter more.
        controller.end_interval(window(Some(4), 32));
        assert_eq!(controller.limit(), 40);
        // Near it (4 ms beyond the baseline): about the square root more.
        controller.end_interval(window(Some(6), 40));
        assert_eq!(controller.limit(), 46);
    }

    #[test]
    fn an_overload_seen_an_interval_late_and_broken_by_refusals_keeps_the_limit_in_a_band() {
        // A synthetic server past capacity: 1,000 calls offered at once; a
        // call takes 2 ms alone and 1 ms more per 10 calls in flight beyond
        // 40, and the calls that end in an interval show the queue of the
        // interval before. For 1.5 s of every 5 s storage is catching up: the
        // writes are refused at once, so no call is timed and few are in
        // flight.
        let mut controller = Controller::new(Settings {
            max_limit: 1_000,
            ..settings()
        });
        controller.end_interval(window(Some(2), 1));
        let mut previous_in_flight: usize = 1_000;
        let mut limits = Vec::new();
        for interval in 0..400 {
            let window = if interval % 50 >= 35 {
                window(None, 5)
            } else {
                let in_flight = controller.limit().min(1_000);
                let delay = 2 + previous_in_flight.saturating_sub(40) as u64 / 10;
                previous_in_flight = in_flight;
                window(Some(delay), in_flight)
            };
            controller.end_interval(window);
            limits.push(controller.limit());
        }
        // The target (5 ms beyond 2) is met at about 70 in flight.
        let settled = &limits[100..];
        assert!(
            settled.iter().all(|limit| (20..=140).contains(limit)),
            "{settled:?}"
        );
    }

    #[test]
    fn the_baseline_forgets_what_is_older_than_its_window() {
        let mut controller = Controller::new(settings());
        controller.end_interval(window(Some(1), 1));
        for _ in 0..BASELINE_INTERVALS - 1 {
            controller.end_interval(window(Some(4), 1));
        }
        assert_eq!(controller.baseline(), Some(ms(1)));
        controller.end_interval(window(Some(4), 1));
        assert_eq!(controller.baseline(), Some(ms(4)));
    }

    #[test]
    fn without_a_target_the_limit_is_the_configured_one() {
        let mut controller = Controller::new(Settings {
            target: None,
            ..settings()
        });
        controller.end_interval(window(Some(1), 1));
        let adjustment = controller.end_interval(window(Some(10_000), 100));
        assert!(!adjustment.overloaded);
        assert_eq!(adjustment.limit, 100);
    }
}
