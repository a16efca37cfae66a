//! [`Config::validate`]: every value checked once at start-up, and the
//! settings read from files (the token, the TLS certificates and keys).

use super::{Config, ConfigError, Secret, TlsFiles};

impl Config {
    /// Checks every value; the first problem is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let grpc = &self.grpc;
        let (alpha, effect) = (self.models.guardrail_alpha, self.models.guardrail_effect);
        let journeys = &self.journeys;
        let checks: [(&'static str, bool, String); 27] = [
            (
                "models.guardrail_alpha",
                alpha > 0.0 && alpha < 1.0,
                format!("{alpha} must be between 0 and 1 (exclusive)"),
            ),
            (
                "models.guardrail_effect",
                effect > 0.0 && effect.is_finite(),
                format!("{effect} must be a positive number"),
            ),
            (
                "models.max_auc_drop",
                self.models.max_auc_drop.is_finite()
                    && (0.0..=1.0).contains(&self.models.max_auc_drop),
                format!("{} must be 0..=1", self.models.max_auc_drop),
            ),
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
                "storage.journal_records",
                (1..=10_000_000).contains(&self.storage.journal_records),
                format!("{} must be 1..=10000000", self.storage.journal_records),
            ),
            (
                "storage.commit_interval_us",
                self.storage.commit_interval_us <= 100_000,
                format!(
                    "{} must be at most 100000 (the whole call budget is 100 ms)",
                    self.storage.commit_interval_us
                ),
            ),
            (
                "storage.checkpoint_interval_ms",
                (1..=600_000).contains(&self.storage.checkpoint_interval_ms),
                format!(
                    "{} must be 1..=600000 (ten minutes)",
                    self.storage.checkpoint_interval_ms
                ),
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
                "grpc.min_concurrent_requests",
                (1..=1_000_000).contains(&grpc.min_concurrent_requests),
                format!("{} must be 1..=1000000", grpc.min_concurrent_requests),
            ),
            (
                "grpc.queue_delay_target_ms",
                grpc.queue_delay_target_ms <= 60_000,
                format!("{} must be 0 (off) ..=60000", grpc.queue_delay_target_ms),
            ),
            (
                "grpc.queue_delay_interval_ms",
                (10..=60_000).contains(&grpc.queue_delay_interval_ms),
                format!("{} must be 10..=60000", grpc.queue_delay_interval_ms),
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
            (
                "journeys.ack_timeout_ms",
                (10..=3_600_000).contains(&journeys.ack_timeout_ms),
                format!("{} must be 10..=3600000", journeys.ack_timeout_ms),
            ),
            (
                "journeys.longest_backoff_secs",
                journeys.longest_backoff_secs.saturating_mul(1_000) >= journeys.ack_timeout_ms
                    && journeys.longest_backoff_secs <= 86_400,
                format!(
                    "{} must be at least the acknowledgement timeout and at most 86400",
                    journeys.longest_backoff_secs
                ),
            ),
            (
                "journeys.dispatch_expiry_secs",
                (1..=365 * 86_400).contains(&journeys.dispatch_expiry_secs),
                format!("{} must be 1..=31536000", journeys.dispatch_expiry_secs),
            ),
            (
                "journeys.subscriber_buffer",
                (1..=1_000_000).contains(&journeys.subscriber_buffer),
                format!("{} must be 1..=1000000", journeys.subscriber_buffer),
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
        self.web.validate()?;
        self.validate_cluster()?;
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
            (None, Some(path)) => ("auth.token_file", read_secret("auth.token_file", path)?),
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
}

/// The secret in the file a setting names (UTF-8 text, surrounding
/// whitespace trimmed); the error names the setting, never the secret.
pub(super) fn read_secret(
    field: &'static str,
    path: &std::path::Path,
) -> Result<Secret, ConfigError> {
    let text = String::from_utf8(read_setting(field, path)?).map_err(|_| ConfigError::Invalid {
        field,
        reason: format!("{} is not UTF-8 text", path.display()),
    })?;
    Ok(Secret::new(text.trim()))
}

/// The content of the file a setting names; the error names the setting.
pub(super) fn read_setting(
    field: &'static str,
    path: &std::path::Path,
) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| ConfigError::Invalid {
        field,
        reason: format!("cannot read {}: {error}", path.display()),
    })
}
