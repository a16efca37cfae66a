//! Reading the Redis store's logs back, merged across partitions, and
//! compacting them.
//!
//! Each partition is read in chunks of [`CHUNK`] members through a
//! [`Cursor`]; a heap merges the cursors' heads, so an export holds at most
//! a chunk per partition in memory however long the range: decisions in
//! time order (their members begin with the sortable time), events customer
//! by customer (the customers' set sorts by id) and each customer's in
//! number order.

use super::RedisStore;
use super::client::{Client, redis_error};
use super::keys::{self, Keys};
use super::lanes::{Op, Queued};
use crate::store::records::decode;
use crate::store::{
    Commit, DecisionRecord, Erased, EventRecord, LoggedDecision, OutcomeRecord, StoreError,
    TimeRange,
};
use nudge_models::cluster::Partition;
use nudge_models::time::Timestamp;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot};

/// Members read from a partition at a time.
const CHUNK: usize = 256;

/// One partition's place in a sorted set read in chunks.
struct Cursor {
    /// The sorted set.
    key: String,
    /// The key the partition's commands are routed by.
    route: String,
    /// The next chunk's lower bound (`ZRANGE … BYLEX`).
    next: String,
    /// The upper bound.
    until: String,
    /// Members read and not yet taken.
    buffer: VecDeque<String>,
    /// Whether the set has nothing past the buffer.
    done: bool,
}

impl Cursor {
    fn new(key: String, route: String, from: String, until: String) -> Self {
        Self {
            key,
            route,
            next: from,
            until,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// Reads the next chunk into the buffer.
    async fn fill(&mut self, client: &Client) -> Result<(), StoreError> {
        if self.done {
            return Ok(());
        }
        let mut command = redis::cmd("ZRANGE");
        command
            .arg(&self.key)
            .arg(&self.next)
            .arg(&self.until)
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(CHUNK);
        let value = client.query("export", command, Some(&self.route)).await?;
        let members: Vec<String> =
            redis::from_redis_value(value).map_err(|error| redis_error("export", &error))?;
        self.done = members.len() < CHUNK;
        if let Some(last) = members.last() {
            self.next = format!("({last}");
        }
        self.buffer.extend(members);
        Ok(())
    }
}

/// A cursor per partition over the set `set(prefix)`, filled at once.
fn open_cursors(
    store: &RedisStore,
    set: fn(&str) -> String,
    from: &str,
    until: &str,
) -> Result<Vec<Cursor>, StoreError> {
    let cursors: Vec<Cursor> = store
        .partitions
        .all()
        .map(|partition| {
            let prefix = store.keys.partition(partition);
            Cursor::new(
                set(&prefix),
                Keys::lease(&prefix),
                from.to_owned(),
                until.to_owned(),
            )
        })
        .collect();
    let client = store.client.clone();
    store.client.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, mut cursor) in cursors.into_iter().enumerate() {
            let client = client.clone();
            tasks.spawn(async move {
                cursor.fill(&client).await?;
                Ok::<_, StoreError>((index, cursor))
            });
        }
        let mut filled = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let joined = joined.map_err(|error| StoreError::Redis {
                operation: "export",
                message: error.to_string(),
            })?;
            filled.push(joined?);
        }
        filled.sort_by_key(|(index, _)| *index);
        Ok(filled.into_iter().map(|(_, cursor)| cursor).collect())
    })
}

/// Merges the cursors' members in order, calling `take` with each member
/// and its cursor until it returns false; how many were taken.
fn merge(
    store: &RedisStore,
    mut cursors: Vec<Cursor>,
    take: &mut dyn FnMut(&Cursor, String) -> Result<bool, StoreError>,
) -> Result<u64, StoreError> {
    let mut heads = BinaryHeap::new();
    for (index, cursor) in cursors.iter().enumerate() {
        if let Some(member) = cursor.buffer.front() {
            heads.push(Reverse((member.clone(), index)));
        }
    }
    let mut taken = 0;
    while let Some(Reverse((member, index))) = heads.pop() {
        let cursor = &mut cursors[index];
        cursor.buffer.pop_front();
        if cursor.buffer.is_empty() && !cursor.done {
            let mut refill = std::mem::replace(
                cursor,
                Cursor::new(String::new(), String::new(), String::new(), String::new()),
            );
            let client = store.client.clone();
            let refilled = store.client.block_on(async move {
                let result = refill.fill(&client).await;
                (refill, result)
            });
            *cursor = refilled.0;
            refilled.1?;
        }
        if let Some(next) = cursor.buffer.front() {
            heads.push(Reverse((next.clone(), index)));
        }
        taken += 1;
        if !take(cursor, member)? {
            break;
        }
    }
    Ok(taken)
}

