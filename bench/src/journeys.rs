//! `nudge-bench journeys`: journey timers and dispatch at scale, in process,
//! on the durable store (the default) with the engine's own timer task.
//!
//! 1. `--customers` customers are made live with one `Track` each (an event
//!    no journey waits on); RSS (VmRSS) is read.
//! 2. Each is sent the trigger of `--waits` journeys whose only step is a
//!    wait, the k-th `--delay-secs + k × --step-secs` long: that many
//!    scheduled waits per customer, their due moments spread by when each
//!    customer was triggered and by k. RSS again: the difference over the
//!    waits scheduled is the memory per scheduled wait (the run in the
//!    customer's state, the timer index entry).
//! 3. Until the first wait is due, `Decide` runs open loop at
//!    `--decide-rate` on other customers (recorded, durable): the latency
//!    without timers. It goes on while the waits fire, until every run has
//!    ended: the latency while timers fire.
//! 4. Each run's history says when its wait ended; its due moment is its
//!    start plus the wait: the lateness of every one of the waits.
//! 5. A delivery service subscribes (in process, to the engine's dispatch
//!    hub) and acknowledges every dispatch; `--sends` new customers are
//!    sent the trigger of a journey that sends at once, as fast as
//!    `--concurrency` allows: dispatches per second to the one subscriber,
//!    and the time from each `Track` to its dispatch in the subscriber's
//!    hands.

