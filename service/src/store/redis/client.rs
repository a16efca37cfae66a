//! [`Client`]: the connection to the Redis Cluster, the runtime its I/O runs
//! on, the scripts, and the durability a write waits for.

use crate::store::StoreError;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr,
};
use redis::{Cmd, Script, Value};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What an acknowledged write is, beyond being applied on its primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every primary appends to its AOF with `appendfsync always`: a write
    /// is on the primary's disk before Redis answers. Checked at start
    /// (`CONFIG GET`); a primary configured otherwise refuses the start.
    Fsync,
    /// Every write waits (`WAIT`) until this many replicas have it, at most
    /// this long; fewer fails the write (it may still be applied: treat it
    /// as not acknowledged).
    Replicas {
        /// Replicas that must have the write.
        count: u32,
        /// The longest wait.
        timeout: Duration,
    },
    /// Whatever the servers are configured for; nothing is checked. For
    /// managed services that hide `CONFIG`, and for tests.
    Unchecked,
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Seed nodes (`redis://host:port`); the rest is discovered.
    pub urls: Vec<String>,
    /// The durability writes wait for.
    pub durability: Durability,
    /// The longest a command may take before it fails (and the longest a
    /// connection attempt may take).
    pub timeout: Duration,
}

/// The cluster connection and its runtime; cheap to clone.
#[derive(Clone)]
pub(super) struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// Owned so the store works whoever calls it (a test's thread, the
    /// server's runtime, a blocking export); shut down in the background
    /// when the last clone goes.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// Makes new connections ([`Client::reconnect`]).
    cluster: ClusterClient,
    connection: std::sync::RwLock<ClusterConnection>,
    /// The connection of the writes that `WAIT` for replicas (the same as
    /// `connection` when none do).
    waiting: std::sync::RwLock<ClusterConnection>,
    apply: Script,
    lease: Script,
    members: Script,
    options: ClientOptions,
    /// Round trips made and the time they took, for the metrics.
    pub(super) round_trips: crate::metrics::RedisMetrics,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Client")
            .field("urls", &self.inner.options.urls)
            .field("durability", &self.inner.options.durability)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self
            .runtime
            .lock()
            .ok()
            .and_then(|mut runtime| runtime.take())
        {
            runtime.shutdown_background();
        }
    }
}

/// What an `apply.lua` call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Writes (and whatever reads go with them): waits for replicas.
    Write,
    /// Only reads of counters no stale primary can mislead (budgets,
    /// grants): no wait.
    Read,
    /// A customer's state for its actor: waits for replicas, so a primary
    /// that came back stale after a failover (and has none) is not read.
    Load,
}

impl Purpose {
    fn operation(self) -> &'static str {
        match self {
            Self::Write | Self::Read => "apply",
            Self::Load => "load",
        }
    }

    fn waits(self) -> bool {
        self != Self::Read
    }
}

