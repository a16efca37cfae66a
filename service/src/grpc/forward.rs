//! Cluster mode: a call for a customer whose partition another node holds
//! is forwarded to it over gRPC ([`crate::cluster`] decides where), within
//! the same deadline; every answer names the node that served it in
//! [`OWNER`], so a client that keeps customers' owners can call them
//! directly next time.
//!
//! A call is checked (browser token, input limits of the request as
//! received) by the node it reaches first; the owner checks it again.
//! Forwarded calls carry the caller's `authorization` and count their hops
//! in [`HOPS`]: [`crate::cluster::MAX_HOPS`] at most.

use super::calls::NotQueueing;
use super::client_deadline;
use crate::cluster::Route;
use crate::engine::Engine;
use nudge_proto::v1 as proto;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Response metadata: the node that served the call.
pub const OWNER: &str = "x-nudge-owner";

/// Request metadata: how many times the call was forwarded.
pub const HOPS: &str = "x-nudge-hops";

/// A call about one customer, as routing sees it.
pub trait Routed: Clone {
    /// The customer the call is about.
    fn customer_id(&self) -> &str;

    /// Whether the call only reads (a dry run, a profile read): while
    /// Redis is unreachable, the node that last held the customer's
    /// partition answers it from the customer's live actor.
    fn reads_only(&self) -> bool {
        false
    }
}

macro_rules! routed {
    ($($request:ty),* $(,)?) => {
        $(impl Routed for $request {
            fn customer_id(&self) -> &str {
                &self.customer_id
            }
        })*
    };
}

routed!(
    proto::ReportOutcomeRequest,
    proto::Event,
    proto::SetConsentRequest,
    proto::SuppressRequest,
    proto::UnsuppressRequest,
    proto::ForgetRequest,
);

impl Routed for proto::DecideRequest {
    fn customer_id(&self) -> &str {
        &self.customer_id
    }

    fn reads_only(&self) -> bool {
        self.dry_run
    }
}

impl Routed for proto::GetProfileRequest {
    fn customer_id(&self) -> &str {
        &self.customer_id
    }

    fn reads_only(&self) -> bool {
        true
    }
}

/// Runs `here` when this node serves the request's customer (always,
/// outside a cluster); otherwise sends the request with `there` to the node
/// that does. The answer names its node in [`OWNER`].
pub async fn route<Req, Resp, Here, HereFuture, There, ThereFuture>(
    engine: &Arc<Engine>,
    call: &'static str,
    request: Request<Req>,
    here: Here,
    there: There,
) -> Result<Response<Resp>, Status>
where
    Req: Routed,
    Here: FnOnce(Request<Req>) -> HereFuture,
    HereFuture: Future<Output = Result<Response<Resp>, Status>>,
    There: FnOnce(Channel, Request<Req>) -> ThereFuture,
    ThereFuture: Future<Output = Result<Response<Resp>, Status>>,
{
    let Some(cluster) = engine.cluster() else {
        return here(request).await;
    };
    let hops = hops(request.metadata());
    let budget = Duration::from_millis(engine.shared().config.budget_ms);
    let within = client_deadline(request.metadata()).map_or(budget, |client| client.min(budget));
    let started = Instant::now();
    let routed = request.get_ref();
    let route = if routed.reads_only() {
        cluster
            .route_read(engine, routed.customer_id(), hops, started + within)
            .await
    } else {
        cluster
            .route(routed.customer_id(), hops, started + within)
            .await
    };
    match route {
        Route::Local(guard) => {
            let answer = here(request).await;
            let waited = guard.waited();
            drop(guard);
            // Refusals name their node too: a forwarding node passes them
            // on as they are.
            answer
                .map(|response| {
                    let mut response = with_owner(response, cluster.node());
                    if waited {
                        response.extensions_mut().insert(NotQueueing);
                    }
                    response
                })
                .map_err(|mut status| {
                    if let Ok(value) = MetadataValue::try_from(cluster.node()) {
                        status.metadata_mut().insert(OWNER, value);
                    }
                    status
                })
        }
        Route::Forward { node, address } => {
            let channel = cluster.channel(&address).map_err(Status::unavailable)?;
            let mut forwarded = Request::new(request.get_ref().clone());
            if let Some(authorization) = request.metadata().get("authorization") {
                forwarded
                    .metadata_mut()
                    .insert("authorization", authorization.clone());
            }
            forwarded
                .metadata_mut()
                .insert(HOPS, MetadataValue::from(hops + 1));
            forwarded.set_timeout(within.saturating_sub(started.elapsed()));
            let answer = there(channel, forwarded).await;
            crate::metrics::forwarded(call, answer.is_ok());
            // Only the owner's name passes on from the owner's response
            // headers (not its transport's).
            answer
                .map(|response| {
                    let owner = response.metadata().get(OWNER).cloned();
                    let mut fresh = Response::new(response.into_inner());
                    // The owner's admission control timed the work.
                    fresh.extensions_mut().insert(NotQueueing);
                    match owner {
                        Some(owner) => {
                            fresh.metadata_mut().insert(OWNER, owner);
                            fresh
                        }
                        None => with_owner(fresh, &node),
                    }
                })
                .map_err(|status| match status.code() {
                // The owner's own refusals (which name it) pass through; a
                // connection that failed, was reset (a node killed) or
                // timed out says which node was tried.
                tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Internal
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
                    if status.metadata().get(OWNER).is_none() =>
                {
                    cluster.forward_failed(&node, &address, status.message());
                    Status::unavailable(format!(
                        "the owner of this customer, node '{node}' at {address}, did not answer: {}",
                        status.message()
                    ))
                }
                _ => status,
            })
        }
        Route::Unavailable(reason) => Err(Status::unavailable(reason)),
    }
}

/// How many times the call was forwarded so far.
pub(super) fn hops(metadata: &MetadataMap) -> u32 {
    metadata
        .get(HOPS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn with_owner<Resp>(mut response: Response<Resp>, node: &str) -> Response<Resp> {
    if let Ok(value) = MetadataValue::try_from(node) {
        response.metadata_mut().insert(OWNER, value);
    }
    response
}
