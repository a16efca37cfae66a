//! Headless Chromium driven over the Chrome DevTools Protocol (CDP), for
//! end-to-end browser tests.
//!
//! # Why a pipe and not a websocket
//!
//! Chromium speaks CDP either over a websocket (`--remote-debugging-port`) or
//! over a pair of pipes (`--remote-debugging-pipe`): it reads commands from
//! file descriptor 3 and writes replies and events to file descriptor 4, each
//! message a JSON text followed by a NUL byte. The pipe needs no websocket or
//! HTTP client (so no extra dependencies beyond `serde_json` and `base64`), no
//! port to pick or race for, and it cannot be reached by anything else on the
//! machine. When the test process dies the pipe closes and Chromium exits.
//!
//! Descriptors 3 and 4 are set up without `unsafe`: the child is `/bin/sh`, whose
//! stdin and stdout are our pipes, and it runs
//! `exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2`, so Chromium inherits our
//! write end as fd 3 and our read end as fd 4. Its stdout and stderr go to
//! the file named by `NUDGE_CHROMIUM_LOG` (appended) or to `/dev/null`.
//!
//! # How it is used
//!
//! The driver is synchronous: a reader thread routes Chromium's replies to
//! the callers waiting for them, and every method blocks the calling thread
//! until Chromium answers or a timeout (15 s by default) passes. [`Browser`]
//! and [`Page`] are `Send + Sync + 'static`. From an async (tokio) test run
//! the browser work inside `tokio::task::spawn_blocking`: if a page waited on
//! the runtime's own thread, a server under test on that runtime could not
//! answer it.
//!
//! ```ignore
//! let Some(_) = Browser::find() else {
//!     eprintln!("skipping: no chromium (set NUDGE_CHROMIUM)");
//!     return;
//! };
//! let url = format!("http://{addr}/");
//! tokio::task::spawn_blocking(move || -> Result<(), BrowserError> {
//!     let browser = Browser::launch()?;
//!     let page = browser.new_page()?;
//!     page.goto(&url)?;
//!     page.click("button#save")?;
//!     let saved = page.wait_for("document.querySelector('#status')?.textContent === 'saved'",
//!                               Duration::from_secs(5));
//!     if saved.is_err() {
//!         page.screenshot("target/e2e/save.png")?;
//!         for line in page.console_messages() { eprintln!("{line}"); }
//!     }
//!     saved.map(drop)
//! })
//! .await
//! .expect("browser task panicked")
//! .expect("browser scenario");
//! ```
//!
//! Chromium is `NUDGE_CHROMIUM` if set, else the first of `chromium`,
//! `chromium-browser`, `google-chrome` and `google-chrome-stable` on `PATH`.
//! Each [`Browser`] gets a fresh profile directory; dropping it closes
//! Chromium (`Browser.close`, then a kill after a short grace period), reaps
//! the process and removes the profile. (Headless Chromium also starts
//! `chrome_crashpad_handler` daemons; they are not our children, and exit
//! on their own when Chromium does.)

use base64::Engine as _;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a [`Page`] waits for anything unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How often [`Page::wait_for`] evaluates its predicate.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long `Drop` lets Chromium exit after `Browser.close` before killing it.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Events kept per session (oldest dropped first).
const EVENTS_KEPT: usize = 2_000;
/// Console lines kept per page (oldest dropped first).
const CONSOLE_KEPT: usize = 10_000;
/// Largest screenshot side in CSS pixels.
const MAX_SCREENSHOT_SIDE: f64 = 16_384.0;

/// Turns our stdin into Chromium's fd 3 and our stdout into its fd 4.
const LAUNCH_SCRIPT: &str = r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#;

/// Chromium binaries looked for on `PATH`, in order.
const CANDIDATES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Command-line flags, besides the profile directory, the pipe and the URL.
/// The first group is the one asked for; the second keeps Chromium from
/// talking to the network on its own and from throttling background pages.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,900",
    // No traffic of Chromium's own, and no throttling of background pages.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-hang-monitor",
    "--force-color-profile=srgb",
];

