//! Runtime counters behind `Admin.Stats`, and the recent Decide latency.
//!
//! Everything here is updated on the hot path, so it is cheap: counters are
//! relaxed atomic adds (per-action and per-variant counters are found by one
//! hash lookup without allocating after their first use), and a decision's
//! latency is one short, practically uncontended lock (see [`LatencyWindow`]).

use dashmap::DashMap;
use hdrhistogram::Histogram;
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::{Decision, FallbackReason, FilterReason};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Counters since start-up. Cheap to update from any thread.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// Decisions answered (dry runs included).
    pub decisions: AtomicU64,
    /// Decisions answered from the fallback ladder.
    pub fallbacks: AtomicU64,
    /// Events applied.
    pub events: AtomicU64,
    /// Events acknowledged as duplicates.
    pub duplicate_events: AtomicU64,
    /// Outcomes applied.
    pub outcomes: AtomicU64,
    /// Calls refused (invalid, overloaded, deadline).
    pub rejected: AtomicU64,
    /// Actors activated.
    pub activations: AtomicU64,
    /// Actors passivated.
    pub passivations: AtomicU64,
    /// Decide latency over the last [`LatencyWindow::WINDOW`].
    pub latency: LatencyWindow,
    filtered: [AtomicU64; FilterReason::ALL.len()],
    fallbacks_by_reason: [AtomicU64; FallbackReason::ALL.len()],
    served: DashMap<String, AtomicU64>,
    variants: DashMap<String, AtomicU64>,
    /// Impressions, clicks and conversions per variant.
    variant_outcomes: DashMap<String, [AtomicU64; 3]>,
}

