//! Cluster mode (PRODUCT.md §11): several nodes over one Redis Cluster,
//! exactly one owner per partition of customers at a time.
//!
//! - **Membership** ([`Cluster::tick`]): every third of the lease time a node
//!   registers in Redis with a time to live of one lease time and reads the
//!   live members back; a node that stops renewing (killed, partitioned)
//!   drops out when its registration ends.
//! - **Placement**: partitions are spread over the live members by
//!   rendezvous hashing ([`nudge_models::cluster::assignment`]); a node takes
//!   the leases of the partitions placed on it (a lease another node still
//!   holds is taken once that node releases it or it expires) and hands off
//!   the ones placed elsewhere ([`Cluster::hand_off`]: new calls wait, calls
//!   in flight finish, the partition's actors passivate, its writes are
//!   answered, then the lease is released).
//! - **Routing** ([`Cluster::route`]): a call for a customer of a partition
//!   this node holds runs here; one placed on this node but not held yet
//!   takes the lease on the spot (or is forwarded to the node still holding
//!   it, when that node is live); any other is forwarded to the placement's
//!   owner over gRPC (`grpc/forward.rs`). A forwarded call is forwarded at
//!   most twice more (while a partition moves, a node with an older view of
//!   the members may send it to the previous owner); then it is refused
//!   with UNAVAILABLE, never answered by a node that does not hold the
//!   customer's partition.
//!
//! Every write carries the partition's fencing token and Redis refuses a
//! stale one (`store/redis`), so a node that lost a partition without
//! noticing (paused past its lease) cannot overwrite the new owner's state.
//! A partition taken with a token new to this node first passivates any
//! actor of it left from before, so nothing is served from stale state.

mod budgets;
mod topology;

pub use topology::{BudgetLine, NodeView, PartitionView, Topology};

use crate::config::ForwardingTls;
use crate::engine::Engine;
use crate::store::StoreError;
use crate::store::redis::{Member, RedisStore, Serves};
use arc_swap::ArcSwap;
use nudge_models::cluster::{NodeId, Partition, Partitions, assignment, owner};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Most hops a call may take between nodes: one to the owner, two more
/// while a partition moves (a node with an older view sends it to the node
/// still holding it, which hands it off meanwhile and sends it on).
pub const MAX_HOPS: u32 = 3;

/// How often a waiting call looks again at a partition being handed off
/// or not yet free.
const RECHECK: Duration = Duration::from_millis(5);

/// This node in the cluster.
pub struct Cluster {
    store: Arc<RedisStore>,
    node: String,
    /// Where other nodes forward calls to this one.
    address: String,
    partitions: Partitions,
    lease: Duration,
    /// The live members as last read, in node order, this node among them.
    members: ArcSwap<Vec<Member>>,
    /// Per partition: being handed off (new calls wait).
    leaving: Vec<AtomicBool>,
    /// Per partition: calls running here.
    in_flight: Vec<AtomicUsize>,
    /// The engine, for passivating a partition's actors and its timers.
    engine: OnceLock<Weak<Engine>>,
    /// Forwarding connections to the other nodes, by address.
    peers: dashmap::DashMap<String, tonic::transport::Channel>,
    /// How forwarded calls are encrypted: `None` for plain gRPC.
    tls: Option<tonic::transport::ClientTlsConfig>,
    /// Per peer address: when a failed forward was last logged, and the
    /// failures since.
    forward_failures: dashmap::DashMap<String, (Option<Instant>, u64)>,
    /// This node's share of the global budgets.
    grants: budgets::Grants,
    /// When a heartbeat was last answered.
    heartbeat: std::sync::Mutex<Instant>,
    /// Cluster rounds failed in a row.
    failed_rounds: AtomicUsize,
}

/// At most one warning per peer in this long that calls forwarded to it
/// fail (the metrics count every one).
const FORWARD_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Cluster rounds failed in a row after which the connections to Redis
/// are made afresh.
const RECONNECT_AFTER: usize = 3;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cluster")
            .field("node", &self.node)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Where a call runs.
