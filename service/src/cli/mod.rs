//! The client side of the `nudge` command-line tool: subcommands that talk to a
//! running nudge server over gRPC (`decide`, `track`, `outcome`, `consent`,
//! `suppress`, `unsuppress`, `profile`, `forget`, `reload`, `stats`, `export`)
//! and print the answer as text for a person or, with `--json`, as one JSON
//! object.
//!
//! - `args`: the clap arguments of each subcommand and the requests they build.
//! - `parse`: typed `KEY=VALUE` pairs, RFC 3339 times, finite numbers.
//! - `client`: connecting (TLS, client certificate, bearer token), and readable
//!   gRPC / connection errors.
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

use nudge_proto::v1::{
    StatsRequest, admin_client::AdminClient, decisions_client::DecisionsClient,
    events_client::EventsClient, profiles_client::ProfilesClient,
};

pub use args::{
    ConsentArg, ConsentArgs, DecideArgs, ExportArgs, ForgetArgs, OutcomeArg, OutcomeArgs,
    ProfileArgs, ReloadArgs, StatsArgs, SuppressArgs, SuppressionReasonArg, TrackArgs,
    UnsuppressArgs,
};
pub use export::{ExportFormat, ExportSummary, ROWS_PER_GROUP};
pub use parse::{KeyValue, TimeBound};

use client::status_error;

/// Client subcommands: talk to a running nudge server.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Ask which actions to show or send a customer now, and why.
    Decide(DecideArgs),
    /// Track a behavioural event for a customer.
    Track(TrackArgs),
    /// Report what happened to an action served by a decision.
    Outcome(OutcomeArgs),
    /// Record a customer's consent for one channel.
    Consent(ConsentArgs),
    /// Suppress a customer on one channel, or on every channel.
    Suppress(SuppressArgs),
    /// Lift a customer's suppression.
    Unsuppress(UnsuppressArgs),
    /// Show a customer's live profile, consent, suppressions and contacts.
    Profile(ProfileArgs),
    /// Erase everything stored about a customer, their decision log entries
    /// included.
    Forget(ForgetArgs),
    /// Replace the server's running catalog with FILE, or make it re-read its own.
    Reload(ReloadArgs),
    /// Watch the server's traffic, latency, serves, filters and fallbacks live
    /// (one snapshot when stdout is not a terminal, or with --once or --json).
    Stats(StatsArgs),
    /// Write the decision log, outcomes joined, to a Parquet or JSON lines
    /// file (the training input).
    Export(ExportArgs),
}

/// Global client options, flattened into the top-level CLI by main.rs.
#[derive(Debug, Default, clap::Args)]
pub struct ClientOptions {
    /// Address of the nudge server.
    #[arg(
        long,
        global = true,
        env = "NUDGE_SERVER",
        default_value = "http://127.0.0.1:50051",
        display_order = 100
    )]
    pub server: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true, display_order = 100)]
    pub json: bool,
    /// Bearer token for the protected calls (reload, stats, export, consent,
    /// suppress, unsuppress, forget); prefer NUDGE_TOKEN to keep it out of `ps`.
    #[arg(
        long,
        global = true,
        env = "NUDGE_TOKEN",
        hide_env_values = true,
        display_order = 101
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate; needed for
    /// an https:// server.
    #[arg(
        long,
        global = true,
        env = "NUDGE_CA_CERT",
        value_name = "FILE",
        display_order = 102
    )]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for a server that requires one (mTLS).
    #[arg(
        long,
        global = true,
        env = "NUDGE_CLIENT_CERT",
        value_name = "FILE",
        display_order = 102
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "NUDGE_CLIENT_KEY",
        value_name = "FILE",
        display_order = 102
    )]
    pub client_key: Option<std::path::PathBuf>,
}

