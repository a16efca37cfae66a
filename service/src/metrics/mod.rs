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
//!
//! - this file: the names, label keys, buckets and [`DECLARATIONS`], and the
//!   fixed label sets;
//! - `engine`: [`Metrics`], the handles of the engine and the actors;
//! - `grpc`: [`GrpcMetrics`] and [`Rejection`], for the gRPC layer;
//! - `storage`: [`StorageMetrics`], for the store's group commits;
//! - `journeys`: the journey analytics, recorded through [`Metrics`]
//!   (journey and step ids come from the catalog);
//! - `install`: [`install`], the process-global recorder and its listener.

mod engine;
mod grpc;
mod install;
mod journeys;
mod redis;
mod storage;
#[cfg(test)]
mod tests;

pub use engine::Metrics;
pub use grpc::{GrpcMetrics, Rejection};
pub use install::{InstallError, install};
pub use redis::{RedisMetrics, forwarded};
pub use storage::StorageMetrics;

use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::{FallbackReason, FilterReason};

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
/// Counter: experiments the live guardrail ended by rolling the challenger
/// back (which one and why: the log line and `nudge model list`).
pub const MODELS_GUARDRAIL_ROLLBACKS_TOTAL: &str = "nudge_models_guardrail_rollbacks_total";
/// Counter: gRPC calls refused; label `reason` (`invalid`, `deadline`,
/// `overloaded`, `unauthorized`).
pub const GRPC_REJECTED_TOTAL: &str = "nudge_grpc_rejected_total";
/// Counter: calls shed by admission control, answered RESOURCE_EXHAUSTED
/// before any handler ran; label `reason` (`concurrency`: the configured
/// `grpc.max_concurrent_requests` were in flight; `queue_delay`: the limit,
/// lowered because calls queued, was).
pub const GRPC_SHED_TOTAL: &str = "nudge_grpc_shed_total";
/// Gauge: the admission limit on calls in flight, as queueing delay adjusts it.
pub const GRPC_CONCURRENCY_LIMIT: &str = "nudge_grpc_concurrency_limit";
/// Counter: admitted calls whose service budget ran out before their answer;
/// labels `call` (`decide`, `track`, `outcome`) and `stage` (`queued`: before
/// the actor applied it, answered RESOURCE_EXHAUSTED; `storing`: while its
/// write was pending, answered UNAVAILABLE).
pub const BUDGET_EXHAUSTED_TOTAL: &str = "nudge_budget_exhausted_total";
/// Counter: connections closed on accept because `grpc.max_connections` were
/// open.
pub const GRPC_CONNECTIONS_REFUSED_TOTAL: &str = "nudge_grpc_connections_refused_total";
/// Histogram: seconds one group commit of the store took (apply + fsync, or
/// with the write-ahead log, its append + fsync).
pub const STORAGE_COMMIT_SECONDS: &str = "nudge_storage_commit_duration_seconds";
/// Histogram: seconds one checkpoint of the write-ahead log into the
/// database took.
pub const STORAGE_CHECKPOINT_SECONDS: &str = "nudge_storage_checkpoint_duration_seconds";
/// Counter: writes (customer changes, log entries) made durable.
pub const STORAGE_WRITES_TOTAL: &str = "nudge_storage_writes_total";
/// Counter: store commits that failed (writes refused until it recovers).
pub const STORAGE_FAILURES_TOTAL: &str = "nudge_storage_failures_total";
/// Gauge: records in the state journal (what the next start reads back).
pub const STORAGE_JOURNAL_RECORDS: &str = "nudge_storage_journal_records";
/// Counter: customers settled from the journal into their snapshots.
pub const STORAGE_SETTLED_TOTAL: &str = "nudge_storage_settled_total";
/// Histogram: seconds one round trip to Redis took (the Redis store);
/// label `operation` (`apply`: a partition's batch of writes, `lease`,
/// `wait`, `load`, `export`, …).
pub const REDIS_ROUND_TRIP_SECONDS: &str = "nudge_redis_round_trip_duration_seconds";
/// Counter: writes Redis refused because their fencing token was stale (a
/// newer owner holds the partition).
pub const CLUSTER_FENCING_REFUSALS_TOTAL: &str = "nudge_cluster_fencing_refusals_total";
/// Counter: partition lease changes on this node; label `change`
/// (`acquired`, `lost`, `released`).
pub const CLUSTER_LEASE_CHANGES_TOTAL: &str = "nudge_cluster_lease_changes_total";
/// Counter: calls forwarded to the node holding their customer's
/// partition; labels `call`, `result` (`ok`, `error`).
pub const CLUSTER_FORWARDS_TOTAL: &str = "nudge_cluster_forwards_total";
/// Gauge: partitions whose lease this node holds.
pub const CLUSTER_PARTITIONS_OWNED: &str = "nudge_cluster_partitions_owned";
/// Counter: journey triggers that fired; labels `journey`, `result`
/// (`started`, or why the customer was not let in: `already_in`,
/// `too_soon`, `goal_reached`, `entry_rule`, `too_many_journeys`, …).
pub const JOURNEY_ENTRIES_TOTAL: &str = "nudge_journey_entries_total";
/// Counter: journey runs ended; labels `journey`, `ending` (`completed`,
/// `converted`, `exited`, `exit_step`, `cancelled`, `removed`, `failed`).
pub const JOURNEY_RUNS_ENDED_TOTAL: &str = "nudge_journey_runs_ended_total";
/// Counter: journey send attempts; labels `journey`, `step`, `result`
/// (`sent`, `deferred`, `blocked`) and `cause` (the filter reason that
/// deferred or blocked it, e.g. `quiet_hours`, `cap_channel`, `opted_out`;
/// empty for `sent`).
pub const JOURNEY_SENDS_TOTAL: &str = "nudge_journey_sends_total";
/// Counter: runs that left a journey step; labels `journey`, `step`, `how`
/// (`done`, `event`, `timeout`, `case_<n>`, `else`, `arm_<n>`, `blocked`,
/// or the ending that took the run out while in it).
pub const JOURNEY_STEP_EXITS_TOTAL: &str = "nudge_journey_step_exits_total";
/// Histogram: seconds runs spent in a journey step before leaving it;
/// labels `journey`, `step`.
pub const JOURNEY_STEP_SECONDS: &str = "nudge_journey_step_seconds";
/// Gauge: the share of the last runs to leave a journey step that dropped
/// out of the journey there (exit event, removal, cancel, failure) rather
/// than moving on or converting; labels `journey`, `step`. Alert when it
/// jumps.
pub const JOURNEY_STEP_DROPOFF_RATIO: &str = "nudge_journey_step_dropoff_ratio";
/// Counter: what delivery services reported of journey sends; labels
/// `journey`, `channel`, `result` (`delivered`, `failed`, `failed_over`:
/// the channel failed twice and the send went out on another,
/// `undelivered`: it left the outbox without an outcome, `withdrawn`: its
/// run ended from outside before a delivery service took it).
pub const JOURNEY_DELIVERIES_TOTAL: &str = "nudge_journey_deliveries_total";
/// Gauge: customers whose journey runs are scheduled to move (`due`) or
/// held by a paused journey (`parked`); label `state`.
pub const JOURNEY_TIMERS: &str = "nudge_journey_timers";
/// Histogram: seconds from the moment a customer's journey run was due to
/// its actor moving it (the timer task's lateness; after a restart, the
/// time the service was down).
pub const JOURNEY_TIMER_LATENESS_SECONDS: &str = "nudge_journey_timer_lateness_seconds";
/// Counter: dispatches offered to the delivery services' subscriptions, and
/// acknowledged; labels `channel`, `result` (`handed_out`, `redelivered`:
/// handed out again, not acknowledged in time, `not_taken`: no
/// subscription's buffer took it, `acknowledged`).
pub const JOURNEY_DISPATCHES_TOTAL: &str = "nudge_journey_dispatches_total";
/// Counter: profile score refreshes; labels `path` (`decision`: before a
/// decision or a journey step used them, `background`: after events or
/// outcomes), `reason` (`never`, `redefined`, `changed`, `aged`).
pub const SCORE_REFRESHES_TOTAL: &str = "nudge_score_refreshes_total";
/// Gauge: delivery services subscribed to dispatches.
pub const JOURNEY_DISPATCH_SUBSCRIBERS: &str = "nudge_journey_dispatch_subscribers";
/// Gauge: customers holding dispatches because no delivery service takes
/// their channel.
pub const JOURNEY_DISPATCH_WAITING: &str = "nudge_journey_dispatch_waiting";

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
const CALL: &str = "call";
const STAGE: &str = "stage";
const JOURNEY: &str = "journey";
const STEP: &str = "step";
const RESULT: &str = "result";
const CAUSE: &str = "cause";
const ENDING: &str = "ending";
const HOW: &str = "how";
const STATE: &str = "state";
const PATH: &str = "path";
const OPERATION: &str = "operation";
const CHANGE: &str = "change";