/// Every logged decision in `range`, oldest first, with its outcomes.
pub(super) fn decisions(
    store: &RedisStore,
    range: TimeRange,
    visit: &mut dyn FnMut(LoggedDecision) -> bool,
) -> Result<u64, StoreError> {
    let features = model_features(store)?;
    let cursors = open_cursors(
        store,
        Keys::decisions,
        &keys::lex_from(range.since),
        &keys::lex_before(range.until),
    )?;
    merge(store, cursors, &mut |cursor, member| {
        let prefix = cursor
            .route
            .strip_suffix(":lease")
            .unwrap_or(&cursor.route)
            .to_owned();
        let (record, outcomes) = read_decision(store, &prefix, &cursor.route, &member)?;
        let Some(record) = record else {
            // Compacted or forgotten since the chunk was read.
            return Ok(true);
        };
        let record: DecisionRecord = decode("decision", &record)?;
        let mut outcomes = outcome_records(outcomes.as_deref().unwrap_or_default())?;
        outcomes.sort_by_key(|outcome| outcome.at);
        let feature_names = record
            .model_version
            .as_ref()
            .and_then(|model| features.get(model))
            .cloned()
            .unwrap_or_default();
        Ok(visit(LoggedDecision {
            record,
            feature_names,
            outcomes,
        }))
    })
}

/// A decision's record and outcome frames as stored (either may be gone).
type StoredDecision = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One decision's record and outcome frames.
fn read_decision(
    store: &RedisStore,
    prefix: &str,
    route: &str,
    member: &str,
) -> Result<StoredDecision, StoreError> {
    let mut command = redis::cmd("HMGET");
    command.arg(Keys::records(prefix)).arg(member);
    let record = store.query_blocking("export", command, route.to_owned())?;
    let mut command = redis::cmd("HMGET");
    command.arg(Keys::outcomes(prefix)).arg(member);
    let outcomes = store.query_blocking("export", command, route.to_owned())?;
    let first = |value: redis::Value| -> Result<Option<Vec<u8>>, StoreError> {
        let values: Vec<Option<Vec<u8>>> =
            redis::from_redis_value(value).map_err(|error| redis_error("export", &error))?;
        Ok(values.into_iter().next().flatten())
    };
    Ok((first(record)?, first(outcomes)?))
}

/// The outcome records in a decision's frames (`apply.lua`'s layout: the
/// id's length in 8 hex digits, the id, the record's, the record).
fn outcome_records(mut frames: &[u8]) -> Result<Vec<OutcomeRecord>, StoreError> {
    let damaged = || StoreError::Undecodable {
        what: "outcome frames",
        source: std::sync::Arc::new(std::io::Error::other("a frame's length is out of range")),
    };
    let take = |frames: &mut &[u8]| -> Result<Vec<u8>, StoreError> {
        let length = frames
            .get(..8)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .ok_or_else(damaged)?;
        let field = frames.get(8..8 + length).ok_or_else(damaged)?.to_vec();
        *frames = &frames[8 + length..];
        Ok(field)
    };
    let mut records = Vec::new();
    while !frames.is_empty() {
        let _id = take(&mut frames)?;
        let record = take(&mut frames)?;
        records.push(decode("outcome", &record)?);
    }
    Ok(records)
}

/// Model version → its feature specs, as written with its decisions.
fn model_features(store: &RedisStore) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let prefix = store.keys.shared();
    let mut command = redis::cmd("HGETALL");
    command.arg(Keys::features(&prefix));
    let value = store.query_blocking("export", command, Keys::lease(&prefix))?;
    let stored: HashMap<String, Vec<u8>> =
        redis::from_redis_value(value).map_err(|error| redis_error("export", &error))?;
    stored
        .into_iter()
        .map(|(model, encoded)| Ok((model, decode("model features", &encoded)?)))
        .collect()
}

