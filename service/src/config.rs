//! One typed configuration, validated once at start-up. Layers: built-in
//! defaults, then a TOML file (unknown keys are errors), then `NUDGE_*`
//! environment variables and command-line flags (applied by `main`).

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
    /// Defaults overlaid with the TOML file at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
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
        let checks: [(&'static str, bool, String); 7] = [
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
        ];
        for (field, ok, reason) in checks {
            if !ok {
                return Err(ConfigError::Invalid { field, reason });
            }
        }
        Ok(())
    }

    /// The Decide budget.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }
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
}
