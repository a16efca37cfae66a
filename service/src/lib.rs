//! The nudge server: gRPC adapters over customer actors over the domain crate.
//!
//! - [`config`]: the typed configuration (defaults → file → env → flags).
//! - [`engine`]: the service as a Rust API: routing to actors, stream
//!   ingestion, admin operations.
//! - [`shared`]: what every actor reads (catalog, model, budgets, stores,
//!   clock, counters) and where observable events are recorded.
//! - [`requests`]: the calls and answers as plain Rust types.
//! - [`actors`]: `CustomerActor` per customer, `CustomerRegistry`, the actix system.
//! - [`convert`]: wire ↔ domain conversions and input validation, in one place.
//! - [`server`]: the whole server in one call, [`server::run`]: gRPC,
//!   start-up, the background tasks (idle sweeper, retention, storage probe,
//!   reloads) on the service clock, graceful shutdown; `nudge serve` and the
//!   tests both run it.
//! - [`grpc`]: thin tonic services, health, reflection, admission control;
//!   [`grpc::serve`].
//! - [`queueing`]: where calls wait, measured, and the controller that sheds
//!   calls while a queue stands.
//! - [`fuzzing`]: untrusted bytes through decode → validate → decide, for the
//!   fuzz targets and their property-test twins.
//! - [`error`]: `ServiceError` and its one mapping to gRPC status codes.
//! - [`store`]: the storage seams (`StateStore`, `DecisionLog`,
//!   `BudgetLedger`), their contract suite, and the embedded redb store with
//!   group commit.
//! - [`clock`]: system and manual clocks, and waiting on them.
//! - [`stats`]: counters behind `Admin.Stats`.
//! - [`logging`]: the log subscriber (text or JSON lines) and customer ids
//!   in logs (hashed unless configured otherwise).
//! - [`metrics`]: Prometheus metrics, every name declared in one place, and the exporter.
//! - [`web`]: browsers: who may call over grpc-web (origins, customer
//!   tokens), and the pages listener (`/nudge.js`, `/demo`, `/console`).
//! - [`cli`]: the `nudge` client subcommands.
//! - [`simulate`]: the world of `nudge simulate`: synthetic customers, their
//!   events and a known ground truth of their responses (pure; the driver
//!   is `cli::simulate`).
//!
//! [`start`] builds an [`engine::Engine`] from a [`config::Config`], loading the
//! catalog and model files or the embedded demo.

#![forbid(unsafe_code)]

pub mod actors;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod engine;
pub mod error;
mod files;
pub mod fuzzing;
pub mod grpc;
pub mod journeys;
pub mod logging;
pub mod metrics;
pub mod queueing;
pub mod registry;
pub mod requests;
pub mod server;
pub mod shared;
pub mod simulate;
pub mod stats;
pub mod store;
#[cfg(test)]
mod testing;
pub mod web;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::engine::{CatalogSource, Engine, EngineStartError};
use crate::registry::ModelRegistry;
use crate::store::{RedbStore, StoreOptions, Stores};
use nudge_models::catalog::{Catalog, CatalogProblems};
use nudge_models::model::Model;
use std::path::PathBuf;
use std::sync::Arc;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The catalog is invalid.
    #[error("catalog {origin} is invalid: {problems}")]
    Catalog {
        /// The file, or "(embedded demo)".
        origin: String,
        /// Every problem.
        problems: CatalogProblems,
    },
    /// The model is invalid.
    #[error("model {origin} is invalid: {error}")]
    Model {
        /// The file, or "(embedded demo)".
        origin: String,
        /// Why.
        error: nudge_models::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store in {}: {source}", data_dir.display())]
    Store {
        /// The data directory.
        data_dir: PathBuf,
        /// Why.
        source: crate::store::StoreError,
    },
    /// The model registry in the data directory could not be read.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineStartError),
}

fn read(path: &PathBuf) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|source| StartError::Read {
        path: path.clone(),
        source,
    })
}

/// Opens the configured stores: the Redis Cluster with `storage.backend =
/// "redis"`, in memory with `storage.in_memory`, otherwise the durable
/// store in `storage.data_dir`. Blocking; may take a few seconds on a large
/// data directory, or up to a lease time on Redis while this node's
/// partitions are still leased from before a crash.
pub fn open_store(config: &Config) -> Result<Stores, StartError> {
    if config.storage.backend == config::StorageBackend::Redis {
        return open_redis(config);
    }
    let options = StoreOptions {
        max_batch_writes: config.storage.max_batch_writes,
        journal_records: config.storage.journal_records,
        quick_repair: config.storage.quick_repair,
        commit_interval: std::time::Duration::from_micros(config.storage.commit_interval_us),
        write_ahead: config.storage.write_ahead,
        checkpoint_interval: std::time::Duration::from_millis(
            config.storage.checkpoint_interval_ms,
        ),
        ..StoreOptions::default()
    };
    if config.storage.in_memory {
        tracing::warn!("storage.in_memory is set: nothing survives a restart");
        return Ok(Stores::from(Arc::new(RedbStore::in_memory(options))));
    }
    let data_dir = &config.storage.data_dir;
    let started = std::time::Instant::now();
    let store = RedbStore::open(data_dir, options).map_err(|source| StartError::Store {
        data_dir: data_dir.clone(),
        source,
    })?;
    tracing::info!(
        data_dir = %data_dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store opened"
    );
    Ok(Stores::from(Arc::new(store)))
}

