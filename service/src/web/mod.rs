//! Browsers: web pages calling nudge over grpc-web, and the pages nudge
//! serves itself.
//!
//! - [`BrowserAccess`] is who may call from a page: grpc-web calls reach
//!   only [`BROWSER_METHODS`] (Decide, ReportOutcome, Track), from an origin
//!   in `web.allowed_origins`, with a customer token ([`tokens`]) in the
//!   [`TOKEN_HEADER`]. The gRPC layer `grpc::browser` applies it to every
//!   call before tonic-web translates it, and puts the token's
//!   [`TokenCustomer`] into the request, so the handlers check that the
//!   request's `customer_id` is the token's ([`check_customer`]): a page
//!   can neither read nor change another customer's decisions.
//! - [`pages`] is the HTTP listener of `/nudge.js` (the placement client),
//!   `/demo` (a mock app on the embedded demo) and `/console` (the live
//!   console, with [`console`]'s figures), off by default in production.

pub mod console;
pub mod demo;
pub mod pages;
pub mod tokens;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use std::sync::Arc;
use tokens::{CustomerTokens, TokenError};
use tonic::codegen::http::{HeaderMap, header};

/// The calls a web page may make over grpc-web.
pub const BROWSER_METHODS: [&str; 3] = [
    "/nudge.v1.Decisions/Decide",
    "/nudge.v1.Decisions/ReportOutcome",
    "/nudge.v1.Events/Track",
];

/// The request header (gRPC metadata) of a customer token.
pub const TOKEN_HEADER: &str = "x-customer-token";

/// The customer a call's valid customer token names: in the request's
/// extensions when the call carried one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCustomer(pub String);

/// Why a browser call (or a call with a customer token) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrowserError {
    /// The page's origin is not in `web.allowed_origins`.
    #[error("origin '{0}' is not allowed to call nudge (web.allowed_origins)")]
    OriginNotAllowed(String),
    /// grpc-web reaches only [`BROWSER_METHODS`].
    #[error("{0} cannot be called from a browser: only Decide, ReportOutcome and Track can")]
    NotForBrowsers(String),
    /// A grpc-web call without a customer token.
    #[error("a browser call needs a customer token in the {TOKEN_HEADER} header")]
    NoToken,
    /// A customer token reached a server without a key.
    #[error("this server accepts no customer tokens: web.customer_token_key is not set")]
    NoKey,
    /// The customer token is not valid.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token is another customer's.
    #[error("the customer token is for customer '{token}', not for '{requested}'")]
    WrongCustomer {
        /// The token's customer.
        token: String,
        /// The customer the request is about.
        requested: String,
    },
}

impl BrowserError {
    /// Whether the caller failed to show who it is (UNAUTHENTICATED) rather
    /// than showing who it is and asking for what it may not (PERMISSION_DENIED).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            BrowserError::NoToken | BrowserError::NoKey | BrowserError::Token(_)
        )
    }
}

/// What browser calls must show, checked on every call to the gRPC port.
#[derive(Debug, Clone)]
pub struct BrowserAccess {
    /// The origins allowed, exactly as browsers send them.
    origins: Arc<[String]>,
    /// The key of customer tokens; `None`: tokens are refused.
    tokens: Option<CustomerTokens>,
    /// Token expiry is read on the service clock.
    clock: Arc<dyn Clock>,
}

impl BrowserAccess {
    /// Access as configured: `web.allowed_origins` plus `extra_origins`
    /// (the pages listener's own on the demo), the token key `key`.
    pub fn new(
        origins: Vec<String>,
        tokens: Option<CustomerTokens>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            origins: origins.into(),
            tokens,
            clock,
        }
    }

    /// Access from `config` alone (no demo additions), on `clock`.
    pub fn from_config(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let tokens = config.web.token_key()?.map(|key| {
            CustomerTokens::new(
                key.expose().as_bytes(),
                crate::server::seconds(config.web.max_token_lifetime_secs),
            )
        });
        Ok(Self::new(config.web.allowed_origins.clone(), tokens, clock))
    }

    /// The allowed origins.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether `origin` may call.
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        self.origins
            .iter()
            .any(|allowed| allowed.as_bytes() == origin)
    }

    /// The token signer and checker, when a key is configured.
    pub fn tokens(&self) -> Option<&CustomerTokens> {
        self.tokens.as_ref()
    }

    /// Lets the call at `path` with `headers` through, with the customer its
    /// token names if it has one, or says why not. A call is a browser's
    /// when it is grpc-web or carries an `origin` header: it must come from
    /// an allowed origin, call one of [`BROWSER_METHODS`] and carry a valid
    /// customer token. Other calls (backends over gRPC) pass unchanged, but
    /// a customer token they carry is checked too.
    pub fn check(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<TokenCustomer>, BrowserError> {
        let origin = headers.get(header::ORIGIN);
        let browser = origin.is_some() || is_grpc_web(headers);
        if let Some(origin) = origin
            && !self.allows_origin(origin.as_bytes())
        {
            return Err(BrowserError::OriginNotAllowed(
                String::from_utf8_lossy(origin.as_bytes()).into_owned(),
            ));
        }
        if browser && !BROWSER_METHODS.contains(&path) {
            return Err(BrowserError::NotForBrowsers(path.to_owned()));
        }
        let Some(token) = headers.get(TOKEN_HEADER) else {
            return if browser {
                Err(BrowserError::NoToken)
            } else {
                Ok(None)
            };
        };
        let tokens = self.tokens.as_ref().ok_or(BrowserError::NoKey)?;
        let token = token
            .to_str()
            .map_err(|_| TokenError::Malformed("not ASCII"))?;
        let claims = tokens.verify(token, self.clock.now())?;
        Ok(Some(TokenCustomer(claims.customer_id)))
    }
}

