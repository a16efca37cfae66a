//! `[web]`: what browsers may do. grpc-web is served on the gRPC port for
//! the calls a page makes (see [`crate::grpc::browser`]); these settings say
//! which origins may make them, how their customer tokens are checked, and
//! where the pages listener (`/nudge.js`, `/demo`, `/console`) runs.

use super::validate::read_secret;
use super::{ConfigError, Listen, Secret};
use serde::Deserialize;
use std::path::PathBuf;

/// Browser callers and the pages listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The pages listener: an address or `off`. Unset, it is on at
    /// 127.0.0.1:8080 on the embedded demo and off with a catalog file.
    pub listen: Option<Listen>,
    /// Origins (`scheme://host[:port]`) whose pages may call nudge over
    /// grpc-web. None by default; the pages listener's own origin is added
    /// on the embedded demo, so that `/demo` works.
    pub allowed_origins: Vec<String>,
    /// The HMAC-SHA256 key (at least 32 bytes) the application's backend
    /// signs customer tokens with. Unset: browsers cannot call (on the
    /// embedded demo a random key is drawn at start, so `/demo` works).
    pub customer_token_key: Option<Secret>,
    /// A file whose content (surrounding whitespace trimmed) is that key.
    pub customer_token_key_file: Option<PathBuf>,
    /// The longest a customer token may still be valid when it is used,
    /// in seconds: a token whose expiry is further away is refused, so
    /// tokens stay short-lived whatever a backend issues.
    pub max_token_lifetime_secs: u64,
    /// The grpc-web address pages use, as `/nudge.js` tells them (e.g.
    /// `https://nudge.example.com` behind a proxy). Unset: the host the
    /// page was loaded from, on the gRPC port.
    pub grpc_web_url: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: None,
            allowed_origins: Vec::new(),
            customer_token_key: None,
            customer_token_key_file: None,
            max_token_lifetime_secs: 86_400,
            grpc_web_url: None,
        }
    }
}

/// The pages listener's default on the embedded demo.
pub const DEMO_PAGES: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));

/// The shortest customer token key: HS256 keys shorter than the hash are
/// weak (RFC 7518 §3.2).
pub const MIN_TOKEN_KEY_BYTES: usize = 32;

impl WebConfig {
    /// The customer token key from `web.customer_token_key` or
    /// `web.customer_token_key_file` (read now), checked.
    pub fn token_key(&self) -> Result<Option<Secret>, ConfigError> {
        let (field, key) = match (&self.customer_token_key, &self.customer_token_key_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "web.customer_token_key_file",
                    reason: "set either web.customer_token_key or web.customer_token_key_file, \
                             not both"
                        .to_owned(),
                });
            }
            (Some(key), None) => ("web.customer_token_key", key.clone()),
            (None, Some(path)) => (
                "web.customer_token_key_file",
                read_secret("web.customer_token_key_file", path)?,
            ),
        };
        // Never echo the key itself.
        let length = key.expose().len();
        if length < MIN_TOKEN_KEY_BYTES {
            return Err(ConfigError::Invalid {
                field,
                reason: format!(
                    "the key has {length} bytes; an HS256 key needs at least {MIN_TOKEN_KEY_BYTES}"
                ),
            });
        }
        Ok(Some(key))
    }

    /// Where the pages listener listens, and whether that was configured
    /// (rather than the demo's default); `demo`: the embedded demo runs.
    pub fn pages_address(&self, demo: bool) -> Option<(std::net::SocketAddr, bool)> {
        match self.listen {
            Some(Listen::On(address)) => Some((address, true)),
            Some(Listen::Off) => None,
            None => demo.then_some((DEMO_PAGES, false)),
        }
    }

    /// Checks the settings that need no file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            check_origin(origin).map_err(|reason| ConfigError::Invalid {
                field: "web.allowed_origins",
                reason,
            })?;
        }
        if !(60..=7 * 86_400).contains(&self.max_token_lifetime_secs) {
            return Err(ConfigError::Invalid {
                field: "web.max_token_lifetime_secs",
                reason: format!("{} must be 60..=604800", self.max_token_lifetime_secs),
            });
        }
        if let Some(url) = &self.grpc_web_url {
            check_origin(url.trim_end_matches('/')).map_err(|reason| ConfigError::Invalid {
                field: "web.grpc_web_url",
                reason,
            })?;
        }
        self.token_key()?;
        Ok(())
    }
}

/// Whether `origin` is an origin as browsers send it: `http` or `https`,
/// `://`, a host, an optional port, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("'{origin}' must start with http:// or https://"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    {
        return Err(format!(
            "'{origin}' is not an origin such as https://app.example.com (a scheme and a host, \
             no path)"
        ));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("'{origin}' has an invalid port '{port}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "https://app.example.com",
            "http://127.0.0.1:8080",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
            "https://",
            "http://host:99999",
            "*",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_short_key_is_refused_without_echoing_it() {
        let config = WebConfig {
            customer_token_key: Some(Secret::new("short-secret")),
            ..WebConfig::default()
        };
        let error = config.token_key().expect_err("too short").to_string();
        assert!(error.contains("at least 32"), "{error}");
        assert!(!error.contains("short-secret"), "{error}");
        let config = WebConfig {
            customer_token_key: Some(Secret::new("k".repeat(32))),
            ..WebConfig::default()
        };
        assert!(config.token_key().expect("long enough").is_some());
    }

    #[test]
    fn the_environment_sets_origins_and_turns_the_pages_off() {
        let config = crate::config::Config::load(
            None,
            [
                (
                    "NUDGE_WEB_ALLOWED_ORIGINS",
                    r#"["https://app.example.com"]"#,
                ),
                ("NUDGE_WEB_LISTEN", "off"),
            ],
            &[],
        )
        .expect("valid");
        assert_eq!(config.web.allowed_origins, ["https://app.example.com"]);
        assert_eq!(config.web.pages_address(true), None);
        let demo = WebConfig::default();
        assert_eq!(demo.pages_address(true), Some((DEMO_PAGES, false)));
        assert_eq!(demo.pages_address(false), None);
        let bad = WebConfig {
            allowed_origins: vec!["https://app.example.com/login".to_owned()],
            ..WebConfig::default()
        };
        let error = bad.validate().expect_err("a path is no origin").to_string();
        assert!(error.contains("web.allowed_origins"), "{error}");
    }

    #[test]
    fn the_token_lifetime_is_bounded() {
        let config = WebConfig {
            max_token_lifetime_secs: 10,
            ..WebConfig::default()
        };
        assert!(config.validate().is_err());
        assert!(WebConfig::default().validate().is_ok());
    }
}