/// The `event` label of event names that are not in the catalog's `events`.
pub const OTHER_EVENT: &str = "other";

/// Upper bounds (seconds) of the storage commit buckets: 100 µs to 1 s.
pub const STORAGE_COMMIT_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Upper bounds (seconds) of the checkpoint buckets: 1 ms to 30 s (a
/// checkpoint brings seconds of writes into the data file; one that takes
/// about its interval is falling behind).
pub const STORAGE_CHECKPOINT_BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds (seconds) of the timer lateness buckets: 1 ms to 10 minutes
/// (a timer is meant to fire within 100 ms; minutes mean a backlog or a
/// restart).
pub const JOURNEY_LATENESS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0, 60.0, 600.0,
];

/// Upper bounds (seconds) of the time-in-step buckets: a minute to 30 days.
pub const JOURNEY_STEP_BUCKETS: [f64; 11] = [
    60.0,
    600.0,
    3_600.0,
    6.0 * 3_600.0,
    12.0 * 3_600.0,
    86_400.0,
    2.0 * 86_400.0,
    3.0 * 86_400.0,
    7.0 * 86_400.0,
    14.0 * 86_400.0,
    30.0 * 86_400.0,
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
pub const DECLARATIONS: [Declaration; 44] = [
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
        labels: &[OUTCOME, VARIANT],
        help: "Outcomes applied, by type and by the experiment variant of the customer.",
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
        name: MODELS_GUARDRAIL_ROLLBACKS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Experiments the live guardrail ended by rolling back a challenger that converted worse than the control (sequential test at models.guardrail_alpha).",
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
        labels: &[REASON],
        help: "gRPC calls shed by admission control, answered RESOURCE_EXHAUSTED before any handler ran: concurrency (grpc.max_concurrent_requests in flight) or queue_delay (the limit lowered because calls queued).",
    },
    Declaration {
        name: GRPC_CONCURRENCY_LIMIT,
        kind: Kind::Gauge,
        labels: &[],
        help: "The admission limit on gRPC calls in flight: grpc.max_concurrent_requests, lowered while calls queue.",
    },
    Declaration {
        name: BUDGET_EXHAUSTED_TOTAL,
        kind: Kind::Counter,
        labels: &[CALL, STAGE],
        help: "Admitted calls whose service budget (budget_ms) ran out before their answer: queued (RESOURCE_EXHAUSTED, not applied) or storing (UNAVAILABLE, its write pending).",
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
        help: "Seconds one group commit of the store took: applying a batch of writes and its fsync (with the write-ahead log: appending the batch and its fsync).",
    },
    Declaration {
        name: STORAGE_CHECKPOINT_SECONDS,
        kind: Kind::Histogram,
        labels: &[],
        help: "Seconds one checkpoint took: the write-ahead log's writes since the last one brought into the database in one transaction.",
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
    Declaration {
        name: STORAGE_JOURNAL_RECORDS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Records in the state journal, at most storage.journal_records: what the next start reads back.",
    },
    Declaration {
        name: STORAGE_SETTLED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Customers settled from the state journal into their stored record (the journal past its bound, or a forget).",
    },
    Declaration {
        name: REDIS_ROUND_TRIP_SECONDS,
        kind: Kind::Histogram,
        labels: &[OPERATION],
        help: "Seconds one round trip to Redis took (storage.backend = \"redis\"), by operation: apply (one partition's batch of writes, one script call), lease, wait (replicas), load, export, scan.",
    },
    Declaration {
        name: CLUSTER_FENCING_REFUSALS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Writes Redis refused because their fencing token was stale: another node took the partition's lease.",
    },
    Declaration {
        name: CLUSTER_LEASE_CHANGES_TOTAL,
        kind: Kind::Counter,
        labels: &[CHANGE],
        help: "Partition lease changes on this node: acquired, lost (not renewed in time, or taken over), released.",
    },
    Declaration {
        name: CLUSTER_FORWARDS_TOTAL,
        kind: Kind::Counter,
        labels: &[CALL, RESULT],
        help: "Calls this node forwarded to the node holding their customer's partition, by call and result (ok, error).",
    },
    Declaration {
        name: CLUSTER_PARTITIONS_OWNED,
        kind: Kind::Gauge,
        labels: &[],
        help: "Partitions whose lease this node holds.",
    },
    Declaration {
        name: JOURNEY_ENTRIES_TOTAL,
        kind: Kind::Counter,
        labels: &[JOURNEY, RESULT],
        help: "Journey triggers that fired: started, or the entry rule that kept the customer out.",
    },
    Declaration {
        name: JOURNEY_RUNS_ENDED_TOTAL,
        kind: Kind::Counter,
        labels: &[JOURNEY, ENDING],
        help: "Journey runs ended, by ending (completed, converted, exited, exit_step, cancelled, removed, failed).",
    },
    Declaration {
        name: JOURNEY_SENDS_TOTAL,
        kind: Kind::Counter,
        labels: &[JOURNEY, STEP, RESULT, CAUSE],
        help: "Journey send attempts: sent, deferred or blocked, with the filter reason that deferred or blocked them.",
    },
    Declaration {
        name: JOURNEY_STEP_EXITS_TOTAL,
        kind: Kind::Counter,
        labels: &[JOURNEY, STEP, HOW],
        help: "Runs that left a journey step, by how (done, event, timeout, a branch case, blocked, or the ending that took them out).",
    },
    Declaration {
        name: JOURNEY_STEP_SECONDS,
        kind: Kind::Histogram,
        labels: &[JOURNEY, STEP],
        help: "Seconds runs spent in a journey step before leaving it.",
    },
    Declaration {
        name: JOURNEY_STEP_DROPOFF_RATIO,
        kind: Kind::Gauge,
        labels: &[JOURNEY, STEP],
        help: "Share of the last runs to leave a journey step that dropped out of the journey there (exit event, removal, cancel, failure).",
    },
    Declaration {
        name: JOURNEY_DELIVERIES_TOTAL,
        kind: Kind::Counter,
        labels: &[JOURNEY, CHANNEL, RESULT],
        help: "What delivery services reported of journey sends: delivered, failed, failed_over (sent on another channel instead), undelivered (no outcome in time), withdrawn (its run ended before a delivery service took it).",
    },
    Declaration {
        name: JOURNEY_TIMERS,
        kind: Kind::Gauge,
        labels: &[STATE],
        help: "Customers whose journey runs are scheduled to move (due) or held by a paused journey (parked).",
    },
    Declaration {
        name: JOURNEY_TIMER_LATENESS_SECONDS,
        kind: Kind::Histogram,
        labels: &[],
        help: "Seconds from the moment a customer's journey run was due to its actor moving it.",
    },
    Declaration {
        name: JOURNEY_DISPATCHES_TOTAL,
        kind: Kind::Counter,
        labels: &[CHANNEL, RESULT],
        help: "Journey dispatches offered to delivery services (handed_out, redelivered, not_taken) and acknowledged.",
    },
    Declaration {
        name: SCORE_REFRESHES_TOTAL,
        kind: Kind::Counter,
        labels: &[PATH, REASON],
        help: "Profile score refreshes, by path (decision: before a decision or journey step used them; background: after events or outcomes) and reason.",
    },
    Declaration {
        name: JOURNEY_DISPATCH_SUBSCRIBERS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Delivery services subscribed to journey dispatches.",
    },
    Declaration {
        name: JOURNEY_DISPATCH_WAITING,
        kind: Kind::Gauge,
        labels: &[],
        help: "Customers holding journey dispatches because no delivery service takes their channel.",
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
