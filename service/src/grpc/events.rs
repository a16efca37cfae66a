//! `nudge.v1.Events`: one event, or a client stream of them. The stream is
//! read in chunks of the events already received, each validated here and
//! applied by the engine's [`crate::engine::Ingestion`].

use crate::convert;
use crate::engine::Engine;
use nudge_models::customer::TrackResult;
use nudge_proto::v1 as proto;
use nudge_proto::v1::events_client::EventsClient;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Most events of a stream applied together (grouped by customer).
const MAX_CHUNK: usize = 1_024;

/// In a cluster: most customers of a stream whose events are being
/// forwarded one by one at once (each customer's in stream order).
const MAX_FORWARDING: usize = 32;

/// In a cluster: how long the node a chunk's events were streamed to may
/// take to answer for them.
const FORWARDED_CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a cluster node sends a customer's events of a stream.
enum Way {
    /// Applied here: this node holds the customer.
    Here,
    /// In one stream to the node placement gives the customer (name,
    /// address).
    Stream(String, String),
    /// One routed `Track` at a time.
    OneByOne,
}

/// What the owners said about the events of a stream forwarded to them.
#[derive(Debug, Default)]
struct Forwarded {
    accepted: u64,
    duplicates: u64,
    /// Refused events beyond those listed.
    unlisted: u64,
    /// (index in this stream, event id, why).
    rejections: Vec<(u64, String, String)>,
}

impl Forwarded {
    fn add(&mut self, other: Forwarded) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.unlisted += other.unlisted;
        self.rejections.extend(other.rejections);
    }

    /// Every event of `events` refused with `message`.
    fn refused(events: &[(u64, String)], message: &str) -> Self {
        Self {
            rejections: events
                .iter()
                .map(|(at, event_id)| (*at, event_id.clone(), message.to_owned()))
                .collect(),
            ..Self::default()
        }
    }
}

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
        // A stream forwarded here from another node is not sent on as a
        // stream again: events of customers this node does not hold go
        // one by one, where routing counts the hops.
        let forwarded_here = super::forward::hops(request.metadata()) > 0;
        let authorization = request.metadata().get("authorization").cloned();
        let mut stream = request.into_inner();
        let shared = self.engine.shared();
        let mut ingestion = self.engine.ingest();
        let mut index = 0;
        let mut ended = false;
        let mut forwarded = Forwarded::default();
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
            if let Some(cluster) = self.engine.cluster() {
                // A cluster node applies its own customers' events together
                // and sends the others to their owners: as one stream per
                // owner, or one by one when the owner is not known.
                let mut own = Vec::with_capacity(numbered.len());
                let mut by_owner: BTreeMap<(String, String), Vec<(u64, proto::Event)>> =
                    BTreeMap::new();
                let mut by_customer: BTreeMap<String, Vec<(u64, proto::Event)>> = BTreeMap::new();
                // Decided once per customer, so that a partition moving
                // meanwhile cannot split one customer's events of a chunk
                // between two ways (and their order).
                let mut ways: HashMap<String, Way> = HashMap::new();
                for (at, event) in numbered {
                    let way = ways.entry(event.customer_id.clone()).or_insert_with(|| {
                        if self.engine.serves(&event.customer_id) {
                            Way::Here
                        } else if let Some(owner) = (!forwarded_here)
                            .then(|| cluster.placed_elsewhere(&event.customer_id))
                            .flatten()
                        {
                            Way::Stream(owner.node, owner.address)
                        } else {
                            Way::OneByOne
                        }
                    });
                    match way {
                        Way::Here => own.push((at, event)),
                        Way::Stream(node, address) => by_owner
                            .entry((node.clone(), address.clone()))
                            .or_default()
                            .push((at, event)),
                        Way::OneByOne => by_customer
                            .entry(event.customer_id.clone())
                            .or_default()
                            .push((at, event)),
                    }
                }
                let mut streams = tokio::task::JoinSet::new();
                for ((node, address), events) in by_owner {
                    streams.spawn(stream_to_owner(
                        cluster.clone(),
                        node,
                        address,
                        events,
                        authorization.clone(),
                    ));
                }
                forwarded.add(self.forward_one_by_one(by_customer).await?);
                while let Some(done) = streams.join_next().await {
                    forwarded.add(done.map_err(forwarding_failed)?);
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
        summary.accepted += forwarded.accepted;
        summary.duplicates += forwarded.duplicates;
        forwarded
            .rejections
            .sort_unstable_by_key(|(index, _, _)| *index);
        for (index, event_id, message) in forwarded.rejections {
            summary.reject_forwarded(index, event_id, &message);
        }
        summary.rejected += forwarded.unlisted;
        Ok(Response::new(convert::track_stream_summary(summary)))
    }
}