/// What went wrong while driving Chromium.
#[derive(Debug)]
#[non_exhaustive]
pub enum BrowserError {
    /// No Chromium binary was found (see [`Browser::find`]).
    NotFound,
    /// An operating-system call failed.
    Io {
        /// What was being done, e.g. "write /tmp/x.png".
        action: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The DevTools pipe is closed: Chromium exited or crashed, or the
    /// [`Browser`] was dropped.
    Closed {
        /// Why, as far as is known.
        detail: String,
    },
    /// Something did not happen in time.
    Timeout {
        /// What was awaited.
        awaited: String,
        /// How long it was awaited.
        after: Duration,
    },
    /// Chromium answered a command with an error.
    Protocol {
        /// The CDP method, e.g. `Page.navigate`.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// Chromium's message.
        message: String,
    },
    /// `Page.navigate` reported an error (e.g. `net::ERR_CONNECTION_REFUSED`).
    Navigation {
        /// The URL navigated to.
        url: String,
        /// Chromium's `errorText`.
        error: String,
    },
    /// Evaluated JavaScript threw (or its promise rejected).
    JavaScript {
        /// The exception's description (for errors: the stack).
        description: String,
    },
    /// No element matches a CSS selector.
    NoElement {
        /// The selector.
        selector: String,
    },
    /// An element matched but cannot be used as asked.
    Element {
        /// The selector.
        selector: String,
        /// What is wrong, e.g. "has no size (is it hidden?)".
        problem: String,
    },
    /// Chromium's reply did not have the expected shape.
    UnexpectedReply {
        /// The CDP method.
        method: String,
        /// The reply (abbreviated).
        reply: String,
    },
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(
                f,
                "no chromium found: set NUDGE_CHROMIUM or put one of {} on PATH",
                CANDIDATES.join(", ")
            ),
            Self::Io { action, source } => write!(f, "failed to {action}: {source}"),
            Self::Closed { detail } => {
                write!(f, "the devtools pipe to chromium is closed: {detail}")
            }
            Self::Timeout { awaited, after } => {
                write!(f, "timed out after {after:?} waiting for {awaited}")
            }
            Self::Protocol {
                method,
                code,
                message,
            } => write!(f, "chromium rejected {method}: {message} (code {code})"),
            Self::Navigation { url, error } => write!(f, "navigation to {url} failed: {error}"),
            Self::JavaScript { description } => write!(f, "javascript threw: {description}"),
            Self::NoElement { selector } => write!(f, "no element matches selector `{selector}`"),
            Self::Element { selector, problem } => write!(f, "element `{selector}` {problem}"),
            Self::UnexpectedReply { method, reply } => {
                write!(f, "unexpected reply from chromium to {method}: {reply}")
            }
        }
    }
}

impl std::error::Error for BrowserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for results of this module.
pub type Result<T, E = BrowserError> = std::result::Result<T, E>;

/// A point in a page's event stream, from [`Page::event_cursor`]: events
/// received after it can be awaited with [`Page::wait_for_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor(u64);

/// A launched browser for a test, or `None` (after a line on stderr) when no
/// Chromium is installed, unless `NUDGE_BROWSER_TESTS=required` (which
/// `.ci/run` sets after installing it): then a missing Chromium fails the
/// test instead of skipping it.
pub fn for_test() -> Option<Browser> {
    let required = std::env::var("NUDGE_BROWSER_TESTS").is_ok_and(|value| value == "required");
    if Browser::find().is_none() {
        assert!(
            !required,
            "NUDGE_BROWSER_TESTS=required but no chromium is installed (apt-get install chromium, \
             or set NUDGE_CHROMIUM)"
        );
        eprintln!("skipping: no chromium found (install chromium, or set NUDGE_CHROMIUM)");
        return None;
    }
    Some(Browser::launch().unwrap_or_else(|error| panic!("launch chromium: {error}")))
}

mod connection;
mod page;
#[cfg(test)]
mod tests;

use connection::*;
pub use page::Page;

/// A running headless Chromium. Dropping it closes Chromium, reaps the
/// process and removes its profile directory.
pub struct Browser {
    child: Child,
    binary: PathBuf,
    profile: PathBuf,
    conn: Arc<Connection>,
    reader: Option<JoinHandle<()>>,
    version: String,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("binary", &self.binary)
            .field("pid", &self.child.id())
            .field("version", &self.version)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// The Chromium binary [`Browser::launch`] would start: `NUDGE_CHROMIUM`
    /// if set (a bare name is looked up on `PATH`; the value is returned even
    /// if it does not exist, so that a wrong setting fails loudly instead of
    /// skipping tests), else the first of `chromium`, `chromium-browser`,
    /// `google-chrome` and `google-chrome-stable` on `PATH`.
    pub fn find() -> Option<PathBuf> {
        if let Some(set) = std::env::var_os("NUDGE_CHROMIUM").filter(|set| !set.is_empty()) {
            let set = PathBuf::from(set);
            let bare = set.components().count() == 1 && !set.is_absolute();
            return Some(if bare {
                which(&set).unwrap_or(set)
            } else {
                set
            });
        }
        CANDIDATES.iter().find_map(|name| which(Path::new(name)))
    }

    /// Starts the Chromium of [`Browser::find`].
    pub fn launch() -> Result<Self> {
        let binary = Self::find().ok_or(BrowserError::NotFound)?;
        Self::launch_at(&binary)
    }

