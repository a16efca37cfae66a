//! Ingesting a stream of events ([`Ingestion`]): each chunk of events already
//! received is grouped by customer in stream order and applied as one message
//! per customer, customers in parallel; commits stay in flight (bounded) so a
//! stream is not one fsync per event, and the summary is final once every
//! commit has resolved. A group whose task fails (a panic) is counted and
//! reported as rejected events with the reason, never dropped.

use super::Engine;
use crate::error::ServiceError;
use crate::stats::bump;
use crate::store::Commit;
use nudge_models::customer::TrackResult;
use nudge_models::profile::Event;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Most events of one stream applied but not yet known to be durable.
const MAX_IN_FLIGHT_EVENTS: usize = 4_096;

/// Most rejections listed in a summary (all are counted).
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// One event of a stream, as the adapter read it: its position, its id, and
/// the validated event of a customer or why it is invalid.
pub type StreamEvent = (u64, String, Result<(String, Event), ServiceError>);

/// A rejected event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its position in the stream, from 0.
    pub index: u64,
    /// Its event id.
    pub event_id: String,
    /// Why it was rejected.
    pub message: String,
}

/// What a stream's events came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Events applied and durable.
    pub accepted: u64,
    /// Events acknowledged as duplicates of earlier ones.
    pub duplicates: u64,
    /// Events refused.
    pub rejected: u64,
    /// The first [`MAX_LISTED_REJECTIONS`] rejections.
    pub rejections: Vec<Rejection>,
}

impl IngestSummary {
    fn reject(&mut self, index: u64, event_id: String, error: &ServiceError) {
        self.reject_forwarded(index, event_id, &error.to_string());
    }

    /// Counts the event at `index` refused (by the node it was forwarded
    /// to, in a cluster) with `message`.
    pub fn reject_forwarded(&mut self, index: u64, event_id: String, message: &str) {
        self.rejected += 1;
        if self.rejections.len() < MAX_LISTED_REJECTIONS {
            self.rejections.push(Rejection {
                index,
                event_id,
                message: message.to_owned(),
            });
        }
    }
}

/// Events of one customer applied together, waiting for their commit.
#[derive(Debug)]
struct Applied {
    /// (index in the stream, event id, result) in stream order.
    events: Vec<(u64, String, TrackResult)>,
    commit: Commit,
}

/// One customer's events of a chunk: (index, event id) of each, and the
/// events.
#[derive(Debug)]
struct Group {
    customer_id: String,
    ids: Vec<(u64, String)>,
    events: Vec<Event>,
}

/// The ingestion of one stream of events.
#[derive(Debug)]
pub struct Ingestion {
    engine: Arc<Engine>,
    in_flight: VecDeque<Applied>,
    waiting: usize,
    summary: IngestSummary,
}

impl Engine {
    /// Starts ingesting a stream of events.
    pub fn ingest(self: &Arc<Self>) -> Ingestion {
        Ingestion {
            engine: self.clone(),
            in_flight: VecDeque::new(),
            waiting: 0,
            summary: IngestSummary::default(),
        }
    }
}

impl Ingestion {
    /// Applies a chunk of the stream: invalid events are rejected at once,
    /// the others are applied one message per customer, in stream order,
    /// customers in parallel. Waits for the oldest commits when too many
    /// events are in flight.
    pub async fn apply(&mut self, chunk: Vec<StreamEvent>) {
        let groups = group(chunk, &mut self.summary);
        let engine = self.engine.clone();
        let (applied, failed) =
            apply_groups(groups, &mut self.summary, move |customer_id, events| {
                let engine = engine.clone();
                async move { engine.track_deferred(&customer_id, events).await }
            })
            .await;
        for _ in 0..failed {
            bump(&self.engine.shared().stats.rejected);
        }
        for applied in applied {
            self.waiting += applied.events.len();
            self.in_flight.push_back(applied);
        }
        while self.waiting > MAX_IN_FLIGHT_EVENTS
            && let Some(oldest) = self.in_flight.pop_front()
        {
            self.waiting -= oldest.events.len();
            settle(&mut self.summary, oldest).await;
        }
    }

    /// Waits for every commit still in flight; the stream's summary.
    pub async fn finish(mut self) -> IngestSummary {
        for applied in std::mem::take(&mut self.in_flight) {
            settle(&mut self.summary, applied).await;
        }
        self.summary
    }
}

/// Words every rejection of a failed group carries.
const PANIC_MARK: &str = "applying this customer's events failed";