impl Client {
    fn connection(&self) -> ClusterConnection {
        self.inner
            .connection
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn waiting(&self) -> ClusterConnection {
        self.inner
            .waiting
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the connections with new ones (slots and nodes read
    /// afresh): after a failover a connection may keep sending a slot's
    /// commands where nothing answers. Calls in flight finish on the old
    /// ones.
    pub(super) async fn reconnect(&self) -> Result<(), StoreError> {
        let timeout = self.inner.options.timeout * 4;
        let fresh = || async {
            tokio::time::timeout(timeout, self.inner.cluster.get_async_connection())
                .await
                .map_err(|_| StoreError::Redis {
                    operation: "connect",
                    message: format!("no answer within {timeout:?}"),
                })?
                .map_err(|error| redis_error("connect", &error))
        };
        let connection = fresh().await?;
        let waiting = if matches!(self.inner.options.durability, Durability::Replicas { .. }) {
            fresh().await?
        } else {
            connection.clone()
        };
        *self
            .inner
            .connection
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = connection;
        *self
            .inner
            .waiting
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = waiting;
        tracing::info!("reconnected to the Redis Cluster");
        Ok(())
    }

    /// Connects to the cluster and checks the durability it promises.
    /// Blocking.
    pub(super) fn connect(options: ClientOptions) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nudge-redis")
            .enable_all()
            .build()
            .map_err(|source| StoreError::NoWriter {
                source: Arc::new(source),
            })?;
        let handle = runtime.handle().clone();
        let client = ClusterClient::builder(options.urls.clone())
            .connection_timeout(options.timeout)
            .response_timeout(options.timeout)
            .retries(6)
            .min_retry_wait(10)
            .max_retry_wait(500)
            .build()
            .map_err(|error| redis_error("connect", &error))?;
        let connect = || {
            runtime
                .block_on(async {
                    tokio::time::timeout(options.timeout * 4, client.get_async_connection()).await
                })
                .map_err(|_| StoreError::Redis {
                    operation: "connect",
                    message: format!(
                        "no answer from {} within {:?}",
                        options.urls.join(", "),
                        options.timeout * 4
                    ),
                })?
                .map_err(|error| redis_error("connect", &error))
        };
        let connection = connect()?;
        // `WAIT` blocks its connection until the replicas answer: the
        // writes that wait for them get their own, so that leases,
        // membership and reads never queue behind a slow replica.
        let waiting = if matches!(options.durability, Durability::Replicas { .. }) {
            connect()?
        } else {
            connection.clone()
        };
        let client = Self {
            inner: Arc::new(Inner {
                runtime: Mutex::new(Some(runtime)),
                handle,
                cluster: client,
                connection: std::sync::RwLock::new(connection),
                waiting: std::sync::RwLock::new(waiting),
                apply: Script::new(include_str!("apply.lua")),
                lease: Script::new(include_str!("lease.lua")),
                members: Script::new(include_str!("members.lua")),
                options,
                round_trips: crate::metrics::RedisMetrics::registered(),
            }),
        };
        if client.inner.options.durability == Durability::Fsync {
            client.block_on(client.clone().check_fsync())?;
        }
        Ok(client)
    }

    /// The runtime the store's I/O runs on.
    pub(super) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }

    /// The round-trip counters.
    pub(super) fn metrics(&self) -> &crate::metrics::RedisMetrics {
        &self.inner.round_trips
    }

    /// Runs `future` on the store's runtime and waits for it on this
    /// thread (never call it from the store's own runtime).
    pub(super) fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.inner.handle.spawn(async move {
            let _ = sender.send(future.await);
        });
        #[allow(clippy::expect_used)]
        receiver
            .recv()
            .expect("the store's runtime runs until the store is dropped")
    }

