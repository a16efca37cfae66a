//! [`RedisStore`]: customer state, the decision and event logs and the
//! budget counters in a Redis Cluster, for running nudge as several nodes
//! (PRODUCT.md §11). It implements [`StateStore`], [`DecisionLog`] and
//! [`BudgetLedger`] and passes the same [`contract`](super::contract).
//!
//! Layout (`keys.rs`): customers fall into a fixed number of partitions
//! ([`Partitions`]); every key of a partition carries its hash tag, so a
//! partition lives in one slot:
//! - `<ns>:{p<n>}:lease` — the partition's lease and fencing token;
//! - `…:state` — customer id → state (the embedded store's encoding);
//! - `…:timers` — customer → earliest journey due time;
//! - `…:dlog`, `…:dec`, `…:out` — decisions in time order, their records,
//!   their outcomes; `…:cd:<customer>` — a customer's decisions, for forget;
//! - `…:ec`, `…:et`, `…:ev:<customer>` — customers with events, events in
//!   the order applied, one customer's events by number;
//! - `<ns>:{shared}:budgets`, `…:features` — the budget counters and the
//!   models' feature specs, owned by no node.
//!
//! Every write goes through its partition's lane (`lanes.rs`): one script
//! call applies everything queued for the partition, atomically, after
//! checking the node's fencing token for it, so a node that lost a
//! partition (paused, partitioned, too slow to renew) never overwrites the
//! new owner's state. A write waits for the durability configured
//! ([`Durability`]). Until then a queued state is what [`StateStore::load`]
//! returns, as in the embedded store.
//!
//! The node holds its partitions' leases ([`Leases`], renewed by a task on
//! the store's runtime); [`RedisStore::open`] takes every partition, for a
//! single node on Redis. A write to a partition the node does not hold
//! fails at once with [`StoreError::NotOwner`].

mod client;
mod export;
mod keys;
mod lanes;
mod leases;

pub use client::{ClientOptions, Durability};

use super::records::{decode, encode};
use super::{
    BudgetChange, BudgetLedger, Commit, DecisionLog, EventRecord, LogEntry, LoggedDecision,
    StateStore, StoreError, StoreFuture, TimeRange, TimerWrite,
};
use client::Client;
use dashmap::DashMap;
use keys::Keys;
use lanes::{LaneTarget, Op, Queued};
use leases::Leases;
use nudge_models::cluster::{FencingToken, Partition, Partitions};
use nudge_models::customer::CustomerState;
use nudge_models::time::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A write and the lane it goes to.
type LaneWrite = (mpsc::UnboundedSender<Queued>, Queued);

thread_local! {
    /// The writes [`together`] holds on this thread.
    static HELD: std::cell::RefCell<Option<Vec<LaneWrite>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f`, holding the writes it queues on this thread until it returns
/// and then sending them one right after the other, so that a lane takes
/// them in one script call: the state, log entries and budget changes of
/// one change, queued one after the other, cost one round trip, not one
/// each. Nothing waits on a held write before `f` returns (its commit is
/// awaited later), so holding delays nothing.
pub fn together<T>(f: impl FnOnce() -> T) -> T {
    struct Release(bool);
    impl Drop for Release {
        fn drop(&mut self) {
            if !self.0 {
                return;
            }
            let held = HELD
                .with(|held| held.borrow_mut().take())
                .unwrap_or_default();
            // One message per lane: the first write with the others of
            // its lane joined, in the order queued.
            let mut messages: Vec<LaneWrite> = Vec::new();
            for (lane, queued) in held {
                match messages
                    .iter_mut()
                    .find(|(sent_to, _)| sent_to.same_channel(&lane))
                {
                    Some((_, first)) => first.joined.push(queued),
                    None => messages.push((lane, queued)),
                }
            }
            for (lane, queued) in messages {
                let _ = lane.send(queued);
            }
        }
    }
    let outermost = HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.is_some() {
            false
        } else {
            *held = Some(Vec::new());
            true
        }
    });
    let _release = Release(outermost);
    f()
}

/// Customer → the number of its newest queued write and that write's
/// encoded state (`None`: a queued forget).
type PendingStates = DashMap<Arc<str>, (u64, Option<Arc<[u8]>>)>;

/// How to open a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The cluster and the durability writes wait for.
    pub client: ClientOptions,
    /// The first part of every key, so several deployments (or tests) can
    /// share a cluster.
    pub namespace: String,
    /// How many partitions customers fall into; fixed for the data's life.
    pub partitions: Partitions,
    /// This node's name in the leases.
    pub node: String,
    /// How long a lease runs unless renewed (renewed every third of it).
    pub lease: Duration,
    /// How long [`RedisStore::open`] waits for partitions another node
    /// holds (e.g. this node before a crash) to be free.
    pub acquire_wait: Duration,
}

/// What asking for leases gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acquisition {
    /// Partitions this node holds with a token new to it (taken, or taken
    /// again after losing it): whatever it knew of them may be stale.
    pub new: Vec<Partition>,
    /// Partitions another node holds.
    pub refused: Vec<Refused>,
}

/// A lease another node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The partition.
    pub partition: Partition,
    /// Its holder.
    pub holder: String,
    /// When the holder's lease ends unless renewed (ms, Redis's clock).
    pub expires_at: i64,
}

/// A live member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// Its node name.
    pub node: String,
    /// Where other nodes forward calls to it (`host:port`).
    pub address: String,
    /// When its registration ends unless renewed (ms, Redis's clock).
    pub until: i64,
    /// What it serves, as it last registered it (a JSON [`Serves`];
    /// empty when it did not say).
    pub serving: String,
}

/// What a node serves, registered with it so that `nudge cluster status`
/// can show nodes that disagree (each node loads its own catalog and model
/// registry).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Serves {
    /// Its catalog's version.
    pub catalog: String,
    /// Its experiment's variants.
    pub variants: Vec<nudge_models::experiment::Variant>,
}

/// One change of this node's grant of a shared budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantChange {
    /// The budgeted action.
    pub action_id: String,
    /// Its budget.
    pub limit: u64,
    /// Units asked for (negative: given back).
    pub delta: i64,
}

/// What the ledger did with a [`GrantChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The budgeted action.
    pub action_id: String,
    /// Units granted (negative: taken back).
    pub units: i64,
    /// Units used across the cluster (this node's pending changes counted).
    pub used: u64,
    /// Units neither used nor granted to any node.
    pub free: u64,
}

