//! JWT reading without verification, and redaction.
//!
//! Decisions:
//! - The client never verifies a token (it has no key); it only reads `exp`
//!   to schedule refreshes. The server reads `iss` the same way to find which
//!   company's key verifies the token, then verifies it properly.
//! - A token is never logged: [`redact`] is what goes in a log line.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;

/// Claims read from a JWT payload, unverified. Fields are optional so that a
/// token missing one still yields a precise error where it matters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UnverifiedClaims {
    /// Issuer: the company API key.
    #[serde(default)]
    pub iss: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Issued-at, seconds since the epoch.
    #[serde(default)]
    pub iat: Option<i64>,
    /// The agent.
    #[serde(default)]
    pub agent_uuid: Option<String>,
    /// The opaque user id.
    #[serde(default)]
    pub source_key: Option<String>,
}

/// Why a string is not a readable JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not three dot-separated parts.
    NotAJwt,
    /// The payload is not base64url.
    BadEncoding,
    /// The payload is not a JSON object of claims.
    BadClaims(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NotAJwt => f.write_str("not a JWT (expected three dot-separated parts)"),
            TokenError::BadEncoding => f.write_str("JWT payload is not base64url"),
            TokenError::BadClaims(e) => write!(f, "JWT payload is not a claims object: {e}"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Reads a JWT's claims without verifying its signature.
pub fn read_claims(jwt: &str) -> Result<UnverifiedClaims, TokenError> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::NotAJwt);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| TokenError::BadEncoding)?;
    serde_json::from_slice(&bytes).map_err(|e| TokenError::BadClaims(e.to_string()))
}

/// What a log line shows of a token: its length and nothing of its content.
pub fn redact(token: &str) -> String {
    format!("<redacted jwt, {} chars>", token.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn reads_claims() {
        let c = read_claims(&jwt(r#"{"iss":"k","exp":100,"source_key":"u1","extra":[1]}"#)).unwrap();
        assert_eq!(c.iss.as_deref(), Some("k"));
        assert_eq!(c.exp, Some(100));
        assert_eq!(c.source_key.as_deref(), Some("u1"));
    }

    #[test]
    fn rejects_junk() {
        assert_eq!(read_claims("abc"), Err(TokenError::NotAJwt));
        assert_eq!(read_claims("a.b.c.d"), Err(TokenError::NotAJwt));
        assert_eq!(read_claims("a.!!!.c"), Err(TokenError::BadEncoding));
        assert!(matches!(read_claims(&jwt("[1,2]")), Err(TokenError::BadClaims(_))));
    }

    #[test]
    fn redaction_hides_content() {
        let t = jwt(r#"{"iss":"secret-company"}"#);
        assert!(!redact(&t).contains("eyJ"));
    }
}
