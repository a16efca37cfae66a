//! `nudge-bench memory`: resident memory per live customer actor, with many
//! more customers stored than live.
//!
//! A store is populated with `--stored` customers of `--events` typical
//! events each. The engine opens it in-process (`actors.max_live_customers`
//! above everything activated here, a one-day idle timeout, no sweeper), then:
//! 1. every stored customer is read once through `StateStore::load`, which
//!    fills redb's page cache (`--cache-mib`, 128 MiB by default, as `nudge
//!    serve` uses) to its bound before anything is measured; redb keeps its
//!    read cache and write buffer together under that bound, so the cache
//!    cannot grow through the measured steps;
//! 2. `--live` stored customers are activated with one `Track` each
//!    (`--concurrency` in flight); RSS (VmRSS) before and after, divided by
//!    the number activated, is the memory per live actor including its
//!    profile;
//! 3. as many never-seen customers are activated with a dry-run Decide: the
//!    same difference for an actor with an empty state (actor, mailbox,
//!    registry entry), so (2) − (3) is roughly the profile's share;
//! 4. as many typical states (the same customers' states) are built and held
//!    in a `Vec`: the state's own heap footprint, without actor or store.
//!
//! The serialized (stored) size of a typical customer is reported beside.

use super::{
    DataDir, Random, customer_id, encoded_size, mib, now, populate, rss_bytes, typical_event,
    typical_state,
};
use crate::report::machine;
use nudge_service::clock::SystemClock;
use nudge_service::config::Config;
use nudge_service::engine::Engine;
use nudge_service::store::{RedbStore, StoreOptions};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `nudge-bench memory`.
#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Stored customers.
    #[arg(long, default_value_t = 1_000_000)]
    stored: u64,
    /// Customers activated (made live).
    #[arg(long, default_value_t = 100_000)]
    live: u64,
    /// Typical events per stored customer.
    #[arg(long, default_value_t = 5)]
    events: u64,
    /// Activation calls in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: u64,
    /// redb page cache, MiB.
    #[arg(long, default_value_t = 128)]
    cache_mib: usize,
    /// Data directory to use instead of a temporary one (kept; populated
    /// unless it already holds enough customers).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the memory bench.
