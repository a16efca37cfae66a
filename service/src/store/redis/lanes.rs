//! Lanes: the ordered writers of the Redis store, one per partition and one
//! for the keys without an owner (budgets, model features).
//!
//! A lane takes what was queued for its partition in order, sends it as one
//! script call (`apply.lua`: the fencing token checked, then every
//! operation, atomically), waits for the replicas when the durability asks
//! for them, and resolves each write's commit. The next batch is sent only
//! once the previous one is answered, so one customer's writes reach Redis
//! in the order the actor made them, even across a retry; lanes run side by
//! side, so many partitions' writes are in flight at once.

use super::client::{Client, Purpose};
use super::keys::Keys;
use super::leases::Leases;
use crate::store::{Erased, StoreError};
use nudge_models::cluster::{FencingToken, Partition};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most writes one script call carries.
const MAX_BATCH: usize = 256;

/// One operation of a write, as `apply.lua` reads it.
#[derive(Debug)]
pub(super) enum Op {
    /// A customer's state and what it does to the journey timer index.
    State {
        customer: Arc<str>,
        encoded: Arc<[u8]>,
        /// `""` untouched, `"-"` cleared, else the due time (ms).
        timer: String,
    },
    /// Erase a customer's state.
    ForgetState { customer: Arc<str> },
    /// A decision.
    Decision {
        member: String,
        customer: String,
        encoded: Vec<u8>,
    },
    /// An outcome of the decision `member`, applied once per `id`.
    Outcome {
        member: String,
        customer: String,
        id: String,
        encoded: Vec<u8>,
    },
    /// An applied event.
    Event {
        customer: String,
        ordinal: String,
        time: String,
        encoded: Vec<u8>,
    },
    /// Erase a customer's decisions, outcomes and events.
    ForgetLog { customer: Arc<str> },
    /// Delete these decisions with their outcomes.
    CompactDecisions(Vec<String>),
    /// Delete these events (their time members).
    CompactEvents(Vec<String>),
    /// A budget counter change, applied once per `id`; units taken come
    /// out of `node`'s grant.
    Budget {
        action: String,
        delta: i64,
        id: String,
        node: String,
    },
    /// Grant `node` up to `delta` more units of a budget of `limit`
    /// (negative: take back up to `-delta`); returns the units granted,
    /// the units used and the units left free.
    Grant {
        node: String,
        action: String,
        limit: u64,
        delta: i64,
    },
    /// Read `node`'s grants (returns action and units pairs).
    ReadGrants { node: String },
    /// A model version's feature specs.
    Features { model: String, encoded: Vec<u8> },
    /// Read the budget counters (returns them, field and value pairs).
    ReadBudgets,
}

impl Op {
    /// Appends the operation's code and arguments.
    fn push(&self, args: &mut Vec<Vec<u8>>) {
        let mut put = |value: &[u8]| args.push(value.to_vec());
        match self {
            Op::State {
                customer,
                encoded,
                timer,
            } => {
                put(b"S");
                put(customer.as_bytes());
                put(encoded);
                put(timer.as_bytes());
            }
            Op::ForgetState { customer } => {
                put(b"F");
                put(customer.as_bytes());
            }
            Op::Decision {
                member,
                customer,
                encoded,
            } => {
                put(b"D");
                put(member.as_bytes());
                put(customer.as_bytes());
                put(encoded);
            }
            Op::Outcome {
                member,
                customer,
                id,
                encoded,
            } => {
                put(b"O");
                put(member.as_bytes());
                put(customer.as_bytes());
                put(id.as_bytes());
                put(encoded);
            }
            Op::Event {
                customer,
                ordinal,
                time,
                encoded,
            } => {
                put(b"E");
                put(customer.as_bytes());
                put(ordinal.as_bytes());
                put(time.as_bytes());
                put(encoded);
            }
            Op::ForgetLog { customer } => {
                put(b"X");
                put(customer.as_bytes());
            }
            Op::CompactDecisions(members) | Op::CompactEvents(members) => {
                put(if matches!(self, Op::CompactDecisions(_)) {
                    b"C"
                } else {
                    b"K"
                });
                put(members.len().to_string().as_bytes());
                for member in members {
                    put(member.as_bytes());
                }
            }
            Op::Budget {
                action,
                delta,
                id,
                node,
            } => {
                put(b"B");
                put(action.as_bytes());
                put(delta.to_string().as_bytes());
                put(id.as_bytes());
                put(node.as_bytes());
            }
            Op::Grant {
                node,
                action,
                limit,
                delta,
            } => {
                put(b"G");
                put(node.as_bytes());
                put(action.as_bytes());
                put(limit.to_string().as_bytes());
                put(delta.to_string().as_bytes());
            }
            Op::ReadGrants { node } => {
                put(b"H");
                put(node.as_bytes());
            }
            Op::Features { model, encoded } => {
                put(b"M");
                put(model.as_bytes());
                put(encoded);
            }
            Op::ReadBudgets => put(b"R"),
        }
    }

