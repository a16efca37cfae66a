//! Logs: the `tracing` subscriber of `nudge serve`, and how customer ids
//! appear in log lines.
//!
//! - [`init`] installs the process-global subscriber from the configuration:
//!   lines on stderr, filtered by `log` (`NUDGE_LOG`, e.g. `info` or
//!   `nudge_service=debug,info`), as text or as JSON lines (`log_format`).
//!   Text is coloured only when stderr is a terminal (and `NO_COLOR` is
//!   unset): a log file or a pipe gets no ANSI escape codes.
//! - Every gRPC call runs in a `grpc` span with its method and the client's
//!   `x-request-id` (see [`crate::grpc`]); its status and latency are logged
//!   at debug, or at error for a server fault.
//! - Customer ids are personal data. Code that logs one writes
//!   [`customer`]`(id)`, never the id itself: unless `log_customer_ids = true`
//!   it prints `cust#` and 8 hex digits of an HMAC-SHA256 of the id under
//!   `log_customer_id_key` (a random key per process when unset). The hash is
//!   stable for a key, so one customer's lines can still be followed, and
//!   without the key it cannot be reversed by trying likely ids.

use crate::config::{Config, LogFormat};
use ring::hmac;
use std::fmt;
use std::io::IsTerminal as _;
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How customer ids are written in logs.
#[derive(Debug, Clone)]
pub enum CustomerIds {
    /// As they are (`log_customer_ids = true`).
    Plain,
    /// As `cust#` and the first 8 hex digits of HMAC-SHA256(key, id).
    Hashed(hmac::Key),
}

impl CustomerIds {
    /// Hashed under `key`.
    pub fn hashed(key: &[u8]) -> Self {
        CustomerIds::Hashed(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// Hashed under a random key: stable only within this process.
    pub fn hashed_with_random_key() -> Self {
        // Two v4 UUIDs: 244 random bits from the OS generator.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self::hashed(&key)
    }

    /// What `config` asks for.
    pub fn from_config(config: &Config) -> Self {
        if config.log_customer_ids {
            return CustomerIds::Plain;
        }
        match &config.log_customer_id_key {
            Some(key) => Self::hashed(key.expose().as_bytes()),
            None => Self::hashed_with_random_key(),
        }
    }

    /// `id` as it may appear in a log line.
    pub fn display<'a>(&'a self, id: &'a str) -> CustomerId<'a> {
        CustomerId { id, policy: self }
    }
}

/// A customer id as logs show it; see [`customer`].
#[derive(Debug, Clone, Copy)]
pub struct CustomerId<'a> {
    id: &'a str,
    policy: &'a CustomerIds,
}

impl fmt::Display for CustomerId<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            CustomerIds::Plain => formatter.write_str(self.id),
            CustomerIds::Hashed(key) => {
                let tag = hmac::sign(key, self.id.as_bytes());
                let bytes = tag.as_ref();
                write!(
                    formatter,
                    "cust#{:02x}{:02x}{:02x}{:02x}",
                    bytes[0], bytes[1], bytes[2], bytes[3]
                )
            }
        }
    }
}

/// The policy [`init`] installed (hashed under a random key if none was).
static CUSTOMER_IDS: OnceLock<CustomerIds> = OnceLock::new();

/// `id` as log lines may show it, e.g.
/// `tracing::warn!(customer = %logging::customer(&id), "…")`.
pub fn customer(id: &str) -> CustomerId<'_> {
    CUSTOMER_IDS
        .get_or_init(CustomerIds::hashed_with_random_key)
        .display(id)
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `log` is not a valid filter.
    #[error("log filter '{filter}': {message}")]
    Filter {
        /// The filter.
        filter: String,
        /// Why.
        message: String,
    },
    /// A subscriber, or a customer-id policy, is already installed.
    #[error("logging is already set up in this process")]
    AlreadyInstalled,
}

/// A subscriber writing lines that pass `filter` to `writer` in `format`,
/// with ANSI colour codes in text lines only when `ansi` is set. [`init`]
/// installs one on stderr; tests write into a buffer.
pub fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        // One object per line: the event's fields at the top level, the
        // innermost span (the gRPC call) under `span`.
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Installs the process-global subscriber (stderr) and customer-id policy
/// from `config`. Call once, before anything logs.
pub fn init(config: &Config) -> Result<(), LoggingError> {
    let filter = EnvFilter::builder()
        .parse(&config.log)
        .map_err(|error| LoggingError::Filter {
            filter: config.log.clone(),
            message: error.to_string(),
        })?;
    CUSTOMER_IDS
        .set(CustomerIds::from_config(config))
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    tracing::subscriber::set_global_default(subscriber(
        filter,
        config.log_format,
        std::io::stderr,
        colour_on_stderr(),
    ))
    .map_err(|_| LoggingError::AlreadyInstalled)
}

