//! `nudge.v1.Events`: one event, or a client stream of them.

use crate::convert;
use crate::engine::Engine;
use crate::error::ServiceError;
use crate::store::Commit;
use nudge_models::customer::TrackResult;
use nudge_models::profile::Event;
use nudge_proto::v1 as proto;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most rejections listed in a TrackStream summary.
const MAX_LISTED_REJECTIONS: usize = 100;

/// Most events of one stream applied but not yet known to be durable.
const MAX_IN_FLIGHT_EVENTS: usize = 4_096;

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
        // Applied events waiting for their commit: many in flight, so a stream
        // is not one fsync per event; the answer comes when all are durable.
        let mut in_flight: VecDeque<Applied> = VecDeque::new();
        let mut waiting = 0;
        let mut index = 0;
        let mut chunk = Vec::new();
        let mut ended = false;
        while !ended {
            // Wait for one event, then take every event already received.
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
            for applied in self.apply_chunk(&mut chunk, &mut index, &mut summary).await {
                waiting += applied.events.len();
                in_flight.push_back(applied);
            }
            while waiting > MAX_IN_FLIGHT_EVENTS
                && let Some(oldest) = in_flight.pop_front()
            {
                waiting -= oldest.events.len();
                settle(&mut summary, oldest).await;
            }
        }
        for applied in in_flight {
            settle(&mut summary, applied).await;
        }
        Ok(Response::new(summary))
    }
}

/// One customer's events of a chunk: the customer, (index, event id) of each,
/// and the validated events.
type CustomerEvents = (String, Vec<(u64, String)>, Vec<Event>);

/// Events of one customer applied together, waiting for their commit.
#[derive(Debug)]
struct Applied {
    /// (index in the stream, event id, result) in stream order.
    events: Vec<(u64, String, TrackResult)>,
    commit: Commit,
}

impl EventsService {
    /// Validates a chunk of a stream's events and applies them: one message
    /// per customer, in the stream's order, customers in parallel. Invalid
    /// events are counted as rejected at once.
    async fn apply_chunk(
        &self,
        chunk: &mut Vec<proto::Event>,
        index: &mut u64,
        summary: &mut proto::TrackStreamResponse,
    ) -> Vec<Applied> {
        let shared = self.engine.shared();
        let now = shared.clock.now();
        let mut groups: Vec<CustomerEvents> = Vec::new();
        let mut positions: HashMap<String, usize> = HashMap::new();
        for event in chunk.drain(..) {
            let at = *index;
            *index += 1;
            let event_id = event.event_id.clone();
            match convert::event(event, now, &shared.config.limits) {
                Ok((customer_id, event)) => {
                    let position = *positions.entry(customer_id.clone()).or_insert_with(|| {
                        groups.push((customer_id, Vec::new(), Vec::new()));
                        groups.len() - 1
                    });
                    groups[position].1.push((at, event_id));
                    groups[position].2.push(event);
                }
                Err(error) => reject(summary, at, event_id, &error),
            }
        }
        let mut tasks = JoinSet::new();
        for (order, (customer_id, ids, events)) in groups.into_iter().enumerate() {
            let engine = self.engine.clone();
            tasks.spawn(async move {
                let outcome = engine.track_deferred(&customer_id, events).await;
                (order, ids, outcome)
            });
        }
        let mut applied = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((order, ids, outcome)) = joined else {
                continue;
            };
            match outcome {
                Ok((results, commit)) => applied.push((
                    order,
                    Applied {
                        events: ids
                            .into_iter()
                            .zip(results)
                            .map(|((at, event_id), result)| (at, event_id, result))
                            .collect(),
                        commit,
                    },
                )),
                Err(error) => {
                    for (at, event_id) in ids {
                        reject(summary, at, event_id, &error);
                    }
                }
            }
        }
        applied.sort_by_key(|(order, _)| *order);
        applied.into_iter().map(|(_, applied)| applied).collect()
    }
}

/// Counts the events of `applied` once their commit is known.
async fn settle(summary: &mut proto::TrackStreamResponse, applied: Applied) {
    match applied.commit.wait().await {
        Ok(_) => {
            for (_, _, result) in applied.events {
                match result {
                    TrackResult::Duplicate => summary.duplicates += 1,
                    TrackResult::Applied => summary.accepted += 1,
                }
            }
        }
        Err(error) => {
            let error = ServiceError::from(error);
            for (at, event_id, _) in applied.events {
                reject(summary, at, event_id, &error);
            }
        }
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
