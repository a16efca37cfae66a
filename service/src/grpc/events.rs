//! `nudge.v1.Events`: one event, or a client stream of them. The stream is
//! read in chunks of the events already received, each validated here and
//! applied by the engine's [`crate::engine::Ingestion`].

use crate::convert;
use crate::engine::Engine;
use nudge_models::customer::TrackResult;
use nudge_proto::v1 as proto;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most events of a stream applied together (grouped by customer).
const MAX_CHUNK: usize = 1_024;

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
        crate::web::check_customer(request.extensions().get(), &request.get_ref().customer_id)?;
        let shared = self.engine.shared();
        let deadline = super::client_deadline(request.metadata());
        let (customer_id, event) = convert::event(
            request.into_inner(),
            shared.clock.now(),
            &shared.config.limits,
        )?;
        let results = self
            .engine
            .track_within(&customer_id, vec![event], deadline)
            .await?;
        let duplicate = results.first() == Some(&TrackResult::Duplicate);
        Ok(Response::new(proto::TrackResponse { duplicate }))
    }

    async fn track_stream(
        &self,
        request: Request<Streaming<proto::Event>>,
    ) -> Result<Response<proto::TrackStreamResponse>, Status> {
        let mut stream = request.into_inner();
        let shared = self.engine.shared();
        let mut ingestion = self.engine.ingest();
        let mut index = 0;
        let mut ended = false;
        while !ended {
            // Wait for one event, then take every event already received.
            let mut chunk = Vec::new();
            match stream.next().await {
                Some(event) => chunk.push(event?),
                None => break,
            }
            while chunk.len() < MAX_CHUNK {
                match tokio::time::timeout(Duration::ZERO, stream.next()).await {
                    Ok(Some(event)) => chunk.push(event?),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let now = shared.clock.now();
            let events = chunk
                .into_iter()
                .map(|event| {
                    let at = index;
                    index += 1;
                    let event_id = event.event_id.clone();
                    (
                        at,
                        event_id,
                        convert::event(event, now, &shared.config.limits),
                    )
                })
                .collect();
            ingestion.apply(events).await;
        }
        Ok(Response::new(convert::track_stream_summary(
            ingestion.finish().await,
        )))
    }
}