#[derive(Debug)]
pub enum Route {
    /// Here: this node holds the customer's partition while the guard lives.
    Local(LocalCall),
    /// On another node.
    Forward {
        /// Its name.
        node: String,
        /// Its address.
        address: String,
    },
    /// Nowhere now: the partition is moving or its owner is unreachable.
    Unavailable(String),
}

/// A call running here: the partition is not handed off before it ends.
#[derive(Debug)]
pub struct LocalCall {
    cluster: Arc<Cluster>,
    partition: Partition,
    waited: bool,
}

impl LocalCall {
    /// Whether the call waited for the partition (a hand-off or a lease
    /// to end) before it could run here.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Drop for LocalCall {
    fn drop(&mut self) {
        self.cluster.in_flight[usize::from(self.partition.0)].fetch_sub(1, Ordering::AcqRel);
    }
}

impl Cluster {
    /// This node over `store` (connected, holding nothing yet), reachable
    /// at `address`; registered in the membership at once. Calls are
    /// forwarded to the other nodes over `tls` when given. Blocking.
    pub fn join(
        store: Arc<RedisStore>,
        node: String,
        address: String,
        partitions: Partitions,
        lease: Duration,
        tls: Option<&ForwardingTls>,
    ) -> Result<Arc<Self>, StoreError> {
        let tls = tls.map(|tls| {
            let mut config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca));
            if let Some(name) = &tls.server_name {
                config = config.domain_name(name.clone());
            }
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            config
        });
        let sent = Instant::now();
        // What it serves is registered from its first round on, once the
        // engine is attached.
        let members = store.register(&address, lease, &Serves::default())?;
        let count = usize::from(partitions.count());
        tracing::info!(%node, %address, members = members.len(), "joined the cluster");
        Ok(Arc::new(Self {
            store,
            node,
            address,
            partitions,
            lease,
            members: ArcSwap::from_pointee(members),
            leaving: (0..count).map(|_| AtomicBool::new(false)).collect(),
            in_flight: (0..count).map(|_| AtomicUsize::new(0)).collect(),
            engine: OnceLock::new(),
            peers: dashmap::DashMap::new(),
            tls,
            forward_failures: dashmap::DashMap::new(),
            grants: budgets::Grants::default(),
            heartbeat: std::sync::Mutex::new(sent),
            failed_rounds: AtomicUsize::new(0),
        }))
    }

    /// Hands this node the engine it serves (once).
    pub fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The store.
    pub fn store(&self) -> &Arc<RedisStore> {
        &self.store
    }

    /// Whether this node holds `customer_id`'s partition now.
    pub fn owns(&self, customer_id: &str) -> bool {
        self.store.token(self.partitions.of(customer_id)).is_some()
    }

    /// The live members as last read.
    pub fn members(&self) -> Arc<Vec<Member>> {
        self.members.load_full()
    }

    /// The node placement gives `partition` among the live members.
    fn placed(&self, partition: Partition) -> Option<Member> {
        let members = self.members.load();
        let nodes: Vec<NodeId> = members
            .iter()
            .map(|member| NodeId::new(&member.node))
            .collect();
        let chosen = owner(partition, &nodes)?;
        members
            .iter()
            .find(|member| member.node.as_str() == &*chosen.0)
            .cloned()
    }

    /// The node placement gives `customer_id`'s partition, when that is
    /// another node: where a stream of the customer's events is sent.
    pub fn placed_elsewhere(&self, customer_id: &str) -> Option<Member> {
        self.placed(self.partitions.of(customer_id))
            .filter(|member| member.node != self.node)
    }

    fn live(&self, node: &str) -> Option<Member> {
        self.members
            .load()
            .iter()
            .find(|member| member.node == node)
            .cloned()
    }

    /// Where a call for `customer_id` that took `hops` hops so far runs,
    /// deciding by `deadline` at the latest.
    pub async fn route(self: &Arc<Self>, customer_id: &str, hops: u32, deadline: Instant) -> Route {
        let partition = self.partitions.of(customer_id);
        let index = usize::from(partition.0);
        // A call that waited out this node's hand-off of the partition may
        // take one hop more: to the node the partition just moved to.
        let mut max_hops = MAX_HOPS;
        let mut waited = false;
        loop {
            self.in_flight[index].fetch_add(1, Ordering::AcqRel);
            let guard = LocalCall {
                cluster: self.clone(),
                partition,
                waited,
            };
            let leaving = self.leaving[index].load(Ordering::Acquire);
            if !leaving && self.store.token(partition).is_some() {
                return Route::Local(guard);
            }
            drop(guard);
            if leaving {
                max_hops = MAX_HOPS + 1;
                if Instant::now() >= deadline {
                    return Route::Unavailable(format!(
                        "partition {} is moving to another node; retry",
                        partition.0
                    ));
                }
                tokio::time::sleep(RECHECK).await;
                waited = true;
                continue;
            }
            let placed = self.placed(partition);
            let mine = placed
                .as_ref()
                .is_some_and(|member| member.node == self.node);
            if mine && !self.store.pending_tokens(&[partition]).is_empty() {
                // Just taken: its old actors are being dropped (`took`),
                // then it is served here.
                if Instant::now() >= deadline {
                    return Route::Unavailable(format!(
                        "partition {} is moving to this node; retry",
                        partition.0
                    ));
                }
                tokio::time::sleep(RECHECK).await;
                waited = true;
                continue;
            }
            if !mine {
                return match placed {
                    Some(member) if hops < max_hops => Route::Forward {
                        node: member.node,
                        address: member.address,
                    },
                    _ => Route::Unavailable(format!(
                        "partition {} is not on this node, and the call was forwarded {hops} times",
                        partition.0
                    )),
                };
            }
            // Placed here and not held: take it now.
            waited = true;
            match self.store.acquire_now(&[partition]).await {
                Ok(acquisition) if acquisition.refused.is_empty() => {
                    if !acquisition.new.is_empty() {
                        self.took(&acquisition.new).await;
                    }
                    continue;
                }
                Ok(acquisition) => {
                    let holder = acquisition
                        .refused
                        .first()
                        .map(|refused| refused.holder.clone())
                        .unwrap_or_default();
                    if hops < max_hops
                        && holder != self.node
                        && let Some(member) = self.live(&holder)
                    {
                        // Still held by a live node that has not seen this
                        // one yet: it serves the call meanwhile.
                        return Route::Forward {
                            node: member.node,
                            address: member.address,
                        };
                    }
                    if Instant::now() >= deadline {
                        return Route::Unavailable(format!(
                            "partition {} is still leased to node '{holder}'; it moves here when that lease ends",
                            partition.0
                        ));
                    }
                    tokio::time::sleep(RECHECK).await;
                }
                Err(error) => return Route::Unavailable(error.to_string()),
            }
        }
    }

    /// Where a call that only reads (a dry run, a profile read) runs: as
    /// [`Cluster::route`] says, except while Redis cannot be reached (the
    /// store refuses writes): then a node that held the customer's
    /// partition last and still has the customer's actor live answers from
    /// it. Redis being down for every node, no node can have taken the
    /// partition since; when only this node is cut off from Redis, the
    /// answer may miss what the partition's next owner wrote since this
    /// node's lease ran out.
    pub async fn route_read(
        self: &Arc<Self>,
        engine: &Engine,
        customer_id: &str,
        hops: u32,
        deadline: Instant,
    ) -> Route {
        let partition = self.partitions.of(customer_id);
        let index = usize::from(partition.0);
        if self.store.token(partition).is_none()
            && !self.leaving[index].load(Ordering::Acquire)
            && crate::store::StateStore::check_writable(self.store.as_ref()).is_err()
            && self.store.held_last(partition)
            && engine.registry().get(customer_id).is_some()
        {
            self.in_flight[index].fetch_add(1, Ordering::AcqRel);
            return Route::Local(LocalCall {
                cluster: self.clone(),
                partition,
                waited: false,
            });
        }
        self.route(customer_id, hops, deadline).await
    }

    /// A forwarding connection to `address` (connected on first use).
    pub fn channel(&self, address: &str) -> Result<tonic::transport::Channel, String> {
        if let Some(channel) = self.peers.get(address) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|error| format!("node address '{address}': {error}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500));
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|error| format!("TLS to node '{address}': {error}"))?;
        }
        let channel = endpoint.connect_lazy();
        self.peers.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// What this node serves now: its catalog's version and its
    /// experiment's variants (empty before the engine is attached).
    fn serves(&self) -> Serves {
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else {
            return Serves::default();
        };
        let serving = engine.shared().models.serving();
        Serves {
            catalog: engine.catalog().version.clone(),
            variants: serving.experiment.variants.clone(),
        }
    }

    /// Notes that a call forwarded to `node` at `address` got no answer
    /// (`reason`: the transport's error, e.g. a refused connection or a
    /// certificate the cluster's CA did not sign): logged as a warning at
    /// most every [`FORWARD_WARNING_EVERY`] per peer, with the failures
    /// since the last one.
    pub fn forward_failed(&self, node: &str, address: &str, reason: &str) {
        let now = Instant::now();
        let mut failures = self
            .forward_failures
            .entry(address.to_owned())
            .or_insert((None, 0));
        let (warned, since) = &mut *failures;
        *since += 1;
        if warned.is_none_or(|warned| now.duration_since(warned) >= FORWARD_WARNING_EVERY) {
            tracing::warn!(
                peer = node,
                %address,
                failures = *since,
                reason,
                "calls forwarded to another node get no answer"
            );
            *warned = Some(now);
            *since = 0;
        }
    }

    /// Partitions taken with a token new to this node: actors of them left
    /// from before are passivated (another node may have changed their
    /// state since), and their journey timers are loaded.
    async fn took(&self, partitions: &[Partition]) {
        // The new tokens are not written with (nor served from) until the
        // actors left from before are gone: an old call still in one of
        // them would write its stale state with the new token.
        let tokens = self.store.pending_tokens(partitions);
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else {
            self.store.activate_tokens(&tokens);
            return;
        };
        let mut passivated = Vec::new();
        for &(partition, token) in &tokens {
            if self.passivate(&engine, partition).await {
                passivated.push((partition, token));
            }
        }
        // A partition whose actors did not stop stays pending: the next
        // call or round finds its token new again and tries again.
        self.store.activate_tokens(&passivated);
        let store = self.store.clone();
        let taken = partitions.to_vec();
        let timers = tokio::task::spawn_blocking(move || store.journey_timers_of(&taken)).await;
        match timers {
            Ok(Ok(timers)) => engine.shared().timers.restore(timers),
            Ok(Err(error)) => {
                tracing::warn!(%error, "journey timers of taken partitions not loaded")
            }
            Err(error) => tracing::warn!(%error, "journey timers of taken partitions not loaded"),
        }
    }

    /// Passivates `partition`'s actors and waits (at most a lease time) until
    /// they stopped; whether they did.
    async fn passivate(&self, engine: &Arc<Engine>, partition: Partition) -> bool {
        let partitions = self.partitions;
        let started = Instant::now();
        while engine.passivate_matching(|customer| partitions.of(customer) == partition) > 0 {
            if started.elapsed() > self.lease {
                tracing::warn!(
                    partition = partition.0,
                    "actors still live after a lease time"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// One round of membership and placement: registers this node, reads
    /// the members, takes (or renews) the partitions placed here, hands
    /// off the others, and passivates partitions lost.
    pub async fn tick(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        let (address, lease) = (self.address.clone(), self.lease);
        let serves = self.serves();
        // The registration runs a lease time from when Redis renewed it,
        // which is after this.
        let sent = Instant::now();
        let members =
            tokio::task::spawn_blocking(move || store.heartbeat(&address, lease, &serves))
                .await
                .map_err(|error| StoreError::Redis {
                    operation: "members",
                    message: error.to_string(),
                })?
                .inspect_err(|error| {
                    // Redis did not answer, after its retries: writes would fail
                    // too, so they are refused (and health says so) until a
                    // probe reaches it again.
                    self.store.unreachable(error.clone());
                });
        let members = members?;
        *self.heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = sent;
        let before: Vec<String> = self.members.load().iter().map(|m| m.node.clone()).collect();
        let now: Vec<String> = members.iter().map(|m| m.node.clone()).collect();
        if before != now {
            tracing::info!(members = ?now, "cluster membership changed");
        }
        self.members.store(Arc::new(members));
        let nodes: Vec<NodeId> = now.iter().map(|node| NodeId::new(node)).collect();
        let placed = assignment(self.partitions, &nodes);
        let (mine, others): (Vec<Partition>, Vec<Partition>) = self
            .partitions
            .all()
            .partition(|partition| &*placed[usize::from(partition.0)].0 == self.node.as_str());
        let held_before: Vec<Partition> = others
            .iter()
            .copied()
            .filter(|partition| self.store.token(*partition).is_some())
            .collect();
        let acquisition = self.store.acquire_now(&mine).await?;
        if !acquisition.new.is_empty() {
            tracing::info!(partitions = acquisition.new.len(), "partitions taken");
            self.took(&acquisition.new).await;
        }
        for partition in held_before {
            self.hand_off(partition).await;
        }
        Ok(())
    }

    /// Hands `partition` off: new calls wait, calls here finish, its actors
    /// passivate, its writes are answered, then the lease is released for
    /// the node placement gives it.
    pub async fn hand_off(&self, partition: Partition) {
        let index = usize::from(partition.0);
        self.leaving[index].store(true, Ordering::Release);
        let started = Instant::now();
        while self.in_flight[index].load(Ordering::Acquire) > 0 && started.elapsed() < self.lease {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if let Some(engine) = self.engine.get().and_then(Weak::upgrade) {
            self.passivate(&engine, partition).await;
        }
        let store = self.store.clone();
        let released = tokio::task::spawn_blocking(move || {
            store.flush_partition(partition)?;
            store.release(&[partition])
        })
        .await;
        match released {
            Ok(Ok(())) => tracing::debug!(partition = partition.0, "partition handed off"),
            Ok(Err(error)) => {
                tracing::warn!(partition = partition.0, %error, "partition not released; its lease runs out instead")
            }
            Err(error) => {
                tracing::warn!(partition = partition.0, %error, "partition not released; its lease runs out instead")
            }
        }
        self.leaving[index].store(false, Ordering::Release);
    }

    /// Runs [`Cluster::tick`] every third of the lease time (sooner while
    /// partitions placed here are still held elsewhere) until the engine
    /// stops.
    pub async fn run(self: Arc<Self>) {
        let every = self.lease / 3;
        tokio::spawn(self.clone().keep_budgets());
        loop {
            match self.tick().await {
                Ok(()) => self.failed_rounds.store(0, Ordering::Release),
                Err(error) => {
                    tracing::warn!(%error, "cluster round failed");
                    // A heartbeat or a lease renewal failing round after
                    // round: after a failover a connection may keep sending
                    // a slot's commands where nothing answers.
                    if self.failed_rounds.fetch_add(1, Ordering::AcqRel) + 1 >= RECONNECT_AFTER {
                        self.failed_rounds.store(0, Ordering::Release);
                        if let Err(error) = self.store.reconnect().await {
                            tracing::warn!(%error, "could not reconnect to Redis");
                        }
                    }
                }
            }
            let waiting = self.waiting_for_leases();
            tokio::time::sleep(if waiting {
                every.min(Duration::from_millis(200))
            } else {
                every
            })
            .await;
            if self.engine.get().and_then(Weak::upgrade).is_none() {
                return;
            }
        }
    }

    /// Whether this node's registration surely still runs: a heartbeat
    /// was answered within the lease time.
    fn registered(&self) -> bool {
        self.heartbeat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            < self.lease
    }

    /// Whether some partition placed here is not held yet.
    fn waiting_for_leases(&self) -> bool {
        self.partitions.all().any(|partition| {
            self.placed(partition)
                .is_some_and(|member| member.node == self.node)
                && self.store.token(partition).is_none()
        })
    }

    /// Leaves the cluster: hands every held partition off and deregisters,
    /// so the other nodes take over at once instead of after a lease time.
    pub async fn leave(&self) {
        // Calls still finishing here serve no budget unit: the ledger
        // takes this node's units back as it leaves.
        self.drop_budgets();
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.leave()).await;
        for partition in self.store.owned() {
            self.hand_off(partition).await;
        }
        tracing::info!(node = %self.node, "left the cluster");
    }

    /// The cluster as this node sees it: members, partitions and their
    /// leases. Blocking.
    pub fn topology(&self) -> Result<Topology, StoreError> {
        topology::read(self)
    }
}
