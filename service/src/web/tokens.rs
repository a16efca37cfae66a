//! Customer tokens: what a web page shows to prove which customer it acts
//! for. A token is a JWT (RFC 7519) signed with HS256, the form every
//! backend language has a library for: `sub` is the customer id, `exp` its
//! expiry (seconds since the epoch), `iat` and `nbf` optional. The
//! application's backend signs it with the key it shares with nudge
//! (`web.customer_token_key`); [`CustomerTokens::issue`] is the same thing
//! for `nudge token issue` and the demo.
//!
//! A token is refused when it is not a compact JWS of three base64url
//! parts, names another algorithm than HS256 (`none` included), has a bad
//! signature, lacks `sub` or `exp`, has expired, is not valid yet, or
//! expires further ahead than `web.max_token_lifetime_secs`, so that a
//! leaked token is worth little whatever a backend issued.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nudge_models::time::{Span, Timestamp};
use ring::hmac;
use serde::Deserialize;

/// How far the issuer's clock may run ahead of ours for `iat` and `nbf`.
const CLOCK_SKEW: Span = Span(60_000);

/// The longest token that is read at all: a JWT with a customer id of the
/// longest allowed size is far shorter.
const MAX_TOKEN_BYTES: usize = 4_096;

/// The signer and checker of customer tokens under one key.
#[derive(Clone)]
pub struct CustomerTokens {
    key: hmac::Key,
    max_lifetime: Span,
}

impl std::fmt::Debug for CustomerTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CustomerTokens")
            .field("key", &"<redacted>")
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerClaims {
    /// The customer the bearer may act for.
    pub customer_id: String,
    /// When the token stops being valid.
    pub expires_at: Timestamp,
}

/// Why a token was refused. The messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("the customer token is malformed: {0}")]
    Malformed(&'static str),
    /// Signed with another algorithm than HS256.
    #[error("the customer token is signed with '{0}'; nudge accepts HS256 only")]
    Algorithm(String),
    /// The signature does not match the key.
    #[error("the customer token's signature does not match the key")]
    Signature,
    /// A required claim is missing or has the wrong type.
    #[error("the customer token has no valid '{0}' claim")]
    Claim(&'static str),
    /// Past `exp`.
    #[error("the customer token expired at {expired_at}")]
    Expired {
        /// Its `exp`.
        expired_at: Timestamp,
    },
    /// Before `nbf` or `iat`.
    #[error("the customer token is not valid before {valid_from}")]
    NotYetValid {
        /// Its `nbf` (or `iat`).
        valid_from: Timestamp,
    },
    /// `exp` is further ahead than the longest lifetime allowed.
    #[error(
        "the customer token expires in {expires_in}, longer than web.max_token_lifetime_secs \
         allows ({max}): issue short-lived tokens"
    )]
    TooLongLived {
        /// Time left until its `exp`.
        expires_in: Span,
        /// The longest allowed.
        max: Span,
    },
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
}

impl CustomerTokens {
    /// Tokens under `key` (its bytes, as JWT libraries take a secret
    /// string), valid for at most `max_lifetime` ahead.
    pub fn new(key: &[u8], max_lifetime: Span) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            max_lifetime,
        }
    }

    /// The longest lifetime a token may have left.
    pub fn max_lifetime(&self) -> Span {
        self.max_lifetime
    }

    /// A token for `customer_id`, issued at `now`, valid for `lifetime`.
    pub fn issue(&self, customer_id: &str, now: Timestamp, lifetime: Span) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "sub": customer_id,
            "iat": now.0.div_euclid(1_000),
            "exp": now.plus(lifetime).0.div_euclid(1_000),
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of `token` if it is valid at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<CustomerClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("longer than 4 KiB"));
        }
        let mut parts = token.trim().split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "not three dot-separated parts (a compact JWT)",
            ));
        };
        let signed = &token.trim()[..header.len() + 1 + claims.len()];
        let header: Header = decode_json(header, "the header is not base64url JSON")?;
        match header.alg.as_deref() {
            Some("HS256") => {}
            Some(other) => return Err(TokenError::Algorithm(other.to_owned())),
            None => return Err(TokenError::Malformed("the header has no 'alg'")),
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
        // The signature covers the header and claims as sent.
        hmac::verify(&self.key, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        // Only a signed payload is interpreted.
        let claims: Claims = decode_json(claims, "the claims are not base64url JSON")?;
        let customer_id = match claims.sub {
            Some(serde_json::Value::String(sub)) if !sub.is_empty() => sub,
            _ => return Err(TokenError::Claim("sub")),
        };
        let expires_at = seconds(claims.exp.as_ref()).ok_or(TokenError::Claim("exp"))?;
        if now >= expires_at {
            return Err(TokenError::Expired {
                expired_at: expires_at,
            });
        }
        for (name, claim) in [("nbf", &claims.nbf), ("iat", &claims.iat)] {
            let Some(value) = claim else { continue };
            let valid_from = seconds(Some(value)).ok_or(TokenError::Claim(name))?;
            if valid_from > now.plus(CLOCK_SKEW) {
                return Err(TokenError::NotYetValid { valid_from });
            }
        }
        let expires_in = Span(expires_at.0 - now.0);
        if expires_in.0 > self.max_lifetime.0.saturating_add(CLOCK_SKEW.0) {
            return Err(TokenError::TooLongLived {
                expires_in,
                max: self.max_lifetime,
            });
        }
        Ok(CustomerClaims {
            customer_id,
            expires_at,
        })
    }
}

