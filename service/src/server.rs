//! The whole server behind one call: [`run`] is what `nudge serve` runs and
//! what the end-to-end tests start, background tasks included.
//!
//! On an already-bound listener, [`run`]:
//!
//! 1. serves gRPC at once ([`grpc::serve_until_ready`]): health NOT_SERVING,
//!    `nudge.v1` UNAVAILABLE while the engine starts;
//! 2. opens the store (unless given one) and starts the engine on a blocking
//!    thread, then hands the engine to the [`Readiness`];
//! 3. runs the background tasks on the service clock: the idle sweeper
//!    (`actors.sweep_interval_secs`), decision-log retention
//!    (`storage.compaction_interval_secs`), the storage probe (every 250 ms
//!    while a store refuses writes, e.g. on a full disk, with health
//!    NOT_SERVING for writes meanwhile), the journey timers
//!    (waking each customer whose journey runs are due,
//!    [`Engine::fire_journey_timers`]), and a reload of the catalog and model
//!    on each item of [`Options::reloads`] (SIGHUP in `nudge serve`);
//! 4. with a pages listener ([`Options::web_listener`]): serves `/nudge.js`,
//!    `/console` (and `/demo` on the embedded demo) and samples the
//!    console's figures; on the embedded demo, the pages' own origin may
//!    call over grpc-web, with a random customer token key if none is set;
//! 5. as a cluster node (`cluster.enabled`): joins the membership in Redis,
//!    takes the partitions placement gives it before turning ready, and
//!    keeps renewing and rebalancing them ([`crate::cluster`]);
//! 6. when `shutdown` completes: drains in-flight calls, stops the pages and
//!    the background tasks, hands a cluster node's partitions off,
//!    passivates every actor and flushes the store.

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::grpc::{self, Readiness, ServeError};
use crate::store::Stores;
use crate::web::pages::{self, ConsoleAccess, GrpcWebUrl, Pages};
use crate::web::tokens::CustomerTokens;
use crate::web::{BrowserAccess, console};
use crate::{StartError, join_cluster, open_store, start};
use nudge_models::time::Span;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinError, JoinSet};
use tokio_stream::{Stream, StreamExt as _};

/// How long shutdown waits for the actors to stop before flushing the store.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The port the `nudge` client subcommands use when `--server` is not given.
const CLIENT_DEFAULT_PORT: u16 = 50051;

/// A stream of reload requests: each item re-reads the catalog and model files
/// (or the embedded demo's), as `nudge reload` would.
pub type Reloads = Pin<Box<dyn Stream<Item = ()> + Send + 'static>>;

/// What [`run`] needs besides the configuration, the listener and the
/// shutdown signal. The default is production's: the system clock, the
/// configured store, no reloads, a fresh [`Readiness`].
pub struct Options {
    /// The service clock: decisions read it, and the background tasks wait on
    /// it (tests pass a `ManualClock` and move time themselves).
    pub clock: Arc<dyn Clock>,
    /// The store to serve from; `None` opens the configured one
    /// ([`open_store`]) on the start-up thread.
    pub store: Option<Stores>,
    /// Reload requests: `nudge serve` passes its SIGHUPs, tests their own
    /// trigger.
    pub reloads: Reloads,
    /// Health and the `nudge.v1` services' state; a clone kept by the caller
    /// reaches the engine once started ([`Readiness::engine`]).
    pub readiness: Readiness,
    /// The pages listener (`/nudge.js`, `/demo`, `/console`), already bound;
    /// `None`: no pages (`nudge serve` binds it as `web.listen` says).
    pub web_listener: Option<TcpListener>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            store: None,
            reloads: Box::pin(tokio_stream::pending()),
            readiness: Readiness::new(),
            web_listener: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Options")
            .field("clock", &self.clock)
            .field("store", &self.store.as_ref().map(|_| "(given)"))
            .field("readiness", &self.readiness)
            .field("web_listener", &self.web_listener)
            .finish_non_exhaustive()
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listener has no local address.
    #[error("cannot read the listener's address: {0}")]
    Listener(std::io::Error),
    /// The store, catalog, model or actor system could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The start-up thread panicked.
    #[error("the start-up task failed: {0}")]
    StartTask(JoinError),
    /// The gRPC server task panicked.
    #[error("the server task failed: {0}")]
    ServerTask(JoinError),
    /// The `web.*` settings cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pages listener failed.
    #[error("the pages listener failed: {0}")]
    Pages(std::io::Error),
}

