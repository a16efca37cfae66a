//! `nudge-bench`: measures nudge on this machine (see the library's map).

use clap::Parser;
use nudge_bench::{journeys, latency, load, predictive, storage};

/// Benches for nudge.
#[derive(Debug, Parser)]
#[command(name = "nudge-bench", about)]
enum Cli {
    /// Open-loop load on the release server: rate sweep, knees, CPU and disk per call, plot.
    Load(load::LoadArgs),
    /// Sequential latency of the engine, an empty gRPC call, and gRPC Decide.
    Latency(latency::LatencyArgs),
    /// Durable event ingest: events/s and acknowledgement latency with group commit.
    Ingest(storage::ingest::IngestArgs),
    /// First calls to stored, not-yet-live customers after a restart.
    Activation(storage::activation::ActivationArgs),
    /// `nudge serve` from spawn to SERVING on a large data directory, clean and after kill -9.
    Restart(storage::restart::RestartArgs),
    /// Resident memory per live actor with many customers stored.
    Memory(storage::memory::MemoryArgs),
    /// Journey timers at scale (lateness, memory per wait, Decide while they
    /// fire) and dispatch throughput to one subscriber.
    Journeys(journeys::JourneysArgs),
    /// Send-time optimization (open-rate lift of best-time sends over fixed
    /// ones, with a CI) and the churn score, on the simulator.
    Predictive(predictive::PredictiveArgs),
    /// Writes the synthetic catalog and model `load` serves, for a server
    /// started by hand (e.g. a cluster's nodes, loaded with `load --target`).
    Synthetic(load::process::SyntheticArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli {
            Cli::Load(args) => load::run(args).await,
            Cli::Latency(args) => latency::run(args).await,
            Cli::Ingest(args) => storage::ingest::run(args).await,
            Cli::Activation(args) => storage::activation::run(args).await,
            Cli::Restart(args) => storage::restart::run(args).await,
            Cli::Memory(args) => storage::memory::run(args).await,
            Cli::Journeys(args) => journeys::run(args).await,
            Cli::Predictive(args) => predictive::run(args).await,
            Cli::Synthetic(args) => load::process::synthetic(&args),
        }
    })
}
