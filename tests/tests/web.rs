//! Browsers without a browser: the exact grpc-web requests a page sends (and
//! a lying page could send), CORS, customer tokens, and the pages listener,
//! against the real server. `browser.rs` drives the same through Chromium.

use nudge_models::time::Span;
use nudge_proto::v1 as proto;
use nudge_service::clock::Clock as _;
use nudge_service::config::{Listen, Secret};
use nudge_service::web::tokens::CustomerTokens;
use nudge_tests::web::{GrpcWebReply, grpc_web, http};
use nudge_tests::{TestServer, decide_request};
use tonic::Code;

const KEY: &str = "a-test-key-that-is-at-least-32-bytes";
const APP: &str = "http://app.test:3000";
const ADMIN: &str = "admin-secret";
const DECIDE: &str = "/nudge.v1.Decisions/Decide";
const OUTCOME: &str = "/nudge.v1.Decisions/ReportOutcome";
const TRACK: &str = "/nudge.v1.Events/Track";

async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.web.customer_token_key = Some(Secret::new(KEY));
        config.web.allowed_origins = vec![APP.to_owned()];
        config.web.listen = Some(Listen::On("127.0.0.1:0".parse().expect("an address")));
        config.auth.token = Some(Secret::new(ADMIN));
    })
    .await
}

fn token(server: &TestServer, customer: &str) -> String {
    CustomerTokens::new(KEY.as_bytes(), Span(3_600_000)).issue(
        customer,
        server.clock.now(),
        Span(600_000),
    )
}

async fn decide_as(
    server: &TestServer,
    token: &str,
    origin: &str,
    customer: &str,
) -> GrpcWebReply<proto::DecideResponse> {
    grpc_web(
        server.addr,
        DECIDE,
        &[("origin", origin), ("x-customer-token", token)],
        &decide_request(customer, "home_banner"),
    )
    .await
}

fn page_event(customer: &str, id: &str, name: &str) -> proto::Event {
    proto::Event {
        customer_id: customer.to_owned(),
        event_id: id.to_owned(),
        name: name.to_owned(),
        ..proto::Event::default()
    }
}

#[tokio::test]
async fn a_page_decides_reports_and_tracks_for_its_own_customer() {
    let server = server().await;
    let token = token(&server, "cust-a");
    let decided = decide_as(&server, &token, APP, "cust-a").await;
    assert_eq!(decided.code, Code::Ok, "{}", decided.message);
    assert_eq!(decided.http.status, 200);
    assert_eq!(
        decided.http.header("content-type"),
        Some("application/grpc-web+proto")
    );
    assert_eq!(
        decided.http.header("access-control-allow-origin"),
        Some(APP)
    );
    let exposed = decided
        .http
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
    let decision = decided.reply.expect("a decision");
    let served = decision.served.first().expect("the banner is served");

    let clicked: GrpcWebReply<proto::ReportOutcomeResponse> = grpc_web(
        server.addr,
        OUTCOME,
        &[("origin", APP), ("x-customer-token", &token)],
        &proto::ReportOutcomeRequest {
            customer_id: "cust-a".to_owned(),
            decision_id: decision.decision_id.clone(),
            action_id: served.action_id.clone(),
            outcome: proto::Outcome::Click as i32,
            ..proto::ReportOutcomeRequest::default()
        },
    )
    .await;
    assert_eq!(clicked.code, Code::Ok, "{}", clicked.message);
    assert!(clicked.reply.expect("a reply").applied);

    let tracked: GrpcWebReply<proto::TrackResponse> = grpc_web(
        server.addr,
        TRACK,
        &[("origin", APP), ("x-customer-token", &token)],
        &page_event("cust-a", "e-1", "pricing_page_view"),
    )
    .await;
    assert_eq!(tracked.code, Code::Ok, "{}", tracked.message);

    let profile = server.profile("cust-a").await.expect("known now");
    assert_eq!(profile.contacts.len(), 1);
    let in_app = profile
        .engagement
        .iter()
        .find(|engagement| engagement.channel == served.channel)
        .expect("engagement on the served channel");
    assert_eq!(in_app.clicks, 1);
    assert!(
        profile
            .counters
            .iter()
            .any(|counter| counter.name == "pricing_page_view" && counter.last_1d == 1),
        "{:?}",
        profile.counters
    );
}