/// Runs the whole server on `listener` until `shutdown` completes (see the
/// module documentation), then shuts down gracefully. An error if the engine
/// cannot start or the transport fails; shutdown during start-up waits for
/// the engine to start and stops it at once.
pub async fn run(
    config: Config,
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let Options {
        clock,
        store,
        reloads,
        readiness,
        web_listener,
    } = options;
    let address = listener.local_addr().map_err(RunError::Listener)?;
    let web_address = web_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(RunError::Listener)?;
    let hint = demo_hint(&config, address, web_address);
    let browsers = browser_access(&config, clock.clone(), web_address)?;
    let pages_parts = (browsers.tokens().cloned(), grpc_web_url(&config, address));
    tracing::info!(%address, "listening; starting (health: NOT_SERVING until ready)");
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight calls");
    };
    let server_config = config.clone();
    let serving = readiness.clone();
    let mut server = tokio::spawn(async move {
        grpc::serve_until_ready(listener, &server_config, browsers, serving, shutdown).await
    });
    let mut starting = tokio::task::spawn_blocking(move || {
        // A cluster node opens its own store: the Redis Cluster, holding
        // no partition until placement gives it some.
        let cluster = if config.cluster.enabled {
            Some(join_cluster(&config, address)?)
        } else {
            None
        };
        let store = match (&cluster, store) {
            (Some(cluster), _) => Stores::from(cluster.store().clone()),
            (None, Some(store)) => store,
            (None, None) => open_store(&config)?,
        };
        Ok::<_, StartError>((start(config, store, clock)?, cluster))
    });
    let (engine, cluster) = tokio::select! {
        started = &mut starting => match started {
            Ok(Ok((engine, cluster))) => (Arc::new(engine), cluster),
            Ok(Err(error)) => {
                server.abort();
                return Err(error.into());
            }
            Err(error) => {
                server.abort();
                return Err(RunError::StartTask(error));
            }
        },
        stopped = &mut server => {
            tracing::info!("stopped before the service was ready");
            match starting.await {
                Ok(Ok((engine, cluster))) => {
                    if let Some(cluster) = cluster {
                        cluster.leave().await;
                    }
                    engine.shutdown(SHUTDOWN_GRACE).await
                }
                Ok(Err(error)) => tracing::warn!(%error, "the engine did not start"),
                Err(error) => tracing::warn!(%error, "the start-up task failed"),
            }
            stopped.map_err(RunError::ServerTask)??;
            return Ok(());
        }
    };
    if let Some(cluster) = &cluster {
        // Takes the partitions placement gives this node before answering
        // (the rest are forwarded); a lease still held by a node that left
        // uncleanly moves here when it runs out.
        engine.join_cluster(cluster.clone());
        if let Err(error) = cluster.tick().await {
            tracing::warn!(%error, "first cluster round failed; retrying in the background");
        }
        tracing::info!(
            node = %cluster.node(),
            partitions = cluster.store().owned().len(),
            "cluster node ready"
        );
    }
    readiness.ready(engine.clone()).await;
    tracing::info!(%address, "nudge is serving");
    if let Some(hint) = hint {
        tracing::info!("{hint}");
    }

    let mut background = JoinSet::new();
    let (stop_pages, pages) = match web_listener {
        Some(web_listener) => {
            let history = Arc::new(console::History::default());
            background.spawn(console::sample(engine.clone(), history.clone()));
            let (tokens, grpc_web) = pages_parts;
            let pages = Pages {
                demo: engine.shared().config.catalog.is_none(),
                console: console_access(&engine.shared().config)?,
                engine: engine.clone(),
                history,
                tokens,
                grpc_web,
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(pages::serve(web_listener, pages, async move {
                let _ = stopped.await;
            }));
            if let Some(web_address) = web_address {
                tracing::info!(
                    "pages at http://{web_address}/ (/nudge.js, /console{})",
                    if engine.shared().config.catalog.is_none() {
                        ", /demo"
                    } else {
                        ""
                    }
                );
            }
            (Some(stop), Some(serving))
        }
        None => (None, None),
    };
    background.spawn(sweep_idle(engine.clone()));
    background.spawn(apply_retention(engine.clone()));
    background.spawn(reload_on_request(engine.clone(), reloads));
    background.spawn(probe_storage(engine.clone(), readiness.clone()));
    background.spawn(engine.clone().fire_journey_timers());
    if let Some(cluster) = &cluster {
        background.spawn(cluster.clone().run());
    }
    let served = server.await;
    if let (Some(stop), Some(pages)) = (stop_pages, pages) {
        let _ = stop.send(());
        match pages.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the pages listener failed"),
            Err(error) => tracing::warn!(%error, "the pages task failed"),
        }
    }
    // Drained: nothing calls the engine any more.
    background.shutdown().await;
    if let Some(cluster) = &cluster {
        // Hands every partition off at once: the other nodes take them
        // over now rather than after a lease time.
        cluster.leave().await;
    }
    engine.shutdown(SHUTDOWN_GRACE).await;
    tracing::info!("stopped");
    served.map_err(RunError::ServerTask)??;
    Ok(())
}

