//! The client side of the `nudge` command-line tool: subcommands that talk to a
//! running nudge server over gRPC (`decide`, `track`, `outcome`, `consent`,
//! `suppress`, `unsuppress`, `profile`, `forget`, `reload`, `stats`, `export`)
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

mod args;
mod client;
mod export;
mod json;
mod names;
mod output;
mod parse;
mod watch;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use nudge_proto::v1::StatsRequest;
use serde_json::Value as Json;

pub use args::{
    ConsentArg, ConsentArgs, DecideArgs, ExportArgs, ForgetArgs, OutcomeArg, OutcomeArgs,
    ProfileArgs, ReloadArgs, StatsArgs, SuppressArgs, SuppressionReasonArg, TrackArgs,
    UnsuppressArgs,
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
        return watch::watch(stats.args.interval, async || {
            client::answer(connection.clone(), StatsRequest {}).await
        })
        .await;
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
    // Before connecting, so a bad path is reported before the server works.
    let writer = export::ExportWriter::create(&args.out, args.format())?;
    if let Some(data_dir) = &args.data_dir {
        return export_offline(data_dir, request, writer).await;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser};
    use nudge_proto::v1::value::Kind;

    /// The shape main.rs gives the client commands: the options before the
    /// subcommand flattened into the top level.
    #[derive(Debug, Parser)]
    #[command(name = "nudge")]
    struct Cli {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("nudge").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn decide_parses_typed_context_and_global_flags() {
        let cli = parse(&[
            "decide",
            "--customer",
            "c-1",
            "--placement",
            "home_banner",
            "--context",
            "device=mobile",
            "--context",
            "premium=true",
            "--context",
            "zip:s=02134",
            "--candidate",
            "a",
            "--candidate",
            "b",
            "--limit",
            "2",
            "--explain",
            "--dry-run",
            "--json",
            "--server",
            "http://example:1",
        ])
        .expect("valid command line");
        let ClientCommand::Decide(decide) = cli.command else {
            panic!("expected decide");
        };
        assert!(decide.client.json);
        assert_eq!(decide.client.server, "http://example:1");
        let request = decide.args.request().expect("valid request");
        assert_eq!(request.customer_id, "c-1");
        assert_eq!(request.candidate_action_ids, ["a", "b"]);
        assert_eq!(request.limit, 2);
        assert!(request.explain && request.dry_run);
        assert_eq!(request.context["premium"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(
            request.context["zip"].kind,
            Some(Kind::StringValue("02134".into()))
        );
    }

    #[test]
    fn bad_key_value_names_the_argument() {
        let err = parse(&[
            "decide",
            "--customer",
            "c",
            "--placement",
            "p",
            "--context",
            "oops",
        ])
        .expect_err("no '='");
        let text = err.to_string();
        assert!(text.contains("--context"), "{text}");
        assert!(text.contains("KEY=VALUE"), "{text}");
    }

    #[test]
    fn other_subcommands_parse() {
        let cli = parse(&[
            "outcome",
            "--customer",
            "c",
            "--decision",
            "d",
            "--action",
            "a",
            "--outcome",
            "conversion",
            "--reward",
            "-1.5",
        ])
        .expect("valid outcome");
        let ClientCommand::Outcome(outcome) = cli.command else {
            panic!("expected outcome");
        };
        assert_eq!(outcome.args.outcome, OutcomeArg::Conversion);
        assert_eq!(outcome.args.reward, Some(-1.5));

        let cli = parse(&[
            "consent",
            "--customer",
            "c",
            "--channel",
            "sms",
            "--state",
            "opted-out",
        ])
        .expect("valid consent");
        assert!(matches!(
            cli.command,
            ClientCommand::Consent(WithClient {
                args: ConsentArgs {
                    state: ConsentArg::OptedOut,
                    ..
                },
                ..
            })
        ));

        assert!(
            parse(&[
                "suppress",
                "--customer",
                "c",
                "--reason",
                "legal",
                "--note",
                "T-1"
            ])
            .is_ok()
        );
        assert!(
            parse(&["suppress", "--customer", "c"]).is_err(),
            "reason is required"
        );
        assert!(parse(&["unsuppress", "--customer", "c"]).is_ok());
        assert!(parse(&["profile", "c-42"]).is_ok());
        let cli = parse(&["forget", "c-42", "--json"]).expect("valid forget");
        assert!(matches!(
            cli.command,
            ClientCommand::Forget(WithClient { args: ForgetArgs { ref customer }, .. })
                if customer == "c-42"
        ));
        assert!(parse(&["forget"]).is_err(), "the customer is required");
        let cli = parse(&[
            "export",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-02T00:00:00Z",
            "--out",
            "decisions.out",
            "--format",
            "jsonl",
        ])
        .expect("valid export");
        let ClientCommand::Export(WithClient { args, .. }) = cli.command else {
            panic!("expected export");
        };
        assert_eq!(args.format(), ExportFormat::Jsonl);
        assert!(matches!(args.since, Some(TimeBound::At(_))));
        let cli = parse(&["export", "--since", "7d", "--out", "d.parquet"]).expect("an age");
        let ClientCommand::Export(WithClient { args, .. }) = cli.command else {
            panic!("expected export");
        };
        assert!(matches!(args.since, Some(TimeBound::Ago(_))));
        assert_eq!(args.format(), ExportFormat::Parquet);
        assert!(parse(&["export"]).is_err(), "--out is required");
        let err =
            parse(&["export", "--out", "d.parquet", "--since", "last week"]).expect_err("bad time");
        assert!(err.to_string().contains("--since"), "{err}");
        let err =
            parse(&["export", "--out", "d.parquet", "--format", "csv"]).expect_err("bad format");
        assert!(err.to_string().contains("parquet"), "{err}");
        assert!(parse(&["reload"]).is_ok());
        assert!(parse(&["reload", "catalog.toml"]).is_ok());
        assert!(parse(&["stats"]).is_ok());
        let cli = parse(&["stats", "--once", "--interval", "0.5"]).expect("valid stats");
        let ClientCommand::Stats(WithClient { args, .. }) = cli.command else {
            panic!("expected stats");
        };
        assert!(args.once);
        assert_eq!(args.interval, std::time::Duration::from_millis(500));
        let err = parse(&["stats", "--interval", "0"]).expect_err("too short");
        assert!(err.to_string().contains("--interval"), "{err}");
        assert!(
            parse(&[
                "track",
                "--customer",
                "c",
                "--event",
                "login",
                "--at",
                "2024-05-01T10:00:00Z"
            ])
            .is_ok()
        );
        let err = parse(&[
            "track",
            "--customer",
            "c",
            "--event",
            "login",
            "--at",
            "yesterday",
        ])
        .expect_err("bad time");
        assert!(err.to_string().contains("--at"), "{err}");
        let err = parse(&[
            "outcome",
            "--customer",
            "c",
            "--decision",
            "d",
            "--action",
            "a",
            "--outcome",
            "clicked",
        ])
        .expect_err("bad outcome");
        assert!(err.to_string().contains("click"), "{err}");
    }

    #[tokio::test]
    async fn an_export_to_an_unreachable_server_leaves_no_file() {
        let directory =
            std::env::temp_dir().join(format!("nudge-export-unreachable-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("a scratch directory");
        let options = ClientArgs {
            server: "http://127.0.0.1:1".into(),
            ..ClientArgs::default()
        };
        let args = ExportArgs {
            data_dir: None,
            out: directory.join("decisions.parquet"),
            since: None,
            until: None,
            format: None,
        };
        let err = export_decisions(&args, &options)
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.to_string().contains("http://127.0.0.1:1"), "{err}");
        let left = std::fs::read_dir(&directory).expect("readable").count();
        assert_eq!(left, 0, "the temporary file is removed");
        std::fs::remove_dir_all(&directory).expect("cleanup");
    }

    #[tokio::test]
    async fn unreachable_server_is_reported_with_its_address() {
        let stats = WithClient {
            args: StatsArgs::default(),
            client: ClientArgs {
                server: "http://127.0.0.1:1".into(),
                ..ClientArgs::default()
            },
        };
        let err = run(ClientCommand::Stats(stats), &ClientOptions::default())
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.to_string().contains("http://127.0.0.1:1"), "{err}");
    }

    #[test]
    fn client_options_belong_to_the_client_subcommands() {
        let mut cli = Cli::command();
        let decide = cli
            .find_subcommand_mut("decide")
            .expect("decide")
            .render_help();
        for flag in ["--server", "--token", "--json", "--ca-cert"] {
            assert!(decide.to_string().contains(flag), "{flag}: {decide}");
        }
        let top = cli.render_help().to_string();
        assert!(
            !top.contains("--server") && !top.contains("--token"),
            "{top}"
        );
    }

    #[test]
    fn options_before_the_subcommand_still_apply_and_win() {
        let cli = parse(&["--server", "http://before:1", "--json", "stats"]).expect("valid");
        let options = cli.command.client().with_earlier(&cli.options);
        assert_eq!(options.server, "http://before:1");
        assert!(options.json);
        let cli = parse(&["stats", "--server", "http://after:1", "--token", "t"]).expect("valid");
        let options = cli.command.client().with_earlier(&cli.options);
        assert_eq!(options.server, "http://after:1");
        assert_eq!(options.token.as_deref(), Some("t"));
        assert!(!options.json);
    }
}
