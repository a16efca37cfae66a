//! The harness shared by the tests of the real `nudge` binary (`binary.rs`,
//! `metrics.rs`): a predictable command environment, child processes killed and
//! reaped on drop, temp folders, polling, free ports, and [`Server`], a running
//! `nudge serve` with its client subcommands.
//!
//! Each test binary uses a part of it: unused items are expected.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value as Json;

/// The binary under test.
pub const NUDGE: &str = env!("CARGO_BIN_EXE_nudge");
/// The demo catalog, as a file on disk.
pub const DEMO_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo/catalog.toml");
/// The demo catalog's version line.
pub const DEMO_VERSION_LINE: &str = r#"version = "demo-2026-11""#;
/// How long a server may take to become reachable.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any one client command may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a signalled server may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Environment variables of the binary that would change what a test runs.
pub const NUDGE_ENV: [&str; 13] = [
    "NUDGE_CONFIG",
    "NUDGE_LISTEN",
    "NUDGE_METRICS_LISTEN",
    "NUDGE_CATALOG",
    "NUDGE_MODEL",
    "NUDGE_BUDGET_MS",
    "NUDGE_SERVER",
    "NUDGE_LOG",
    "NUDGE_AUTH_TOKEN",
    "NUDGE_TOKEN",
    "NUDGE_CA_CERT",
    "NUDGE_CLIENT_CERT",
    "NUDGE_CLIENT_KEY",
];

/// A `nudge` command with a predictable environment.
pub fn nudge_command(args: &[&str]) -> Command {
    let mut command = Command::new(NUDGE);
    command.args(args);
    for name in NUDGE_ENV {
        command.env_remove(name);
    }
    // Any other NUDGE_* of the developer's shell too: unknown ones are errors.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NUDGE_") {
            command.env_remove(name);
        }
    }
    command
        // No metrics listener unless a test asks for one with --metrics-listen:
        // servers running in parallel would all want the default port.
        .env("NUDGE_METRICS_LISTEN", "off")
        // A server that a test starts without a data directory of its own
        // must not leave one in the source tree.
        .env(
            "NUDGE_STORAGE_DATA_DIR",
            std::env::temp_dir().join(format!("nudge-binary-{}-default-data", std::process::id())),
        )
        .env("NUDGE_LOG", "info")
        .env("NO_COLOR", "1")
        // Error messages without an anyhow backtrace (panics still get one).
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null());
    command
}

/// Kills and reaps its child when dropped, whatever the test's outcome.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Either may fail if the child already exited: nothing left to do then.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait on a child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A fresh folder under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "nudge-binary-{}-{tag}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of an earlier run with the same pid: start clean.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the test's temp folder");
        Self(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Output {
    pub fn describe(&self) -> String {
        format!(
            "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Reads a child's pipe to the end on a thread.
pub fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_string(&mut text)
                .expect("read the child's output as UTF-8");
        }
        text
    })
}

/// Runs `nudge ARGS` to completion (killed after [`CLIENT_TIMEOUT`]).
pub fn run(args: &[&str]) -> Output {
    run_with_env(args, &[])
}

/// Runs `nudge ARGS` with extra environment variables to completion.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = nudge_command(args);
    command.envs(env.iter().copied());
    let mut child = ChildGuard(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the nudge binary"),
    );
    // Drain both pipes while waiting, so a large answer cannot block the child.
    let stdout = drain(child.0.stdout.take());
    let stderr = drain(child.0.stderr.take());
    let status = child.wait_timeout(CLIENT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "`nudge {}` did not finish in {CLIENT_TIMEOUT:?}",
            args.join(" ")
        )
    });
    Output {
        status,
        stdout: stdout.join().expect("stdout reader thread"),
        stderr: stderr.join().expect("stderr reader thread"),
    }
}

/// Calls `probe` every [`POLL_INTERVAL`] until it returns `Ok`, for at most
/// `timeout`; then panics with `what` and the last `Err`'s description.
pub fn poll<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: still not true after {timeout:?}; last attempt:\n{last}")
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// A port the OS just handed out on loopback (free unless someone takes it
/// between here and the server's bind; [`Server::start`] retries then).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener
        .local_addr()
        .expect("local address of the ephemeral listener")
        .port()
}