/// One budget as the ledger holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetView {
    /// The budgeted action.
    pub action_id: String,
    /// Units used across the cluster.
    pub used: u64,
    /// Units granted to each node and not used yet, by node.
    pub held: Vec<(String, u64)>,
}

/// A partition's lease as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// Who holds (or last held) it.
    pub holder: String,
    /// Its fencing token.
    pub token: FencingToken,
    /// When it ends unless renewed (ms, Redis's clock); past: free.
    pub expires_at: i64,
}

/// The Redis Cluster store.
pub struct RedisStore {
    client: Client,
    keys: Keys,
    partitions: Partitions,
    /// One lane per partition, then the lane of the shared keys.
    lanes: Vec<mpsc::UnboundedSender<Queued>>,
    leases: Arc<Leases>,
    /// Customer → its newest queued state (`None`: a queued forget) and the
    /// write's number, until Redis has it.
    pending_states: Arc<PendingStates>,
    /// Budget changes queued and not yet in Redis.
    pending_budgets: Arc<Mutex<HashMap<String, i64>>>,
    /// Model versions whose feature specs this store wrote.
    written_models: DashMap<String, ()>,
    /// Numbers writes (pending states) and budget changes (their ids).
    sequence: AtomicU64,
    /// Set by a failed round trip, cleared by a successful one: why writes
    /// are refused now.
    failure: Arc<Mutex<Option<StoreError>>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RedisStore")
            .field("client", &self.client)
            .field("partitions", &self.partitions.count())
            .field("node", &self.leases.node())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects, checks the durability, and takes every partition's lease
    /// for this node (waiting up to `acquire_wait` for leases another node
    /// holds), then keeps renewing them. Blocking.
    pub fn open(options: RedisOptions) -> Result<Arc<Self>, StoreError> {
        let store = Self::connect(options.clone())?;
        let all: Vec<Partition> = options.partitions.all().collect();
        let deadline = Instant::now() + options.acquire_wait;
        loop {
            let acquisition = store.acquire(&all)?;
            let Some(refused) = acquisition.refused.into_iter().next() else {
                break;
            };
            if Instant::now() >= deadline {
                return Err(StoreError::Leased {
                    partition: refused.partition.0,
                    holder: refused.holder,
                    expires_at: refused.expires_at,
                });
            }
            std::thread::sleep(Duration::from_millis(100).min(options.lease / 4));
        }
        store.clone().keep_renewing();
        Ok(store)
    }

    /// Connects without taking any lease (a cluster node takes the ones
    /// placement gives it).
    pub fn connect(options: RedisOptions) -> Result<Arc<Self>, StoreError> {
        let client = Client::connect(options.client.clone())?;
        let keys = Keys::new(&options.namespace);
        let leases = Arc::new(Leases::new(
            &options.node,
            options.lease,
            options.partitions,
        ));
        let failure = Arc::new(Mutex::new(None));
        let mut lanes: Vec<_> = options
            .partitions
            .all()
            .map(|partition| {
                let target = LaneTarget {
                    partition: Some(partition),
                    prefix: keys.partition(partition),
                };
                lanes::start(&client, target, leases.clone(), failure.clone())
            })
            .collect();
        let shared = LaneTarget {
            partition: None,
            prefix: keys.shared(),
        };
        lanes.push(lanes::start(
            &client,
            shared,
            leases.clone(),
            failure.clone(),
        ));
        Ok(Arc::new(Self {
            client,
            keys,
            partitions: options.partitions,
            lanes,
            leases,
            pending_states: Arc::new(DashMap::new()),
            pending_budgets: Arc::new(Mutex::new(HashMap::new())),
            written_models: DashMap::new(),
            sequence: AtomicU64::new(0),
            failure,
        }))
    }

    /// Asks for (or renews) `partitions`' leases; the ones another node
    /// holds, with their holder and when their lease ends (ms, Redis's
    /// clock). The partitions taken with a token new to this node are
    /// written with at once. Blocking.
    pub fn acquire(&self, partitions: &[Partition]) -> Result<Acquisition, StoreError> {
        let client = self.client.clone();
        let leases = self.leases.clone();
        let keys = self.keys.clone();
        let partitions = partitions.to_vec();
        let acquisition = self
            .client
            .block_on(async move { acquire(&client, &leases, &keys, &partitions).await })?;
        // Nothing of these partitions is known here yet: written at once.
        self.activate(&acquisition.new);
        Ok(acquisition)
    }

