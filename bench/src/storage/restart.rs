//! `nudge-bench restart`: how long the real server takes from spawn to a
//! gRPC health `Check` answering SERVING, on a data directory holding
//! `--customers` customers.
//!
//! The store is populated first (straight through `StateStore::write`,
//! batched by group commit). Then `nudge serve --data-dir DIR` (the release
//! binary next to this one unless `--nudge-bin`) is started `--runs` times,
//! each stopped cleanly with SIGTERM once SERVING; one more start follows
//! with the data file dropped from the OS page cache (as after a reboot).
//! Finally an unclean stop: the server runs under `Events.Track` load from
//! `--load-concurrency` calls in flight for `--load-secs`, is killed with
//! SIGKILL in the middle of it, and the next start is timed (redb's quick
//! repair should keep it fast).
//!
//! A client polls `Check` every `--poll-ms` from the moment of spawn (the
//! connection is refused until the server listens; it answers NOT_SERVING
//! while the store opens). The server's log gives its own `store opened`
//! time, shown beside the total.

use super::{DataDir, Random, customer_id, drop_file_cache, populate};
use crate::report::machine;
use nudge_proto::v1::events_client::EventsClient;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Flags of `nudge-bench restart`.
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Stored customers.
    #[arg(long, default_value_t = 1_000_000)]
    customers: u64,
    /// Typical events per stored customer.
    #[arg(long, default_value_t = 5)]
    events: u64,
    /// Clean restarts with the data file in the OS page cache.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Seconds of Track load before the kill -9.
    #[arg(long, default_value_t = 3)]
    load_secs: u64,
    /// Track calls in flight during the load.
    #[arg(long, default_value_t = 64)]
    load_concurrency: u64,
    /// Health poll interval, milliseconds.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// The `nudge` binary [default: `nudge` next to this executable].
    #[arg(long)]
    nudge_bin: Option<PathBuf>,
    /// Data directory to use instead of a temporary one (kept; populated
    /// unless it already holds enough customers).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Append the Markdown results to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One timed start.
struct Start {
    /// Spawn → first health answer (the server listens).
    listening: Duration,
    /// Spawn → SERVING.
    serving: Duration,
    /// The server's own `store opened` time, from its log.
    store_open_ms: Option<u64>,
}

/// A running server.
struct Server {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

/// Runs the restart bench.
pub async fn run(args: RestartArgs) -> anyhow::Result<()> {
    let binary = match &args.nudge_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("nudge"))
            .ok_or_else(|| anyhow::anyhow!("no directory around this executable"))?,
    };
    anyhow::ensure!(
        binary.is_file(),
        "{} not found: build it with `cargo build --release -p nudge-service` or pass --nudge-bin",
        binary.display()
    );
    let dir = DataDir::new(args.data_dir.as_deref(), "restart", false)?;
    let populated = populate(dir.path(), args.customers, args.events).await?;
    println!(
        "populated {} customers in {:.1?} ({} stored)",
        populated.written, populated.elapsed, populated.stored
    );
    let file_bytes = dir.data_file_bytes();

    let mut rows = Vec::new();
    for run in 1..=args.runs {
        let (server, start) = start(&binary, dir.path(), run, args.poll_ms).await?;
        let stop = stop_cleanly(server).await?;
        println!("clean restart {run}: {:.0?}", start.serving);
        rows.push((
            format!("clean stop, OS page cache warm (run {run})"),
            start,
            Some(stop),
        ));
    }
    let dropped = drop_file_cache(&dir.data_file());
    let (server, cold) = start(&binary, dir.path(), 90, args.poll_ms).await?;
    let stop = stop_cleanly(server).await?;
    rows.push((
        format!(
            "clean stop, data file {} the OS page cache",
            if dropped {
                "dropped from"
            } else {
                "(drop failed) in"
            }
        ),
        cold,
        Some(stop),
    ));

    // Unclean stop under load.
    let (mut server, _) = start(&binary, dir.path(), 91, args.poll_ms).await?;
    let acknowledged = load_then_kill(&mut server, &args).await?;
    let (server, after_kill) = start(&binary, dir.path(), 92, args.poll_ms).await?;
    let stop = stop_cleanly(server).await?;
    rows.push((
        format!(
            "after kill -9 under Track load ({acknowledged} events acknowledged in {} s before the kill)",
            args.load_secs
        ),
        after_kill,
        Some(stop),
    ));
    let file_after = dir.data_file_bytes();

    let mut report = String::new();
    writeln!(
        report,
        "nudge-bench restart: `nudge serve --data-dir DIR` ({}) from spawn to health Check SERVING (polled every {} ms), \
         {} stored customers ({} typical events each, populated in {:.1} s), data file {} MiB before the runs, {} MiB after; {}\n",
        binary.display(),
        args.poll_ms,
        populated.stored,
        args.events,
        populated.elapsed.as_secs_f64(),
        super::mib(file_bytes),
        super::mib(file_after),
        machine(),
    )?;
    writeln!(
        report,
        "| start | spawn → listening ms | spawn → SERVING ms | vs target 5 s | store opened (server log) ms | SIGTERM → exit ms |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for (name, start, stop) in &rows {
        writeln!(
            report,
            "| {name} | {} | {} | {:.2}× | {} | {} |",
            start.listening.as_millis(),
            start.serving.as_millis(),
            start.serving.as_secs_f64() / 5.0,
            start
                .store_open_ms
                .map_or_else(|| "?".to_owned(), |ms| ms.to_string()),
            stop.map_or_else(|| "-".to_owned(), |stop| stop.as_millis().to_string()),
        )?;
    }
    crate::report::emit(&report, args.out.as_deref())?;
    Ok(())
}

