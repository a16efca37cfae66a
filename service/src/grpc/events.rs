//! `nudge.v1.Events`: one event, or a client stream of them. The stream is
//! read in chunks of the events already received, each validated here and
//! applied by the engine's [`crate::engine::Ingestion`].

use crate::convert;
use crate::engine::Engine;
use nudge_models::customer::TrackResult;
use nudge_proto::v1 as proto;
use nudge_proto::v1::events_client::EventsClient;
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
        super::forward::route(
            &self.engine,
            "track",
            request,
            |request| self.track_here(request),
            |channel, request| async move { EventsClient::new(channel).track(request).await },
        )
        .await
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
        let mut forwarded = Vec::new();
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
            let mut numbered: Vec<(u64, proto::Event)> = chunk
                .into_iter()
                .map(|event| {
                    index += 1;
                    (index - 1, event)
                })
                .collect();
            if self.engine.cluster().is_some() {
                // A cluster node applies its own customers' events together
                // and sends each of the others to its owner, in stream
                // order.
                let mut own = Vec::with_capacity(numbered.len());
                for (at, event) in numbered {
                    if self.engine.serves(&event.customer_id) {
                        own.push((at, event));
                        continue;
                    }
                    let event_id = event.event_id.clone();
                    let answer =
                        proto::events_server::Events::track(self, Request::new(event)).await;
                    forwarded.push((
                        at,
                        event_id,
                        answer.map(|answer| answer.into_inner().duplicate),
                    ));
                }
                numbered = own;
            }
            let now = shared.clock.now();
            let events = numbered
                .into_iter()
                .map(|(at, event)| {
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
        let mut summary = ingestion.finish().await;
        for (index, event_id, answer) in forwarded {
            match answer {
                Ok(true) => summary.duplicates += 1,
                Ok(false) => summary.accepted += 1,
                Err(status) => summary.reject_forwarded(index, event_id, status.message()),
            }
        }
        Ok(Response::new(convert::track_stream_summary(summary)))
    }
}

impl EventsService {
    async fn track_here(
        &self,
        request: Request<proto::Event>,
    ) -> Result<Response<proto::TrackResponse>, Status> {
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
}
