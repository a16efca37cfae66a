//! The pages in a real browser: headless Chromium (`nudge_tests::browser`)
//! against the real server, its gRPC port speaking grpc-web to the pages
//! served by its pages listener, on the embedded demo.
//!
//! Skipped (with a line on stderr) without Chromium, unless
//! `NUDGE_BROWSER_TESTS=required`, which `.ci/run` sets after installing it.
//! Screenshots are saved under `target/tmp/browser/` as the run's artifacts.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use nudge_models::time::Span;
use nudge_proto::v1 as proto;
use nudge_service::clock::Clock as _;
use nudge_service::config::{Listen, Secret};
use nudge_service::web::tokens::CustomerTokens;
use nudge_tests::browser::{self, Browser, BrowserError, Page};
use nudge_tests::web::http;
use nudge_tests::{TestServer, filter_reason, probe_request};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const KEY: &str = "a-browser-test-key-of-at-least-32-bytes";
const ADMIN: &str = "console-secret";
const WAIT: Duration = Duration::from_secs(20);

/// The demo with pages, a known token key and an admin token.
async fn demo_server() -> TestServer {
    TestServer::start_with(|config| {
        config.web.listen = Some(Listen::On("127.0.0.1:0".parse().unwrap()));
        config.web.customer_token_key = Some(Secret::new(KEY));
        config.auth.token = Some(Secret::new(ADMIN));
    })
    .await
}

/// Where screenshots go.
fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    eprintln!("screenshot: {}", path.display());
    path
}

/// Runs browser work off the runtime's thread, so the server keeps
/// answering while the page waits for it.
async fn in_browser<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// `result`, or a panic that shows the page's console and a screenshot.
fn expect<T>(page: &Page, what: &str, result: Result<T, BrowserError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            for line in page.console_messages() {
                eprintln!("page console: {line}");
            }
            let _ = page.screenshot(artifact(&format!("failed-{}.png", what.replace(' ', "-"))));
            panic!("{what}: {error}");
        }
    }
}

/// Waits for the JavaScript `predicate` to be truthy; its value.
fn wait(page: &Page, what: &str, predicate: &str) -> Value {
    expect(page, what, page.wait_for(predicate, WAIT))
}

/// Opens `/demo` and waits for the first persona's placements.
fn open_demo(browser: &Browser, web: SocketAddr) -> Page {
    let page = browser.new_page().unwrap();
    expect(
        &page,
        "open the demo",
        page.goto(&format!("http://127.0.0.1:{}/demo", web.port())),
    );
    wait(
        &page,
        "the demo is ready",
        "document.body.dataset.demoReady === 'true'",
    );
    page
}

/// The banner's rendered card once its decision is not `previous`:
/// `[action, decision]`.
fn banner_after(page: &Page, previous: &str) -> (String, String) {
    let value = wait(
        page,
        "the banner renders",
        &format!(
            "(() => {{ const slot = document.querySelector('#home_banner');
                 const card = slot.querySelector('.nudge-card');
                 return slot.dataset.nudgeState === 'rendered' && card
                     && card.dataset.nudgeDecision !== '{previous}'
                     ? [card.dataset.nudgeAction, card.dataset.nudgeDecision] : null; }})()"
        ),
    );
    (
        value[0].as_str().unwrap().to_owned(),
        value[1].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_demo_renders_a_decision_in_each_placement() {
    let Some(browser) = browser::for_test() else {
        return;
    };
    let server = demo_server().await;
    let web = server.web.unwrap();
    let (customer, banner, sidebar) = in_browser(move || {
        let page = open_demo(&browser, web);
        let (banner, _) = banner_after(&page, "");
        let sidebar = wait(
            &page,
            "the sidebar renders",
            "(() => { const slot = document.querySelector('#onboarding_sidebar');
                 const cards = [...slot.querySelectorAll('.nudge-card')];
                 return slot.dataset.nudgeState === 'rendered' && cards.length
                     ? cards.map(card => card.dataset.nudgeAction) : null; })()",
        );
        // Seen on screen: both impressions reported.
        wait(
            &page,
            "impressions are reported",
            "[...document.querySelectorAll('.nudge-card')]
                 .every(card => card.dataset.nudgeImpression === 'reported')",
        );
        let title = expect(
            &page,
            "read the banner",
            page.evaluate("document.querySelector('#home_banner .nudge-title').textContent"),
        );
        assert!(
            !title.as_str().unwrap().is_empty(),
            "the payload's title is shown"
        );
        let customer = expect(
            &page,
            "read the picker",
            page.evaluate("document.querySelector('#customer-picker').value"),
        );
        expect(&page, "screenshot", page.screenshot(artifact("demo.png")));
        let sidebar: Vec<String> = sidebar
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        (customer.as_str().unwrap().to_owned(), banner, sidebar)
    })
    .await;
    assert!(!sidebar.is_empty() && sidebar.len() <= 3, "{sidebar:?}");
    let profile = server
        .profile(&customer)
        .await
        .expect("the page made the customer");
    let contacts: Vec<&str> = profile
        .contacts
        .iter()
        .map(|contact| contact.action_id.as_str())
        .collect();
    assert!(contacts.contains(&banner.as_str()), "{contacts:?}");
    for action in &sidebar {
        assert!(
            contacts.contains(&action.as_str()),
            "{action} in {contacts:?}"
        );
    }
    let plan = profile
        .attributes
        .get("plan")
        .and_then(|value| value.kind.clone());
    assert!(plan.is_some(), "the page identified the persona");
    let impressions: u32 = profile.engagement.iter().map(|e| e.impressions).sum();
    assert_eq!(impressions as usize, 1 + sidebar.len());
}

