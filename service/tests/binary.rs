//! Tests of the real `nudge` binary, run as child processes: `nudge serve` on a
//! loopback port, the client subcommands against it, SIGHUP catalog reloads,
//! SIGTERM/SIGINT shutdown, and `nudge catalog validate`.
//!
//! The in-process tests (the `tests` package) drive `server::run` directly;
//! these cover what only the binary does: argument parsing, signal handling,
//! exit codes, and what the client prints.
//!
//! Every child is owned by a [`ChildGuard`] that kills and reaps it on drop, so
//! a failing assertion never leaks a server. Each test uses its own port and
//! temp folder, so they run in parallel. The harness is in `common/`, shared
//! with `metrics.rs`.

mod common;

use common::{
    DEMO_CATALOG, DEMO_VERSION_LINE, POLL_INTERVAL, READY_TIMEOUT, Server, TempDir, free_port,
    poll, run,
};
use std::fs;
use std::thread;

/// The decision id in the footer of `decide`'s text output.
fn footer_decision_id(text: &str) -> &str {
    let footer = text
        .lines()
        .find(|line| line.starts_with("decision "))
        .unwrap_or_else(|| panic!("no `decision …` footer in:\n{text}"));
    footer
        .split_whitespace()
        .nth(1)
        .expect("the footer names the decision")
}

