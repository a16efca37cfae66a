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
    pub metrics_listen: MetricsListen,
    /// Catalog file; the embedded demo catalog when absent.
    pub catalog: Option<PathBuf>,
    /// Model artifact; the embedded demo model when absent.
    pub model: Option<PathBuf>,
    /// Service time budget of one Decide, in milliseconds; the client's gRPC
    /// deadline applies when shorter.
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

/// Transport limits and admission control of the gRPC listener (see
/// [`crate::grpc::serve`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Most calls in flight at once, over every connection. A call beyond it
    /// is refused at once with RESOURCE_EXHAUSTED instead of waiting in a
    /// queue past its budget. Health and reflection calls are not counted.
    pub max_concurrent_requests: usize,
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
    /// The data directory (created if missing); holds `nudge.redb`.
    pub data_dir: PathBuf,
    /// Keep everything in memory instead: nothing survives a restart. For
    /// trials and tests only.
    pub in_memory: bool,
    /// Most writes committed in one transaction (one fsync). Writes queue
    /// while a commit runs and go together in the next one.
    pub max_batch_writes: usize,
    /// Decision and outcome log entries older than this many days are
    /// deleted by compaction; 0 keeps them forever.
    pub decision_retention_days: u64,
    /// How often compaction runs (seconds).
    pub compaction_interval_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("nudge-data"),
            in_memory: false,
            max_batch_writes: 4_096,
            decision_retention_days: 90,
            compaction_interval_secs: 3_600,
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

/// Where the Prometheus exporter listens: an address, or `off` for no
/// exporter. Written `127.0.0.1:9464` or `off` in the file, the
/// `--metrics-listen` flag and `NUDGE_METRICS_LISTEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum MetricsListen {
    /// No exporter.
    Off,
    /// Serve `/metrics` over HTTP on this address.
    On(SocketAddr),
}

impl MetricsListen {
    /// The default: 127.0.0.1:9464, loopback only.
    pub const DEFAULT: MetricsListen = MetricsListen::On(SocketAddr::V4(
        std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9464),
    ));
}

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(MetricsListen::Off);
        }
        text.parse()
            .map(MetricsListen::On)
            .map_err(|_| format!("'{text}' is neither an address such as 127.0.0.1:9464 nor 'off'"))
    }
}

impl TryFrom<String> for MetricsListen {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for MetricsListen {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsListen::Off => formatter.write_str("off"),
            MetricsListen::On(address) => address.fmt(formatter),
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
            metrics_listen: MetricsListen::DEFAULT,
            catalog: None,
            model: None,
            budget_ms: 100,
            fallback_headroom_ms: 2,
            actors: ActorConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            grpc: GrpcConfig::default(),
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

/// The prefix of every environment variable of nudge.
pub const ENV_PREFIX: &str = "NUDGE_";

/// `NUDGE_*` variables that are not settings: the file's path, and the
/// options of the client subcommands (the same binary).
const NOT_SETTINGS: [&str; 6] = [
    "NUDGE_CONFIG",
    "NUDGE_SERVER",
    "NUDGE_TOKEN",
    "NUDGE_CA_CERT",
    "NUDGE_CLIENT_CERT",
    "NUDGE_CLIENT_KEY",
];

/// The tables of [`Config`]: `NUDGE_ACTORS_ARBITERS` is `actors.arbiters`, a
/// name that starts with no section is a top-level key.
const SECTIONS: [&str; 6] = ["actors", "limits", "auth", "tls", "storage", "grpc"];

/// The environment variable of a setting: `actors.max_live_customers` →
/// `NUDGE_ACTORS_MAX_LIVE_CUSTOMERS`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The setting of a `NUDGE_*` variable (the part after the prefix), as a key
/// path: `ACTORS_MAX_LIVE_CUSTOMERS` → `["actors", "max_live_customers"]`.
fn key_of_env(suffix: &str) -> Vec<String> {
    let lower = suffix.to_ascii_lowercase();
    for section in SECTIONS {
        if let Some(key) = lower
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('_'))
        {
            return vec![section.to_owned(), key.to_owned()];
        }
    }
    vec![lower]
}

/// `doc` with `value` at `path`, creating the tables on the way.
fn insert(doc: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, sections)) = path.split_last() else {
        return;
    };
    let mut table = doc;
    for section in sections {
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            // A path through a scalar (`--set budget_ms.x=1`): `value_for`
            // refuses it before it gets here, on a document of its own.
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        table = inner;
    }
    table.insert(last.clone(), value);
}

