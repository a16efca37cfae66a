//! Prometheus metrics, declared in one place: every metric's name
//! (`nudge_<subsystem>_<name>`), labels, description and histogram buckets are
//! here, and the engine, the actors and the gRPC layer record through the
//! handle structs of this module only ([`Metrics`], [`GrpcMetrics`]); no
//! metric name or label key is written anywhere else.
//!
//! The recorder is process-global. `nudge serve` installs it with [`install`]
//! (which also starts the `/metrics` HTTP listener) **before** it starts the
//! engine: [`Metrics::new`] registers its handles with whatever recorder is
//! installed at that moment. Without a recorder (library use, the in-process
//! tests) every handle is a no-op.
//!
//! Recording is cheap on the hot path. Handles whose labels come from fixed
//! sets (filter and fallback reasons, outcomes, rejection reasons) are
//! registered once, when the engine starts, and are then a plain atomic add.
//! Handles labelled by catalog ids (placement, action, channel, event name) are
//! registered on first use and found afterwards by one hash lookup on the id,
//! without allocating. Every label value comes from the catalog (bounded) or
//! from a fixed set: event names outside the catalog's `events` list count as
//! `other`, so a client cannot grow the number of series.

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use nudge_models::catalog::Catalog;
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::{Decision, FallbackReason, FilterReason};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

// ── Names ────────────────────────────────────────────────────────────────────

/// Histogram: seconds from the engine receiving a valid Decide to its answer
/// (routing, the actor's mailbox, the pipeline); labels `placement`, `fallback`.
pub const DECIDE_DURATION_SECONDS: &str = "nudge_decide_duration_seconds";
/// Counter: actions served; labels `action`, `placement`, `variant`.
pub const DECIDE_SERVED_TOTAL: &str = "nudge_decide_served_total";
/// Counter: candidates not served; label `reason` (the filter reason code).
pub const DECIDE_FILTERED_TOTAL: &str = "nudge_decide_filtered_total";
/// Counter: candidates stopped by a frequency cap; labels `scope`, `channel`.
pub const DECIDE_CAP_HITS_TOTAL: &str = "nudge_decide_cap_hits_total";
/// Counter: decisions answered from the fallback ladder; label `reason`.
pub const DECIDE_FALLBACKS_TOTAL: &str = "nudge_decide_fallbacks_total";
/// Gauge: live customer actors.
pub const ACTORS_LIVE: &str = "nudge_actors_live";
/// Counter: customer actors activated.
pub const ACTORS_ACTIVATIONS_TOTAL: &str = "nudge_actors_activations_total";
/// Counter: customer actors passivated.
pub const ACTORS_PASSIVATIONS_TOTAL: &str = "nudge_actors_passivations_total";
/// Counter: decisions answered as `overloaded` (the customer's mailbox was saturated).
pub const ACTORS_MAILBOX_SATURATED_TOTAL: &str = "nudge_actors_mailbox_saturated_total";
/// Counter: events applied; label `event` (catalog event name or `other`).
pub const EVENTS_INGESTED_TOTAL: &str = "nudge_events_ingested_total";
/// Counter: events acknowledged as duplicates and not applied again.
pub const EVENTS_DUPLICATES_TOTAL: &str = "nudge_events_duplicates_total";
/// Counter: outcomes applied; label `outcome`.
pub const OUTCOMES_REPORTED_TOTAL: &str = "nudge_outcomes_reported_total";
/// Gauge: 1 for the running catalog's version; label `version`.
pub const CATALOG_INFO: &str = "nudge_catalog_info";
/// Gauge: 1 for the running model's version; label `version`.
pub const MODEL_INFO: &str = "nudge_model_info";
/// Counter: gRPC calls refused; label `reason` (`invalid`, `deadline`,
/// `overloaded`, `unauthorized`).
pub const GRPC_REJECTED_TOTAL: &str = "nudge_grpc_rejected_total";
/// Counter: calls shed by admission control (`grpc.max_concurrent_requests`
/// in flight already), answered RESOURCE_EXHAUSTED before any handler ran.
pub const GRPC_SHED_TOTAL: &str = "nudge_grpc_shed_total";
/// Counter: connections closed on accept because `grpc.max_connections` were
/// open.
pub const GRPC_CONNECTIONS_REFUSED_TOTAL: &str = "nudge_grpc_connections_refused_total";
/// Histogram: seconds one group commit of the store took (apply + fsync).
pub const STORAGE_COMMIT_SECONDS: &str = "nudge_storage_commit_duration_seconds";
/// Counter: writes (customer changes, log entries) made durable.
pub const STORAGE_WRITES_TOTAL: &str = "nudge_storage_writes_total";
/// Counter: store commits that failed (writes refused until it recovers).
pub const STORAGE_FAILURES_TOTAL: &str = "nudge_storage_failures_total";

