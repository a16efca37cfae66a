//! The server under test as a separate process: `nudge serve` on the
//! synthetic catalog and model in a fresh directory (optionally pinned to a
//! core with `taskset`), and what /proc says about it: CPU time, resident
//! memory, bytes written to disk.

use nudge_models::synthetic;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How the server is started.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `nudge` binary.
    pub binary: PathBuf,
    /// Where its data directory, catalog, model and log go.
    pub dir: PathBuf,
    /// Keep everything in memory instead of the durable store.
    pub in_memory: bool,
    /// Pin it to this core (`taskset -c`), if any.
    pub core: Option<usize>,
    /// More `--set KEY=VALUE` settings.
    pub settings: Vec<String>,
}

/// A running `nudge serve`; killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Its directory: catalog, model, data, log.
    pub dir: PathBuf,
}

/// The `nudge` binary next to this executable.
pub fn sibling_binary() -> anyhow::Result<PathBuf> {
    let binary = std::env::current_exe()?
        .parent()
        .map(|dir| dir.join("nudge"))
        .ok_or_else(|| anyhow::anyhow!("no directory around this executable"))?;
    Ok(binary)
}

/// Writes the synthetic catalog (10 rules) and model into `dir`; returns
/// their paths.
pub fn write_synthetic(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let catalog = dir.join("catalog.toml");
    let model = dir.join("model.json");
    std::fs::write(&catalog, synthetic::catalog_toml(true))?;
    std::fs::write(
        &model,
        serde_json::to_string_pretty(&synthetic::model_artifact())?,
    )?;
    Ok((catalog, model))
}

/// Flags of `nudge-bench synthetic`.
#[derive(Debug, clap::Args)]
pub struct SyntheticArgs {
    /// The directory to write `catalog.toml` and `model.json` into.
    #[arg(long)]
    pub out: PathBuf,
}

/// `nudge-bench synthetic`: writes the catalog and model `nudge-bench load`
/// serves, for a server started by hand (e.g. the nodes of a cluster loaded
/// with `--target`).
pub fn synthetic(args: &SyntheticArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let (catalog, model) = write_synthetic(&args.out)?;
    println!(
        "wrote {} and {}: serve them with --catalog and --model",
        catalog.display(),
        model.display()
    );
    Ok(())
}

impl ServerProcess {
    /// Starts the server and waits until it is SERVING.
    pub async fn start(spec: &ServerSpec) -> anyhow::Result<Self> {
        anyhow::ensure!(
            spec.binary.is_file(),
            "{} not found: build it with `cargo build --release -p nudge-service` or pass --nudge-bin",
            spec.binary.display()
        );
        std::fs::create_dir_all(&spec.dir)?;
        let (catalog, model) = write_synthetic(&spec.dir)?;
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = spec.dir.join("server.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = match spec.core {
            Some(core) => {
                let mut command = Command::new("taskset");
                command.args(["-c", &core.to_string()]).arg(&spec.binary);
                command
            }
            None => Command::new(&spec.binary),
        };
        command
            .arg("serve")
            .arg("--listen")
            .arg(address.to_string())
            .args(["--metrics-listen", "off"])
            .arg("--catalog")
            .arg(&catalog)
            .arg("--model")
            .arg(&model)
            .arg("--data-dir")
            .arg(spec.dir.join("data"))
            .args(["--set", "log=warn"]);
        if spec.in_memory {
            command.args(["--set", "storage.in_memory=true"]);
        }
        for setting in &spec.settings {
            command.args(["--set", setting]);
        }
        let child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()?;
        let mut server = Self {
            child,
            address,
            log,
            dir: spec.dir.clone(),
        };
        server.wait_serving().await?;
        Ok(server)
    }

    /// The process id (of `nudge serve` itself, also when started by taskset,
    /// which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "the server exited with {status} before SERVING; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "the server was not SERVING within 120 s"
            );
            let connected =
                tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))?
                    .connect_timeout(Duration::from_millis(200))
                    .connect()
                    .await;
            if let Ok(channel) = connected {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer
                    .is_ok_and(|answer| answer.into_inner().status == ServingStatus::Serving as i32)
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits up to 60 s for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the server exited with {status}");
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not stop within 60 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's counters at one moment, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSample {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Resident memory now, bytes.
    pub rss_bytes: u64,
    /// Bytes the process caused to be written to storage (`write_bytes`).
    pub written_bytes: u64,
}

impl ProcessSample {
    /// Reads process `pid`'s counters; `None` when /proc cannot tell (not
    /// Linux, or the process is gone).
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line, in clock ticks.
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = crate::report::kib_field(&status, "VmRSS:").unwrap_or(0);
        let written_bytes = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|line| line.strip_prefix("write_bytes:"))
                    .and_then(|value| value.trim().parse().ok())
            })
            .unwrap_or(0);
        Some(Self {
            cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
            rss_bytes: rss_kib * 1024,
            written_bytes,
        })
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Pins this process (every thread it has and will start) to `core` with
/// `taskset -a -p`; an error when taskset is missing or refuses.
pub fn pin_self(core: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|error| anyhow::anyhow!("taskset: {error}"))?;
    anyhow::ensure!(
        status.success(),
        "taskset could not pin the generator to core {core}"
    );
    Ok(())
}
