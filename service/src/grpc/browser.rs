//! Browsers on the gRPC port: the outermost layers of [`super::serve`].
//!
//! - [`cors`]: answers CORS preflights for `web.allowed_origins` (and
//!   the pages listener's origin on the demo) and adds the CORS headers a
//!   page needs to read a reply, `grpc-status` and `grpc-message` among them;
//! - [`BrowserLayer`]: applies [`BrowserAccess`] to every call: a call from
//!   a disallowed origin, a grpc-web call to anything but Decide,
//!   ReportOutcome and Track, or one without a valid customer token is
//!   refused before it is translated or decoded (PERMISSION_DENIED or
//!   UNAUTHENTICATED, in the caller's protocol); an accepted token's
//!   customer goes into the request for the handler's
//!   [`crate::web::check_customer`];
//! - then `tonic_web::GrpcWebLayer` turns grpc-web into gRPC and back.

use super::auth::Refuse;
use crate::error::ServiceError;
use crate::metrics::GrpcMetrics;
use crate::web::{BrowserAccess, TOKEN_HEADER, is_grpc_web};
use std::future::Ready;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codegen::http::{self, HeaderName, HeaderValue, Method, header};
use tower::util::{Either, future::EitherResponseFuture};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for the origins `access` allows: POST only, the headers
/// grpc-web and customer tokens use, and the gRPC status headers exposed.
pub fn cors(access: &BrowserAccess) -> CorsLayer {
    let origins: Vec<HeaderValue> = access
        .origins()
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static(TOKEN_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// The tower layer applying [`BrowserAccess`].
#[derive(Debug, Clone)]
pub struct BrowserLayer {
    access: Arc<BrowserAccess>,
    /// Refusals count in `nudge_grpc_rejected_total` like the other layers'.
    metrics: Arc<GrpcMetrics>,
}

impl BrowserLayer {
    /// Checks calls with `access`, counting refusals in `metrics`.
    pub fn new(access: BrowserAccess, metrics: Arc<GrpcMetrics>) -> Self {
        Self {
            access: Arc::new(access),
            metrics,
        }
    }
}

impl<S> Layer<S> for BrowserLayer {
    type Service = Browser<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Browser {
            inner,
            access: self.access.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`BrowserLayer`].
#[derive(Debug, Clone)]
pub struct Browser<S> {
    inner: S,
    access: Arc<BrowserAccess>,
    metrics: Arc<GrpcMetrics>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Browser<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = EitherResponseFuture<S::Future, Ready<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // `Either` gives one future type for both outcomes without boxing.
        let mut route: Either<&mut S, Refuse<ResBody, S::Error>> =
            match self.access.check(request.uri().path(), request.headers()) {
                Ok(customer) => {
                    if let Some(customer) = customer {
                        request.extensions_mut().insert(customer);
                    }
                    Either::Left(&mut self.inner)
                }
                Err(error) => {
                    tracing::debug!(path = request.uri().path(), %error, "refused a browser call");
                    let status = tonic::Status::from(ServiceError::from(error));
                    self.metrics.grpc_status(status.code());
                    Either::Right(if is_grpc_web(request.headers()) {
                        Refuse::grpc_web(status)
                    } else {
                        Refuse::new(status)
                    })
                }
            };
        route.call(request)
    }
}