#[test]
fn serve_answers_the_client_subcommands() {
    let dir = TempDir::new("client");
    let server = Server::start(&dir, &[]);

    // Text: a ranked table, rationale bullets under the rows, and a footer.
    let text = server.ok(&[
        "decide",
        "--customer",
        "c1",
        "--placement",
        "onboarding_sidebar",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.first().copied().unwrap_or_default();
    for column in [
        "#",
        "ACTION",
        "CHANNEL",
        "SCORE",
        "PROPENSITY",
        "CONFIDENCE",
    ] {
        assert!(header.contains(column), "header lacks {column}:\n{text}");
    }
    let ranked: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|first| first.parse::<u32>().is_ok())
        })
        .collect();
    assert!(!ranked.is_empty(), "no ranked action rows:\n{text}");
    assert!(
        ranked[0].trim_start().starts_with("1 "),
        "first row is not rank 1:\n{text}"
    );
    let first_row = lines
        .iter()
        .position(|line| *line == ranked[0])
        .expect("the first ranked row is a line");
    let rationale = lines
        .get(first_row + 1)
        .map(|line| line.trim_start())
        .unwrap_or_default();
    assert!(
        rationale.starts_with("- ")
            && rationale.ends_with(')')
            && (rationale.contains("(+") || rationale.contains("(-")),
        "the first action has no rationale line with its signed effect:\n{text}"
    );
    let decision_id = footer_decision_id(&text).to_owned();
    assert!(
        decision_id.len() >= 8
            && decision_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "footer has no decision id:\n{text}"
    );
    let footer = lines
        .iter()
        .find(|line| line.starts_with("decision "))
        .expect("footer found above");
    assert!(
        footer.contains("model ") && footer.contains("fallback: no"),
        "{footer}"
    );

    // JSON: one object with the served actions.
    let decision = server.json(&[
        "decide",
        "--customer",
        "c1",
        "--placement",
        "onboarding_sidebar",
    ]);
    let served = decision["served"]
        .as_array()
        .unwrap_or_else(|| panic!("no served array: {decision}"));
    assert!(!served.is_empty(), "nothing served: {decision}");
    for (rank, action) in served.iter().enumerate() {
        let id = action["action_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "served action without action_id: {action}");
        assert_eq!(action["rank"], rank + 1, "{decision}");
    }
    let json_decision_id = decision["decision_id"]
        .as_str()
        .expect("a recorded decision has an id")
        .to_owned();
    assert_ne!(json_decision_id, decision_id, "two decisions, two ids");

    // Outcome on the JSON decision: applied once, then a duplicate.
    let first_action = served[0]["action_id"].as_str().expect("checked above");
    let outcome = [
        "outcome",
        "--customer",
        "c1",
        "--decision",
        &json_decision_id,
        "--action",
        first_action,
        "--outcome",
        "click",
    ];
    let text = server.ok(&outcome);
    assert!(
        text.starts_with(&format!("Recorded click on {first_action}")),
        "{text}"
    );
    let text = server.ok(&outcome);
    assert!(text.starts_with("Not applied"), "{text}");

    // Track, then the profile shows the counter; the same event id again is a
    // duplicate and counts nothing.
    let track = [
        "track",
        "--customer",
        "c1",
        "--event",
        "login",
        "--id",
        "ev-1",
    ];
    let text = server.ok(&track);
    assert!(text.starts_with("Tracked login for c1"), "{text}");
    let text = server.ok(&track);
    assert!(text.starts_with("Duplicate"), "{text}");
    let profile = server.json(&["profile", "c1"]);
    assert_eq!(profile["customer_id"], "c1");
    let counters = profile["counters"].as_array().expect("counters array");
    let login = counters
        .iter()
        .find(|c| c["name"] == "login")
        .unwrap_or_else(|| panic!("no login counter: {profile}"));
    assert_eq!(login["last_1d"], 1, "{profile}");
    assert_eq!(login["last_30d"], 1, "{profile}");
    // The text footer's decision id is the one the profile's contacts record.
    let contacts = profile["contacts"].as_array().expect("contacts array");
    assert!(
        contacts
            .iter()
            .any(|c| c["decision_id"] == decision_id.as_str()),
        "no contact of decision {decision_id}: {profile}"
    );

    // Consent and suppression round trips.
    let text = server.ok(&[
        "consent",
        "--customer",
        "c1",
        "--channel",
        "sms",
        "--state",
        "opted-in",
    ]);
    assert_eq!(text.trim(), "Consent of c1 on sms: opted in (was unset).");
    let text = server.ok(&[
        "suppress",
        "--customer",
        "c1",
        "--reason",
        "bounce",
        "--channel",
        "email",
    ]);
    assert!(
        text.starts_with("Suppressed c1 on email (bounce)."),
        "{text}"
    );
    let text = server.ok(&["unsuppress", "--customer", "c1", "--channel", "email"]);
    assert!(
        text.starts_with("Lifted every suppression of c1 on email."),
        "{text}"
    );

    // An invalid call: non-zero exit, the gRPC code and the culprit on stderr.
    let output = server.client(&[
        "decide",
        "--customer",
        "c1",
        "--placement",
        "onboarding_sidebar",
        "--candidate",
        "nope",
    ]);
    assert!(!output.status.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("INVALID_ARGUMENT"),
        "{}",
        output.describe()
    );
    assert!(output.stderr.contains("nope"), "{}", output.describe());
    assert!(output.stdout.is_empty(), "{}", output.describe());

    // Unknown profile: NOT_FOUND, non-zero.
    let output = server.client(&["profile", "nobody-ever"]);
    assert!(!output.status.success(), "{}", output.describe());
    assert!(output.stderr.contains("NOT_FOUND"), "{}", output.describe());

    // Stats counted all of it.
    let stats = server.json(&["stats"]);
    assert!(stats["decisions"].as_u64() >= Some(2), "{stats}");
    assert!(stats["events"].as_u64() >= Some(1), "{stats}");
    assert_eq!(stats["duplicate_events"], 1, "{stats}");
    assert_eq!(stats["outcomes"], 1, "{stats}");
    let text = server.ok(&["stats"]);
    assert!(text.starts_with("nudge server up "), "{text}");
}

