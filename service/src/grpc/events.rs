//! `nudge.v1.Events`: one event, or a client stream of them.

use crate::convert;
use crate::engine::Engine;
use nudge_models::customer::TrackResult;
use nudge_proto::v1 as proto;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most rejections listed in a TrackStream summary.
const MAX_LISTED_REJECTIONS: usize = 100;

/// The Events service over an [`Engine`].
#[derive(Debug, Clone)]
pub struct EventsService {
    engine: Arc<Engine>,
}

impl EventsService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::events_server::Events for EventsService {
    async fn track(
        &self,
        request: Request<proto::Event>,
    ) -> Result<Response<proto::TrackResponse>, Status> {
        let shared = self.engine.shared();
        let (customer_id, event) = convert::event(
            request.into_inner(),
            shared.clock.now(),
            &shared.config.limits,
        )?;
        let results = self.engine.track(&customer_id, vec![event]).await?;
        let duplicate = results.first() == Some(&TrackResult::Duplicate);
        Ok(Response::new(proto::TrackResponse { duplicate }))
    }

    async fn track_stream(
        &self,
        request: Request<Streaming<proto::Event>>,
    ) -> Result<Response<proto::TrackStreamResponse>, Status> {
        let mut stream = request.into_inner();
        let mut summary = proto::TrackStreamResponse::default();
        let mut index = 0u64;
        while let Some(event) = stream.next().await {
            let event = event?;
            let event_id = event.event_id.clone();
            let shared = self.engine.shared();
            let outcome = match convert::event(event, shared.clock.now(), &shared.config.limits) {
                Ok((customer_id, event)) => self.engine.track(&customer_id, vec![event]).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(results) if results.first() == Some(&TrackResult::Duplicate) => {
                    summary.duplicates += 1
                }
                Ok(_) => summary.accepted += 1,
                Err(error) => {
                    summary.rejected += 1;
                    if summary.rejections.len() < MAX_LISTED_REJECTIONS {
                        summary.rejections.push(proto::EventRejection {
                            index,
                            event_id,
                            message: error.to_string(),
                        });
                    }
                }
            }
            index += 1;
        }
        Ok(Response::new(summary))
    }
}
