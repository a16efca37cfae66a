//! The client side of the `nudge` command-line tool: subcommands that talk to a
//! running nudge server over gRPC (`decide`, `track`, `outcome`, `consent`,
//! `suppress`, `unsuppress`, `profile`, `forget`, `reload`, `stats`, `export`,
//! `simulate`, `model`, `journeys`, `dispatches`)
//! and print the answer as text for a person or, with `--json`, as one JSON
//! object.
//!
//! Every subcommand runs the same path ([`run`]): its arguments build the
//! request (argument problems are reported before connecting), [`client::ask`]
//! connects with the [`ClientArgs`] and sends it, and [`call`] prints the
//! answer with the subcommand's two renderings, JSON or text.
//!
//! - `args`: the clap arguments of each subcommand and the requests they build.
//! - `parse`: typed `KEY=VALUE` pairs, RFC 3339 times, finite numbers.
//! - `client`: connecting (TLS, client certificate, bearer token), the one
//!   call path ([`client::Rpc`]: which client and method send each request),
//!   and readable gRPC / connection errors.
//! - `output` / `json`: rendering responses as text or JSON.
//! - `export`: writing the streamed decision log to a Parquet or JSON lines
//!   file, complete or not at all.
//! - `names`: lowercase enum names, timestamps and number formats they share.
//! - `watch`: the live, redrawn view of `stats` on a terminal.
//! - [`simulate`]: `nudge simulate`, synthetic customers with a known ground
//!   truth driven through the server ([`crate::simulate`] is their world).
//! - [`train`]: `nudge train --csv`, the one subcommand that talks to no
//!   server: fits a model with `nudge_training` and writes the artifact and
//!   its report.

mod args;
mod client;
mod cluster;
mod dispatches;
pub mod evaluate;
pub mod export;
mod journeys;
mod json;
pub mod model;
mod names;
mod output;
mod parse;
pub use parse::key_value;
pub mod simulate;
#[cfg(test)]
mod tests;
pub mod token;
pub mod train;
mod watch;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use nudge_proto::v1::{ListJourneysRequest, StatsRequest};
use serde_json::Value as Json;

pub use args::{
    ConsentArg, ConsentArgs, DecideArgs, ExportArgs, ForgetArgs, OutcomeArgs, ProfileArgs,
    ReloadArgs, StatsArgs, SuppressArgs, SuppressionReasonArg, TrackArgs, UnsuppressArgs,
};
pub use export::{ExportFormat, ExportSummary, ROWS_PER_GROUP};
pub use parse::{KeyValue, TimeBound};

use client::Rpc;

/// Client subcommands: talk to a running nudge server. Each takes its own
/// arguments and the [`ClientArgs`] (server, credentials, `--json`).
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Ask which actions to show or send a customer now, and why.
    Decide(WithClient<DecideArgs>),
    /// Track a behavioural event for a customer.
    Track(WithClient<TrackArgs>),
    /// Report what happened to an action served by a decision.
    Outcome(WithClient<OutcomeArgs>),
    /// Record a customer's consent for one channel.
    Consent(WithClient<ConsentArgs>),
    /// Suppress a customer on one channel, or on every channel.
    Suppress(WithClient<SuppressArgs>),
    /// Lift a customer's suppression.
    Unsuppress(WithClient<UnsuppressArgs>),
    /// Show a customer's live profile, consent, suppressions and contacts.
    Profile(WithClient<ProfileArgs>),
    /// Erase everything stored about a customer, their decision log entries
    /// included.
    Forget(WithClient<ForgetArgs>),
    /// Replace the server's running catalog with FILE, or make it re-read its own.
    Reload(WithClient<ReloadArgs>),
    /// Watch the server's traffic, latency, serves, filters and fallbacks live
    /// (one snapshot when stdout is not a terminal, or with --once or --json).
    Stats(WithClient<StatsArgs>),
    /// Write the decision log, outcomes joined, to a Parquet or JSON lines
    /// file (the training input).
    Export(WithClient<ExportArgs>),
    /// The model registry: list the models and who each serves, load an
    /// artifact, promote a model to a share of customers, roll back.
    Model(WithClient<model::ModelArgs>),
    /// Drive synthetic customers with a known ground truth through the
    /// server (events, decisions, outcomes) and report the true expected
    /// reward of what it served.
    Simulate(WithClient<simulate::SimulateArgs>),
    /// Watch the journeys live (runs, conversion, sends, each step's
    /// entries, exits and drop-off), show a customer's runs with their
    /// audit trail, cancel a run, pause or resume a journey.
    Journeys(WithClient<journeys::JourneysArgs>),
    /// Print journeys' sends as a delivery service receives them, as they
    /// come (and acknowledge them with --ack), or acknowledge one.
    Dispatches(WithClient<dispatches::DispatchesArgs>),
    /// Cluster mode: the live nodes and which holds each partition.
    Cluster(WithClient<cluster::ClusterArgs>),
}

