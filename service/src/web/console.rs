//! The figures of `/console`: the same snapshot as `Admin.Stats`
//! ([`Engine::stats`]) and the journeys' analytics, as JSON, with a
//! history of the last minutes so a console opened now draws its charts at
//! once. [`sample`] takes one snapshot every [`SAMPLE_INTERVAL`] of the
//! service clock into a [`History`] of [`HISTORY_SAMPLES`].

use crate::engine::Engine;
use crate::requests::StatsSnapshot;
use nudge_models::time::{Span, Timestamp};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How often the history takes a sample.
pub const SAMPLE_INTERVAL: Span = Span(2_000);

/// Samples kept: ten minutes.
pub const HISTORY_SAMPLES: usize = 300;

/// One point of the history: cumulative counters and the latency window's
/// percentiles at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was taken (service clock).
    pub at: Timestamp,
    /// Decisions since start.
    pub decisions: u64,
    /// Fallback decisions since start.
    pub fallbacks: u64,
    /// Events applied since start.
    pub events: u64,
    /// Outcomes applied since start.
    pub outcomes: u64,
    /// Live customer actors.
    pub live_customers: u64,
    /// Decide latency percentiles over the last minute, µs.
    pub p50_micros: u64,
    /// 99th percentile.
    pub p99_micros: u64,
    /// 99.9th percentile.
    pub p999_micros: u64,
}

impl Sample {
    /// The sample of `stats` at `at`.
    pub fn of(stats: &StatsSnapshot, at: Timestamp) -> Self {
        Self {
            at,
            decisions: stats.decisions,
            fallbacks: stats.fallbacks,
            events: stats.events,
            outcomes: stats.outcomes,
            live_customers: stats.live_customers,
            p50_micros: stats.latency.p50_micros,
            p99_micros: stats.latency.p99_micros,
            p999_micros: stats.latency.p999_micros,
        }
    }

    fn to_json(self) -> Value {
        json!({
            "at_ms": self.at.0,
            "decisions": self.decisions,
            "fallbacks": self.fallbacks,
            "events": self.events,
            "outcomes": self.outcomes,
            "live_customers": self.live_customers,
            "p50_micros": self.p50_micros,
            "p99_micros": self.p99_micros,
            "p999_micros": self.p999_micros,
        })
    }
}

/// The last [`HISTORY_SAMPLES`] samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Adds `sample`, dropping the oldest beyond the capacity.
    pub fn push(&self, sample: Sample) {
        let mut samples = self.lock();
        if samples.len() == HISTORY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        // A panic while pushing leaves a valid deque.
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Samples the engine's figures into `history` every [`SAMPLE_INTERVAL`]
/// of the service clock, forever (the server aborts it on shutdown).
pub async fn sample(engine: Arc<Engine>, history: Arc<History>) {
    let clock = engine.shared().clock.clone();
    let mut due = clock.now();
    loop {
        clock.sleep_until(due).await;
        let now = clock.now();
        history.push(Sample::of(&engine.stats(), now));
        due = due.plus(SAMPLE_INTERVAL);
        if due <= now {
            due = now.plus(SAMPLE_INTERVAL);
        }
    }
}

/// The `/console/stats` document: the snapshot, the journeys and the history,
/// the snapshot itself as its newest point.
pub fn figures(engine: &Engine, history: &History) -> Value {
    let now = engine.shared().clock.now();
    let stats = engine.stats();
    let mut samples = history.samples();
    // The snapshot is the newest point, in place of a sample of the same instant.
    if samples.last().is_some_and(|last| last.at >= now) {
        samples.pop();
    }
    samples.push(Sample::of(&stats, now));
    let journeys: Vec<Value> = engine
        .journeys()
        .into_iter()
        .map(|view| {
            json!({
                "id": view.journey.id.as_ref(),
                "version": view.journey.version,
                "paused": view.paused,
                "active": view.figures.active(),
                "started": view.figures.started,
                "converted": view.figures.ended_as("converted"),
                "sent": view.figures.sent,
            })
        })
        .collect();
    let counts = |pairs: &[(String, u64)], name: &str| -> Vec<Value> {
        pairs
            .iter()
            .map(|(key, count)| json!({ name: key, "count": count }))
            .collect()
    };
    let latency = &stats.latency;
    json!({
        "now_ms": now.0,
        "uptime_seconds": stats.uptime_seconds,
        "catalog_version": stats.catalog_version,
        "model_version": stats.model_version,
        "live_customers": stats.live_customers,
        "decisions": stats.decisions,
        "fallbacks": stats.fallbacks,
        "events": stats.events,
        "duplicate_events": stats.duplicate_events,
        "outcomes": stats.outcomes,
        "rejected_requests": stats.rejected,
        "activations": stats.activations,
        "passivations": stats.passivations,
        "latency": {
            "window_seconds": latency.window_seconds,
            "count": latency.count,
            "p50_micros": latency.p50_micros,
            "p90_micros": latency.p90_micros,
            "p99_micros": latency.p99_micros,
            "p999_micros": latency.p999_micros,
            "max_micros": latency.max_micros,
        },
        "served": counts(&stats.served, "action"),
        "filtered": counts(&stats.filtered, "reason"),
        "fallbacks_by_reason": counts(&stats.fallbacks_by_reason, "reason"),
        "variants": stats.variants.iter().map(|variant| json!({
            "variant": variant.variant,
            "decisions": variant.decisions,
            "impressions": variant.impressions,
            "clicks": variant.clicks,
            "conversions": variant.conversions,
        })).collect::<Vec<_>>(),
        "journeys": journeys,
        "sample_interval_seconds": SAMPLE_INTERVAL.0 / 1_000,
        "history": samples.into_iter().map(Sample::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, decisions: u64) -> Sample {
        Sample {
            at: Timestamp(at),
            decisions,
            fallbacks: 0,
            events: 0,
            outcomes: 0,
            live_customers: 1,
            p50_micros: 10,
            p99_micros: 20,
            p999_micros: 30,
        }
    }

    #[test]
    fn the_history_keeps_the_newest_samples_in_order() {
        let history = History::default();
        for index in 0..(HISTORY_SAMPLES as i64 + 5) {
            history.push(sample(index * 2_000, index.unsigned_abs()));
        }
        let samples = history.samples();
        assert_eq!(samples.len(), HISTORY_SAMPLES);
        assert_eq!(samples[0].decisions, 5);
        assert!(samples.windows(2).all(|pair| pair[0].at < pair[1].at));
    }

    #[test]
    fn a_sample_serializes_with_its_time_and_counters() {
        let value = sample(4_000, 12).to_json();
        assert_eq!(value["at_ms"], 4_000);
        assert_eq!(value["decisions"], 12);
        assert_eq!(value["p99_micros"], 20);
    }
}
