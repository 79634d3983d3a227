//! Errors a caller can branch on.
//!
//! Every failure the SDK reports has a [`ErrorCode`]: `auth`, `network`,
//! `timeout`, `rate_limited` (with `retry_after_seconds`), `http` (with
//! `status` and the body), `protocol`, plus `server` for a server `error`
//! frame, `closed` for a call on a closed convo, `aborted` for a send whose
//! `AbortSignal` fired and `invalid_argument` for a bad call. The JS glue turns it into an `Error` with the same fields.

#[allow(unused_imports)]
use crate::prelude::*;
use serde::Serialize;

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The user is not authorized, for good: `fetchJwt` rejected with a
    /// `ValetError` of code `auth` (the app's "signed out"), or the server
    /// refused the token (401 three times in a row, or 403). What failed
    /// stops. (`fetchJwt` failing otherwise is `network`, `timeout` or
    /// `protocol`, and is retried.)
    Auth,
    /// The network failed (no HTTP answer).
    Network,
    /// Something took longer than its limit (e.g. `fetchJwtTimeoutMs`).
    Timeout,
    /// The server rate-limited the call; see `retry_after_seconds`.
    RateLimited,
    /// The server answered an HTTP error; see `status` and `body`.
    Http,
    /// The server sent something that breaks the contract (malformed frame or body).
    Protocol,
    /// The server reported a failure in a stream `error` frame.
    Server,
    /// The convo was closed.
    Closed,
    /// The caller's `AbortSignal` fired first.
    Aborted,
    /// The call's arguments are wrong.
    InvalidArgument,
}

/// An SDK error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ClientError {
    /// Branch on this.
    pub code: ErrorCode,
    /// Human explanation (never contains a token).
    pub message: String,
    /// HTTP status, when the server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `rate_limited`: seconds to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The server's answer body as JSON text: the body itself when it is
    /// JSON, else the text as a JSON string. Serialized as that text (a
    /// string); the JS side parses it, so `ValetError.body` is the body's
    /// value. Never decoded in Rust.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(type = "unknown"))]
    pub body: Option<String>,
    /// On a send that failed after an attempt got no definite answer (a
    /// network failure or a 5xx): the server may have stored it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maybe_stored: Option<bool>,
}

impl ErrorCode {
    /// The code's name (`"rate_limited"`…), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Auth => "auth",
            ErrorCode::Network => "network",
            ErrorCode::Timeout => "timeout",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Http => "http",
            ErrorCode::Protocol => "protocol",
            ErrorCode::Server => "server",
            ErrorCode::Closed => "closed",
            ErrorCode::Aborted => "aborted",
            ErrorCode::InvalidArgument => "invalid_argument",
        }
    }
}

impl ClientError {
    /// Whether a failure to get a token is final: the app's `fetchJwt` said
    /// the user is signed out (code `auth`). Every other token failure may
    /// pass and is retried; what asked for the token stops on this one.
    pub fn signed_out(&self) -> bool {
        self.code == ErrorCode::Auth
    }

    /// The error's JSON (the same as serde's, without its code in the wasm).
    pub fn to_json(&self) -> String {
        let o = crate::json::Obj::new()
            .str("code", self.code.as_str())
            .str("message", &self.message)
            .opt_u64("status", self.status.map(u64::from))
            .opt_u64("retry_after_seconds", self.retry_after_seconds)
            .opt_str("body", self.body.as_deref());
        match self.maybe_stored {
            Some(b) => o.bool("maybe_stored", b),
            None => o,
        }
        .finish()
    }

    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError { code, message: message.into(), status: None, retry_after_seconds: None, body: None, maybe_stored: None }
    }

    /// From an HTTP answer: 429 becomes `rate_limited`, 401/403 `auth`, the
    /// rest `http`. The body is kept (as JSON when it parses).
    pub fn from_http(status: u16, retry_after_seconds: Option<u64>, body: &str, what: &str) -> Self {
        let read = Detail::read(body);
        let is_json = read.is_some();
        let detail = read.and_then(|d| d.message).unwrap_or_default();
        let code = match status {
            429 => ErrorCode::RateLimited,
            401 | 403 => ErrorCode::Auth,
            _ => ErrorCode::Http,
        };
        let message = if detail.is_empty() {
            crate::cat!(what, " failed with HTTP ", status)
        } else {
            crate::cat!(what, " failed with HTTP ", status, ": ", detail)
        };
        ClientError {
            code,
            message,
            status: Some(status),
            retry_after_seconds,
            body: if is_json {
                Some(body.to_owned())
            } else {
                (!body.is_empty()).then(|| {
                    // Its first 2,000 characters (`get`: no panic path),
                    // by the bytes that start one (no char decoding).
                    let end = body.bytes().enumerate().filter(|(_, b)| (b & 0xC0) != 0x80).nth(2000).map_or(body.len(), |(at, _)| at);
                    json_string(body.get(..end).unwrap_or(body))
                })
            },
            maybe_stored: None,
        }
    }
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl core::error::Error for ClientError {}