#[tokio::test]
async fn a_click_in_the_page_is_in_the_next_profile() {
    let Some(browser) = browser::for_test() else {
        return;
    };
    let server = demo_server().await;
    let web = server.web.unwrap();
    let (customer, action) = in_browser(move || {
        let page = open_demo(&browser, web);
        let (action, _) = banner_after(&page, "");
        expect(
            &page,
            "click the banner",
            page.click("#home_banner .nudge-cta"),
        );
        wait(
            &page,
            "the click is reported",
            "document.querySelector('#home_banner .nudge-card').dataset.nudgeClick === 'reported'",
        );
        let still = expect(
            &page,
            "read the address",
            page.evaluate("location.pathname"),
        );
        assert_eq!(still, "/demo", "the demo stays on the page");
        let customer = expect(
            &page,
            "read the picker",
            page.evaluate("document.querySelector('#customer-picker').value"),
        );
        (customer.as_str().unwrap().to_owned(), action)
    })
    .await;
    let profile = server.profile(&customer).await.unwrap();
    let contact = profile
        .contacts
        .iter()
        .find(|contact| contact.action_id == action)
        .expect("the banner's contact");
    let engagement = profile
        .engagement
        .iter()
        .find(|engagement| engagement.channel == contact.channel)
        .expect("engagement on the banner's channel");
    assert_eq!(engagement.clicks, 1, "{engagement:?}");
}

#[tokio::test]
async fn a_pricing_page_view_changes_the_banner() {
    let Some(browser) = browser::for_test() else {
        return;
    };
    let server = demo_server().await;
    let web = server.web.unwrap();
    let browser = Arc::new(browser);
    let page = {
        let browser = browser.clone();
        Arc::new(in_browser(move || open_demo(&browser, web)).await)
    };
    // Margaret, on the Pro plan, has never looked at pricing.
    let before = {
        let page = page.clone();
        in_browser(move || {
            let (_, first) = banner_after(&page, "");
            expect(
                &page,
                "pick Margaret",
                page.select("#customer-picker", "demo-margaret"),
            );
            banner_after(&page, &first)
        })
        .await
    };
    let probe = server
        .decide(probe_request(
            "demo-margaret",
            "home_banner",
            &["roi_case_study"],
        ))
        .await;
    assert_eq!(
        filter_reason(&probe, "roi_case_study"),
        Some(proto::FilterReason::NotEligible),
        "the case study needs a pricing page view"
    );
    let after = {
        let page = page.clone();
        in_browser(move || {
            expect(
                &page,
                "view pricing",
                page.click("button[data-event='pricing_page_view']"),
            );
            let after = banner_after(&page, &before.1);
            expect(
                &page,
                "screenshot",
                page.screenshot(artifact("demo-pricing.png")),
            );
            after
        })
        .await
    };
    assert_ne!(after.0, before.0);
    assert_eq!(
        after.0, "roi_case_study",
        "the banner answers the pricing view"
    );
    let profile = server.profile("demo-margaret").await.unwrap();
    let pricing = profile
        .counters
        .iter()
        .find(|counter| counter.name == "pricing_page_view")
        .expect("the page's event");
    assert_eq!(pricing.last_1d, 1);
}

