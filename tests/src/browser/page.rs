//! [`Page`]: one tab, driven by commands on its session.

use super::connection::*;
use super::*;

/// One page (a CDP target, attached with a flattened session). Methods wait
/// at most [`Page::timeout`] (default [`DEFAULT_TIMEOUT`]) unless they take
/// a timeout. Dropping the page closes the target.
pub struct Page {
    pub(super) conn: Arc<Connection>,
    pub(super) target_id: String,
    pub(super) session_id: String,
    pub(super) timeout: Duration,
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("target_id", &self.target_id)
            .field("session_id", &self.session_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Page {
    /// The timeout of methods that take none.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the timeout of methods that take none.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    pub(super) fn call(&self, method: &str, params: Value, deadline: Instant) -> Result<Value> {
        self.conn
            .call(Some(&self.session_id), method, params, deadline)
    }

    /// The point in this page's event stream reached so far.
    pub fn event_cursor(&self) -> EventCursor {
        EventCursor(lock(&self.conn.shared.state).next_seq)
    }

    /// Waits for the first event `method` (e.g. `Page.loadEventFired`) of
    /// this page received after `since`, and returns its `params`.
    pub fn wait_for_event(
        &self,
        since: EventCursor,
        method: &str,
        timeout: Duration,
    ) -> Result<Value> {
        self.wait_event(since.0, Instant::now() + timeout, |name, _| name == method)
            .map(|(_, params)| params)
            .map_err(|failed| failed.into_error(|| format!("the event {method}"), timeout))
    }

    /// The first event after sequence number `since` that `matches`.
    fn wait_event(
        &self,
        since: u64,
        deadline: Instant,
        matches: impl Fn(&str, &Value) -> bool,
    ) -> Result<(u64, Value), WaitFailed> {
        let session = self.session_id.as_str();
        self.conn.shared.wait_until(deadline, |state| {
            let log = state.sessions.get(session)?;
            log.events
                .iter()
                .find(|event| event.seq >= since && matches(&event.method, &event.params))
                .map(|event| (event.seq, event.params.clone()))
        })
    }

    /// Navigates to `url` and waits for the new document's load event.
    /// A navigation within the document (only the fragment changes) returns
    /// at once.
    pub fn goto(&self, url: &str) -> Result<()> {
        let deadline = self.deadline();
        let since = self.event_cursor().0;
        let navigated = self.call("Page.navigate", json!({ "url": url }), deadline)?;
        if let Some(error) = navigated
            .get("errorText")
            .and_then(Value::as_str)
            .filter(|error| !error.is_empty())
        {
            return Err(BrowserError::Navigation {
                url: url.to_owned(),
                error: error.to_owned(),
            });
        }
        let Some(loader) = navigated.get("loaderId").and_then(Value::as_str) else {
            return Ok(());
        };
        let awaited = || format!("the load event of {}", abbreviate(url, 200));
        // The commit of this very navigation, then the next load event: a
        // late load event of the previous document cannot be mistaken.
        let (committed, _) = self
            .wait_event(since, deadline, |method, params| {
                method == "Page.frameNavigated"
                    && params.pointer("/frame/loaderId").and_then(Value::as_str) == Some(loader)
                    && params.pointer("/frame/parentId").is_none()
            })
            .map_err(|failed| failed.into_error(awaited, self.timeout))?;
        self.wait_event(committed + 1, deadline, |method, _| {
            method == "Page.loadEventFired"
        })
        .map_err(|failed| failed.into_error(awaited, self.timeout))?;
        Ok(())
    }

    /// Evaluates `js` in the page and returns its value (as JSON, by value).
    /// A promise is awaited, and `await` may be used at the top level (REPL
    /// mode, as in the DevTools console), e.g.
    /// `(await fetch('/v1/x')).status`. `undefined` and `NaN` become `null`,
    /// `-0` becomes `-0.0`, `Infinity` and bigints become strings. An
    /// exception (or rejected promise) becomes [`BrowserError::JavaScript`].
    /// As in the console, top-level `let`/`const` declarations persist on the
    /// page and may be declared again, and an object literal needs
    /// parentheses: `({ a: 1 })`.
    pub fn evaluate(&self, js: &str) -> Result<Value> {
        self.evaluate_until(js, self.deadline())
    }

    fn evaluate_until(&self, js: &str, deadline: Instant) -> Result<Value> {
        let started = Instant::now();
        self.evaluate_remote(js, deadline)
            .map_err(|error| match error {
                BrowserError::Timeout { .. } => BrowserError::Timeout {
                    awaited: format!("`{}` to evaluate", abbreviate(js, 200)),
                    after: started.elapsed(),
                },
                other => other,
            })
    }

    /// `Runtime.evaluate` in REPL mode (so top-level `await` works). REPL
    /// mode does not await a promise that is the script's value, so the
    /// value comes back as a handle: a promise is awaited with
    /// `Runtime.awaitPromise`, another object fetched by value, and the
    /// handles released. Primitives need one round trip only.
    fn evaluate_remote(&self, js: &str, deadline: Instant) -> Result<Value> {
        static NEXT_GROUP: AtomicU64 = AtomicU64::new(0);
        // One group per evaluation, so that concurrent evaluations on the
        // same page do not release each other's handles.
        let group = format!(
            "nudge-evaluate-{}",
            NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
        );
        let reply = self.call(
            "Runtime.evaluate",
            json!({
                "expression": js,
                "objectGroup": group,
                "returnByValue": false,
                "awaitPromise": true,
                "userGesture": true,
                "replMode": true,
            }),
            deadline,
        )?;
        let mut outcome = Ok(reply);
        let handle = outcome
            .as_ref()
            .ok()
            .filter(|reply| reply.get("exceptionDetails").is_none())
            .and_then(|reply| {
                let result = reply.get("result")?;
                let id = result.get("objectId")?.as_str()?.to_owned();
                let promise = result.get("subtype").and_then(Value::as_str) == Some("promise");
                Some((id, promise))
            });
        if let Some((object_id, promise)) = handle {
            outcome = if promise {
                self.call(
                    "Runtime.awaitPromise",
                    json!({ "promiseObjectId": object_id, "returnByValue": true }),
                    deadline,
                )
            } else {
                self.call(
                    "Runtime.callFunctionOn",
                    json!({
                        "objectId": object_id,
                        "functionDeclaration": "function () { return this; }",
                        "returnByValue": true,
                    }),
                    deadline,
                )
            };
            // Fire and forget; a failure means the page is gone anyway.
            let _ = self.conn.send(
                Some(&self.session_id),
                "Runtime.releaseObjectGroup",
                json!({ "objectGroup": group }),
            );
        }
        let reply = outcome?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(BrowserError::JavaScript {
                description: exception_text(details),
            });
        }
        let result = reply.get("result").unwrap_or(&Value::Null);
        Ok(
            match (result.get("value"), result.get("unserializableValue")) {
                (Some(value), _) => value.clone(),
                (None, Some(Value::String(special))) => match special.as_str() {
                    "NaN" => Value::Null,
                    "-0" => json!(-0.0),
                    other => Value::from(other),
                },
                _ => Value::Null,
            },
        )
    }

