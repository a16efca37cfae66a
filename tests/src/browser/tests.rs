//! The driver against a real Chromium (skipped without one).

use super::*;

/// A launched browser, or `None` (after a skip line) without Chromium.
fn browser() -> Option<Browser> {
    for_test()
}

/// A `data:` URL for `html`.
fn data_url(html: &str) -> String {
    let mut url = String::from("data:text/html;charset=utf-8,");
    for byte in html.bytes() {
        if byte.is_ascii_alphanumeric() || b" -_.~<>=\"'/():;!".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

#[test]
fn click_changes_the_dom_and_wait_for_sees_it() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    page.goto(&data_url(
        r#"<div style="height:2000px">spacer</div>
<button id="go" onclick="setTimeout(() => document.getElementById('out').textContent = 'clicked ' + event.isTrusted, 100)">go</button>
<p id="out">waiting</p>"#,
    ))
    .expect("goto");
    page.click("#go").expect("click");
    let text = page
        .wait_for(
            "document.getElementById('out').textContent.startsWith('clicked') && document.getElementById('out').textContent",
            Duration::from_secs(5),
        )
        .expect("the click handler ran");
    assert_eq!(text, json!("clicked true"));
}

#[test]
fn evaluate_awaits_promises() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    let value = page
        .evaluate("new Promise((resolve) => setTimeout(() => resolve({ answer: 42, list: [1, 'a'] }), 50))")
        .expect("evaluate");
    assert_eq!(value, json!({ "answer": 42, "list": [1, "a"] }));
    let awaited = page
        .evaluate("const x = await Promise.resolve(20); x + 1")
        .expect("top-level await");
    assert_eq!(awaited, json!(21));
    assert_eq!(page.evaluate("undefined").expect("undefined"), Value::Null);
    assert_eq!(page.evaluate("1 + 1").expect("sum"), json!(2));
}

#[test]
fn exceptions_become_errors() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    let error = page
        .evaluate("throw new TypeError('boom here')")
        .expect_err("a throw is an error");
    assert!(
        matches!(error, BrowserError::JavaScript { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("TypeError: boom here"),
        "{error}"
    );
    let rejected = page
        .evaluate("Promise.reject(new Error('nope'))")
        .expect_err("a rejection is an error");
    assert!(rejected.to_string().contains("nope"), "{rejected}");
    // The page still works afterwards.
    assert_eq!(page.evaluate("'fine'").expect("evaluate"), json!("fine"));
}

#[test]
fn screenshot_writes_a_png() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    page.goto(&data_url(
        r#"<body style="margin:0;background:#3366cc"><h1 style="color:white">hello</h1><div style="height:1500px"></div></body>"#,
    ))
    .expect("goto");
    let dir = std::env::temp_dir().join(format!("cdp-shot-{}", std::process::id()));
    let path = dir.join("nested").join("page.png");
    page.screenshot(&path).expect("screenshot");
    let png = std::fs::read(&path).expect("read the png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a png");
    // Full page: 1280 wide, taller than the 900 px window.
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!(width, 1280);
    assert!(height > 1500, "height {height}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_selector_is_an_error() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    page.goto(&data_url(
        "<button id=there>x</button><span id=hidden style=display:none>h</span>",
    ))
    .expect("goto");
    let error = page.click("#not-there").expect_err("nothing to click");
    assert!(matches!(error, BrowserError::NoElement { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "no element matches selector `#not-there`"
    );
    let hidden = page.click("#hidden").expect_err("hidden");
    assert!(hidden.to_string().contains("has no size"), "{hidden}");
    let invalid = page.click("#[").expect_err("invalid selector");
    assert!(
        invalid.to_string().contains("not a valid selector"),
        "{invalid}"
    );
    let select = page.select("#there", "x").expect_err("not a select");
    assert!(select.to_string().contains("not a <select>"), "{select}");
}

#[test]
fn select_sets_the_value_and_fires_change() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    page.goto(&data_url(
        r#"<form onchange="document.title = 'changed:' + event.target.value"><select id="s"><option value="a">A</option><option value="b">B</option></select></form>"#,
    ))
    .expect("goto");
    page.select("#s", "b").expect("select");
    assert_eq!(
        page.evaluate("document.title").expect("title"),
        json!("changed:b")
    );
    let missing = page.select("#s", "zzz").expect_err("no such option");
    assert!(
        missing.to_string().contains("no option with value"),
        "{missing}"
    );
}

#[test]
fn wait_for_times_out_naming_the_predicate() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    let started = Instant::now();
    let error = page
        .wait_for(
            "document.querySelector('#never').id",
            Duration::from_millis(300),
        )
        .expect_err("never true");
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = error.to_string();
    assert!(
        text.contains("`document.querySelector('#never').id`"),
        "{text}"
    );
    assert!(text.contains("TypeError"), "{text}");
}