/// A free loopback port.
fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Spawns the server and waits until it is SERVING.
async fn start(
    binary: &Path,
    data_dir: &Path,
    run: u32,
    poll_ms: u64,
) -> anyhow::Result<(Server, Start)> {
    let address = free_address()?;
    let log = data_dir.join(format!("server-{run}.log"));
    let log_file = std::fs::File::create(&log)?;
    let spawned = Instant::now();
    let child = Command::new(binary)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(address.to_string())
        .args(["--metrics-listen", "off"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()?;
    let mut server = Server {
        child,
        address,
        log,
    };
    let poll = Duration::from_millis(poll_ms.max(1));
    let mut client = None;
    let mut listening = None;
    loop {
        if let Some(status) = server.child.try_wait()? {
            anyhow::bail!(
                "the server exited with {status} before SERVING; log:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
        }
        anyhow::ensure!(
            spawned.elapsed() < Duration::from_secs(300),
            "the server was not SERVING within 300 s"
        );
        if client.is_none() {
            client = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
                .connect_timeout(Duration::from_millis(100))
                .connect()
                .await
                .ok()
                .map(HealthClient::new);
        }
        if let Some(health) = client.as_mut() {
            let answer = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            match answer {
                Ok(response) => {
                    listening.get_or_insert_with(|| spawned.elapsed());
                    if response.into_inner().status == ServingStatus::Serving as i32 {
                        let serving = spawned.elapsed();
                        let store_open_ms = store_open_ms(&server.log);
                        return Ok((
                            server,
                            Start {
                                listening: listening.unwrap_or(serving),
                                serving,
                                store_open_ms,
                            },
                        ));
                    }
                }
                Err(_) => client = None,
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// The `elapsed_ms` of the server log's `store opened` line.
fn store_open_ms(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|line| line.contains("store opened"))?;
    let (_, after) = line.split_once("elapsed_ms=")?;
    after
        .split(|character: char| !character.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// SIGTERM, then waits for the exit; returns how long it took.
async fn stop_cleanly(mut server: Server) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    loop {
        if let Some(status) = server.child.try_wait()? {
            anyhow::ensure!(status.success(), "the server exited with {status}");
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            server.child.kill()?;
            anyhow::bail!("the server did not stop within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends Track calls to random stored customers for `load_secs`, then kills
/// the server with SIGKILL while calls are in flight; returns how many calls
/// were acknowledged.
async fn load_then_kill(server: &mut Server, args: &RestartArgs) -> anyhow::Result<u64> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.address))?
        .connect()
        .await?;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.load_concurrency {
        let mut client = EventsClient::new(channel.clone());
        let acknowledged = acknowledged.clone();
        let running = running.clone();
        let customers = args.customers;
        tasks.spawn(async move {
            let mut random = Random::new(1_000 + task);
            let mut sent = 0u64;
            while running.load(Ordering::Relaxed) {
                sent += 1;
                let event = nudge_proto::v1::Event {
                    customer_id: customer_id(random.below(customers)),
                    event_id: format!("load-{task}-{sent}"),
                    name: "page_view".to_owned(),
                    timestamp: None,
                    properties: Default::default(),
                };
                match client.track(event).await {
                    Ok(_) => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(args.load_secs)).await;
    server.child.kill()?;
    server.child.wait()?;
    running.store(false, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    Ok(acknowledged.load(Ordering::Relaxed))
}
