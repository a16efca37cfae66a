//! The decision service as a plain Rust API: every gRPC handler is a thin
//! translation into one of [`Engine`]'s methods, and tests can call them too.
//!
//! An `Engine` owns the [`Shared`] state every actor reads (catalog and model
//! behind atomic swaps, global budgets, the stores, the clock, counters) and
//! the [`CustomerRegistry`] that routes each call to the customer's actor.
//!
//! - this file: start, routing (`call`, `call_durable`) and `decide`;
//! - `changes.rs`: events, outcomes, consent, suppression, forget;
//! - `ingest.rs`: a stream of events grouped by customer ([`Ingestion`]);
//! - `admin.rs`: export, retention, profiles, reloads, stats, shutdown;
//! - `journeys.rs`: waking customers whose journeys are due.

mod admin;
mod changes;
mod ingest;
mod journeys;

pub use crate::requests::{
    ConsentInput, Deadline, DecideInput, DecideReply, OutcomeInput, StatsSnapshot, SuppressionInput,
};
pub use crate::shared::Shared;
pub use ingest::{IngestSummary, Ingestion, Rejection};
pub use journeys::JourneyView;

use crate::actors::customer::Activity;
use crate::actors::customer::{Decide, Durable};
use crate::actors::{ActorSystem, CustomerActor, CustomerRegistry, RegistryEntry};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{BudgetedCall, ServiceError, Stage};
use crate::journeys::{DispatchHub, JourneyBook, JourneyStats, JourneyTimers};
use crate::metrics::Metrics;
use crate::registry::ModelRegistry;
use crate::stats::{Stats, bump};
use crate::store::{StoreError, Stores};
use actix::dev::ToEnvelope;
use actix::{Handler, MailboxError, Message};
use arc_swap::ArcSwap;
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::pipeline::{FallbackReason, Scoring};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How many times a call is retried when it reaches an actor that is stopping.
const MAX_ROUTING_ATTEMPTS: usize = 200;

