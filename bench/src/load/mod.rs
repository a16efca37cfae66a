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

/// Flags of `nudge-bench load`.
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

/// Runs `nudge-bench load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
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
            "{}: calls failed: {:?}",
            kind.name(),
            tally.errors
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
    /// Rising rates from `--start-rate` until `--past-knee` steps outside
    /// the knee. When the first steps are already outside it, the rate is
    /// halved (down to [`LOWEST_RATE`]) until one is within, so a sweep
    /// always finds a knee if there is one.
    async fn sweep(&mut self, phase: &str) -> anyhow::Result<()> {
        let mut rate = self.args.start_rate;
        let mut past = None::<usize>;
        let mut found = false;
        while rate <= self.args.max_rate {
            let within = self.step(phase, rate).await?;
            found |= within;
            if !found {
                if rate / 2.0 < LOWEST_RATE {
                    eprintln!("{phase}: no rate down to {LOWEST_RATE}/s is within the knee");
                    break;
                }
                rate = (rate / 2.0).round();
                continue;
            }
            if !within {
                let beyond = past.map_or(0, |steps| steps + 1);
                if beyond >= self.args.past_knee {
                    break;
                }
                past = Some(beyond);
            }
            rate = (rate * self.args.factor / 50.0).round() * 50.0;
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
