//! The Redis Cluster backend (`storage.backend = "redis"`, the `storage.redis_*`
//! settings) and `[cluster]`: this node among several (PRODUCT.md §11).

use super::{Config, ConfigError};
use serde::Deserialize;

/// Where customer state, the logs and budgets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The embedded redb store in `storage.data_dir`.
    #[default]
    Embedded,
    /// A Redis Cluster at `storage.redis_urls`.
    Redis,
}

/// What a write to Redis waits for before nudge acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisDurability {
    /// Every primary fsyncs each write to its append-only file
    /// (`appendonly yes`, `appendfsync always`): checked at start with
    /// `CONFIG GET`, and a primary configured otherwise refuses the start.
    /// Survives a crash of any Redis process; a lost disk loses its
    /// primary's data unless it has replicas.
    #[default]
    Fsync,
    /// Every write waits (`WAIT`) for `storage.redis_wait_replicas`
    /// replicas, at most `storage.redis_wait_timeout_ms`: survives losing a
    /// primary and its disk, as long as a replica that had the write is
    /// promoted.
    Replicas,
    /// Nothing checked or waited for: as durable as the servers happen to
    /// be. For managed services that hide `CONFIG` (then configure AOF
    /// there) and for trials.
    Unchecked,
}

/// This node among several.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Run as one node of a cluster (`nudge serve --cluster`): take only
    /// the partitions placement gives this node and forward the rest.
    /// Off: one node on Redis takes every partition.
    pub enabled: bool,
    /// This node's name in leases and membership. Unset: the host name and
    /// the process id.
    pub node_id: Option<String>,
    /// How many partitions customers fall into. Fixed for the data's life:
    /// every node of a cluster must use the same.
    pub partitions: u16,
    /// How long a partition lease runs unless renewed (ms). A dead node's
    /// partitions are taken over after at most this long; renewals go
    /// every third of it.
    pub lease_ms: u64,
    /// `host:port` where the other nodes reach this node's gRPC listener to
    /// forward calls. Unset: the address the listener is bound to (set it
    /// when that is `0.0.0.0` or not reachable from the other nodes).
    pub advertise: Option<String>,
    /// With `tls.cert`: the PEM file of the certificate authority that
    /// signed every node's certificate. Calls forwarded to another node go
    /// over TLS and check its certificate against this CA; when
    /// `tls.client_ca` asks callers for certificates, a forwarding node
    /// presents its own `tls.cert`.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name every node's certificate is issued for, checked on
    /// forwarded calls (one certificate name for all nodes, e.g.
    /// "nudge.internal"). Unset: the host of the node's advertised address,
    /// which its certificate must then name.
    pub tls_server_name: Option<String>,
}

/// What a node needs to forward calls over TLS (`cluster.tls_ca` with
/// `tls.*`), read at start.
#[derive(Clone)]
pub struct ForwardingTls {
    /// The CA the other nodes' certificates are checked against (PEM).
    pub ca: Vec<u8>,
    /// The name checked in their certificates; `None`: each node's host.
    pub server_name: Option<String>,
    /// This node's certificate chain and key (PEM), presented when the
    /// nodes ask callers for certificates (`tls.client_ca`).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ForwardingTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ForwardingTls")
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_id: None,
            partitions: 256,
            lease_ms: 5_000,
            advertise: None,
            tls_ca: None,
            tls_server_name: None,
        }
    }
}

impl ClusterConfig {
    /// This node's name: `node_id`, or the host name and process id.
    pub fn node_name(&self) -> String {
        if let Some(node) = &self.node_id {
            return node.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|host| host.trim().to_owned())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "nudge".to_owned());
        format!("{host}-{}", std::process::id())
    }
}