impl EventsService {
    /// Sends each customer's events of `by_customer` to its owner as
    /// `Track` calls (routed each, as a call to this node would be): one
    /// customer's in stream order, up to [`MAX_FORWARDING`] customers at
    /// once.
    async fn forward_one_by_one(
        &self,
        by_customer: BTreeMap<String, Vec<(u64, proto::Event)>>,
    ) -> Result<Forwarded, Status> {
        let mut answers = Forwarded::default();
        let mut running = tokio::task::JoinSet::new();
        for (_, events) in by_customer {
            if running.len() >= MAX_FORWARDING
                && let Some(done) = running.join_next().await
            {
                answers.add(done.map_err(forwarding_failed)?);
            }
            let service = self.clone();
            running.spawn(async move {
                let mut answers = Forwarded::default();
                for (at, event) in events {
                    let event_id = event.event_id.clone();
                    match proto::events_server::Events::track(&service, Request::new(event)).await {
                        Ok(answer) if answer.get_ref().duplicate => answers.duplicates += 1,
                        Ok(_) => answers.accepted += 1,
                        Err(status) => {
                            answers
                                .rejections
                                .push((at, event_id, status.message().to_owned()));
                        }
                    }
                }
                answers
            });
        }
        while let Some(done) = running.join_next().await {
            answers.add(done.map_err(forwarding_failed)?);
        }
        Ok(answers)
    }
}

/// Streams `events` (with their indexes in this stream) to `node` at
/// `address`, the node placement gives their customers, marked as
/// forwarded; what it said, indexes mapped back to this stream. A node
/// that cannot take them refuses them all, saying why.
async fn stream_to_owner(
    cluster: Arc<crate::cluster::Cluster>,
    node: String,
    address: String,
    events: Vec<(u64, proto::Event)>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> Forwarded {
    let sent: Vec<(u64, String)> = events
        .iter()
        .map(|(at, event)| (*at, event.event_id.clone()))
        .collect();
    let refused = |message: &str| {
        Forwarded::refused(
            &sent,
            &format!(
                "the owner of this customer, node '{node}' at {address}, did not take the event: {message}"
            ),
        )
    };
    let channel = match cluster.channel(&address) {
        Ok(channel) => channel,
        Err(message) => return refused(&message),
    };
    let mut request = Request::new(tokio_stream::iter(
        events.into_iter().map(|(_, event)| event),
    ));
    request.metadata_mut().insert(
        super::forward::HOPS,
        tonic::metadata::MetadataValue::from(1_u32),
    );
    if let Some(authorization) = authorization {
        request
            .metadata_mut()
            .insert("authorization", authorization);
    }
    request.set_timeout(FORWARDED_CHUNK_TIMEOUT);
    let answer = EventsClient::new(channel).track_stream(request).await;
    crate::metrics::forwarded("track_stream", answer.is_ok());
    match answer {
        Ok(answer) => {
            let answer = answer.into_inner();
            let rejections: Vec<(u64, String, String)> = answer
                .rejections
                .into_iter()
                .filter_map(|rejection| {
                    let at = usize::try_from(rejection.index).ok()?;
                    let (index, _) = sent.get(at)?;
                    Some((*index, rejection.event_id, rejection.message))
                })
                .collect();
            Forwarded {
                accepted: answer.accepted,
                duplicates: answer.duplicates,
                unlisted: answer.rejected.saturating_sub(rejections.len() as u64),
                rejections,
            }
        }
        Err(status) => {
            if status.metadata().get(super::forward::OWNER).is_none() {
                cluster.forward_failed(&node, &address, status.message());
            }
            refused(status.message())
        }
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
