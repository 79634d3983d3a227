//! Authentication: the HS256 JWT in `Authorization: Bearer`, and the origin
//! check that goes with it.
//!
//! Decisions:
//! - The issuer (`iss`, the company API key) is read unverified only to pick
//!   the company whose secret then verifies the token; nothing else is
//!   trusted before verification.
//! - 401 means "a fresh token may fix this" (missing, malformed, bad
//!   signature, expired, wrong audience, unknown company); 403 means "this
//!   token is valid but not allowed" (agent not of the company, email-shaped
//!   `source_key`, origin not allowed). Clients refresh on 401, stop on 403.
//! - The appuser is (company, `source_key`) from the claims, never from the
//!   body or the query. A `source_key` with leading or trailing white space
//!   or a control character is refused, and one shaped like an email
//!   address (trailing dot included) too.
//! - Time claims: `exp` is checked exactly; `nbf` and `iat` may be at most
//!   [`CLOCK_LEEWAY_SECS`] in the future, and a token may live at most the
//!   contract's 15 minutes (`exp - iat`) plus that leeway.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

/// The claims of a Valet SDK token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Company API key.
    pub iss: String,
    /// Always `"valet-sdk"`.
    pub aud: String,
    /// Company API key (again, as the contract has it).
    pub company_api_key: String,
    /// The agent.
    pub agent_uuid: String,
    /// Opaque user id.
    pub source_key: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expiry (seconds).
    pub exp: i64,
    /// Token id (optional): makes tokens minted in the same second differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Not before (seconds, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// The audience every token must carry.
pub const AUDIENCE: &str = "valet-sdk";
/// How far in the future `nbf` and `iat` may be (clock skew between the
/// customer's backend and us), and how much `exp - iat` may exceed
/// [`MAX_TOKEN_LIFETIME_SECS`].
pub const CLOCK_LEEWAY_SECS: i64 = 30;
/// The contract's token lifetime: 15 minutes.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 900;

/// Who is calling, established from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The company's API key.
    pub company: String,
    /// The agent.
    pub agent_id: String,
    /// The appuser's opaque id.
    pub source_key: String,
    /// The token's expiry (seconds since the epoch).
    pub exp: i64,
}

impl Principal {
    /// A key identifying the appuser across companies.
    pub fn appuser_key(&self) -> (String, String) {
        (self.company.clone(), self.source_key.clone())
    }
}

/// Signs a token (what a customer backend does; `/dev/jwt` uses it).
pub fn mint(secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("HS256 encoding does not fail")
}

/// Whether a `source_key` looks like an email address (rejected: the
/// contract wants an opaque id, not personal data).
pub fn is_email_shaped(s: &str) -> bool {
    // `a@b.com.` is the same address as `a@b.com` (a fully qualified domain).
    let s = s.trim().trim_end_matches('.');
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains(char::is_whitespace)
}

/// Verifies a bearer token against the configured companies.
pub fn verify(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let unverified = valet_core::token::read_claims(token)
        .map_err(|e| ApiError::unauthorized("invalid_token", format!("malformed token: {e}")))?;
    let iss = unverified.iss.ok_or_else(|| ApiError::unauthorized("invalid_token", "token has no `iss` claim"))?;
    let company = state
        .config
        .company(&iss)
        .ok_or_else(|| ApiError::unauthorized("unknown_company", "the token's issuer is not a known company"))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[company.api_key.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(company.secret.as_bytes()), &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => ApiError::unauthorized("bad_signature", "token signature is invalid"),
            ErrorKind::ExpiredSignature => ApiError::unauthorized("token_expired", "token has expired"),
            ErrorKind::InvalidAudience => ApiError::unauthorized("wrong_audience", "token audience must be \"valet-sdk\""),
            ErrorKind::InvalidAlgorithm => ApiError::unauthorized("invalid_token", "token must be signed with HS256"),
            _ => ApiError::unauthorized("invalid_token", format!("token rejected: {e}")),
        })?;
    let claims = data.claims;
    let now = chrono::Utc::now().timestamp();
    if claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_LEEWAY_SECS) {
        return Err(ApiError::unauthorized("token_not_yet_valid", "the token's `nbf` is in the future"));
    }
    if claims.iat > now + CLOCK_LEEWAY_SECS {
        return Err(ApiError::unauthorized("invalid_token", "the token's `iat` is in the future"));
    }
    if claims.exp - claims.iat > MAX_TOKEN_LIFETIME_SECS + CLOCK_LEEWAY_SECS {
        return Err(ApiError::unauthorized("invalid_token", "tokens may live at most 15 minutes (`exp - iat`)"));
    }
    if claims.company_api_key != company.api_key {
        return Err(ApiError::unauthorized("invalid_token", "`company_api_key` does not match `iss`"));
    }
    if !company.agents.iter().any(|a| a == &claims.agent_uuid) {
        return Err(ApiError::forbidden("unknown_agent", "the agent does not belong to the token's company"));
    }
    if claims.source_key.trim().is_empty() || claims.source_key.len() > 255 {
        return Err(ApiError::forbidden("invalid_source_key", "`source_key` must be 1 to 255 bytes"));
    }
    if claims.source_key.trim() != claims.source_key || claims.source_key.chars().any(char::is_control) {
        return Err(ApiError::forbidden(
            "invalid_source_key",
            "`source_key` must not start or end with white space or contain control characters",
        ));
    }
    if is_email_shaped(&claims.source_key) {
        return Err(ApiError::forbidden(
            "invalid_source_key",
            "`source_key` must be an opaque id, not an email address",
        ));
    }
    Ok(Principal { company: company.api_key.clone(), agent_id: claims.agent_uuid, source_key: claims.source_key, exp: claims.exp })
}

/// Refuses a request whose `Origin` is not on the principal's company list
/// (requests without `Origin`, from servers and tools, pass).
pub fn check_origin(state: &AppState, principal: &Principal, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
    let allowed = origin
        .to_str()
        .ok()
        .and_then(|o| state.config.company(&principal.company).map(|c| c.allows_origin(o)))
        .unwrap_or(false);
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden("origin_not_allowed", "this origin is not allowed for the company"))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing_token", "missing `Authorization: Bearer <jwt>` header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing_token", "the Authorization header must be `Bearer <jwt>`"))?;
        let principal = verify(state, token)?;
        check_origin(state, &principal, &parts.headers)?;
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::is_email_shaped;

    #[test]
    fn email_shapes() {
        assert!(is_email_shaped("a@b.co"));
        assert!(is_email_shaped("first.last+tag@example.org"));
        assert!(!is_email_shaped("user-123"));
        assert!(!is_email_shaped("a@b"));
        assert!(!is_email_shaped("@b.co"));
        assert!(!is_email_shaped("a@b@c.co"));
        assert!(!is_email_shaped("usr_9f@"));
        assert!(is_email_shaped("a@b.com."), "a trailing dot is the same address");
        assert!(is_email_shaped(" a@b.com"));
        assert!(is_email_shaped("a@b.com\t"));
    }
}