    /// Evaluates `predicate` every 50 ms until its value is truthy (not
    /// `null`, `false`, `0` or `""`) and returns that value. While waiting,
    /// exceptions count as "not yet" (the element may not exist yet); the
    /// timeout error names the predicate and its last value or exception.
    pub fn wait_for(&self, predicate: &str, timeout: Duration) -> Result<Value> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut last = "never evaluated".to_owned();
        loop {
            match self.evaluate_until(predicate, deadline) {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => last = format!("last value: {}", abbreviate(&value.to_string(), 200)),
                Err(BrowserError::JavaScript { description }) => {
                    last = format!("last exception: {}", abbreviate(&description, 300));
                }
                // E.g. "Execution context was destroyed" during a navigation.
                Err(BrowserError::Protocol { message, .. }) => {
                    last = format!("last error: {message}");
                }
                Err(BrowserError::Timeout { .. }) => break,
                Err(other) => return Err(other),
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
        Err(BrowserError::Timeout {
            awaited: format!("`{}` to become truthy ({last})", abbreviate(predicate, 300)),
            after: started.elapsed(),
        })
    }

    /// Clicks the first element matching `selector` the way a user would:
    /// scrolls it to the centre of the view, then moves the mouse to the
    /// centre of its box and presses and releases the left button there.
    /// Whatever is topmost at that point receives the click.
    pub fn click(&self, selector: &str) -> Result<()> {
        let deadline = self.deadline();
        let js = format!(
            r#"(() => {{
  const el = document.querySelector({selector});
  if (!el) return null;
  el.scrollIntoView({{ block: "center", inline: "center" }});
  const r = el.getBoundingClientRect();
  return {{ x: r.left + r.width / 2, y: r.top + r.height / 2, width: r.width, height: r.height }};
}})()"#,
            selector = Value::from(selector)
        );
        let found = self.evaluate_until(&js, deadline)?;
        if found.is_null() {
            return Err(BrowserError::NoElement {
                selector: selector.to_owned(),
            });
        }
        let number = |key: &str| found.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        if number("width") <= 0.0 || number("height") <= 0.0 {
            return Err(BrowserError::Element {
                selector: selector.to_owned(),
                problem: "has no size (is it hidden?)".into(),
            });
        }
        let (x, y) = (number("x"), number("y"));
        for (kind, buttons) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)] {
            let mut event = json!({ "type": kind, "x": x, "y": y, "buttons": buttons });
            if kind != "mouseMoved" {
                event["button"] = json!("left");
                event["clickCount"] = json!(1);
            }
            self.call("Input.dispatchMouseEvent", event, deadline)?;
        }
        Ok(())
    }

    /// Sets the value of the `<select>` matching `selector` to `value` and
    /// dispatches bubbling `input` and `change` events. Errors if nothing
    /// matches, it is not a `<select>`, or it has no option with that value.
    pub fn select(&self, selector: &str, value: &str) -> Result<()> {
        let js = format!(
            r#"(() => {{
  const el = document.querySelector({selector});
  if (!el) return {{ missing: true }};
  if (el.tagName !== "SELECT") return {{ problem: "is a <" + el.tagName.toLowerCase() + ">, not a <select>" }};
  const value = {value};
  if (!Array.from(el.options).some((option) => option.value === value))
    return {{ problem: "has no option with value " + JSON.stringify(value) }};
  el.value = value;
  el.dispatchEvent(new Event("input", {{ bubbles: true }}));
  el.dispatchEvent(new Event("change", {{ bubbles: true }}));
  return {{ ok: true }};
}})()"#,
            selector = Value::from(selector),
            value = Value::from(value)
        );
        let outcome = self.evaluate(&js)?;
        if outcome.get("ok").is_some() {
            Ok(())
        } else if outcome.get("missing").is_some() {
            Err(BrowserError::NoElement {
                selector: selector.to_owned(),
            })
        } else {
            Err(BrowserError::Element {
                selector: selector.to_owned(),
                problem: outcome
                    .get("problem")
                    .and_then(Value::as_str)
                    .unwrap_or("could not be set")
                    .to_owned(),
            })
        }
    }

    /// A PNG of the whole page (not just the viewport).
    pub fn screenshot_png(&self) -> Result<Vec<u8>> {
        let deadline = self.deadline();
        let metrics = self.call("Page.getLayoutMetrics", json!({}), deadline)?;
        let size = metrics
            .get("cssContentSize")
            .or_else(|| metrics.get("contentSize"));
        let side = |key: &str| {
            size.and_then(|size| size.get(key))
                .and_then(Value::as_f64)
                .map(|side| side.ceil().clamp(1.0, MAX_SCREENSHOT_SIDE))
        };
        let mut params = json!({ "format": "png", "captureBeyondViewport": true });
        if let (Some(width), Some(height)) = (side("width"), side("height")) {
            params["clip"] =
                json!({ "x": 0, "y": 0, "width": width, "height": height, "scale": 1 });
        }
        let shot = self.call("Page.captureScreenshot", params, deadline)?;
        let unexpected = || BrowserError::UnexpectedReply {
            method: "Page.captureScreenshot".into(),
            reply: abbreviate(&shot.to_string(), 200),
        };
        let data = shot
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(unexpected)?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| unexpected())
    }

    /// Writes a PNG of the whole page to `path`, creating parent directories.
    pub fn screenshot(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let png = self.screenshot_png()?;
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| BrowserError::Io {
                action: format!("create {}", parent.display()),
                source,
            })?;
        }
        std::fs::write(path, png).map_err(|source| BrowserError::Io {
            action: format!("write {}", path.display()),
            source,
        })
    }

    /// The page's console output so far, oldest first: `console.*` calls
    /// (`console.error: …`), uncaught exceptions (`uncaught exception: …`)
    /// and browser log entries such as failed loads (`log.error (network): …`).
    pub fn console_messages(&self) -> Vec<String> {
        lock(&self.conn.shared.state)
            .sessions
            .get(&self.session_id)
            .map(|log| log.console.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        lock(&self.conn.shared.state)
            .sessions
            .remove(&self.session_id);
        // Fire and forget: the reply (if any) is dropped by the reader.
        let _ = self.conn.send(
            None,
            "Target.closeTarget",
            json!({ "targetId": self.target_id }),
        );
    }
}

/// JavaScript truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
