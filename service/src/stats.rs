//! Runtime counters behind `Admin.Stats`.

use dashmap::DashMap;
use nudge_models::pipeline::{Decision, FilterReason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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
    filtered: [AtomicU64; FilterReason::ALL.len()],
    served: DashMap<String, AtomicU64>,
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
            filtered: std::array::from_fn(|_| AtomicU64::new(0)),
            served: DashMap::new(),
        }
    }
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts a decision, what it served and what it filtered.
    pub fn record_decision(&self, decision: &Decision) {
        bump(&self.decisions);
        if decision.fallback.is_some() {
            bump(&self.fallbacks);
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
            match self.served.get(&served.action_id) {
                Some(counter) => bump(&counter),
                None => {
                    self.served
                        .entry(served.action_id.clone())
                        .or_default()
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
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

    /// Serves per action, most first.
    pub fn served(&self) -> Vec<(String, u64)> {
        let mut served: Vec<(String, u64)> = self
            .served
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().load(Ordering::Relaxed)))
            .collect();
        served.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        served
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
