//! One typed configuration, validated once at start-up. Layers, each
//! overriding the one before: built-in defaults, then a TOML file (unknown keys
//! are errors), then `NUDGE_*` environment variables, then command-line flags.
//!
//! Every setting has an environment variable, by one rule: `NUDGE_` and the
//! key in upper case with `.` as `_` (`actors.max_live_customers` is
//! `NUDGE_ACTORS_MAX_LIVE_CUSTOMERS`). [`Config::load`] overlays those
//! variables, and `--set key=value` flags, on the file's TOML document before
//! it is deserialized, so there is no per-setting code: a value is read as a
//! TOML value (`50`, `true`, `[1, 2]`) when the setting takes one, otherwise
//! as the literal string. A variable whose name is no setting, or whose value
//! does not fit, is an error that names the variable.
//!
//! - this file: the types of every setting, their defaults, [`ConfigError`];
//! - `layers`: [`Config::load`], the file and the environment / `--set`
//!   overlay, and [`environment`];
//! - `web`: [`WebConfig`], the settings of browser callers and pages;
//! - `validate`: [`Config::validate`] and the settings read from files
//!   ([`Config::auth_token`], [`Config::tls_files`]).

mod cluster;
mod layers;
#[cfg(test)]
mod tests;
mod validate;
mod web;

pub use cluster::{ClusterConfig, ForwardingTls, RedisDurability, StorageBackend};
pub use layers::{ENV_PREFIX, env_name, environment};
pub use web::WebConfig;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served (`/metrics`), or `off`.
    pub metrics_listen: Listen,
    /// Catalog file; the embedded demo catalog when absent.
    pub catalog: Option<PathBuf>,
    /// Model artifact; the embedded demo model when absent.
    pub model: Option<PathBuf>,
    /// Service time budget of one Decide, Track or ReportOutcome, in
    /// milliseconds; the client's gRPC deadline applies when shorter. When the
    /// budget (not the client's deadline) runs out, the call is answered with
    /// RESOURCE_EXHAUSTED or UNAVAILABLE, never DEADLINE_EXCEEDED.
    pub budget_ms: u64,
    /// Below this much remaining budget (ms) a Decide answers from the fallback
    /// ladder instead of scoring.
    pub fallback_headroom_ms: u64,
    /// Customer actors.
    pub actors: ActorConfig,
    /// Input limits.
    pub limits: Limits,
    /// Who may make the protected calls (see [`crate::grpc::auth`]).
    pub auth: AuthConfig,
    /// TLS, and client certificates (mTLS), on the gRPC listener.
    pub tls: TlsConfig,
    /// Durable customer state and the decision log.
    pub storage: StorageConfig,
    /// Transport limits and admission control of the gRPC listener.
    pub grpc: GrpcConfig,
    /// Guardrails of the model registry.
    pub models: ModelsConfig,
    /// How journeys' sends are handed to delivery services.
    pub journeys: JourneysConfig,
    /// This node among several (`nudge serve --cluster`).
    pub cluster: ClusterConfig,
    /// Browsers: grpc-web and its allowed origins, customer tokens, and the
    /// pages listener (`/nudge.js`, `/demo`, `/console`).
    pub web: WebConfig,
    /// Which logs are written: a `tracing` filter directive such as `info`,
    /// `debug` or `nudge_service=debug,info` (the `NUDGE_LOG` variable).
    pub log: String,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// Write customer ids in logs as they are. Off: a customer id appears only
    /// as a keyed hash (`cust#3f9a1c2b`), because it is personal data.
    pub log_customer_ids: bool,
    /// The key of that hash. The same key on every instance gives a customer
    /// the same hash in all their logs, across restarts; unset, each process
    /// draws a random key.
    pub log_customer_id_key: Option<Secret>,
}

/// Guardrails of the model registry (see [`crate::registry`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// How much lower than the control's a model's holdout AUC (from the
    /// training report loaded with it) may be for `PromoteModel` to accept
    /// it without `force`.
    pub max_auc_drop: f64,
    /// Whether the live guardrail watches a running experiment and rolls a
    /// challenger that converts worse than the control back by itself.
    pub guardrail: bool,
    /// The guardrail's false-alarm rate: with equal conversion rates, the
    /// chance that it ever rolls the challenger back during the experiment
    /// (a sequential test: it may be read after every conversion).
    pub guardrail_alpha: f64,
    /// The difference the guardrail's test is tuned to, relative to the
    /// conversion rate (0.2: a fifth of it).
    pub guardrail_effect: f64,
    /// Served actions each variant needs before the guardrail decides.
    pub guardrail_min_served: u64,
    /// Conversions, both variants together, needed before it decides.
    pub guardrail_min_conversions: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let test = nudge_models::guardrail::SequentialTest::default();
        Self {
            max_auc_drop: 0.01,
            guardrail: true,
            guardrail_alpha: test.alpha,
            guardrail_effect: test.effect,
            guardrail_min_served: test.min_served,
            guardrail_min_conversions: test.min_conversions,
        }
    }
}

