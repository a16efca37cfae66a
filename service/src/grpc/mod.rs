//! The gRPC adapters: one thin service per `nudge.v1` service, plus health and
//! reflection, assembled by [`serve`] on an already-bound listener
//! ([`crate::server::run`], which `nudge serve` and the tests run, calls its
//! twin [`serve_until_ready`]). [`serve`] also applies, to every service:
//!
//! - [`browser`]: the outermost layers: CORS, and who may call from a page
//!   (allowed origins, grpc-web only for Decide, ReportOutcome and Track,
//!   customer tokens), then `tonic_web` translating grpc-web to gRPC;
//! - [`calls`]: the layer one log span per call, admission control
//!   ([`admission`]: calls beyond a limit that queueing delay lowers and
//!   `grpc.max_concurrent_requests` caps are shed with RESOURCE_EXHAUSTED
//!   before they are decoded; [`admission::control`] adjusts the limit),
//!   refusals counted in the metrics, status and latency logged;
//! - [`auth`]: the authorization of the protected calls;
//! - TLS ([`tls`]), the message size limit, HTTP/2 keepalive, streams per
//!   connection, and the connection limit ([`admission::limit_connections`]);
//! - [`readiness`]: health NOT_SERVING and `nudge.v1` UNAVAILABLE until the
//!   engine has started ([`serve_until_ready`]), NOT_SERVING again as soon as
//!   shutdown begins.

mod admin;
pub mod admission;
pub mod auth;
pub mod browser;
pub mod calls;
mod decisions;
mod dispatches;
mod events;
pub mod forward;
mod profiles;
pub mod readiness;
pub mod tls;

pub use admin::AdminService;
pub use decisions::DecisionsService;
pub use dispatches::DispatchesService;
pub use events::EventsService;
pub use profiles::ProfilesService;
pub use readiness::Readiness;

use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::metrics::GrpcMetrics;
use crate::web::BrowserAccess;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;

/// The client's deadline from the `grpc-timeout` header, if any.
pub fn client_deadline(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3_600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Accepted connections with TCP_NODELAY (small responses must not wait for
/// Nagle's algorithm and a delayed ACK: that adds ~40 ms per call) and TCP
/// keepalive.
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The token or TLS settings cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Serves every nudge service, health and reflection on `listener` until
/// `shutdown` completes, then drains in-flight calls. With `tls.*` set the
/// listener speaks TLS only; with `auth.token` or mTLS the calls in
/// [`auth::PROTECTED`] need credentials. Calls and connections beyond the
/// `grpc.*` limits are refused at once ([`admission`]).
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let readiness = Readiness::new();
    let config = engine.shared().config.clone();
    let browsers = BrowserAccess::from_config(&config, engine.shared().clock.clone())?;
    readiness.ready(engine).await;
    serve_until_ready(listener, &config, browsers, readiness, shutdown).await
}

/// Like [`serve`], for an engine that is still starting: health and
/// reflection answer at once, health NOT_SERVING and every `nudge.v1` call
/// UNAVAILABLE until [`Readiness::ready`] hands `readiness` the engine.
/// `config` gives the transport settings (the engine's own configuration),
/// `browsers` who may call from a web page.
pub async fn serve_until_ready(
    listener: TcpListener,
    config: &Config,
    browsers: BrowserAccess,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let max_message = config.limits.max_message_bytes;
    let grpc = &config.grpc;
    let tls = config
        .tls_files()?
        .map(|files| tls::server_config(&files))
        .transpose()?;
    let authorizer = auth::Authorizer::new(config.auth_token()?, config.tls.client_ca.is_some());
    tracing::info!(
        tls = tls.is_some(),
        mtls = config.tls.client_ca.is_some(),
        token = config.auth.token.is_some() || config.auth.token_file.is_some(),
        browser_origins = browsers.origins().len(),
        customer_tokens = browsers.tokens().is_some(),
        "transport security"
    );
    let cors = browser::cors(&browsers);
    let metrics = Arc::new(GrpcMetrics::new());
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(nudge_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()?
        .max_decoding_message_size(max_message);
    let reflection_v1alpha = reflection()
        .build_v1alpha()?
        .max_decoding_message_size(max_message);
    let health_service = readiness
        .health_service()
        .await
        .max_decoding_message_size(max_message);
    let draining = readiness.clone();
    let shutdown = async move {
        shutdown.await;
        // Before tonic stops accepting: probes see NOT_SERVING at once.
        draining.drain().await;
    };
    let admission = Arc::new(admission::Admission::new(grpc));
    let connections = admission::limit_connections(
        incoming(listener),
        grpc.max_connections,
        admission.gate().clone(),
        metrics.clone(),
    );
    // Stopped when serving ends, however it ends.
    let _control = AbortOnDrop(tokio::spawn(admission::control(
        admission.clone(),
        metrics.clone(),
    )));
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .http2_keepalive_interval(Some(Duration::from_secs(grpc.keepalive_interval_secs)))
        .http2_keepalive_timeout(Some(Duration::from_secs(grpc.keepalive_timeout_secs)))
        .max_concurrent_streams(grpc.max_concurrent_streams)
        // grpc-web arrives over HTTP/1.1 from browsers.
        .accept_http1(true)
        // Outermost first: CORS answers preflights and decorates every
        // answer to a page (refusals included); browser calls are checked
        // before anything is decoded, then translated to gRPC.
        .layer(cors)
        .layer(browser::BrowserLayer::new(browsers, metrics.clone()))
        .layer(tonic_web::GrpcWebLayer::new())
        // Shed and unauthorized calls are logged and counted too.
        .layer(calls::CallLayer::new(admission, metrics))
        .layer(auth::AuthLayer::new(authorizer))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(readiness.decisions())
        .add_service(readiness.events())
        .add_service(readiness.profiles())
        .add_service(readiness.admin())
        .add_service(readiness.dispatches())
        // `serve_with_incoming*` ignores the builder's `tcp_nodelay`: the
        // accepted sockets get it from `incoming`.
        .serve_with_incoming_shutdown(connections, shutdown)
        .await?;
    Ok(())
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_units() {
        let mut metadata = MetadataMap::new();
        for (header, expected) in [
            ("1m", Duration::from_millis(1)),
            ("250u", Duration::from_micros(250)),
            ("2S", Duration::from_secs(2)),
            ("1H", Duration::from_secs(3_600)),
        ] {
            metadata.insert("grpc-timeout", header.parse().expect("ascii"));
            assert_eq!(client_deadline(&metadata), Some(expected));
        }
        metadata.insert("grpc-timeout", "12x".parse().expect("ascii"));
        assert_eq!(client_deadline(&metadata), None);
    }
}