/// The TOML value of `raw` for the setting at `path`: the value `raw` spells
/// (`50`, `true`, `[1, 2]`) if the setting takes it, else the string `raw`
/// itself (`127.0.0.1:50051`, `/etc/nudge/catalog.toml`, `0042` as a token).
/// Each candidate is tried on a document that sets only this key, so the
/// error is about this value alone.
fn value_for(path: &[String], raw: &str) -> Result<toml::Value, String> {
    let spelled = raw
        .parse::<toml::Value>()
        .ok()
        .filter(|value| !value.is_str());
    let mut first_error = None;
    for candidate in spelled
        .into_iter()
        .chain([toml::Value::String(raw.to_owned())])
    {
        let mut doc = toml::Table::new();
        insert(&mut doc, path, candidate.clone());
        match doc.try_into::<Config>() {
            Ok(_) => return Ok(candidate),
            Err(error) => {
                first_error.get_or_insert_with(|| error.message().trim().to_owned());
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

/// Where an overlaid value came from.
enum Origin {
    /// A `NUDGE_*` variable.
    Env(String),
    /// A `--set key=value` flag.
    Set(String),
}

impl Origin {
    fn error(self, message: String) -> ConfigError {
        match self {
            Origin::Env(variable) => ConfigError::Env { variable, message },
            Origin::Set(setting) => ConfigError::Set { setting, message },
        }
    }
}

/// The `NUDGE_*` variables of this process, for [`Config::load`]; an error
/// names a variable whose value is not UTF-8.
pub fn environment() -> Result<Vec<(String, String)>, ConfigError> {
    let mut variables = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Env {
            variable: name.to_owned(),
            message: "the value is not UTF-8".to_owned(),
        })?;
        variables.push((name.to_owned(), value));
    }
    Ok(variables)
}

impl Config {
    /// The configuration from its layers: the defaults, the TOML file at
    /// `file`, the `NUDGE_*` variables in `env` (other names are ignored, so
    /// the whole environment may be passed), and `sets`, the `--set key=value`
    /// flags in order. Not yet validated: the caller applies its typed flags,
    /// then calls [`Config::validate`].
    ///
    /// `NUDGE_AUTH_TOKEN` or `NUDGE_AUTH_TOKEN_FILE` (or `--set` of either)
    /// replaces both `auth.token` and `auth.token_file` of the file.
    pub fn load<N, V>(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (N, V)>,
        sets: &[(String, String)],
    ) -> Result<Self, ConfigError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut doc = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                // Parsed as a `Config` first, for errors with the file's lines.
                let parse_error = |message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                };
                Self::from_toml(&text).map_err(parse_error)?;
                text.parse::<toml::Table>()
                    .map_err(|error| parse_error(error.message().to_owned()))?
            }
            None => toml::Table::new(),
        };
        let mut overlays: Vec<(Origin, Vec<String>, String)> = Vec::new();
        for (name, value) in env {
            let name = name.as_ref();
            let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NOT_SETTINGS.contains(&name) {
                continue;
            }
            overlays.push((
                Origin::Env(name.to_owned()),
                key_of_env(suffix),
                value.as_ref().to_owned(),
            ));
        }
        // Whatever order the environment lists them in.
        overlays.sort_by(|a, b| a.1.cmp(&b.1));
        for (setting, value) in sets {
            let path = setting.split('.').map(str::to_owned).collect();
            overlays.push((Origin::Set(setting.clone()), path, value.clone()));
        }
        let overrides_token = overlays
            .iter()
            .any(|(_, path, _)| path == &["auth", "token"] || path == &["auth", "token_file"]);
        if overrides_token && let Some(toml::Value::Table(auth)) = doc.get_mut("auth") {
            auth.remove("token");
            auth.remove("token_file");
        }
        for (origin, path, raw) in overlays {
            let value = value_for(&path, &raw).map_err(|message| origin.error(message))?;
            insert(&mut doc, &path, value);
        }
        doc.try_into::<Config>()
            .map_err(|error| ConfigError::Parse {
                path: file.map_or_else(
                    || std::path::PathBuf::from("(environment and flags)"),
                    std::path::Path::to_owned,
                ),
                message: error.message().trim().to_owned(),
            })
    }

    /// Defaults overlaid with TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", error.message()),
                None => error.message().to_owned(),
            }
        })
    }

    /// Checks every value; the first problem is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let grpc = &self.grpc;
        let checks: [(&'static str, bool, String); 14] = [
            (
                "budget_ms",
                (1..=60_000).contains(&self.budget_ms),
                format!("{} must be 1..=60000", self.budget_ms),
            ),
            (
                "actors.arbiters",
                (1..=256).contains(&self.actors.arbiters),
                format!("{} must be 1..=256", self.actors.arbiters),
            ),
            (
                "actors.mailbox_capacity",
                self.actors.mailbox_capacity >= 1,
                "must be at least 1".to_owned(),
            ),
            (
                "actors.overload_threshold",
                (1..=self.actors.mailbox_capacity).contains(&self.actors.overload_threshold),
                format!(
                    "{} must be 1..=mailbox_capacity",
                    self.actors.overload_threshold
                ),
            ),
            (
                "actors.max_live_customers",
                self.actors.max_live_customers >= 1,
                "must be at least 1".to_owned(),
            ),
            (
                "actors.idle_timeout_secs",
                self.actors.idle_timeout_secs >= 1,
                "must be at least 1".to_owned(),
            ),
            (
                "limits.max_message_bytes",
                self.limits.max_message_bytes >= 1024,
                "must be at least 1024".to_owned(),
            ),
            (
                "storage.max_batch_writes",
                (1..=1_000_000).contains(&self.storage.max_batch_writes),
                format!("{} must be 1..=1000000", self.storage.max_batch_writes),
            ),
            (
                "storage.compaction_interval_secs",
                self.storage.compaction_interval_secs >= 1,
                "must be at least 1".to_owned(),
            ),
            (
                "grpc.max_concurrent_requests",
                (1..=1_000_000).contains(&grpc.max_concurrent_requests),
                format!("{} must be 1..=1000000", grpc.max_concurrent_requests),
            ),
            (
                "grpc.max_connections",
                (1..=1_000_000).contains(&grpc.max_connections),
                format!("{} must be 1..=1000000", grpc.max_connections),
            ),
            (
                "grpc.max_concurrent_streams",
                grpc.max_concurrent_streams >= 1,
                "must be at least 1".to_owned(),
            ),
            (
                "grpc.keepalive_interval_secs",
                (1..=86_400).contains(&grpc.keepalive_interval_secs),
                format!("{} must be 1..=86400", grpc.keepalive_interval_secs),
            ),
            (
                "grpc.keepalive_timeout_secs",
                (1..=3_600).contains(&grpc.keepalive_timeout_secs),
                format!("{} must be 1..=3600", grpc.keepalive_timeout_secs),
            ),
        ];
        for (field, ok, reason) in checks {
            if !ok {
                return Err(ConfigError::Invalid { field, reason });
            }
        }
        if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(&self.log) {
            return Err(ConfigError::Invalid {
                field: "log",
                reason: format!("'{}' is not a log filter: {error}", self.log),
            });
        }
        if self
            .log_customer_id_key
            .as_ref()
            .is_some_and(|key| key.expose().is_empty())
        {
            return Err(ConfigError::Invalid {
                field: "log_customer_id_key",
                reason: "the key is empty".to_owned(),
            });
        }
        self.auth_token()?;
        self.tls_files()?;
        Ok(())
    }

    /// The bearer token from `auth.token` or `auth.token_file` (read now),
    /// checked: it must be usable as gRPC metadata.
    pub fn auth_token(&self) -> Result<Option<Secret>, ConfigError> {
        let (field, token) = match (&self.auth.token, &self.auth.token_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "auth.token_file",
                    reason: "set either auth.token or auth.token_file, not both".to_owned(),
                });
            }
            (Some(token), None) => ("auth.token", token.clone()),
            (None, Some(path)) => {
                let text = read_setting("auth.token_file", path)?;
                let text = String::from_utf8(text).map_err(|_| ConfigError::Invalid {
                    field: "auth.token_file",
                    reason: format!("{} is not UTF-8 text", path.display()),
                })?;
                ("auth.token_file", Secret::new(text.trim()))
            }
        };
        // Never echo the token itself in the reason.
        if token.expose().is_empty() {
            return Err(ConfigError::Invalid {
                field,
                reason: "the token is empty".to_owned(),
            });
        }
        if !token.expose().bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                field,
                reason: "the token must be printable ASCII without spaces".to_owned(),
            });
        }
        Ok(Some(token))
    }

    /// The PEM files of `tls.*`, read now; `None` when TLS is off.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let tls = &self.tls;
        match (&tls.cert, &tls.key) {
            (None, None) => match &tls.client_ca {
                None => Ok(None),
                Some(_) => Err(ConfigError::Invalid {
                    field: "tls.client_ca",
                    reason: "client certificates (mTLS) need TLS: set tls.cert and tls.key too"
                        .to_owned(),
                }),
            },
            (None, Some(_)) => Err(ConfigError::Invalid {
                field: "tls.key",
                reason: "set tls.cert too (the certificate of this key)".to_owned(),
            }),
            (Some(_), None) => Err(ConfigError::Invalid {
                field: "tls.cert",
                reason: "set tls.key too (the certificate's private key)".to_owned(),
            }),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: read_setting("tls.cert", cert)?,
                key: read_setting("tls.key", key)?,
                client_ca: tls
                    .client_ca
                    .as_ref()
                    .map(|path| read_setting("tls.client_ca", path))
                    .transpose()?,
            })),
        }
    }

    /// The Decide budget.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }
}