    /// Starts the Chromium at `binary`, with a fresh profile, and waits (up
    /// to [`DEFAULT_TIMEOUT`]) until it answers on the pipe.
    pub fn launch_at(binary: &Path) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let profile = std::env::temp_dir().join(format!(
            "nudge-chromium-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        remove_dir_patiently(&profile);
        std::fs::create_dir_all(&profile).map_err(|source| BrowserError::Io {
            action: format!("create the profile directory {}", profile.display()),
            source,
        })?;
        let output = match std::env::var_os("NUDGE_CHROMIUM_LOG").filter(|log| !log.is_empty()) {
            Some(log) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
            {
                Ok(file) => Stdio::from(file),
                Err(source) => {
                    remove_dir_patiently(&profile);
                    return Err(BrowserError::Io {
                        action: format!("open NUDGE_CHROMIUM_LOG {}", Path::new(&log).display()),
                        source,
                    });
                }
            },
            None => Stdio::null(),
        };
        let mut user_data_dir = OsString::from("--user-data-dir=");
        user_data_dir.push(&profile);
        let spawned = Command::new("/bin/sh")
            .arg("-c")
            .arg(LAUNCH_SCRIPT)
            .arg(binary)
            .args(FLAGS)
            .arg(user_data_dir)
            .arg("--remote-debugging-pipe")
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(output)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                remove_dir_patiently(&profile);
                return Err(BrowserError::Io {
                    action: format!("start {} through /bin/sh", binary.display()),
                    source,
                });
            }
        };
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        let shared = Arc::new(Shared::default());
        lock(&shared.state)
            .sessions
            .insert(String::new(), SessionLog::default());
        let conn = Arc::new(Connection {
            shared: Arc::clone(&shared),
            writer: Mutex::new(Some(stdin)),
            next_id: AtomicU64::new(1),
        });
        let reader = thread::Builder::new()
            .name("chromium-cdp-reader".into())
            .spawn(move || read_loop(stdout, &shared));
        // From here on, Drop cleans up whatever goes wrong.
        let mut browser = Self {
            child,
            binary: binary.to_owned(),
            profile,
            conn,
            reader: None,
            version: String::new(),
        };
        browser.reader = Some(reader.map_err(|source| BrowserError::Io {
            action: "spawn the devtools reader thread".into(),
            source,
        })?);
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        match browser
            .conn
            .call(None, "Browser.getVersion", json!({}), deadline)
        {
            Ok(version) => {
                browser.version = version
                    .get("product")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned();
                Ok(browser)
            }
            Err(BrowserError::Closed { .. }) => {
                let status = browser.wait_exit(Duration::from_secs(2));
                Err(BrowserError::Closed {
                    detail: format!(
                        "{} exited during startup ({}); set NUDGE_CHROMIUM_LOG=<file> to keep its output",
                        browser.binary.display(),
                        status.unwrap_or_else(|| "still running".into())
                    ),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Polls the child for up to `grace`; its exit status as text if it ended.
    fn wait_exit(&mut self, grace: Duration) -> Option<String> {
        let until = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.to_string()),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Chromium's product string, e.g. `Chrome/148.0.7778.167`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The process id of Chromium.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The profile directory (removed on drop).
    pub fn profile_dir(&self) -> &Path {
        &self.profile
    }

    /// Opens a new page (a fresh target at `about:blank`) with `Page`,
    /// `Runtime` and `Log` enabled. Dropping the page closes its target.
    pub fn new_page(&self) -> Result<Page> {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        let created = self.conn.call(
            None,
            "Target.createTarget",
            json!({ "url": "about:blank" }),
            deadline,
        )?;
        let target_id = created
            .get("targetId")
            .and_then(Value::as_str)
            .ok_or_else(|| BrowserError::UnexpectedReply {
                method: "Target.createTarget".into(),
                reply: abbreviate(&created.to_string(), 300),
            })?
            .to_owned();
        let attached = self.conn.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
            deadline,
        );
        let session_id = match attached
            .as_ref()
            .map(|reply| reply.get("sessionId").and_then(Value::as_str))
        {
            Ok(Some(session)) => session.to_owned(),
            _ => {
                let _ =
                    self.conn
                        .send(None, "Target.closeTarget", json!({ "targetId": target_id }));
                return Err(match attached {
                    Err(error) => error,
                    Ok(reply) => BrowserError::UnexpectedReply {
                        method: "Target.attachToTarget".into(),
                        reply: abbreviate(&reply.to_string(), 300),
                    },
                });
            }
        };
        lock(&self.conn.shared.state)
            .sessions
            .insert(session_id.clone(), SessionLog::default());
        let page = Page {
            conn: Arc::clone(&self.conn),
            target_id,
            session_id,
            timeout: DEFAULT_TIMEOUT,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(domain, json!({}), deadline)?;
        }
        Ok(page)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.conn.shared.close("the browser was dropped".into());
        let running = matches!(self.child.try_wait(), Ok(None));
        if running && self.conn.send(None, "Browser.close", json!({})).is_ok() {
            self.wait_exit(CLOSE_GRACE);
        }
        self.conn.close_writer();
        // Kill is harmless if Chromium already exited; wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            // The reader ends at end of file; should some helper process hold
            // the pipe open, leave the thread behind rather than hang.
            let until = Instant::now() + Duration::from_secs(1);
            while !reader.is_finished() && Instant::now() < until {
                thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        remove_dir_patiently(&self.profile);
    }
}