#[tokio::test]
async fn a_token_for_one_customer_cannot_read_or_change_another() {
    let server = server().await;
    // B exists, with one decision of its own.
    let before_decision = server.decide(decide_request("cust-b", "home_banner")).await;
    let before = server.profile("cust-b").await.expect("cust-b is known");
    let token_a = token(&server, "cust-a");

    let decided = decide_as(&server, &token_a, APP, "cust-b").await;
    assert_eq!(decided.code, Code::PermissionDenied, "{}", decided.message);
    assert_eq!(
        decided.message,
        "the customer token is for customer 'cust-a', not for 'cust-b'"
    );
    assert!(decided.reply.is_none());
    // The refusal is readable by the page.
    assert_eq!(
        decided.http.header("access-control-allow-origin"),
        Some(APP)
    );

    let outcome: GrpcWebReply<proto::ReportOutcomeResponse> = grpc_web(
        server.addr,
        OUTCOME,
        &[("origin", APP), ("x-customer-token", &token_a)],
        &proto::ReportOutcomeRequest {
            customer_id: "cust-b".to_owned(),
            decision_id: before_decision.decision_id.clone(),
            action_id: before_decision.served[0].action_id.clone(),
            outcome: proto::Outcome::Dismiss as i32,
            ..proto::ReportOutcomeRequest::default()
        },
    )
    .await;
    assert_eq!(outcome.code, Code::PermissionDenied, "{}", outcome.message);

    let tracked: GrpcWebReply<proto::TrackResponse> = grpc_web(
        server.addr,
        TRACK,
        &[("origin", APP), ("x-customer-token", &token_a)],
        &page_event("cust-b", "e-1", "payment_failed"),
    )
    .await;
    assert_eq!(tracked.code, Code::PermissionDenied, "{}", tracked.message);

    let after = server.profile("cust-b").await.expect("cust-b is known");
    assert_eq!(after, before, "nothing of cust-b changed");
    assert_eq!(
        server.profile("cust-a").await.map_err(|s| s.code()),
        Err(Code::NotFound)
    );
}

#[tokio::test]
async fn browser_calls_without_a_valid_token_are_unauthenticated() {
    let server = server().await;
    let request = decide_request("cust-a", "home_banner");
    let none: GrpcWebReply<proto::DecideResponse> =
        grpc_web(server.addr, DECIDE, &[("origin", APP)], &request).await;
    assert_eq!(none.code, Code::Unauthenticated);
    assert!(
        none.message.contains("x-customer-token"),
        "{}",
        none.message
    );

    let foreign = CustomerTokens::new(b"another-key-that-is-32-bytes-long!!", Span(3_600_000))
        .issue("cust-a", server.clock.now(), Span(600_000));
    let forged = decide_as(&server, &foreign, APP, "cust-a").await;
    assert_eq!(forged.code, Code::Unauthenticated);
    assert!(forged.message.contains("signature"), "{}", forged.message);

    let token = token(&server, "cust-a");
    server.clock.advance(Span(600_000));
    let expired = decide_as(&server, &token, APP, "cust-a").await;
    assert_eq!(expired.code, Code::Unauthenticated);
    assert!(expired.message.contains("expired"), "{}", expired.message);

    let long_lived = CustomerTokens::new(KEY.as_bytes(), Span(30 * 86_400_000)).issue(
        "cust-a",
        server.clock.now(),
        Span(30 * 86_400_000),
    );
    let refused = decide_as(&server, &long_lived, APP, "cust-a").await;
    assert_eq!(refused.code, Code::Unauthenticated);
    assert!(
        refused.message.contains("short-lived"),
        "{}",
        refused.message
    );

    assert_eq!(
        server.profile("cust-a").await.map_err(|s| s.code()),
        Err(Code::NotFound)
    );
}

#[tokio::test]
async fn a_disallowed_origin_is_refused_and_gets_no_cors_grant() {
    let server = server().await;
    let token = token(&server, "cust-a");
    let refused = decide_as(&server, &token, "https://evil.example", "cust-a").await;
    assert_eq!(refused.code, Code::PermissionDenied);
    assert!(
        refused
            .message
            .contains("'https://evil.example' is not allowed"),
        "{}",
        refused.message
    );
    assert_eq!(refused.http.header("access-control-allow-origin"), None);
    assert_eq!(
        server.profile("cust-a").await.map_err(|s| s.code()),
        Err(Code::NotFound)
    );

    let preflight = |origin: &'static str| {
        let addr = server.addr;
        async move {
            http(
                addr,
                "OPTIONS",
                DECIDE,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "content-type,x-grpc-web,x-customer-token",
                    ),
                ],
                b"",
            )
            .await
        }
    };
    let allowed = preflight(APP).await;
    assert!(allowed.status < 300, "{allowed:?}");
    assert_eq!(allowed.header("access-control-allow-origin"), Some(APP));
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(headers.contains("x-customer-token"), "{headers}");
    let other = preflight("https://evil.example").await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );
}