/// A base64url part decoded as JSON into `T`.
fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    malformed: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(malformed))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(malformed))
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) as a
/// timestamp.
fn seconds(value: Option<&serde_json::Value>) -> Option<Timestamp> {
    let seconds = value?.as_f64()?;
    if !seconds.is_finite() || seconds.abs() > 1e12 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    Some(Timestamp((seconds * 1_000.0).round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_795_435_200_000);

    fn tokens() -> CustomerTokens {
        CustomerTokens::new(b"0123456789abcdef0123456789abcdef", Span(3_600_000))
    }

    /// A token signed by hand, with any header and claims.
    fn signed(tokens: &CustomerTokens, header: &str, claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let tag = hmac::sign(&tokens.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    #[test]
    fn an_issued_token_names_its_customer_until_it_expires() {
        let tokens = tokens();
        let token = tokens.issue("cust-a", NOW, Span(900_000));
        let claims = tokens.verify(&token, NOW).expect("valid");
        assert_eq!(claims.customer_id, "cust-a");
        assert_eq!(claims.expires_at, NOW.plus(Span(900_000)));
        assert!(tokens.verify(&token, NOW.plus(Span(899_000))).is_ok());
        assert_eq!(
            tokens.verify(&token, NOW.plus(Span(900_000))),
            Err(TokenError::Expired {
                expired_at: NOW.plus(Span(900_000))
            })
        );
    }

    #[test]
    fn a_token_of_another_key_or_altered_is_refused() {
        let token = tokens().issue("cust-a", NOW, Span(900_000));
        let other = CustomerTokens::new(b"another key of thirty-two bytes!", Span(3_600_000));
        assert_eq!(other.verify(&token, NOW), Err(TokenError::Signature));
        // The claims swapped for another customer's, the signature kept.
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"cust-b","exp":1795436100}"#);
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_claims;
        assert_eq!(
            tokens().verify(&parts.join("."), NOW),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let tokens = tokens();
        let claims = r#"{"sub":"cust-a","exp":1795436100}"#;
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        assert_eq!(
            tokens.verify(&none, NOW),
            Err(TokenError::Algorithm("none".to_owned()))
        );
        let hs512 = signed(&tokens, r#"{"alg":"HS512"}"#, claims);
        assert_eq!(
            tokens.verify(&hs512, NOW),
            Err(TokenError::Algorithm("HS512".to_owned()))
        );
        let ok = signed(&tokens, r#"{"alg":"HS256","typ":"JWT"}"#, claims);
        assert!(tokens.verify(&ok, NOW).is_ok());
    }

    #[test]
    fn claims_are_required_and_typed() {
        let tokens = tokens();
        let header = r#"{"alg":"HS256"}"#;
        for (claims, expected) in [
            (r#"{"exp":1795436100}"#, TokenError::Claim("sub")),
            (r#"{"sub":"","exp":1795436100}"#, TokenError::Claim("sub")),
            (r#"{"sub":7,"exp":1795436100}"#, TokenError::Claim("sub")),
            (r#"{"sub":"a"}"#, TokenError::Claim("exp")),
            (r#"{"sub":"a","exp":"soon"}"#, TokenError::Claim("exp")),
            (
                r#"{"sub":"a","exp":1795436100,"nbf":1795435500}"#,
                TokenError::NotYetValid {
                    valid_from: Timestamp(1_795_435_500_000),
                },
            ),
        ] {
            assert_eq!(
                tokens.verify(&signed(&tokens, header, claims), NOW),
                Err(expected),
                "{claims}"
            );
        }
        // Issued a little in the future by a clock slightly ahead: fine.
        let skewed = signed(
            &tokens,
            header,
            r#"{"sub":"a","exp":1795436100,"iat":1795435230}"#,
        );
        assert!(tokens.verify(&skewed, NOW).is_ok());
    }

    #[test]
    fn a_long_lived_token_is_refused() {
        let tokens = tokens();
        let token = tokens.issue("cust-a", NOW, Span(7 * 86_400_000));
        let error = tokens.verify(&token, NOW).expect_err("a week is too long");
        assert!(matches!(error, TokenError::TooLongLived { .. }), "{error}");
        assert!(error.to_string().contains("short-lived"), "{error}");
    }

    #[test]
    fn malformed_tokens_say_why_without_echoing_them() {
        let tokens = tokens();
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.??.**", &"x".repeat(5_000)] {
            let error = tokens.verify(token, NOW).expect_err("malformed");
            assert!(
                matches!(error, TokenError::Malformed(_)),
                "{token}: {error}"
            );
            if token.len() > 3 {
                assert!(!error.to_string().contains(token), "{error}");
            }
        }
    }

    #[test]
    fn the_debug_form_hides_the_key() {
        let text = format!("{:?}", tokens());
        assert!(!text.contains("0123456789"), "{text}");
    }
}