// ── Label keys ───────────────────────────────────────────────────────────────

const PLACEMENT: &str = "placement";
const FALLBACK: &str = "fallback";
const ACTION: &str = "action";
const VARIANT: &str = "variant";
const REASON: &str = "reason";
const SCOPE: &str = "scope";
const CHANNEL: &str = "channel";
const EVENT: &str = "event";
const OUTCOME: &str = "outcome";
const VERSION: &str = "version";

/// The `event` label of event names that are not in the catalog's `events`.
pub const OTHER_EVENT: &str = "other";

/// Upper bounds (seconds) of the storage commit buckets: 100 µs to 1 s.
pub const STORAGE_COMMIT_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Upper bounds (seconds) of the Decide latency buckets: 25 µs to 250 ms, dense
/// between 50 µs and 1 ms where decisions normally land, up to the 100 ms
/// budget and a little past it.
pub const DECIDE_DURATION_BUCKETS: [f64; 17] = [
    0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001,
    0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

// ── Declarations ─────────────────────────────────────────────────────────────

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// One metric as exposed: name, type, labels and description.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The exposed name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its label keys.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

/// Every metric nudge exposes.
pub const DECLARATIONS: [Declaration; 20] = [
    Declaration {
        name: DECIDE_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &[PLACEMENT, FALLBACK],
        help: "Seconds from a valid Decide reaching the engine to its answer (routing, actor mailbox, pipeline); fallback is yes or no.",
    },
    Declaration {
        name: DECIDE_SERVED_TOTAL,
        kind: Kind::Counter,
        labels: &[ACTION, PLACEMENT, VARIANT],
        help: "Actions served by decisions (dry runs included).",
    },
    Declaration {
        name: DECIDE_FILTERED_TOTAL,
        kind: Kind::Counter,
        labels: &[REASON],
        help: "Candidates not served, by filter reason code.",
    },
    Declaration {
        name: DECIDE_CAP_HITS_TOTAL,
        kind: Kind::Counter,
        labels: &[SCOPE, CHANNEL],
        help: "Candidates stopped by a frequency cap, by cap scope (channel, total, action, category) and the candidate's channel.",
    },
    Declaration {
        name: DECIDE_FALLBACKS_TOTAL,
        kind: Kind::Counter,
        labels: &[REASON],
        help: "Decisions answered from the fallback ladder, by reason.",
    },
    Declaration {
        name: ACTORS_LIVE,
        kind: Kind::Gauge,
        labels: &[],
        help: "Live customer actors.",
    },
    Declaration {
        name: ACTORS_ACTIVATIONS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Customer actors activated.",
    },
    Declaration {
        name: ACTORS_PASSIVATIONS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Customer actors passivated (idle, evicted or shut down).",
    },
    Declaration {
        name: ACTORS_MAILBOX_SATURATED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Decisions answered from the fallback ladder as overloaded because the customer's mailbox was saturated.",
    },
    Declaration {
        name: EVENTS_INGESTED_TOTAL,
        kind: Kind::Counter,
        labels: &[EVENT],
        help: "Events applied, by name; names not in the catalog's events list count as other.",
    },
    Declaration {
        name: EVENTS_DUPLICATES_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Events acknowledged as duplicates and not applied again.",
    },
    Declaration {
        name: OUTCOMES_REPORTED_TOTAL,
        kind: Kind::Counter,
        labels: &[OUTCOME],
        help: "Outcomes applied, by type.",
    },
    Declaration {
        name: CATALOG_INFO,
        kind: Kind::Gauge,
        labels: &[VERSION],
        help: "1 for the running catalog's version, 0 for versions it replaced.",
    },
    Declaration {
        name: MODEL_INFO,
        kind: Kind::Gauge,
        labels: &[VERSION],
        help: "1 for the running model's version, 0 for versions it replaced.",
    },
    Declaration {
        name: GRPC_REJECTED_TOTAL,
        kind: Kind::Counter,
        labels: &[REASON],
        help: "gRPC calls refused: invalid (INVALID_ARGUMENT, OUT_OF_RANGE), deadline (DEADLINE_EXCEEDED), overloaded (RESOURCE_EXHAUSTED), unauthorized (UNAUTHENTICATED, PERMISSION_DENIED).",
    },
    Declaration {
        name: GRPC_SHED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "gRPC calls shed by admission control: answered RESOURCE_EXHAUSTED at once because grpc.max_concurrent_requests calls were in flight.",
    },
    Declaration {
        name: GRPC_CONNECTIONS_REFUSED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Client connections closed on accept because grpc.max_connections were open.",
    },
    Declaration {
        name: STORAGE_COMMIT_SECONDS,
        kind: Kind::Histogram,
        labels: &[],
        help: "Seconds one group commit of the store took: applying a batch of writes and its fsync.",
    },
    Declaration {
        name: STORAGE_WRITES_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Writes made durable by the store (each acknowledged event, outcome, consent change, decision).",
    },
    Declaration {
        name: STORAGE_FAILURES_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Store commits that failed; writes are refused until a retry succeeds.",
    },
];

/// Sends every declaration's description to the installed recorder.
pub fn describe() {
    for declaration in DECLARATIONS {
        let (name, help) = (declaration.name, declaration.help);
        match declaration.kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => {
                metrics::describe_histogram!(name, metrics::Unit::Seconds, help)
            }
        }
    }
}

