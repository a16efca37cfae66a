//! [`Shared`]: what every customer actor and the engine read — the
//! configuration, the running catalog and model, the global budgets, the
//! stores, the clock, counters and metrics — and the one place each
//! observable event is recorded into both the `Admin.Stats` counters and the
//! Prometheus metrics.

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{BudgetedCall, Stage};
use crate::journeys::{DispatchHub, JourneyBook, JourneyStats, JourneyTimers};
use crate::metrics::Metrics;
use crate::registry::{ModelRegistry, Trial};
use crate::stats::{Stats, bump};
use crate::store::Stores;
use arc_swap::ArcSwap;
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::TrackResult;
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::Decision;
use nudge_models::send_time::{HOURS_PER_WEEK, HourOfWeek, PopulationClock};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What every customer actor reads.
#[derive(Debug)]
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The running catalog; a reload swaps it atomically.
    pub catalog: ArcSwap<Catalog>,
    /// The loaded models and which serves whom; a variant without a model
    /// decides with the fallback ladder.
    pub models: ModelRegistry,
    /// Global per-action budgets: the live counters every decision reserves
    /// from, rebuilt from [`Stores::budgets`] at start.
    pub budgets: BudgetCounters,
    /// Customer state, the decision log and the budget ledger.
    pub stores: Stores,
    /// The service's time.
    pub clock: Arc<dyn Clock>,
    /// Counters.
    pub stats: Stats,
    /// Prometheus metric handles.
    pub metrics: Metrics,
    /// The journey versions runs may be on, and the operator's pauses.
    pub journeys: JourneyBook,
    /// When each customer's journeys are next due.
    pub timers: JourneyTimers,
    /// Journey analytics since the service started.
    pub journey_stats: JourneyStats,
    /// The delivery services' subscriptions to journeys' sends.
    pub dispatches: DispatchHub,
    /// The population's engagements by local hour of week, since start:
    /// what a suggested send time falls back on for a customer with thin
    /// history.
    pub population: PopulationCounts,
}

/// Engagements of every customer by their local hour of week, counted as
/// the actors see them (relaxed atomics: a suggestion reads a snapshot).
#[derive(Debug)]
pub struct PopulationCounts([AtomicU64; HOURS_PER_WEEK]);

impl Default for PopulationCounts {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl PopulationCounts {
    /// Counts one engagement in `hour`.
    pub fn record(&self, hour: HourOfWeek) {
        self.0[usize::from(hour.index())].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts as a population clock (uniform while there are none).
    pub fn snapshot(&self) -> PopulationClock {
        PopulationClock::from_counts(std::array::from_fn(|hour| {
            self.0[hour].load(Ordering::Relaxed)
        }))
    }
}

/// Each observable event is recorded once here, into both the `Admin.Stats`
/// counters and the Prometheus metrics, so the two never drift apart.
impl Shared {
    /// What a customer's journeys did: every history entry, and triggers
    /// that did not start a run.
    pub fn record_journeys(&self, outcome: &nudge_models::journey::Outcome) {
        if outcome.is_empty() {
            return;
        }
        let book = self.journeys.load();
        let drop_offs = self.journey_stats.record(outcome, &book);
        self.metrics.journeys(outcome, &book, &drop_offs);
    }

    /// A customer actor was started.
    pub fn record_activation(&self) {
        bump(&self.stats.activations);
        self.metrics.activated();
    }

    /// A customer actor stopped (idle, evicted or shutting down).
    pub fn record_passivation(&self) {
        bump(&self.stats.passivations);
        self.metrics.passivated();
    }

    /// An event was applied, or acknowledged as a duplicate.
    pub fn record_event(&self, catalog: &Catalog, name: &str, result: TrackResult) {
        match result {
            TrackResult::Applied => {
                bump(&self.stats.events);
                self.metrics.event_applied(catalog, name);
            }
            TrackResult::Duplicate => {
                bump(&self.stats.duplicate_events);
                self.metrics.duplicate_event();
            }
        }
    }

    /// A call's service budget ran out at `stage` (a client's own deadline
    /// passing is not counted here).
    pub fn record_budget_exhausted(&self, call: BudgetedCall, stage: Stage) {
        self.metrics.budget_exhausted(call, stage);
        tracing::debug!(
            call = call.code(),
            stage = stage.code(),
            "service budget ran out before the answer"
        );
    }

    /// An outcome was applied.
    pub fn record_outcome(&self, variant: &str, outcome: OutcomeKind) {
        self.stats.record_outcome(variant, outcome);
        self.metrics.outcome(variant, outcome);
    }

    /// After a conversion counted in `trial`: reads the live guardrail and,
    /// when it rolls the challenger back, says so (a warning with the
    /// figures, the metric, the running model's version).
    pub fn check_guardrail(&self, trial: &Arc<Trial>) {
        match self.models.check_guardrail(trial, self.clock.now()) {
            Ok(None) => {}
            Ok(Some(rollback)) => {
                let (challenger, control) = (&rollback.status.challenger, &rollback.status.control);
                self.metrics.guardrail_rollback();
                self.metrics.model_loaded(Some(&control.model_version));
                tracing::warn!(
                    variant = %challenger.variant,
                    model = %challenger.model_version,
                    control = %control.model_version,
                    reason = %rollback.reason(),
                    "live guardrail rolled the experiment back"
                );
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    "live guardrail could not roll the experiment back: it keeps running until rolled back by hand"
                );
            }
        }
    }

    /// A decision was answered (dry runs included).
    pub fn record_decision(
        &self,
        catalog: &Catalog,
        placement: &str,
        variant: &str,
        decision: &Decision,
    ) {
        self.stats.record_decision(variant, decision);
        self.metrics
            .record_decision(catalog, placement, variant, decision);
    }
}