    /// [`RedisStore::acquire`] from async code: runs on the store's runtime
    /// without blocking the caller's. A cluster node may have actors of a
    /// partition left from before another node held it, so a token new to
    /// it stays pending: nothing is written with it until the node has
    /// dropped them and [`RedisStore::activate_tokens`].
    pub async fn acquire_now(&self, partitions: &[Partition]) -> Result<Acquisition, StoreError> {
        let client = self.client.clone();
        let leases = self.leases.clone();
        let keys = self.keys.clone();
        let partitions = partitions.to_vec();
        self.client
            .runtime()
            .spawn(async move { acquire(&client, &leases, &keys, &partitions).await })
            .await
            .map_err(|error| StoreError::Redis {
                operation: "lease",
                message: error.to_string(),
            })?
    }

    /// Gives up `partitions`' leases (their tokens stay, so the next holder's
    /// are larger). Blocking.
    pub fn release(&self, partitions: &[Partition]) -> Result<(), StoreError> {
        let client = self.client.clone();
        let leases = self.leases.clone();
        let keys = self.keys.clone();
        let partitions = partitions.to_vec();
        self.client.block_on(async move {
            for partition in partitions {
                let Some(FencingToken(token)) = leases.token(partition) else {
                    continue;
                };
                leases.drop_partition(partition);
                let lease_key = Keys::lease(&keys.partition(partition));
                client
                    .lease(&lease_key, "release", leases.node(), token)
                    .await?;
                client
                    .metrics()
                    .lease_changed("released", leases.owned().len());
            }
            Ok(())
        })
    }

    /// The partitions this node holds now.
    pub fn owned(&self) -> Vec<Partition> {
        self.leases.owned()
    }

    /// The partition of `customer_id`.
    pub fn partition_of(&self, customer_id: &str) -> Partition {
        self.partitions.of(customer_id)
    }

    /// The fencing token this node writes `partition` with, while it holds
    /// it.
    pub fn token(&self, partition: Partition) -> Option<FencingToken> {
        self.leases.token(partition)
    }

    /// Queues `state` for `customer_id` carrying `token`, whatever this node
    /// holds now: the write of a node that read its token, stalled (a
    /// pause, a partition) past its lease, and then sent it. Redis refuses
    /// it unless `token` is still the partition's current one. For the
    /// tests of the fencing; the service never calls it.
    #[doc(hidden)]
    pub fn write_stalled(
        &self,
        customer_id: &Arc<str>,
        state: &CustomerState,
        token: FencingToken,
    ) -> Commit {
        let encoded: Arc<[u8]> = match encode(state) {
            Ok(encoded) => encoded.into(),
            Err(error) => return Commit::done(Err(error)),
        };
        let (reply, receiver) = oneshot::channel();
        let queued = Queued {
            ops: vec![Op::State {
                customer: customer_id.clone(),
                encoded,
                timer: String::new(),
            }],
            reply,
            after: None,
            token: Some(token),
            joined: Vec::new(),
        };
        if self
            .lane(Some(self.partitions.of(customer_id)))
            .send(queued)
            .is_err()
        {
            return Commit::done(Err(StoreError::Closed));
        }
        Commit::pending(receiver)
    }

    /// Registers (or renews) this node at `address` for `ttl` in the
    /// cluster's membership; the live members, this node among them, in
    /// node order. Blocking.
    pub fn heartbeat(
        &self,
        address: &str,
        ttl: Duration,
        serves: &Serves,
    ) -> Result<Vec<Member>, StoreError> {
        self.members("join", address, ttl, serves)
    }

    /// [`RedisStore::heartbeat`] for a node starting: whatever budget
    /// units an earlier run of the same node held go back to the ledger.
    /// Blocking.
    pub fn register(
        &self,
        address: &str,
        ttl: Duration,
        serves: &Serves,
    ) -> Result<Vec<Member>, StoreError> {
        self.members("register", address, ttl, serves)
    }

    /// Takes this node out of the membership at once, giving back the
    /// budget units granted to it; the members left. Blocking.
    pub fn leave(&self) -> Result<Vec<Member>, StoreError> {
        self.members("leave", "", Duration::ZERO, &Serves::default())
    }

    /// Replaces the connections to Redis with new ones, read afresh from
    /// the cluster: whoever sees calls keep failing (a heartbeat, a probe)
    /// asks for it, since after a failover a connection may keep sending
    /// a slot's commands where nothing answers.
    pub async fn reconnect(&self) -> Result<(), StoreError> {
        let client = self.client.clone();
        self.client
            .runtime()
            .spawn(async move { client.reconnect().await })
            .await
            .map_err(|error| StoreError::Redis {
                operation: "connect",
                message: error.to_string(),
            })?
    }

    /// Whether this node held `partition` last, as far as it knows: it
    /// holds it, or its lease ran out without Redis answering a renewal.
    pub fn held_last(&self, partition: Partition) -> bool {
        self.leases.recorded_as_held(partition)
    }