impl ModelsConfig {
    /// The guardrail's test, `None` when it is off.
    pub fn guardrail_test(&self) -> Option<nudge_models::guardrail::SequentialTest> {
        self.guardrail
            .then_some(nudge_models::guardrail::SequentialTest {
                alpha: self.guardrail_alpha,
                effect: self.guardrail_effect,
                min_served: self.guardrail_min_served,
                min_conversions: self.guardrail_min_conversions,
            })
    }
}

/// How journeys' sends are handed to delivery services (see
/// `Dispatches.Subscribe` and [`nudge_models::journey::dispatch`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JourneysConfig {
    /// How long a delivery service has to acknowledge a dispatch before it
    /// is handed out again (ms; doubled on each redelivery).
    pub ack_timeout_ms: u64,
    /// The longest wait between two redeliveries (seconds).
    pub longest_backoff_secs: u64,
    /// How long after it was made a dispatch that was never acknowledged,
    /// or whose outcome never came, leaves the outbox (seconds).
    pub dispatch_expiry_secs: u64,
    /// Dispatches buffered per subscriber before the next ones skip it
    /// (they go to another subscriber of the channel, or are handed out
    /// again after the acknowledgement timeout).
    pub subscriber_buffer: usize,
}

impl Default for JourneysConfig {
    fn default() -> Self {
        let policy = nudge_models::journey::DispatchPolicy::default();
        Self {
            ack_timeout_ms: policy.ack_timeout.0.unsigned_abs(),
            longest_backoff_secs: (policy.longest_backoff.0 / 1_000).unsigned_abs(),
            dispatch_expiry_secs: (policy.expire_after.0 / 1_000).unsigned_abs(),
            subscriber_buffer: 1_024,
        }
    }
}

impl JourneysConfig {
    /// The dispatch policy these settings make.
    pub fn dispatch_policy(&self) -> nudge_models::journey::DispatchPolicy {
        let millis =
            |value: u64| nudge_models::time::Span(i64::try_from(value).unwrap_or(i64::MAX));
        nudge_models::journey::DispatchPolicy {
            ack_timeout: millis(self.ack_timeout_ms),
            longest_backoff: millis(self.longest_backoff_secs.saturating_mul(1_000)),
            expire_after: millis(self.dispatch_expiry_secs.saturating_mul(1_000)),
        }
    }
}

/// Transport limits and admission control of the gRPC listener (see
/// [`crate::grpc::serve`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Most calls in flight at once, over every connection. A call beyond it
    /// is refused at once with RESOURCE_EXHAUSTED instead of waiting in a
    /// queue past its budget. Health and reflection calls are not counted.
    /// While calls queue, admission holds a lower limit (see
    /// `queue_delay_target_ms`).
    pub max_concurrent_requests: usize,
    /// The lowest the queueing-delay limit on calls in flight goes, so that
    /// some calls are always admitted (never above `max_concurrent_requests`).
    pub min_concurrent_requests: usize,
    /// The queueing delay tolerated (ms): when even the fastest quarter of the calls of a
    /// whole `queue_delay_interval_ms` took this much longer than calls take
    /// without a queue, the limit on calls in flight is lowered and the
    /// excess shed at once. 0 turns this off (only `max_concurrent_requests`
    /// applies).
    pub queue_delay_target_ms: u64,
    /// How long (ms) the queueing delay must stay above the target before
    /// the limit is lowered, and how often the limit is adjusted.
    pub queue_delay_interval_ms: u64,
    /// Most client connections open at once; a connection beyond it is
    /// closed as soon as it is accepted.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams (calls) one connection may open.
    pub max_concurrent_streams: u32,
    /// Seconds between HTTP/2 keepalive pings on an idle connection.
    pub keepalive_interval_secs: u64,
    /// Seconds to wait for a keepalive ping's answer before the connection is
    /// closed.
    pub keepalive_timeout_secs: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 1_024,
            min_concurrent_requests: 4,
            queue_delay_target_ms: 10,
            queue_delay_interval_ms: 100,
            max_connections: 1_024,
            max_concurrent_streams: 256,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 10,
        }
    }
}