impl ClientCommand {
    /// The options every client subcommand takes, as given to this one.
    fn client(&self) -> &ClientArgs {
        match self {
            Self::Decide(command) => &command.client,
            Self::Track(command) => &command.client,
            Self::Outcome(command) => &command.client,
            Self::Consent(command) => &command.client,
            Self::Suppress(command) => &command.client,
            Self::Unsuppress(command) => &command.client,
            Self::Profile(command) => &command.client,
            Self::Forget(command) => &command.client,
            Self::Reload(command) => &command.client,
            Self::Stats(command) => &command.client,
            Self::Export(command) => &command.client,
            Self::Model(command) => &command.client,
            Self::Simulate(command) => &command.client,
            Self::Journeys(command) => &command.client,
            Self::Dispatches(command) => &command.client,
            Self::Cluster(command) => &command.client,
        }
    }
}

/// A client subcommand's own arguments, and the options every client
/// subcommand takes (listed last in its help).
#[derive(Debug, Clone, clap::Args)]
pub struct WithClient<A: clap::Args> {
    /// The subcommand's own arguments.
    #[command(flatten)]
    pub args: A,
    /// The server, the credentials and the output format.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The options of every client subcommand: where the server is, how to
/// authenticate, and whether to print JSON. They belong to the client
/// subcommands only, so `nudge serve --help` does not list them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Address of the nudge server.
    #[arg(
        long,
        env = "NUDGE_SERVER",
        default_value = "http://127.0.0.1:50051",
        display_order = 100
    )]
    pub server: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, display_order = 100)]
    pub json: bool,
    /// Bearer token for the protected calls (reload, stats, export, consent,
    /// suppress, unsuppress, forget); prefer NUDGE_TOKEN to keep it out of `ps`.
    #[arg(long, env = "NUDGE_TOKEN", hide_env_values = true, display_order = 101)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate; needed for
    /// an https:// server.
    #[arg(long, env = "NUDGE_CA_CERT", value_name = "FILE", display_order = 102)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM), for a server that requires one (mTLS).
    #[arg(
        long,
        env = "NUDGE_CLIENT_CERT",
        value_name = "FILE",
        display_order = 102
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "NUDGE_CLIENT_KEY",
        value_name = "FILE",
        display_order = 102
    )]
    pub client_key: Option<PathBuf>,
}

/// The [`ClientArgs`] given before the subcommand, as in `nudge --server URL
/// stats`, which `nudge` has always accepted; main.rs flattens them into the
/// top level. Hidden from every help text (the subcommands list their own),
/// and without environment variables or defaults: those come with the
/// subcommand's. An option given here wins over the subcommand's.
#[derive(Debug, Default, clap::Args)]
pub struct ClientOptions {
    /// Address of the nudge server.
    #[arg(long, hide = true)]
    pub server: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, hide = true)]
    pub json: bool,
    /// Bearer token for the protected calls.
    #[arg(long, hide = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate.
    #[arg(long, hide = true)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, hide = true)]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, hide = true)]
    pub client_key: Option<PathBuf>,
}