    /// Refuses writes from now until a probe reaches Redis again
    /// ([`StateStore::probe`]): Redis failed a call outside the write
    /// lanes (a heartbeat), so writes would fail too.
    pub fn unreachable(&self, error: StoreError) {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(error);
        }
    }

    /// The live members. Blocking.
    pub fn members_now(&self) -> Result<Vec<Member>, StoreError> {
        self.members("list", "", Duration::ZERO, &Serves::default())
    }

    fn members(
        &self,
        operation: &'static str,
        address: &str,
        ttl: Duration,
        serves: &Serves,
    ) -> Result<Vec<Member>, StoreError> {
        let client = self.client.clone();
        let shared = self.keys.shared();
        let [set, addresses, serving] = Keys::members(&shared);
        let node = self.leases.node().to_owned();
        let registers = client::Registration {
            address: address.to_owned(),
            ttl_ms: ttl.as_millis() as u64,
            serving: serde_json::to_string(serves).unwrap_or_default(),
        };
        let mut members = self.client.block_on(async move {
            client
                .members(
                    [&set, &addresses, &serving],
                    &shared,
                    operation,
                    &node,
                    &registers,
                )
                .await
        })?;
        members.sort();
        Ok(members
            .into_iter()
            .map(|(node, address, until, serving)| Member {
                node,
                address,
                until,
                serving,
            })
            .collect())
    }

    /// Changes this node's grants of shared budgets (see
    /// [`nudge_models::budget`]): for each change, up to `delta` more units
    /// (never past the limit less the units used and those granted to any
    /// node) or, for a negative `delta`, up to `-delta` units given back.
    /// One round trip, in order with the budget changes queued before.
    pub async fn change_grants(
        &self,
        changes: Vec<GrantChange>,
    ) -> Result<Vec<Granted>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let node = self.leases.node().to_owned();
        let ops = changes
            .iter()
            .map(|change| Op::Grant {
                node: node.clone(),
                action: change.action_id.clone(),
                limit: change.limit,
                delta: change.delta,
            })
            .collect();
        let (sender, receiver) = oneshot::channel();
        let pending = self.pending_budgets.clone();
        let after: lanes::After = Box::new(move |results| {
            let Some(results) = results else {
                return;
            };
            // The units used as of the changes queued before, plus the
            // ones still pending (queued after), as `load` counts them.
            let pending = pending
                .lock()
                .map(|pending| pending.clone())
                .unwrap_or_default();
            let granted: Option<Vec<Granted>> = changes
                .into_iter()
                .zip(results)
                .map(|(change, result)| {
                    let [units, used, free]: [i64; 3] =
                        redis::from_redis_value::<Vec<i64>>(result.clone())
                            .ok()?
                            .try_into()
                            .ok()?;
                    let used = used + pending.get(&change.action_id).copied().unwrap_or(0);
                    Some(Granted {
                        action_id: change.action_id,
                        units,
                        used: u64::try_from(used).unwrap_or(0),
                        free: u64::try_from(free).unwrap_or(0),
                    })
                })
                .collect();
            if let Some(granted) = granted {
                let _ = sender.send(granted);
            }
        });
        let commit = self.queue(None, ops, Some(after));
        commit.wait().await?;
        receiver.await.map_err(|_| StoreError::Redis {
            operation: "grant",
            message: "the ledger's answer to a grant could not be read".to_owned(),
        })
    }

    /// Every budget's units used and the units each of `nodes` holds, as
    /// the ledger has them. Blocking.
    pub fn budgets(&self, nodes: &[String]) -> Result<Vec<BudgetView>, StoreError> {
        let mut ops = vec![Op::ReadBudgets];
        ops.extend(
            nodes
                .iter()
                .map(|node| Op::ReadGrants { node: node.clone() }),
        );
        let (sender, receiver) = oneshot::channel();
        let names = nodes.to_vec();
        let after: lanes::After = Box::new(move |results| {
            let Some(results) = results else {
                return;
            };
            let read = |value: &redis::Value| -> Option<HashMap<String, i64>> {
                redis::from_redis_value(value.clone()).ok()
            };
            let Some(used) = results.first().and_then(read) else {
                return;
            };
            let mut budgets: BTreeMap<String, BudgetView> = used
                .into_iter()
                .map(|(action, used)| {
                    (
                        action.clone(),
                        BudgetView {
                            action_id: action,
                            used: u64::try_from(used).unwrap_or(0),
                            held: Vec::new(),
                        },
                    )
                })
                .collect();
            for (node, grants) in names.iter().zip(results.iter().skip(1)) {
                let Some(grants) = read(grants) else {
                    return;
                };
                for (action, units) in grants {
                    budgets
                        .entry(action.clone())
                        .or_insert_with(|| BudgetView {
                            action_id: action,
                            ..BudgetView::default()
                        })
                        .held
                        .push((node.clone(), u64::try_from(units).unwrap_or(0)));
                }
            }
            let _ = sender.send(budgets.into_values().collect());
        });
        let commit = self.queue(None, ops, Some(after));
        self.client.block_on(async move {
            commit.wait().await?;
            receiver.await.map_err(|_| StoreError::Redis {
                operation: "budgets",
                message: "the budget counters could not be read".to_owned(),
            })
        })
    }

    /// The tokens of `partitions` new to this node and not written with
    /// yet ([`RedisStore::acquire_now`] leaves them pending).
    pub fn pending_tokens(&self, partitions: &[Partition]) -> Vec<(Partition, FencingToken)> {
        partitions
            .iter()
            .filter_map(|&partition| {
                self.leases
                    .pending(partition)
                    .map(|token| (partition, token))
            })
            .collect()
    }

    /// Writes to each partition carry its pending token from now on, if it
    /// is still the one pending (the caller dropped what it knew of the
    /// partition meanwhile).
    pub fn activate_tokens(&self, tokens: &[(Partition, FencingToken)]) {
        for &(partition, token) in tokens {
            self.leases.activate(partition, token);
        }
    }

    fn activate(&self, partitions: &[Partition]) {
        let tokens = self.pending_tokens(partitions);
        self.activate_tokens(&tokens);
    }

    /// Every partition's lease as Redis holds it (`None`: never leased).
    /// Blocking.
    pub fn leases(&self) -> Result<Vec<Option<LeaseView>>, StoreError> {
        self.every_partition(
            "scan",
            |prefix| {
                let mut command = redis::cmd("HMGET");
                command
                    .arg(Keys::lease(prefix))
                    .arg("holder")
                    .arg("token")
                    .arg("expires");
                command
            },
            |value| {
                let (holder, token, expires): (Option<String>, Option<u64>, Option<i64>) =
                    redis::from_redis_value(value)
                        .map_err(|error| client::redis_error("scan", &error))?;
                Ok(holder.map(|holder| LeaseView {
                    holder,
                    token: FencingToken(token.unwrap_or(0)),
                    expires_at: expires.unwrap_or(0),
                }))
            },
        )
    }

    /// Waits until every write queued for `partition` so far has been
    /// answered. Blocking.
    pub fn flush_partition(&self, partition: Partition) -> Result<(), StoreError> {
        let (reply, receiver) = oneshot::channel();
        let _ = self.lane(Some(partition)).send(Queued {
            ops: Vec::new(),
            reply,
            after: None,
            token: None,
            joined: Vec::new(),
        });
        self.client
            .block_on(async move { Commit::pending(receiver).wait().await.map(|_| ()) })
    }

    /// The customers of `partitions` with a journey run in progress and
    /// when their earliest run is due. Blocking.
    pub fn journey_timers_of(
        &self,
        partitions: &[Partition],
    ) -> Result<Vec<(Arc<str>, Timestamp)>, StoreError> {
        let mut timers = Vec::new();
        for &partition in partitions {
            let prefix = self.keys.partition(partition);
            let mut command = redis::cmd("ZRANGE");
            command
                .arg(Keys::timers(&prefix))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES");
            let value = self.query_blocking("scan", command, Keys::lease(&prefix))?;
            let due: Vec<(String, f64)> = redis::from_redis_value(value)
                .map_err(|error| client::redis_error("scan", &error))?;
            timers.extend(
                due.into_iter().map(|(customer, due)| {
                    (Arc::from(customer), Timestamp::from_millis(due as i64))
                }),
            );
        }
        Ok(timers)
    }

    /// Round trips to Redis so far, by operation.
    pub fn round_trips(&self) -> Vec<(&'static str, u64)> {
        self.client.metrics().round_trips()
    }

    /// Renews the held leases every third of the lease time, for as long as
    /// the store lives.
    fn keep_renewing(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        let every = self.leases.ttl() / 3;
        self.client.runtime().spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(store) = weak.upgrade() else {
                    return;
                };
                let held: Vec<Partition> = store
                    .leases
                    .recorded()
                    .into_iter()
                    .map(|(partition, _)| partition)
                    .collect();
                match acquire(&store.client, &store.leases, &store.keys, &held).await {
                    // This node is the only writer: taken again, written at
                    // once.
                    Ok(renewed) => store.activate(&renewed.new),
                    Err(error) => tracing::warn!(%error, "renewing the partition leases failed"),
                }
            }
        });
    }

    fn lane(&self, partition: Option<Partition>) -> &mpsc::UnboundedSender<Queued> {
        let index = partition.map_or(self.lanes.len() - 1, |partition| usize::from(partition.0));
        &self.lanes[index.min(self.lanes.len() - 1)]
    }

    /// Queues `ops` on the lane of `partition`; `after` runs once Redis
    /// answered, before the commit resolves.
    fn queue(
        &self,
        partition: Option<Partition>,
        ops: Vec<Op>,
        after: Option<lanes::After>,
    ) -> Commit {
        let (reply, receiver) = oneshot::channel();
        let queued = Queued {
            ops,
            reply,
            after,
            token: None,
            joined: Vec::new(),
        };
        let lane = self.lane(partition);
        let queued = HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(writes) => {
                writes.push((lane.clone(), queued));
                None
            }
            None => Some(queued),
        });
        if let Some(queued) = queued
            && lane.send(queued).is_err()
        {
            return Commit::done(Err(StoreError::Closed));
        }
        // A held write whose lane has closed by the time it is sent
        // resolves as closed: its reply is dropped unanswered.
        Commit::pending(receiver)
    }

    /// Queues a state (or, for `None`, its erasure) with the op that writes
    /// it, visible to [`StateStore::load`] until Redis has it.
    fn queue_state(&self, customer_id: &Arc<str>, encoded: Option<Arc<[u8]>>, op: Op) -> Commit {
        let number = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.pending_states
            .insert(customer_id.clone(), (number, encoded));
        let pending = self.pending_states.clone();
        let customer = customer_id.clone();
        let after: lanes::After = Box::new(move |_| {
            pending.remove_if(&customer, |_, (queued, _)| *queued == number);
        });
        self.queue(Some(self.partitions.of(customer_id)), vec![op], Some(after))
    }

    fn failing(&self) -> Result<(), StoreError> {
        match self.failure.lock() {
            Ok(failure) => failure.clone().map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }

    /// Waits until every lane answered what was queued before. Blocking.
    fn drain(&self) -> Result<(), StoreError> {
        let commits: Vec<Commit> = self
            .lanes
            .iter()
            .map(|lane| {
                let (reply, receiver) = oneshot::channel();
                let _ = lane.send(Queued {
                    ops: Vec::new(),
                    reply,
                    after: None,
                    token: None,
                    joined: Vec::new(),
                });
                Commit::pending(receiver)
            })
            .collect();
        self.client.block_on(async move {
            for commit in commits {
                commit.wait().await?;
            }
            Ok(())
        })
    }

    /// A query on the store's runtime from a blocking caller.
    fn query_blocking(
        &self,
        operation: &'static str,
        command: redis::Cmd,
        key: String,
    ) -> Result<redis::Value, StoreError> {
        let client = self.client.clone();
        self.client
            .block_on(async move { client.query(operation, command, Some(&key)).await })
    }

    /// Runs `query` for every partition at once on the store's runtime.
    fn every_partition<T: Send + 'static>(
        &self,
        operation: &'static str,
        query: impl Fn(&str) -> redis::Cmd,
        read: fn(redis::Value) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let requests: Vec<(redis::Cmd, String)> = self
            .partitions
            .all()
            .map(|partition| {
                let prefix = self.keys.partition(partition);
                (query(&prefix), Keys::lease(&prefix))
            })
            .collect();
        let client = self.client.clone();
        self.client.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (index, (command, key)) in requests.into_iter().enumerate() {
                let client = client.clone();
                tasks.spawn(async move {
                    let value = client.query(operation, command, Some(&key)).await?;
                    Ok::<_, StoreError>((index, read(value)?))
                });
            }
            let mut results = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                let joined = joined.map_err(|error| StoreError::Redis {
                    operation,
                    message: error.to_string(),
                })?;
                results.push(joined?);
            }
            results.sort_by_key(|(index, _)| *index);
            Ok(results.into_iter().map(|(_, value)| value).collect())
        })
    }
}

