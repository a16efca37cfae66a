//! Readiness: the listener answers before the engine exists, so a probe can
//! tell "starting" from "down".
//!
//! `nudge serve` binds its port first, then opens the store and loads the
//! catalog and model (seconds, on a large data directory). Meanwhile health
//! reports NOT_SERVING, reflection answers, and every `nudge.v1` call gets
//! UNAVAILABLE (`nudge is starting`). [`Readiness::ready`] hands over the
//! started engine: the `nudge.v1` services answer from then on and health
//! turns SERVING. When shutdown begins, [`Readiness::drain`] turns health
//! NOT_SERVING at once, while in-flight calls finish; that is final.
//! While the store refuses writes (a full disk, Redis unreachable),
//! [`Readiness::writes`] turns the whole server (`""`) and the services
//! that write (Decisions, Events) NOT_SERVING, so load balancers stop
//! sending them calls; Profiles, Admin and Dispatches stay SERVING (a dry
//! run and a profile read of a customer in memory still answer).
//! [`Readiness::engine`] waits for the started engine, for whoever holds a
//! clone (the test harness reaches the engine `server::run` started).

use super::auth::Refuse;
use super::{AdminService, DecisionsService, DispatchesService, EventsService, ProfilesService};
use crate::engine::Engine;
use nudge_proto::v1::{
    admin_server::AdminServer, decisions_server::DecisionsServer,
    dispatches_server::DispatchesServer, events_server::EventsServer,
    profiles_server::ProfilesServer,
};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower::Service;
use tower::util::{Either, future::EitherResponseFuture};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The engine is starting: health NOT_SERVING, `nudge.v1` UNAVAILABLE.
    Starting,
    /// Answering: health SERVING.
    Serving,
    /// Shutting down: health NOT_SERVING, in-flight calls finishing.
    Draining,
}

/// The `nudge.v1` services over the started engine.
#[derive(Debug)]
pub struct Services {
    decisions: DecisionsServer<DecisionsService>,
    events: EventsServer<EventsService>,
    profiles: ProfilesServer<ProfilesService>,
    admin: AdminServer<AdminService>,
    dispatches: DispatchesServer<DispatchesService>,
}

impl Services {
    fn new(engine: Arc<Engine>) -> Self {
        let max = engine.shared().config.limits.max_message_bytes;
        Self {
            decisions: DecisionsServer::new(DecisionsService::new(engine.clone()))
                .max_decoding_message_size(max),
            events: EventsServer::new(EventsService::new(engine.clone()))
                .max_decoding_message_size(max),
            profiles: ProfilesServer::new(ProfilesService::new(engine.clone()))
                .max_decoding_message_size(max),
            admin: AdminServer::new(AdminService::new(engine.clone()))
                .max_decoding_message_size(max),
            dispatches: DispatchesServer::new(DispatchesService::new(engine))
                .max_decoding_message_size(max),
        }
    }
}

/// The health names of the `nudge.v1` services, and `""` (the whole
/// server), each with whether it needs the store to accept writes.
const HEALTH_NAMES: [(&str, bool); 6] = [
    ("", true),
    (
        <DecisionsServer<DecisionsService> as NamedService>::NAME,
        true,
    ),
    (<EventsServer<EventsService> as NamedService>::NAME, true),
    (
        <ProfilesServer<ProfilesService> as NamedService>::NAME,
        false,
    ),
    (<AdminServer<AdminService> as NamedService>::NAME, false),
    (
        <DispatchesServer<DispatchesService> as NamedService>::NAME,
        false,
    ),
];

#[derive(Debug)]
struct Inner {
    health: HealthReporter,
    /// Held while health is updated, so that a late `ready` cannot undo
    /// `drain`; with whether the store accepts writes.
    phase: tokio::sync::Mutex<(Phase, bool)>,
    services: OnceLock<Services>,
    /// The engine the services answer from, once started; a watch so that
    /// [`Readiness::engine`] can wait for it.
    engine: tokio::sync::watch::Sender<Option<Arc<Engine>>>,
}