/// Where the catalog came from, for reloads.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    /// The embedded demo.
    Demo,
    /// A file.
    File(PathBuf),
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineStartError {
    /// The budget ledger could not be read.
    #[error("cannot read the global budgets: {0}")]
    Budgets(#[from] StoreError),
    /// The journey timer index could not be read.
    #[error("cannot read the journey timers: {0}")]
    Timers(StoreError),
    /// The journeys' operator pauses could not be read.
    #[error("{0}")]
    Journeys(Box<ServiceError>),
    /// The actor system could not start.
    #[error("cannot start the actor system: {0}")]
    Actors(std::io::Error),
}

/// The running decision service.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    registry: CustomerRegistry,
    catalog_source: CatalogSource,
    /// This node in a cluster (`cluster.enabled`), once joined.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Engine {
    /// Starts the actor system and an engine over it, on `catalog` (whose
    /// file is `catalog_text`). The global budget counters start from what
    /// the budget ledger holds, so a restart keeps every unit already used.
    pub fn start(
        config: Config,
        catalog: Catalog,
        catalog_text: &str,
        catalog_source: CatalogSource,
        models: ModelRegistry,
        stores: Stores,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EngineStartError> {
        // A node of a cluster shares the budgets with the other nodes: it
        // serves only units the ledger granted it (`cluster/budgets.rs`).
        let budgets = if config.cluster.enabled {
            BudgetCounters::shared()
        } else {
            BudgetCounters::default()
        };
        for (action_id, used) in stores.budgets.load()? {
            budgets.restore(&action_id, used);
        }
        let system =
            ActorSystem::start(config.actors.arbiters).map_err(EngineStartError::Actors)?;
        let metrics = Metrics::new();
        metrics.catalog_loaded(&catalog.version);
        metrics.journeys_declared(&catalog);
        metrics.model_loaded(models.serving().champion().map(|model| model.version()));
        let journeys_dir = (!config.storage.in_memory)
            .then(|| config.storage.data_dir.join(crate::journeys::JOURNEYS_DIR));
        let journeys = JourneyBook::open(&catalog, catalog_text, journeys_dir)
            .map_err(|error| EngineStartError::Journeys(Box::new(error)))?;
        let dispatches = DispatchHub::new(config.journeys.subscriber_buffer);
        let shared = Arc::new(Shared {
            config,
            catalog: ArcSwap::from_pointee(catalog),
            models,
            budgets,
            stores,
            clock,
            stats: Stats::default(),
            metrics,
            journeys,
            timers: JourneyTimers::default(),
            journey_stats: JourneyStats::default(),
            dispatches,
            population: crate::shared::PopulationCounts::default(),
        });
        shared.timers.restore(
            shared
                .stores
                .state
                .journey_timers()
                .map_err(EngineStartError::Timers)?,
        );
        let registry = CustomerRegistry::new(system, shared.clone());
        Ok(Self {
            shared,
            registry,
            catalog_source,
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Serves as a node of `cluster` from now on: calls are routed by
    /// it, journey timers fire only for the partitions it holds.
    pub fn join_cluster(self: &Arc<Self>, cluster: Arc<crate::cluster::Cluster>) {
        cluster.attach(self);
        let _ = self.cluster.set(cluster);
    }

    /// This node in its cluster, if it is one.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Whether this node serves `customer_id` now: always, unless it is a
    /// cluster node that does not hold the customer's partition.
    pub fn serves(&self, customer_id: &str) -> bool {
        self.cluster
            .get()
            .is_none_or(|cluster| cluster.owns(customer_id))
    }

    /// Asks the live actors of the customers that `matches` to passivate;
    /// how many are still live.
    pub fn passivate_matching(&self, matches: impl Fn(&str) -> bool) -> usize {
        self.registry.passivate_matching(matches)
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
            let entry = self.registry.get_or_activate(customer_id);
            let message = make(&entry);
            // Counted until the answer comes or the caller gives up: an
            // abandoned message is skipped by the actor, and must not leave
            // the customer counted as busy.
            let _pending = Pending::count(&entry.activity);
            match entry.addr.send(message).await {
                Ok(result) => return Ok(result),
                Err(MailboxError::Closed) => tokio::time::sleep(Duration::from_micros(200)).await,
                Err(MailboxError::Timeout) => {
                    return Err(ServiceError::ActorTimedOut {
                        customer_id: customer_id.to_owned(),
                    });
                }
            }
        }
        Err(ServiceError::NotActivated {
            customer_id: customer_id.to_owned(),
            attempts: MAX_ROUTING_ATTEMPTS,
        })
    }

    /// `work` within `deadline`: when it passes first, the error says
    /// whose deadline it was and that `call` was at `stage`. A service
    /// budget running out is counted, whichever step noticed it.
    async fn within<T>(
        &self,
        deadline: Deadline,
        call: BudgetedCall,
        stage: Stage,
        work: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let result = tokio::time::timeout_at(deadline.at.into(), work)
            .await
            .unwrap_or_else(|_| Err(deadline.exceeded(call, stage)));
        if let Err(ServiceError::BudgetExhausted { call, stage, .. }) = &result {
            self.shared.record_budget_exhausted(*call, *stage);
        }
        result
    }

    /// Like [`Engine::call_durable`], within `deadline`: an error once it
    /// passes, saying whether the change was still queued (not applied) or
    /// being stored (it may still become durable).
    async fn call_durable_within<M, T>(
        &self,
        customer_id: &str,
        deadline: Deadline,
        call: BudgetedCall,
        make: impl Fn(&RegistryEntry) -> M,
    ) -> Result<T, ServiceError>
    where
        M: Message<Result = Result<Durable<T>, ServiceError>> + Send + 'static,
        T: Send + 'static,
        CustomerActor: Handler<M>,
        <CustomerActor as actix::Actor>::Context: ToEnvelope<CustomerActor, M>,
    {
        let durable = self
            .within(deadline, call, Stage::Queued, async {
                self.call(customer_id, make).await?
            })
            .await?;
        self.within(deadline, call, Stage::Storing, async {
            Ok(durable.commit.wait().await?)
        })
        .await?;
        Ok(durable.value)
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
    /// service budget. When the client's deadline passes first the error is
    /// DEADLINE_EXCEEDED; when the budget runs out first (the client would
    /// still wait) it is [`ServiceError::BudgetExhausted`], RESOURCE_EXHAUSTED
    /// while the decision was not recorded, UNAVAILABLE while it was being
    /// stored. Close to the deadline the actor answers from the fallback
    /// ladder instead (`fallback_headroom_ms`).
    pub async fn decide(
        &self,
        input: DecideInput,
        client_deadline: Option<Duration>,
    ) -> Result<DecideReply, ServiceError> {
        let started = Instant::now();
        let deadline = Deadline::new(started, client_deadline, self.shared.config.budget());
        let catalog = self.catalog();
        if catalog.placement(&input.placement).is_none() {
            bump(&self.shared.stats.rejected);
            return Err(ServiceError::invalid(
                "placement",
                format!("'{}' is not in the catalog", input.placement),
            ));
        }
        if nudge_models::catalog::journeys::is_journey_placement(&input.placement) {
            bump(&self.shared.stats.rejected);
            return Err(ServiceError::invalid(
                "placement",
                format!(
                    "'{}' is a journey's own placement: its sends decide there, not Decide calls",
                    input.placement
                ),
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
        // The answer waits for its decision to be durable, within the deadline.
        let reply = self
            .call_durable_within(&customer_id, deadline, BudgetedCall::Decide, |entry| {
                Decide {
                    input: input.clone(),
                    deadline,
                    scoring: if entry.activity.pending.load(Ordering::Acquire) >= threshold {
                        Scoring::Fallback(FallbackReason::Overloaded)
                    } else {
                        Scoring::Model
                    },
                }
            })
            .await
            .inspect_err(|error| {
                if matches!(
                    error,
                    ServiceError::DeadlineExceeded { .. } | ServiceError::BudgetExhausted { .. }
                ) {
                    bump(&self.shared.stats.rejected);
                }
            })?;
        let finished = Instant::now();
        let elapsed = finished.saturating_duration_since(started);
        self.shared
            .metrics
            .decided(&input.placement, reply.decision.fallback.is_some(), elapsed);
        self.shared.stats.latency.record(finished, elapsed);
        Ok(reply)
    }
}

/// One message counted in [`Activity::pending`] while this lives.
struct Pending<'activity>(&'activity Activity);

impl<'activity> Pending<'activity> {
    fn count(activity: &'activity Activity) -> Self {
        activity.pending.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}