/// Asks for (or renews) `partitions`' leases at once.
async fn acquire(
    client: &Client,
    leases: &Arc<Leases>,
    keys: &Keys,
    partitions: &[Partition],
) -> Result<Acquisition, StoreError> {
    let mut tasks = tokio::task::JoinSet::new();
    for &partition in partitions {
        let client = client.clone();
        let lease_key = Keys::lease(&keys.partition(partition));
        let node = leases.node().to_owned();
        let ttl = leases.ttl().as_millis() as u64;
        let recorded = leases.recorded_token(partition).to_string();
        tasks.spawn(async move {
            let asked = Instant::now();
            let answer = match client.lease(&lease_key, "acquire", &node, ttl).await {
                // A token new to this node is used only once the replicas
                // the durability asks for have it: a failover that lost it
                // would give the same token to the next holder too.
                Ok((true, token, _)) if token != recorded && client.waits_for_replicas() => {
                    match client.lease_replicated(&lease_key, &node, ttl).await {
                        Ok((true, again, expires)) if again == token => Ok((true, token, expires)),
                        Ok((true, again, _)) => Err(StoreError::Redis {
                            operation: "lease",
                            message: format!(
                                "partition {}'s lease changed from token {token} to {again} while its replicas were waited for",
                                partition.0
                            ),
                        }),
                        other => other,
                    }
                }
                answer => answer,
            };
            (partition, asked, answer)
        });
    }
    let mut acquisition = Acquisition::default();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((partition, asked, answer)) = joined else {
            continue;
        };
        match answer {
            Ok((true, token, _)) => {
                let token = FencingToken(token.parse().unwrap_or(0));
                if leases.hold(partition, token, asked) {
                    client
                        .metrics()
                        .lease_changed("acquired", leases.owned().len());
                    acquisition.new.push(partition);
                }
            }
            Ok((false, holder, expires_at)) => {
                if leases.drop_partition(partition) {
                    client.metrics().lease_changed("lost", leases.owned().len());
                }
                acquisition.refused.push(Refused {
                    partition,
                    holder,
                    expires_at,
                });
            }
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => {
            // The caller takes the partitions new to this node (dropping
            // what it knew of them) only from a whole answer: the ones
            // taken in a round that failed are let go here, so that the
            // next round finds their token new again instead of renewing
            // it over stale actors.
            for partition in acquisition.new {
                leases.drop_partition(partition);
            }
            Err(error)
        }
        None => {
            acquisition.new.sort();
            acquisition.refused.sort_by_key(|refused| refused.partition);
            Ok(acquisition)
        }
    }
}

