//! `nudge token issue`: a customer token for development and scripts, signed
//! with the key of the configuration (`web.customer_token_key`, from the
//! file, `NUDGE_WEB_CUSTOMER_TOKEN_KEY` or `--set`), exactly as an
//! application's backend signs one for its signed-in user.

use crate::config::{Config, environment};
use crate::web::tokens::CustomerTokens;
use anyhow::Context as _;
use nudge_models::time::{Span, Timestamp};
use std::path::PathBuf;

/// `nudge token issue`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The customer the token is for (its `sub`).
    #[arg(long)]
    pub customer: String,
    /// How long it is valid, e.g. `15m` or `1h` (at most
    /// `web.max_token_lifetime_secs`).
    #[arg(long, default_value = "15m", value_parser = Span::parse)]
    pub ttl: Span,
    /// Configuration file with the `[web]` key.
    #[arg(long, env = "NUDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Any setting by its key, e.g. `--set web.customer_token_key_file=key.txt`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = super::parse::key_value)]
    pub set: Vec<(String, String)>,
}

/// The token `args` ask for, issued at `now`.
pub fn issue(args: &IssueArgs, now: Timestamp) -> anyhow::Result<String> {
    let config = Config::load(args.config.as_deref(), environment()?, &args.set)?;
    config.web.validate()?;
    let key = config.web.token_key()?.context(
        "no customer token key: set web.customer_token_key (or customer_token_key_file) in the \
         configuration file, or NUDGE_WEB_CUSTOMER_TOKEN_KEY",
    )?;
    let customer = args.customer.trim();
    anyhow::ensure!(!customer.is_empty(), "--customer must not be empty");
    let max_id = config.limits.max_id_bytes;
    anyhow::ensure!(
        customer.len() <= max_id,
        "--customer is {} bytes; customer ids are at most {max_id} (limits.max_id_bytes)",
        customer.len()
    );
    let max = crate::server::seconds(config.web.max_token_lifetime_secs);
    anyhow::ensure!(
        args.ttl.0 > 0 && args.ttl <= max,
        "--ttl {} must be positive and at most {max} (web.max_token_lifetime_secs)",
        args.ttl
    );
    let tokens = CustomerTokens::new(key.expose().as_bytes(), max);
    Ok(tokens.issue(customer, now, args.ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(customer: &str, ttl: &str, key: &str) -> IssueArgs {
        IssueArgs {
            customer: customer.to_owned(),
            ttl: Span::parse(ttl).expect("a span"),
            config: None,
            set: vec![("web.customer_token_key".to_owned(), key.to_owned())],
        }
    }

    const KEY: &str = "a-development-key-of-32-bytes-at-least";
    const NOW: Timestamp = Timestamp(1_795_435_200_000);

    #[test]
    fn the_token_verifies_under_the_same_key() {
        let token = issue(&args("cust-a", "15m", KEY), NOW).expect("issued");
        let claims = CustomerTokens::new(KEY.as_bytes(), Span(3_600_000))
            .verify(&token, NOW)
            .expect("valid");
        assert_eq!(claims.customer_id, "cust-a");
        assert_eq!(claims.expires_at, NOW.plus(Span(900_000)));
    }

    #[test]
    fn bad_requests_say_what_to_fix() {
        let error = issue(&args("cust-a", "15m", "short"), NOW).expect_err("short key");
        assert!(format!("{error:#}").contains("at least 32"), "{error:#}");
        let error = issue(&args("  ", "15m", KEY), NOW).expect_err("no customer");
        assert!(error.to_string().contains("--customer"), "{error}");
        let error = issue(&args("cust-a", "30d", KEY), NOW).expect_err("too long");
        assert!(error.to_string().contains("max_token_lifetime"), "{error}");
        let no_key = IssueArgs {
            set: Vec::new(),
            ..args("cust-a", "15m", KEY)
        };
        // The test environment may carry NUDGE_* variables; only a missing key is asserted.
        if std::env::var_os("NUDGE_WEB_CUSTOMER_TOKEN_KEY").is_none() {
            let error = issue(&no_key, NOW).expect_err("no key");
            assert!(
                error.to_string().contains("no customer token key"),
                "{error}"
            );
        }
    }
}