impl Config {
    /// How calls are forwarded to the other nodes: over TLS (`Some`) when
    /// this node serves TLS in a cluster, checked with `cluster.tls_ca`;
    /// in plain gRPC (`None`) otherwise. Reads the files.
    pub fn forwarding_tls(&self) -> Result<Option<ForwardingTls>, ConfigError> {
        let invalid = |field: &'static str, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        let cluster = &self.cluster;
        if !cluster.enabled {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.tls.cert, &self.tls.key) else {
            if cluster.tls_ca.is_some() {
                return Err(invalid(
                    "cluster.tls_ca",
                    "forwarding over TLS needs the nodes to serve TLS: set tls.cert and tls.key too",
                ));
            }
            if cluster.tls_server_name.is_some() {
                return Err(invalid(
                    "cluster.tls_server_name",
                    "only checked on TLS: set tls.cert, tls.key and cluster.tls_ca too",
                ));
            }
            return Ok(None);
        };
        let Some(ca) = &cluster.tls_ca else {
            return Err(invalid(
                "cluster.tls_ca",
                "the nodes serve TLS (tls.cert), so calls forwarded between them go over TLS too: name the PEM file of the CA that signed every node's certificate",
            ));
        };
        if let Some(name) = &cluster.tls_server_name
            && (name.is_empty() || name.contains(char::is_whitespace) || name.contains(':'))
        {
            return Err(invalid(
                "cluster.tls_server_name",
                "must be a DNS name or an IP address, e.g. \"nudge.internal\"",
            ));
        }
        let identity = match &self.tls.client_ca {
            Some(_) => Some((
                super::validate::read_setting("tls.cert", cert)?,
                super::validate::read_setting("tls.key", key)?,
            )),
            None => None,
        };
        Ok(Some(ForwardingTls {
            ca: super::validate::read_setting("cluster.tls_ca", ca)?,
            server_name: cluster.tls_server_name.clone(),
            identity,
        }))
    }

    /// Checks the Redis and cluster settings.
    pub(super) fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid { field, reason };
        let storage = &self.storage;
        let cluster = &self.cluster;
        if storage.backend == StorageBackend::Redis {
            if storage.redis_urls.is_empty() {
                return Err(invalid(
                    "storage.redis_urls",
                    "storage.backend = \"redis\" needs at least one node, e.g. [\"redis://127.0.0.1:7001\"]".to_owned(),
                ));
            }
            for url in &storage.redis_urls {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(invalid(
                        "storage.redis_urls",
                        format!("'{url}' must start with redis:// or rediss://"),
                    ));
                }
            }
            if storage.in_memory {
                return Err(invalid(
                    "storage.in_memory",
                    "cannot be set with storage.backend = \"redis\"".to_owned(),
                ));
            }
            self.forwarding_tls()?;
        } else if cluster.enabled {
            return Err(invalid(
                "cluster.enabled",
                "a cluster keeps its state in Redis: set storage.backend = \"redis\" and storage.redis_urls".to_owned(),
            ));
        }
        let namespace_ok = !storage.redis_namespace.is_empty()
            && storage
                .redis_namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let checks = [
            (
                "storage.redis_namespace",
                namespace_ok,
                format!(
                    "'{}' must be letters, digits, '-', '_' or '.'",
                    storage.redis_namespace
                ),
            ),
            (
                "storage.redis_wait_replicas",
                storage.redis_durability != RedisDurability::Replicas
                    || (1..=16).contains(&storage.redis_wait_replicas),
                format!("{} must be 1..=16", storage.redis_wait_replicas),
            ),
            (
                "storage.redis_wait_timeout_ms",
                (1..=60_000).contains(&storage.redis_wait_timeout_ms),
                format!("{} must be 1..=60000", storage.redis_wait_timeout_ms),
            ),
            (
                "storage.redis_timeout_ms",
                (10..=60_000).contains(&storage.redis_timeout_ms),
                format!("{} must be 10..=60000", storage.redis_timeout_ms),
            ),
            (
                "storage.redis_wait_timeout_ms",
                storage.redis_durability != RedisDurability::Replicas
                    || storage.redis_wait_timeout_ms < storage.redis_timeout_ms,
                format!(
                    "{} must be shorter than storage.redis_timeout_ms ({}): a write's WAIT goes with it in one round trip",
                    storage.redis_wait_timeout_ms, storage.redis_timeout_ms
                ),
            ),
            (
                "cluster.partitions",
                (1..=4_096).contains(&cluster.partitions),
                format!("{} must be 1..=4096", cluster.partitions),
            ),
            (
                "cluster.lease_ms",
                (300..=600_000).contains(&cluster.lease_ms),
                format!("{} must be 300..=600000", cluster.lease_ms),
            ),
            (
                "cluster.node_id",
                cluster.node_id.as_ref().is_none_or(|node| {
                    !node.is_empty()
                        && node.len() <= 128
                        && node.chars().all(|c| c.is_ascii_graphic())
                }),
                "must be 1 to 128 printable characters without spaces".to_owned(),
            ),
            (
                "cluster.advertise",
                cluster.advertise.as_ref().is_none_or(|address| {
                    address.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
                    }) && !address.contains("://")
                }),
                format!(
                    "'{}' must be host:port, e.g. \"10.0.0.5:50051\"",
                    cluster.advertise.as_deref().unwrap_or_default()
                ),
            ),
        ];
        for (field, ok, reason) in checks {
            if !ok {
                return Err(invalid(field, reason));
            }
        }
        Ok(())
    }
}