// ── Fixed label sets ─────────────────────────────────────────────────────────

/// Every fallback reason, in the order of [`fallback_index`].
const FALLBACK_REASONS: [FallbackReason; 4] = [
    FallbackReason::ModelMissing,
    FallbackReason::Deadline,
    FallbackReason::Overloaded,
    FallbackReason::ModelError,
];

/// Position of `reason` in [`FALLBACK_REASONS`] (exhaustive: a new reason does
/// not compile until it is listed).
fn fallback_index(reason: FallbackReason) -> usize {
    match reason {
        FallbackReason::ModelMissing => 0,
        FallbackReason::Deadline => 1,
        FallbackReason::Overloaded => 2,
        FallbackReason::ModelError => 3,
    }
}

/// Cap scopes, in the order of [`cap_scope_index`].
const CAP_SCOPES: [&str; 4] = ["channel", "total", "action", "category"];

/// Position in [`CAP_SCOPES`] of a cap reason's scope; `None` if not a cap.
fn cap_scope_index(reason: FilterReason) -> Option<usize> {
    match reason {
        FilterReason::CapChannel => Some(0),
        FilterReason::CapTotal => Some(1),
        FilterReason::CapAction => Some(2),
        FilterReason::CapCategory => Some(3),
        _ => None,
    }
}

fn filter_index(reason: FilterReason) -> Option<usize> {
    FilterReason::ALL
        .iter()
        .position(|candidate| *candidate == reason)
}

fn outcome_index(outcome: OutcomeKind) -> Option<usize> {
    OutcomeKind::ALL
        .iter()
        .position(|candidate| *candidate == outcome)
}

/// Why a gRPC call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The request was invalid.
    Invalid,
    /// The deadline passed before an answer.
    Deadline,
    /// The call was shed under load.
    Overloaded,
    /// A protected call without valid credentials.
    Unauthorized,
}

impl Rejection {
    /// Every reason.
    pub const ALL: [Rejection; 4] = [
        Rejection::Invalid,
        Rejection::Deadline,
        Rejection::Overloaded,
        Rejection::Unauthorized,
    ];

