//! Operations of the real `nudge serve`: configuration layering as the binary
//! applies it (environment, `--set`, flags; errors that name the variable or
//! setting; the client's own variables in the same shell are no settings),
//! JSON logs (valid JSON lines, one span per call with the client's request
//! id, no customer ids), and text logs without colour codes in a file.

mod common;

use common::{Access, Server, TempDir, run_with_env};
use nudge_proto::v1::decisions_client::DecisionsClient;
use serde_json::Value as Json;

/// `nudge serve ARGS` with `env`, expected to refuse its configuration;
/// returns what it printed on stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let output = run_with_env(&all, env);
    assert!(
        !output.status.success(),
        "the configuration was accepted:\n{}",
        output.describe()
    );
    assert!(
        !output.stderr.contains("nudge is serving"),
        "{}",
        output.describe()
    );
    output.stderr
}

#[test]
fn configuration_errors_name_the_variable_or_setting() {
    let stderr = refused(&[], &[("NUDGE_ACTORS_ARBITRS", "2")]);
    assert!(
        stderr.contains("environment variable NUDGE_ACTORS_ARBITRS") && stderr.contains("arbitrs"),
        "{stderr}"
    );
    let stderr = refused(&[], &[("NUDGE_BUDGET_MS", "fast")]);
    assert!(
        stderr.contains("environment variable NUDGE_BUDGET_MS") && stderr.contains("fast"),
        "{stderr}"
    );
    let stderr = refused(&["--set", "grpc.max_connections=0"], &[]);
    assert!(stderr.contains("config: grpc.max_connections"), "{stderr}");
    // A flag wins over the environment: the valid flag value is used, so the
    // error comes from the other, invalid setting only.
    let stderr = refused(
        &[
            "--budget-ms",
            "50",
            "--set",
            "grpc.max_concurrent_streams=0",
        ],
        &[("NUDGE_BUDGET_MS", "0")],
    );
    assert!(
        stderr.contains("config: grpc.max_concurrent_streams") && !stderr.contains("budget_ms"),
        "{stderr}"
    );
    let stderr = refused(&[], &[("NUDGE_LOG", "nudge_service=loud")]);
    assert!(stderr.contains("config: log:"), "{stderr}");
}

#[test]
fn the_clients_variables_do_not_stop_the_server_but_a_misspelt_setting_does() {
    let client_env = [
        ("NUDGE_SERVER", "http://127.0.0.1:1"),
        ("NUDGE_TOKEN", "a-client-token"),
    ];
    let stderr = refused(
        &[],
        &[client_env[0], client_env[1], ("NUDGE_BUDGETMS", "50")],
    );
    assert!(
        stderr.contains("environment variable NUDGE_BUDGETMS"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("NUDGE_SERVER") && !stderr.contains("NUDGE_TOKEN"),
        "{stderr}"
    );

    let dir = TempDir::new("client-env");
    // Colours allowed (an empty NO_COLOR is unset), yet the log is a file.
    let mut server_env = vec![("NO_COLOR".to_owned(), String::new())];
    server_env.extend(client_env.map(|(name, value)| (name.to_owned(), value.to_owned())));
    let server = Server::start_with_access(
        &dir,
        &[],
        Access {
            server_env,
            ..Access::default()
        },
    );
    let log = server.stop_with("-TERM");
    assert!(log.contains("nudge is serving"), "{log}");
    assert!(
        !log.contains("\x1b["),
        "colour codes in a log file:\n{log:?}"
    );
}

/// Every line of `log` as JSON; panics on a line that is not.
fn json_lines(log: &str) -> Vec<Json> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| {
                panic!("a log line is not JSON ({error}): {line}\nlog:\n{log}")
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_call_span_and_no_customer_id() {
    const CUSTOMER: &str = "secret-customer-4242";
    let dir = TempDir::new("json-logs");
    // NUDGE_LOG=info from the harness; --set wins over it.
    let server = Server::start(
        &dir,
        &[
            "--log-format",
            "json",
            "--set",
            "log=nudge_service=debug,info",
        ],
    );
    let mut client = DecisionsClient::connect(server.url().to_owned())
        .await
        .expect("connect");
    let mut request = tonic::Request::new(nudge_proto::v1::DecideRequest {
        customer_id: CUSTOMER.to_owned(),
        placement: "home_banner".to_owned(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "checkout-7f3a".parse().expect("ascii"));
    client.decide(request).await.expect("decide answers");
    let unknown = client
        .decide(nudge_proto::v1::DecideRequest {
            customer_id: CUSTOMER.to_owned(),
            placement: "no_such_placement".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("an unknown placement is refused");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    drop(client);

    let log = server.stop_with("-TERM");
    assert!(!log.contains(CUSTOMER), "a customer id in the log:\n{log}");
    let lines = json_lines(&log);
    let finished: Vec<&Json> = lines
        .iter()
        .filter(|line| {
            line["message"] == "call finished"
                && line["span"]["method"] == "/nudge.v1.Decisions/Decide"
        })
        .collect();
    assert_eq!(finished.len(), 2, "one line per Decide call:\n{log}");
    assert_eq!(finished[0]["span"]["request_id"], "checkout-7f3a", "{log}");
    assert_eq!(finished[0]["status"], "Ok", "{log}");
    assert!(finished[0]["latency_us"].is_u64(), "{log}");
    assert!(finished[1]["span"].get("request_id").is_none(), "{log}");
    assert_eq!(finished[1]["status"], "InvalidArgument", "{log}");
    for message in ["nudge is serving", "stopped"] {
        assert!(
            lines.iter().any(|line| line["message"] == message),
            "no {message:?} line:\n{log}"
        );
    }
}
