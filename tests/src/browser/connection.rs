//! The pipe to Chromium: one reader thread routing replies to waiting
//! callers and keeping events per session.

use super::{BrowserError, CONSOLE_KEPT, EVENTS_KEPT, Result};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Locks a mutex, ignoring poisoning (the state stays consistent: every
/// critical section below is panic-free).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `text`, cut to about `max` characters.
pub(super) fn abbreviate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// One event Chromium sent.
#[derive(Debug)]
pub(super) struct Event {
    pub(super) seq: u64,
    pub(super) method: String,
    pub(super) params: Value,
}

/// What is kept of one session (the browser itself is session "").
#[derive(Debug, Default)]
pub(super) struct SessionLog {
    pub(super) events: VecDeque<Event>,
    pub(super) console: VecDeque<String>,
}

/// State shared between callers and the reader thread.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Command ids someone waits for.
    pub(super) pending: HashSet<u64>,
    /// Replies to pending ids, not yet taken.
    pub(super) replies: HashMap<u64, Value>,
    /// Known sessions; events of others are dropped.
    pub(super) sessions: HashMap<String, SessionLog>,
    /// Sequence number of the next event.
    pub(super) next_seq: u64,
    /// Set once the pipe is unusable, with the reason.
    pub(super) closed: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
}