/// Whether log lines on stderr may carry ANSI colour codes: only on a
/// terminal, and not when `NO_COLOR` is set (<https://no-color.org>). A file or
/// a pipe (a log collector, `2>nudge.log`) gets plain text.
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Text logs on stderr for the client subcommands, filtered by `NUDGE_LOG`
/// (`info` when unset or invalid).
pub fn init_for_client() {
    let filter = EnvFilter::try_from_env("NUDGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Nothing else installs one in a client process.
    let _ = tracing::subscriber::set_global_default(subscriber(
        filter,
        LogFormat::Text,
        std::io::stderr,
        colour_on_stderr(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex, PoisonError};

    #[test]
    fn a_hashed_customer_id_never_shows_the_id_and_is_stable() {
        let policy = CustomerIds::hashed(b"a key shared by every instance");
        let restarted = CustomerIds::hashed(b"a key shared by every instance");
        let other_key = CustomerIds::hashed(b"another key");
        let mut ids: Vec<String> = (0..5_000).map(|n| format!("customer-{n}")).collect();
        ids.extend(
            [
                "acme-42",
                "alice@example.com",
                "Ünïcødé ✓",
                "0123456789abcdef",
            ]
            .map(str::to_owned),
        );
        let mut different_under_other_key = 0;
        for id in &ids {
            let shown = policy.display(id).to_string();
            assert!(!shown.contains(id.as_str()), "{shown} shows {id}");
            assert!(shown.starts_with("cust#"), "{shown}");
            assert_eq!(shown.len(), "cust#".len() + 8, "{shown}");
            assert!(
                shown["cust#".len()..]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit())
            );
            assert_eq!(policy.display(id).to_string(), shown, "stable for {id}");
            assert_eq!(
                restarted.display(id).to_string(),
                shown,
                "same key, same hash"
            );
            if other_key.display(id).to_string() != shown {
                different_under_other_key += 1;
            }
        }
        // 32 bits: a handful of equal hashes under another key by chance at most.
        assert!(different_under_other_key > ids.len() - 5);
        assert_eq!(CustomerIds::Plain.display("acme-42").to_string(), "acme-42");
    }

    #[test]
    fn the_configuration_chooses_the_policy() {
        let plain = Config {
            log_customer_ids: true,
            ..Config::default()
        };
        assert!(matches!(
            CustomerIds::from_config(&plain),
            CustomerIds::Plain
        ));
        let keyed = Config {
            log_customer_id_key: Some(crate::config::Secret::new("k")),
            ..Config::default()
        };
        assert_eq!(
            CustomerIds::from_config(&keyed)
                .display("acme-42")
                .to_string(),
            CustomerIds::hashed(b"k").display("acme-42").to_string()
        );
        // The global helper never shows the id, whatever the process installed.
        assert!(!customer("acme-42").to_string().contains("acme-42"));
    }

    /// A `MakeWriter` appending to a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// What `format` writes for one info line, with or without colour.
    fn one_line(format: LogFormat, ansi: bool) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(EnvFilter::new("info"), format, buffer.clone(), ansi);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(status = "Ok", "call finished");
        });
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn text_logs_are_coloured_only_when_asked() {
        let plain = one_line(LogFormat::Text, false);
        assert!(plain.contains("call finished"), "{plain:?}");
        assert!(!plain.contains("\x1b["), "{plain:?}");
        assert!(one_line(LogFormat::Text, true).contains("\x1b["));
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let buffer = Buffer::default();
        let subscriber = subscriber(
            EnvFilter::new("debug"),
            LogFormat::Json,
            buffer.clone(),
            false,
        );
        let policy = CustomerIds::hashed(b"test");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "grpc",
                method = "/nudge.v1.Decisions/Decide",
                request_id = "req-1"
            );
            let _entered = span.enter();
            tracing::info!(customer = %policy.display("acme-42"), "a line with \"quotes\"\nand a newline");
            tracing::debug!(status = "Ok", latency_us = 410, "call finished");
            tracing::trace!("filtered out");
        });
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(!text.contains("acme-42"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "a line with \"quotes\"\nand a newline");
        assert_eq!(
            lines[0]["customer"],
            policy.display("acme-42").to_string().as_str()
        );
        assert_eq!(lines[0]["span"]["method"], "/nudge.v1.Decisions/Decide");
        assert_eq!(lines[0]["span"]["request_id"], "req-1");
        assert_eq!(lines[1]["status"], "Ok");
        assert_eq!(lines[1]["latency_us"], 410);
        assert!(lines[1]["timestamp"].is_string());
    }
}
