//! What happens to every gRPC call around the handlers, once for all services:
//! a tower layer ([`CallLayer`], the outermost in [`super::serve`]) that
//!
//! 1. opens the call's `grpc` span: the method path, and the client's
//!    `x-request-id` when it sent a usable one (printable ASCII, at most
//!    [`MAX_REQUEST_ID_BYTES`]); everything the handler logs is inside it;
//! 2. admits the call or sheds it with RESOURCE_EXHAUSTED ([`Admission`]),
//!    before the request is decoded; an admitted call's time in the server
//!    is what admission control goes by, when it was answered OK and not
//!    marked [`NotQueueing`] (forwarded, or waited for a partition);
//! 3. when the answer is ready, reads its `grpc-status`, counts refusals in
//!    the metrics, and logs the status and latency: at debug, or at error
//!    for a server fault (INTERNAL, UNKNOWN, DATA_LOSS).
//!
//! The status is read from the response headers: an error a handler (or
//! tonic, or a layer) returns before any message is a trailers-only response
//! that carries it there. A response without one is logged as OK: for unary
//! calls that is the final status; a streaming call that fails after its
//! first message ends with a status this layer does not see.

use super::admission::{Admission, Admit};
use crate::metrics::GrpcMetrics;
use crate::queueing::Shed;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::Instrument as _;

/// A response extension: the call's time in this node was not spent
/// queueing here (it was forwarded to another node, or waited for a
/// partition to move), so admission control leaves it out.
#[derive(Debug, Clone, Copy)]
pub struct NotQueueing;

/// The longest `x-request-id` put in the span; a longer one is left out.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The tower layer of every call: span, admission, status in metrics and logs.
#[derive(Debug, Clone)]
pub struct CallLayer {
    admission: Arc<Admission>,
    metrics: Arc<GrpcMetrics>,
}

impl CallLayer {
    /// A layer admitting calls with `admission` and counting in `metrics`.
    pub fn new(admission: Arc<Admission>, metrics: Arc<GrpcMetrics>) -> Self {
        Self { admission, metrics }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls {
            inner,
            admission: self.admission.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`CallLayer`].
#[derive(Debug, Clone)]
pub struct Calls<S> {
    inner: S,
    admission: Arc<Admission>,
    metrics: Arc<GrpcMetrics>,
}

/// The client's `x-request-id`, if it is usable in a log line.
fn request_id<B>(request: &http::Request<B>) -> Option<&str> {
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_BYTES
                && id.bytes().all(|byte| byte.is_ascii_graphic())
        })
}

/// The span of one call.
fn call_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        method = request.uri().path(),
        request_id = tracing::field::Empty,
    );
    if let Some(id) = request_id(request) {
        span.record("request_id", id);
    }
    span
}

/// The status code of a response (see the module documentation).
fn status_of<B>(response: &http::Response<B>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .map_or(tonic::Code::Ok, |status| {
            tonic::Code::from_bytes(status.as_bytes())
        })
}

