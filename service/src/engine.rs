//! The decision service as a plain Rust API: every gRPC handler is a thin
//! translation into one of [`Engine`]'s methods, and tests can call them too.
//!
//! An `Engine` owns the [`Shared`] state every actor reads (catalog and model
//! behind atomic swaps, global budgets, the store, the clock, counters) and the
//! [`CustomerRegistry`] that routes each call to the customer's actor.

use crate::actors::customer::{
    ChangeSuppression, Decide, Durable, Forget, ReportOutcome, SetConsent, Snapshot, Track,
};
use crate::actors::{ActorSystem, CustomerActor, CustomerRegistry, RegistryEntry};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::stats::{LatencySummary, Stats, bump};
use crate::store::{Commit, CustomerStore, Erased, LoggedDecision, TimeRange};
use actix::dev::ToEnvelope;
use actix::{Handler, MailboxError, Message};
use arc_swap::{ArcSwap, ArcSwapOption};
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::{Catalog, CatalogProblems, CatalogSummary};
use nudge_models::customer::{
    ConsentState, CustomerState, OutcomeResult, SuppressionReason, TrackResult,
};
use nudge_models::ledger::OutcomeKind;
use nudge_models::model::Model;
use nudge_models::pipeline::{Decision, FallbackReason, Scoring};
use nudge_models::profile::Event;
use nudge_models::time::Timestamp;
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How many times a call is retried when it reaches an actor that is stopping.
const MAX_ROUTING_ATTEMPTS: usize = 200;

/// What every customer actor reads.
#[derive(Debug)]
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The running catalog; a reload swaps it atomically.
    pub catalog: ArcSwap<Catalog>,
    /// The running model; `None` means every decision uses the fallback ladder.
    pub model: ArcSwapOption<Model>,
    /// Global per-action budgets.
    pub budgets: BudgetCounters,
    /// Where passive customers' state lives.
    pub store: Arc<dyn CustomerStore>,
    /// The service's time.
    pub clock: Arc<dyn Clock>,
    /// Counters.
    pub stats: Stats,
    /// Prometheus metric handles.
    pub metrics: Metrics,
}

/// Each observable event is recorded once here, into both the `Admin.Stats`
/// counters and the Prometheus metrics, so the two never drift apart.
impl Shared {
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

    /// An outcome was applied.
    pub fn record_outcome(&self, outcome: OutcomeKind) {
        bump(&self.stats.outcomes);
        self.metrics.outcome(outcome);
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

/// A validated Decide call.
#[derive(Debug, Clone)]
pub struct DecideInput {
    /// Customer id.
    pub customer_id: String,
    /// Placement id.
    pub placement: String,
    /// Request context.
    pub context: BTreeMap<String, AttrValue>,
    /// Candidate ids (empty: the placement's actions).
    pub candidates: Vec<String>,
    /// Actions to serve (0: the placement's slots).
    pub limit: u32,
    /// Record nothing.
    pub dry_run: bool,
    /// Return every filtered candidate.
    pub explain: bool,
    /// Caller's id for tracing.
    pub request_id: String,
}

/// A validated ReportOutcome call.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeInput {
    /// The customer.
    pub customer_id: String,
    /// The decision that served the action.
    pub decision_id: String,
    /// The served action.
    pub action_id: String,
    /// What happened.
    pub outcome: OutcomeKind,
    /// Optional finite reward.
    pub reward: Option<f64>,
    /// When it happened (`None`: the service's time).
    pub at: Option<Timestamp>,
}

/// A validated SetConsent call.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentInput {
    /// The customer.
    pub customer_id: String,
    /// The channel.
    pub channel: String,
    /// The new state (`None`: clear it).
    pub state: Option<ConsentState>,
}

/// A validated Suppress or Unsuppress call.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionInput {
    /// The customer.
    pub customer_id: String,
    /// The channel, `None` for every channel.
    pub channel: Option<String>,
    /// The reason (`None` when lifting every reason).
    pub reason: Option<SuppressionReason>,
    /// Operator's note.
    pub note: String,
    /// Lift rather than add.
    pub lift: bool,
}