/// One experiment variant's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantTotals {
    /// The variant.
    pub variant: String,
    /// Decisions answered with it.
    pub decisions: u64,
    /// Impressions reported for its customers.
    pub impressions: u64,
    /// Clicks reported for its customers.
    pub clicks: u64,
    /// Conversions reported for its customers.
    pub conversions: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            decisions: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            events: AtomicU64::new(0),
            duplicate_events: AtomicU64::new(0),
            outcomes: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            activations: AtomicU64::new(0),
            passivations: AtomicU64::new(0),
            latency: LatencyWindow::default(),
            filtered: std::array::from_fn(|_| AtomicU64::new(0)),
            fallbacks_by_reason: std::array::from_fn(|_| AtomicU64::new(0)),
            served: DashMap::new(),
            variants: DashMap::new(),
            variant_outcomes: DashMap::new(),
        }
    }
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds one to the counter of `key`, creating it on first use (the lookup
/// borrows `key`; only a new key allocates).
fn bump_keyed(counters: &DashMap<String, AtomicU64>, key: &str) {
    match counters.get(key) {
        Some(counter) => bump(&counter),
        None => {
            counters
                .entry(key.to_owned())
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every counter of `counters`, most first, ties by key.
fn most_first(counters: &DashMap<String, AtomicU64>) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = counters
        .iter()
        .map(|entry| (entry.key().clone(), entry.value().load(Ordering::Relaxed)))
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

impl Stats {
    /// Counts a decision answered with experiment `variant`, what it served
    /// and what it filtered, and why it fell back.
    pub fn record_decision(&self, variant: &str, decision: &Decision) {
        bump(&self.decisions);
        bump_keyed(&self.variants, variant);
        if let Some(reason) = decision.fallback {
            bump(&self.fallbacks);
            if let Some(position) = FallbackReason::ALL.iter().position(|r| *r == reason) {
                bump(&self.fallbacks_by_reason[position]);
            }
        }
        for filtered in &decision.filtered {
            if let Some(position) = FilterReason::ALL
                .iter()
                .position(|reason| *reason == filtered.reason)
            {
                bump(&self.filtered[position]);
            }
        }
        for served in &decision.served {
            bump_keyed(&self.served, &served.action_id);
        }
    }

    /// Seconds since start-up.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Filtered candidates by reason, non-zero only.
    pub fn filtered(&self) -> Vec<(FilterReason, u64)> {
        FilterReason::ALL
            .iter()
            .zip(&self.filtered)
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Fallback decisions by reason, non-zero only.
    pub fn fallbacks_by_reason(&self) -> Vec<(FallbackReason, u64)> {
        FallbackReason::ALL
            .iter()
            .zip(&self.fallbacks_by_reason)
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Serves per action, most first.
    pub fn served(&self) -> Vec<(String, u64)> {
        most_first(&self.served)
    }

    /// Counts an outcome reported for a customer of `variant` (impressions,
    /// clicks and conversions; the other kinds count in `outcomes` only).
    pub fn record_outcome(&self, variant: &str, outcome: OutcomeKind) {
        bump(&self.outcomes);
        let index = match outcome {
            OutcomeKind::Impression => 0,
            OutcomeKind::Click => 1,
            OutcomeKind::Conversion => 2,
            _ => return,
        };
        if let Some(counters) = self.variant_outcomes.get(variant) {
            bump(&counters[index]);
            return;
        }
        let counters = self
            .variant_outcomes
            .entry(variant.to_owned())
            .or_insert_with(|| std::array::from_fn(|_| AtomicU64::new(0)));
        bump(&counters[index]);
    }

    /// Each variant's decisions and outcomes, most decisions first.
    pub fn variants(&self) -> Vec<VariantTotals> {
        let mut names: Vec<(String, u64)> = most_first(&self.variants);
        for entry in &self.variant_outcomes {
            if !names.iter().any(|(name, _)| name == entry.key()) {
                names.push((entry.key().clone(), 0));
            }
        }
        names
            .into_iter()
            .map(|(variant, decisions)| {
                let outcome = |index: usize| {
                    self.variant_outcomes
                        .get(&variant)
                        .map_or(0, |counters| Stats::get(&counters[index]))
                };
                VariantTotals {
                    decisions,
                    impressions: outcome(0),
                    clicks: outcome(1),
                    conversions: outcome(2),
                    variant,
                }
            })
            .collect()
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Percentiles of the latencies recorded in a [`LatencyWindow`], in
/// microseconds (all zero when `count` is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// How far back the window reaches, in seconds.
    pub window_seconds: u32,
    /// Latencies recorded in the window.
    pub count: u64,
    /// Median.
    pub p50_micros: u64,
    /// 90th percentile.
    pub p90_micros: u64,
    /// 99th percentile.
    pub p99_micros: u64,
    /// 99.9th percentile.
    pub p999_micros: u64,
    /// Largest.
    pub max_micros: u64,
}

/// Seconds per step of the window: the unit it moves by.
const STEP_SECS: u64 = 5;
/// Steps in the window, the current (partial) one included.
const STEPS: usize = 12;
/// Largest latency told apart, in µs; longer ones count as this.
const HIGHEST_MICROS: u64 = 60_000_000;
/// Significant digits kept: values within 1%, about 10 KB per histogram.
const SIGNIFICANT_DIGITS: u8 = 2;
/// Most shards, whatever the number of cores.
const MAX_SHARDS: usize = 8;

/// One step's histogram.
#[derive(Debug)]
struct Step {
    /// Which step since the window's start it holds (`u64::MAX`: none yet).
    index: u64,
    /// Allocated on first use, then reset and reused.
    histogram: Option<Histogram<u32>>,
}

/// One shard: a ring of steps.
#[derive(Debug)]
struct Ring([Step; STEPS]);

impl Default for Ring {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Step {
            index: u64::MAX,
            histogram: None,
        }))
    }
}

/// Hands each thread the next shard number, round-robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard number (taken modulo the number of shards).
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

fn new_histogram<C: hdrhistogram::Counter>() -> Histogram<C> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
        .expect("constant bounds are valid")
}

/// Latencies of the last [`LatencyWindow::WINDOW`] (60 s), moving in 5 s
/// steps: a ring of HDR histograms, one per step, reset when the ring comes
/// back to it.
///
/// Recording takes one lock, of the calling thread's shard: threads are spread
/// round-robin over up to [`MAX_SHARDS`] shards (one per core), so the tokio
/// workers that record never wait for each other, and the lock costs what an
/// uncontended one does. A record is about 16 ns (measured on the development
/// machine, against a Decide of 100–200 µs end to end). [`summary`] merges
/// every shard's live steps; it is meant for a poll every second or so.
///
/// [`summary`]: LatencyWindow::summary
#[derive(Debug)]
pub struct LatencyWindow {
    started: Instant,
    shards: Box<[Mutex<Ring>]>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(Instant::now(), cores.clamp(1, MAX_SHARDS))
    }
}

impl LatencyWindow {
    /// How far back the window reaches.
    pub const WINDOW: Duration = Duration::from_secs(STEP_SECS * STEPS as u64);

    /// A window whose steps count from `started`, over `shards` shards.
    pub fn new(started: Instant, shards: usize) -> Self {
        Self {
            started,
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// The step `at` falls in.
    fn step(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / STEP_SECS
    }

    /// Records a latency `elapsed` that ended at `at` (the caller's clock
    /// reading, so that recording reads no clock).
    pub fn record(&self, at: Instant, elapsed: Duration) {
        let step = self.step(at);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let shard = SHARD.with(|shard| *shard) % self.shards.len();
        let mut ring = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = &mut ring.0[(step % STEPS as u64) as usize];
        let histogram = slot.histogram.get_or_insert_with(new_histogram);
        if slot.index != step {
            histogram.reset();
            slot.index = step;
        }
        // Under 1 µs counts as 1 µs, the histogram's lowest value.
        histogram.saturating_record(micros.max(1));
    }

    /// Percentiles of the latencies recorded in the window that ends at `now`.
    pub fn summary(&self, now: Instant) -> LatencySummary {
        let current = self.step(now);
        let mut merged = new_histogram::<u64>();
        for shard in &self.shards {
            let ring = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in &ring.0 {
                let live = slot.index <= current && current - slot.index < STEPS as u64;
                if let (true, Some(histogram)) = (live, &slot.histogram) {
                    for value in histogram.iter_recorded() {
                        merged.saturating_record_n(
                            value.value_iterated_to(),
                            u64::from(value.count_at_value()),
                        );
                    }
                }
            }
        }
        let window_seconds = u32::try_from(Self::WINDOW.as_secs()).unwrap_or(u32::MAX);
        if merged.is_empty() {
            return LatencySummary {
                window_seconds,
                ..LatencySummary::default()
            };
        }
        LatencySummary {
            window_seconds,
            count: merged.len(),
            p50_micros: merged.value_at_quantile(0.50),
            p90_micros: merged.value_at_quantile(0.90),
            p99_micros: merged.value_at_quantile(0.99),
            p999_micros: merged.value_at_quantile(0.999),
            max_micros: merged.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_models::pipeline::{Filtered, Served};

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Within the histogram's 1% precision.
    fn close(actual: u64, expected: u64) -> bool {
        actual.abs_diff(expected) * 100 <= expected
    }

    #[test]
    fn an_empty_window_reports_zeros() {
        let start = Instant::now();
        let window = LatencyWindow::new(start, 2);
        assert_eq!(
            window.summary(start),
            LatencySummary {
                window_seconds: 60,
                ..LatencySummary::default()
            }
        );
    }

    #[test]
    fn percentiles_of_the_recorded_latencies() {
        let start = Instant::now();
        let window = LatencyWindow::new(start, 3);
        // 1..=1000 µs, recorded from several threads (so several shards).
        std::thread::scope(|scope| {
            for part in 0..4_u64 {
                let window = &window;
                scope.spawn(move || {
                    for n in (1..=1_000).filter(|n| n % 4 == part) {
                        window.record(start + Duration::from_secs(1), micros(n));
                    }
                });
            }
        });
        let summary = window.summary(start + Duration::from_secs(2));
        assert_eq!(summary.count, 1_000);
        for (actual, expected) in [
            (summary.p50_micros, 500),
            (summary.p90_micros, 900),
            (summary.p99_micros, 990),
            (summary.p999_micros, 999),
            (summary.max_micros, 1_000),
        ] {
            assert!(
                close(actual, expected),
                "{actual} vs {expected}: {summary:?}"
            );
        }
    }

    #[test]
    fn old_steps_leave_the_window_and_their_slots_are_reused() {
        let start = Instant::now();
        let window = LatencyWindow::new(start, 1);
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        window.record(at(0), micros(10_000));
        window.record(at(30), micros(100));
        assert_eq!(window.summary(at(59)).count, 2);
        assert_eq!(window.summary(at(59)).max_micros / 100, 100, "10 ms");
        // At 60 s the first step (0–5 s) has left the window.
        let later = window.summary(at(60));
        assert_eq!(later.count, 1);
        assert!(close(later.max_micros, 100), "{later:?}");
        // 60 s falls in the first step's slot again: it starts from empty.
        window.record(at(61), micros(200));
        let summary = window.summary(at(62));
        assert_eq!(summary.count, 2, "{summary:?}");
        assert!(close(summary.max_micros, 200), "{summary:?}");
        assert_eq!(window.summary(at(200)).count, 0);
    }

    #[test]
    fn extreme_latencies_are_clamped() {
        let start = Instant::now();
        let window = LatencyWindow::new(start, 1);
        window.record(start, Duration::ZERO);
        window.record(start, Duration::from_secs(3_600));
        let summary = window.summary(start);
        assert_eq!(summary.count, 2);
        assert_eq!(summary.p50_micros, 1);
        assert!(close(summary.max_micros, HIGHEST_MICROS), "{summary:?}");
    }

    #[test]
    fn decisions_are_counted_by_variant_reason_and_action() {
        let stats = Stats::default();
        let served = |action_id: &str| Served {
            action_id: action_id.to_owned(),
            channel: "in_app".to_owned(),
            category: "upsell".to_owned(),
            rank: 1,
            score: 1.0,
            propensity: 0.5,
            selection_probability: 1.0,
            confidence: 0.5,
            value: 1.0,
            rationale: Vec::new(),
            payload: std::collections::BTreeMap::new(),
            features: Vec::new(),
        };
        let filtered = |reason| Filtered {
            action_id: "x".into(),
            reason,
            message: "".into(),
            score: None,
            propensity: None,
        };
        let decision = Decision {
            served: vec![served("a"), served("b")],
            filtered: vec![
                filtered(FilterReason::CapChannel),
                filtered(FilterReason::CapChannel),
                filtered(FilterReason::OptedOut),
            ],
            model_version: None,
            fallback: None,
        };
        let fallback = Decision {
            served: vec![served("b")],
            filtered: Vec::new(),
            model_version: None,
            fallback: Some(FallbackReason::Deadline),
        };
        stats.record_decision("default", &decision);
        stats.record_decision("default", &fallback);
        stats.record_decision("treatment", &fallback);
        assert_eq!(Stats::get(&stats.decisions), 3);
        assert_eq!(Stats::get(&stats.fallbacks), 2);
        assert_eq!(stats.fallbacks_by_reason(), [(FallbackReason::Deadline, 2)]);
        assert_eq!(
            stats.filtered(),
            [(FilterReason::OptedOut, 1), (FilterReason::CapChannel, 2)]
        );
        assert_eq!(stats.served(), [("b".to_owned(), 3), ("a".to_owned(), 1)]);
        stats.record_outcome("treatment", OutcomeKind::Conversion);
        stats.record_outcome("treatment", OutcomeKind::Impression);
        stats.record_outcome("control", OutcomeKind::Click);
        stats.record_outcome("treatment", OutcomeKind::Dismiss);
        let totals = |variant: &str, decisions, impressions, clicks, conversions| VariantTotals {
            variant: variant.to_owned(),
            decisions,
            impressions,
            clicks,
            conversions,
        };
        assert_eq!(
            stats.variants(),
            [
                totals("default", 2, 0, 0, 0),
                totals("treatment", 1, 1, 0, 1),
                totals("control", 0, 0, 1, 0)
            ]
        );
        assert_eq!(Stats::get(&stats.outcomes), 4);
    }

    #[test]
    fn every_fallback_reason_is_listed() {
        for reason in FallbackReason::ALL {
            // Exhaustive: a new reason does not compile until it is listed.
            match reason {
                FallbackReason::ModelMissing
                | FallbackReason::Deadline
                | FallbackReason::Overloaded
                | FallbackReason::ModelError => {}
            }
        }
        let mut codes: Vec<&str> = FallbackReason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 4);
    }
}
