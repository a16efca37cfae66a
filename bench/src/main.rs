//! `nudge-bench`: measures nudge on this machine.
//!
//! - `latency` ([`latency`]): sequential Decide latency, in-process and over
//!   loopback gRPC, on an in-memory store;
//! - `ingest`, `activation`, `restart`, `memory` ([`storage`]): the durable
//!   store: event ingest with group commit, first calls to stored customers
//!   after a restart, `nudge serve` restart time on a large data directory,
//!   memory per live actor.
//!
//! Each prints a Markdown report and, with `--out FILE`, appends it to FILE
//! (the reports in `bench/results/` are made that way). [`report`] holds
//! what they share: histograms, table rows, the machine's description.

mod latency;
mod report;
mod storage;

use clap::Parser;

/// Benches for nudge.
#[derive(Debug, Parser)]
#[command(name = "nudge-bench", about)]
enum Cli {
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli {
            Cli::Latency(args) => latency::run(args).await,
            Cli::Ingest(args) => storage::ingest::run(args).await,
            Cli::Activation(args) => storage::activation::run(args).await,
            Cli::Restart(args) => storage::restart::run(args).await,
            Cli::Memory(args) => storage::memory::run(args).await,
        }
    })
}