/// Whether the `nudge.v1` services can answer, and what health reports.
/// Cheap to clone; every clone is the same state.
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Starting: nothing answers but health (NOT_SERVING) and reflection.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                health: HealthReporter::new(),
                phase: tokio::sync::Mutex::new((Phase::Starting, true)),
                services: OnceLock::new(),
                engine: tokio::sync::watch::Sender::new(None),
            }),
        }
    }

    /// The services answer from `engine`, and health turns SERVING (unless
    /// shutdown already began). Only the first engine is used. Whoever waits
    /// in [`Readiness::engine`] is woken last, once health says SERVING.
    pub async fn ready(&self, engine: Arc<Engine>) {
        let mut phase = self.inner.phase.lock().await;
        let first = self
            .inner
            .services
            .set(Services::new(engine.clone()))
            .is_ok();
        if phase.0 == Phase::Starting {
            phase.0 = Phase::Serving;
        }
        self.publish(*phase).await;
        if first {
            self.inner.engine.send_replace(Some(engine));
        }
    }

    /// The engine handed to [`Readiness::ready`], waiting until it is. Never
    /// completes if the engine does not start.
    pub async fn engine(&self) -> Arc<Engine> {
        let mut started = self.inner.engine.subscribe();
        loop {
            if let Some(engine) = started.borrow_and_update().clone() {
                return engine;
            }
            // `self` holds the sender: the channel cannot close under us.
            if started.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Health turns NOT_SERVING for good; in-flight calls still finish,
    /// and the delivery services' subscriptions end (UNAVAILABLE), so that
    /// their streams do not hold the shutdown.
    pub async fn drain(&self) {
        let mut phase = self.inner.phase.lock().await;
        phase.0 = Phase::Draining;
        self.publish(*phase).await;
        if let Some(engine) = self.inner.engine.borrow().as_ref() {
            engine.shared().dispatches.close();
        }
    }

    /// Whether the store accepts writes: while it does not, health of the
    /// whole server and of the services that write is NOT_SERVING. Logs
    /// each change.
    pub async fn writes(&self, writable: bool) {
        let mut phase = self.inner.phase.lock().await;
        if phase.1 == writable {
            return;
        }
        phase.1 = writable;
        if writable {
            tracing::info!("the store accepts writes again: health SERVING");
        } else {
            tracing::warn!(
                "the store refuses writes: health NOT_SERVING for \"\", Decisions and Events until it accepts them"
            );
        }
        self.publish(*phase).await;
    }

    /// Sets every health name to what `phase` and whether the store
    /// accepts writes mean. Call with `phase` locked.
    async fn publish(&self, (phase, writable): (Phase, bool)) {
        for (name, writes) in HEALTH_NAMES {
            let status = match phase {
                Phase::Serving if writable || !writes => ServingStatus::Serving,
                _ => ServingStatus::NotServing,
            };
            self.inner.health.set_service_status(name, status).await;
        }
    }

    /// The health service (already reporting the current phase).
    pub(super) async fn health_service(&self) -> HealthServer<HealthService> {
        let phase = self.inner.phase.lock().await;
        self.publish(*phase).await;
        HealthServer::new(HealthService::from_health_reporter(
            self.inner.health.clone(),
        ))
    }

    /// The Decisions service, answering once ready.
    pub(super) fn decisions(&self) -> Deferred<DecisionsServer<DecisionsService>> {
        Deferred::new(self.clone(), |services| &services.decisions)
    }

    /// The Events service, answering once ready.
    pub(super) fn events(&self) -> Deferred<EventsServer<EventsService>> {
        Deferred::new(self.clone(), |services| &services.events)
    }

    /// The Profiles service, answering once ready.
    pub(super) fn profiles(&self) -> Deferred<ProfilesServer<ProfilesService>> {
        Deferred::new(self.clone(), |services| &services.profiles)
    }

    /// The Admin service, answering once ready.
    pub(super) fn admin(&self) -> Deferred<AdminServer<AdminService>> {
        Deferred::new(self.clone(), |services| &services.admin)
    }

    /// The Dispatches service, answering once ready.
    pub(super) fn dispatches(&self) -> Deferred<DispatchesServer<DispatchesService>> {
        Deferred::new(self.clone(), |services| &services.dispatches)
    }
}

/// A `nudge.v1` service that exists once the engine has started: until then
/// it answers every call with UNAVAILABLE.
#[derive(Debug, Clone)]
pub struct Deferred<S> {
    readiness: Readiness,
    pick: fn(&Services) -> &S,
}

impl<S> Deferred<S> {
    fn new(readiness: Readiness, pick: fn(&Services) -> &S) -> Self {
        Self { readiness, pick }
    }
}

impl<S: NamedService> NamedService for Deferred<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Deferred<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = EitherResponseFuture<
        S::Future,
        std::future::Ready<Result<http::Response<Body>, Infallible>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The generated tonic services are always ready: a clone can be
        // called at once.
        let mut route = match self.readiness.inner.services.get() {
            Some(services) => Either::Left((self.pick)(services).clone()),
            None => Either::Right(Refuse::new(tonic::Status::unavailable(
                "nudge is starting: the store, catalog and model are loading",
            ))),
        };
        route.call(request)
    }
}