/// How a [`Server`] is reached when it has security settings: over `https`,
/// with arguments every client command gets (`--token`, `--ca-cert`, …),
/// and environment variables for `nudge serve` (`NUDGE_AUTH_TOKEN`).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Clients use `https://`.
    pub https: bool,
    /// Appended to every client command, the readiness probe included.
    pub client_args: Vec<String>,
    /// Set for `nudge serve`.
    pub server_env: Vec<(String, String)>,
}

/// A running `nudge serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: ChildGuard,
    url: String,
    log: PathBuf,
    metrics: Option<String>,
    access: Access,
}

impl Server {
    /// Starts `nudge serve` on a free loopback port with `extra` arguments,
    /// logging to a file in `dir`, and waits until `nudge stats` answers.
    /// It serves no metrics.
    pub fn start(dir: &TempDir, extra: &[&str]) -> Self {
        Self::launch(dir, extra, false, Access::default())
    }

    /// Like [`Server::start`], reached as `access` says.
    pub fn start_with_access(dir: &TempDir, extra: &[&str], access: Access) -> Self {
        Self::launch(dir, extra, false, access)
    }

    /// Like [`Server::start`], with the Prometheus exporter on another free
    /// loopback port (see [`Server::metrics_address`]).
    pub fn start_with_metrics(dir: &TempDir, extra: &[&str]) -> Self {
        Self::launch(dir, extra, true, Access::default())
    }

    fn launch(dir: &TempDir, extra: &[&str], with_metrics: bool, access: Access) -> Self {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let metrics = with_metrics.then(|| format!("127.0.0.1:{}", free_port()));
            let log = dir.join(&format!("server-{port}.log"));
            let log_file = fs::File::create(&log).expect("create the server log file");
            let mut args = vec!["serve", "--listen", &listen, "--budget-ms", "10000"];
            // Every server keeps its data in the test's folder, unless the
            // test names a data directory itself.
            let data_dir = dir.join("data");
            let data_dir = data_dir.to_str().expect("a UTF-8 temp path");
            if !extra.contains(&"--data-dir") {
                args.extend_from_slice(&["--data-dir", data_dir]);
            }
            if let Some(metrics) = &metrics {
                args.extend_from_slice(&["--metrics-listen", metrics]);
            }
            args.extend_from_slice(extra);
            let mut command = nudge_command(&args);
            command.envs(access.server_env.iter().map(|(k, v)| (k, v)));
            let child = ChildGuard(
                command
                    .stdout(Stdio::null())
                    .stderr(log_file)
                    .spawn()
                    .expect("spawn nudge serve"),
            );
            let scheme = if access.https { "https" } else { "http" };
            let mut server = Server {
                child,
                url: format!("{scheme}://{listen}"),
                log,
                metrics,
                access: access.clone(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                // Another process took a port first (gRPC's or the metrics
                // listener's): try other ones.
                Err(log) if log.contains("cannot listen on") && attempt < ATTEMPTS => {}
                Err(log) => panic!("nudge serve exited before it was ready:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Polls `nudge stats` until it succeeds; `Err(log)` if the server exited.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("try_wait on the server") {
                return Err(format!("status {status}\n{}", self.log()));
            }
            // Only once this server has bound the port: before that, another
            // test's server could answer on the same port.
            let bound = self.log().contains("nudge is serving");
            let stats = if bound {
                let stats = self.client(&["stats"]);
                if stats.status.success() {
                    return Ok(());
                }
                stats.describe()
            } else {
                "(the server has not bound its port yet)".to_owned()
            };
            assert!(
                Instant::now() < deadline,
                "nudge serve not reachable at {} after {READY_TIMEOUT:?}\nlast stats: {stats}\nserver log:\n{}",
                self.url,
                self.log()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The `host:port` of the metrics listener (only after
    /// [`Server::start_with_metrics`]).
    pub fn metrics_address(&self) -> &str {
        self.metrics
            .as_deref()
            .expect("the server was started with metrics")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    pub fn pid(&self) -> String {
        self.child.0.id().to_string()
    }

    /// The URL clients reach this server at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs a client subcommand against this server (with the [`Access`]
    /// client arguments).
    pub fn client(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &self.url]);
        all.extend(self.access.client_args.iter().map(String::as_str));
        run(&all)
    }

    /// Runs a client subcommand that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.client(args);
        assert!(
            output.status.success(),
            "`nudge {}` failed:\n{}\nserver log:\n{}",
            args.join(" "),
            output.describe(),
            self.log()
        );
        output.stdout
    }

    /// Runs a client subcommand with `--json` that must succeed; parses stdout.
    pub fn json(&self, args: &[&str]) -> Json {
        let mut all = args.to_vec();
        all.push("--json");
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "`nudge {}` printed invalid JSON ({e}):\n{stdout}",
                all.join(" ")
            )
        })
    }