impl StateStore for RedisStore {
    fn load<'a>(&'a self, customer_id: &'a str) -> StoreFuture<'a, Option<CustomerState>> {
        Box::pin(async move {
            if let Some(pending) = self.pending_states.get(customer_id) {
                let encoded = pending.1.clone();
                drop(pending);
                return encoded
                    .map(|bytes| decode("customer state", &bytes))
                    .transpose();
            }
            let partition = self.partitions.of(customer_id);
            let prefix = self.keys.partition(partition);
            let client = self.client.clone();
            let key = Keys::lease(&prefix);
            let customer = customer_id.to_owned();
            // The partition's owner reads with its fencing token, so a
            // primary that came back with stale data after a failover (and
            // an older token) is refused, not read.
            let token = self.leases.token(partition);
            let bytes = self
                .client
                .runtime()
                .spawn(async move {
                    let Some(token) = token else {
                        let mut command = redis::cmd("HGET");
                        command.arg(Keys::states(&prefix)).arg(&customer);
                        let value = client.query("load", command, Some(&key)).await?;
                        return redis::from_redis_value::<Option<Vec<u8>>>(value)
                            .map_err(|error| client::redis_error("load", &error));
                    };
                    let args = vec![b"L".to_vec(), customer.into_bytes()];
                    let results = client
                        .apply(
                            client::Purpose::Load,
                            &key,
                            &prefix,
                            &token.0.to_string(),
                            1,
                            args,
                        )
                        .await
                        .map_err(|error| match error {
                            StoreError::Fenced { current, token, .. } => StoreError::Fenced {
                                partition: partition.0,
                                token,
                                current,
                            },
                            other => other,
                        })?;
                    let state = results.into_iter().next().map_or(Ok(Vec::new()), |state| {
                        redis::from_redis_value::<Vec<Vec<u8>>>(state)
                            .map_err(|error| client::redis_error("load", &error))
                    })?;
                    Ok(state.into_iter().next())
                })
                .await
                .map_err(|error| StoreError::Redis {
                    operation: "load",
                    message: error.to_string(),
                })??;
            bytes
                .map(|bytes| decode("customer state", &bytes))
                .transpose()
        })
    }

