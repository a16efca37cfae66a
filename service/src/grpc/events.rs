//! `nudge.v1.Events`: one event, or a client stream of them.

use crate::convert;
use crate::engine::Engine;
use crate::error::ServiceError;
use crate::store::Commit;
use nudge_models::customer::TrackResult;
use nudge_proto::v1 as proto;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most rejections listed in a TrackStream summary.
const MAX_LISTED_REJECTIONS: usize = 100;

/// Most events of one stream applied but not yet known to be durable.
const MAX_IN_FLIGHT_COMMITS: usize = 4_096;

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
        // Events applied and waiting for their commit: many in flight, so a
        // stream is not one fsync per event; the answer comes when all are
        // durable.
        let mut in_flight: VecDeque<(u64, String, TrackResult, Commit)> = VecDeque::new();
        let mut index = 0u64;
        while let Some(event) = stream.next().await {
            let event = event?;
            let event_id = event.event_id.clone();
            let shared = self.engine.shared();
            let outcome = match convert::event(event, shared.clock.now(), &shared.config.limits) {
                Ok((customer_id, event)) => {
                    self.engine.track_deferred(&customer_id, vec![event]).await
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok((results, commit)) => {
                    let result = results.first().copied().unwrap_or(TrackResult::Applied);
                    in_flight.push_back((index, event_id, result, commit));
                    if in_flight.len() > MAX_IN_FLIGHT_COMMITS
                        && let Some(oldest) = in_flight.pop_front()
                    {
                        settle(&mut summary, oldest).await;
                    }
                }
                Err(error) => reject(&mut summary, index, event_id, &error),
            }
            index += 1;
        }
        for pending in in_flight {
            settle(&mut summary, pending).await;
        }
        Ok(Response::new(summary))
    }
}

/// Counts one event of a stream once its commit is known.
async fn settle(
    summary: &mut proto::TrackStreamResponse,
    (index, event_id, result, commit): (u64, String, TrackResult, Commit),
) {
    match commit.wait().await {
        Ok(_) if result == TrackResult::Duplicate => summary.duplicates += 1,
        Ok(_) => summary.accepted += 1,
        Err(error) => reject(summary, index, event_id, &error.into()),
    }
}

/// Counts (and lists, up to a limit) a rejected event of a stream.
fn reject(
    summary: &mut proto::TrackStreamResponse,
    index: u64,
    event_id: String,
    error: &ServiceError,
) {
    summary.rejected += 1;
    if summary.rejections.len() < MAX_LISTED_REJECTIONS {
        summary.rejections.push(proto::EventRejection {
            index,
            event_id,
            message: error.to_string(),
        });
    }
}