    /// The `reason` label.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::Deadline => "deadline",
            Rejection::Overloaded => "overloaded",
            Rejection::Unauthorized => "unauthorized",
        }
    }

    /// The rejection a gRPC status code stands for, if any.
    pub fn of(code: tonic::Code) -> Option<Rejection> {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Some(Rejection::Invalid),
            tonic::Code::DeadlineExceeded => Some(Rejection::Deadline),
            tonic::Code::ResourceExhausted => Some(Rejection::Overloaded),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                Some(Rejection::Unauthorized)
            }
            _ => None,
        }
    }
}

// ── Handles ──────────────────────────────────────────────────────────────────

/// The store's handles: registered when the store opens.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    commit: Histogram,
    writes: Counter,
    failures: Counter,
}

impl StorageMetrics {
    /// Handles on the installed recorder (no-ops without one).
    pub fn new() -> Self {
        Self {
            commit: metrics::histogram!(STORAGE_COMMIT_SECONDS),
            writes: metrics::counter!(STORAGE_WRITES_TOTAL),
            failures: metrics::counter!(STORAGE_FAILURES_TOTAL),
        }
    }

    /// A commit of `writes` writes took `duration`.
    pub fn committed(&self, writes: usize, duration: Duration) {
        self.commit.record(duration.as_secs_f64());
        self.writes.increment(writes as u64);
    }