impl Shared {
    /// Waits until `check` returns `Some`, the pipe closes or `deadline`
    /// passes. `check` sees the state under the lock.
    pub(super) fn wait_until<T>(
        &self,
        deadline: Instant,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, WaitFailed> {
        let mut state = lock(&self.state);
        loop {
            if let Some(found) = check(&mut state) {
                return Ok(found);
            }
            if let Some(reason) = &state.closed {
                return Err(WaitFailed::Closed(reason.clone()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitFailed::TimedOut);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(super) fn close(&self, reason: String) {
        let mut state = lock(&self.state);
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Files one message from Chromium.
    pub(super) fn dispatch(&self, message: Value) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            if state.pending.contains(&id) {
                state.replies.insert(id, message);
            }
        } else if let Value::Object(mut fields) = message {
            let Some(Value::String(method)) = fields.remove("method") else {
                return;
            };
            let session = match fields.get("sessionId") {
                Some(Value::String(session)) => session.as_str(),
                _ => "",
            };
            let Some(log) = state.sessions.get_mut(session) else {
                return;
            };
            let params = fields.remove("params").unwrap_or(Value::Null);
            if let Some(line) = console_line(&method, &params) {
                if log.console.len() >= CONSOLE_KEPT {
                    log.console.pop_front();
                }
                log.console.push_back(line);
            }
            if log.events.len() >= EVENTS_KEPT {
                log.events.pop_front();
            }
            log.events.push_back(Event {
                seq: state.next_seq,
                method,
                params,
            });
            state.next_seq += 1;
        } else {
            return;
        }
        drop(guard);
        self.changed.notify_all();
    }
}

/// Why [`Shared::wait_until`] gave up.
#[derive(Debug)]
pub(super) enum WaitFailed {
    Closed(String),
    TimedOut,
}

impl WaitFailed {
    pub(super) fn into_error(
        self,
        awaited: impl FnOnce() -> String,
        after: Duration,
    ) -> BrowserError {
        match self {
            Self::Closed(detail) => BrowserError::Closed { detail },
            Self::TimedOut => BrowserError::Timeout {
                awaited: awaited(),
                after,
            },
        }
    }
}

/// The pipe to Chromium: our write end, and the state the reader fills.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) writer: Mutex<Option<ChildStdin>>,
    pub(super) next_id: AtomicU64,
}

impl Connection {
    /// Writes one command without waiting for its reply (which the reader
    /// then drops).
    pub(super) fn send(&self, session: Option<&str>, method: &str, params: Value) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write(id, session, method, params)
    }

    /// Writes one command with id `id`.
    pub(super) fn write(
        &self,
        id: u64,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<()> {
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        let mut bytes =
            serde_json::to_vec(&message).expect("a serde_json::Value always serializes");
        bytes.push(0);
        let mut writer = lock(&self.writer);
        let Some(pipe) = writer.as_mut() else {
            return Err(BrowserError::Closed {
                detail: "the browser was dropped".into(),
            });
        };
        pipe.write_all(&bytes)
            .and_then(|()| pipe.flush())
            .map_err(|error| BrowserError::Closed {
                detail: format!("writing {method} failed: {error}"),
            })
    }

    /// Sends a command and waits until `deadline` for its result.
    pub(super) fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Result<Value> {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Registered before sending, so the reader keeps the reply.
        {
            let mut state = lock(&self.shared.state);
            if let Some(detail) = &state.closed {
                return Err(BrowserError::Closed {
                    detail: detail.clone(),
                });
            }
            state.pending.insert(id);
        }
        if let Err(error) = self.write(id, session, method, params) {
            lock(&self.shared.state).pending.remove(&id);
            return Err(error);
        }
        let outcome = self
            .shared
            .wait_until(deadline, |state| state.replies.remove(&id));
        lock(&self.shared.state).pending.remove(&id);
        let mut reply = outcome.map_err(|failed| {
            failed.into_error(|| format!("chromium to answer {method}"), started.elapsed())
        })?;
        if let Some(error) = reply.get("error") {
            return Err(BrowserError::Protocol {
                method: method.to_owned(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_owned(),
            });
        }
        Ok(reply
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// Closes our write end (Chromium then sees end of file).
    pub(super) fn close_writer(&self) {
        lock(&self.writer).take();
    }
}

/// Reads NUL-terminated JSON messages until the pipe closes.
pub(super) fn read_loop(stdout: ChildStdout, shared: &Shared) {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut buffer = Vec::new();
    let reason = loop {
        buffer.clear();
        match reader.read_until(0, &mut buffer) {
            Ok(0) => break "chromium closed the pipe (it exited or crashed)".to_owned(),
            Ok(_) => {
                if buffer.last() == Some(&0) {
                    buffer.pop();
                }
                if let Ok(message) = serde_json::from_slice::<Value>(&buffer) {
                    shared.dispatch(message);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => break format!("reading from chromium failed: {error}"),
        }
    };
    shared.close(reason);
}

/// A remote object's value as text, the way `console.log` would show it.
pub(super) fn remote_text(object: &Value) -> String {
    match object.get("value") {
        Some(Value::String(text)) => text.clone(),
        Some(value) => value.to_string(),
        None => object
            .get("unserializableValue")
            .or_else(|| object.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                object
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            }),
    }
}

/// The text of an exception from `exceptionDetails`.
pub(super) fn exception_text(details: &Value) -> String {
    details
        .pointer("/exception/description")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| details.get("exception").map(remote_text))
        .or_else(|| {
            details
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| details.to_string())
}

/// The console line for an event, if it is a console message.
pub(super) fn console_line(method: &str, params: &Value) -> Option<String> {
    match method {
        "Runtime.consoleAPICalled" => {
            let kind = params.get("type").and_then(Value::as_str).unwrap_or("log");
            let args = params
                .get("args")
                .and_then(Value::as_array)
                .map(|args| args.iter().map(remote_text).collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            Some(format!("console.{kind}: {args}"))
        }
        "Runtime.exceptionThrown" => {
            let details = params.get("exceptionDetails")?;
            let place = match (
                details.get("url").and_then(Value::as_str),
                details.get("lineNumber").and_then(Value::as_u64),
            ) {
                (Some(url), Some(line)) if !url.is_empty() => {
                    format!(" ({}:{})", abbreviate(url, 200), line + 1)
                }
                _ => String::new(),
            };
            Some(format!(
                "uncaught exception: {}{place}",
                exception_text(details)
            ))
        }
        "Log.entryAdded" => {
            let entry = params.get("entry")?;
            let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
            let url = text("url");
            let url = if url.is_empty() {
                String::new()
            } else {
                format!(" {}", abbreviate(url, 200))
            };
            Some(format!(
                "log.{} ({}): {}{url}",
                text("level"),
                text("source"),
                text("text")
            ))
        }
        _ => None,
    }
}

/// Whether `path` is an executable file.
pub(super) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `name` looked up on `PATH`.
pub(super) fn which(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Removes a directory tree, retrying briefly while Chromium's helpers let go.
pub(super) fn remove_dir_patiently(dir: &Path) {
    for _ in 0..20 {
        match std::fs::remove_dir_all(dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                thread::sleep(Duration::from_millis(50));
            }
            _ => return,
        }
    }
}