#[test]
fn sighup_reloads_the_catalog_file_and_keeps_the_running_one_when_invalid() {
    let dir = TempDir::new("sighup");
    let demo = fs::read_to_string(DEMO_CATALOG).expect("read the demo catalog");
    assert!(
        demo.contains(DEMO_VERSION_LINE),
        "the demo catalog no longer has {DEMO_VERSION_LINE}"
    );
    let catalog = dir.join("catalog.toml");
    fs::write(&catalog, &demo).expect("write the catalog copy");
    let catalog_arg = catalog.to_str().expect("temp path is UTF-8");
    let server = Server::start(&dir, &["--catalog", catalog_arg]);
    assert_eq!(server.catalog_version(), "demo-2026-11");

    // A valid new version: SIGHUP makes the server re-read the file.
    let hup2 = demo.replacen(DEMO_VERSION_LINE, r#"version = "hup-2""#, 1);
    fs::write(&catalog, &hup2).expect("rewrite the catalog");
    server.signal("-HUP");
    poll(READY_TIMEOUT, "stats shows catalog hup-2", || {
        let version = server.catalog_version();
        if version == "hup-2" {
            Ok(())
        } else {
            Err(version)
        }
    });
    server.wait_for_log("SIGHUP: catalog reloaded");

    // An invalid file: SIGHUP is refused, the running catalog stays.
    fs::write(
        &catalog,
        "[catalog]\nname = \"broken\"\nversion = \"bad-3\"\nnot_a_key = 1\n",
    )
    .expect("write an invalid catalog");
    server.signal("-HUP");
    server.wait_for_log("SIGHUP: catalog not reloaded");
    for _ in 0..3 {
        assert_eq!(server.catalog_version(), "hup-2", "log:\n{}", server.log());
        thread::sleep(POLL_INTERVAL);
    }
    let text = server.ok(&[
        "decide",
        "--customer",
        "c-hup",
        "--placement",
        "onboarding_sidebar",
    ]);
    assert!(
        text.lines()
            .any(|line| line.starts_with("decision ") && line.contains("catalog hup-2")),
        "{text}"
    );
    assert!(!text.contains("No action served."), "{text}");

    // `nudge reload` (no FILE) asks for the same re-read: refused, with the
    // problem and its line.
    let output = server.client(&["reload"]);
    assert!(!output.status.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("INVALID_ARGUMENT"),
        "{}",
        output.describe()
    );
    assert!(output.stderr.contains("line "), "{}", output.describe());
    assert_eq!(server.catalog_version(), "hup-2");

    // Fixed again: `nudge reload` picks it up and says what it replaced.
    let hup4 = demo.replacen(DEMO_VERSION_LINE, r#"version = "hup-4""#, 1);
    fs::write(&catalog, &hup4).expect("rewrite the catalog");
    let text = server.ok(&["reload"]);
    assert!(text.contains("version hup-4 (was hup-2)"), "{text}");
    assert_eq!(server.catalog_version(), "hup-4");

    // `nudge reload FILE` sends the file's text instead.
    let other = dir.join("other.toml");
    let hup5 = demo.replacen(DEMO_VERSION_LINE, r#"version = "hup-5""#, 1);
    fs::write(&other, &hup5).expect("write the other catalog");
    let reload = server.json(&["reload", other.to_str().expect("temp path is UTF-8")]);
    assert_eq!(reload["summary"]["version"], "hup-5", "{reload}");
    assert_eq!(reload["previous_version"], "hup-4", "{reload}");
    assert_eq!(server.catalog_version(), "hup-5");
}

/// Starts a server, makes it hold a live customer, stops it with `signal`,
/// and starts it again on the same data directory: every acknowledged
/// change is there, and the start needs no repair.
fn stops_cleanly_on(signal: &str) {
    let dir = TempDir::new(signal.trim_start_matches('-'));
    let server = Server::start(&dir, &[]);
    let decision = server.json(&[
        "decide",
        "--customer",
        "c-stop",
        "--placement",
        "onboarding_sidebar",
    ]);
    server.ok(&[
        "track",
        "--customer",
        "c-stop",
        "--event",
        "login",
        "--id",
        "stop-e1",
    ]);
    server.ok(&[
        "consent",
        "--customer",
        "c-stop",
        "--channel",
        "sms",
        "--state",
        "opted-in",
    ]);
    let log = server.stop_with(signal);
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("store flushed"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    let server = Server::start(&dir, &[]);
    let profile = server.json(&["profile", "c-stop"]);
    let text = profile.to_string();
    let decision_id = decision["decision_id"].as_str().expect("a decision id");
    assert!(text.contains(decision_id), "the decision survived: {text}");
    assert!(text.contains("\"sms\""), "the consent survived: {text}");
    let again = server.json(&[
        "track",
        "--customer",
        "c-stop",
        "--event",
        "login",
        "--id",
        "stop-e1",
    ]);
    assert_eq!(again["duplicate"], true, "the event survived: {again}");
    let log = server.stop_with(signal);
    assert!(!log.to_lowercase().contains("repair"), "{log}");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    stops_cleanly_on("-TERM");
}

#[test]
fn sigint_drains_and_exits_zero() {
    stops_cleanly_on("-INT");
}

#[test]
fn unreachable_server_exits_non_zero_naming_the_address() {
    // Port 1 is privileged: no test server can be listening there.
    let url = "http://127.0.0.1:1";
    let output = run(&["stats", "--server", url]);
    assert!(!output.status.success(), "{}", output.describe());
    assert!(
        output
            .stderr
            .contains(&format!("could not reach the nudge server at {url}")),
        "{}",
        output.describe()
    );
}

#[test]
fn only_the_client_subcommands_list_the_client_options() {
    const CLIENT_FLAGS: [&str; 5] = [
        "--server",
        "--token",
        "--ca-cert",
        "--client-cert",
        "--json",
    ];
    let help = |command: &str| {
        let output = run(&[command, "--help"]);
        assert!(output.status.success(), "{}", output.describe());
        output.stdout
    };
    let serve = help("serve");
    assert!(serve.contains("--listen"), "{serve}");
    let listed: Vec<&str> = CLIENT_FLAGS
        .into_iter()
        .filter(|flag| serve.contains(flag))
        .collect();
    assert!(listed.is_empty(), "serve lists {listed:?}:\n{serve}");
    let decide = help("decide");
    let missing: Vec<&str> = CLIENT_FLAGS
        .into_iter()
        .filter(|flag| !decide.contains(flag))
        .collect();
    assert!(missing.is_empty(), "decide misses {missing:?}:\n{decide}");
}

/// The demo catalog with the first action's channel replaced by an undeclared
/// one; returns the text, the 1-based line of the change, the line of that
/// action's `[[actions]]` header and the action's index.
fn demo_with_undeclared_channel() -> (String, usize, usize, usize) {
    let demo = fs::read_to_string(DEMO_CATALOG).expect("read the demo catalog");
    let mut lines: Vec<String> = demo.lines().map(str::to_owned).collect();
    let mut header = None;
    let mut actions = 0;
    for (index, line) in lines.iter_mut().enumerate() {
        if line.trim() == "[[actions]]" {
            header = Some(index + 1);
            actions += 1;
        } else if line.trim_start().starts_with('[') {
            header = None;
        } else if let Some(header) = header
            && line.trim_start().starts_with("channel = ")
        {
            *line = r#"channel = "carrier_pigeon""#.to_owned();
            return (lines.join("\n") + "\n", index + 1, header, actions - 1);
        }
    }
    panic!("the demo catalog has no [[actions]] table with a channel");
}

#[test]
fn catalog_validate_accepts_the_demo_catalog() {
    let output = run(&["catalog", "validate", DEMO_CATALOG]);
    assert!(output.status.success(), "{}", output.describe());
    assert!(output.stdout.contains("is valid"), "{}", output.describe());
    assert!(
        output.stdout.contains("version demo-2026-11"),
        "{}",
        output.describe()
    );
}

#[test]
fn catalog_validate_reports_an_undeclared_channel_with_line_and_field() {
    let dir = TempDir::new("validate");
    let (text, changed, header, index) = demo_with_undeclared_channel();
    let file = dir.join("bad.toml");
    fs::write(&file, text).expect("write the invalid catalog");
    let output = run(&[
        "catalog",
        "validate",
        file.to_str().expect("temp path is UTF-8"),
    ]);
    assert!(!output.status.success(), "{}", output.describe());
    let problem = output
        .stderr
        .lines()
        .find(|line| line.contains("carrier_pigeon"))
        .unwrap_or_else(|| panic!("no problem naming the channel:\n{}", output.describe()));
    // `FILE: line N: actions[I].channel: channel 'carrier_pigeon' is not declared in [channels]`
    let field = format!("actions[{index}].channel");
    let (_, after) = problem
        .split_once("line ")
        .unwrap_or_else(|| panic!("no `line N:` in {problem:?}"));
    let (number, rest) = after
        .split_once(": ")
        .unwrap_or_else(|| panic!("no `line N:` in {problem:?}"));
    let line: usize = number
        .parse()
        .unwrap_or_else(|_| panic!("no line number in {problem:?}"));
    assert!(
        (header..=changed).contains(&line),
        "line {line} is outside the action's table (lines {header}..={changed}): {problem:?}"
    );
    assert!(
        rest.starts_with(&field),
        "no field path {field} in {problem:?}"
    );
    assert!(problem.contains("not declared"), "{problem:?}");
    // Every problem is on its own `FILE: line N: …` line, then the count.
    let file_prefix = format!("{}: line ", file.display());
    let problems = output
        .stderr
        .lines()
        .filter(|line| line.starts_with(&file_prefix))
        .count();
    assert!(
        output
            .stderr
            .contains(&format!("has {problems} problem(s)")),
        "{}",
        output.describe()
    );
}

#[test]
fn serve_refuses_to_start_on_an_invalid_catalog() {
    let dir = TempDir::new("badserve");
    let (text, _, _, _) = demo_with_undeclared_channel();
    let file = dir.join("bad.toml");
    fs::write(&file, text).expect("write the invalid catalog");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let output = run(&[
        "serve",
        "--listen",
        &listen,
        "--catalog",
        file.to_str().expect("temp path is UTF-8"),
    ]);
    assert!(!output.status.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("is invalid"),
        "{}",
        output.describe()
    );
    assert!(
        output.stderr.contains("carrier_pigeon"),
        "{}",
        output.describe()
    );
}

#[test]
fn serve_refuses_a_damaged_data_file_with_one_clear_line() {
    let dir = TempDir::new("damaged");
    let data = dir.join("data");
    fs::create_dir_all(&data).expect("create the data directory");
    fs::write(data.join("nudge.redb"), vec![0x42_u8; 32 * 1024]).expect("write garbage");
    let output = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("temp path is UTF-8"),
    ]);
    assert!(!output.status.success(), "{}", output.describe());
    assert!(
        output.stderr.contains("error: cannot open the store in")
            && output.stderr.contains("storage corrupted")
            && output.stderr.contains("nudge.redb"),
        "{}",
        output.describe()
    );
    assert!(!output.stderr.contains("panicked"), "{}", output.describe());
    // The file is left as it was, for the operator to inspect or restore.
    assert_eq!(
        fs::read(data.join("nudge.redb"))
            .expect("still there")
            .len(),
        32 * 1024
    );
}

#[test]
fn export_reads_the_data_directory_of_a_stopped_server() {
    let dir = TempDir::new("offline-export");
    let data = dir.join("offline-data");
    let data = data.to_str().expect("temp path is UTF-8").to_owned();
    let server = Server::start(&dir, &["--data-dir", &data]);
    let decision = server.json(&[
        "decide",
        "--customer",
        "c-offline",
        "--placement",
        "home_banner",
    ]);
    let decision_id = decision["decision_id"].as_str().expect("a decision id");
    let out = dir.join("log.jsonl");
    let out = out.to_str().expect("temp path is UTF-8");
    // While the server runs, its data directory is locked: the export says so.
    let busy = run(&["export", "--data-dir", &data, "--out", out]);
    assert!(
        !busy.status.success() && busy.stderr.contains("in use by another nudge process"),
        "{}",
        busy.describe()
    );
    server.stop_with("-TERM");

    let output = run(&["export", "--data-dir", &data, "--out", out]);
    assert!(output.status.success(), "{}", output.describe());
    let text = fs::read_to_string(out).expect("the export file");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(decision_id), "{text}");
    assert!(text.contains("c-offline"), "{text}");

    let nowhere = dir.join("not-a-data-dir");
    fs::create_dir_all(&nowhere).expect("create a directory");
    let output = run(&[
        "export",
        "--data-dir",
        nowhere.to_str().expect("temp path is UTF-8"),
        "--out",
        out,
    ]);
    assert!(
        !output.status.success() && output.stderr.contains("not a nudge data directory"),
        "{}",
        output.describe()
    );
}
