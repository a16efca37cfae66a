//! Admission control: bounds on what the listener takes on, so that under a
//! burst nudge answers some calls fast and refuses the others fast, instead
//! of queueing every call past its 100 ms budget.
//!
//! - **Calls**: at most `grpc.max_concurrent_requests` calls in flight over
//!   all connections ([`Admission`]). A call beyond it is shed at once with
//!   RESOURCE_EXHAUSTED, before any handler runs; nothing waits for a slot.
//!   Health checks and reflection are exempt: a health probe must still be
//!   answered when the service is saturated, or a load balancer would take a
//!   busy instance out and push its load onto the others.
//! - **Streams**: at most `grpc.max_concurrent_streams` per connection
//!   (HTTP/2 SETTINGS, enforced by the transport).
//! - **Connections**: at most `grpc.max_connections` open at once
//!   ([`limit_connections`]). A connection beyond it is closed as soon as it
//!   is accepted; the client sees UNAVAILABLE and may try another instance.
//! - **Per customer**, separately: a customer actor with
//!   `actors.overload_threshold` calls queued answers Decide from the fallback
//!   ladder (see the engine).

use crate::metrics::GrpcMetrics;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// Path prefixes of the calls that are never shed: health and reflection.
pub const EXEMPT: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// The global limit on calls in flight.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
}

/// What [`Admission::admit`] decided about one call.
#[derive(Debug)]
pub enum Admit {
    /// Health or reflection: not counted.
    Exempt,
    /// Admitted; the call holds its slot until it is answered.
    Admitted(OwnedSemaphorePermit),
    /// Every slot is taken: refuse the call.
    Shed,
}

impl Admission {
    /// At most `limit` calls in flight.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Admits or sheds the call to `path`, without waiting.
    pub fn admit(&self, path: &str) -> Admit {
        if EXEMPT.iter().any(|prefix| path.starts_with(prefix)) {
            return Admit::Exempt;
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Admit::Admitted(permit),
            Err(_) => Admit::Shed,
        }
    }
}

/// `incoming` with at most `max` connections open at once: a connection
/// accepted beyond it is closed at once (and counted in `metrics`).
pub fn limit_connections<I, IO, E>(
    incoming: I,
    max: usize,
    metrics: Arc<GrpcMetrics>,
) -> impl Stream<Item = Result<LimitedConnection<IO>, E>>
where
    I: Stream<Item = Result<IO, E>>,
{
    let slots = Arc::new(Semaphore::new(max));
    incoming.filter_map(move |accepted| match accepted {
        Ok(io) => match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(Ok(LimitedConnection {
                io,
                _permit: permit,
            })),
            Err(_) => {
                metrics.connection_refused();
                tracing::debug!(
                    max,
                    "closed a new connection: grpc.max_connections are open"
                );
                None
            }
        },
        Err(error) => Some(Err(error)),
    })
}

/// A connection that holds one of the [`limit_connections`] slots until it is
/// closed (dropped).
#[derive(Debug)]
pub struct LimitedConnection<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

impl<IO: Connected> Connected for LimitedConnection<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for LimitedConnection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for LimitedConnection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_beyond_the_limit_are_shed_and_health_never_is() {
        let admission = Admission::new(2);
        let first = admission.admit("/nudge.v1.Decisions/Decide");
        let second = admission.admit("/nudge.v1.Events/Track");
        assert!(matches!(first, Admit::Admitted(_)));
        assert!(matches!(second, Admit::Admitted(_)));
        assert!(matches!(
            admission.admit("/nudge.v1.Decisions/Decide"),
            Admit::Shed
        ));
        assert!(matches!(
            admission.admit("/grpc.health.v1.Health/Check"),
            Admit::Exempt
        ));
        assert!(matches!(
            admission.admit("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Admit::Exempt
        ));
        drop(first);
        assert!(matches!(
            admission.admit("/nudge.v1.Decisions/Decide"),
            Admit::Admitted(_)
        ));
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_until_one_ends() {
        let accepted = tokio_stream::iter((0..4).map(Ok::<u32, io::Error>));
        let mut limited = Box::pin(limit_connections(accepted, 2, Arc::new(GrpcMetrics::new())));
        let mut next = async || {
            limited
                .next()
                .await
                .map(|connection| connection.expect("no accept error"))
        };
        let first = next().await.expect("the first connection is kept");
        let second = next().await.expect("the second connection is kept");
        assert_eq!((first.io, second.io), (0, 1));
        drop(first);
        // Its slot is free again: connection 2 is kept, 3 (a third open one)
        // is closed, and the stream ends.
        let third = next().await.expect("a slot was freed");
        assert_eq!(third.io, 2);
        assert!(next().await.is_none());
    }
}