/// A grpc-web request body (one data frame) of `message`, base64.
fn frame(message: &impl prost::Message) -> String {
    let bytes = message.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&bytes);
    base64::engine::general_purpose::STANDARD.encode(body)
}

#[tokio::test]
async fn a_page_with_one_customers_token_cannot_reach_another() {
    let Some(browser) = browser::for_test() else {
        return;
    };
    let server = demo_server().await;
    let web = server.web.unwrap();
    let grpc = format!("http://127.0.0.1:{}", server.addr.port());
    let decide = frame(&proto::DecideRequest {
        customer_id: "demo-grace".to_owned(),
        placement: "home_banner".to_owned(),
        ..proto::DecideRequest::default()
    });
    let track = frame(&proto::Event {
        customer_id: "demo-grace".to_owned(),
        event_id: "forged-1".to_owned(),
        name: "payment_failed".to_owned(),
        ..proto::Event::default()
    });
    let answers = in_browser(move || {
        let page = open_demo(&browser, web);
        // The page signs in as Ada, then asks about Grace and tries to change her.
        let script = format!(
            "(async () => {{
                const issued = await (await fetch('/demo/token?customer=demo-ada')).json();
                const call = async (path, body) => {{
                    const res = await fetch('{grpc}' + path, {{
                        method: 'POST',
                        headers: {{ 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1',
                                    'x-customer-token': issued.token }},
                        body: Uint8Array.from(atob(body), c => c.charCodeAt(0)),
                    }});
                    return [res.status, res.headers.get('grpc-status'),
                            decodeURIComponent(res.headers.get('grpc-message') || '')];
                }};
                return [await call('/nudge.v1.Decisions/Decide', '{decide}'),
                        await call('/nudge.v1.Events/Track', '{track}')];
            }})()"
        );
        expect(&page, "forge calls", page.evaluate(&script))
    })
    .await;
    for answer in answers.as_array().unwrap() {
        assert_eq!(answer[1], "7", "PERMISSION_DENIED: {answer}");
        assert!(
            answer[2]
                .as_str()
                .unwrap()
                .contains("is for customer 'demo-ada', not for 'demo-grace'"),
            "{answer}"
        );
    }
    assert_eq!(
        server
            .profile("demo-grace")
            .await
            .map_err(|status| status.code()),
        Err(tonic::Code::NotFound),
        "nothing was decided or recorded for Grace"
    );
}

