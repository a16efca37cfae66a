//! Test harness: starts the real nudge server (the same `server::run` that
//! `nudge serve` runs, background tasks included) on an ephemeral loopback
//! port, with a controllable clock, and hands out generated gRPC clients.
//!
//! The background tasks wait on the manual clock: the idle sweeper and
//! decision-log retention only run when a test moves time past their next
//! due instant, and a reload only when the test asks ([`TestServer::reload`]).

#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod redis;
pub mod simulation;
pub mod web;

use nudge_models::time::Timestamp;
use nudge_proto::v1::admin_client::AdminClient;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_proto::v1::dispatches_client::DispatchesClient;
use nudge_proto::v1::events_client::EventsClient;
use nudge_proto::v1::profiles_client::ProfilesClient;
use nudge_service::clock::ManualClock;
use nudge_service::config::{Config, Listen};
use nudge_service::engine::Engine;
use nudge_service::grpc::Readiness;
use nudge_service::server::{self, RunError};
use nudge_service::store::{RedbStore, StoreOptions, Stores};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, ClientTlsConfig};

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory whose name carries `tag`.
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "nudge-e2e-{}-{tag}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp directory");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` inside it.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The embedded demo catalog without its journeys, for tests of decisions
/// alone: the demo's journeys start on events such tests send
/// (`trial_started`, `support_ticket_opened`) and would add their own
/// decisions and contacts.
pub fn demo_without_journeys() -> &'static str {
    let demo = nudge_models::demo::CATALOG_TOML;
    demo.find("\n# ── Journeys")
        .map_or(demo, |journeys| &demo[..journeys])
}

/// 2026-11-23 12:00:00 UTC: outside every channel's quiet hours.
pub const NOON: i64 = 1_795_435_200_000;

/// A running server on an ephemeral port.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its pages listener listens, when the test configured
    /// `web.listen` (e.g. `127.0.0.1:0`).
    pub web: Option<SocketAddr>,
    /// The engine behind it, for direct inspection.
    pub engine: Arc<Engine>,
    /// The service clock; tests move it.
    pub clock: ManualClock,
    /// The server's reload trigger (SIGHUP in `nudge serve`).
    reloads: mpsc::UnboundedSender<()>,
    /// The catalog file a server started on a text keeps (removed on drop).
    _files: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl TestServer {
    /// Starts a server on the embedded demo with the default configuration
    /// (but see [`TestServer::start_with`] about the budget).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `configure` adjusts the configuration.
    ///
    /// The one departure from the defaults: the Decide budget is 10 s instead
    /// of 100 ms, because the budget is wall-clock time and a loaded machine
    /// must not turn a test's decision into a deadline fallback. Tests about
    /// deadlines set `budget_ms` / `fallback_headroom_ms` themselves or use a
    /// client deadline (the shorter of the two applies).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let store = Arc::new(RedbStore::in_memory(StoreOptions::default()));
        Self::start_with_store(store, configure).await
    }

    /// Starts a server on `store` (e.g. a durable store in a temporary
    /// directory, which the test can then read directly).
    pub async fn start_with_store(
        store: impl Into<Stores>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            budget_ms: 10_000,
            ..Config::default()
        };
        // The store is given; `in_memory` keeps the model registry in
        // memory too, so no test writes into the working directory. A test
        // of the registry across restarts sets a data directory and turns
        // it off.
        config.storage.in_memory = true;
        configure(&mut config);
        let clock = ManualClock::new(Timestamp::from_millis(NOON));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let web_listener = match config.web.listen {
            Some(Listen::On(address)) => {
                Some(tokio::net::TcpListener::bind(address).await.unwrap())
            }
            _ => None,
        };
        let web = web_listener
            .as_ref()
            .map(|listener| listener.local_addr().unwrap());
        let (reloads, reload_requests) = mpsc::unbounded_channel();
        let readiness = Readiness::new();
        let options = server::Options {
            clock: Arc::new(clock.clone()),
            store: Some(store.into()),
            reloads: Box::pin(UnboundedReceiverStream::new(reload_requests)),
            readiness: readiness.clone(),
            web_listener,
        };
        let (shutdown, signal) = oneshot::channel::<()>();
        let signal = async move {
            let _ = signal.await;
        };
        let mut task = tokio::spawn(server::run(config, listener, options, signal));
        let engine = tokio::select! {
            engine = readiness.engine() => engine,
            ended = &mut task => panic!("the server stopped before it was ready: {ended:?}"),
        };
        Self {
            addr,
            web,
            engine,
            clock,
            reloads,
            _files: None,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Starts a server on the catalog `text` (in memory, like
    /// [`TestServer::start_with`]), after `configure`.
    pub async fn start_on(text: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let files = TempDir::new("catalog");
        std::fs::create_dir_all(files.path()).expect("a catalog directory");
        let path = files.join("catalog.toml");
        std::fs::write(&path, text).expect("write the catalog");
        let mut server = Self::start_with(move |config| {
            config.catalog = Some(path);
            configure(config);
        })
        .await;
        server._files = Some(files);
        server
    }

    /// Asks the server to re-read its catalog and model, as SIGHUP does for
    /// `nudge serve`. Returns at once: the reload happens on the server's
    /// task (wait for its effect with [`TestServer::eventually`]).
    pub fn reload(&self) {
        self.reloads
            .send(())
            .expect("the server is running and takes reload requests");
    }

    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A channel to a server started with `tls.*` set, over TLS with `tls`
    /// (its CA, and a client certificate for mTLS). The server's certificate
    /// must be valid for the IP address 127.0.0.1. An error when the
    /// connection or the handshake fails.
    pub async fn tls_channel(
        &self,
        tls: ClientTlsConfig,
    ) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(10))
            .tls_config(tls)?
            .connect()
            .await
    }

    /// A Decisions client.
    pub async fn decisions(&self) -> DecisionsClient<Channel> {
        DecisionsClient::new(self.channel().await)
    }

    /// An Events client.
    pub async fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel().await)
    }

    /// A Profiles client.
    pub async fn profiles(&self) -> ProfilesClient<Channel> {
        ProfilesClient::new(self.channel().await)
    }

    /// An Admin client.
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel().await)
    }

    /// A Dispatches client (what delivery services use).
    pub async fn dispatches(&self) -> DispatchesClient<Channel> {
        DispatchesClient::new(self.channel().await)
    }

    /// Begins shutdown without waiting: health turns NOT_SERVING and calls in
    /// flight drain; [`TestServer::stop`] then waits for the server to end.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Stops the server and waits for it to drain, stop its actors and flush
    /// its store; panics if it does not stop cleanly.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
    }
}

/// `message` with `authorization: Bearer <token>`, as the protected calls need
/// when the server has `auth.token`.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A string value.
pub fn text(value: &str) -> nudge_proto::v1::Value {
    nudge_proto::v1::Value {
        kind: Some(nudge_proto::v1::value::Kind::StringValue(value.to_owned())),
    }
}

/// A number value.
pub fn number(value: f64) -> nudge_proto::v1::Value {
    nudge_proto::v1::Value {
        kind: Some(nudge_proto::v1::value::Kind::NumberValue(value)),
    }
}

/// The wire timestamp of an instant in milliseconds.
pub fn at(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1_000),
        nanos: (millis.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// An event without properties at `at_millis` (service time, e.g. `NOON - HOUR_MS`).
pub fn event(
    customer_id: &str,
    event_id: &str,
    name: &str,
    at_millis: i64,
) -> nudge_proto::v1::Event {
    nudge_proto::v1::Event {
        customer_id: customer_id.to_owned(),
        event_id: event_id.to_owned(),
        name: name.to_owned(),
        timestamp: Some(at(at_millis)),
        properties: Default::default(),
    }
}

/// A Decide request for `customer_id` in `placement`, everything else default.
pub fn decide_request(customer_id: &str, placement: &str) -> nudge_proto::v1::DecideRequest {
    nudge_proto::v1::DecideRequest {
        customer_id: customer_id.to_owned(),
        placement: placement.to_owned(),
        ..Default::default()
    }
}

/// A dry-run, explained Decide request limited to `candidates` (all of the
/// placement's actions when empty).
pub fn probe_request(
    customer_id: &str,
    placement: &str,
    candidates: &[&str],
) -> nudge_proto::v1::DecideRequest {
    nudge_proto::v1::DecideRequest {
        dry_run: true,
        explain: true,
        candidate_action_ids: candidates.iter().map(|id| (*id).to_owned()).collect(),
        ..decide_request(customer_id, placement)
    }
}

impl TestServer {
    /// Tracks one event and returns whether it was a duplicate.
    pub async fn track(&self, event: nudge_proto::v1::Event) -> bool {
        self.events()
            .await
            .track(event)
            .await
            .expect("the event is accepted")
            .into_inner()
            .duplicate
    }

    /// Decides and returns the response; panics on an error status.
    pub async fn decide(
        &self,
        request: nudge_proto::v1::DecideRequest,
    ) -> nudge_proto::v1::DecideResponse {
        self.decisions()
            .await
            .decide(request)
            .await
            .expect("decide succeeds")
            .into_inner()
    }

    /// The customer's profile, or the error status (e.g. NOT_FOUND).
    pub async fn profile(
        &self,
        customer_id: &str,
    ) -> Result<nudge_proto::v1::Profile, tonic::Status> {
        self.profiles()
            .await
            .get_profile(nudge_proto::v1::GetProfileRequest {
                customer_id: customer_id.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Polls `condition` every few milliseconds until it holds; panics with
    /// `what` if it still does not after 10 s. For asynchronous effects only
    /// (actor shutdown), never as a substitute for an assertion.
    pub async fn eventually(&self, what: &str, mut condition: impl FnMut(&Engine) -> bool) {
        for _ in 0..2_000 {
            if condition(&self.engine) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("timed out waiting until {what}");
    }
}

/// The count of `reason` in a response's `filtered_counts` (0 if absent).
pub fn reason_count(
    response: &nudge_proto::v1::DecideResponse,
    reason: nudge_proto::v1::FilterReason,
) -> u32 {
    response
        .filtered_counts
        .iter()
        .filter(|count| count.reason == reason as i32)
        .map(|count| count.count)
        .sum()
}

/// The filtered entry of `action_id` in an explained response.
pub fn filtered<'r>(
    response: &'r nudge_proto::v1::DecideResponse,
    action_id: &str,
) -> Option<&'r nudge_proto::v1::FilteredCandidate> {
    response
        .filtered
        .iter()
        .find(|candidate| candidate.action_id == action_id)
}

/// The reason `action_id` was filtered in an explained response.
pub fn filter_reason(
    response: &nudge_proto::v1::DecideResponse,
    action_id: &str,
) -> Option<nudge_proto::v1::FilterReason> {
    filtered(response, action_id).map(|candidate| candidate.reason())
}

/// The served entry of `action_id`.
pub fn served<'r>(
    response: &'r nudge_proto::v1::DecideResponse,
    action_id: &str,
) -> Option<&'r nudge_proto::v1::ServedAction> {
    response
        .served
        .iter()
        .find(|action| action.action_id == action_id)
}

/// The served action ids, in rank order.
pub fn served_ids(response: &nudge_proto::v1::DecideResponse) -> Vec<&str> {
    response
        .served
        .iter()
        .map(|action| action.action_id.as_str())
        .collect()
}

/// The rolling counter of `name` in a profile.
pub fn counter<'p>(
    profile: &'p nudge_proto::v1::Profile,
    name: &str,
) -> Option<&'p nudge_proto::v1::EventCounter> {
    profile.counters.iter().find(|counter| counter.name == name)
}

/// How many of a profile's contacts are on `channel` and not released.
pub fn contacts_on(profile: &nudge_proto::v1::Profile, channel: &str) -> usize {
    profile
        .contacts
        .iter()
        .filter(|contact| contact.channel == channel && !contact.released)
        .count()
}