/// Runs `work` now and then every `interval` of the service clock. After a
/// jump of the clock past several intervals, `work` runs once, not once per
/// missed interval.
async fn every<Work, Done>(clock: Arc<dyn Clock>, interval: Span, mut work: Work)
where
    Work: FnMut() -> Done,
    Done: Future<Output = ()>,
{
    let mut due = clock.now();
    loop {
        clock.sleep_until(due).await;
        // The next run is due one interval after this one began: time that
        // passes while `work` runs is not skipped.
        let began = clock.now();
        work().await;
        due = due.plus(interval);
        if due <= began {
            due = began.plus(interval);
        }
    }
}

/// Passivates idle actors every `actors.sweep_interval_secs`.
async fn sweep_idle(engine: Arc<Engine>) {
    let config = &engine.shared().config.actors;
    let interval = seconds(config.sweep_interval_secs.max(1));
    every(engine.shared().clock.clone(), interval, || {
        let passivated = engine.passivate_idle();
        if passivated > 0 {
            tracing::debug!(passivated, "idle actors passivated");
        }
        std::future::ready(())
    })
    .await;
}

/// Deletes decision- and event-log entries older than `storage.decision_retention_days`
/// every `storage.compaction_interval_secs`.
async fn apply_retention(engine: Arc<Engine>) {
    let interval = seconds(engine.shared().config.storage.compaction_interval_secs);
    let engine = &engine;
    every(
        engine.shared().clock.clone(),
        interval,
        move || async move {
            match engine.apply_retention().await {
                Ok(deleted) if deleted.decisions == 0 && deleted.events == 0 => {}
                Ok(deleted) => tracing::info!(
                    decisions = deleted.decisions,
                    events = deleted.events,
                    "decision and event log retention applied"
                ),
                Err(error) => tracing::warn!(%error, "decision log retention not applied"),
            }
        },
    )
    .await;
}

/// How often, on the service clock, a store that refuses writes is asked to
/// check whether they work again.
const STORAGE_PROBE_INTERVAL: Span = Span(250);

/// While a store refuses writes (a full disk, Redis unreachable), asks it
/// every [`STORAGE_PROBE_INTERVAL`] whether writing works again; the store
/// then commits what it retained and accepts writes, without a restart.
/// Health follows: NOT_SERVING for writes while they are refused.
async fn probe_storage(engine: Arc<Engine>, readiness: Readiness) {
    let stores = engine.shared().stores.clone();
    every(
        engine.shared().clock.clone(),
        STORAGE_PROBE_INTERVAL,
        || {
            stores.probe();
            let writable = !stores.failing();
            let readiness = readiness.clone();
            async move { readiness.writes(writable).await }
        },
    )
    .await;
}