    /// The running catalog's version, from `stats --json`.
    pub fn catalog_version(&self) -> String {
        self.json(&["stats"])["catalog_version"]
            .as_str()
            .expect("stats has a string catalog_version")
            .to_owned()
    }

    /// Sends `signal` (e.g. `-HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed: {status}");
    }

    /// Waits until the server has logged `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        poll(
            READY_TIMEOUT,
            &format!("server log shows {needle:?}"),
            || {
                let log = self.log();
                if log.contains(needle) {
                    Ok(())
                } else {
                    Err(log)
                }
            },
        );
    }

    /// Sends `signal` and waits for a clean exit; returns the whole log.
    pub fn stop_with(mut self, signal: &str) -> String {
        self.signal(signal);
        let status = self.child.wait_timeout(EXIT_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "nudge serve still running {EXIT_TIMEOUT:?} after kill {signal}\nlog:\n{}",
                self.log()
            )
        });
        let log = self.log();
        assert!(
            status.success(),
            "nudge serve exited with {status} after kill {signal}\nlog:\n{log}"
        );
        log
    }
}

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// `GET /metrics` with a minimal HTTP/1.1 client; returns the body.
pub fn scrape(address: &str) -> Scrape {
    let mut stream = TcpStream::connect(address)
        .unwrap_or_else(|error| panic!("connect to the metrics listener at {address}: {error}"));
    stream
        .set_read_timeout(Some(SCRAPE_TIMEOUT))
        .expect("set a read timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the whole response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in:\n{response}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    Scrape::parse(body)
}

/// One exposition: samples by name and label set.
#[derive(Debug)]
pub struct Scrape {
    pub text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses the text format (`name{key="value",…} value`; no escapes in our
    /// label values).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line
                    .rsplit_once(' ')
                    .unwrap_or_else(|| panic!("no value in {line:?}"));
                let value: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}"));
                let (name, labels) = match series.split_once('{') {
                    None => (series, BTreeMap::new()),
                    Some((name, labels)) => {
                        let labels = labels
                            .strip_suffix('}')
                            .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                        let labels = labels
                            .split("\",")
                            .filter(|pair| !pair.is_empty())
                            .map(|pair| {
                                let (key, value) = pair
                                    .split_once("=\"")
                                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                                (key.to_owned(), value.trim_end_matches('"').to_owned())
                            })
                            .collect();
                        (name, labels)
                    }
                };
                (name.to_owned(), labels, value)
            })
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of `name` with exactly `labels`, if exported.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(sample, sample_labels, _)| {
                sample == name
                    && sample_labels.len() == labels.len()
                    && labels.iter().all(|(key, value)| {
                        sample_labels.get(*key).map(String::as_str) == Some(value)
                    })
            })
            .map(|(_, _, value)| *value)
    }

    /// Like [`Scrape::get`], but the series must be exported.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{}", self.text))
    }

    /// Every series of `name`: its labels and value.
    pub fn series(&self, name: &str) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(sample, _, _)| sample == name)
            .map(|(_, labels, value)| (labels, *value))
            .collect()
    }
}

/// A certificate authority made for one test.
pub struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names is valid");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA as `NAME.pem` and a certificate it signs for 127.0.0.1
    /// and `usages` as `LEAF.pem` / `LEAF.key`; returns the three paths.
    pub fn write(
        &self,
        dir: &TempDir,
        name: &str,
        leaf: &str,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> [String; 3] {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, leaf);
        params.extended_key_usages = usages.to_vec();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed by the CA");
        let write = |file: String, content: &str| {
            let path = dir.join(&file);
            std::fs::write(&path, content).expect("write a PEM file");
            path.display().to_string()
        };
        [
            write(format!("{name}.pem"), &self.pem),
            write(format!("{leaf}.pem"), &cert.pem()),
            write(format!("{leaf}.key"), &key.serialize_pem()),
        ]
    }
}