use crate::report::{LATENCY_HEADER, machine, new_histogram, record_duration, row};
use crate::storage::{DataDir, dry_run, for_each, mib, paced, rss_bytes};
use hdrhistogram::Histogram;
use nudge_models::journey::{Happened, Run};
use nudge_models::profile::Event;
use nudge_models::time::Timestamp;
use nudge_service::clock::SystemClock;
use nudge_service::config::Config;
use nudge_service::engine::{DecideInput, Engine};
use nudge_service::store::{RedbStore, StoreOptions};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Flags of `nudge-bench journeys`.
#[derive(Debug, clap::Args)]
pub struct JourneysArgs {
    /// Live customers with scheduled waits.
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Scheduled waits per customer (one journey each).
    #[arg(long, default_value_t = 10)]
    waits: u32,
    /// The first journey's wait, seconds: scheduling must be done before.
    #[arg(long, default_value_t = 120)]
    delay_secs: u64,
    /// How much longer each further journey waits, seconds.
    #[arg(long, default_value_t = 20)]
    step_secs: u64,
    /// Customers are sent the trigger at an even pace over this many
    /// seconds, so their waits fall due as evenly (0: as fast as possible).
    #[arg(long, default_value_t = 100)]
    spread_secs: u64,
    /// Decide calls per second, open loop, before and while the waits fire.
    #[arg(long, default_value_t = 500)]
    decide_rate: u64,
    /// Sends for the dispatch throughput step (0: skip it).
    #[arg(long, default_value_t = 50_000)]
    sends: u64,
    /// Calls in flight while customers are made live, scheduled and sent.
    #[arg(long, default_value_t = 256)]
    concurrency: u64,
    /// Keep everything in memory instead of the durable store.
    #[arg(long)]
    in_memory: bool,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The demo catalog without its journeys, then the bench's: `waits`
/// journeys that only wait, and one that sends at once.
fn catalog(args: &JourneysArgs) -> String {
    let demo = nudge_models::demo::CATALOG_TOML;
    let mut text = demo
        .find("\n# ── Journeys")
        .map_or(demo, |journeys| &demo[..journeys])
        .to_owned();
    let _ = write!(
        text,
        "\n[journey_policy]\nmax_concurrent = {}\n",
        args.waits + 1
    );
    for k in 0..u64::from(args.waits) {
        let _ = write!(
            text,
            "\n[[journeys]]\nid = \"wait_{k}\"\ntrigger = {{ event = \"bench_wait\" }}\n\n\
             [[journeys.steps]]\nid = \"wait\"\nwait = \"{}s\"\n",
            wait_secs(args, k)
        );
    }
    text.push_str(
        "\n[[journeys]]\nid = \"send_now\"\ntrigger = { event = \"bench_send\" }\n\n\
         [[journeys.steps]]\nid = \"guide\"\nsend = { action = \"guide_getting_started\" }\n",
    );
    text
}

fn wait_secs(args: &JourneysArgs, k: u64) -> u64 {
    args.delay_secs + k * args.step_secs
}

fn event(name: &str, id: String) -> Event {
    Event {
        event_id: id,
        name: name.to_owned(),
        timestamp: Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        properties: Default::default(),
    }
}

/// `call` again, after a pause, while the store asks to retry (it is
/// catching up on its checkpoints): what a client does with
/// RESOURCE_EXHAUSTED. Counts the retries in `retries`.
async fn retrying<T, Fut>(
    retries: &AtomicU64,
    mut call: impl FnMut() -> Fut,
) -> Result<T, nudge_service::error::ServiceError>
where
    Fut: Future<Output = Result<T, nudge_service::error::ServiceError>>,
{
    loop {
        match call().await {
            Err(nudge_service::error::ServiceError::Storage(
                nudge_service::store::StoreError::Behind { .. },
            )) => {
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

fn customer(index: u64) -> String {
    format!("j-{index:07}")
}

/// Decides at `rate` per second, open loop (each call measured from its
/// intended start), until `stop` says so; the latencies and the calls that
/// failed.
async fn decide_load(
    engine: Arc<Engine>,
    rate: u64,
    mut stop: impl FnMut() -> bool,
) -> anyhow::Result<(Histogram<u64>, u64, Duration)> {
    let histogram = Arc::new(Mutex::new(new_histogram()?));
    let failed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0_u64;
    while !stop() {
        let intended = started + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(intended.into()).await;
        let engine = engine.clone();
        let histogram = histogram.clone();
        let failed = failed.clone();
        let input = DecideInput {
            dry_run: false,
            ..dry_run(format!("d-{:05}", sent % 20_000), "home_banner")
        };
        tasks.spawn(async move {
            let answered = engine.decide(input, None).await;
            if answered.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut histogram) = histogram.lock() {
                record_duration(&mut histogram, intended.elapsed());
            }
        });
        sent += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let wall = started.elapsed();
    let histogram = Arc::try_unwrap(histogram)
        .map_err(|_| anyhow::anyhow!("the histogram is still shared"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a Decide task panicked"))?;
    Ok((histogram, failed.load(Ordering::Relaxed), wall))
}

/// Tracks `name` for every customer, paced over `over`, retrying while the
/// store catches up (counted in `retries`).
async fn track_each(
    engine: &Arc<Engine>,
    args: &JourneysArgs,
    over: Duration,
    name: &'static str,
    retries: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    paced(args.concurrency, args.customers, over, {
        let engine = engine.clone();
        let retries = retries.clone();
        move |index| {
            let engine = engine.clone();
            let retries = retries.clone();
            async move {
                let id = customer(index);
                retrying(&retries, || {
                    engine.track(&id, vec![event(name, format!("{id}-{name}"))])
                })
                .await?;
                anyhow::Ok(())
            }
        }
    })
    .await
}

/// When a run's wait ended (its end), and when it was due.
fn wait_ended(run: &Run, wait_ms: i64) -> Option<(Timestamp, Timestamp)> {
    let due = Timestamp::from_millis(run.started_at.millis() + wait_ms);
    run.history.iter().find_map(|entry| match &entry.what {
        Happened::Ended { .. } => Some((entry.at, due)),
        _ => None,
    })
}

/// Runs the journeys bench.
pub async fn run(args: JourneysArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.customers > 0 && args.waits > 0, "nothing to schedule");
    let dir = DataDir::new(None, "journeys", false)?;
    let catalog_path = dir.path().join("catalog.toml");
    std::fs::write(&catalog_path, catalog(&args))?;
    let mut config = Config {
        catalog: Some(catalog_path),
        ..Config::default()
    };
    config.storage.data_dir = dir.path().join("data");
    config.storage.in_memory = args.in_memory;
    config.actors.max_live_customers = usize::try_from(args.customers + args.sends)? + 50_000;
    config.actors.idle_timeout_secs = 86_400;
    let store = if args.in_memory {
        RedbStore::in_memory(StoreOptions::default())
    } else {
        std::fs::create_dir_all(&config.storage.data_dir)?;
        RedbStore::open(&config.storage.data_dir, StoreOptions::default())?
    };
    let store = Arc::new(store);
    let engine = Arc::new(nudge_service::start(
        config,
        store.clone(),
        Arc::new(SystemClock),
    )?);
    let timers = tokio::spawn(engine.clone().fire_journey_timers());
    let rss_opened = rss_bytes()?;

    // 1. Live customers, no journey.
    let retries = Arc::new(AtomicU64::new(0));
    let live_started = Instant::now();
    track_each(&engine, &args, Duration::ZERO, "page_view", &retries).await?;
    let made_live = live_started.elapsed();
    let rss_live = rss_bytes()?;

    // 2. The waits.
    let scheduling = Instant::now();
    let spread = Duration::from_secs(args.spread_secs);
    track_each(&engine, &args, spread, "bench_wait", &retries).await?;
    let scheduled_in = scheduling.elapsed();
    let rss_scheduled = rss_bytes()?;
    let scheduled = args.customers * u64::from(args.waits);
    let (due, parked) = engine.shared().timers.len();
    anyhow::ensure!(
        scheduled_in.as_secs() + 2 < args.delay_secs,
        "scheduling took {scheduled_in:.1?}, longer than the first wait ({} s): raise --delay-secs",
        args.delay_secs
    );
    println!(
        "scheduled {scheduled} waits for {} customers in {scheduled_in:.1?} ({due} customers due, {parked} parked)",
        args.customers
    );

    // 3. Decide without timers firing, then while they fire.
    let first_due = scheduling + Duration::from_secs(args.delay_secs);
    let quiet = decide_load(engine.clone(), args.decide_rate, || {
        Instant::now() + Duration::from_secs(1) >= first_due
    })
    .await?;
    while Instant::now() < first_due {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let firing_started = Instant::now();
    let firing_engine = engine.clone();
    let firing = decide_load(engine.clone(), args.decide_rate, move || {
        firing_engine.shared().timers.len() == (0, 0)
    })
    .await?;
    let fired_in = firing_started.elapsed();

    // 4. Lateness of every wait, from the runs' history.
    let mut lateness = new_histogram()?;
    let mut per_second: HashMap<i64, u64> = HashMap::new();
    let mut ended = 0_u64;
    let mut within_100ms = 0_u64;
    for index in 0..args.customers {
        let state = engine.profile(&customer(index)).await?;
        for run in &state.journeys.runs {
            let Some(k) = run
                .journey
                .strip_prefix("wait_")
                .and_then(|k| k.parse::<u64>().ok())
            else {
                continue;
            };
            let wait_ms = i64::try_from(wait_secs(&args, k) * 1_000)?;
            if let Some((at, due)) = wait_ended(run, wait_ms) {
                let late_ms = (at.millis() - due.millis()).max(0);
                ended += 1;
                within_100ms += u64::from(late_ms <= 100);
                record_duration(&mut lateness, Duration::from_millis(late_ms.unsigned_abs()));
                *per_second.entry(at.millis() / 1_000).or_default() += 1;
            }
        }
    }
    let peak_per_second = per_second.values().copied().max().unwrap_or(0);

    let mut report = String::new();
    let store_kind = if args.in_memory {
        "in-memory store"
    } else {
        "durable store (write-ahead log, default settings)"
    };
    writeln!(
        report,
        "nudge-bench journeys: {} live customers, {} waits each ({} scheduled), the k-th wait {} s + k × {} s, \
         the customers triggered evenly over {} s; {store_kind}; in process, the engine's timer task on the \
         system clock; {}\n",
        args.customers,
        args.waits,
        scheduled,
        args.delay_secs,
        args.step_secs,
        args.spread_secs,
        machine(),
    )?;
    writeln!(report, "| step | figure |")?;
    writeln!(report, "|---|---|")?;
    writeln!(
        report,
        "| customers made live (one Track each) | {:.1} s, VmRSS {} → {} MiB |",
        made_live.as_secs_f64(),
        mib(rss_opened),
        mib(rss_live)
    )?;
    writeln!(
        report,
        "| Tracks retried while the store caught up on its checkpoints (live, schedule) | {} |",
        retries.load(Ordering::Relaxed)
    )?;
    writeln!(
        report,
        "| waits scheduled (one Track each, {} runs per customer, paced) | {:.1} s, VmRSS → {} MiB |",
        args.waits,
        scheduled_in.as_secs_f64(),
        mib(rss_scheduled)
    )?;
    writeln!(
        report,
        "| **memory per scheduled wait** | **{:.0} B** (VmRSS Δ {} MiB over {scheduled}) |",
        rss_scheduled.saturating_sub(rss_live) as f64 / scheduled as f64,
        mib(rss_scheduled.saturating_sub(rss_live)),
    )?;
    writeln!(
        report,
        "| waits that ended | {ended} of {scheduled}, over {:.1} s; peak {peak_per_second} per second |",
        fired_in.as_secs_f64()
    )?;
    writeln!(
        report,
        "| **lateness** (history: the wait's end − its due moment, ms resolution) | p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms; **{:.2} % within 100 ms** |",
        lateness.value_at_quantile(0.50) / 1_000,
        lateness.value_at_quantile(0.99) / 1_000,
        lateness.value_at_quantile(0.999) / 1_000,
        lateness.max() / 1_000,
        100.0 * within_100ms as f64 / ended.max(1) as f64,
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "Decide (durable, `home_banner`, open loop at {}/s on 20,000 other customers), measured from each call's intended start:\n",
        args.decide_rate
    )?;
    writeln!(report, "{LATENCY_HEADER}")?;
    writeln!(
        report,
        "{}",
        row(
            &format!("no timer due ({} failed)", quiet.1),
            &quiet.0,
            quiet.2
        )
    )?;
    writeln!(
        report,
        "{}",
        row(
            &format!("while the waits fire ({} failed)", firing.1),
            &firing.0,
            firing.2
        )
    )?;
    crate::report::emit(&report, args.out.as_deref())?;

    // 5. Dispatch throughput to one subscriber that acknowledges each.
    if args.sends > 0 {
        let dispatch = dispatch_throughput(&engine, &args).await?;
        let mut report = String::new();
        writeln!(
            report,
            "Dispatch throughput to one in-process subscriber acknowledging each ({ACKS_IN_FLIGHT} acknowledgements in flight): **{:.0} dispatches/s** ({} in {:.1} s; {} handed out again; {} calls retried while the store caught up).",
            dispatch.received as f64 / dispatch.wall.as_secs_f64(),
            dispatch.received,
            dispatch.wall.as_secs_f64(),
            dispatch.redelivered,
            dispatch.retries,
        )?;
        writeln!(report)?;
        writeln!(
            report,
            "From each `Track` of the trigger to its dispatch in the subscriber's hands ({} sends, {} in flight, as fast as they go):\n",
            args.sends, args.concurrency
        )?;
        writeln!(report, "{LATENCY_HEADER}")?;
        writeln!(
            report,
            "{}",
            row("track → dispatch", &dispatch.latency, dispatch.wall)
        )?;
        crate::report::emit(&report, args.out.as_deref())?;
    }

    timers.abort();
    engine.shutdown(Duration::from_secs(60)).await;
    drop(engine);
    store.close()?;
    Ok(())
}

/// What the dispatch step measured.
struct DispatchFigures {
    received: u64,
    /// Dispatches handed out again (not taken in time: the subscriber's
    /// buffer was full, or its acknowledgement came late).
    redelivered: u64,
    /// Calls retried because the store was catching up.
    retries: u64,
    wall: Duration,
    latency: Histogram<u64>,
}

/// Acknowledgements the bench's subscriber keeps in flight.
const ACKS_IN_FLIGHT: usize = 1_024;

async fn dispatch_throughput(
    engine: &Arc<Engine>,
    args: &JourneysArgs,
) -> anyhow::Result<DispatchFigures> {
    let mut subscription = engine.subscribe_dispatches(None)?;
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let sending = tokio::spawn(for_each(args.concurrency, args.sends, {
        let engine = engine.clone();
        let sent_at = sent_at.clone();
        let retries = retries.clone();
        move |index| {
            let engine = engine.clone();
            let sent_at = sent_at.clone();
            let retries = retries.clone();
            async move {
                let id = format!("s-{index:07}");
                if let Ok(mut sent_at) = sent_at.lock() {
                    sent_at.insert(id.clone(), Instant::now());
                }
                retrying(&retries, || {
                    engine.track(&id, vec![event("bench_send", format!("{id}-send"))])
                })
                .await?;
                anyhow::Ok(())
            }
        }
    }));
    let mut latency = new_histogram()?;
    let acks = Arc::new(Semaphore::new(ACKS_IN_FLIGHT));
    let mut acking = tokio::task::JoinSet::new();
    let mut received = 0_u64;
    let mut redelivered = 0_u64;
    let mut seen = std::collections::HashSet::new();
    while received < args.sends {
        let handed = tokio::time::timeout(Duration::from_secs(90), subscription.next())
            .await
            .map_err(|_| anyhow::anyhow!("no dispatch for 90 s after {received}"))?
            .ok_or_else(|| anyhow::anyhow!("the hub closed"))?;
        // Handed out again: its first hand-out found the buffer full, or its
        // acknowledgement came late. Counted once, when first seen.
        if handed.dispatch.handed_out > 1 {
            redelivered += 1;
        }
        if !seen.insert(handed.dispatch.id.clone()) {
            continue;
        }
        received += 1;
        let customer_id = handed.customer_id.to_string();
        if let Some(at) = sent_at
            .lock()
            .ok()
            .and_then(|sent| sent.get(&customer_id).copied())
        {
            record_duration(&mut latency, at.elapsed());
        }
        let permit = acks.clone().acquire_owned().await?;
        let engine = engine.clone();
        let retries = retries.clone();
        acking.spawn(async move {
            let _permit = permit;
            retrying(&retries, || {
                engine.ack_dispatch(&customer_id, &handed.dispatch.id)
            })
            .await
            .map(|_| ())
        });
        while let Some(result) = acking.try_join_next() {
            result??;
        }
    }
    while let Some(result) = acking.join_next().await {
        result??;
    }
    let wall = started.elapsed();
    sending.await??;
    Ok(DispatchFigures {
        received,
        redelivered,
        retries: retries.load(Ordering::Relaxed),
        wall,
        latency,
    })
}
