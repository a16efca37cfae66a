//! Authorization of the protected calls, once for every service: a tower layer
//! in front of tonic's router ([`AuthLayer`], applied in [`super::serve`]),
//! so no handler checks credentials and a refused call never reaches one.
//!
//! The protected calls are listed in [`PROTECTED`]: every `nudge.v1.Admin`
//! and `nudge.v1.Dispatches` call (a dispatch carries a customer's
//! personalised message) and the Profiles calls that change a customer's
//! state. Everything in
//! [`OPEN`] (decisions, outcomes, events, reading a profile), health and
//! reflection stay open: they are the hot path of the applications that embed
//! nudge, and they cannot change consent, suppressions or the catalog.
//!
//! A protected call is let through when
//! - it carries `authorization: Bearer <token>` with the configured token
//!   (compared in constant time), or
//! - it carries no bearer token and came over a connection whose client
//!   certificate was verified against `tls.client_ca` (mTLS).
//!
//! Otherwise it is refused before any handler runs: UNAUTHENTICATED without a
//! credential, PERMISSION_DENIED with a wrong token. With neither a token nor
//! mTLS configured, nothing is protected.

use crate::config::Secret;
use crate::error::{Credential, ServiceError};
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::http::{self, Extensions, HeaderMap, HeaderValue, header::AUTHORIZATION};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::util::{Either, future::EitherResponseFuture};
use tower::{Layer, Service};

/// The gRPC paths that need authorization. An entry ending in `/` covers
/// every method of that service. A new method that changes state (such as an
/// erase call) belongs here; a unit test fails until every `nudge.v1` method
/// is listed either here or in [`OPEN`].
pub const PROTECTED: [&str; 6] = [
    "/nudge.v1.Admin/",
    "/nudge.v1.Dispatches/",
    "/nudge.v1.Profiles/SetConsent",
    "/nudge.v1.Profiles/Suppress",
    "/nudge.v1.Profiles/Unsuppress",
    "/nudge.v1.Profiles/Forget",
];

/// The `nudge.v1` methods that stay open whatever is configured.
pub const OPEN: [&str; 5] = [
    "/nudge.v1.Decisions/Decide",
    "/nudge.v1.Decisions/ReportOutcome",
    "/nudge.v1.Events/Track",
    "/nudge.v1.Events/TrackStream",
    "/nudge.v1.Profiles/GetProfile",
];

/// Whether the call at the gRPC `path` (`/package.Service/Method`) is protected.
pub fn is_protected(path: &str) -> bool {
    PROTECTED.iter().any(|protected| {
        if protected.ends_with('/') {
            path.starts_with(protected)
        } else {
            path == *protected
        }
    })
}

/// What a protected call must show.
#[derive(Clone)]
pub struct Authorizer {
    /// The expected bearer token.
    token: Option<Secret>,
    /// Whether client certificates are verified (mTLS), so that a connection
    /// with one may stand in for the token.
    client_certificates: bool,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Authorizer")
            .field("token", &self.token.is_some())
            .field("client_certificates", &self.client_certificates)
            .finish()
    }
}

impl Authorizer {
    /// Protects the calls in [`PROTECTED`] with `token` and, when
    /// `client_certificates` is true, with verified client certificates.
    pub fn new(token: Option<Secret>, client_certificates: bool) -> Self {
        Self {
            token,
            client_certificates,
        }
    }

    /// Whether anything is protected at all.
    pub fn is_enabled(&self) -> bool {
        self.token.is_some() || self.client_certificates
    }

    /// Lets the call at `path` through, or says why not.
    pub fn check(
        &self,
        path: &str,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), ServiceError> {
        if !self.is_enabled() || !is_protected(path) {
            return Ok(());
        }
        let bearer = headers.get(AUTHORIZATION).and_then(bearer_token);
        if let (Some(expected), Some(presented)) = (&self.token, bearer) {
            return if constant_time_eq(expected.expose().as_bytes(), presented) {
                Ok(())
            } else {
                Err(ServiceError::PermissionDenied(Credential::BearerToken))
            };
        }
        if self.client_certificates && has_client_certificate(extensions) {
            return Ok(());
        }
        Err(ServiceError::Unauthenticated(if self.token.is_some() {
            Credential::BearerToken
        } else {
            Credential::ClientCertificate
        }))
    }
}

/// The token of an `authorization: Bearer <token>` value (the scheme is
/// case-insensitive), if it is one.
pub(crate) fn bearer_token(value: &HeaderValue) -> Option<&[u8]> {
    let value = value.as_bytes();
    let space = value.iter().position(|byte| *byte == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether the connection presented a client certificate. tonic's TLS
/// acceptor verified it against `tls.client_ca` during the handshake: a
/// connection with an unverified certificate never gets this far.
fn has_client_certificate(extensions: &Extensions) -> bool {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .is_some_and(|certificates| !certificates.is_empty())
}

/// `a == b` in time that depends on the lengths only, not on where the bytes
/// differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |difference, (x, y)| difference | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The tower layer that applies an [`Authorizer`] to every call.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authorizer: Arc<Authorizer>,
}

impl AuthLayer {
    /// A layer checking calls with `authorizer`.
    pub fn new(authorizer: Authorizer) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            authorizer: self.authorizer.clone(),
        }
    }
}