    /// A commit failed.
    pub fn failed(&self) {
        self.failures.increment(1);
    }
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self::new()
    }
}

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
    live: Gauge,
    activations: Counter,
    passivations: Counter,
    events: ByLabel<Counter>,
    other_events: Counter,
    duplicate_events: Counter,
    outcomes: [Counter; OutcomeKind::ALL.len()],
    catalog_info: VersionInfo,
    model_info: VersionInfo,
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
            live: metrics::gauge!(ACTORS_LIVE),
            activations: metrics::counter!(ACTORS_ACTIVATIONS_TOTAL),
            passivations: metrics::counter!(ACTORS_PASSIVATIONS_TOTAL),
            events: ByLabel::default(),
            other_events: metrics::counter!(EVENTS_INGESTED_TOTAL, EVENT => OTHER_EVENT),
            duplicate_events: metrics::counter!(EVENTS_DUPLICATES_TOTAL),
            outcomes: OutcomeKind::ALL.map(
                |outcome| metrics::counter!(OUTCOMES_REPORTED_TOTAL, OUTCOME => outcome.name()),
            ),
            catalog_info: VersionInfo::new(CATALOG_INFO),
            model_info: VersionInfo::new(MODEL_INFO),
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

    /// An outcome was applied.
    pub fn outcome(&self, outcome: OutcomeKind) {
        if let Some(index) = outcome_index(outcome) {
            self.outcomes[index].increment(1);
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
}

/// The handles of the gRPC layer, which exists before the engine (the
/// listener answers health while the engine starts): created by
/// [`crate::grpc::serve`], after the recorder is installed.
#[derive(Debug)]
pub struct GrpcMetrics {
    rejected: [Counter; Rejection::ALL.len()],
    shed: Counter,
    connections_refused: Counter,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcMetrics {
    /// Registers every handle (all with fixed labels: exported at 0 from the start).
    pub fn new() -> Self {
        Self {
            rejected: Rejection::ALL.map(
                |rejection| metrics::counter!(GRPC_REJECTED_TOTAL, REASON => rejection.code()),
            ),
            shed: metrics::counter!(GRPC_SHED_TOTAL),
            connections_refused: metrics::counter!(GRPC_CONNECTIONS_REFUSED_TOTAL),
        }
    }

    /// A gRPC call ended with `code`; counts it if that is a rejection.
    pub fn grpc_status(&self, code: tonic::Code) {
        if let Some(rejection) = Rejection::of(code) {
            self.rejected[rejection as usize].increment(1);
        }
    }

    /// A call was shed by admission control (its RESOURCE_EXHAUSTED is
    /// counted by [`GrpcMetrics::grpc_status`] too).
    pub fn shed(&self) {
        self.shed.increment(1);
    }

    /// A connection was closed on accept.
    pub fn connection_refused(&self) {
        self.connections_refused.increment(1);
    }
}

// ── Exporter ─────────────────────────────────────────────────────────────────

/// Why the exporter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A recorder is already installed in this process.
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
    /// Not called from within a Tokio runtime.
    #[error("the metrics exporter must be installed from within a Tokio runtime")]
    NoRuntime,
    /// The listener could not bind its address.
    #[error("cannot listen on {address}: {message}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        message: String,
    },
    /// Another exporter problem.
    #[error("metrics exporter: {0}")]
    Exporter(#[from] BuildError),
}

/// Whether [`install`] succeeded once in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the Prometheus recorder as the process-global recorder and serves
/// it over HTTP on `address` (any path; `/metrics` by convention), on the
/// current Tokio runtime. Call it before starting the engine. Returns an error,
/// never panics, when a recorder is already installed or `address` cannot be
/// bound.
pub fn install(address: SocketAddr) -> Result<(), InstallError> {
    if INSTALLED.load(Ordering::Acquire) {
        return Err(InstallError::AlreadyInstalled);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| InstallError::NoRuntime)?;
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(
            Matcher::Full(DECIDE_DURATION_SECONDS.to_owned()),
            &DECIDE_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(STORAGE_COMMIT_SECONDS.to_owned()),
            &STORAGE_COMMIT_BUCKETS,
        )?
        .build()
        .map_err(|error| match error {
            BuildError::FailedToCreateHTTPListener(message) => {
                InstallError::Listen { address, message }
            }
            other => InstallError::Exporter(other),
        })?;
    // On failure the exporter future is dropped unpolled, closing its listener.
    metrics::set_global_recorder(recorder).map_err(|_| InstallError::AlreadyInstalled)?;
    INSTALLED.store(true, Ordering::Release);
    runtime.spawn(async move {
        if let Err(error) = exporter.await {
            tracing::error!(?error, "the metrics listener stopped");
        }
    });
    describe();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusRecorder;

    /// A recorder local to the test (the global one is left alone).
    fn local() -> PrometheusRecorder {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(DECIDE_DURATION_SECONDS.to_owned()),
                &DECIDE_DURATION_BUCKETS,
            )
            .expect("buckets are not empty")
            .build_recorder()
    }

    /// The value of the sample `series` (name and labels as rendered).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.parse().ok()
        })
    }

    #[test]
    fn fixed_label_sets_are_listed_exhaustively() {
        for (index, reason) in FALLBACK_REASONS.iter().enumerate() {
            assert_eq!(fallback_index(*reason), index);
        }
        for (index, rejection) in Rejection::ALL.iter().enumerate() {
            assert_eq!(*rejection as usize, index);
        }
        let caps: Vec<&str> = FilterReason::ALL
            .iter()
            .filter_map(|reason| cap_scope_index(*reason).map(|index| CAP_SCOPES[index]))
            .collect();
        assert_eq!(caps, CAP_SCOPES);
        for reason in FilterReason::ALL {
            let scope = cap_scope_index(reason);
            assert_eq!(reason.is_cap(), scope.is_some(), "{reason:?}");
            if let Some(scope) = scope {
                assert_eq!(reason.code(), format!("cap_{}", CAP_SCOPES[scope]));
            }
        }
    }

    #[test]
    fn names_follow_the_convention_and_are_unique() {
        let mut names: Vec<&str> = DECLARATIONS.iter().map(|d| d.name).collect();
        for declaration in DECLARATIONS {
            let name = declaration.name;
            assert!(name.starts_with("nudge_"), "{name}");
            assert!(
                name.bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_'),
                "{name}"
            );
            assert_eq!(
                declaration.kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DECLARATIONS.len());
        assert!(DECIDE_DURATION_BUCKETS.is_sorted());
    }

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        for declaration in DECLARATIONS {
            assert!(
                readme.contains(&format!("`{}`", declaration.name)),
                "README.md does not list {}",
                declaration.name
            );
        }
    }

    #[test]
    fn events_outside_the_catalog_count_as_other() {
        let recorder = local();
        let handle = recorder.handle();
        let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("demo");
        metrics::with_local_recorder(&recorder, || {
            let metrics = Metrics::new();
            metrics.event_applied(&catalog, "login");
            metrics.event_applied(&catalog, "login");
            for made_up in ["x1", "x2", "x3"] {
                metrics.event_applied(&catalog, made_up);
            }
            metrics.duplicate_event();
        });
        let text = handle.render();
        assert_eq!(
            sample(&text, r#"nudge_events_ingested_total{event="login"}"#),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"nudge_events_ingested_total{event="other"}"#),
            Some(3.0),
            "{text}"
        );
        assert!(!text.contains("x1"), "{text}");
        assert_eq!(sample(&text, "nudge_events_duplicates_total"), Some(1.0));
    }

    #[test]
    fn a_reload_zeroes_the_replaced_version() {
        let recorder = local();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let metrics = Metrics::new();
            metrics.catalog_loaded("v1");
            metrics.catalog_loaded("v2");
            metrics.catalog_loaded("v2");
            metrics.model_loaded(Some("m1"));
            metrics.model_loaded(None);
        });
        let text = handle.render();
        assert_eq!(
            sample(&text, r#"nudge_catalog_info{version="v1"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"nudge_catalog_info{version="v2"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"nudge_model_info{version="m1"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn cap_hits_are_labelled_by_scope_and_channel() {
        use nudge_models::pipeline::Filtered;
        let recorder = local();
        let handle = recorder.handle();
        let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("demo");
        let action_on = |channel: &str| {
            catalog
                .actions
                .iter()
                .find(|action| action.channel == channel)
                .unwrap_or_else(|| panic!("the demo has a {channel} action"))
                .id
                .clone()
        };
        let filtered = |action_id: String, reason| Filtered {
            action_id,
            reason,
            message: String::new(),
            score: None,
            propensity: None,
        };
        let decision = Decision {
            served: Vec::new(),
            filtered: vec![
                filtered(action_on("email"), FilterReason::CapChannel),
                filtered(action_on("email"), FilterReason::CapChannel),
                filtered(action_on("in_app"), FilterReason::CapTotal),
                filtered(action_on("in_app"), FilterReason::Cooldown),
            ],
            model_version: None,
            fallback: Some(FallbackReason::Overloaded),
        };
        metrics::with_local_recorder(&recorder, || {
            let metrics = Metrics::new();
            metrics.record_decision(&catalog, "home_banner", "default", &decision);
            metrics.decided("home_banner", true, Duration::from_micros(120));
            let grpc = GrpcMetrics::new();
            grpc.grpc_status(tonic::Code::InvalidArgument);
            grpc.grpc_status(tonic::Code::NotFound);
            grpc.grpc_status(tonic::Code::PermissionDenied);
            grpc.grpc_status(tonic::Code::ResourceExhausted);
            grpc.shed();
        });
        let text = handle.render();
        for (series, value) in [
            (
                r#"nudge_decide_cap_hits_total{scope="channel",channel="email"}"#,
                2.0,
            ),
            (
                r#"nudge_decide_cap_hits_total{scope="total",channel="in_app"}"#,
                1.0,
            ),
            (r#"nudge_decide_filtered_total{reason="cap_channel"}"#, 2.0),
            (r#"nudge_decide_filtered_total{reason="cooldown"}"#, 1.0),
            (r#"nudge_decide_filtered_total{reason="diversity"}"#, 0.0),
            (r#"nudge_decide_fallbacks_total{reason="overloaded"}"#, 1.0),
            ("nudge_actors_mailbox_saturated_total", 1.0),
            (r#"nudge_grpc_rejected_total{reason="invalid"}"#, 1.0),
            (r#"nudge_grpc_rejected_total{reason="deadline"}"#, 0.0),
            (r#"nudge_grpc_rejected_total{reason="unauthorized"}"#, 1.0),
            (r#"nudge_grpc_rejected_total{reason="overloaded"}"#, 1.0),
            ("nudge_grpc_shed_total", 1.0),
            ("nudge_grpc_connections_refused_total", 0.0),
            (
                r#"nudge_decide_duration_seconds_bucket{placement="home_banner",fallback="yes",le="0.00015"}"#,
                1.0,
            ),
            (
                r#"nudge_decide_duration_seconds_bucket{placement="home_banner",fallback="yes",le="0.0001"}"#,
                0.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
        }
    }
}
