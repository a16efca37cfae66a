//! The handles of the engine and the actors: decisions, actors, events,
//! outcomes, and the running catalog's and model's versions.

use super::*;
use crate::error::{BudgetedCall, Stage};
use metrics::{Counter, Gauge, Histogram};
use nudge_models::catalog::Catalog;
use nudge_models::experiment::DEFAULT_VARIANT;
use nudge_models::pipeline::Decision;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

/// Handles keyed by a label value from the catalog: registered on the value's
/// first use, then found by a hash lookup on a borrowed `&str`.
#[derive(Debug)]
struct ByLabel<H>(RwLock<HashMap<Box<str>, H>>);

impl<H> Default for ByLabel<H> {
    fn default() -> Self {
        Self(RwLock::new(HashMap::new()))
    }
}

impl<H> ByLabel<H> {
    /// Calls `use_handle` with the handle of `value`, registering it with
    /// `register` the first time.
    fn with<R>(
        &self,
        value: &str,
        register: impl FnOnce() -> H,
        use_handle: impl FnOnce(&H) -> R,
    ) -> R {
        {
            let handles = self.0.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handle) = handles.get(value) {
                return use_handle(handle);
            }
        }
        let mut handles = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let handle = handles.entry(Box::from(value)).or_insert_with(register);
        use_handle(handle)
    }
}

/// The outcome counters of one variant, one per kind.
fn outcome_counters(variant: &str) -> [Counter; OutcomeKind::ALL.len()] {
    OutcomeKind::ALL.map(|outcome| {
        metrics::counter!(
            OUTCOMES_REPORTED_TOTAL,
            OUTCOME => outcome.name(),
            VARIANT => variant.to_owned()
        )
    })
}

/// The handles of one placement.
#[derive(Debug)]
struct PlacementHandles {
    /// Decide latency: `[fallback = "no", fallback = "yes"]`.
    duration: [Histogram; 2],
    /// Served by action, then variant.
    served: ByLabel<ByLabel<Counter>>,
}

/// A `*_info` gauge: 1 for the current version, 0 for the ones it replaced.
#[derive(Debug)]
struct VersionInfo {
    name: &'static str,
    current: Mutex<Option<String>>,
}

impl VersionInfo {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            current: Mutex::new(None),
        }
    }

    /// Marks `version` as the running one (none: nothing is running).
    fn set(&self, version: Option<&str>) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = current.take()
            && Some(previous.as_str()) != version
        {
            metrics::gauge!(self.name, VERSION => previous).set(0.0);
        }
        if let Some(version) = version {
            metrics::gauge!(self.name, VERSION => version.to_owned()).set(1.0);
        }
        *current = version.map(str::to_owned);
    }
}

/// Every metric handle of one engine. Create it after the recorder is
/// installed (see the module documentation).
#[derive(Debug)]
pub struct Metrics {
    placements: ByLabel<PlacementHandles>,
    filtered: [Counter; FilterReason::ALL.len()],
    /// By channel, then by scope in [`CAP_SCOPES`] order.
    cap_hits: ByLabel<[Counter; CAP_SCOPES.len()]>,
    fallbacks: [Counter; FALLBACK_REASONS.len()],
    mailbox_saturated: Counter,
    /// By call, then by stage.
    budget_exhausted: [[Counter; Stage::ALL.len()]; BudgetedCall::ALL.len()],
    live: Gauge,
    activations: Counter,
    passivations: Counter,
    events: ByLabel<Counter>,
    other_events: Counter,
    duplicate_events: Counter,
    /// Outcomes by variant, then kind.
    outcomes: ByLabel<[Counter; OutcomeKind::ALL.len()]>,
    catalog_info: VersionInfo,
    model_info: VersionInfo,
    guardrail_rollbacks: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the handles of every fixed label set with the installed
    /// recorder, so those series are exported (at 0) from the start.
    pub fn new() -> Self {
        Self {
            placements: ByLabel::default(),
            filtered: FilterReason::ALL
                .map(|reason| metrics::counter!(DECIDE_FILTERED_TOTAL, REASON => reason.code())),
            cap_hits: ByLabel::default(),
            fallbacks: FALLBACK_REASONS
                .map(|reason| metrics::counter!(DECIDE_FALLBACKS_TOTAL, REASON => reason.code())),
            mailbox_saturated: metrics::counter!(ACTORS_MAILBOX_SATURATED_TOTAL),
            budget_exhausted: BudgetedCall::ALL.map(|call| {
                Stage::ALL.map(|stage| {
                    metrics::counter!(BUDGET_EXHAUSTED_TOTAL, CALL => call.code(), STAGE => stage.code())
                })
            }),
            live: metrics::gauge!(ACTORS_LIVE),
            activations: metrics::counter!(ACTORS_ACTIVATIONS_TOTAL),
            passivations: metrics::counter!(ACTORS_PASSIVATIONS_TOTAL),
            events: ByLabel::default(),
            other_events: metrics::counter!(EVENTS_INGESTED_TOTAL, EVENT => OTHER_EVENT),
            duplicate_events: metrics::counter!(EVENTS_DUPLICATES_TOTAL),
            outcomes: {
                // The default variant's series exist from the start (at 0).
                let outcomes = ByLabel::default();
                outcomes.with(DEFAULT_VARIANT, || outcome_counters(DEFAULT_VARIANT), |_| ());
                outcomes
            },
            catalog_info: VersionInfo::new(CATALOG_INFO),
            model_info: VersionInfo::new(MODEL_INFO),
            guardrail_rollbacks: metrics::counter!(MODELS_GUARDRAIL_ROLLBACKS_TOTAL),
        }
    }

