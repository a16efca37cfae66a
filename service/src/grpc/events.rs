//! `nudge.v1.Events`: one event, or a client stream of them. The stream is
//! read in chunks of the events already received, each validated here and
//! applied by the engine's [`crate::engine::Ingestion`].

use crate::convert;
use crate::engine::Engine;
use nudge_models::customer::TrackResult;
use nudge_proto::v1 as proto;
use nudge_proto::v1::events_client::EventsClient;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most events of a stream applied together (grouped by customer).
const MAX_CHUNK: usize = 1_024;

/// In a cluster: most customers of a stream whose events are being
/// forwarded to their owners at once (each customer's in stream order).
const MAX_FORWARDING: usize = 32;

/// What the owner said to a forwarded event: (index in the stream, event
/// id, whether it was a duplicate or why it was refused).
type ForwardedAnswer = (u64, String, Result<bool, Status>);

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
                // and sends the others to their owners.
                let mut own = Vec::with_capacity(numbered.len());
                let mut others: BTreeMap<String, Vec<(u64, proto::Event)>> = BTreeMap::new();
                for (at, event) in numbered {
                    if self.engine.serves(&event.customer_id) {
                        own.push((at, event));
                    } else {
                        others
                            .entry(event.customer_id.clone())
                            .or_default()
                            .push((at, event));
                    }
                }
                forwarded.extend(self.forward_all(others).await?);
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
        forwarded.sort_unstable_by_key(|(index, _, _)| *index);
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
    /// Sends each customer's events of `by_customer` to its owner as
    /// `Track` calls: one customer's in stream order, up to
    /// [`MAX_FORWARDING`] customers at once.
    async fn forward_all(
        &self,
        by_customer: BTreeMap<String, Vec<(u64, proto::Event)>>,
    ) -> Result<Vec<ForwardedAnswer>, Status> {
        let mut answers = Vec::new();
        let mut running = tokio::task::JoinSet::new();
        for (_, events) in by_customer {
            if running.len() >= MAX_FORWARDING
                && let Some(done) = running.join_next().await
            {
                answers.extend(done.map_err(forwarding_failed)?);
            }
            let service = self.clone();
            running.spawn(async move {
                let mut answers = Vec::with_capacity(events.len());
                for (at, event) in events {
                    let event_id = event.event_id.clone();
                    let answer =
                        proto::events_server::Events::track(&service, Request::new(event)).await;
                    answers.push((
                        at,
                        event_id,
                        answer.map(|answer| answer.into_inner().duplicate),
                    ));
                }
                answers
            });
        }
        while let Some(done) = running.join_next().await {
            answers.extend(done.map_err(forwarding_failed)?);
        }
        Ok(answers)
    }
}

/// A forwarding task that panicked or was cancelled.
fn forwarding_failed(error: tokio::task::JoinError) -> Status {
    Status::internal(format!("forwarding events to their owners failed: {error}"))
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
