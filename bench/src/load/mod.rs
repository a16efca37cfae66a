//! `nudge-bench load`: nudge under open-loop load, as a user would measure
//! it — the release server as its own process, the generator beside it.
//!
//! - [`generator`]: constant-rate streams of calls, each measured from its
//!   intended start into HDR histograms (no coordinated omission);
//! - [`traffic`]: customer ids Zipf over `--customers` with a per-customer
//!   rate ceiling (and `--hot-key`: 10 % of calls on one id), and the
//!   requests over the synthetic 50-action × 64-feature catalog;
//! - [`process`]: `nudge serve` started on that catalog (pinned with
//!   `--pin`), and its CPU time, memory and disk writes from /proc;
//! - [`output`]: the table, `results.json`, `.hgrm` files and `latency.svg`.
//!
//! A run is a list of steps. `--rate R` is one step of Decide at R/s (with
//! `--events-rate` Track/s and `--outcome-share` of R as ReportOutcome
//! alongside). `--sweep` first finds the empty call's knee (health `Check`
//! alone, rising rates), then Decide's knee with its companions, on the same
//! server, and goes `--past-knee` steps beyond each to show what overload
//! does. The knee is the highest rate whose p99 ≤ 10 ms, with ≤ 0.1 % of
//! calls failed and ≥ 95 % of the target answered.
//!
//! `--smoke` checks correctness only (every call accounted for, none
//! failed) at low rates in a few seconds; CI runs [`smoke`] against the real
//! server (`bench/tests/smoke.rs`).

pub mod generator;
pub mod output;
pub mod process;
pub mod traffic;

use anyhow::Context as _;
use generator::{Kind, Step, Stream, Tallies};
use output::{KindSummary, ServerSummary, StepSummary};
use process::{ProcessSample, ServerProcess, ServerSpec};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use traffic::{Population, Sampler};

/// The lowest rate a sweep goes down to looking for a knee.
pub const LOWEST_RATE: f64 = 25.0;

/// The p99 a step may have and still be within the knee.
pub const KNEE_P99: Duration = Duration::from_millis(10);

/// Flags of `nudge-bench load`; [`LoadArgs::check`] refuses values that
/// would measure nothing.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Decide calls per second (one step; ignored with --sweep).
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Find the knees: the empty call's, then Decide's, rising rates.
    #[arg(long)]
    pub sweep: bool,
    /// First rate of a sweep.
    #[arg(long, default_value_t = 500.0)]
    pub start_rate: f64,
    /// Each sweep step's rate is the previous one times this.
    #[arg(long, default_value_t = 1.25)]
    pub factor: f64,
    /// No sweep step goes past this rate.
    #[arg(long, default_value_t = 60_000.0)]
    pub max_rate: f64,
    /// Runs of each step; the one with the median p99 counts (3 makes a
    /// sweep robust to a noisy machine's bursts).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Steps a sweep runs past the knee (to show overload).
    #[arg(long, default_value_t = 3)]
    pub past_knee: usize,
    /// Track calls per second alongside Decide (durable events).
    #[arg(long, default_value_t = 0.0)]
    pub events_rate: f64,
    /// ReportOutcome calls per second, as a share of the Decide rate.
    #[arg(long, default_value_t = 0.1)]
    pub outcome_share: f64,
    /// Known customers.
    #[arg(long, default_value_t = 1_000_000)]
    pub customers: u64,
    /// Zipf exponent of customer popularity.
    #[arg(long, default_value_t = 1.1)]
    pub zipf: f64,
    /// Most calls one customer makes per second.
    #[arg(long, default_value_t = 2)]
    pub customer_max_rate: u32,
    /// Put 10 % of calls on one customer (reported as `decide_hot`).
    #[arg(long)]
    pub hot_key: bool,
    /// Seconds of each step that are sent but not counted.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Counted seconds of each step.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Each call's deadline (ms): longer than the server's 100 ms budget,
    /// as most clients set it.
    #[arg(long, default_value_t = 1_000)]
    pub deadline_ms: u64,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// A running server to load instead of starting one (no /proc figures
    /// unless --server-pid).
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// The process id of --target, for its CPU, memory and disk figures.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The `nudge` binary [default: `nudge` next to this executable].
    #[arg(long)]
    pub nudge_bin: Option<PathBuf>,
    /// The server keeps everything in memory (default: the durable store).
    #[arg(long)]
    pub memory: bool,
    /// More server settings, as `nudge serve --set KEY=VALUE`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Server on core 0, this generator on core 1 (`taskset`).
    #[arg(long)]
    pub pin: bool,
    /// Where the outputs (and the server log) go [default: a new
    /// directory under the system temp dir; outputs are kept].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Correctness only: low rates for a few seconds, every call accounted
    /// for and none failed; asserts no times.
    #[arg(long)]
    pub smoke: bool,
}

