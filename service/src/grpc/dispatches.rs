//! `nudge.v1.Dispatches`: delivery services subscribe to journeys' sends
//! and acknowledge them. A subscription is a stream fed by the engine's
//! [`crate::journeys::DispatchHub`]; it ends with UNAVAILABLE when the
//! service shuts down.

use crate::convert;
use crate::engine::Engine;
use crate::error::ServiceError;
use crate::journeys::Subscription;
use nudge_proto::v1 as proto;
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::{Request, Response, Status};

/// The Dispatches service over an [`Engine`].
#[derive(Debug, Clone)]
pub struct DispatchesService {
    engine: Arc<Engine>,
}

impl DispatchesService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

/// One subscription's dispatches, as the call's response stream; the
/// subscription leaves the hub when the client goes away (the stream is
/// dropped).
#[derive(Debug)]
pub struct DispatchStream {
    subscription: Subscription,
    ended: bool,
}

impl tokio_stream::Stream for DispatchStream {
    type Item = Result<proto::Dispatch, Status>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match this.subscription.poll_next(context) {
            Poll::Ready(Some(handed)) => Poll::Ready(Some(Ok(convert::dispatch(handed)))),
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(Some(Err(ServiceError::ShuttingDown.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[tonic::async_trait]
impl proto::dispatches_server::Dispatches for DispatchesService {
    type SubscribeStream = DispatchStream;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let limits = &self.engine.shared().config.limits;
        let channels = request.into_inner().channels;
        for channel in &channels {
            convert::id("channels", channel, limits)?;
        }
        let channels = (!channels.is_empty()).then(|| channels.into_iter().collect::<HashSet<_>>());
        let subscription = self.engine.subscribe_dispatches(channels)?;
        Ok(Response::new(DispatchStream {
            subscription,
            ended: false,
        }))
    }

    async fn ack(
        &self,
        request: Request<proto::AckRequest>,
    ) -> Result<Response<proto::AckResponse>, Status> {
        let limits = &self.engine.shared().config.limits;
        let request = request.into_inner();
        convert::id("customer_id", &request.customer_id, limits)?;
        convert::id("dispatch_id", &request.dispatch_id, limits)?;
        let acknowledged = self
            .engine
            .ack_dispatch(&request.customer_id, &request.dispatch_id)
            .await?;
        Ok(Response::new(convert::acknowledged(acknowledged)))
    }
}
