//! The gRPC adapters: one thin service per `nudge.v1` service, plus health and
//! reflection, assembled by [`serve`] on an already-bound listener (tests bind
//! `127.0.0.1:0` and call the same function as `main`). [`serve`] also applies,
//! to every service, TLS ([`tls`]), the authorization of the protected calls
//! ([`auth`]) and the message size limit.

mod admin;
pub mod auth;
mod decisions;
mod events;
mod profiles;
pub mod tls;

pub use admin::AdminService;
pub use decisions::DecisionsService;
pub use events::EventsService;
pub use profiles::ProfilesService;

use crate::config::ConfigError;
use crate::engine::{Engine, Shared};
use nudge_proto::v1::{
    admin_server::AdminServer, decisions_server::DecisionsServer, events_server::EventsServer,
    profiles_server::ProfilesServer,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic_health::ServingStatus;
use tower::util::MapResponseLayer;

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

/// An HTTP response of the gRPC server.
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

/// Counts refused calls for the metrics, once for every service: an error a
/// handler (or tonic, e.g. on an undecodable message) returns before any
/// response message is a trailers-only response whose headers carry its
/// `grpc-status`.
fn rejections(
    shared: Arc<Shared>,
) -> MapResponseLayer<impl Fn(HttpResponse) -> HttpResponse + Clone> {
    MapResponseLayer::new(move |response: HttpResponse| {
        if let Some(status) = response.headers().get("grpc-status") {
            shared
                .metrics
                .grpc_status(tonic::Code::from_bytes(status.as_bytes()));
        }
        response
    })
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
/// [`auth::PROTECTED`] need credentials.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = &engine.shared().config;
    let max_message = config.limits.max_message_bytes;
    let tls = config
        .tls_files()?
        .map(|files| tls::server_config(&files))
        .transpose()?;
    let authorizer = auth::Authorizer::new(config.auth_token()?, config.tls.client_ca.is_some());
    tracing::info!(
        tls = tls.is_some(),
        mtls = config.tls.client_ca.is_some(),
        token = config.auth.token.is_some() || config.auth.token_file.is_some(),
        "transport security"
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<DecisionsServer<DecisionsService>>()
        .await;
    health.set_serving::<EventsServer<EventsService>>().await;
    health
        .set_serving::<ProfilesServer<ProfilesService>>()
        .await;
    health.set_serving::<AdminServer<AdminService>>().await;
    health.set_service_status("", ServingStatus::Serving).await;
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
    let health_service = health_service.max_decoding_message_size(max_message);
    let drain_health = health.clone();
    let shutdown = async move {
        shutdown.await;
        drain_health
            .set_service_status("", ServingStatus::NotServing)
            .await;
    };
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Outermost first: refusals by `auth` are counted too.
        .layer(rejections(engine.shared().clone()))
        .layer(auth::AuthLayer::new(authorizer))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            DecisionsServer::new(DecisionsService::new(engine.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            EventsServer::new(EventsService::new(engine.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            ProfilesServer::new(ProfilesService::new(engine.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            AdminServer::new(AdminService::new(engine)).max_decoding_message_size(max_message),
        )
        // `serve_with_incoming*` ignores the builder's `tcp_nodelay`: the
        // accepted sockets get it from `incoming`.
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    Ok(())
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