    fn write(&self, customer_id: &Arc<str>, state: &CustomerState) -> Commit {
        if let Err(error) = self.failing() {
            return Commit::done(Err(error));
        }
        let encoded: Arc<[u8]> = match encode(state) {
            Ok(encoded) => encoded.into(),
            Err(error) => return Commit::done(Err(error)),
        };
        let timer = match TimerWrite::of(state) {
            TimerWrite::Untouched => String::new(),
            TimerWrite::Clear => "-".to_owned(),
            TimerWrite::Set(due) => due.to_string(),
        };
        let op = Op::State {
            customer: customer_id.clone(),
            encoded: encoded.clone(),
            timer,
        };
        self.queue_state(customer_id, Some(encoded), op)
    }

    fn forget(&self, customer_id: &Arc<str>) -> Commit {
        let op = Op::ForgetState {
            customer: customer_id.clone(),
        };
        self.queue_state(customer_id, None, op)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.failing()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.drain()
    }

    fn len(&self) -> Result<u64, StoreError> {
        let counts = self.every_partition(
            "scan",
            |prefix| {
                let mut command = redis::cmd("HLEN");
                command.arg(Keys::states(prefix));
                command
            },
            |value| {
                redis::from_redis_value::<u64>(value)
                    .map_err(|error| client::redis_error("scan", &error))
            },
        )?;
        Ok(counts.into_iter().sum())
    }

    fn journey_timers(&self) -> Result<Vec<(Arc<str>, Timestamp)>, StoreError> {
        let partitions = self.every_partition(
            "scan",
            |prefix| {
                let mut command = redis::cmd("ZRANGE");
                command
                    .arg(Keys::timers(prefix))
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES");
                command
            },
            |value| {
                redis::from_redis_value::<Vec<(String, f64)>>(value)
                    .map_err(|error| client::redis_error("scan", &error))
            },
        )?;
        Ok(partitions
            .into_iter()
            .flatten()
            .map(|(customer, due)| (Arc::from(customer), Timestamp::from_millis(due as i64)))
            .collect())
    }

    fn probe(&self) {
        let client = self.client.clone();
        let failure = self.failure.clone();
        let key = Keys::lease(&self.keys.shared());
        self.client.runtime().spawn(async move {
            if client
                .query("other", redis::cmd("PING"), Some(&key))
                .await
                .is_ok()
                && let Ok(mut failure) = failure.lock()
            {
                *failure = None;
            }
        });
    }
}

impl DecisionLog for RedisStore {
    fn append(&self, entries: Vec<LogEntry>) -> Commit {
        if entries.is_empty() {
            return Commit::none();
        }
        if let Err(error) = self.failing() {
            return Commit::done(Err(error));
        }
        let mut by_partition: HashMap<Partition, Vec<Op>> = HashMap::new();
        let mut shared = Vec::new();
        for entry in entries {
            let (partition, op) = match self.log_op(entry, &mut shared) {
                Ok(op) => op,
                Err(error) => return Commit::done(Err(error)),
            };
            by_partition.entry(partition).or_default().push(op);
        }
        let mut commit = Commit::none();
        if !shared.is_empty() {
            commit = commit.and(self.queue(None, shared, None));
        }
        for (partition, ops) in by_partition {
            commit = commit.and(self.queue(Some(partition), ops, None));
        }
        commit
    }