/// Every logged event applied in `range`, customer by customer, each
/// customer's in number order.
pub(super) fn events(
    store: &RedisStore,
    range: TimeRange,
    visit: &mut dyn FnMut(EventRecord) -> bool,
) -> Result<u64, StoreError> {
    let cursors = open_cursors(store, Keys::event_customers, "-", "+")?;
    let since = range.since.map_or(i64::MIN, Timestamp::millis);
    let until = range.until.map_or(i64::MAX, Timestamp::millis);
    let mut visited = 0;
    let mut stopped = false;
    merge(store, cursors, &mut |cursor, customer| {
        let prefix = cursor
            .route
            .strip_suffix(":lease")
            .unwrap_or(&cursor.route)
            .to_owned();
        let mut command = redis::cmd("HGETALL");
        command.arg(Keys::customer_events(&prefix, &customer));
        let value = store.query_blocking("export", command, cursor.route.clone())?;
        let mut stored: Vec<(String, Vec<u8>)> =
            redis::from_redis_value(value).map_err(|error| redis_error("export", &error))?;
        stored.sort();
        for (_, value) in stored {
            let applied = keys::time_of(&value).map_or(i64::MIN, Timestamp::millis);
            if applied < since || applied >= until {
                continue;
            }
            let record: EventRecord = decode("event", value.get(20..).unwrap_or_default())?;
            visited += 1;
            if !visit(record) {
                stopped = true;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    let _ = stopped;
    Ok(visited)
}

/// Deletes at most `max` decisions made before `before` (oldest first, of
/// the partitions this node holds) with their outcomes, and at most `max`
/// events applied before it, through the partitions' lanes.
pub(super) fn compact(store: &RedisStore, before: Timestamp, max: usize) -> Commit {
    let (reply, receiver) = oneshot::channel();
    let client = store.client.clone();
    let lanes = store.lanes.clone();
    let owned: Vec<(Partition, String)> = store
        .owned()
        .into_iter()
        .map(|partition| (partition, store.keys.partition(partition)))
        .collect();
    store.client.runtime().spawn(async move {
        let result = compact_owned(&client, &lanes, &owned, before, max).await;
        let _ = reply.send(result);
    });
    Commit::pending(receiver)
}

async fn compact_owned(
    client: &Client,
    lanes: &[mpsc::UnboundedSender<Queued>],
    owned: &[(Partition, String)],
    before: Timestamp,
    max: usize,
) -> Result<Erased, StoreError> {
    let until = keys::lex_before(Some(before));
    let mut decisions = Vec::new();
    let mut events = Vec::new();
    for (partition, prefix) in owned {
        let route = Keys::lease(prefix);
        for (set, found) in [
            (Keys::decisions(prefix), &mut decisions),
            (Keys::event_times(prefix), &mut events),
        ] {
            let mut command = redis::cmd("ZRANGE");
            command
                .arg(set)
                .arg("-")
                .arg(&until)
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(max);
            let value = client.query("scan", command, Some(&route)).await?;
            let members: Vec<String> =
                redis::from_redis_value(value).map_err(|error| redis_error("scan", &error))?;
            found.extend(members.into_iter().map(|member| (member, *partition)));
        }
    }
    let mut erased = Erased::default();
    for (found, compact) in [
        (decisions, Op::CompactDecisions as fn(Vec<String>) -> Op),
        (events, Op::CompactEvents as fn(Vec<String>) -> Op),
    ] {
        let mut found = found;
        found.sort();
        found.truncate(max);
        let mut by_partition: HashMap<Partition, Vec<String>> = HashMap::new();
        for (member, partition) in found {
            by_partition.entry(partition).or_default().push(member);
        }
        let mut commit = Commit::none();
        for (partition, members) in by_partition {
            let (reply, receiver) = oneshot::channel();
            let queued = Queued {
                ops: vec![compact(members)],
                reply,
                after: None,
                token: None,
                joined: Vec::new(),
            };
            if lanes[usize::from(partition.0)].send(queued).is_err() {
                return Err(StoreError::Closed);
            }
            commit = commit.and(Commit::pending(receiver));
        }
        erased = erased.merge(commit.wait().await?);
    }
    Ok(erased)
}
