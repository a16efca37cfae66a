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
    /// Who may make the protected calls (see [`crate::grpc::auth`]).
    pub auth: AuthConfig,
    /// TLS, and client certificates (mTLS), on the gRPC listener.
    pub tls: TlsConfig,
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
}