/// The service of [`AuthLayer`]: forwards authorized calls, answers the
/// others with a trailers-only gRPC error.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
}

/// Answers every request with a gRPC error status, as a trailers-only response.
#[derive(Debug)]
pub struct Refuse<B, E> {
    status: tonic::Status,
    /// Whether the answer is grpc-web's (its content type; a trailers-only
    /// answer is otherwise the same).
    grpc_web: bool,
    types: PhantomData<fn() -> (B, E)>,
}

impl<B, E> Refuse<B, E> {
    /// Answers with `status`.
    pub fn new(status: tonic::Status) -> Self {
        Self {
            status,
            grpc_web: false,
            types: PhantomData,
        }
    }

    /// Answers a grpc-web call with `status`.
    pub fn grpc_web(status: tonic::Status) -> Self {
        Self {
            grpc_web: true,
            ..Self::new(status)
        }
    }
}

impl<B: Default, E, Request> Service<Request> for Refuse<B, E> {
    type Response = http::Response<B>;
    type Error = E;
    type Future = Ready<Result<http::Response<B>, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request) -> Self::Future {
        let mut response = self.status.clone().into_http();
        if self.grpc_web {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc-web+proto"),
            );
        }
        ready(Ok(response))
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
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

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // `Either` gives one future type for both outcomes without boxing.
        let mut route: Either<&mut S, Refuse<ResBody, S::Error>> = match self.authorizer.check(
            request.uri().path(),
            request.headers(),
            request.extensions(),
        ) {
            Ok(()) => Either::Left(&mut self.inner),
            Err(error) => {
                tracing::debug!(path = request.uri().path(), %error, "refused a protected call");
                Either::Right(Refuse::new(tonic::Status::from(error)))
            }
        };
        route.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, value.parse().expect("a header value"));
        }
        headers
    }

    fn code(result: Result<(), ServiceError>) -> Option<tonic::Code> {
        result.err().map(|error| error.code())
    }

    #[test]
    fn every_nudge_method_is_either_protected_or_open() {
        let set = prost_types::FileDescriptorSet::decode(nudge_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let mut methods = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        assert!(methods.len() >= OPEN.len() + 3, "{methods:?}");
        for method in &methods {
            let open = OPEN.contains(&method.as_str());
            assert!(
                open != is_protected(method),
                "{method} must be listed in exactly one of PROTECTED and OPEN"
            );
        }
        for listed in PROTECTED.iter().chain(OPEN.iter()) {
            assert!(
                methods.iter().any(|method| method.starts_with(listed)),
                "{listed} names no method"
            );
        }
    }

    #[test]
    fn admin_and_state_changes_are_protected_reads_and_hot_path_are_not() {
        assert!(is_protected("/nudge.v1.Admin/Stats"));
        assert!(is_protected("/nudge.v1.Admin/ReloadCatalog"));
        assert!(is_protected("/nudge.v1.Profiles/SetConsent"));
        assert!(!is_protected("/nudge.v1.Profiles/GetProfile"));
        assert!(!is_protected("/nudge.v1.Profiles/SetConsentX"));
        assert!(!is_protected("/nudge.v1.Decisions/Decide"));
        assert!(!is_protected("/grpc.health.v1.Health/Check"));
    }

    #[test]
    fn the_token_is_required_and_compared() {
        let authorizer = Authorizer::new(Some(Secret::new("s3cret")), false);
        let none = Extensions::new();
        let admin = "/nudge.v1.Admin/Stats";
        assert_eq!(
            code(authorizer.check(admin, &headers(None), &none)),
            Some(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            code(authorizer.check(admin, &headers(Some("Basic s3cret")), &none)),
            Some(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            code(authorizer.check(admin, &headers(Some("Bearer s3cre")), &none)),
            Some(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            code(authorizer.check(admin, &headers(Some("Bearer s3cret!")), &none)),
            Some(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            code(authorizer.check(admin, &headers(Some("Bearer s3cret")), &none)),
            None
        );
        assert_eq!(
            code(authorizer.check(admin, &headers(Some("bearer  s3cret ")), &none)),
            None
        );
        assert_eq!(
            code(authorizer.check("/nudge.v1.Decisions/Decide", &headers(None), &none)),
            None
        );
    }

    #[test]
    fn nothing_is_protected_without_a_token_or_mtls() {
        let authorizer = Authorizer::new(None, false);
        assert!(!authorizer.is_enabled());
        assert!(
            authorizer
                .check("/nudge.v1.Admin/Stats", &headers(None), &Extensions::new())
                .is_ok()
        );
    }

    #[test]
    fn with_mtls_a_call_without_a_certificate_is_unauthenticated() {
        let authorizer = Authorizer::new(None, true);
        let error = authorizer
            .check("/nudge.v1.Admin/Stats", &headers(None), &Extensions::new())
            .expect_err("no certificate on a plain connection");
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
        assert!(error.to_string().contains("client certificate"), "{error}");
    }

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"xbc"));
    }

    #[test]
    fn the_debug_form_hides_the_token() {
        let text = format!("{:?}", Authorizer::new(Some(Secret::new("s3cret")), true));
        assert!(!text.contains("s3cret"), "{text}");
    }
}