    fn placement<R>(&self, placement: &str, use_handles: impl FnOnce(&PlacementHandles) -> R) -> R {
        self.placements.with(
            placement,
            || PlacementHandles {
                duration: ["no", "yes"].map(|fallback| {
                    metrics::histogram!(
                        DECIDE_DURATION_SECONDS,
                        PLACEMENT => placement.to_owned(),
                        FALLBACK => fallback
                    )
                }),
                served: ByLabel::default(),
            },
            use_handles,
        )
    }

    /// A decision answered in `elapsed` (placement from the catalog).
    pub fn decided(&self, placement: &str, fallback: bool, elapsed: Duration) {
        self.placement(placement, |handles| {
            handles.duration[usize::from(fallback)].record(elapsed.as_secs_f64());
        });
    }

    /// What a decision served and filtered, and why it fell back.
    pub fn record_decision(
        &self,
        catalog: &Catalog,
        placement: &str,
        variant: &str,
        decision: &Decision,
    ) {
        if !decision.served.is_empty() {
            self.placement(placement, |handles| {
                for served in &decision.served {
                    let action = served.action_id.as_str();
                    handles.served.with(action, ByLabel::default, |variants| {
                        variants.with(
                            variant,
                            || {
                                metrics::counter!(
                                    DECIDE_SERVED_TOTAL,
                                    ACTION => action.to_owned(),
                                    PLACEMENT => placement.to_owned(),
                                    VARIANT => variant.to_owned()
                                )
                            },
                            |counter| counter.increment(1),
                        );
                    });
                }
            });
        }
        let mut filtered = [0_u64; FilterReason::ALL.len()];
        for candidate in &decision.filtered {
            if let Some(index) = filter_index(candidate.reason) {
                filtered[index] += 1;
            }
            if let Some(scope) = cap_scope_index(candidate.reason)
                && let Some(action) = catalog.action(&candidate.action_id)
            {
                self.cap_hit(&action.channel, scope);
            }
        }
        for (counter, count) in self.filtered.iter().zip(filtered) {
            if count > 0 {
                counter.increment(count);
            }
        }
        if let Some(reason) = decision.fallback {
            self.fallbacks[fallback_index(reason)].increment(1);
            if reason == FallbackReason::Overloaded {
                self.mailbox_saturated.increment(1);
            }
        }
    }

    fn cap_hit(&self, channel: &str, scope: usize) {
        self.cap_hits.with(
            channel,
            || {
                CAP_SCOPES.map(|scope| {
                    metrics::counter!(
                        DECIDE_CAP_HITS_TOTAL,
                        SCOPE => scope,
                        CHANNEL => channel.to_owned()
                    )
                })
            },
            |counters| counters[scope].increment(1),
        );
    }

    /// A call's service budget ran out at `stage`.
    pub fn budget_exhausted(&self, call: BudgetedCall, stage: Stage) {
        self.budget_exhausted[call.index()][stage.index()].increment(1);
    }

    /// An actor was activated.
    pub fn activated(&self) {
        self.activations.increment(1);
        self.live.increment(1.0);
    }

    /// An actor was passivated.
    pub fn passivated(&self) {
        self.passivations.increment(1);
        self.live.decrement(1.0);
    }

    /// An event named `name` was applied; names outside the catalog's `events`
    /// are counted as [`OTHER_EVENT`].
    pub fn event_applied(&self, catalog: &Catalog, name: &str) {
        if catalog.known_events.iter().any(|known| known == name) {
            self.events.with(
                name,
                || metrics::counter!(EVENTS_INGESTED_TOTAL, EVENT => name.to_owned()),
                |counter| counter.increment(1),
            );
        } else {
            self.other_events.increment(1);
        }
    }

    /// An event was a duplicate.
    pub fn duplicate_event(&self) {
        self.duplicate_events.increment(1);
    }

    /// An outcome was applied for a customer of `variant`.
    pub fn outcome(&self, variant: &str, outcome: OutcomeKind) {
        if let Some(index) = outcome_index(outcome) {
            self.outcomes.with(
                variant,
                || outcome_counters(variant),
                |counters| counters[index].increment(1),
            );
        }
    }

    /// The running catalog is now `version`.
    pub fn catalog_loaded(&self, version: &str) {
        self.catalog_info.set(Some(version));
    }

    /// The running model is now `version` (none: no model).
    pub fn model_loaded(&self, version: Option<&str>) {
        self.model_info.set(version);
    }

    /// The live guardrail rolled an experiment back.
    pub fn guardrail_rollback(&self) {
        self.guardrail_rollbacks.increment(1);
    }
}

impl Metrics {
    /// A customer's profile scores were refreshed on `path` (`decision`,
    /// `background`) for `reason` (a staleness code).
    pub fn score_refreshed(&self, path: &'static str, reason: &'static str) {
        metrics::counter!(SCORE_REFRESHES_TOTAL, PATH => path, REASON => reason).increment(1);
    }
}