/// Serves `html` to every GET on an ephemeral port: a page on an origin
/// nudge does not allow.
async fn foreign_site(html: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut request = vec![0; 4_096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_page_on_a_disallowed_origin_shows_nothing_and_changes_nothing() {
    let Some(browser) = browser::for_test() else {
        return;
    };
    let server = demo_server().await;
    let web = server.web.unwrap();
    let token = CustomerTokens::new(KEY.as_bytes(), Span(3_600_000)).issue(
        "demo-ada",
        server.clock.now(),
        Span(600_000),
    );
    let html = format!(
        r#"<!doctype html><html><body><h1>Someone else's site</h1><div id="slot"></div>
        <script type="module">
          import * as nudge from "http://127.0.0.1:{port}/nudge.js";
          const banner = nudge.placement(document.getElementById("slot"),
              {{ placement: "home_banner", customerToken: "{token}" }});
          window.tracked = nudge.track("pricing_page_view", {{ customerToken: "{token}" }})
              .then(() => "tracked", (error) => "refused: " + error.message);
          banner.ready.then(() => {{ document.body.dataset.done = "true"; }});
        </script></body></html>"#,
        port = web.port()
    );
    let site = foreign_site(html).await;
    let (state, slot, tracked) = in_browser(move || {
        let page = browser.new_page().unwrap();
        expect(
            &page,
            "open the site",
            page.goto(&format!("http://{site}/")),
        );
        wait(
            &page,
            "the placement settles",
            "document.body.dataset.done === 'true'",
        );
        let state = expect(
            &page,
            "read the slot",
            page.evaluate("document.getElementById('slot').dataset.nudgeState"),
        );
        let slot = expect(
            &page,
            "read the slot",
            page.evaluate("document.getElementById('slot').innerHTML"),
        );
        let tracked = expect(&page, "await the track", page.evaluate("window.tracked"));
        expect(
            &page,
            "screenshot",
            page.screenshot(artifact("foreign-origin.png")),
        );
        (state, slot, tracked)
    })
    .await;
    assert_eq!(state, "failed");
    assert_eq!(slot, "", "no error box, nothing at all");
    assert!(
        tracked.as_str().unwrap().starts_with("refused"),
        "{tracked}"
    );
    assert_eq!(
        server
            .profile("demo-ada")
            .await
            .map_err(|status| status.code()),
        Err(tonic::Code::NotFound),
        "nothing reached the customer"
    );
}

#[tokio::test]
async fn the_console_charts_live_figures() {
    let Some(browser) = browser::for_test() else {
        return;
    };
    let server = demo_server().await;
    let web = server.web.unwrap();
    // A few seconds of traffic on the service clock, sampled every 2 s.
    let bearer = format!("Bearer {ADMIN}");
    for round in 0..6 {
        for customer in 0..(3 + round) {
            server
                .decide(nudge_tests::decide_request(
                    &format!("console-{customer}"),
                    "onboarding_sidebar",
                ))
                .await;
        }
        server.clock.advance(Span(2_000));
        // The sampler wakes on the clock; wait until it took this round's sample.
        for _ in 0..200 {
            let figures = http(
                web,
                "GET",
                "/console/stats",
                &[("authorization", &bearer)],
                b"",
            )
            .await
            .json();
            if figures["history"].as_array().unwrap().len() >= round + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (rate, live, actions, decisions_points, latency_points) = in_browser(move || {
        let page = browser.new_page().unwrap();
        let console = format!("http://127.0.0.1:{}/console", web.port());
        // Without the admin token: the form, no figures.
        expect(&page, "open the console", page.goto(&console));
        wait(
            &page,
            "the token form",
            "!document.getElementById('token-form').hidden",
        );
        // With it, as a link an operator keeps (the fragment never leaves the browser).
        let page = browser.new_page().unwrap();
        expect(
            &page,
            "open with the token",
            page.goto(&format!("{console}#token={ADMIN}")),
        );
        wait(
            &page,
            "the console renders",
            "document.body.dataset.consoleReady === 'true'",
        );
        let read = |selector: &str| {
            expect(
                &page,
                "read a tile",
                page.evaluate(&format!(
                    "document.querySelector('{selector} .value').textContent"
                )),
            )
            .as_str()
            .unwrap()
            .to_owned()
        };
        let points = |chart: &str| {
            expect(
                &page,
                "read a chart",
                page.evaluate(&format!(
                    "[...document.querySelectorAll('#{chart} polyline')]
                         .map(line => line.getAttribute('points').trim().split(/\\s+/).length)"
                )),
            )
        };
        let actions = expect(
            &page,
            "read the top actions",
            page.evaluate("document.querySelectorAll('#top-actions tbody tr').length"),
        );
        expect(
            &page,
            "screenshot",
            page.screenshot(artifact("console.png")),
        );
        (
            read("#tile-decisions-per-second"),
            read("#tile-live-customers"),
            actions,
            points("chart-decisions"),
            points("chart-latency"),
        )
    })
    .await;
    let rate: f64 = rate
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("a number of decisions per second: {rate:?}"));
    assert!(rate > 0.0, "{rate}");
    assert_eq!(live, "8", "the console's live customers are the engine's");
    assert!(actions.as_u64().unwrap() >= 1);
    assert!(
        decisions_points.as_array().unwrap()[0].as_u64().unwrap() >= 5,
        "{decisions_points}"
    );
    assert!(
        latency_points
            .as_array()
            .unwrap()
            .iter()
            .all(|points| points.as_u64().unwrap() >= 6),
        "{latency_points}"
    );
}