    /// What the operation erased, from the script's `{a, b, c}` for it.
    fn erased(&self, counts: [i64; 3]) -> Erased {
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        match self {
            Op::ForgetState { .. } => Erased {
                state: counts[0] > 0,
                ..Erased::default()
            },
            Op::ForgetLog { .. } | Op::CompactDecisions(_) | Op::CompactEvents(_) => Erased {
                state: false,
                decisions: count(counts[0]),
                outcomes: count(counts[1]),
                events: count(counts[2]),
            },
            _ => Erased::default(),
        }
    }
}

/// What runs after a write: see [`Queued::after`].
pub(super) type After = Box<dyn FnOnce(Option<&[redis::Value]>) + Send + Sync>;

/// One queued write: its operations and whom to tell.
pub(super) struct Queued {
    pub(super) ops: Vec<Op>,
    pub(super) reply: oneshot::Sender<Result<Erased, StoreError>>,
    /// Runs once Redis answered, before the reply and before any later
    /// write is sent, with what the write's operations returned (`None`
    /// when the call failed): the store forgets the write's pending copy,
    /// or a read takes its answer.
    pub(super) after: Option<After>,
    /// The token to send instead of the one this node holds (a stalled
    /// owner's write, simulated by tests); such a write goes alone.
    pub(super) token: Option<FencingToken>,
    /// Writes queued together with this one ([`super::together`]): sent
    /// as one message, so they go in the same script call.
    pub(super) joined: Vec<Queued>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Queued")
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

/// Where a lane writes.
#[derive(Debug, Clone)]
pub(super) struct LaneTarget {
    /// The partition, or `None` for the keys without an owner.
    pub(super) partition: Option<Partition>,
    /// The prefix of its keys.
    pub(super) prefix: String,
}

/// Starts a lane on the client's runtime; what is sent to the returned
/// queue is written in order.
pub(super) fn start(
    client: &Client,
    target: LaneTarget,
    leases: Arc<Leases>,
    failure: Arc<Mutex<Option<StoreError>>>,
) -> mpsc::UnboundedSender<Queued> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let lane = Lane {
        client: client.clone(),
        lease_key: Keys::lease(&target.prefix),
        target,
        leases,
        failure,
    };
    client.runtime().spawn(lane.run(receiver));
    sender
}

struct Lane {
    client: Client,
    target: LaneTarget,
    lease_key: String,
    leases: Arc<Leases>,
    /// The store's: set when Redis could not be reached, cleared when it
    /// answers again.
    failure: Arc<Mutex<Option<StoreError>>>,
}

/// A write and the writes joined to it, in the order queued.
fn unjoin(mut queued: Queued) -> Vec<Queued> {
    let joined = std::mem::take(&mut queued.joined);
    let mut writes = Vec::with_capacity(1 + joined.len());
    writes.push(queued);
    writes.extend(joined);
    writes
}