impl LoadArgs {
    /// Refuses flags that would measure nothing or run for ever, naming the
    /// flag: a rate that is not positive, no connection, no counted second,
    /// a sweep that cannot rise.
    pub fn check(&self) -> anyhow::Result<()> {
        let positive = |value: f64| value.is_finite() && value > 0.0;
        let checks = [
            (positive(self.rate), "--rate must be above 0"),
            (positive(self.start_rate), "--start-rate must be above 0"),
            (
                self.factor.is_finite() && self.factor > 1.0,
                "--factor must be above 1",
            ),
            (
                positive(self.max_rate) && self.max_rate >= self.start_rate,
                "--max-rate must be at least --start-rate",
            ),
            (self.repeat >= 1, "--repeat must be at least 1"),
            (
                self.events_rate.is_finite() && self.events_rate >= 0.0,
                "--events-rate must be 0 or more",
            ),
            (
                (0.0..=1.0).contains(&self.outcome_share),
                "--outcome-share must be between 0 and 1",
            ),
            (self.customers >= 1, "--customers must be at least 1"),
            (positive(self.zipf), "--zipf must be above 0"),
            (
                self.customer_max_rate >= 1,
                "--customer-max-rate must be at least 1",
            ),
            (self.duration >= 1, "--duration must be at least 1 second"),
            (self.deadline_ms >= 1, "--deadline-ms must be at least 1"),
            (self.connections >= 1, "--connections must be at least 1"),
            (
                self.server_pid.is_none() || self.target.is_some(),
                "--server-pid needs --target",
            ),
        ];
        for (ok, problem) in checks {
            anyhow::ensure!(ok, "{problem}");
        }
        Ok(())
    }
}

/// Runs `nudge-bench load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    args.check()?;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("nudge-bench-load-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    // Described before pinning, which leaves this process one core to see.
    let machine = crate::report::machine();
    if args.pin {
        process::pin_self(1)?;
    }
    let server = match args.target {
        Some(_) => None,
        None => {
            let spec = ServerSpec {
                binary: match &args.nudge_bin {
                    Some(binary) => binary.clone(),
                    None => process::sibling_binary()?,
                },
                // Outside --out: a durable run's data file can grow to GBs.
                dir: std::env::temp_dir()
                    .join(format!("nudge-bench-server-{}", std::process::id())),
                in_memory: args.memory,
                core: args.pin.then_some(0),
                settings: args.settings.clone(),
            };
            let _ = std::fs::remove_dir_all(&spec.dir);
            eprintln!(
                "starting {} in {}",
                spec.binary.display(),
                spec.dir.display()
            );
            Some(ServerProcess::start(&spec).await?)
        }
    };
    let address = match (&server, args.target) {
        (Some(server), _) => server.address,
        (None, Some(target)) => target,
        (None, None) => anyhow::bail!("no server to load"),
    };
    let pid = server.as_ref().map(ServerProcess::pid).or(args.server_pid);
    let channels = connect(address, args.connections).await?;

    if args.smoke {
        let tallies = smoke(&channels).await?;
        println!(
            "{}",
            output::table(&[summarize("smoke", 0.0, &tallies, 3.0, None)])
        );
        if let Some(server) = server {
            server.stop().await?;
        }
        return Ok(());
    }

    drop(channels);
    let mut runner = Runner {
        args: &args,
        address,
        pid,
        next_run: 0,
        steps: Vec::new(),
    };
    if args.sweep {
        runner.sweep("check").await?;
        runner.sweep("decide").await?;
    } else {
        runner.step("decide", args.rate).await?;
    }
    let steps = runner.steps;
    if let Some(server) = server {
        let _ = std::fs::copy(&server.log, out.join("server.log"));
        let dir = server.dir.clone();
        server.stop().await?;
        let _ = std::fs::remove_dir_all(dir);
    }
    let report = Report::new(&args, machine, steps);
    report.write(&out)?;
    println!("{}", report.text());
    println!("results, .hgrm files and latency.svg in {}", out.display());
    Ok(())
}