impl ClientArgs {
    /// These options with the ones given before the subcommand in `earlier`
    /// in their place.
    fn with_earlier(&self, earlier: &ClientOptions) -> Self {
        let ClientOptions {
            server,
            json,
            token,
            ca_cert,
            client_cert,
            client_key,
        } = earlier;
        Self {
            server: server.clone().unwrap_or_else(|| self.server.clone()),
            json: *json || self.json,
            token: token.clone().or_else(|| self.token.clone()),
            ca_cert: ca_cert.clone().or_else(|| self.ca_cert.clone()),
            client_cert: client_cert.clone().or_else(|| self.client_cert.clone()),
            client_key: client_key.clone().or_else(|| self.client_key.clone()),
        }
    }
}

/// Runs one client subcommand and prints the answer to stdout; `earlier` are
/// client options given before the subcommand. Argument problems are
/// reported before connecting; gRPC failures read `server said CODE: message`.
pub async fn run(command: ClientCommand, earlier: &ClientOptions) -> anyhow::Result<()> {
    let options = command.client().with_earlier(earlier);
    if let ClientCommand::Stats(stats) = &command
        && stats
            .args
            .live(options.json, std::io::stdout().is_terminal())
    {
        let connection = client::connect(&options).await?;
        return watch::watch(
            stats.args.interval,
            async || client::answer(connection.clone(), StatsRequest {}).await,
            output::stats,
        )
        .await;
    }
    if let ClientCommand::Journeys(journeys) = &command
        && journeys
            .args
            .live(options.json, std::io::stdout().is_terminal())
    {
        let connection = client::connect(&options).await?;
        return watch::watch(
            journeys.args.interval,
            async || client::answer(connection.clone(), ListJourneysRequest {}).await,
            |_, snapshot, _| journeys::dashboard(snapshot),
        )
        .await;
    }
    if let ClientCommand::Dispatches(dispatches) = &command
        && dispatches.args.action == dispatches::DispatchesAction::Watch
    {
        return dispatches::watch(&dispatches.args, &options).await;
    }
    let text = execute(command, &options).await?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        // `nudge stats | head -1` closes the pipe early: not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Streams the decision log from `Admin.ExportDecisions` into `args.out`, as
/// `nudge export` does: the file appears only once complete. Time bounds
/// given as ages (`7d`) count back from now.
pub async fn export_decisions(
    args: &ExportArgs,
    options: &ClientArgs,
) -> anyhow::Result<ExportSummary> {
    let request = args.request(chrono::Utc::now())?;
    if args.events {
        let writer = export::ExportWriter::create_events(&args.out, args.format())?;
        if let Some(data_dir) = &args.data_dir {
            return export_offline(data_dir, request, writer, true).await;
        }
        let request = nudge_proto::v1::ExportEventsRequest {
            since: request.since,
            until: request.until,
        };
        return export::write_event_stream(client::ask(options, request).await?, writer).await;
    }
    // Before connecting, so a bad path is reported before the server works.
    let writer = export::ExportWriter::create(&args.out, args.format())?;
    if let Some(data_dir) = &args.data_dir {
        return export_offline(data_dir, request, writer, false).await;
    }
    export::write_stream(client::ask(options, request).await?, writer).await
}

/// `nudge export --data-dir`: reads the decision log straight from a data
/// directory no server has open, through the same store and conversions the
/// server uses.
async fn export_offline(
    data_dir: &std::path::Path,
    request: nudge_proto::v1::ExportDecisionsRequest,
    writer: export::ExportWriter,
    events: bool,
) -> anyhow::Result<ExportSummary> {
    use crate::store::{DecisionLog as _, RedbStore, StoreOptions};
    use anyhow::Context as _;
    let range = crate::convert::export_range(request)?;
    if !data_dir.join(crate::store::DATA_FILE).is_file() {
        anyhow::bail!(
            "{} holds no {}: not a nudge data directory",
            data_dir.display(),
            crate::store::DATA_FILE
        );
    }
    let store = RedbStore::open(data_dir, StoreOptions::default())
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    if events {
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        let reader = tokio::task::spawn_blocking(move || {
            let result =
                store.export_events(range, &mut |event| sender.blocking_send(Ok(event)).is_ok());
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(anyhow::Error::from(error)));
            }
        });
        let summary = export::write_events(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
            writer,
        )
        .await;
        reader.await.context("the store reader failed")?;
        return summary;
    }
    let (sender, receiver) = tokio::sync::mpsc::channel(256);
    let reader = tokio::task::spawn_blocking(move || {
        let result = store.export(range, &mut |decision| {
            sender.blocking_send(Ok(decision)).is_ok()
        });
        if let Err(error) = result {
            let _ = sender.blocking_send(Err(anyhow::Error::from(error)));
        }
    });
    let summary = export::write_decisions(
        tokio_stream::wrappers::ReceiverStream::new(receiver),
        writer,
    )
    .await;
    reader.await.context("the store reader failed")?;
    summary
}