    fn export(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, StoreError> {
        export::decisions(self, range, visit)
    }

    fn export_events(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(EventRecord) -> bool,
    ) -> Result<u64, StoreError> {
        export::events(self, range, visit)
    }

    fn compact(&self, before: Timestamp, max: usize) -> Commit {
        export::compact(self, before, max)
    }

    fn forget(&self, customer_id: &Arc<str>) -> Commit {
        let op = Op::ForgetLog {
            customer: customer_id.clone(),
        };
        self.queue(Some(self.partitions.of(customer_id)), vec![op], None)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.failing()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.drain()
    }

    fn probe(&self) {
        StateStore::probe(self);
    }
}

impl RedisStore {
    /// The partition and operation of one log entry; a decision of a model
    /// whose feature specs this store has not written adds their write to
    /// `shared`.
    fn log_op(&self, entry: LogEntry, shared: &mut Vec<Op>) -> Result<(Partition, Op), StoreError> {
        Ok(match entry {
            LogEntry::Decision {
                record,
                feature_names,
            } => {
                if let (Some(model), Some(names)) = (&record.model_version, &feature_names)
                    && self.written_models.insert(model.clone(), ()).is_none()
                {
                    shared.push(Op::Features {
                        model: model.clone(),
                        encoded: encode(&names.to_vec())?,
                    });
                }
                let partition = self.partitions.of(&record.customer_id);
                let member =
                    keys::decision_member(record.at, &record.decision_id, &record.customer_id);
                let encoded = encode(&record)?;
                (
                    partition,
                    Op::Decision {
                        member,
                        customer: record.customer_id,
                        encoded,
                    },
                )
            }
            LogEntry::Outcome(outcome) => {
                let partition = self.partitions.of(&outcome.customer_id);
                let member = keys::decision_member(
                    outcome.decision_at,
                    &outcome.decision_id,
                    &outcome.customer_id,
                );
                let id = format!("{}\u{0}{}", outcome.action_id, outcome.outcome.name());
                let encoded = encode(&outcome)?;
                (
                    partition,
                    Op::Outcome {
                        member,
                        customer: outcome.customer_id,
                        id,
                        encoded,
                    },
                )
            }
            LogEntry::Event(event) => {
                let partition = self.partitions.of(&event.customer_id);
                let encoded = encode(&event)?;
                (
                    partition,
                    Op::Event {
                        ordinal: keys::ordinal(event.ordinal),
                        time: keys::sortable(event.received_at),
                        customer: event.customer_id,
                        encoded,
                    },
                )
            }
        })
    }
}

impl BudgetLedger for RedisStore {
    fn load(&self) -> Result<Vec<(String, u64)>, StoreError> {
        // Read in the shared lane's order: the counters as of every change
        // queued before, plus the changes still pending, which at that
        // moment are exactly the ones queued after.
        let (sender, receiver) = oneshot::channel();
        let pending = self.pending_budgets.clone();
        let after: lanes::After = Box::new(move |results| {
            let Some(stored) = results.and_then(|results| results.first()) else {
                return;
            };
            let stored: Result<HashMap<String, i64>, _> = redis::from_redis_value(stored.clone());
            let Ok(mut counters) = stored else {
                return;
            };
            if let Ok(pending) = pending.lock() {
                for (action, delta) in pending.iter() {
                    *counters.entry(action.clone()).or_default() += delta;
                }
            }
            let _ = sender.send(counters);
        });
        let commit = self.queue(None, vec![Op::ReadBudgets], Some(after));
        let counters = self.client.block_on(async move {
            commit.wait().await?;
            receiver.await.map_err(|_| StoreError::Redis {
                operation: "load",
                message: "the budget counters could not be read".to_owned(),
            })
        })?;
        let mut counters: Vec<(String, u64)> = counters
            .into_iter()
            .filter_map(|(action, used)| {
                u64::try_from(used)
                    .ok()
                    .filter(|used| *used > 0)
                    .map(|used| (action, used))
            })
            .collect();
        counters.sort();
        Ok(counters)
    }

    fn record(&self, changes: Vec<BudgetChange>) -> Commit {
        if changes.is_empty() {
            return Commit::none();
        }
        if let Err(error) = self.failing() {
            return Commit::done(Err(error));
        }
        let node = self.leases.node();
        let ops: Vec<Op> = changes
            .iter()
            .map(|change| Op::Budget {
                action: change.action_id.clone(),
                delta: change.delta,
                id: format!("{node}-{}", self.sequence.fetch_add(1, Ordering::Relaxed)),
                node: node.to_owned(),
            })
            .collect();
        if let Ok(mut pending) = self.pending_budgets.lock() {
            for change in &changes {
                *pending.entry(change.action_id.clone()).or_default() += change.delta;
            }
        }
        let pending = self.pending_budgets.clone();
        let after: lanes::After = Box::new(move |_| {
            if let Ok(mut pending) = pending.lock() {
                for change in changes {
                    let left = pending.entry(change.action_id.clone()).or_default();
                    *left -= change.delta;
                    if *left == 0 {
                        pending.remove(&change.action_id);
                    }
                }
            }
        });
        self.queue(None, ops, Some(after))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.failing()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.drain()
    }

    fn probe(&self) {
        StateStore::probe(self);
    }
}

impl From<Arc<RedisStore>> for super::Stores {
    /// The Redis store serves all three roles.
    fn from(store: Arc<RedisStore>) -> Self {
        Self {
            state: store.clone(),
            log: store.clone(),
            budgets: store,
        }
    }
}
