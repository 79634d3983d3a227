//! The retry policy of `send()` (and of the upload before it).
//!
//! Decisions:
//! - Every send carries an idempotency key (EXTENSION, in the JSON body), so
//!   retrying after a network error or a 5xx can not store the message twice
//!   on a server that knows the key; one that does not ignores the field.
//! - 401: refresh the token and retry at once, up to three 401s in all.
//! - 408, 5xx, network: retry with backoff, four attempts in all.
//! - 429: no retry; the caller gets `rate_limited` with `retry_after_seconds`
//!   (body value first) and decides.
//! - Other 4xx: fail with `http`, status and body.

use crate::backoff::{Backoff, BackoffConfig, Rng};
use crate::error::{retry_after_seconds, ClientError, ErrorCode};
#[allow(unused_imports)]
use crate::prelude::*;

/// How a send (or upload) attempt went.
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// 2xx.
    Ok,
    /// Another status.
    Http {
        /// Status.
        status: u16,
        /// `Retry-After` header.
        retry_after: Option<String>,
        /// Body.
        body: String,
    },
    /// No HTTP answer.
    Network(String),
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum SendStep {
    /// Finished.
    Done,
    /// Try again after `delay_ms`; with `refresh_token`, reject the token used.
    Retry {
        /// Delay.
        delay_ms: u64,
        /// Whether the token was refused.
        refresh_token: bool,
    },
    /// Give up with this error.
    Fail(ClientError),
}

/// Retry state of one send.
#[derive(Debug)]
pub struct SendPolicy {
    what: &'static str,
    attempts: u32,
    auth_failures: u32,
    backoff: Backoff,
}

/// Attempts in all for transient failures.
pub const MAX_ATTEMPTS: u32 = 4;
/// 401s in all before an `auth` error.
pub const MAX_AUTH_FAILURES: u32 = 3;

impl SendPolicy {
    /// A policy for one operation (`what` names it in errors).
    pub fn new(what: &'static str) -> Self {
        SendPolicy { what, attempts: 0, auth_failures: 0, backoff: Backoff::new(BackoffConfig::default()) }
    }

    /// The next step after an attempt's outcome.
    pub fn next(&mut self, outcome: SendOutcome, rng: &mut Rng) -> SendStep {
        self.attempts += 1;
        match outcome {
            SendOutcome::Ok => SendStep::Done,
            SendOutcome::Http { status: 401, retry_after, body } => {
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    SendStep::Fail(ClientError::from_http(401, retry_after_seconds(retry_after.as_deref(), &body), &body, self.what))
                } else {
                    SendStep::Retry { delay_ms: 0, refresh_token: true }
                }
            }
            SendOutcome::Http { status, retry_after, body } => {
                let error = ClientError::from_http(status, retry_after_seconds(retry_after.as_deref(), &body), &body, self.what);
                let transient = status == 408 || (500..=599).contains(&status);
                if transient && self.attempts < MAX_ATTEMPTS {
                    SendStep::Retry { delay_ms: self.backoff.next_delay(rng), refresh_token: false }
                } else {
                    SendStep::Fail(error)
                }
            }
            SendOutcome::Network(message) => {
                if self.attempts < MAX_ATTEMPTS {
                    SendStep::Retry { delay_ms: self.backoff.next_delay(rng), refresh_token: false }
                } else {
                    SendStep::Fail(ClientError::new(ErrorCode::Network, crate::cat!(self.what, " failed: ", message)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, retry_after: Option<&str>, body: &str) -> SendOutcome {
        SendOutcome::Http { status, retry_after: retry_after.map(str::to_owned), body: body.into() }
    }

    #[test]
    fn transient_failures_retry_then_fail() {
        let mut rng = Rng::new(1);
        let mut p = SendPolicy::new("send");
        assert!(matches!(p.next(SendOutcome::Network("x".into()), &mut rng), SendStep::Retry { refresh_token: false, .. }));
        assert!(matches!(p.next(http(503, None, ""), &mut rng), SendStep::Retry { .. }));
        assert!(matches!(p.next(http(408, None, ""), &mut rng), SendStep::Retry { .. }));
        let SendStep::Fail(e) = p.next(SendOutcome::Network("down".into()), &mut rng) else { panic!() };
        assert_eq!(e.code, ErrorCode::Network);
    }

    #[test]
    fn unauthorized_refreshes_three_times_then_auth_error() {
        let mut rng = Rng::new(1);
        let mut p = SendPolicy::new("send");
        assert_eq!(p.next(http(401, None, ""), &mut rng), SendStep::Retry { delay_ms: 0, refresh_token: true });
        assert_eq!(p.next(http(401, None, ""), &mut rng), SendStep::Retry { delay_ms: 0, refresh_token: true });
        let SendStep::Fail(e) = p.next(http(401, None, "{}"), &mut rng) else { panic!() };
        assert_eq!((e.code, e.status), (ErrorCode::Auth, Some(401)));
    }

    #[test]
    fn rate_limit_and_client_errors_fail_at_once() {
        let mut rng = Rng::new(1);
        let SendStep::Fail(e) =
            SendPolicy::new("send").next(http(429, Some("30"), r#"{"status":"rate_limited","retry_after_seconds":12}"#), &mut rng)
        else {
            panic!()
        };
        assert_eq!((e.code, e.retry_after_seconds), (ErrorCode::RateLimited, Some(12)));
        let SendStep::Fail(e) = SendPolicy::new("send").next(http(404, None, r#"{"code":"convo_not_found"}"#), &mut rng) else { panic!() };
        assert_eq!((e.code, e.status), (ErrorCode::Http, Some(404)));
        assert_eq!(e.body.as_deref(), Some(r#"{"code":"convo_not_found"}"#));
    }
}
