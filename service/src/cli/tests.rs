//! The client subcommands' tests: parsing the command line as main.rs shapes
//! it, the client options' place, and errors before and at connecting.

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
    assert_eq!(
        outcome.args.outcome,
        nudge_models::ledger::OutcomeKind::Conversion
    );
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
    let err = parse(&["export", "--out", "d.parquet", "--format", "csv"]).expect_err("bad format");
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
        events: false,
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
