//! Security through the real binary: `nudge serve` with a token
//! (`NUDGE_AUTH_TOKEN`, `auth.token_file`), TLS and mTLS from a config file,
//! the client's `--token` / `NUDGE_TOKEN`, `--ca-cert`, `--client-cert` and
//! `--client-key`, and start-up errors that name the bad setting.

mod common;

use common::{Access, Ca, Server, TempDir, run, run_with_env};
use rcgen::ExtendedKeyUsagePurpose;
use std::fs;

const TOKEN: &str = "binary-t0ken";

fn write_config(dir: &TempDir, text: &str) -> String {
    let path = dir.join("nudge.toml");
    fs::write(&path, text).expect("write the config file");
    path.display().to_string()
}

fn assert_refused(output: &common::Output, code: &str, what: &str) {
    assert!(
        !output.status.success() && output.stderr.contains(code),
        "{what}: expected {code}\n{}",
        output.describe()
    );
}

#[test]
fn the_client_sends_its_token_and_the_server_never_logs_it() {
    let dir = TempDir::new("token");
    let server = Server::start_with_access(
        &dir,
        &[],
        Access {
            client_args: vec!["--token".into(), TOKEN.into()],
            server_env: vec![("NUDGE_AUTH_TOKEN".into(), TOKEN.into())],
            ..Access::default()
        },
    );
    let url = server.url().to_owned();
    let consent = [
        "consent",
        "--customer",
        "c-bin",
        "--channel",
        "email",
        "--state",
        "opted-out",
        "--server",
        &url,
    ];

    let missing = run(&["stats", "--server", &url]);
    assert_refused(&missing, "UNAUTHENTICATED", "stats without a token");
    assert!(
        missing.stderr.contains("missing bearer token"),
        "{}",
        missing.describe()
    );
    assert_refused(
        &run(&["stats", "--server", &url, "--token", "wrong"]),
        "PERMISSION_DENIED",
        "stats with a wrong token",
    );
    assert_refused(&run(&consent), "UNAUTHENTICATED", "consent without a token");
    let profile = run(&["profile", "c-bin", "--server", &url]);
    assert!(
        !profile.status.success() && profile.stderr.contains("NOT_FOUND"),
        "the refused consent changed nothing, and profile reads are open:\n{}",
        profile.describe()
    );

    let with_flag = [&consent[..], &["--token", TOKEN]].concat();
    let output = run(&with_flag);
    assert!(output.status.success(), "{}", output.describe());
    let output = run_with_env(&consent, &[("NUDGE_TOKEN", TOKEN)]);
    assert!(
        output.status.success(),
        "NUDGE_TOKEN:\n{}",
        output.describe()
    );
    let profile = run(&["profile", "c-bin", "--server", &url, "--json"]);
    assert!(profile.status.success(), "{}", profile.describe());
    assert!(profile.stdout.contains("opted_out"), "{}", profile.stdout);
    let decide = run(&[
        "decide",
        "--customer",
        "c-bin",
        "--placement",
        "home_banner",
        "--server",
        &url,
    ]);
    assert!(
        decide.status.success(),
        "decide is open:\n{}",
        decide.describe()
    );

    assert!(
        !server.log().contains(TOKEN),
        "the token is logged:\n{}",
        server.log()
    );
}