/// Groups the valid events of a chunk by customer, in stream order; rejects
/// the invalid ones.
fn group(chunk: Vec<StreamEvent>, summary: &mut IngestSummary) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (index, event_id, event) in chunk {
        match event {
            Ok((customer_id, event)) => {
                let position = *positions.entry(customer_id.clone()).or_insert_with(|| {
                    groups.push(Group {
                        customer_id,
                        ids: Vec::new(),
                        events: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[position].ids.push((index, event_id));
                groups[position].events.push(event);
            }
            Err(error) => summary.reject(index, event_id, &error),
        }
    }
    groups
}

/// Applies each group with `apply`, concurrently; the applied groups in the
/// chunk's order, and how many groups' tasks failed (panicked). A group that
/// fails, or whose task panics, is rejected event by event with the reason.
async fn apply_groups<F, Fut>(
    groups: Vec<Group>,
    summary: &mut IngestSummary,
    apply: F,
) -> (Vec<Applied>, usize)
where
    F: Fn(String, Vec<Event>) -> Fut,
    Fut: Future<Output = Result<(Vec<TrackResult>, Commit), ServiceError>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut ids_by_task = HashMap::new();
    for (order, group) in groups.into_iter().enumerate() {
        let task = tasks.spawn(apply(group.customer_id.clone(), group.events));
        ids_by_task.insert(task.id(), (order, group.customer_id, group.ids));
    }
    let mut applied = Vec::new();
    let mut failed = 0;
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(error) => (error.id(), Err(group_failed(&error))),
        };
        let Some((order, customer_id, ids)) = ids_by_task.remove(&id) else {
            continue;
        };
        match outcome {
            Ok((results, commit)) => applied.push((
                order,
                Applied {
                    events: ids
                        .into_iter()
                        .zip(results)
                        .map(|((index, event_id), result)| (index, event_id, result))
                        .collect(),
                    commit,
                },
            )),
            Err(error) => {
                if matches!(error, ServiceError::TaskFailed { .. }) {
                    failed += 1;
                    tracing::error!(
                        customer = %crate::logging::customer(&customer_id),
                        events = ids.len(),
                        "applying a customer's events of a stream failed; they are rejected"
                    );
                }
                for (index, event_id) in ids {
                    summary.reject(index, event_id, &error);
                }
            }
        }
    }
    applied.sort_by_key(|(order, _)| *order);
    (
        applied.into_iter().map(|(_, applied)| applied).collect(),
        failed,
    )
}

/// The error of a group whose task did not finish.
fn group_failed(error: &tokio::task::JoinError) -> ServiceError {
    ServiceError::TaskFailed {
        task: PANIC_MARK,
        panicked: error.is_panic(),
    }
}

/// Counts the events of `applied` once their commit is known.
async fn settle(summary: &mut IngestSummary, applied: Applied) {
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
            for (index, event_id, _) in applied.events {
                summary.reject(index, event_id, &error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use nudge_models::time::Timestamp;
    use std::collections::BTreeMap;

    fn event(customer: &str, index: u64) -> StreamEvent {
        let id = format!("{customer}-{index}");
        let event = Event {
            event_id: id.clone(),
            name: "login".to_owned(),
            timestamp: Timestamp::from_millis(0),
            properties: BTreeMap::new(),
        };
        (index, id, Ok((customer.to_owned(), event)))
    }

    #[tokio::test]
    async fn a_panicked_group_is_rejected_with_the_reason_and_the_others_apply() {
        let chunk = vec![
            event("alice", 0),
            event("bob", 1),
            event("alice", 2),
            (
                3,
                "bad".to_owned(),
                Err(ServiceError::invalid("event.name", "is empty")),
            ),
        ];
        let mut summary = IngestSummary::default();
        let groups = group(chunk, &mut summary);
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0].ids,
            [(0, "alice-0".to_owned()), (2, "alice-2".to_owned())]
        );
        let (applied, failed) = apply_groups(groups, &mut summary, |customer, events| async move {
            assert_ne!(customer, "bob", "a failure while applying bob's events");
            Ok((
                vec![TrackResult::Applied; events.len()],
                Commit::done(Ok(crate::store::Erased::default())),
            ))
        })
        .await;
        assert_eq!(applied.len(), 1, "alice's group applied");
        assert_eq!(failed, 1, "bob's group failed");
        for applied in applied {
            settle(&mut summary, applied).await;
        }
        assert_eq!(summary.accepted, 2);
        assert_eq!(summary.rejected, 2, "bob's event and the invalid one");
        let messages: Vec<&str> = summary
            .rejections
            .iter()
            .map(|rejection| rejection.message.as_str())
            .collect();
        assert!(
            messages.iter().any(|m| m.contains("event.name")),
            "{messages:?}"
        );
        let bob = summary
            .rejections
            .iter()
            .find(|rejection| rejection.event_id == "bob-1")
            .unwrap();
        assert!(bob.message.contains(PANIC_MARK), "{}", bob.message);
        assert!(bob.message.contains("panicked"), "{}", bob.message);
    }
}