/// A Decide answer.
#[derive(Debug, Clone)]
pub struct DecideReply {
    /// The decision id (`None` for a dry run).
    pub decision_id: Option<String>,
    /// The pipeline's decision.
    pub decision: Decision,
    /// Catalog version used.
    pub catalog_version: String,
    /// Experiment variant.
    pub variant: String,
    /// Whether nothing was recorded.
    pub dry_run: bool,
}

/// Where the catalog came from, for reloads.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// The embedded demo.
    Demo,
    /// A file.
    File(PathBuf),
}

/// Counters and gauges for `Admin.Stats`.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Live actors.
    pub live_customers: u64,
    /// Decisions.
    pub decisions: u64,
    /// Fallback decisions.
    pub fallbacks: u64,
    /// Fallback decisions by reason code, non-zero only.
    pub fallbacks_by_reason: Vec<(String, u64)>,
    /// Decisions by experiment variant, most first.
    pub variants: Vec<(String, u64)>,
    /// Decide latency over the recent window.
    pub latency: LatencySummary,
    /// Events applied.
    pub events: u64,
    /// Duplicate events.
    pub duplicate_events: u64,
    /// Outcomes applied.
    pub outcomes: u64,
    /// Filtered candidates by reason code.
    pub filtered: Vec<(String, u64)>,
    /// Serves per action.
    pub served: Vec<(String, u64)>,
    /// Catalog version.
    pub catalog_version: String,
    /// Model version (empty when none).
    pub model_version: String,
    /// Activations.
    pub activations: u64,
    /// Passivations.
    pub passivations: u64,
    /// Refused calls.
    pub rejected: u64,
}

/// The running decision service.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    registry: CustomerRegistry,
    catalog_source: CatalogSource,
}

impl Engine {
    /// Starts the actor system and an engine over it.
    pub fn start(
        config: Config,
        catalog: Catalog,
        catalog_source: CatalogSource,
        model: Option<Model>,
        store: Arc<dyn CustomerStore>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        let system = ActorSystem::start(config.actors.arbiters)?;
        let metrics = Metrics::new();
        metrics.catalog_loaded(&catalog.version);
        metrics.model_loaded(model.as_ref().map(Model::version));
        let shared = Arc::new(Shared {
            config,
            catalog: ArcSwap::from_pointee(catalog),
            model: ArcSwapOption::from_pointee(model),
            budgets: BudgetCounters::default(),
            store,
            clock,
            stats: Stats::default(),
            metrics,
        });
        let registry = CustomerRegistry::new(system, shared.clone());
        Ok(Self {
            shared,
            registry,
            catalog_source,
        })
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The registry of live actors.
    pub fn registry(&self) -> &CustomerRegistry {
        &self.registry
    }

    /// The running catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog.load_full()
    }

    /// Sends a message to the customer's actor, activating it if needed, and
    /// retrying when it reaches an actor that is passivating.
    async fn call<M>(
        &self,
        customer_id: &str,
        make: impl Fn(&RegistryEntry) -> M,
    ) -> Result<M::Result, ServiceError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        CustomerActor: Handler<M>,
        <CustomerActor as actix::Actor>::Context: ToEnvelope<CustomerActor, M>,
    {
        for _ in 0..MAX_ROUTING_ATTEMPTS {
            let entry = self.registry.get_or_activate(customer_id)?;
            let message = make(&entry);
            entry.activity.pending.fetch_add(1, Ordering::AcqRel);
            match entry.addr.send(message).await {
                Ok(result) => return Ok(result),
                Err(MailboxError::Closed) => tokio::time::sleep(Duration::from_micros(200)).await,
                Err(MailboxError::Timeout) => {
                    return Err(ServiceError::Unavailable(
                        "customer actor timed out".to_owned(),
                    ));
                }
            }
        }
        Err(ServiceError::Unavailable(format!(
            "customer '{customer_id}' could not be activated"
        )))
    }