/// The seconds a 429 asks to wait: the body's `retry_after_seconds` wins over
/// the `Retry-After` header (seconds or an HTTP date is not parsed: seconds only).
pub fn retry_after_seconds(header: Option<&str>, body: &str) -> Option<u64> {
    Detail::read(body).and_then(|d| d.retry_after_seconds).or_else(|| header.and_then(|h| crate::json::parse_u64(h.trim_ascii())))
}

/// What the SDK reads of an error body: its `message` and
/// `retry_after_seconds`, each only when of the right type (a field of
/// another type is passed over, not an error for the other one).
struct Detail {
    message: Option<String>,
    retry_after_seconds: Option<u64>,
}

impl Detail {
    /// `None` when the body is not JSON.
    fn read(body: &str) -> Option<Detail> {
        let [message, retry] = crate::json::read_n(body, ["message", "retry_after_seconds"])?;
        Some(Detail { message: message.into_string(), retry_after_seconds: retry.u64() })
    }
}

/// `s` as a JSON string literal (quoted and escaped).
pub fn json_string(s: &str) -> String {
    crate::json::string(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_retry_after_wins_over_header() {
        assert_eq!(retry_after_seconds(Some("30"), r#"{"retry_after_seconds":7}"#), Some(7));
        assert_eq!(retry_after_seconds(Some(" 30 "), "{}"), Some(30));
        assert_eq!(retry_after_seconds(Some("Wed, 21 Oct 2026 07:28:00 GMT"), ""), None);
        assert_eq!(retry_after_seconds(None, "not json"), None);
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_its_first_2000_characters() {
        let long = "é".repeat(2500);
        let e = ClientError::from_http(502, None, &long, "send");
        assert_eq!(e.body, Some(json_string(&"é".repeat(2000))));
        let e = ClientError::from_http(502, None, "Bad gateway", "send");
        assert_eq!(e.body, Some(json_string("Bad gateway")));
        assert_eq!(ClientError::from_http(502, None, "", "send").body, None);
    }

    #[test]
    fn http_errors_are_classified_and_keep_the_body() {
        let e = ClientError::from_http(429, Some(5), r#"{"status":"rate_limited"}"#, "send");
        assert_eq!((e.code, e.status, e.retry_after_seconds), (ErrorCode::RateLimited, Some(429), Some(5)));
        let body: serde_json::Value = serde_json::from_str(&e.body.unwrap()).unwrap();
        assert_eq!(body["status"], "rate_limited");
        let e = ClientError::from_http(404, None, r#"{"code":"convo_not_found","message":"no such convo"}"#, "open");
        assert_eq!(e.code, ErrorCode::Http);
        assert!(e.message.contains("no such convo"));
        assert_eq!(ClientError::from_http(401, None, "", "x").code, ErrorCode::Auth);
        assert_eq!(ClientError::from_http(502, None, "<html>", "x").body.as_deref(), Some("\"<html>\""));
        // Serialized, the body is its JSON text (JS parses it).
        let json = serde_json::to_value(ClientError::from_http(404, None, r#"{"code":"x"}"#, "x")).unwrap();
        assert_eq!(json["body"], r#"{"code":"x"}"#);
        assert_eq!(
            retry_after_seconds(None, r#"{"message":5,"retry_after_seconds":7}"#),
            Some(7),
            "a field of another type spoils nothing"
        );
    }
}