/// How log lines are written: `text` for people, `json` (one object per
/// line) for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("'{other}' is neither 'text' nor 'json'")),
        }
    }
}

/// Where and how customer state, the decision log and outcomes are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where everything is kept: `embedded` (the data directory) or
    /// `redis` (a Redis Cluster, `redis_urls`).
    pub backend: StorageBackend,
    /// The data directory (created if missing); holds `nudge.redb`. With
    /// the Redis backend it still holds the model registry and the
    /// journeys' catalogs.
    pub data_dir: PathBuf,
    /// Keep everything in memory instead: nothing survives a restart. For
    /// trials and tests only.
    pub in_memory: bool,
    /// Most writes committed in one transaction (one fsync). Writes queue
    /// while a commit runs and go together in the next one.
    pub max_batch_writes: usize,
    /// Most records the state journal holds: each commit appends one per
    /// customer it changed, and past this bound the customers with the
    /// oldest records are folded into their snapshots. More means fewer
    /// random writes per change; the start after a crash reads them all.
    /// Without the write-ahead log only: its checkpoints write snapshots.
    pub journal_records: usize,
    /// Whether each commit also saves the allocator state (a second fsync
    /// and a few more pages per commit) so that the start after a crash
    /// reads it instead of walking the whole data file to repair it.
    pub quick_repair: bool,
    /// While commits run back to back, the least time between the starts
    /// of two commits (microseconds): writes arriving meanwhile join the
    /// next commit. Every commit rewrites about a dozen pages (~50 KB)
    /// whatever it holds, so under load an interval cuts the bytes written
    /// and the CPU spent per change, for up to this much latency per durable
    /// call. A write to an idle store commits at once. 0: always at once.
    pub commit_interval_us: u64,
    /// Make writes durable by appending them to a write-ahead log
    /// (`nudge.0.wal`, `nudge.1.wal` beside the data file: one small append and one
    /// `fdatasync` per group of writes) and bring them into the data file
    /// by a checkpoint every `checkpoint_interval_ms`, instead of a data-file
    /// commit (a dozen pages, two fsyncs) per group. Off: every group
    /// commits to the data file.
    pub write_ahead: bool,
    /// With the write-ahead log, the longest time (milliseconds) between a
    /// write and the checkpoint that brings it into the data file. Longer
    /// folds more changes of the same customers into one write; the log a
    /// restart after a crash replays grows with it. 5 s wrote half the bytes
    /// of 1 s under sustained load (`bench/RESULTS.md`).
    pub checkpoint_interval_ms: u64,
    /// Decision and outcome log entries older than this many days are
    /// deleted by compaction; 0 keeps them forever.
    pub decision_retention_days: u64,
    /// How often compaction runs (seconds).
    pub compaction_interval_secs: u64,
    /// The Redis Cluster's nodes (`redis://host:port`, `rediss://` for
    /// TLS): a few are enough, the rest are discovered.
    pub redis_urls: Vec<String>,
    /// The first part of every key nudge writes, so several deployments
    /// can share a cluster.
    pub redis_namespace: String,
    /// What a write waits for before it is acknowledged: `fsync` (every
    /// primary fsyncs its AOF on each write; checked at start), `replicas`
    /// (`WAIT` for `redis_wait_replicas`) or `unchecked`.
    pub redis_durability: RedisDurability,
    /// With `redis_durability = "replicas"`: how many replicas must have a
    /// write.
    pub redis_wait_replicas: u32,
    /// With `redis_durability = "replicas"`: the longest wait for them (ms);
    /// fewer in time fails the write.
    pub redis_wait_timeout_ms: u64,
    /// The longest a Redis command or connection attempt may take (ms)
    /// before it fails and is retried with backoff.
    pub redis_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("nudge-data"),
            in_memory: false,
            max_batch_writes: 4_096,
            journal_records: 100_000,
            quick_repair: true,
            commit_interval_us: 0,
            write_ahead: true,
            checkpoint_interval_ms: 5_000,
            decision_retention_days: 90,
            compaction_interval_secs: 3_600,
            backend: StorageBackend::Embedded,
            redis_urls: Vec::new(),
            redis_namespace: "nudge".to_owned(),
            redis_durability: RedisDurability::Fsync,
            redis_wait_replicas: 1,
            redis_wait_timeout_ms: 100,
            redis_timeout_ms: 1_000,
        }
    }
}