#[test]
fn tls_and_mtls_from_the_config_file_with_the_clients_certificate_flags() {
    let dir = TempDir::new("tls");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let [server_ca_pem, server_cert, server_key] = server_ca.write(
        &dir,
        "server-ca",
        "server",
        &[ExtendedKeyUsagePurpose::ServerAuth],
    );
    let [client_ca_pem, client_cert, client_key] = client_ca.write(
        &dir,
        "client-ca",
        "client",
        &[ExtendedKeyUsagePurpose::ClientAuth],
    );
    let [_, stranger_cert, stranger_key] = Ca::new("stranger CA").write(
        &dir,
        "stranger-ca",
        "stranger",
        &[ExtendedKeyUsagePurpose::ClientAuth],
    );
    let token_file = dir.join("token");
    fs::write(&token_file, format!("{TOKEN}\n")).expect("write the token file");
    let config = write_config(
        &dir,
        &format!(
            "[auth]\ntoken_file = {:?}\n[tls]\ncert = {server_cert:?}\nkey = {server_key:?}\nclient_ca = {client_ca_pem:?}\n",
            token_file.display().to_string()
        ),
    );
    let certificate = |cert: &str, key: &str| -> Vec<String> {
        vec![
            "--ca-cert".into(),
            server_ca_pem.clone(),
            "--client-cert".into(),
            cert.into(),
            "--client-key".into(),
            key.into(),
        ]
    };
    // Ready once `stats` (an Admin call) answers with the client certificate
    // and no token: the certificate stands in for it.
    let server = Server::start_with_access(
        &dir,
        &["--config", &config],
        Access {
            https: true,
            client_args: certificate(&client_cert, &client_key),
            ..Access::default()
        },
    );
    server.ok(&[
        "suppress",
        "--customer",
        "c-tls",
        "--reason",
        "legal",
        "--note",
        "T-1",
    ]);
    let profile = server.json(&["profile", "c-tls"]);
    assert!(
        profile.to_string().contains("legal"),
        "the suppression is recorded: {profile}"
    );

    let url = server.url().to_owned();
    let without_certificate = run(&[
        "stats",
        "--server",
        &url,
        "--ca-cert",
        &server_ca_pem,
        "--token",
        TOKEN,
    ]);
    assert!(
        !without_certificate.status.success(),
        "mTLS requires a client certificate:\n{}",
        without_certificate.describe()
    );
    let mut stranger = vec!["stats".to_owned(), "--server".to_owned(), url.clone()];
    stranger.extend(certificate(&stranger_cert, &stranger_key));
    let stranger = run(&stranger.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !stranger.status.success(),
        "a certificate from another CA is refused:\n{}",
        stranger.describe()
    );
    let wrong_ca = run(&[
        "stats",
        "--server",
        &url,
        "--ca-cert",
        &client_ca_pem,
        "--client-cert",
        &client_cert,
        "--client-key",
        &client_key,
    ]);
    assert!(
        !wrong_ca.status.success() && wrong_ca.stderr.contains("could not reach"),
        "the server's certificate is checked against --ca-cert:\n{}",
        wrong_ca.describe()
    );
    let plain = run(&["stats", "--server", &url.replacen("https://", "http://", 1)]);
    assert!(!plain.status.success(), "{}", plain.describe());
    let no_ca = run(&["stats", "--server", &url]);
    assert!(
        !no_ca.status.success() && no_ca.stderr.contains("--ca-cert"),
        "{}",
        no_ca.describe()
    );
}

#[test]
fn serve_refuses_bad_security_settings_naming_them() {
    let dir = TempDir::new("bad-security");
    let missing = dir.join("missing-token").display().to_string();
    let garbage = dir.join("garbage.pem");
    fs::write(&garbage, "not a PEM file\n").expect("write a garbage file");
    let garbage = garbage.display().to_string();
    for (text, setting) in [
        ("[tls]\nkey = \"server.key\"\n".to_owned(), "tls.key"),
        (
            "[tls]\nclient_ca = \"ca.pem\"\n".to_owned(),
            "tls.client_ca",
        ),
        (
            format!("[auth]\ntoken_file = {missing:?}\n"),
            "auth.token_file",
        ),
        (
            format!("[tls]\ncert = {garbage:?}\nkey = {garbage:?}\n"),
            "tls.cert",
        ),
    ] {
        let config = write_config(&dir, &text);
        let output = run(&["serve", "--config", &config, "--listen", "127.0.0.1:0"]);
        assert!(
            !output.status.success() && output.stderr.contains(setting),
            "{text}: expected an error naming {setting}\n{}",
            output.describe()
        );
    }
}

#[test]
fn an_empty_auth_token_from_the_environment_is_refused() {
    let output = run_with_env(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("NUDGE_AUTH_TOKEN", "")],
    );
    assert!(
        !output.status.success() && output.stderr.contains("auth.token"),
        "{}",
        output.describe()
    );
}