    /// Like [`Engine::call`] for a change: answers once the change is durable.
    async fn call_durable<M, T>(
        &self,
        customer_id: &str,
        make: impl Fn(&RegistryEntry) -> M,
    ) -> Result<T, ServiceError>
    where
        M: Message<Result = Result<Durable<T>, ServiceError>> + Send + 'static,
        T: Send + 'static,
        CustomerActor: Handler<M>,
        <CustomerActor as actix::Actor>::Context: ToEnvelope<CustomerActor, M>,
    {
        let durable = self.call(customer_id, make).await??;
        durable.commit.wait().await?;
        Ok(durable.value)
    }

    /// Decides for one customer within the smaller of `client_deadline` and the
    /// service budget.
    pub async fn decide(
        &self,
        input: DecideInput,
        client_deadline: Option<Duration>,
    ) -> Result<DecideReply, ServiceError> {
        let started = Instant::now();
        let budget = client_deadline.map_or(self.shared.config.budget(), |client| {
            client.min(self.shared.config.budget())
        });
        let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        let deadline = started + budget;
        let catalog = self.catalog();
        if catalog.placement(&input.placement).is_none() {
            bump(&self.shared.stats.rejected);
            return Err(ServiceError::invalid(
                "placement",
                format!("'{}' is not in the catalog", input.placement),
            ));
        }
        if let Some(unknown) = input
            .candidates
            .iter()
            .find(|id| catalog.action(id).is_none())
        {
            bump(&self.shared.stats.rejected);
            return Err(ServiceError::invalid(
                "candidate_action_ids",
                format!("candidate '{unknown}' is not in the catalog"),
            ));
        }
        let input = Arc::new(input);
        let threshold = self.shared.config.actors.overload_threshold;
        let customer_id = input.customer_id.clone();
        // The answer waits for its decision to be durable, within the budget.
        let call = self.call_durable(&customer_id, |entry| Decide {
            input: input.clone(),
            deadline,
            budget_ms,
            scoring: if entry.activity.pending.load(Ordering::Acquire) >= threshold {
                Scoring::Fallback(FallbackReason::Overloaded)
            } else {
                Scoring::Model
            },
        });
        let reply = match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(result) => result?,
            Err(_) => {
                bump(&self.shared.stats.rejected);
                return Err(ServiceError::DeadlineExceeded { budget_ms });
            }
        };
        let finished = Instant::now();
        let elapsed = finished.saturating_duration_since(started);
        self.shared
            .metrics
            .decided(&input.placement, reply.decision.fallback.is_some(), elapsed);
        self.shared.stats.latency.record(finished, elapsed);
        Ok(reply)
    }

    /// Applies events of one customer, in order; answers once they are durable.
    pub async fn track(
        &self,
        customer_id: &str,
        events: Vec<Event>,
    ) -> Result<Vec<TrackResult>, ServiceError> {
        let (results, commit) = self.track_deferred(customer_id, events).await?;
        commit.wait().await?;
        Ok(results)
    }

    /// Applies events of one customer, in order, without waiting for them to
    /// be durable: the returned [`Commit`] resolves when they are. For
    /// streams, which keep many commits in flight and acknowledge at the end.
    pub async fn track_deferred(
        &self,
        customer_id: &str,
        events: Vec<Event>,
    ) -> Result<(Vec<TrackResult>, Commit), ServiceError> {
        let events: Arc<[Event]> = events.into();
        let durable = self
            .call(customer_id, |_| Track {
                events: events.clone(),
            })
            .await??;
        Ok((durable.value, durable.commit))
    }

    /// Applies an outcome.
    pub async fn report_outcome(&self, input: OutcomeInput) -> Result<OutcomeResult, ServiceError> {
        let OutcomeInput {
            customer_id,
            decision_id,
            action_id,
            outcome,
            reward,
            at,
        } = input;
        self.call_durable(&customer_id, |_| ReportOutcome {
            decision_id: decision_id.clone(),
            action_id: action_id.clone(),
            outcome,
            reward,
            at,
        })
        .await
    }

    fn check_channel(&self, channel: &str) -> Result<(), ServiceError> {
        if self.catalog().channel(channel).is_none() {
            return Err(ServiceError::invalid(
                "channel",
                format!("'{channel}' is not in the catalog"),
            ));
        }
        Ok(())
    }

    /// Records consent; returns the previous state.
    pub async fn set_consent(
        &self,
        customer_id: &str,
        channel: &str,
        state: Option<ConsentState>,
    ) -> Result<Option<ConsentState>, ServiceError> {
        self.check_channel(channel)?;
        self.call_durable(customer_id, |_| SetConsent {
            channel: channel.to_owned(),
            state,
        })
        .await
    }

    /// Adds or lifts a suppression; returns whether anything changed.
    pub async fn change_suppression(&self, input: SuppressionInput) -> Result<bool, ServiceError> {
        if let Some(channel) = &input.channel {
            self.check_channel(channel)?;
        }
        let SuppressionInput {
            customer_id,
            channel,
            reason,
            note,
            lift,
        } = input;
        self.call_durable(&customer_id, |_| ChangeSuppression {
            channel: channel.clone(),
            reason,
            note: note.clone(),
            lift,
        })
        .await
    }

    /// Erases every trace of the customer: live state, stored state, decision
    /// and outcome log entries. Answers once the erasure is durable.
    pub async fn forget(&self, customer_id: &str) -> Result<Erased, ServiceError> {
        let durable = self.call(customer_id, |_| Forget).await??;
        let had_state = durable.value;
        let mut erased = durable.commit.wait().await?;
        erased.state |= had_state;
        Ok(erased)
    }

    /// Calls `visit` with every logged decision in `range` joined with its
    /// outcomes, oldest first, until it returns false. Blocking: run it off the
    /// async runtime's threads.
    pub fn export_blocking(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, ServiceError> {
        Ok(self.shared.store.export(range, visit)?)
    }

    /// Deletes decision and outcome log entries older than the retention
    /// (`storage.decision_retention_days`, 0 keeps everything); returns how
    /// many decisions were deleted.
    pub async fn apply_retention(&self) -> Result<u64, ServiceError> {
        let days = self.shared.config.storage.decision_retention_days;
        if days == 0 {
            return Ok(0);
        }
        let span = nudge_models::time::Span(
            i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX),
        );
        let before = self.shared.clock.now().minus(span);
        let mut deleted = 0;
        loop {
            let chunk = self.shared.store.compact(before).wait().await?.decisions;
            deleted += chunk;
            if chunk < crate::store::COMPACTION_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }

    /// The customer's state: from the live actor, else the store; NOT_FOUND if
    /// nudge has never heard of them. Reading does not activate an actor.
    pub async fn profile(&self, customer_id: &str) -> Result<CustomerState, ServiceError> {
        if self.registry.get(customer_id).is_some() {
            let state = self.call(customer_id, |_| Snapshot).await?;
            // A live actor with nothing in it (e.g. only dry runs so far) is as
            // unknown as a customer that was never seen.
            if state.is_empty() {
                return Err(ServiceError::NotFound(format!(
                    "customer '{customer_id}' is not known"
                )));
            }
            return Ok(state);
        }
        self.shared
            .store
            .load(customer_id)
            .map_err(|error| ServiceError::Unavailable(error.to_string()))?
            .ok_or_else(|| ServiceError::NotFound(format!("customer '{customer_id}' is not known")))
    }

    /// Validates catalog text without loading it.
    pub fn validate_catalog(&self, text: &str) -> Result<CatalogSummary, CatalogProblems> {
        Catalog::from_toml(text).map(|catalog| catalog.summary())
    }

    /// Replaces the running catalog with `text`, or re-reads the catalog's
    /// file when `text` is `None`. An invalid catalog changes nothing.
    /// Returns the new summary and the replaced version.
    pub fn reload_catalog(
        &self,
        text: Option<&str>,
    ) -> Result<(CatalogSummary, String), ServiceError> {
        let owned;
        let text = match (text, &self.catalog_source) {
            (Some(text), _) => text,
            (None, CatalogSource::File(path)) => {
                owned = std::fs::read_to_string(path).map_err(|error| {
                    ServiceError::FailedPrecondition(format!(
                        "cannot read catalog file {}: {error}",
                        path.display()
                    ))
                })?;
                &owned
            }
            (None, CatalogSource::Demo) => nudge_models::demo::CATALOG_TOML,
        };
        let catalog = Catalog::from_toml(text).map_err(nudge_models::Error::from)?;
        let summary = catalog.summary();
        let previous = self.shared.catalog.swap(Arc::new(catalog));
        self.shared.metrics.catalog_loaded(&summary.version);
        tracing::info!(version = %summary.version, previous = %previous.version, "catalog reloaded");
        Ok((summary, previous.version.clone()))
    }

    /// Replaces the running model with the artifact `json`, or re-reads the
    /// configured model file when `json` is `None` (the embedded demo model when
    /// none is configured). A bad artifact is refused with the reason and the
    /// running model keeps serving. Returns the new and the replaced version.
    pub fn reload_model(&self, json: Option<&[u8]>) -> Result<(String, String), ServiceError> {
        let owned;
        let json = match (json, &self.shared.config.model) {
            (Some(json), _) => json,
            (None, Some(path)) => {
                owned = std::fs::read(path).map_err(|error| {
                    ServiceError::FailedPrecondition(format!(
                        "cannot read model file {}: {error}",
                        path.display()
                    ))
                })?;
                &owned
            }
            (None, None) => nudge_models::demo::MODEL_JSON.as_bytes(),
        };
        let model = Model::from_json(json)?;
        let version = model.version().to_owned();
        let previous = self
            .shared
            .model
            .swap(Some(Arc::new(model)))
            .map(|model| model.version().to_owned())
            .unwrap_or_default();
        self.shared.metrics.model_loaded(Some(&version));
        tracing::info!(%version, %previous, "model reloaded");
        Ok((version, previous))
    }

    /// Shutdown: passivates every live actor, waits (up to `grace`) until each
    /// has stopped, and flushes the store. Call after the server stopped
    /// accepting calls.
    pub async fn shutdown(&self, grace: Duration) {
        self.registry.passivate_all();
        let until = Instant::now() + grace;
        while self.registry.live() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let store = self.shared.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => tracing::info!("store flushed"),
            Ok(Err(error)) => tracing::error!(%error, "store not flushed"),
            Err(error) => tracing::error!(%error, "store flush did not finish"),
        }
    }

    /// Passivates actors idle at the service clock's now; returns how many.
    pub fn passivate_idle(&self) -> usize {
        self.registry.passivate_idle(self.shared.clock.now())
    }

    /// Counters and gauges.
    pub fn stats(&self) -> StatsSnapshot {
        let stats = &self.shared.stats;
        StatsSnapshot {
            uptime_seconds: stats.uptime_seconds(),
            live_customers: self.registry.live() as u64,
            decisions: Stats::get(&stats.decisions),
            fallbacks: Stats::get(&stats.fallbacks),
            fallbacks_by_reason: stats
                .fallbacks_by_reason()
                .into_iter()
                .map(|(reason, count)| (reason.code().to_owned(), count))
                .collect(),
            variants: stats.variants(),
            latency: stats.latency.summary(Instant::now()),
            events: Stats::get(&stats.events),
            duplicate_events: Stats::get(&stats.duplicate_events),
            outcomes: Stats::get(&stats.outcomes),
            filtered: stats
                .filtered()
                .into_iter()
                .map(|(reason, count)| (reason.code().to_owned(), count))
                .collect(),
            served: stats.served(),
            catalog_version: self.catalog().version.clone(),
            model_version: self
                .shared
                .model
                .load()
                .as_ref()
                .map(|model| model.version().to_owned())
                .unwrap_or_default(),
            activations: Stats::get(&stats.activations),
            passivations: Stats::get(&stats.passivations),
            rejected: Stats::get(&stats.rejected),
        }
    }
}
