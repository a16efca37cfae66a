//! `nudge-bench activation`: first calls to customers that are stored but not
//! live, right after a restart (rehydration).
//!
//! A store is populated with `--customers` customers of `--events` typical
//! events each (written straight through `StateStore::write`, batched by
//! group commit) and closed; the data file is dropped from the OS page cache
//! (unless `--keep-os-cache`), so the first reads go to the disk as after a
//! reboot; then a new store and engine open on it, as a restart does.
//!
//! Then, one call at a time, each scenario calls `--calls` distinct customers
//! drawn at random, never one a previous scenario touched (so every call is a
//! first call to a not-yet-live customer), in this order:
//! - `profile (store read, no activation)`: [`Engine::profile`] reads the
//!   stored state without starting an actor;
//! - `decide dry run, cold`: [`Engine::decide`] with `dry_run`: activation
//!   (store read, decode, actor start) plus a decision, nothing written;
//! - `track, cold`: [`Engine::track`] of one event: activation plus the event
//!   and its durable commit.
//!
//! The same two calls to the now-live customers of those scenarios give the
//! warm baseline; the difference is what activation costs.

use super::{DataDir, Random, customer_id, drop_file_cache, now, populate, typical_event};
use crate::report::{LATENCY_HEADER, machine, new_histogram, record, row};
use hdrhistogram::Histogram;
use nudge_service::clock::SystemClock;
use nudge_service::config::Config;
use nudge_service::engine::Engine;
use nudge_service::store::{RedbStore, StoreOptions};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags of `nudge-bench activation`.
#[derive(Debug, clap::Args)]
pub struct ActivationArgs {
    /// Stored customers.
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Typical events per stored customer.
    #[arg(long, default_value_t = 5)]
    events: u64,
    /// Measured first calls per scenario.
    #[arg(long, default_value_t = 2_000)]
    calls: u64,
    /// Placement of the Decide calls.
    #[arg(long, default_value = "home_banner")]
    placement: String,
    /// Leave the data file in the OS page cache (by default it is dropped
    /// before the restart, so first reads hit the disk).
    #[arg(long)]
    keep_os_cache: bool,
    /// Data directory to use instead of a temporary one (kept; populated
    /// unless it already holds enough customers).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A measured call.
#[derive(Debug, Clone, Copy)]
enum Call {
    Profile,
    DecideDryRun,
    Track,
}

/// Runs the activation bench.
pub async fn run(args: ActivationArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.calls * 3 <= args.customers,
        "--customers must be at least 3 × --calls so every call meets a new customer"
    );
    let dir = DataDir::new(args.data_dir.as_deref(), "activation", false)?;
    let populated = populate(dir.path(), args.customers, args.events).await?;
    println!(
        "populated {} customers in {:.1?} ({} stored)",
        populated.written, populated.elapsed, populated.stored
    );
    let dropped = !args.keep_os_cache && drop_file_cache(&dir.data_file());

    let opening = Instant::now();
    let store = Arc::new(RedbStore::open(dir.path(), StoreOptions::default())?);
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    let engine = nudge_service::start(config, store.clone(), Arc::new(SystemClock))?;
    let opened = opening.elapsed();

    let mut random = Random::new(42);
    let order = random.permutation(populated.stored.min(args.customers));
    let mut chunks = order.chunks(args.calls as usize);
    let mut rows = Vec::new();
    let mut cold = Vec::new();
    for (name, call) in [
        ("profile (store read, no activation)", Call::Profile),
        (
            "decide dry run, cold (activation + decision)",
            Call::DecideDryRun,
        ),
        (
            "track, cold (activation + event + durable commit)",
            Call::Track,
        ),
    ] {
        let customers = chunks.next().unwrap_or_default();
        let (histogram, wall) = measure(&engine, call, customers, &args.placement, 0).await?;
        rows.push(row(name, &histogram, wall));
        cold.push((call, customers, histogram));
    }
    // The same calls again, to the customers now live: the warm baseline.
    let mut differences = Vec::new();
    for (call, customers, cold) in &cold {
        let name = match call {
            Call::Profile => continue,
            Call::DecideDryRun => "decide dry run, warm (same customers, now live)",
            Call::Track => "track, warm (same customers, now live)",
        };
        let (warm, wall) = measure(&engine, *call, customers, &args.placement, 1).await?;
        rows.push(row(name, &warm, wall));
        differences.push(format!(
            "{}: cold p50 {} µs / p99 {} µs vs warm p50 {} µs / p99 {} µs",
            match call {
                Call::Track => "track",
                _ => "decide dry run",
            },
            cold.value_at_quantile(0.50),
            cold.value_at_quantile(0.99),
            warm.value_at_quantile(0.50),
            warm.value_at_quantile(0.99),
        ));
    }
    let live = engine.registry().live();
    engine.shutdown(Duration::from_secs(10)).await;
    drop(engine);
    store.close()?;

    let mut report = String::new();
    writeln!(
        report,
        "nudge-bench activation: {} stored customers ({} typical events each), data file {} MiB; restart: store + engine opened in {} ms \
         with the data file {} the OS page cache; {} sequential first calls per scenario to distinct random customers, never live before; \
         {} live at the end; {}\n",
        populated.stored,
        args.events,
        super::mib(dir.data_file_bytes()),
        opened.as_millis(),
        if dropped { "dropped from" } else { "still in" },
        args.calls,
        live,
        machine(),
    )?;
    writeln!(report, "{LATENCY_HEADER}")?;
    for line in &rows {
        writeln!(report, "{line}")?;
    }
    writeln!(report)?;
    writeln!(report, "Cold activation {}.", differences.join("; "))?;
    crate::report::emit(&report, args.out.as_deref())?;
    Ok(())
}

/// Calls `call` once for each of `customers`, one at a time.
async fn measure(
    engine: &Engine,
    call: Call,
    customers: &[u64],
    placement: &str,
    round: u64,
) -> anyhow::Result<(Histogram<u64>, Duration)> {
    let mut histogram = new_histogram()?;
    let started = Instant::now();
    for (ordinal, &customer) in customers.iter().enumerate() {
        let id = customer_id(customer);
        let timer = Instant::now();
        match call {
            Call::Profile => {
                engine.profile(&id).await?;
            }
            Call::DecideDryRun => {
                engine.decide(super::dry_run(id, placement), None).await?;
            }
            Call::Track => {
                let mut event =
                    typical_event(customer, 1_000 * (round + 1) + ordinal as u64, now());
                event.timestamp = now();
                engine.track(&id, vec![event]).await?;
            }
        }
        record(&mut histogram, timer);
    }
    Ok((histogram, started.elapsed()))
}