pub async fn run(args: MemoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.live > 0 && args.live <= args.stored,
        "need 0 < --live <= --stored"
    );
    let dir = DataDir::new(args.data_dir.as_deref(), "memory", false)?;
    let populated = populate(dir.path(), args.stored, args.events).await?;
    println!(
        "populated {} customers in {:.1?} ({} stored)",
        populated.written, populated.elapsed, populated.stored
    );
    let rss_before_open = rss_bytes()?;

    let store = Arc::new(RedbStore::open(
        dir.path(),
        StoreOptions {
            cache_bytes: args.cache_mib * 1024 * 1024,
            ..StoreOptions::default()
        },
    )?);
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.actors.max_live_customers =
        (2 * args.live as usize).max(config.actors.max_live_customers) + 1_000;
    config.actors.idle_timeout_secs = 86_400;
    let engine = Arc::new(nudge_service::start(
        config,
        store.clone(),
        Arc::new(SystemClock),
    )?);
    let rss_opened = rss_bytes()?;

    // 1. Fill redb's cache: read every stored customer once.
    let warming = Instant::now();
    let reader = store.clone();
    let stored = populated.stored;
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut found = 0;
        for customer in 0..stored {
            found += u64::from(reader.load_now(&customer_id(customer))?.is_some());
        }
        Ok(found)
    })
    .await??;
    let warmed = warming.elapsed();
    anyhow::ensure!(read == stored, "read {read} of {stored} stored customers");
    let rss_warm = rss_bytes()?;

    // 2. Activate `live` stored customers with one Track each.
    let mut random = Random::new(7);
    let chosen: Arc<Vec<u64>> = Arc::new(
        random
            .permutation(stored)
            .into_iter()
            .take(args.live as usize)
            .collect(),
    );
    let activating = Instant::now();
    activate(&engine, args.concurrency, args.live, {
        let chosen = chosen.clone();
        move |engine, index| {
            let chosen = chosen.clone();
            async move {
                let customer = chosen[index as usize];
                let mut event = typical_event(customer, 10_000, now());
                event.timestamp = now();
                engine.track(&customer_id(customer), vec![event]).await?;
                anyhow::Ok(())
            }
        }
    })
    .await?;
    let activated_in = activating.elapsed();
    let live_stored = engine.registry().live();
    let rss_live = rss_bytes()?;

    // 3. As many never-seen customers, empty state, by a dry-run Decide.
    activate(
        &engine,
        args.concurrency,
        args.live,
        |engine, index| async move {
            engine
                .decide(
                    super::dry_run(format!("empty-{index:08}"), "home_banner"),
                    None,
                )
                .await?;
            anyhow::Ok(())
        },
    )
    .await?;
    let live_all = engine.registry().live();
    let rss_empty = rss_bytes()?;

    // 4. The same number of typical states alone, held in a Vec: no actor,
    // no registry, no store.
    let now = now();
    let states: Vec<_> = chosen
        .iter()
        .map(|&customer| {
            let mut state = typical_state(customer, args.events, now);
            state.track(&typical_event(customer, 10_000, now), now);
            state
        })
        .collect();
    let rss_states = rss_bytes()?;
    drop(states);

    engine.shutdown(Duration::from_secs(30)).await;
    drop(engine);
    store.close()?;

    let stored_state = encoded_size(&typical_state(0, args.events, now))?;
    let live_state = {
        let mut state = typical_state(0, args.events, now);
        state.track(&typical_event(0, 10_000, now), now);
        encoded_size(&state)?
    };
    let per_actor = rss_live.saturating_sub(rss_warm) as f64 / live_stored.max(1) as f64;
    let per_empty =
        rss_empty.saturating_sub(rss_live) as f64 / (live_all - live_stored).max(1) as f64;

    let mut report = String::new();
    writeln!(
        report,
        "nudge-bench memory: {} stored customers ({} typical events each), data file {} MiB, redb cache {} MiB; \
         {} activated by one Track each ({} in flight, {:.1} s), then {} never-seen customers by a dry-run Decide; \
         RSS from /proc/self/status VmRSS; {}\n",
        stored,
        args.events,
        mib(dir.data_file_bytes()),
        args.cache_mib,
        live_stored,
        args.concurrency,
        activated_in.as_secs_f64(),
        live_all - live_stored,
        machine(),
    )?;
    writeln!(report, "| step | VmRSS MiB | Δ MiB | Δ per live actor |")?;
    writeln!(report, "|---|---|---|---|")?;
    writeln!(
        report,
        "| before opening the store | {} | | |",
        mib(rss_before_open)
    )?;
    writeln!(
        report,
        "| store + engine open | {} | {} | |",
        mib(rss_opened),
        mib(rss_opened.saturating_sub(rss_before_open))
    )?;
    writeln!(
        report,
        "| every stored customer read once ({:.1} s): redb cache full | {} | {} | |",
        warmed.as_secs_f64(),
        mib(rss_warm),
        mib(rss_warm.saturating_sub(rss_opened))
    )?;
    writeln!(
        report,
        "| {live_stored} stored customers live (one Track each) | {} | {} | **{per_actor:.0} B** ({:.2}× the 4 KiB target) |",
        mib(rss_live),
        mib(rss_live.saturating_sub(rss_warm)),
        per_actor / 4096.0,
    )?;
    writeln!(
        report,
        "| + {} never-seen customers live (empty state) | {} | {} | {per_empty:.0} B |",
        live_all - live_stored,
        mib(rss_empty),
        mib(rss_empty.saturating_sub(rss_live)),
    )?;
    writeln!(
        report,
        "| + {} typical states alone in a `Vec` (no actor, registry or store) | {} | {} | {:.0} B |",
        chosen.len(),
        mib(rss_states),
        mib(rss_states.saturating_sub(rss_empty)),
        rss_states.saturating_sub(rss_empty) as f64 / chosen.len().max(1) as f64,
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "Serialized state of a typical customer (MessagePack with field names, as stored): {stored_state} B with {} events, \
         {live_state} B after the bench's Track.",
        args.events
    )?;
    crate::report::emit(&report, args.out.as_deref())?;
    Ok(())
}

/// Calls `call(engine, index)` for `index` in `0..total`, `concurrency` at a
/// time.
async fn activate<F, Fut>(
    engine: &Arc<Engine>,
    concurrency: u64,
    total: u64,
    call: F,
) -> anyhow::Result<()>
where
    F: Fn(Arc<Engine>, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let engine = engine.clone();
    super::for_each(concurrency, total, move |index| call(engine.clone(), index)).await
}