#[tokio::test]
async fn browsers_reach_only_decide_outcomes_and_track() {
    let server = server().await;
    let token = token(&server, "cust-a");
    let profile: GrpcWebReply<proto::Profile> = grpc_web(
        server.addr,
        "/nudge.v1.Profiles/GetProfile",
        &[("origin", APP), ("x-customer-token", &token)],
        &proto::GetProfileRequest {
            customer_id: "cust-a".to_owned(),
        },
    )
    .await;
    assert_eq!(profile.code, Code::PermissionDenied);
    assert!(
        profile.message.contains("cannot be called from a browser"),
        "{}",
        profile.message
    );
    let stats: GrpcWebReply<proto::StatsResponse> = grpc_web(
        server.addr,
        "/nudge.v1.Admin/Stats",
        &[
            ("x-customer-token", &token),
            ("authorization", "Bearer admin-secret"),
        ],
        &proto::StatsRequest::default(),
    )
    .await;
    assert_eq!(stats.code, Code::PermissionDenied);
}

#[tokio::test]
async fn backends_over_grpc_need_no_customer_token() {
    let server = server().await;
    let response = server.decide(decide_request("cust-a", "home_banner")).await;
    assert!(!response.served.is_empty());
}

#[tokio::test]
async fn the_pages_listener_serves_the_client_and_guards_the_console() {
    let server = server().await;
    let web = server.web.expect("pages are on");
    let script = http(web, "GET", "/nudge.js", &[], b"").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/javascript"),
        "{script:?}"
    );
    // The client is told grpc-web is on the page's host, on the gRPC port.
    let grpc = format!("http://127.0.0.1:{}", server.addr.port());
    assert!(script.text().contains(&grpc), "no {grpc} in the client");
    assert!(!script.text().contains("__NUDGE_GRPC_WEB_URL__"));

    let page = http(web, "GET", "/console", &[], b"").await;
    assert_eq!(page.status, 200);
    let missing = http(web, "GET", "/console/stats", &[], b"").await;
    assert_eq!(missing.status, 401);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("admin token")
    );
    let wrong = http(
        web,
        "GET",
        "/console/stats",
        &[("authorization", "Bearer nope")],
        b"",
    )
    .await;
    assert_eq!(wrong.status, 403);

    server.decide(decide_request("cust-a", "home_banner")).await;
    let bearer = format!("Bearer {ADMIN}");
    let stats = http(
        web,
        "GET",
        "/console/stats",
        &[("authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(stats.status, 200, "{}", stats.text());
    let figures = stats.json();
    assert_eq!(figures["decisions"], 1);
    assert_eq!(figures["live_customers"], 1);
    assert!(figures["latency"]["count"].as_u64() >= Some(1), "{figures}");
    let history = figures["history"].as_array().expect("a history");
    assert_eq!(history.last().expect("a point")["decisions"], 1);
    assert!(
        figures["journeys"]
            .as_array()
            .is_some_and(|j| !j.is_empty())
    );

    // The test server runs the embedded demo: its page is there.
    let demo = http(web, "GET", "/demo", &[], b"").await;
    assert_eq!(demo.status, 200, "the test server runs the embedded demo");
}

#[tokio::test]
async fn the_demo_issues_tokens_for_its_people_only() {
    let server = server().await;
    let web = server.web.expect("pages are on");
    let personas = http(web, "GET", "/demo/personas", &[], b"").await.json();
    let first = &personas["personas"][0];
    let id = first["id"].as_str().expect("an id");
    assert_eq!(first["attributes"]["plan"], "trial");
    let issued = http(web, "GET", &format!("/demo/token?customer={id}"), &[], b"")
        .await
        .json();
    let token = issued["token"].as_str().expect("a token");
    let claims = CustomerTokens::new(KEY.as_bytes(), Span(3_600_000))
        .verify(token, server.clock.now())
        .expect("signed with the configured key");
    assert_eq!(claims.customer_id, id);
    let stranger = http(web, "GET", "/demo/token?customer=cust-a", &[], b"").await;
    assert_eq!(stranger.status, 404);
}

#[tokio::test]
async fn on_a_catalog_file_there_is_no_demo_and_no_demo_origin() {
    let server = TestServer::start_on(nudge_tests::demo_without_journeys(), |config| {
        config.web.customer_token_key = Some(Secret::new(KEY));
        config.web.listen = Some(Listen::On("127.0.0.1:0".parse().expect("an address")));
    })
    .await;
    let web = server.web.expect("pages are on");
    assert_eq!(http(web, "GET", "/demo", &[], b"").await.status, 404);
    assert_eq!(
        http(web, "GET", "/demo/personas", &[], b"").await.status,
        404
    );
    // The console is open without an admin token, as Admin calls are.
    assert_eq!(
        http(web, "GET", "/console/stats", &[], b"").await.status,
        200
    );
    // No origin is allowed by default, not even the pages' own.
    let token = token(&server, "cust-a");
    let origin = format!("http://{web}");
    let refused = decide_as(&server, &token, &origin, "cust-a").await;
    assert_eq!(refused.code, Code::PermissionDenied, "{}", refused.message);
}
