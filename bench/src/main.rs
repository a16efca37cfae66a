//! `nudge-bench`: measures nudge's latency on this machine.
//!
//! `nudge-bench latency` starts the service in-process on the embedded demo and
//! measures, one call at a time:
//! - `engine`: `Engine::decide` called directly (tokio task → customer actor on
//!   an arbiter thread → pipeline → back): the in-process actor round trip;
//! - `grpc-empty`: a gRPC health check on loopback, the transport's floor;
//! - `grpc-decide`: `Decisions.Decide` on loopback through the whole stack.
//!
//! Decide calls cycle over `--customers` customers, each activated first by an
//! unmeasured dry run, so the measured calls hit live actors; with the defaults
//! each customer gets 4 calls, below the demo's caps, so every call serves.
//! Results are percentiles from an HDR histogram, printed as a Markdown table
//! and optionally appended to a file.

use anyhow::Context as _;
use clap::Parser;
use hdrhistogram::Histogram;
use nudge_proto::v1::DecideRequest;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_service::clock::SystemClock;
use nudge_service::config::Config;
use nudge_service::engine::{DecideInput, Engine};
use nudge_service::store::MemoryStore;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Latency benches for nudge.
#[derive(Debug, Parser)]
#[command(name = "nudge-bench", about)]
enum Cli {
    /// Sequential latency of the engine, an empty gRPC call, and gRPC Decide.
    Latency(LatencyArgs),
}

#[derive(Debug, clap::Args)]
struct LatencyArgs {
    /// Measured calls per scenario.
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    /// Unmeasured warm-up calls per scenario.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// Distinct customers to cycle through.
    #[arg(long, default_value_t = 5_000)]
    customers: u64,
    /// Placement to decide for.
    #[arg(long, default_value = "home_banner")]
    placement: String,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let Cli::Latency(args) = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(latency(args))
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, started: Instant) {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

fn row(name: &str, histogram: &Histogram<u64>, wall: Duration) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {:.0} |",
        histogram.len(),
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.90),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        histogram.len() as f64 / wall.as_secs_f64(),
    )
}

fn decide_input(customer: u64, placement: &str) -> DecideInput {
    DecideInput {
        customer_id: format!("bench-{customer}"),
        placement: placement.to_owned(),
        context: Default::default(),
        candidates: Vec::new(),
        limit: 0,
        dry_run: false,
        explain: false,
        request_id: String::new(),
    }
}

async fn latency(args: LatencyArgs) -> anyhow::Result<()> {
    let engine = Arc::new(nudge_service::start(
        Config::default(),
        Arc::new(MemoryStore::default()),
        Arc::new(SystemClock),
    )?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let serving = engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        nudge_service::grpc::serve(listener, serving, async move {
            let _ = stopped.await;
        })
        .await
    });

    let mut report = String::new();
    writeln!(
        report,
        "| scenario | calls | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | calls/s |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|---|")?;

    let (histogram, wall) = bench_engine(&engine, &args).await?;
    writeln!(
        report,
        "{}",
        row("engine (in-process actor round trip)", &histogram, wall)
    )?;

    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel.clone());
    let mut histogram = new_histogram()?;
    for _ in 0..args.warmup {
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
    }
    let started = Instant::now();
    for _ in 0..args.calls {
        let call = Instant::now();
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        record(&mut histogram, call);
    }
    writeln!(
        report,
        "{}",
        row(
            "grpc empty call (health check)",
            &histogram,
            started.elapsed()
        )
    )?;

    let mut decisions = DecisionsClient::new(channel);
    let mut histogram = new_histogram()?;
    let mut served = 0u64;
    for call in 0..args.customers + args.warmup {
        let request = DecideRequest {
            customer_id: format!("grpc-{}", call % args.customers),
            placement: args.placement.clone(),
            dry_run: true,
            ..Default::default()
        };
        decisions.decide(request).await?;
    }
    let started = Instant::now();
    for call in 0..args.calls {
        let request = DecideRequest {
            customer_id: format!("grpc-{}", call % args.customers),
            placement: args.placement.clone(),
            ..Default::default()
        };
        let timer = Instant::now();
        let response = decisions.decide(request).await?.into_inner();
        record(&mut histogram, timer);
        served += response.served.len() as u64;
    }
    writeln!(
        report,
        "{}",
        row(
            "grpc Decide (loopback, full stack)",
            &histogram,
            started.elapsed()
        )
    )?;

    let _ = stop.send(());
    server.await??;
    let catalog = engine.catalog();
    let header = format!(
        "nudge-bench latency: {} sequential calls per scenario after {} warm-up, {} live customers, placement {}, \
         catalog {} ({} actions), {} actions served over gRPC, {} cores\n\n",
        args.calls,
        args.warmup,
        args.customers,
        args.placement,
        catalog.version,
        catalog.actions.len(),
        served,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    print!("{header}{report}");
    if let Some(path) = args.out {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{header}{report}")?;
    }
    Ok(())
}

async fn bench_engine(
    engine: &Engine,
    args: &LatencyArgs,
) -> anyhow::Result<(Histogram<u64>, Duration)> {
    for call in 0..args.customers + args.warmup {
        let mut input = decide_input(call % args.customers, &args.placement);
        input.dry_run = true;
        engine.decide(input, None).await?;
    }
    let mut histogram = new_histogram()?;
    let started = Instant::now();
    for call in 0..args.calls {
        let timer = Instant::now();
        engine
            .decide(decide_input(call % args.customers, &args.placement), None)
            .await?;
        record(&mut histogram, timer);
    }
    Ok((histogram, started.elapsed()))
}
