//! The pages listener (`web.listen`): plain HTTP/1.1 for browsers, beside
//! the gRPC port.
//!
//! | path | what |
//! |---|---|
//! | `/nudge.js` | the placement client, told where grpc-web is |
//! | `/demo` | the mock app (embedded demo only) |
//! | `/demo/personas`, `/demo/token?customer=ID` | its people and their customer tokens |
//! | `/console` | the live console (a static page) |
//! | `/console/stats` | its figures ([`super::console::figures`]), behind the admin token |
//!
//! The pages are compiled in (`service/web/`), so the binary serves them
//! with nothing else installed and no outside address is ever loaded.

use super::console::{self, History};
use super::demo;
use super::tokens::CustomerTokens;
use crate::config::Secret;
use crate::engine::Engine;
use crate::grpc::auth::{bearer_token, constant_time_eq};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The placement client; `__NUDGE_GRPC_WEB_URL__` is replaced when served.
const NUDGE_JS: &str = include_str!("../../web/nudge.js");
/// The mock app.
const DEMO_HTML: &str = include_str!("../../web/demo.html");
/// The console.
const CONSOLE_HTML: &str = include_str!("../../web/console.html");
/// What `/nudge.js` says in place of the grpc-web address.
const GRPC_WEB_PLACEHOLDER: &str = "__NUDGE_GRPC_WEB_URL__";

/// Where pages find grpc-web.
#[derive(Debug, Clone)]
pub enum GrpcWebUrl {
    /// A fixed address (`web.grpc_web_url`).
    Fixed(String),
    /// The host the page came from, on the gRPC port.
    SameHost {
        /// `http` or `https` (TLS on the gRPC port).
        scheme: &'static str,
        /// The gRPC port.
        port: u16,
    },
}

/// Who may read `/console/stats`.
#[derive(Debug, Clone)]
pub enum ConsoleAccess {
    /// No admin token configured: anyone who reaches the listener, as for
    /// the gRPC Admin calls.
    Open,
    /// `Authorization: Bearer <auth.token>`.
    Token(Secret),
    /// Admin calls need client certificates, which this listener cannot
    /// check: the console needs `auth.token`.
    Refused,
}

/// What the pages listener serves from.
#[derive(Debug)]
pub struct Pages {
    /// The running service.
    pub engine: Arc<Engine>,
    /// The console's history.
    pub history: Arc<History>,
    /// Whether the embedded demo runs (`/demo` is served).
    pub demo: bool,
    /// Issues the demo personas' tokens.
    pub tokens: Option<CustomerTokens>,
    /// Who may read the console's figures.
    pub console: ConsoleAccess,
    /// Where pages find grpc-web.
    pub grpc_web: GrpcWebUrl,
}

/// Serves `pages` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    pages: Pages,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(Arc::new(pages)))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes.
pub fn router(pages: Arc<Pages>) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/nudge.js", get(nudge_js))
        .route("/demo", get(demo_page))
        .route("/demo/personas", get(demo_personas))
        .route("/demo/token", get(demo_token))
        .route("/console", get(console_page))
        .route("/console/stats", get(console_stats))
        .with_state(pages)
}

type Shared = State<Arc<Pages>>;

/// `/`: the demo on the demo, the console otherwise.
async fn index(State(pages): Shared) -> Redirect {
    Redirect::temporary(if pages.demo { "/demo" } else { "/console" })
}

async fn nudge_js(State(pages): Shared, headers: HeaderMap) -> Response {
    let url = match &pages.grpc_web {
        GrpcWebUrl::Fixed(url) => url.trim_end_matches('/').to_owned(),
        GrpcWebUrl::SameHost { scheme, port } => {
            let host = headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .and_then(host_name)
                .unwrap_or("127.0.0.1");
            format!("{scheme}://{host}:{port}")
        }
    };
    let body = NUDGE_JS.replace(GRPC_WEB_PLACEHOLDER, &url);
    let mut response = asset("text/javascript; charset=utf-8", body);
    // An app's page on its own origin imports the module cross-origin,
    // which browsers fetch in CORS mode: the script is public.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// The host of a `Host` header without its port, if it is a plain name or
/// address (it goes into a script: anything else is ignored).
fn host_name(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    plain.then_some(name)
}

async fn demo_page(State(pages): Shared) -> Response {
    if !pages.demo {
        return not_on_demo();
    }
    asset("text/html; charset=utf-8", DEMO_HTML.to_owned())
}

async fn demo_personas(State(pages): Shared) -> Response {
    if !pages.demo {
        return not_on_demo();
    }
    Json(demo::personas(pages.engine.shared().clock.now())).into_response()
}

/// `?customer=ID` of `/demo/token`.
#[derive(Debug, serde::Deserialize)]
struct TokenQuery {
    customer: String,
}

async fn demo_token(State(pages): Shared, Query(query): Query<TokenQuery>) -> Response {
    if !pages.demo {
        return not_on_demo();
    }
    let Some(persona) = demo::persona(&query.customer) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "'{}' is not one of the demo's people (see /demo/personas)",
                query.customer
            ),
        );
    };
    let Some(tokens) = &pages.tokens else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server issues no customer tokens".to_owned(),
        );
    };
    let now = pages.engine.shared().clock.now();
    let token = tokens.issue(persona.id, now, demo::TOKEN_LIFETIME);
    let mut response = Json(json!({
        "customer_id": persona.id,
        "token": token,
        "expires_at_ms": now.plus(demo::TOKEN_LIFETIME).0,
        "expires_in_ms": demo::TOKEN_LIFETIME.0,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn console_page() -> Response {
    asset("text/html; charset=utf-8", CONSOLE_HTML.to_owned())
}

async fn console_stats(State(pages): Shared, headers: HeaderMap) -> Response {
    match &pages.console {
        ConsoleAccess::Open => {}
        ConsoleAccess::Refused => {
            return error(
                StatusCode::FORBIDDEN,
                "admin calls need client certificates here; set auth.token to use the console"
                    .to_owned(),
            );
        }
        ConsoleAccess::Token(expected) => {
            match headers.get(header::AUTHORIZATION).and_then(bearer_token) {
                None => {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "the console needs the admin token (auth.token)".to_owned(),
                    );
                }
                Some(presented) if !constant_time_eq(expected.expose().as_bytes(), presented) => {
                    return error(
                        StatusCode::FORBIDDEN,
                        "that is not the admin token".to_owned(),
                    );
                }
                Some(_) => {}
            }
        }
    }
    let mut response = Json(console::figures(&pages.engine, &pages.history)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A compiled-in file.
fn asset(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn not_on_demo() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "the demo runs only on the embedded demo catalog (nudge serve without --catalog)"
            .to_owned(),
    )
}

/// A JSON error: `{"error": message}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_gives_a_plain_host_or_nothing() {
        assert_eq!(host_name("127.0.0.1:8080"), Some("127.0.0.1"));
        assert_eq!(host_name("app.example.com"), Some("app.example.com"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("evil\";alert(1);//"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn the_client_has_the_placeholder_the_server_replaces() {
        assert!(NUDGE_JS.contains(GRPC_WEB_PLACEHOLDER));
    }
}