/// The content of the file a setting names; the error names the setting.
fn read_setting(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| ConfigError::Invalid {
        field,
        reason: format!("cannot read {}: {error}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let config = Config::from_toml("budget_ms = 50\n[actors]\narbiters = 4\n").expect("valid");
        assert_eq!(config.budget_ms, 50);
        assert_eq!(config.actors.arbiters, 4);
        assert_eq!(config.actors.mailbox_capacity, 64);
        assert_eq!(config.limits.max_candidates, 1_000);
        config.validate().expect("valid");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = Config::from_toml("budget = 5\n").expect_err("unknown key");
        assert!(
            error.contains("line 1") && error.contains("budget"),
            "{error}"
        );
        let config = Config {
            budget_ms: 0,
            ..Config::default()
        };
        let error = config.validate().expect_err("out of range").to_string();
        assert!(error.contains("budget_ms"), "{error}");
    }

    fn invalid_field(config: &Config) -> &'static str {
        match config.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    #[test]
    fn bad_security_combinations_name_the_setting() {
        let path = |name: &str| Some(PathBuf::from(name));
        let key_only = Config {
            tls: TlsConfig {
                key: path("server.key"),
                ..TlsConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(invalid_field(&key_only), "tls.key");
        let cert_only = Config {
            tls: TlsConfig {
                cert: path("server.pem"),
                ..TlsConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(invalid_field(&cert_only), "tls.cert");
        let ca_only = Config {
            tls: TlsConfig {
                client_ca: path("ca.pem"),
                ..TlsConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(invalid_field(&ca_only), "tls.client_ca");
        let unreadable = Config {
            tls: TlsConfig {
                cert: path("/nonexistent/nudge/server.pem"),
                key: path("/nonexistent/nudge/server.key"),
                client_ca: None,
            },
            ..Config::default()
        };
        assert_eq!(invalid_field(&unreadable), "tls.cert");
        let token_file = Config {
            auth: AuthConfig {
                token: None,
                token_file: path("/nonexistent/nudge/token"),
            },
            ..Config::default()
        };
        let error = token_file.validate().expect_err("unreadable").to_string();
        assert!(
            error.contains("auth.token_file") && error.contains("/nonexistent/nudge/token"),
            "{error}"
        );
        let both = Config {
            auth: AuthConfig {
                token: Some(Secret::new("abc")),
                token_file: path("token"),
            },
            ..Config::default()
        };
        assert_eq!(invalid_field(&both), "auth.token_file");
        let spaced = Config {
            auth: AuthConfig {
                token: Some(Secret::new("two words")),
                token_file: None,
            },
            ..Config::default()
        };
        let error = spaced.validate().expect_err("a space").to_string();
        assert!(
            error.contains("auth.token") && !error.contains("two words"),
            "{error}"
        );
    }

    #[test]
    fn the_token_file_is_trimmed_and_the_token_never_shown() {
        let path = std::env::temp_dir().join(format!("nudge-token-{}", std::process::id()));
        std::fs::write(&path, "s3cret-token\n").expect("write the token file");
        let config = Config::from_toml(&format!(
            "[auth]\ntoken_file = {:?}\n",
            path.display().to_string()
        ))
        .expect("valid");
        config.validate().expect("a readable token file");
        let token = config.auth_token().expect("readable").expect("a token");
        assert_eq!(token.expose(), "s3cret-token");
        let _ = std::fs::remove_file(&path);
        let config = Config::from_toml("[auth]\ntoken = \"s3cret-token\"\n").expect("valid");
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
        let error = Config::from_toml("[tls]\ncertificate = \"x\"\n").expect_err("unknown key");
        assert!(error.contains("certificate"), "{error}");
    }

    #[test]
    fn metrics_listen_is_an_address_or_off() {
        assert_eq!(
            Config::default().metrics_listen.to_string(),
            "127.0.0.1:9464"
        );
        let config = Config::from_toml("metrics_listen = \"0.0.0.0:9100\"\n").expect("valid");
        assert_eq!(
            config.metrics_listen,
            MetricsListen::On("0.0.0.0:9100".parse().expect("an address"))
        );
        let config = Config::from_toml("metrics_listen = \"off\"\n").expect("valid");
        assert_eq!(config.metrics_listen, MetricsListen::Off);
        let error = Config::from_toml("metrics_listen = \"nowhere\"\n").expect_err("invalid");
        assert!(
            error.contains("line 1") && error.contains("'nowhere'"),
            "{error}"
        );
    }

    /// A config file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, text: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("nudge-config-{tag}-{}.toml", std::process::id()));
            std::fs::write(&path, text).expect("write the config file");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn set(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let file = TempFile::new(
            "layers",
            "budget_ms = 50\nlog_format = \"text\"\n[actors]\narbiters = 4\nmax_live_customers = 7\n",
        );
        let env = [
            ("NUDGE_BUDGET_MS", "60"),
            ("NUDGE_ACTORS_MAX_LIVE_CUSTOMERS", "10"),
            ("NUDGE_LOG_FORMAT", "json"),
            ("NUDGE_GRPC_MAX_CONCURRENT_REQUESTS", "8"),
            // Not settings: the client's options, and other programs' variables.
            ("NUDGE_SERVER", "http://elsewhere:1"),
            ("NUDGE_CONFIG", "/ignored.toml"),
            ("PATH", "/usr/bin"),
        ];
        let config = Config::load(
            Some(&file.0),
            env,
            &[set("budget_ms", "70"), set("grpc.max_connections", "9")],
        )
        .expect("valid layers");
        assert_eq!(config.budget_ms, 70, "--set beats env and file");
        assert_eq!(config.actors.max_live_customers, 10, "env beats file");
        assert_eq!(config.log_format, LogFormat::Json, "env beats file");
        assert_eq!(config.actors.arbiters, 4, "the file beats the default");
        assert_eq!(config.actors.mailbox_capacity, 64, "the default");
        assert_eq!(config.grpc.max_concurrent_requests, 8);
        assert_eq!(config.grpc.max_connections, 9);
        config.validate().expect("valid");
        let defaults = Config::load(None, [("HOME", "/root")], &[]).expect("defaults");
        assert_eq!(defaults.budget_ms, Config::default().budget_ms);
    }

    #[test]
    fn string_settings_take_values_that_look_like_numbers() {
        let config = Config::load(
            None,
            [
                ("NUDGE_AUTH_TOKEN", "12345"),
                ("NUDGE_CATALOG", "2024"),
                ("NUDGE_LISTEN", "0.0.0.0:7000"),
                ("NUDGE_METRICS_LISTEN", "off"),
                ("NUDGE_LOG", "nudge_service=debug,info"),
                ("NUDGE_LOG_CUSTOMER_IDS", "true"),
                ("NUDGE_STORAGE_DATA_DIR", "/var/lib/nudge"),
                ("NUDGE_STORAGE_IN_MEMORY", "true"),
            ],
            &[],
        )
        .expect("valid");
        assert_eq!(config.auth.token, Some(Secret::new("12345")));
        assert_eq!(config.catalog, Some(PathBuf::from("2024")));
        assert_eq!(config.listen, "0.0.0.0:7000".parse().expect("an address"));
        assert_eq!(config.metrics_listen, MetricsListen::Off);
        assert_eq!(config.log, "nudge_service=debug,info");
        assert!(config.log_customer_ids);
        assert_eq!(config.storage.data_dir, PathBuf::from("/var/lib/nudge"));
        assert!(config.storage.in_memory);
        config.validate().expect("valid");
    }

    #[test]
    fn the_token_from_the_environment_replaces_the_files_token_settings() {
        let file = TempFile::new(
            "token",
            "[auth]\ntoken_file = \"/nonexistent/nudge/token\"\n",
        );
        let config =
            Config::load(Some(&file.0), [("NUDGE_AUTH_TOKEN", "from-env")], &[]).expect("valid");
        assert_eq!(config.auth.token, Some(Secret::new("from-env")));
        assert_eq!(config.auth.token_file, None);
        config.validate().expect("no token file to read");
    }

    #[test]
    fn an_unknown_variable_or_a_bad_value_names_the_variable() {
        let env_error = |name: &str, value: &str| match Config::load(None, [(name, value)], &[]) {
            Err(ConfigError::Env { variable, message }) => {
                assert_eq!(variable, name);
                let shown = ConfigError::Env {
                    variable,
                    message: message.clone(),
                }
                .to_string();
                assert!(shown.contains(name), "{shown}");
                message
            }
            other => panic!("{name}={value}: expected an env error, got {other:?}"),
        };
        let message = env_error("NUDGE_BUDGETMS", "5");
        assert!(
            message.contains("budgetms") && message.contains("budget_ms"),
            "lists the settings: {message}"
        );
        env_error("NUDGE_ACTORS_ARBITRS", "2");
        env_error("NUDGE_NOPE_AT_ALL", "1");
        let message = env_error("NUDGE_ACTORS_ARBITERS", "many");
        assert!(message.contains("many"), "{message}");
        env_error("NUDGE_BUDGET_MS", "-5");
        env_error("NUDGE_LOG_FORMAT", "xml");
        env_error("NUDGE_LOG_CUSTOMER_IDS", "perhaps");
        env_error("NUDGE_LISTEN", "localhost");
        match Config::load(
            None,
            [("HOME", "/root")],
            &[set("grpc.max_conections", "3")],
        ) {
            Err(ConfigError::Set { setting, .. }) => assert_eq!(setting, "grpc.max_conections"),
            other => panic!("expected a --set error, got {other:?}"),
        }
        match Config::load(
            None,
            [("HOME", "/root")],
            &[set("grpc.max_connections", "x")],
        ) {
            Err(error @ ConfigError::Set { .. }) => {
                assert!(
                    error.to_string().contains("grpc.max_connections"),
                    "{error}"
                )
            }
            other => panic!("expected a --set error, got {other:?}"),
        }
    }

    #[test]
    fn out_of_range_operations_settings_are_named() {
        /// Puts one setting out of its range.
        type Break = fn(&mut Config);
        let cases: [(&str, Break); 7] = [
            ("grpc.max_concurrent_requests", |c| {
                c.grpc.max_concurrent_requests = 0
            }),
            ("grpc.max_connections", |c| c.grpc.max_connections = 0),
            ("grpc.max_concurrent_streams", |c| {
                c.grpc.max_concurrent_streams = 0
            }),
            ("grpc.keepalive_interval_secs", |c| {
                c.grpc.keepalive_interval_secs = 0
            }),
            ("grpc.keepalive_timeout_secs", |c| {
                c.grpc.keepalive_timeout_secs = 0
            }),
            ("log", |c| c.log = "nudge_service=loud".to_owned()),
            ("log_customer_id_key", |c| {
                c.log_customer_id_key = Some(Secret::new(""))
            }),
        ];
        for (field, break_it) in cases {
            let mut config = Config::default();
            break_it(&mut config);
            assert_eq!(invalid_field(&config), field);
        }
    }

    /// The fields of the table `section` (top level when `None`), from the
    /// error serde gives for an unknown one: it lists them all.
    fn fields_of(section: Option<&str>) -> Vec<String> {
        let text = match section {
            None => "__probe = 1\n".to_owned(),
            Some(section) => format!("[{section}]\n__probe = 1\n"),
        };
        let error = Config::from_toml(&text).expect_err("an unknown field");
        // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, …"
        let (_, listed) = error
            .split_once("expected")
            .unwrap_or_else(|| panic!("no field list in {error:?}"));
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// Every setting's key, e.g. `actors.arbiters`.
    fn every_key() -> Vec<String> {
        let mut keys = Vec::new();
        for field in fields_of(None) {
            let is_table = Config::from_toml(&format!("[{field}]\n")).is_ok();
            assert_eq!(
                is_table,
                SECTIONS.contains(&field.as_str()),
                "SECTIONS must list exactly the tables of Config: {field}"
            );
            if is_table {
                keys.extend(
                    fields_of(Some(&field))
                        .into_iter()
                        .map(|key| format!("{field}.{key}")),
                );
            } else {
                keys.push(field);
            }
        }
        keys
    }

    #[test]
    fn every_setting_has_an_environment_variable() {
        let keys = every_key();
        assert!(keys.len() >= 40, "{keys:?}");
        for key in &keys {
            let variable = env_name(key);
            let suffix = variable.strip_prefix(ENV_PREFIX).expect("the prefix");
            assert_eq!(key_of_env(suffix).join("."), *key, "{variable}");
            // The variable reaches the setting: an unknown one would be an
            // "unknown field" error, whatever the value.
            if let Err(error) = Config::load(None, [(variable.as_str(), "1")], &[]) {
                assert!(!error.to_string().contains("unknown field"), "{error}");
            }
        }
    }

    #[test]
    fn the_readme_lists_every_setting_with_its_variable() {
        let readme = include_str!("../../README.md");
        for key in every_key() {
            let row = format!("| `{key}` | `{}` |", env_name(&key));
            assert!(readme.contains(&row), "README.md has no row starting {row}");
        }
    }
}