/// `count` HTTP/2 connections to `address`.
pub async fn connect(address: SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let channel = Endpoint::from_shared(format!("http://{address}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .buffer_size(16_384)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The smoke check: 3 s of Decide (200/s, 10 % on a hot customer), Track
/// (200/s), ReportOutcome (40/s) and Check (50/s) over `channels`, with a
/// 10 s deadline. Fails unless every call was accounted for, none failed,
/// and every kind was answered; asserts no times.
pub async fn smoke(channels: &[Channel]) -> anyhow::Result<Tallies> {
    let step = Step {
        streams: vec![
            Stream {
                kind: Kind::Decide,
                rate: 200.0,
            },
            Stream {
                kind: Kind::Track,
                rate: 200.0,
            },
            Stream {
                kind: Kind::Outcome,
                rate: 40.0,
            },
            Stream {
                kind: Kind::Check,
                rate: 50.0,
            },
        ],
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3),
        deadline: Duration::from_secs(10),
        progress: false,
    };
    let sampler = Sampler::new(
        Population {
            customers: 1_000,
            zipf_exponent: 1.1,
            customer_max_rate: 5,
            hot_share: 0.1,
        },
        7,
    )?;
    let tallies = generator::run(&step, channels, sampler, 0, || {}, || {}).await?;
    for (kind, tally) in &tallies {
        anyhow::ensure!(
            tally.accounted(),
            "{}: {} sent but {} answered and {} failed",
            kind.name(),
            tally.sent,
            tally.ok,
            tally.failed()
        );
        anyhow::ensure!(
            tally.errors.is_empty(),
            "{}: calls failed: {:?}, first saying {:?}",
            kind.name(),
            tally.errors,
            tally.first_messages
        );
        anyhow::ensure!(tally.ok > 0, "{}: nothing answered", kind.name());
    }
    Ok(tallies)
}

/// Runs steps and keeps their summaries.
struct Runner<'a> {
    args: &'a LoadArgs,
    address: SocketAddr,
    pid: Option<u32>,
    next_run: u64,
    steps: Vec<StepSummary>,
}

impl Runner<'_> {
    /// The steps of [`SweepPlan`]: rising rates until `--past-knee` steps
    /// outside the knee, halving first while none is within.
    async fn sweep(&mut self, phase: &str) -> anyhow::Result<()> {
        let mut plan = SweepPlan::new(self.args);
        let mut rate = plan.first();
        while let Some(at) = rate {
            let within = self.step(phase, at).await?;
            rate = plan.next(within);
        }
        if !plan.found {
            eprintln!("{phase}: no rate down to {LOWEST_RATE}/s is within the knee");
        }
        Ok(())
    }

    /// One step of `phase` at `rate`, run `--repeat` times; the run with
    /// the median p99 of the main kind is the step's result (the others'
    /// p99s are kept beside it). Whether it is within the knee.
    async fn step(&mut self, phase: &str, rate: f64) -> anyhow::Result<bool> {
        let main = if phase == "check" {
            Kind::Check
        } else {
            Kind::Decide
        };
        let mut runs = Vec::new();
        for _ in 0..self.args.repeat.max(1) {
            runs.push(self.measure(phase, rate).await?);
        }
        let p99 = |(summary, _): &(StepSummary, Tallies)| {
            summary
                .kinds
                .get(&main)
                .map_or(u64::MAX, |kind| kind.p99_us)
        };
        runs.sort_by_key(p99);
        let repeat_p99_us: Vec<u64> = runs.iter().map(p99).collect();
        let (mut summary, tallies) = runs.swap_remove(runs.len() / 2);
        summary.repeat_p99_us = repeat_p99_us;
        let within = summary.within_knee;
        let out = self.out_dir();
        for (kind, tally) in &tallies {
            if tally.sent > 0 {
                let name = format!("{phase}-{rate:.0}-{}.hgrm", kind.name());
                std::fs::write(out.join(name), output::hgrm(&tally.answered))?;
            }
        }
        println!("{}", output::table(std::slice::from_ref(&summary)));
        self.steps.push(summary);
        Ok(within)
    }

    /// One run of `phase` at `rate`.
    async fn measure(&mut self, phase: &str, rate: f64) -> anyhow::Result<(StepSummary, Tallies)> {
        let args = self.args;
        let streams = if phase == "check" {
            vec![Stream {
                kind: Kind::Check,
                rate,
            }]
        } else {
            vec![
                Stream {
                    kind: Kind::Decide,
                    rate,
                },
                Stream {
                    kind: Kind::Track,
                    rate: args.events_rate,
                },
                Stream {
                    kind: Kind::Outcome,
                    rate: rate * args.outcome_share,
                },
            ]
        };
        let step = Step {
            streams,
            warmup: Duration::from_secs(args.warmup),
            duration: Duration::from_secs(args.duration.max(1)),
            deadline: Duration::from_millis(args.deadline_ms),
            progress: true,
        };
        let sampler = Sampler::new(
            Population {
                customers: args.customers,
                zipf_exponent: args.zipf,
                customer_max_rate: args.customer_max_rate,
                hot_share: if args.hot_key { 0.1 } else { 0.0 },
            },
            self.next_run,
        )?;
        eprintln!(
            "{phase} at {rate:.0}/s ({} s warmup, {} s counted)",
            args.warmup, args.duration
        );
        let samples = Arc::new(Mutex::new((None, None)));
        let pid = self.pid;
        let (at_start, at_end) = (samples.clone(), samples.clone());
        // Fresh connections for every step: no step inherits another's
        // HTTP/2 state, and a server that stopped taking connections ends
        // the run with an error here instead of a step of failures.
        let channels = connect(self.address, args.connections).await?;
        let tallies = generator::run(
            &step,
            &channels,
            sampler,
            self.next_run,
            move || lock(&at_start).0 = pid.and_then(ProcessSample::read),
            move || lock(&at_end).1 = pid.and_then(ProcessSample::read),
        )
        .await?;
        self.next_run += 1;
        let answered: u64 = tallies.values().map(|tally| tally.ok).sum();
        let unavailable: u64 = tallies
            .values()
            .filter_map(|tally| tally.errors.get("Unavailable"))
            .sum();
        anyhow::ensure!(
            answered > 0 || unavailable == 0,
            "{phase} at {rate:.0}/s: the server answered nothing ({unavailable} calls UNAVAILABLE); \
             its log is in the run's server/ directory"
        );
        let (before, after) = *lock(&samples);
        let seconds = step.duration.as_secs_f64();
        let server = before
            .zip(after)
            .map(|(before, after)| server_summary(&tallies, before, after, seconds));
        let summary = summarize(phase, rate, &tallies, seconds, server);
        Ok((summary, tallies))
    }

    fn out_dir(&self) -> PathBuf {
        self.args.out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("nudge-bench-load-{}", std::process::id()))
        })
    }
}

