//! Admission control: bounds on what the listener takes on, so that under a
//! burst nudge answers some calls fast and refuses the others fast, instead
//! of queueing every call past its 100 ms budget.
//!
//! - **Calls**, by queueing delay ([`Admission`], over
//!   [`crate::queueing::Gate`]): at most a limit of calls in flight over all
//!   connections. The limit starts at `grpc.max_concurrent_requests` and a
//!   background task ([`control`]) adjusts it every
//!   `grpc.queue_delay_interval_ms`: when even the fastest quarter of a
//!   whole interval's calls took longer than usual (its baseline), or every connection
//!   waited to be read, by more than `grpc.queue_delay_target_ms` — a
//!   standing queue — the limit drops below the calls that were in flight;
//!   each calm interval raises it again, never below
//!   `grpc.min_concurrent_requests` (see [`crate::queueing`] for why these
//!   measures). A call beyond the limit is shed at once with
//!   RESOURCE_EXHAUSTED, before it is decoded or any handler runs; nothing
//!   waits for a slot. Health checks and reflection are exempt: a health
//!   probe must still be answered when the service is saturated, or a load
//!   balancer would take a busy instance out and push its load onto the
//!   others.
//! - **Budget**: a call admitted but not answered within the service budget
//!   (`budget_ms`) gets a fallback decision or RESOURCE_EXHAUSTED from the
//!   engine, never DEADLINE_EXCEEDED while the client still waits (see
//!   [`crate::engine::Engine::decide`]).
//! - **Streams**: at most `grpc.max_concurrent_streams` per connection
//!   (HTTP/2 SETTINGS, enforced by the transport).
//! - **Connections**: at most `grpc.max_connections` open at once
//!   ([`limit_connections`]). A connection beyond it is closed as soon as it
//!   is accepted; the client sees UNAVAILABLE and may try another instance.
//!   Each connection also reports how long its task waited to read its
//!   socket once readable: that is where calls queue, unseen by any layer,
//!   when the runtime is saturated.
//! - **Per customer**, separately: a customer actor with
//!   `actors.overload_threshold` calls queued answers Decide from the fallback
//!   ladder (see the engine).

use crate::config::GrpcConfig;
use crate::metrics::GrpcMetrics;
use crate::queueing::{Gate, Permit, Settings, Shed};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// Path prefixes of the calls that are never shed: health and reflection.
pub const EXEMPT: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// The limit on calls in flight, adjusted by queueing delay.
#[derive(Debug)]
pub struct Admission {
    gate: Arc<Gate>,
    settings: Settings,
}

/// What [`Admission::admit`] decided about one call.
#[derive(Debug)]
pub enum Admit {
    /// Health or reflection: not counted.
    Exempt,
    /// Admitted; the call holds its place until it is answered.
    Admitted(Permit),
    /// Refuse the call, for this reason.
    Shed(Shed),
}

impl Admission {
    /// Admission as `grpc.*` configures it.
    pub fn new(grpc: &GrpcConfig) -> Self {
        Self::with(Settings {
            target: (grpc.queue_delay_target_ms > 0)
                .then(|| Duration::from_millis(grpc.queue_delay_target_ms)),
            interval: Duration::from_millis(grpc.queue_delay_interval_ms),
            // A maximum below the floor wins: it is the operator's hard bound.
            min_limit: grpc
                .min_concurrent_requests
                .min(grpc.max_concurrent_requests),
            max_limit: grpc.max_concurrent_requests,
        })
    }

    /// Admission with these settings.
    pub fn with(settings: Settings) -> Self {
        Self {
            gate: Arc::new(Gate::new(settings)),
            settings,
        }
    }

    /// The gate: the calls in flight, the limit, the waits recorded.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Admits or sheds the call to `path`, without waiting.
    pub fn admit(&self, path: &str) -> Admit {
        if EXEMPT.iter().any(|prefix| path.starts_with(prefix)) {
            return Admit::Exempt;
        }
        match Gate::try_enter(&self.gate) {
            Ok(permit) => Admit::Admitted(permit),
            Err(reason) => Admit::Shed(reason),
        }
    }
}