/// The Redis Cluster store of `config`, holding every partition (one
/// node on Redis). Blocking.
fn open_redis(config: &Config) -> Result<Stores, StartError> {
    let started = std::time::Instant::now();
    let options = redis_options(config);
    let urls = options.client.urls.join(", ");
    let store = store::redis::RedisStore::open(options).map_err(|source| StartError::Store {
        data_dir: PathBuf::from(&urls),
        source,
    })?;
    tracing::info!(
        redis = %urls,
        partitions = config.cluster.partitions,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "redis store opened"
    );
    Ok(Stores::from(store))
}

/// Joins the cluster of `config` (`cluster.enabled`) as a node that other
/// nodes reach at `cluster.advertise`, or else at `listening`: connects to
/// Redis (taking no partition yet) and registers in the membership.
/// Blocking.
pub fn join_cluster(
    config: &Config,
    listening: std::net::SocketAddr,
) -> Result<Arc<cluster::Cluster>, StartError> {
    let options = redis_options(config);
    let urls = options.client.urls.join(", ");
    let failed = |source| StartError::Store {
        data_dir: PathBuf::from(&urls),
        source,
    };
    let (node, partitions, lease) = (options.node.clone(), options.partitions, options.lease);
    let tls = config.forwarding_tls()?;
    let store = store::redis::RedisStore::connect(options).map_err(failed)?;
    let address = config
        .cluster
        .advertise
        .clone()
        .unwrap_or_else(|| listening.to_string());
    if config.cluster.advertise.is_none() && listening.ip().is_unspecified() {
        tracing::warn!(
            %address,
            "cluster.advertise is unset and the listener is on every interface: other nodes forward to {address}, reachable only on this host"
        );
    }
    cluster::Cluster::join(store, node, address, partitions, lease, tls.as_ref()).map_err(failed)
}

/// The Redis store's options from `config`.
pub fn redis_options(config: &Config) -> store::redis::RedisOptions {
    use store::redis::{ClientOptions, Durability, RedisOptions};
    let storage = &config.storage;
    let durability = match storage.redis_durability {
        config::RedisDurability::Fsync => Durability::Fsync,
        config::RedisDurability::Replicas => Durability::Replicas {
            count: storage.redis_wait_replicas,
            timeout: std::time::Duration::from_millis(storage.redis_wait_timeout_ms),
        },
        config::RedisDurability::Unchecked => Durability::Unchecked,
    };
    let lease = std::time::Duration::from_millis(config.cluster.lease_ms);
    RedisOptions {
        client: ClientOptions {
            urls: storage.redis_urls.clone(),
            durability,
            timeout: std::time::Duration::from_millis(storage.redis_timeout_ms),
        },
        namespace: storage.redis_namespace.clone(),
        partitions: nudge_models::cluster::Partitions::new(config.cluster.partitions)
            .unwrap_or(nudge_models::cluster::Partitions::DEFAULT),
        node: config.cluster.node_name(),
        lease,
        // A node restarted after a crash finds its old leases still
        // running: it waits them out.
        acquire_wait: lease * 2,
    }
}

/// Validates `config`, loads the catalog and model (or the embedded demo), and
/// starts an engine.
pub fn start(
    config: Config,
    stores: impl Into<Stores>,
    clock: Arc<dyn Clock>,
) -> Result<Engine, StartError> {
    config.validate()?;
    let (catalog_text, source, origin) = match &config.catalog {
        Some(path) => (
            read(path)?,
            CatalogSource::File(path.clone()),
            path.display().to_string(),
        ),
        None => (
            nudge_models::demo::CATALOG_TOML.to_owned(),
            CatalogSource::Demo,
            "(embedded demo)".to_owned(),
        ),
    };
    let catalog = Catalog::from_toml(&catalog_text)
        .map_err(|problems| StartError::Catalog { origin, problems })?;
    let (model_text, origin) = match &config.model {
        Some(path) => (read(path)?, path.display().to_string()),
        None => (
            nudge_models::demo::MODEL_JSON.to_owned(),
            "(embedded demo)".to_owned(),
        ),
    };
    let model = Model::from_json(model_text.as_bytes())
        .map_err(|error| StartError::Model { origin, error })?;
    // The registry kept in the data directory, if any, says which models
    // serve whom; else the configured model serves everyone.
    let registry_dir = (!config.storage.in_memory).then(|| config.storage.data_dir.join("models"));
    let models = ModelRegistry::open(
        registry_dir,
        Some(model),
        clock.now(),
        config.models.guardrail_test(),
    )?;
    let serving = models.serving();
    tracing::info!(
        catalog = %catalog.version,
        model = %serving.champion().map_or("(none)", |model| model.version()),
        variants = serving.experiment.variants.len(),
        "loaded catalog and models"
    );
    Ok(Engine::start(
        config,
        catalog,
        &catalog_text,
        source,
        models,
        stores.into(),
        clock,
    )?)
}
