//! `nudge simulate` against a [`TestServer`]: the simulator's rounds a day
//! apart on the server's manual clock, and the decision and event logs
//! exported for training.

use crate::{DAY_MS, TempDir, TestServer};
use nudge_models::time::Span;
use nudge_service::cli::simulate::{Pace, Run, SimulateArgs, Simulation, simulate};
use nudge_service::cli::{ClientArgs, ExportArgs, export_decisions};
use nudge_service::clock::{Clock as _, ManualClock};
use std::path::PathBuf;
use std::time::Duration;

/// The test server's manual clock: a round a day after the one before.
#[derive(Debug, Clone)]
pub struct DayByDay(pub ManualClock);

impl Pace for DayByDay {
    fn now(&self) -> i64 {
        self.0.now().millis()
    }

    async fn between_rounds(&self, _finished: u32) {
        self.0.advance(Span(DAY_MS));
    }
}

/// `nudge simulate --customers N --rounds R --seed S --concurrency 4`.
pub fn simulate_args(customers: u64, rounds: u32, seed: u64) -> SimulateArgs {
    SimulateArgs {
        customers,
        rounds,
        seed,
        placements: Vec::new(),
        concurrency: 4,
        interval: Duration::ZERO,
        prefix: None,
        catalog: None,
    }
}

/// The client options of a command talking to `server`.
pub fn client_args(server: &TestServer) -> ClientArgs {
    ClientArgs {
        server: format!("http://{}", server.addr),
        ..ClientArgs::default()
    }
}

/// Runs `simulation` against `server`, a day between rounds.
pub async fn run_simulation(server: &TestServer, simulation: &Simulation) -> Run {
    simulate(
        &client_args(server),
        simulation,
        &DayByDay(server.clock.clone()),
        &mut |line| eprintln!("{line}"),
    )
    .await
    .expect("the simulation runs")
}

/// Exports the decision log and the event log into `dir`
/// (`decisions.parquet`, `events.parquet`).
pub async fn export_logs(server: &TestServer, dir: &TempDir) -> (PathBuf, PathBuf) {
    let decisions = dir.join("decisions.parquet");
    let events = dir.join("events.parquet");
    for (out, events) in [(decisions.clone(), false), (events.clone(), true)] {
        let args = ExportArgs {
            out,
            since: None,
            until: None,
            format: None,
            data_dir: None,
            events,
        };
        export_decisions(&args, &client_args(server))
            .await
            .expect("the export succeeds");
    }
    (decisions, events)
}