/// The rates of a sweep: from `--start-rate`, each step's rate times
/// `--factor` (rounded to 50/s) until `--past-knee` steps have been outside
/// the knee or the rate passes `--max-rate`. While no step has been within
/// the knee the rate is halved instead, down to [`LOWEST_RATE`], so that a
/// sweep finds a knee if there is one.
#[derive(Debug, Clone)]
struct SweepPlan {
    rate: f64,
    factor: f64,
    max: f64,
    past_knee: usize,
    /// Steps outside the knee since it was found.
    outside: usize,
    /// Whether a step has been within the knee.
    found: bool,
}

impl SweepPlan {
    fn new(args: &LoadArgs) -> Self {
        Self {
            rate: args.start_rate,
            factor: args.factor,
            max: args.max_rate,
            past_knee: args.past_knee,
            outside: 0,
            found: false,
        }
    }

    /// The first step's rate.
    fn first(&self) -> Option<f64> {
        (self.rate <= self.max).then_some(self.rate)
    }

    /// The next step's rate after a step that was `within` the knee, or
    /// `None` when the sweep is over.
    fn next(&mut self, within: bool) -> Option<f64> {
        self.found |= within;
        if !self.found {
            let half = (self.rate / 2.0).round();
            if half < LOWEST_RATE {
                return None;
            }
            self.rate = half;
            return Some(half);
        }
        if !within {
            self.outside += 1;
            if self.outside >= self.past_knee {
                return None;
            }
        }
        self.rate = (self.rate * self.factor / 50.0).round() * 50.0;
        self.first()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The server's figures over a window of `seconds` between two samples.
fn server_summary(
    tallies: &Tallies,
    before: ProcessSample,
    after: ProcessSample,
    seconds: f64,
) -> ServerSummary {
    let calls: u64 = tallies.values().map(|tally| tally.sent).sum();
    let changes: u64 = tallies
        .iter()
        .filter(|(kind, _)| **kind != Kind::Check)
        .map(|(_, tally)| tally.sent)
        .sum();
    let decides: u64 = [Kind::Decide, Kind::DecideHot]
        .iter()
        .filter_map(|kind| tallies.get(kind))
        .map(|tally| tally.sent)
        .sum();
    let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
    let written = after.written_bytes.saturating_sub(before.written_bytes) as f64;
    ServerSummary {
        cpu_us_per_call: cpu * 1e6 / calls.max(1) as f64,
        cores_used: cpu / seconds.max(f64::EPSILON),
        rss_mib: after.rss_bytes as f64 / (1024.0 * 1024.0),
        written_bytes_per_change: written / changes.max(1) as f64,
        written_bytes_per_decide: written / decides.max(1) as f64,
    }
}

/// A step's summary; within the knee when its main kind's p99 ≤ 10 ms, at
/// most 0.1 % failed, and at least 95 % of the target rate answered.
fn summarize(
    phase: &str,
    rate: f64,
    tallies: &Tallies,
    seconds: f64,
    server: Option<ServerSummary>,
) -> StepSummary {
    let kinds: BTreeMap<Kind, KindSummary> = tallies
        .iter()
        .filter(|(_, tally)| tally.sent > 0 || tally.skipped > 0)
        .map(|(kind, tally)| (*kind, KindSummary::of(tally, seconds)))
        .collect();
    let main = if phase == "check" {
        Kind::Check
    } else {
        Kind::Decide
    };
    let within_knee = kinds.get(&main).is_some_and(|summary| {
        let hot = kinds.get(&Kind::DecideHot);
        let answered = summary.goodput + hot.map_or(0.0, |hot| hot.goodput);
        let sent = summary.sent + hot.map_or(0, |hot| hot.sent);
        let failed = summary.failed() + hot.map_or(0, KindSummary::failed);
        summary.p99_us <= KNEE_P99.as_micros() as u64
            && failed as f64 <= 0.001 * sent as f64
            && answered >= 0.95 * rate
    });
    StepSummary {
        phase: phase.to_owned(),
        rate,
        within_knee,
        kinds,
        server,
        repeat_p99_us: Vec::new(),
    }
}

/// A whole run: what was run, on what, and what came out.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// Cores, CPU model and memory.
    pub machine: String,
    /// When it ran (UTC).
    pub date: String,
    /// What was loaded: the durable or in-memory store, or a `--target`.
    pub store: String,
    /// The steps in order.
    pub steps: Vec<StepSummary>,
    /// Highest rate within the knee, per phase.
    pub knees: BTreeMap<String, f64>,
    /// Decide's knee over the empty call's, when both were found.
    pub knee_ratio: Option<f64>,
    /// Server CPU per Decide over per empty call, at each phase's knee.
    pub cpu_ratio: Option<f64>,
}

impl Report {
    fn new(args: &LoadArgs, machine: String, steps: Vec<StepSummary>) -> Self {
        let mut knees = BTreeMap::new();
        for step in steps.iter().filter(|step| step.within_knee) {
            let knee = knees.entry(step.phase.clone()).or_insert(0.0_f64);
            *knee = knee.max(step.rate);
        }
        let knee_ratio = knees
            .get("decide")
            .zip(knees.get("check"))
            .map(|(decide, check)| decide / check);
        let cpu_at_knee = |phase: &str| {
            let knee = knees.get(phase)?;
            steps
                .iter()
                .find(|step| step.phase == phase && step.rate == *knee)
                .and_then(|step| step.server)
                .map(|server| server.cpu_us_per_call)
        };
        let cpu_ratio = cpu_at_knee("decide")
            .zip(cpu_at_knee("check"))
            .map(|(decide, check)| decide / check);
        Self {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            store: match (args.target, args.memory) {
                (Some(target), _) => format!("the server at {target}"),
                (None, true) => "in-memory store".to_owned(),
                (None, false) => "durable store".to_owned(),
            },
            steps,
            knees,
            knee_ratio,
            cpu_ratio,
        }
    }