/// Runs the controller of `admission` until dropped: at the end of every
/// interval the controller adjusts the limit from the calls answered in it;
/// a change, or a standing queue, is logged at debug. Does nothing when the
/// control is off (`grpc.queue_delay_target_ms = 0`).
pub async fn control(admission: Arc<Admission>, metrics: Arc<GrpcMetrics>) {
    let settings = *admission.settings();
    metrics.concurrency_limit(settings.max_limit);
    if settings.target.is_none() {
        return;
    }
    let gate = admission.gate();
    let mut intervals = tokio::time::interval(settings.interval);
    // Late ticks (a saturated runtime) end one longer interval, not a burst
    // of short ones.
    intervals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    intervals.tick().await;
    loop {
        intervals.tick().await;
        let adjustment = gate.end_interval();
        metrics.concurrency_limit(adjustment.limit);
        if adjustment.overloaded || adjustment.limit != adjustment.before {
            let micros = |duration: Option<Duration>| {
                duration.map(|duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
            };
            tracing::debug!(
                limit = adjustment.limit,
                before = adjustment.before,
                overloaded = adjustment.overloaded,
                standing_delay_us = micros(adjustment.standing),
                baseline_us = micros(adjustment.baseline),
                in_flight = gate.in_flight(),
                "admission limit adjusted"
            );
        }
    }
}

/// `incoming` with at most `max` connections open at once: a connection
/// accepted beyond it is closed at once (and counted in `metrics`).
pub fn limit_connections<I, IO, E>(
    incoming: I,
    max: usize,
    gate: Arc<Gate>,
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
                gate: gate.clone(),
                readable: None,
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
/// closed (dropped), and tells admission control how long its task waited to
/// read the socket once it turned readable: calls queue there, before the
/// gRPC layer sees them, when the runtime is saturated.
#[derive(Debug)]
pub struct LimitedConnection<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
    /// Where the waits are recorded.
    gate: Arc<Gate>,
    /// The waker of the read that found nothing to read, which notes when
    /// the socket turned readable.
    readable: Option<Arc<ReadableWaker>>,
}

/// Wakes a connection's task when its socket turns readable, noting when.
#[derive(Debug)]
struct ReadableWaker {
    task: Waker,
    /// When it was woken (the socket turned readable).
    woken: std::sync::OnceLock<Instant>,
}

impl Wake for ReadableWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.woken.set(Instant::now());
        self.task.wake_by_ref();
    }
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
        let this = &mut *self;
        if let Some(woken) = this
            .readable
            .take()
            .and_then(|readable| readable.woken.get().copied())
        {
            this.gate.connection_waited(woken.elapsed());
        }
        let readable = Arc::new(ReadableWaker {
            task: cx.waker().clone(),
            woken: std::sync::OnceLock::new(),
        });
        let waker = Waker::from(readable.clone());
        let read = Pin::new(&mut this.io).poll_read(&mut Context::from_waker(&waker), buf);
        if read.is_pending() {
            this.readable = Some(readable);
        }
        read
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

    fn admission(max_limit: usize) -> Admission {
        Admission::with(Settings {
            target: Some(Duration::from_millis(5)),
            interval: Duration::from_millis(100),
            min_limit: 1,
            max_limit,
        })
    }

    #[test]
    fn calls_beyond_the_limit_are_shed_and_health_never_is() {
        let admission = admission(2);
        let first = admission.admit("/nudge.v1.Decisions/Decide");
        let second = admission.admit("/nudge.v1.Events/Track");
        assert!(matches!(first, Admit::Admitted(_)));
        assert!(matches!(second, Admit::Admitted(_)));
        assert!(matches!(
            admission.admit("/nudge.v1.Decisions/Decide"),
            Admit::Shed(Shed::Concurrency)
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

    #[test]
    fn a_standing_queue_sheds_by_queue_delay_and_health_still_passes() {
        let admission = admission(100);
        let gate = admission.gate();
        gate.answered(Duration::from_millis(1));
        gate.end_interval();
        let calls: Vec<Admit> = (0..10)
            .map(|_| admission.admit("/nudge.v1.Decisions/Decide"))
            .collect();
        gate.answered(Duration::from_millis(41));
        let adjustment = gate.end_interval();
        assert!(adjustment.overloaded);
        assert_eq!(adjustment.limit, 5, "half of the 10 calls in flight");
        assert!(matches!(
            admission.admit("/nudge.v1.Decisions/Decide"),
            Admit::Shed(Shed::QueueDelay)
        ));
        assert!(matches!(
            admission.admit("/grpc.health.v1.Health/Check"),
            Admit::Exempt
        ));
        drop(calls);
        assert!(matches!(
            admission.admit("/nudge.v1.Decisions/Decide"),
            Admit::Admitted(_)
        ));
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_until_one_ends() {
        let accepted = tokio_stream::iter((0..4).map(Ok::<u32, io::Error>));
        let gate = Arc::new(Gate::new(admission(2).settings));
        let mut limited = Box::pin(limit_connections(
            accepted,
            2,
            gate,
            Arc::new(GrpcMetrics::new()),
        ));
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
