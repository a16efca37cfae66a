//! Storage benches: the durable store ([`RedbStore`]) under the engine and
//! behind the real `nudge` binary.
//!
//! - [`ingest`]: durable event ingest throughput and acknowledgement latency
//!   with group commit (in-process engine, and gRPC `Track` on loopback);
//! - [`activation`]: first calls to customers that are stored but not live,
//!   after a restart (rehydration);
//! - [`restart`]: `nudge serve` from spawn to health SERVING on a large data
//!   directory, after a clean stop and after `kill -9`;
//! - [`memory`]: resident memory per live actor with many customers stored.
//!
//! What they share lives here: temporary data directories, populating a store
//! quickly through group commit, a typical customer's events, a small
//! deterministic random source, RSS, and dropping a file from the OS page cache.
//! [`commits`] counts the store's commits through its metrics.

pub mod activation;
pub mod commits;
pub mod ingest;
pub mod memory;
pub mod restart;

use anyhow::Context as _;
use nudge_models::customer::CustomerState;
use nudge_models::profile::Event;
use nudge_models::time::{HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use nudge_service::clock::{Clock as _, SystemClock};
use nudge_service::store::{Commit, DATA_FILE, RedbStore, StateStore, StoreOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Event names of the demo catalog a typical customer produces.
const EVENT_NAMES: [&str; 5] = [
    "page_view",
    "login",
    "pricing_page_view",
    "feature_activated",
    "report_created",
];

/// Writes queued ahead of the oldest unacknowledged chunk while populating.
const POPULATE_CHUNK: u64 = 20_000;

/// The id of the `index`th bench customer.
pub fn customer_id(index: u64) -> String {
    format!("customer-{index:08}")
}

/// The current time on the service's clock.
pub fn now() -> Timestamp {
    SystemClock.now()
}

/// The `ordinal`th event of `customer`: the first is an `identify` setting
/// plan and country, the others demo events spread over the past days.
pub fn typical_event(customer: u64, ordinal: u64, now: Timestamp) -> Event {
    let mut properties = BTreeMap::new();
    let name = if ordinal == 0 {
        let plan = ["trial", "free", "pro", "team"][(customer % 4) as usize];
        let country = ["DE", "FR", "US", "GB", "NL"][(customer % 5) as usize];
        properties.insert("plan".to_owned(), AttrValue::Str(plan.to_owned()));
        properties.insert("country".to_owned(), AttrValue::Str(country.to_owned()));
        properties.insert("seats".to_owned(), AttrValue::Num((customer % 20) as f64));
        "identify"
    } else {
        properties.insert(
            "path".to_owned(),
            AttrValue::Str(format!("/app/page/{}", ordinal % 7)),
        );
        EVENT_NAMES[((customer + ordinal) % EVENT_NAMES.len() as u64) as usize]
    };
    let hours_ago = (customer.wrapping_mul(7) + ordinal * 13) % (24 * 20);
    Event {
        event_id: format!("{}-e{ordinal}", customer_id(customer)),
        name: name.to_owned(),
        timestamp: Timestamp::from_millis(now.millis() - hours_ago as i64 * HOUR_MS),
        properties,
    }
}

/// The state of a customer who produced `events` typical events.
pub fn typical_state(customer: u64, events: u64, now: Timestamp) -> CustomerState {
    let mut state = CustomerState::default();
    for ordinal in 0..events {
        state.track(&typical_event(customer, ordinal, now), now);
    }
    state
}

/// The size in bytes of `state` as the store encodes it (MessagePack with
/// field names, as `store::records` does).
pub fn encoded_size(state: &CustomerState) -> anyhow::Result<usize> {
    Ok(rmp_serde::to_vec_named(state)
        .context("encode customer state")?
        .len())
}

/// A data directory under the system's temporary directory, deleted on drop
/// unless kept; or a directory given by the user, never deleted.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    delete: bool,
}

impl DataDir {
    /// `given` if set (kept), else a fresh temporary directory named for
    /// `bench` (deleted on drop unless `keep`).
    pub fn new(given: Option<&Path>, bench: &str, keep: bool) -> anyhow::Result<Self> {
        if let Some(path) = given {
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            return Ok(Self {
                path: path.to_owned(),
                delete: false,
            });
        }
        let path = std::env::temp_dir().join(format!(
            "nudge-bench-{bench}-{}-{}",
            std::process::id(),
            now().millis()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            path,
            delete: !keep,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data file in it.
    pub fn data_file(&self) -> PathBuf {
        self.path.join(DATA_FILE)
    }

    /// The data file's size in bytes (0 if absent).
    pub fn data_file_bytes(&self) -> u64 {
        std::fs::metadata(self.data_file()).map_or(0, |metadata| metadata.len())
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.delete {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            println!("kept data directory {}", self.path.display());
        }
    }
}

/// How a store was populated.
#[derive(Debug, Clone, Copy)]
pub struct Populated {
    /// Customers written by this run (0 when the directory already held them).
    pub written: u64,
    /// Wall time of the writes, including the final commit.
    pub elapsed: Duration,
    /// Customers stored afterwards.
    pub stored: u64,
}

/// Ensures the store in `dir` holds customers `0..customers`, each with the
/// state of `events` typical events: writes them through
/// [`StateStore::write`], queueing a chunk while the previous one commits so
/// group commit makes few large transactions. A store that already holds at
/// least `customers` customers is left as it is (a reused `--data-dir`).
pub async fn populate(dir: &Path, customers: u64, events: u64) -> anyhow::Result<Populated> {
    let store = RedbStore::open(
        dir,
        StoreOptions {
            max_batch_writes: POPULATE_CHUNK as usize,
            ..StoreOptions::default()
        },
    )?;
    let already = StateStore::len(&store)?;
    if already >= customers {
        store.close()?;
        return Ok(Populated {
            written: 0,
            elapsed: Duration::ZERO,
            stored: already,
        });
    }
    let now = now();
    let started = Instant::now();
    let mut previous_chunk: Option<Commit> = None;
    let mut first = 0;
    while first < customers {
        let last = (first + POPULATE_CHUNK).min(customers);
        let mut commit = None;
        for customer in first..last {
            let id: Arc<str> = Arc::from(customer_id(customer));
            commit = Some(StateStore::write(
                &store,
                &id,
                &typical_state(customer, events, now),
            ));
        }
        // Writes commit in queue order: once the previous chunk's last write
        // is durable, the whole chunk is.
        if let Some(commit) = previous_chunk.take() {
            commit.wait().await?;
        }
        previous_chunk = commit;
        first = last;
        if first % 200_000 == 0 {
            println!("populated {first} customers in {:.1?}", started.elapsed());
        }
    }
    if let Some(commit) = previous_chunk {
        commit.wait().await?;
    }
    let elapsed = started.elapsed();
    let stored = StateStore::len(&store)?;
    store.close()?;
    Ok(Populated {
        written: customers - already,
        elapsed,
        stored,
    })
}

/// A deterministic pseudo-random sequence (SplitMix64): enough to spread
/// calls over customers, and the same for every run.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^ (value >> 31)
    }

    /// A value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// `0..count` in a random order.
    pub fn permutation(&mut self, count: u64) -> Vec<u64> {
        let mut values: Vec<u64> = (0..count).collect();
        for index in (1..values.len()).rev() {
            let other = self.below(index as u64 + 1) as usize;
            values.swap(index, other);
        }
        values
    }
}

/// This process's resident set size in bytes (VmRSS).
pub fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    crate::report::kib_field(&status, "VmRSS:")
        .map(|kib| kib * 1024)
        .context("no VmRSS in /proc/self/status")
}

/// Asks the kernel to drop `file` from the page cache (GNU `dd` with
/// `iflag=nocache count=0`, which only affects that file), so the next reads
/// go to the disk. Returns whether it worked.
pub fn drop_file_cache(file: &Path) -> bool {
    std::process::Command::new("dd")
        .arg(format!("if={}", file.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .is_ok_and(|status| status.success())
}

/// MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// A dry-run Decide for `customer_id` in `placement`: activates the
/// customer's actor and decides without writing anything.
pub fn dry_run(customer_id: String, placement: &str) -> nudge_service::engine::DecideInput {
    nudge_service::engine::DecideInput {
        customer_id,
        placement: placement.to_owned(),
        context: Default::default(),
        candidates: Vec::new(),
        limit: 0,
        dry_run: true,
        explain: false,
        request_id: String::new(),
    }
}

/// Calls `call(index)` for `index` in `0..total`, `concurrency` at a time.
pub async fn for_each<F, Fut>(concurrency: u64, total: u64, call: F) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    paced(concurrency, total, Duration::ZERO, call).await
}

/// Like [`for_each`], call `index` not before `index / total` of `over`.
pub async fn paced<F, Fut>(
    concurrency: u64,
    total: u64,
    over: Duration,
    call: F,
) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = tokio::time::Instant::now();
    for _ in 0..concurrency {
        let next = next.clone();
        let call = call.clone();
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= total {
                    return anyhow::Ok(());
                }
                if !over.is_zero() {
                    tokio::time::sleep_until(started + over.mul_f64(index as f64 / total as f64))
                        .await;
                }
                call(index).await?;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}