/// Either rendering of an answer, chosen by `--json`.
fn render(
    options: &ClientArgs,
    json: impl FnOnce() -> Json,
    text: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if options.json {
        Ok(serde_json::to_string_pretty(&json())?)
    } else {
        Ok(text())
    }
}

/// Sends `request` to the server in `options` and renders the answer, as
/// JSON or text, from the request and the response.
async fn call<R: Rpc + Clone>(
    options: &ClientArgs,
    request: R,
    json: impl FnOnce(&R, &R::Response) -> Json,
    text: impl FnOnce(&R, &R::Response) -> String,
) -> anyhow::Result<String> {
    let response = client::ask(options, request.clone()).await?;
    render(
        options,
        || json(&request, &response),
        || text(&request, &response),
    )
}

/// Builds the command's request, sends it and renders the answer: what each
/// subcommand sends and how its answer reads.
async fn execute(command: ClientCommand, options: &ClientArgs) -> anyhow::Result<String> {
    use ClientCommand as C;
    match command {
        C::Decide(c) => {
            let request = c.args.request()?;
            call(
                options,
                request,
                |_, r| json::decide(r),
                |_, r| output::decide(r),
            )
            .await
        }
        C::Track(c) => call(options, c.args.event()?, json::track, output::track).await,
        C::Outcome(c) => call(options, c.args.request(), json::outcome, output::outcome).await,
        C::Consent(c) => call(options, c.args.request(), json::consent, output::consent).await,
        C::Suppress(c) => call(options, c.args.request(), json::suppress, output::suppress).await,
        C::Unsuppress(c) => {
            call(
                options,
                c.args.request(),
                json::unsuppress,
                output::unsuppress,
            )
            .await
        }
        C::Forget(c) => call(options, c.args.request(), json::forget, output::forget).await,
        C::Profile(c) => {
            let text = |_: &_, profile: &_| output::profile(profile, chrono::Utc::now());
            call(
                options,
                c.args.request(),
                |_, profile| json::profile(profile),
                text,
            )
            .await
        }
        C::Reload(c) => {
            let source = c.args.file.as_deref();
            let json = |_: &_, response: &_| json::reload(source, response);
            let text = |_: &_, response: &_| output::reload(source, response);
            call(options, c.args.request()?, json, text).await
        }
        C::Stats(_) => {
            let text =
                |_: &_, response: &_| output::stats(None, response, std::time::Duration::ZERO);
            call(options, StatsRequest {}, |_, r| json::stats(r), text).await
        }
        C::Export(c) => {
            let summary = export_decisions(&c.args, options).await?;
            render(
                options,
                || json::export(&summary),
                || output::export(&summary),
            )
        }
        C::Model(c) => model::run(&c.args, options).await,
        C::Journeys(c) => journeys::run(&c.args, options).await,
        C::Dispatches(c) => dispatches::run(&c.args, options).await,
        C::Cluster(c) => cluster::run(&c.args, options).await,
        C::Simulate(c) => {
            let simulation = c.args.simulation()?;
            let pace = simulate::RealTime {
                interval: c.args.interval,
            };
            let mut progress = |line: &str| eprintln!("{line}");
            let run = simulate::simulate(options, &simulation, &pace, &mut progress).await?;
            render(
                options,
                || json::simulate(&run, &options.server),
                || output::simulate(&run, &options.server),
            )
        }
    }
}