#[test]
fn console_and_navigation_errors_are_reported() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    page.goto(&data_url(
        "<script>console.log('hello', 42, {a: 1}); console.error('bad thing'); setTimeout(() => { throw new Error('late') }, 0);</script>",
    ))
    .expect("goto");
    page.wait_for(
        "new Promise((r) => setTimeout(() => r(true), 20))",
        Duration::from_secs(5),
    )
    .expect("a tick");
    let messages = page.console_messages();
    assert!(
        messages.contains(&"console.log: hello 42 Object".to_owned()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"console.error: bad thing".to_owned()),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|line| line.starts_with("uncaught exception: Error: late")),
        "{messages:?}"
    );
    // A loopback port nobody listens on (any more).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a loopback port")
        .port();
    let error = page
        .goto(&format!("http://127.0.0.1:{port}/"))
        .expect_err("nothing listens there");
    assert!(
        error.to_string().contains("net::ERR_CONNECTION_REFUSED"),
        "{error}"
    );
}

#[test]
fn drop_reaps_chromium_and_removes_the_profile() {
    let Some(browser) = browser() else { return };
    let page = browser.new_page().expect("new page");
    let other = browser.new_page().expect("second page");
    other.evaluate("window.mark = 1").expect("evaluate");
    assert_eq!(
        page.evaluate("typeof window.mark").expect("evaluate"),
        json!("undefined")
    );
    // Pages can be used from several threads at once.
    thread::scope(|scope| {
        for (round, used) in [&page, &other, &page, &other].into_iter().enumerate() {
            scope.spawn(move || {
                for i in 0..20 {
                    let value = used
                        .evaluate(&format!("Promise.resolve({{ n: {i} + {round} }})"))
                        .expect("concurrent evaluate");
                    assert_eq!(value, json!({ "n": i + round }));
                }
            });
        }
    });
    drop(other);
    assert!(
        browser.version().contains("Chrome"),
        "{}",
        browser.version()
    );
    let pid = browser.pid();
    let profile = browser.profile_dir().to_owned();
    assert!(profile.is_dir());
    drop(browser);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "chromium {pid} not reaped"
    );
    assert!(!profile.exists(), "profile left behind");
    let error = page.evaluate("1").expect_err("the browser is gone");
    assert!(matches!(error, BrowserError::Closed { .. }), "{error:?}");
}

/// A tiny HTTP server on loopback, serving until the test process ends:
/// `/` links to `/second`, `/api` is JSON, anything else is a 404.
fn serve() -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut chunk = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, kind, body) = match path {
                    "/" => (
                        "200 OK",
                        "text/html",
                        r#"<a id="next" href="/second">next</a>"#,
                    ),
                    "/second" => ("200 OK", "text/html", "<h1>second</h1>"),
                    "/api" => ("200 OK", "application/json", r#"{"ok":true,"n":7}"#),
                    _ => ("404 Not Found", "text/plain", "nope"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    base
}

#[test]
fn http_pages_fetch_and_link_navigation() {
    let Some(browser) = browser() else { return };
    let base = serve();
    let page = browser.new_page().expect("new page");
    page.goto(&format!("{base}/")).expect("goto");
    let api = page
        .evaluate("const r = await fetch('/api'); ({ status: r.status, body: await r.json() })")
        .expect("fetch /api");
    assert_eq!(
        api,
        json!({ "status": 200, "body": { "ok": true, "n": 7 } })
    );
    let missing = page
        .evaluate("(await fetch('/missing')).status")
        .expect("fetch /missing");
    assert_eq!(missing, json!(404));
    page.click("#next").expect("click the link");
    let heading = page
        .wait_for(
            "location.pathname === '/second' && document.querySelector('h1')?.textContent",
            Duration::from_secs(5),
        )
        .expect("the link was followed");
    assert_eq!(heading, json!("second"));
    let messages = page.console_messages();
    assert!(
        messages
            .iter()
            .any(|line| line.starts_with("log.error (network)") && line.contains("404")),
        "{messages:?}"
    );
}

#[test]
fn a_crashed_browser_fails_fast_and_timeouts_say_what() {
    let Some(browser) = browser() else { return };
    let mut page = browser.new_page().expect("new page");
    page.set_timeout(Duration::from_millis(300));
    let error = page
        .evaluate("new Promise(() => {})")
        .expect_err("never settles");
    assert!(matches!(error, BrowserError::Timeout { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("`new Promise(() => {})` to evaluate"),
        "{error}"
    );
    assert_eq!(page.evaluate("2").expect("still usable"), json!(2));
    let killed = Command::new("kill")
        .arg("-KILL")
        .arg(browser.pid().to_string())
        .status()
        .expect("run kill");
    assert!(killed.success());
    page.set_timeout(DEFAULT_TIMEOUT);
    let started = Instant::now();
    let error = page.evaluate("1").expect_err("chromium is dead");
    assert!(matches!(error, BrowserError::Closed { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let profile = browser.profile_dir().to_owned();
    drop(page);
    drop(browser);
    assert!(!profile.exists(), "profile left behind");
}

#[test]
fn a_missing_binary_fails_to_launch() {
    let error = Browser::launch_at(Path::new("/nonexistent/chromium")).expect_err("no such binary");
    let text = error.to_string();
    assert!(text.contains("exited during startup"), "{text}");
    assert!(text.contains("127"), "{text}");
}

#[test]
fn types_are_send_sync_and_debug() {
    fn check<T: Send + Sync + fmt::Debug + 'static>() {}
    check::<Browser>();
    check::<Page>();
    check::<BrowserError>();
    check::<EventCursor>();
}