    fn write(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join("results.md"), self.text())?;
        let title = format!("nudge-bench load, {} — {}", self.store, self.machine);
        output::plot(dir, &self.steps, &title)?;
        Ok(())
    }

    /// The Markdown report: command, machine, table, knees and ratios.
    pub fn text(&self) -> String {
        let mut text = format!(
            "`{}`\n\n{} — {}, {}\n\n{}\n",
            self.command,
            self.date,
            self.machine,
            self.store,
            output::table(&self.steps)
        );
        for (phase, knee) in &self.knees {
            text.push_str(&format!("- knee of {phase}: {knee:.0}/s (p99 ≤ 10 ms)\n"));
        }
        if let Some(ratio) = self.knee_ratio {
            text.push_str(&format!("- Decide's knee / the empty call's: {ratio:.2}\n"));
        }
        if let Some(ratio) = self.cpu_ratio {
            text.push_str(&format!(
                "- server CPU per call at Decide's knee / at the empty call's knee: {ratio:.2}\n"
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn args(flags: &[&str]) -> LoadArgs {
        let mut line = vec!["load"];
        line.extend_from_slice(flags);
        Cli::try_parse_from(line).expect("flags parse").args
    }

    /// The rates a sweep runs when each step's verdict is `within(rate)`.
    fn rates(plan: &mut SweepPlan, within: impl Fn(f64) -> bool) -> Vec<f64> {
        let mut rates = Vec::new();
        let mut rate = plan.first();
        while let Some(at) = rate {
            rates.push(at);
            rate = plan.next(within(at));
        }
        rates
    }

    #[test]
    fn the_defaults_pass_and_each_bad_flag_is_named() {
        args(&[]).check().expect("the defaults are valid");
        for (flags, named) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--rate", "NaN"], "--rate"),
            (&["--start-rate=-5"], "--start-rate"),
            (&["--factor", "1"], "--factor"),
            (&["--start-rate", "500", "--max-rate", "100"], "--max-rate"),
            (&["--repeat", "0"], "--repeat"),
            (&["--events-rate=-1"], "--events-rate"),
            (&["--outcome-share", "1.5"], "--outcome-share"),
            (&["--customers", "0"], "--customers"),
            (&["--zipf", "0"], "--zipf"),
            (&["--customer-max-rate", "0"], "--customer-max-rate"),
            (&["--duration", "0"], "--duration"),
            (&["--deadline-ms", "0"], "--deadline-ms"),
            (&["--connections", "0"], "--connections"),
            (&["--server-pid", "42"], "--server-pid"),
        ] {
            let error = args(flags).check().expect_err("refused").to_string();
            assert!(error.starts_with(named), "{flags:?}: {error}");
        }
    }

    #[test]
    fn a_sweep_rises_until_it_has_run_past_knee_steps_outside_the_knee() {
        let mut plan = SweepPlan::new(&args(&["--past-knee", "3"]));
        // Within up to 800/s; one noisy miss at 650/s counts too.
        let run = rates(&mut plan, |rate| rate <= 800.0 && rate != 650.0);
        assert_eq!(run, [500.0, 650.0, 800.0, 1000.0, 1250.0]);
        assert!(plan.found);
    }

    #[test]
    fn a_sweep_that_starts_past_the_knee_halves_then_rises() {
        let mut plan = SweepPlan::new(&args(&["--past-knee", "1"]));
        let run = rates(&mut plan, |rate| rate <= 150.0);
        assert_eq!(run, [500.0, 250.0, 125.0, 150.0, 200.0]);
    }

    #[test]
    fn a_sweep_gives_up_below_the_lowest_rate_and_stops_at_the_max() {
        let mut plan = SweepPlan::new(&args(&[]));
        let run = rates(&mut plan, |_| false);
        assert_eq!(run, [500.0, 250.0, 125.0, 63.0, 32.0]);
        assert!(!plan.found);
        let mut plan = SweepPlan::new(&args(&["--max-rate", "900"]));
        assert_eq!(rates(&mut plan, |_| true), [500.0, 650.0, 800.0]);
    }
}