/// Runs one client subcommand against the server in `options` and prints the
/// answer to stdout. Argument problems are reported before connecting; gRPC
/// failures read `server said CODE: message`.
pub async fn run(command: ClientCommand, options: &ClientOptions) -> anyhow::Result<()> {
    if let ClientCommand::Stats(args) = &command
        && args.live(options.json, std::io::stdout().is_terminal())
    {
        let mut client = AdminClient::new(client::connect(options).await?);
        return watch::watch(args.interval, async || {
            Ok(client
                .stats(StatsRequest {})
                .await
                .map_err(status_error)?
                .into_inner())
        })
        .await;
    }
    let text = execute(command, options).await?;
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
    options: &ClientOptions,
) -> anyhow::Result<ExportSummary> {
    let request = args.request(chrono::Utc::now())?;
    // Before connecting, so a bad path is reported before the server works.
    let writer = export::ExportWriter::create(&args.out, args.format())?;
    if let Some(data_dir) = &args.data_dir {
        return export_offline(data_dir, request, writer).await;
    }
    let mut client = AdminClient::new(client::connect(options).await?);
    let decisions = client
        .export_decisions(request)
        .await
        .map_err(status_error)?
        .into_inner();
    export::write_stream(decisions, writer).await
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

/// Either rendering of a response, chosen by `--json`.
fn render(
    options: &ClientOptions,
    json: impl FnOnce() -> serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if options.json {
        Ok(serde_json::to_string_pretty(&json())?)
    } else {
        Ok(text())
    }
}

/// Sends the command's request and renders the response.
async fn execute(command: ClientCommand, options: &ClientOptions) -> anyhow::Result<String> {
    match command {
        ClientCommand::Decide(args) => {
            let request = args.request()?;
            let mut client = DecisionsClient::new(client::connect(options).await?);
            let response = client
                .decide(request)
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::decide(&response),
                || output::decide(&response),
            )
        }
        ClientCommand::Track(args) => {
            let event = args.event()?;
            let mut client = EventsClient::new(client::connect(options).await?);
            let response = client
                .track(event.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::track(&event, &response),
                || output::track(&event, &response),
            )
        }
        ClientCommand::Outcome(args) => {
            let request = args.request();
            let mut client = DecisionsClient::new(client::connect(options).await?);
            let response = client
                .report_outcome(request.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::outcome(&request, &response),
                || output::outcome(&request, &response),
            )
        }
        ClientCommand::Consent(args) => {
            let request = args.request();
            let mut client = ProfilesClient::new(client::connect(options).await?);
            let response = client
                .set_consent(request.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::consent(&request, &response),
                || output::consent(&request, &response),
            )
        }
        ClientCommand::Suppress(args) => {
            let request = args.request();
            let mut client = ProfilesClient::new(client::connect(options).await?);
            let response = client
                .suppress(request.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::suppress(&request, &response),
                || output::suppress(&request, &response),
            )
        }
        ClientCommand::Unsuppress(args) => {
            let request = args.request();
            let mut client = ProfilesClient::new(client::connect(options).await?);
            let response = client
                .unsuppress(request.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::unsuppress(&request, &response),
                || output::unsuppress(&request, &response),
            )
        }
        ClientCommand::Profile(args) => {
            let mut client = ProfilesClient::new(client::connect(options).await?);
            let profile = client
                .get_profile(args.request())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::profile(&profile),
                || output::profile(&profile, chrono::Utc::now()),
            )
        }
        ClientCommand::Forget(args) => {
            let request = args.request();
            let mut client = ProfilesClient::new(client::connect(options).await?);
            let response = client
                .forget(request.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::forget(&request, &response),
                || output::forget(&request, &response),
            )
        }
        ClientCommand::Reload(args) => {
            let request = args.request()?;
            let mut client = AdminClient::new(client::connect(options).await?);
            let response = client
                .reload_catalog(request)
                .await
                .map_err(status_error)?
                .into_inner();
            let source = args.file.as_deref();
            render(
                options,
                || json::reload(source, &response),
                || output::reload(source, &response),
            )
        }
        ClientCommand::Stats(_) => {
            let mut client = AdminClient::new(client::connect(options).await?);
            let response = client
                .stats(StatsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            render(
                options,
                || json::stats(&response),
                || output::stats(None, &response, std::time::Duration::ZERO),
            )
        }
        ClientCommand::Export(args) => {
            let summary = export_decisions(&args, options).await?;
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

    /// The shape main.rs gives the client commands.
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
        assert!(cli.options.json);
        assert_eq!(cli.options.server, "http://example:1");
        let ClientCommand::Decide(args) = cli.command else {
            panic!("expected decide");
        };
        let request = args.request().expect("valid request");
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
        let ClientCommand::Outcome(args) = cli.command else {
            panic!("expected outcome");
        };
        assert_eq!(args.outcome, OutcomeArg::Conversion);
        assert_eq!(args.reward, Some(-1.5));

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
            ClientCommand::Consent(ConsentArgs {
                state: ConsentArg::OptedOut,
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
            ClientCommand::Forget(ForgetArgs { ref customer }) if customer == "c-42"
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
        let ClientCommand::Export(args) = cli.command else {
            panic!("expected export");
        };
        assert_eq!(args.format(), ExportFormat::Jsonl);
        assert!(matches!(args.since, Some(TimeBound::At(_))));
        let cli = parse(&["export", "--since", "7d", "--out", "d.parquet"]).expect("an age");
        let ClientCommand::Export(args) = cli.command else {
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
        let ClientCommand::Stats(args) = cli.command else {
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
        let options = ClientOptions {
            server: "http://127.0.0.1:1".into(),
            ..ClientOptions::default()
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
        let options = ClientOptions {
            server: "http://127.0.0.1:1".into(),
            ..ClientOptions::default()
        };
        let err = run(ClientCommand::Stats(StatsArgs::default()), &options)
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.to_string().contains("http://127.0.0.1:1"), "{err}");
    }
}