/// Whether the request is grpc-web (any of its content types).
pub fn is_grpc_web(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc-web"))
}

/// Refuses a call about `customer_id` whose customer token (`token`, from
/// the request's extensions, when the call carried one: every browser call
/// does) names someone else. Handlers call it first, before validating.
pub fn check_customer(
    token: Option<&TokenCustomer>,
    customer_id: &str,
) -> Result<(), BrowserError> {
    match token {
        Some(TokenCustomer(token)) if token != customer_id => Err(BrowserError::WrongCustomer {
            token: token.clone(),
            requested: customer_id.to_owned(),
        }),
        _ => Ok(()),
    }
}

impl From<BrowserError> for tonic::Status {
    fn from(error: BrowserError) -> Self {
        crate::error::ServiceError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use nudge_models::time::{Span, Timestamp};

    const NOW: Timestamp = Timestamp(1_795_435_200_000);
    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn access(tokens: bool) -> BrowserAccess {
        BrowserAccess::new(
            vec!["https://app.example.com".to_owned()],
            tokens.then(|| CustomerTokens::new(KEY, Span(3_600_000))),
            Arc::new(ManualClock::new(NOW)),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().expect("a header value"));
        }
        headers
    }

    fn token(customer: &str) -> String {
        CustomerTokens::new(KEY, Span(3_600_000)).issue(customer, NOW, Span(600_000))
    }

    const DECIDE: &str = "/nudge.v1.Decisions/Decide";
    const WEB: (&str, &str) = ("content-type", "application/grpc-web+proto");
    const APP: (&str, &str) = ("origin", "https://app.example.com");

    #[test]
    fn a_browser_call_needs_an_allowed_origin_a_browser_method_and_a_token() {
        let access = access(true);
        let token = token("cust-a");
        let ok = access.check(DECIDE, &headers(&[WEB, APP, (TOKEN_HEADER, &token)]));
        assert_eq!(ok, Ok(Some(TokenCustomer("cust-a".to_owned()))));
        assert_eq!(
            access.check(
                DECIDE,
                &headers(&[
                    WEB,
                    ("origin", "https://evil.example"),
                    (TOKEN_HEADER, &token)
                ])
            ),
            Err(BrowserError::OriginNotAllowed(
                "https://evil.example".to_owned()
            ))
        );
        assert_eq!(
            access.check(
                "/nudge.v1.Profiles/GetProfile",
                &headers(&[WEB, APP, (TOKEN_HEADER, &token)])
            ),
            Err(BrowserError::NotForBrowsers(
                "/nudge.v1.Profiles/GetProfile".to_owned()
            ))
        );
        let missing = access.check(DECIDE, &headers(&[WEB, APP]));
        assert_eq!(missing, Err(BrowserError::NoToken));
        assert!(missing.expect_err("no token").is_unauthenticated());
        let bad = access
            .check(DECIDE, &headers(&[WEB, APP, (TOKEN_HEADER, "a.b.c")]))
            .expect_err("malformed");
        assert!(bad.is_unauthenticated(), "{bad}");
    }

    #[test]
    fn grpc_web_without_an_origin_is_still_a_browser_call() {
        let access = access(true);
        assert_eq!(
            access.check(DECIDE, &headers(&[WEB])),
            Err(BrowserError::NoToken)
        );
        assert_eq!(
            access.check("/nudge.v1.Admin/Stats", &headers(&[WEB])),
            Err(BrowserError::NotForBrowsers(
                "/nudge.v1.Admin/Stats".to_owned()
            ))
        );
    }

    #[test]
    fn backend_calls_pass_but_a_token_they_carry_is_checked() {
        let access = access(true);
        assert_eq!(
            access.check("/nudge.v1.Admin/Stats", &headers(&[])),
            Ok(None)
        );
        let token = token("cust-a");
        assert_eq!(
            access.check(DECIDE, &headers(&[(TOKEN_HEADER, &token)])),
            Ok(Some(TokenCustomer("cust-a".to_owned())))
        );
        assert!(
            access
                .check(DECIDE, &headers(&[(TOKEN_HEADER, "x.y.z")]))
                .is_err()
        );
    }

    #[test]
    fn without_a_key_tokens_are_refused() {
        let token = token("cust-a");
        assert_eq!(
            access(false).check(DECIDE, &headers(&[WEB, APP, (TOKEN_HEADER, &token)])),
            Err(BrowserError::NoKey)
        );
    }

    #[test]
    fn the_token_must_be_the_requests_customer() {
        assert_eq!(check_customer(None, "anyone"), Ok(()));
        let token = TokenCustomer("cust-a".to_owned());
        assert_eq!(check_customer(Some(&token), "cust-a"), Ok(()));
        let error = check_customer(Some(&token), "cust-b").expect_err("another customer");
        assert!(!error.is_unauthenticated());
        assert_eq!(
            error.to_string(),
            "the customer token is for customer 'cust-a', not for 'cust-b'"
        );
    }
}