/// The bearer token that guards the protected calls: every `nudge.v1.Admin`
/// call and the Profiles calls that change state. Neither set: no token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The token itself (`NUDGE_AUTH_TOKEN` overrides the file's settings).
    pub token: Option<Secret>,
    /// A file whose content (surrounding whitespace trimmed) is the token,
    /// read once at start.
    pub token_file: Option<PathBuf>,
}

/// TLS on the gRPC listener: `cert` and `key` turn it on; `client_ca` also
/// requires every client to present a certificate signed by that CA (mTLS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// The server's private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
}

/// A secret string: its `Debug` form never shows it, so the configuration can
/// be logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(<redacted>)")
    }
}

/// The PEM files of [`TlsConfig`], read.
#[derive(Clone)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: Vec<u8>,
    /// The server's private key.
    pub key: Vec<u8>,
    /// The client CA, when client certificates are required.
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsFiles")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &format_args!("<redacted>"))
            .field("mtls", &self.client_ca.is_some())
            .finish()
    }
}

/// Where an HTTP listener (the Prometheus exporter, the pages) listens: an
/// address, or `off` for none. Written `127.0.0.1:9464` or `off` in the
/// file, the flags (`--metrics-listen`, `--web-listen`) and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Listen {
    /// No listener.
    Off,
    /// Serve over HTTP on this address.
    On(SocketAddr),
}

impl Listen {
    /// The exporter's default: 127.0.0.1:9464, loopback only.
    pub const DEFAULT: Listen = Listen::On(SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        9464,
    )));
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        text.parse()
            .map(Listen::On)
            .map_err(|_| format!("'{text}' is neither an address such as 127.0.0.1:9464 nor 'off'"))
    }
}

impl TryFrom<String> for Listen {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Off => formatter.write_str("off"),
            Listen::On(address) => address.fmt(formatter),
        }
    }
}

/// Customer actors: threads, mailboxes, passivation, bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorConfig {
    /// Actor threads (arbiters); customers are sharded over them by id hash.
    pub arbiters: usize,
    /// Mailbox capacity of each customer actor.
    pub mailbox_capacity: usize,
    /// Queued calls for one customer beyond which a Decide answers from the
    /// fallback ladder (marked `overloaded`).
    pub overload_threshold: usize,
    /// An actor idle this long (seconds) is passivated.
    pub idle_timeout_secs: u64,
    /// How often idle actors are looked for (seconds).
    pub sweep_interval_secs: u64,
    /// Most customers held live at once; the least recently active are
    /// passivated beyond it.
    pub max_live_customers: usize,
}

/// Limits on every input, each refused with INVALID_ARGUMENT naming the field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest id (customer, action, event, decision, placement, channel), bytes.
    pub max_id_bytes: usize,
    /// Most candidate ids in one Decide.
    pub max_candidates: usize,
    /// Most context entries in one Decide.
    pub max_context_entries: usize,
    /// Most properties on one event.
    pub max_event_properties: usize,
    /// Longest string value or key, bytes.
    pub max_string_bytes: usize,
    /// Most actions served by one Decide.
    pub max_limit: u32,
    /// How far in the future an event or outcome timestamp may be (seconds).
    pub max_future_skew_secs: u64,
    /// How far in the past an event or outcome timestamp may be (days).
    pub max_past_days: u64,
    /// Largest gRPC message accepted, bytes.
    pub max_message_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: Listen::DEFAULT,
            catalog: None,
            model: None,
            budget_ms: 100,
            fallback_headroom_ms: 2,
            actors: ActorConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            cluster: ClusterConfig::default(),
            grpc: GrpcConfig::default(),
            models: ModelsConfig::default(),
            journeys: JourneysConfig::default(),
            web: WebConfig::default(),
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            log_customer_ids: false,
            log_customer_id_key: None,
        }
    }
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            arbiters: 2,
            mailbox_capacity: 64,
            overload_threshold: 32,
            idle_timeout_secs: 300,
            sweep_interval_secs: 10,
            max_live_customers: 100_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_id_bytes: 256,
            max_candidates: 1_000,
            max_context_entries: 256,
            max_event_properties: 64,
            max_string_bytes: 4_096,
            max_limit: 50,
            max_future_skew_secs: 300,
            max_past_days: 365,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("config file {path}: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// A `NUDGE_*` environment variable names no setting, or its value does
    /// not fit the setting.
    #[error("environment variable {variable}: {message}")]
    Env {
        /// The variable.
        variable: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set key=value` flag names no setting, or its value does not fit.
    #[error("--set {setting}: {message}")]
    Set {
        /// The setting as written.
        setting: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("config: {field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// The budget of a Decide, Track or ReportOutcome.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }
}
