//! `nudge-bench latency`: sequential latency on the embedded demo, in-process
//! and over loopback gRPC:
//! - `engine`: `Engine::decide` called directly (tokio task → customer actor on
//!   an arbiter thread → pipeline → back): the in-process actor round trip;
//! - `grpc-empty`: a gRPC health check on loopback, the transport's floor;
//! - `grpc-decide`: `Decisions.Decide` on loopback through the whole stack.
//!
//! Decide calls cycle over `--customers` customers, each activated first by an
//! unmeasured dry run, so the measured calls hit live actors; with the defaults
//! each customer gets 4 calls, below the demo's caps, so every call serves.

use crate::report::{new_histogram, record, row};
use hdrhistogram::Histogram;
use nudge_proto::v1::DecideRequest;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_service::clock::SystemClock;
use nudge_service::config::Config;
use nudge_service::engine::{DecideInput, Engine};
use nudge_service::store::{RedbStore, StoreOptions};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Flags of `nudge-bench latency`.
#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
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
    /// Keep state and the decision log in a durable store in a temporary
    /// directory (every non-dry-run Decide then waits for its fsync'd group
    /// commit) instead of the in-memory store.
    #[arg(long)]
    durable: bool,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
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

/// Runs the latency bench.
pub async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let data_dir = if args.durable {
        Some(crate::storage::DataDir::new(None, "latency", false)?)
    } else {
        None
    };
    let store: Arc<RedbStore> = match &data_dir {
        Some(dir) => Arc::new(RedbStore::open(dir.path(), StoreOptions::default())?),
        None => Arc::new(RedbStore::in_memory(StoreOptions::default())),
    };
    let engine = Arc::new(nudge_service::start(
        Config::default(),
        store,
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
    writeln!(report, "{}", crate::report::LATENCY_HEADER)?;

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
         catalog {} ({} actions), {} actions served over gRPC, {} store, {} cores\n\n",
        args.calls,
        args.warmup,
        args.customers,
        args.placement,
        catalog.version,
        catalog.actions.len(),
        served,
        if args.durable {
            "durable (fsync'd group commit per acknowledged Decide)"
        } else {
            "in-memory"
        },
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    crate::report::emit(&format!("{header}{report}"), args.out.as_deref())?;
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