    /// Sends `command` to the node of `key`'s slot (or, for `None`, to any
    /// primary) and counts the round trip.
    pub(super) async fn query(
        &self,
        operation: &'static str,
        command: Cmd,
        key: Option<&str>,
    ) -> Result<Value, StoreError> {
        let routing = match key {
            Some(key) => RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                Route::with_slot(Slot::for_key(key), SlotAddr::Master),
            )),
            None => RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        };
        let started = Instant::now();
        let mut connection = self.connection();
        let result = connection.route_command(command, routing).await;
        self.inner.round_trips.record(operation, started.elapsed());
        result.map_err(|error| redis_error(operation, &error))
    }

    /// `apply.lua` on the partition whose lease is `lease_key`, with its
    /// `prefix`, fencing `token` ("" unfenced) and `count` operations. With
    /// `storage.redis_durability = "replicas"` a write or a load is
    /// pipelined with `WAIT` ([`Client::invoke_replicated`]).
    pub(super) async fn apply(
        &self,
        purpose: Purpose,
        lease_key: &str,
        prefix: &str,
        token: &str,
        count: usize,
        args: Vec<Vec<u8>>,
    ) -> Result<Vec<Value>, StoreError> {
        let started = Instant::now();
        let operation = purpose.operation();
        let result = match self.inner.options.durability {
            Durability::Replicas {
                count: replicas,
                timeout,
            } if purpose.waits() => {
                let mut all: Vec<Vec<u8>> = vec![
                    prefix.as_bytes().to_vec(),
                    token.as_bytes().to_vec(),
                    count.to_string().into_bytes(),
                ];
                all.extend(args);
                self.invoke_replicated(&self.inner.apply, lease_key, all, replicas, timeout)
                    .await
                    .and_then(|value| Ok(redis::from_redis_value(value)?))
            }
            _ => {
                let mut invocation = self.inner.apply.key(lease_key);
                invocation.arg(prefix).arg(token).arg(count);
                for arg in args {
                    invocation.arg(arg);
                }
                let mut connection = self.connection();
                invocation.invoke_async(&mut connection).await
            }
        };
        self.inner.round_trips.record(operation, started.elapsed());
        result.map_err(|error| {
            if error.code() == Some("FENCED") {
                let current = error
                    .detail()
                    .and_then(|detail| detail.trim().parse().ok())
                    .unwrap_or(0);
                return StoreError::Fenced {
                    partition: 0,
                    token: token.parse().unwrap_or(0),
                    current,
                };
            }
            redis_error(operation, &error)
        })
    }

    /// `script` on `key` with `args`, and `WAIT` for `replicas` replicas,
    /// pipelined on one connection to the slot's primary; the script's
    /// answer. `WAIT` counts the writes made on its own connection, so sent
    /// on another (a connection opened again after an error, a topology
    /// refresh) it could answer at once for a write that no replica has.
    /// Retried whole, the script runs again: `apply.lua`'s operations are
    /// idempotent and it always writes, and `lease.lua`'s acquisition
    /// renews, so the `WAIT` after covers the first run's writes too.
    async fn invoke_replicated(
        &self,
        script: &Script,
        key: &str,
        args: Vec<Vec<u8>>,
        replicas: u32,
        timeout: Duration,
    ) -> Result<Value, redis::RedisError> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(script.get_hash()).arg(1).arg(key);
        for arg in args {
            evalsha.arg(arg);
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        let mut pipeline = redis::pipe();
        pipeline.add_command(evalsha).add_command(wait);
        let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
            Slot::for_key(key),
            SlotAddr::Master,
        ));
        let mut loaded = false;
        loop {
            let mut connection = self.waiting();
            let answers = connection
                .route_pipeline(pipeline.clone(), 0, 2, route.clone())
                .await
                .and_then(|values| {
                    let mut values = values.into_iter();
                    match (values.next(), values.next()) {
                        (Some(answer), Some(waited)) => Ok((answer.extract_error()?, waited)),
                        _ => Err(redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "script and WAIT",
                            "fewer answers than commands".to_owned(),
                        ))),
                    }
                });
            match answers {
                Err(error)
                    if !loaded
                        && error.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    // A primary that has not seen the script yet (a new
                    // one after a failover): load it, then send again.
                    let mut connection = self.connection();
                    script
                        .prepare_invoke()
                        .key(key)
                        .load_async(&mut connection)
                        .await?;
                    loaded = true;
                }
                Err(error) => return Err(error),
                Ok((answer, waited)) => {
                    let acknowledged: u32 = redis::from_redis_value(waited).unwrap_or(0);
                    if acknowledged < replicas {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "wait",
                            format!(
                                "only {acknowledged} of {replicas} replicas acknowledged the write within {timeout:?}"
                            ),
                        )));
                    }
                    return Ok(answer);
                }
            }
        }
    }

    /// `lease.lua`: `operation` ("acquire" or "release") of the lease at
    /// `lease_key` by `node` with `argument` (the lease time in ms, or the
    /// token held); the script's `{taken, token or holder, expires}`.
    pub(super) async fn lease(
        &self,
        lease_key: &str,
        operation: &'static str,
        node: &str,
        argument: u64,
    ) -> Result<(bool, String, i64), StoreError> {
        let mut invocation = self.inner.lease.key(lease_key);
        invocation.arg(operation).arg(node).arg(argument);
        let started = Instant::now();
        let mut connection = self.connection();
        let result: Result<(i64, String, i64), redis::RedisError> =
            invocation.invoke_async(&mut connection).await;
        self.inner.round_trips.record("lease", started.elapsed());
        let (taken, who, expires) = result.map_err(|error| redis_error("lease", &error))?;
        Ok((taken == 1, who, expires))
    }

    /// Whether writes wait for replicas (`storage.redis_durability =
    /// "replicas"`).
    pub(super) fn waits_for_replicas(&self) -> bool {
        matches!(self.inner.options.durability, Durability::Replicas { .. })
    }

    /// [`Client::lease`]'s "acquire" again, pipelined with `WAIT` for the
    /// replicas the durability asks for: a token new to the node is used
    /// only once they have it (a failover that lost it would give the same
    /// token to the next holder too). The renewal's answer, which must
    /// carry the same token.
    pub(super) async fn lease_replicated(
        &self,
        lease_key: &str,
        node: &str,
        ttl_ms: u64,
    ) -> Result<(bool, String, i64), StoreError> {
        let Durability::Replicas { count, timeout } = self.inner.options.durability else {
            return self.lease(lease_key, "acquire", node, ttl_ms).await;
        };
        let args = vec![
            b"acquire".to_vec(),
            node.as_bytes().to_vec(),
            ttl_ms.to_string().into_bytes(),
        ];
        let started = Instant::now();
        let result = self
            .invoke_replicated(&self.inner.lease, lease_key, args, count, timeout)
            .await
            .and_then(|value| {
                let answer: (i64, String, i64) = redis::from_redis_value(value)?;
                Ok(answer)
            });
        self.inner.round_trips.record("lease", started.elapsed());
        let (taken, who, expires) = result.map_err(|error| redis_error("lease", &error))?;
        Ok((taken == 1, who, expires))
    }

    /// `members.lua`: `operation` ("register", "join", "leave" or "list")
    /// for `node` with what it `registers`; the live members as (node,
    /// address, registration end in ms, what it serves).
    pub(super) async fn members(
        &self,
        keys: [&str; 3],
        prefix: &str,
        operation: &'static str,
        node: &str,
        registers: &Registration,
    ) -> Result<Vec<(String, String, i64, String)>, StoreError> {
        let Registration {
            address,
            ttl_ms,
            serving,
        } = registers;
        let mut invocation = self.inner.members.key(keys[0]);
        invocation
            .key(keys[1])
            .key(keys[2])
            .arg(operation)
            .arg(node)
            .arg(address)
            .arg(ttl_ms)
            .arg(prefix)
            .arg(serving.as_str());
        let started = Instant::now();
        let mut connection = self.connection();
        let result: Result<Vec<String>, redis::RedisError> =
            invocation.invoke_async(&mut connection).await;
        self.inner.round_trips.record("lease", started.elapsed());
        let flat = result.map_err(|error| redis_error("members", &error))?;
        Ok(flat
            .chunks(4)
            .filter_map(|member| match member {
                [node, address, ends, serving] => Some((
                    node.clone(),
                    address.clone(),
                    ends.parse::<f64>().map_or(0, |ends| ends as i64),
                    serving.clone(),
                )),
                _ => None,
            })
            .collect())
    }

    /// Refuses a primary that does not fsync every write to its AOF.
    async fn check_fsync(self) -> Result<(), StoreError> {
        let all_primaries = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let mut settings = Vec::new();
        for name in ["appendonly", "appendfsync"] {
            let mut command = redis::cmd("CONFIG");
            command.arg("GET").arg(name);
            let mut connection = self.connection();
            let value = connection
                .route_command(command, all_primaries.clone())
                .await
                .map_err(|error| StoreError::Redis {
                    operation: "check durability",
                    message: format!(
                        "{error}; storage.redis_durability = \"fsync\" reads CONFIG GET {name} \
                         from every primary: allow it, or choose \"replicas\" or \"unchecked\""
                    ),
                })?;
            settings.push((name, nodes_and_values(value)));
        }
        let wanted = [("appendonly", "yes"), ("appendfsync", "always")];
        for ((name, nodes), (_, value)) in settings.iter().zip(wanted) {
            for (node, found) in nodes {
                if found != value {
                    return Err(StoreError::Redis {
                        operation: "check durability",
                        message: format!(
                            "primary {node} has {name} {found}; storage.redis_durability = \
                             \"fsync\" needs appendonly yes and appendfsync always on every \
                             primary (or choose \"replicas\" or \"unchecked\")"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A per-node answer of `CONFIG GET name` as (node, value).
fn nodes_and_values(value: Value) -> Vec<(String, String)> {
    let Value::Map(nodes) = value else {
        return vec![("?".to_owned(), last_text(&value))];
    };
    nodes
        .into_iter()
        .map(|(node, answer)| {
            let node: String = redis::from_redis_value(node).unwrap_or_else(|_| "?".to_owned());
            (node, last_text(&answer))
        })
        .collect()
}

/// The last text in a `CONFIG GET` answer (its value, in either protocol).
fn last_text(value: &Value) -> String {
    match value {
        Value::Array(items) => items.last().map(last_text).unwrap_or_default(),
        Value::Map(pairs) => pairs
            .last()
            .map(|(_, value)| last_text(value))
            .unwrap_or_default(),
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// A Redis error as the store's.
pub(super) fn redis_error(operation: &'static str, error: &impl std::fmt::Display) -> StoreError {
    StoreError::Redis {
        operation,
        message: error.to_string(),
    }
}

/// What a node registers in the membership.
#[derive(Debug, Clone, Default)]
pub(super) struct Registration {
    /// Where the other nodes forward calls to it.
    pub(super) address: String,
    /// How long the registration runs unless renewed (ms).
    pub(super) ttl_ms: u64,
    /// What it serves, as [`super::Member::serving`].
    pub(super) serving: String,
}
