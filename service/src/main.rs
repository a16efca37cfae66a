//! The `nudge` command: `nudge serve` runs the service; the other subcommands
//! talk to a running one, validate a catalog offline, or train a model.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use nudge_service::cli::{ClientCommand, ClientOptions};
use nudge_service::config::{Config, Listen, LogFormat};
use nudge_service::server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_stream::wrappers::SignalStream;

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
    /// Train a model from a CSV of customer rows, the decision log, or (a
    /// profile score's) the event log: writes a model artifact that `serve
    /// --model` (or `model load`) loads, and an evaluation report.
    Train(nudge_service::cli::train::TrainArgs),
    /// Evaluate a shadow model off-line from a decision log export: what it
    /// would have earned had it served (IPS, SNIPS, doubly robust).
    Evaluate(nudge_service::cli::evaluate::EvaluateArgs),
    /// Customer tokens for browser calls.
    #[command(subcommand)]
    Token(TokenCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a customer token signed with the configured key
    /// (`web.customer_token_key`), as an application's backend would: print it.
    Issue(nudge_service::cli::token::IssueArgs),
}

/// Flags of `nudge serve`. They override the configuration file and the
/// `NUDGE_*` environment variables.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every setting can also be given in the environment as NUDGE_ and its key in \
upper case, dots as underscores (actors.max_live_customers: NUDGE_ACTORS_MAX_LIVE_CUSTOMERS), \
or with --set KEY=VALUE. Precedence: flags, then environment, then the file, then defaults."
)]
struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "NUDGE_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus metrics address, served over HTTP at /metrics, or `off`
    /// [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR|off")]
    metrics_listen: Option<Listen>,
    /// The pages listener (`/nudge.js`, `/demo`, `/console`) over HTTP, or
    /// `off` [default: 127.0.0.1:8080 on the embedded demo, off otherwise].
    #[arg(long, value_name = "ADDR|off")]
    web_listen: Option<Listen>,
    /// Catalog file [default: the embedded demo catalog].
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Model artifact [default: the embedded demo model].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Decide budget in milliseconds [default: 100].
    #[arg(long)]
    budget_ms: Option<u64>,
    /// Data directory of the durable store [default: nudge-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, value_name = "text|json")]
    log_format: Option<LogFormat>,
    /// Run as one node of a cluster over Redis Cluster: sets
    /// `cluster.enabled` and `storage.backend = "redis"`; the other nodes
    /// are found through Redis.
    #[arg(long)]
    cluster: bool,
    /// Redis Cluster nodes to connect to (repeatable, or comma-separated),
    /// e.g. redis://127.0.0.1:7001 [default: storage.redis_urls].
    #[arg(long = "redis", value_name = "URL", value_delimiter = ',')]
    redis: Vec<String>,
    /// Any setting by its key, e.g. `--set grpc.max_concurrent_requests=512`
    /// (repeatable; the flags above win over it).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = nudge_service::cli::key_value)]
    set: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Check a catalog file and list every problem with its line.
    Validate {
        /// The catalog file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        // `serve` logs as its configuration says, so that is read first (its
        // errors are printed, not logged).
        Command::Serve(args) => configure(&args).and_then(|config| {
            nudge_service::logging::init(&config)?;
            runtime()?.block_on(serve(config))
        }),
        Command::Catalog(CatalogCommand::Validate { file }) => validate(&file),
        Command::Train(args) => nudge_service::cli::train::train(&args).map(|summary| {
            println!("{summary}");
        }),
        Command::Token(TokenCommand::Issue(args)) => {
            use nudge_service::clock::Clock as _;
            let now = nudge_service::clock::SystemClock.now();
            nudge_service::cli::token::issue(&args, now).map(|token| println!("{token}"))
        }
        Command::Evaluate(args) => {
            nudge_service::cli::evaluate::evaluate(&args).map(|text| println!("{text}"))
        }
        Command::Client(command) => {
            nudge_service::logging::init_for_client();
            runtime()
                .and_then(|runtime| runtime.block_on(nudge_service::cli::run(command, &cli.client)))
        }
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The configuration of `nudge serve`: defaults, the file, the `NUDGE_*`
/// environment, `--set`, then the other flags; validated.
fn configure(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(
        args.config.as_deref(),
        nudge_service::config::environment()?,
        &args.set,
    )?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(metrics_listen) = args.metrics_listen {
        config.metrics_listen = metrics_listen;
    }
    if let Some(web_listen) = args.web_listen {
        config.web.listen = Some(web_listen);
    }
    if let Some(catalog) = &args.catalog {
        config.catalog = Some(catalog.clone());
    }
    if let Some(model) = &args.model {
        config.model = Some(model.clone());
    }
    if let Some(budget_ms) = args.budget_ms {
        config.budget_ms = budget_ms;
    }
    if let Some(data_dir) = &args.data_dir {
        config.storage.data_dir = data_dir.clone();
    }
    if let Some(log_format) = args.log_format {
        config.log_format = log_format;
    }
    if args.cluster {
        config.cluster.enabled = true;
        config.storage.backend = nudge_service::config::StorageBackend::Redis;
    }
    if !args.redis.is_empty() {
        config.storage.redis_urls = args.redis.clone();
    }
    config.validate()?;
    Ok(config)
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

async fn serve(config: Config) -> anyhow::Result<()> {
    // Signal handlers first, so a signal during start-up is not fatal.
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = SignalStream::new(signal(SignalKind::hangup())?);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    // The recorder first: the gRPC layer and the engine register their metric
    // handles when they start.
    if let Listen::On(address) = config.metrics_listen {
        nudge_service::metrics::install(address).context(
            "cannot serve metrics (--metrics-listen ADDR picks another address, `off` disables them)",
        )?;
        tracing::info!("metrics at http://{address}/metrics");
    }
    // Listen before the slow part: health answers NOT_SERVING while the store
    // opens and the catalog and model load.
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let web_listener = match config.web.pages_address(config.catalog.is_none()) {
        None => None,
        Some((address, configured)) => match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => Some(listener),
            Err(error) if !configured => {
                // The demo's default port is taken: the service still runs.
                tracing::warn!(%address, %error, "no pages: cannot listen (--web-listen ADDR picks another address)");
                None
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("cannot serve pages on {address} (web.listen; `off` disables them)")
                });
            }
        },
    };
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    let options = server::Options {
        reloads: Box::pin(hangups),
        web_listener,
        ..server::Options::default()
    };
    server::run(config, listener, options, shutdown).await?;
    Ok(())
}