impl Lane {
    async fn run(self, mut receiver: mpsc::UnboundedReceiver<Queued>) {
        while let Some(first) = receiver.recv().await {
            let mut batch = unjoin(first);
            let mut held_back = None;
            while batch[0].token.is_none() && batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(next) if next.token.is_some() => {
                        held_back = Some(next);
                        break;
                    }
                    Ok(next) => batch.extend(unjoin(next)),
                    Err(_) => break,
                }
            }
            self.write(batch).await;
            if let Some(alone) = held_back {
                self.write(vec![alone]).await;
            }
        }
    }

    /// Applies `batch` and answers each of its writes.
    async fn write(&self, batch: Vec<Queued>) {
        let result = self.apply(&batch).await;
        if batch.iter().any(|queued| !queued.ops.is_empty()) {
            self.note(&result);
        }
        match result {
            Ok(results) => {
                let mut results = results.into_iter();
                for mut queued in batch {
                    let own: Vec<redis::Value> = results.by_ref().take(queued.ops.len()).collect();
                    if let Some(after) = queued.after.take() {
                        after(Some(&own));
                    }
                    let mut erased = Erased::default();
                    for (op, result) in queued.ops.iter().zip(&own) {
                        erased = erased.merge(op.erased(counts(result)));
                    }
                    let _ = queued.reply.send(Ok(erased));
                }
            }
            Err(error) => {
                for mut queued in batch {
                    if let Some(after) = queued.after.take() {
                        after(None);
                    }
                    let _ = queued.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Keeps the store's failure: set by an unreachable Redis, cleared by
    /// an answer (a refused token is this node's problem, not Redis's).
    fn note<T>(&self, result: &Result<T, StoreError>) {
        let Ok(mut failure) = self.failure.lock() else {
            return;
        };
        match result {
            Ok(_) => *failure = None,
            Err(StoreError::Fenced { .. } | StoreError::NotOwner { .. }) => {}
            Err(error) => *failure = Some(error.clone()),
        }
        if matches!(result, Err(StoreError::Fenced { .. })) {
            self.client.metrics().fenced();
        }
    }

    /// One script call with every operation of `batch`; what each
    /// operation returned, in order.
    async fn apply(&self, batch: &[Queued]) -> Result<Vec<redis::Value>, StoreError> {
        // Markers of a flush: nothing to send.
        if batch.iter().all(|queued| queued.ops.is_empty()) {
            return Ok(Vec::new());
        }
        let token = match self.target.partition {
            Some(_) if batch[0].token.is_some() => batch[0]
                .token
                .map_or(String::new(), |token| token.0.to_string()),
            Some(partition) => match self.leases.token(partition) {
                Some(FencingToken(token)) => token.to_string(),
                None => {
                    return Err(StoreError::NotOwner {
                        partition: partition.0,
                    });
                }
            },
            None => String::new(),
        };
        let mut args = Vec::new();
        let mut count = 0;
        for queued in batch {
            for op in &queued.ops {
                op.push(&mut args);
                count += 1;
            }
        }
        let reads_only = batch
            .iter()
            .flat_map(|queued| &queued.ops)
            .all(|op| matches!(op, Op::ReadBudgets | Op::ReadGrants { .. }));
        let results = self
            .client
            .apply(
                if reads_only {
                    Purpose::Read
                } else {
                    Purpose::Write
                },
                &self.lease_key,
                &self.target.prefix,
                &token,
                count,
                args,
            )
            .await
            .map_err(|error| match error {
                StoreError::Fenced { current, token, .. } => StoreError::Fenced {
                    partition: self.target.partition.map_or(0, |partition| partition.0),
                    token,
                    current,
                },
                other => other,
            })?;
        Ok(results)
    }
}

/// The `{a, b, c}` counts an operation returned (zeros for anything else).
fn counts(result: &redis::Value) -> [i64; 3] {
    let mut counts = [0; 3];
    if let redis::Value::Array(items) = result {
        for (slot, item) in counts.iter_mut().zip(items) {
            if let redis::Value::Int(value) = item {
                *slot = *value;
            }
        }
    }
    counts
}