/// Counts and logs an answered call (inside its span).
fn finished(metrics: &GrpcMetrics, code: tonic::Code, started: Instant) {
    metrics.grpc_status(code);
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let status = format_args!("{code:?}");
    match code {
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => {
            tracing::error!(%status, latency_us, "call failed")
        }
        _ => tracing::debug!(%status, latency_us, "call finished"),
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Calls<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let span = call_span(&request);
        let metrics = self.metrics.clone();
        let permit = match self.admission.admit(request.uri().path()) {
            Admit::Exempt => None,
            Admit::Admitted(permit) => Some(permit),
            Admit::Shed(reason) => {
                metrics.shed(reason);
                let gate = self.admission.gate();
                let (limit, in_flight) = (gate.limit(), gate.in_flight());
                let response = {
                    let _entered = span.enter();
                    tracing::debug!(reason = reason.code(), limit, in_flight, "call shed");
                    tonic::Status::resource_exhausted(shed_message(reason, limit)).into_http()
                };
                return Box::pin(
                    async move {
                        finished(&metrics, tonic::Code::ResourceExhausted, started);
                        Ok(response)
                    }
                    .instrument(span),
                );
            }
        };
        let answer = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let admission = self.admission.clone();
        Box::pin(
            async move {
                let result = answer.await;
                let code = result.as_ref().ok().map(status_of);
                let queued_here = result
                    .as_ref()
                    .is_ok_and(|response| response.extensions().get::<NotQueueing>().is_none());
                // The place is free once the answer is ready. Only a call
                // that did its work here measures the queue (see
                // `Gate::answered`).
                if permit.is_some() && code == Some(tonic::Code::Ok) && queued_here {
                    admission.gate().answered(started.elapsed());
                }
                drop(permit);
                if let Some(code) = code {
                    finished(&metrics, code, started);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// The message of a call shed for `reason` with `limit` calls in flight.
fn shed_message(reason: Shed, limit: usize) -> String {
    match reason {
        Shed::Concurrency => format!(
            "nudge is overloaded: {limit} calls in flight (grpc.max_concurrent_requests); retry with backoff"
        ),
        Shed::QueueDelay => format!(
            "nudge is overloaded: calls are queueing, so at most {limit} are taken at once for now; retry with backoff"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_usable_request_id_is_logged() {
        let request = |id: Option<&str>| {
            let mut builder = http::Request::builder().uri("/nudge.v1.Decisions/Decide");
            if let Some(id) = id {
                builder = builder.header("x-request-id", id);
            }
            builder.body(()).expect("a request")
        };
        let long = "x".repeat(MAX_REQUEST_ID_BYTES + 1);
        for (id, kept) in [
            (Some("req-42"), Some("req-42")),
            (Some("a b"), None),
            (Some(""), None),
            (Some(long.as_str()), None),
            (None, None),
        ] {
            assert_eq!(request_id(&request(id)), kept, "{id:?}");
        }
    }

    #[tokio::test]
    async fn only_calls_answered_ok_here_are_timed_for_admission() {
        use crate::queueing::Settings;
        use std::time::Duration;
        use tower::ServiceExt as _;

        // A service that refuses a call whose path ends in "Refused" and
        // answers the others.
        let inner = tower::service_fn(|request: http::Request<()>| async move {
            let response = if request.uri().path().ends_with("Refused") {
                tonic::Status::resource_exhausted("storage is catching up").into_http()
            } else if request.uri().path().ends_with("Forwarded") {
                let mut response = http::Response::new(());
                response.extensions_mut().insert(NotQueueing);
                response
            } else {
                http::Response::new(())
            };
            Ok::<_, std::convert::Infallible>(response)
        });
        let admission = Arc::new(Admission::with(Settings {
            target: Some(Duration::from_millis(5)),
            interval: Duration::from_millis(100),
            min_limit: 1,
            max_limit: 10,
        }));
        let calls = CallLayer::new(admission.clone(), Arc::new(GrpcMetrics::new())).layer(inner);
        let call = |path: &'static str| {
            let calls = calls.clone();
            async move {
                let request = http::Request::builder()
                    .uri(path)
                    .body(())
                    .expect("a request");
                calls.oneshot(request).await.expect("infallible")
            }
        };

        let refused = call("/nudge.v1.Events/Refused").await;
        assert_eq!(status_of(&refused), tonic::Code::ResourceExhausted);
        let gate = admission.gate();
        assert_eq!(gate.in_flight(), 0, "the refused call's place is free");
        let adjustment = gate.end_interval();
        assert_eq!(adjustment.baseline, None, "a refusal is not timed");
        assert_eq!(adjustment.standing, None);

        let forwarded = call("/nudge.v1.Events/Forwarded").await;
        assert_eq!(status_of(&forwarded), tonic::Code::Ok);
        assert_eq!(gate.in_flight(), 0, "the forwarded call's place is free");
        assert_eq!(
            gate.end_interval().baseline,
            None,
            "a call answered elsewhere is not timed here"
        );

        let answered = call("/nudge.v1.Events/Track").await;
        assert_eq!(status_of(&answered), tonic::Code::Ok);
        assert!(gate.end_interval().baseline.is_some(), "an answer is timed");
    }

    #[test]
    fn a_trailers_only_response_carries_its_status() {
        let refused: http::Response<()> = tonic::Status::resource_exhausted("busy").into_http();
        assert_eq!(status_of(&refused), tonic::Code::ResourceExhausted);
        let answered = http::Response::new(());
        assert_eq!(status_of(&answered), tonic::Code::Ok);
    }
}
