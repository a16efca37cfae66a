//! The `nudge` command: `nudge serve` runs the service; the other subcommands
//! talk to a running one, or validate a catalog offline.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use nudge_service::cli::{ClientCommand, ClientOptions};
use nudge_service::clock::SystemClock;
use nudge_service::config::{Config, MetricsListen, Secret};
use nudge_service::store::MemoryStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// nudge: real-time next-best-action decisions over gRPC.
#[derive(Debug, Parser)]
#[command(name = "nudge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientOptions,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the decision service (on the embedded demo catalog and model by default).
    Serve(ServeArgs),
    /// Work with catalog files offline.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "NUDGE_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "NUDGE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Prometheus metrics address, served over HTTP at /metrics, or `off`
    /// [default: 127.0.0.1:9464].
    #[arg(long, env = "NUDGE_METRICS_LISTEN", value_name = "ADDR|off")]
    metrics_listen: Option<MetricsListen>,
    /// Catalog file [default: the embedded demo catalog].
    #[arg(long, env = "NUDGE_CATALOG")]
    catalog: Option<PathBuf>,
    /// Model artifact [default: the embedded demo model].
    #[arg(long, env = "NUDGE_MODEL")]
    model: Option<PathBuf>,
    /// Decide budget in milliseconds [default: 100].
    #[arg(long, env = "NUDGE_BUDGET_MS")]
    budget_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Check a catalog file and list every problem with its line.
    Validate {
        /// The catalog file.
        file: PathBuf,
    },
}

/// The environment variable that sets `auth.token`, replacing `auth.token`
/// and `auth.token_file` from the config file.
const AUTH_TOKEN_ENV: &str = "NUDGE_AUTH_TOKEN";

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NUDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Catalog(CatalogCommand::Validate { file }) => validate(&file),
        Command::Client(command) => runtime.block_on(nudge_service::cli::run(command, &cli.client)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain on one line, without a backtrace: these
            // are user-facing errors, not crashes.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(file: &PathBuf) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match nudge_models::catalog::Catalog::from_toml(&text) {
        Ok(catalog) => {
            let summary = catalog.summary();
            println!(
                "{} is valid: version {}, {} actions, {} placements, {} channels, {} caps",
                file.display(),
                summary.version,
                summary.actions,
                summary.placements,
                summary.channels,
                summary.caps
            );
            Ok(())
        }
        Err(problems) => {
            for problem in &problems.0 {
                eprintln!("{}: {problem}", file.display());
            }
            anyhow::bail!("{} has {} problem(s)", file.display(), problems.0.len())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Signal handlers first, so a signal during start-up is not fatal.
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(metrics_listen) = args.metrics_listen {
        config.metrics_listen = metrics_listen;
    }
    if args.catalog.is_some() {
        config.catalog = args.catalog;
    }
    if args.model.is_some() {
        config.model = args.model;
    }
    if let Some(budget_ms) = args.budget_ms {
        config.budget_ms = budget_ms;
    }
    // The token from the environment only: a flag would show it in `ps`.
    if let Some(token) = std::env::var_os(AUTH_TOKEN_ENV) {
        let token = token
            .into_string()
            .map_err(|_| anyhow::anyhow!("{AUTH_TOKEN_ENV} is not UTF-8"))?;
        config.auth.token = Some(Secret::new(token));
        config.auth.token_file = None;
    }
    let listen = config.listen;
    let on_demo_catalog = config.catalog.is_none();
    let sweep = Duration::from_secs(config.actors.sweep_interval_secs.max(1));
    // The recorder first: the engine registers its metric handles when it starts.
    if let MetricsListen::On(address) = config.metrics_listen {
        nudge_service::metrics::install(address).context(
            "cannot serve metrics (--metrics-listen ADDR picks another address, `off` disables them)",
        )?;
        tracing::info!("metrics at http://{address}/metrics");
    }
    let engine = Arc::new(nudge_service::start(
        config,
        Arc::new(MemoryStore::default()),
        Arc::new(SystemClock),
    )?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "nudge is serving");
    if on_demo_catalog {
        tracing::info!(
            "running the embedded demo; try: nudge decide --customer demo-1 --placement home_banner --explain{}",
            if address.port() == 50051 {
                String::new()
            } else {
                format!(" --server http://{address}")
            }
        );
    }

    let sweeper = engine.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(sweep);
        loop {
            ticks.tick().await;
            sweeper.passivate_idle();
        }
    });
    let reloader = engine.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match reloader.reload_catalog(None) {
                Ok((summary, previous)) => {
                    tracing::info!(version = %summary.version, %previous, "SIGHUP: catalog reloaded")
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: catalog not reloaded; the running catalog stays")
                }
            }
            match reloader.reload_model(None) {
                Ok((version, previous)) => {
                    tracing::info!(%version, %previous, "SIGHUP: model reloaded")
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: model not reloaded; the running model stays")
                }
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: draining in-flight calls");
    };
    nudge_service::grpc::serve(listener, engine.clone(), shutdown).await?;
    engine.registry().passivate_all();
    tracing::info!("stopped");
    Ok(())
}