/// Reloads the catalog and then the model on each request; an invalid one is
/// refused and the running one stays. The log lines name SIGHUP, the trigger
/// operators use (tests send the same requests through their own trigger).
async fn reload_on_request(engine: Arc<Engine>, mut reloads: Reloads) {
    while reloads.next().await.is_some() {
        match engine.reload_catalog(None) {
            Ok((summary, previous)) => {
                tracing::info!(version = %summary.version, %previous, "SIGHUP: catalog reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "SIGHUP: catalog not reloaded; the running catalog stays");
            }
        }
        match engine.reload_model(None) {
            Ok((version, previous)) => {
                tracing::info!(%version, %previous, "SIGHUP: model reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "SIGHUP: model not reloaded; the running model stays");
            }
        }
    }
}

/// `secs` seconds as a [`Span`] (saturating).
pub(crate) fn seconds(secs: u64) -> Span {
    Span(i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX))
}

/// Who may call from a web page: `web.allowed_origins` and the customer
/// token key. On the embedded demo with pages, their own origin is allowed
/// too, and without a configured key a random one is drawn, so `/demo`
/// works out of the box (its tokens die with the process).
fn browser_access(
    config: &Config,
    clock: Arc<dyn Clock>,
    pages: Option<SocketAddr>,
) -> Result<BrowserAccess, ConfigError> {
    let configured = BrowserAccess::from_config(config, clock.clone())?;
    let Some(pages) = pages.filter(|_| config.catalog.is_none()) else {
        return Ok(configured);
    };
    let mut origins = configured.origins().to_vec();
    let port = pages.port();
    let hosts = if pages.ip().is_unspecified() || pages.ip().is_loopback() {
        vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "[::1]".to_owned(),
        ]
    } else {
        vec![match pages.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        }]
    };
    for host in hosts {
        let origin = format!("http://{host}:{port}");
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let tokens = configured.tokens().cloned().or_else(|| {
        let key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Some(CustomerTokens::new(
            key.as_bytes(),
            seconds(config.web.max_token_lifetime_secs),
        ))
    });
    Ok(BrowserAccess::new(origins, tokens, clock))
}

/// Where `/nudge.js` tells pages grpc-web is.
fn grpc_web_url(config: &Config, grpc: SocketAddr) -> GrpcWebUrl {
    match &config.web.grpc_web_url {
        Some(url) => GrpcWebUrl::Fixed(url.clone()),
        None => GrpcWebUrl::SameHost {
            scheme: if config.tls.cert.is_some() {
                "https"
            } else {
                "http"
            },
            port: grpc.port(),
        },
    }
}

/// Who may read the console's figures: as for the gRPC Admin calls.
fn console_access(config: &Config) -> Result<ConsoleAccess, ConfigError> {
    Ok(match config.auth_token()? {
        Some(token) => ConsoleAccess::Token(token),
        None if config.tls.client_ca.is_some() => ConsoleAccess::Refused,
        None => ConsoleAccess::Open,
    })
}

/// On the embedded demo, a first command to try against this server: the
/// client's default address is `http://127.0.0.1:50051`, so `--server` is
/// added when the port differs or the server speaks TLS.
fn demo_hint(config: &Config, address: SocketAddr, pages: Option<SocketAddr>) -> Option<String> {
    if config.catalog.is_some() {
        return None;
    }
    let server = if config.tls.cert.is_some() {
        format!(" --server https://{address} --ca-cert CA.pem")
    } else if address.port() == CLIENT_DEFAULT_PORT {
        String::new()
    } else {
        format!(" --server http://{address}")
    };
    let browser = pages.map_or_else(String::new, |pages| {
        let host = if pages.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            pages.ip().to_string()
        };
        format!(", or open http://{host}:{}/demo", pages.port())
    });
    Some(format!(
        "running the embedded demo; try: nudge decide --customer demo-1 --placement home_banner --explain{server}{browser}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(configure: impl FnOnce(&mut Config), address: &str) -> Option<String> {
        let mut config = Config::default();
        configure(&mut config);
        demo_hint(&config, address.parse().expect("an address"), None)
    }

    #[test]
    fn the_demo_hint_names_the_server_only_when_the_client_default_does_not_reach_it() {
        let plain = hint(|_| {}, "127.0.0.1:50051").expect("on the demo");
        assert!(plain.ends_with("--explain"), "{plain}");
        let other_port = hint(|_| {}, "127.0.0.1:6000").expect("on the demo");
        assert!(
            other_port.ends_with("--server http://127.0.0.1:6000"),
            "{other_port}"
        );
        let tls = hint(
            |config| {
                config.tls.cert = Some("cert.pem".into());
                config.tls.key = Some("key.pem".into());
            },
            "127.0.0.1:50051",
        )
        .expect("on the demo");
        assert!(
            tls.contains("--server https://127.0.0.1:50051 --ca-cert"),
            "{tls}"
        );
        assert_eq!(
            hint(
                |config| config.catalog = Some("catalog.toml".into()),
                "127.0.0.1:50051"
            ),
            None
        );
    }
}
