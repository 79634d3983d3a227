//! JWTs: reading without verification, redaction, and the client's token
//! lifecycle ([`TokenManager`]).
//!
//! Decisions:
//! - The client never verifies a token (it has no key); it only reads `exp`
//!   to schedule refreshes. The server reads `iss` the same way to find which
//!   company's key verifies the token, then verifies it properly.
//! - A token is never logged: [`redact`] is what goes in a log line.
//! - Lifecycle: a token is used while more than the refresh lead (5 min) is
//!   left, or half its lifetime for tokens shorter than twice the lead, so a
//!   short-lived token is not refetched on every call. The caller refreshes
//!   on a timer at [`TokenManager::refresh_due_at`] (not only lazily).
//! - Single flight: while a fetch is in flight every request waits for it,
//!   including a retry after a 401 (the JS SDK's defect 3).
//! - A token the server rejected (401, `auth_expiring`) is never used again:
//!   if `fetchJwt` hands it back, that is an `auth` error, not a loop (defect 2).
//!   Nor is a token that expires no later than it (one another tab told
//!   in the same second, say): the server said the refused one is expiring,
//!   or judged it by a clock that a token as old fails as well; the
//!   replacement must be newer ([`TokenManager::refused`]).
//! - `fetchJwt` rejecting with a `ValetError` of code `auth` is the app
//!   saying "this user is signed out": an `auth` error, which stops what
//!   asked for the token ([`FetchFailure::SignedOut`]). Anything else may
//!   pass (the app's backend down, the device offline, a 502 page read as
//!   a token) and the caller retries with backoff: a rejection is a
//!   `network` error, a timeout a `timeout` error, junk a `protocol` error.
//! - Clock skew: `exp` is the server's time, so expiry decisions run on the
//!   server's clock as the `Date` headers of its answers tell it
//!   ([`ServerClock`]); a device whose clock is minutes off neither refetches
//!   on every call nor lets its tokens lapse. Until a first answer tells the
//!   server's time, a token that looks expired by the device's clock is used
//!   (the server is the judge: a 401 refetches) and rechecked within 30 s.
//! - One refresh per browser: the tabs of one browser share their tokens
//!   ([`TokenMessage`] on a channel). A tab that must replace a token asks
//!   for a lock named after that token ([`TokenManager::share_key`]); the
//!   one that gets it calls `fetchJwt` and tells the others, who take the
//!   new token ([`TokenManager::adopt`]) instead of fetching their own, and
//!   keeps the lock, so a tab that heard nothing and gets it later finds
//!   the token replaced ([`TokenManager::lock_granted`]). A rejection is
//!   told too: no tab uses a token another tab saw refused. A tab takes a
//!   token only for the identity its own tokens had (issuer, agent, user),
//!   so tabs of different users never trade tokens; its first token is its
//!   own `fetchJwt`'s.

#[allow(unused_imports)]
use crate::prelude::*;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;

use crate::error::{ClientError, ErrorCode};

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
    /// The subject, where an issuer sets one.
    #[serde(default)]
    pub sub: Option<String>,
}

impl UnverifiedClaims {
    /// Who the token speaks for: issuer, agent, user (`source_key`) and
    /// subject, as the JSON array `[iss, agent_uuid, source_key, sub]`
    /// (`null` where absent; the browser SDK builds the same text with
    /// `JSON.stringify`). Tabs share tokens only within one identity.
    pub fn identity(&self) -> String {
        let mut out = String::from("[");
        for (i, v) in [&self.iss, &self.agent_uuid, &self.source_key, &self.sub].into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match v {
                Some(v) => crate::json::push_string(&mut out, v),
                None => out.push_str("null"),
            }
        }
        out.push(']');
        out
    }
}

/// What a host reads of a token it got: `exp` (seconds) and the
/// [`UnverifiedClaims::identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `exp`, seconds since the epoch; `None` when the token has none.
    pub exp: Option<i64>,
    /// See [`UnverifiedClaims::identity`].
    pub identity: String,
}

impl TokenClaims {
    /// `exp` in Unix ms (server time); `None` without one, or before 1970.
    pub fn exp_ms(&self) -> Option<u64> {
        self.exp.and_then(|e| u64::try_from(e).ok()).map(|e| e.saturating_mul(1000))
    }
}

/// What a tab made of a token another tab told ([`TokenManager::hear`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Taken: this tab uses it from now on.
    Took,
    /// Not for this tab (another identity, refused, expired, no news).
    Ignored,
    /// This tab's own token (given) is newer, or as new and first in byte
    /// order: tell it back.
    Better(String),
}

/// A message between the tabs of one browser about their tokens:
/// `{"sdk":"valet-sdk","v":1,"kind":"token","token":"…"}` (a tab fetched
/// it) or `"kind":"rejected"` (the server refused it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenMessage {
    /// A token a tab just fetched.
    Token(String),
    /// A token the server refused.
    Rejected(String),
}

impl TokenMessage {
    /// The message's text.
    pub fn to_json(&self) -> String {
        let (kind, token) = match self {
            TokenMessage::Token(t) => ("token", t),
            TokenMessage::Rejected(t) => ("rejected", t),
        };
        crate::json::Obj::new().str("sdk", "valet-sdk").u64("v", 1).str("kind", kind).str("token", token).finish()
    }

    /// Reads a message; `None` for anything else (garbage on the channel
    /// changes nothing).
    pub fn parse(text: &str) -> Option<TokenMessage> {
        // By reference, the token taken (see `election::parse_envelope`).
        let mut vals = crate::json::read_n(text, ["sdk", "v", "kind", "token"])?;
        let token = core::mem::replace(&mut vals[3], crate::json::Val::Missing).into_string().filter(|t| !t.is_empty());
        let [sdk, v, kind, _] = &vals;
        if sdk.str()? != "valet-sdk" || v.u64()? != 1 {
            return None;
        }
        let token = token?;
        match kind.str()? {
            "token" => Some(TokenMessage::Token(token)),
            "rejected" => Some(TokenMessage::Rejected(token)),
            _ => None,
        }
    }
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

impl core::fmt::Display for TokenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TokenError::NotAJwt => f.write_str("not a JWT (expected three dot-separated parts)"),
            TokenError::BadEncoding => f.write_str("JWT payload is not base64url"),
            TokenError::BadClaims(e) => write!(f, "JWT payload is not a claims object: {e}"),
        }
    }
}

impl core::error::Error for TokenError {}

/// Reads a JWT's claims without verifying its signature.
pub fn read_claims(jwt: &str) -> Result<UnverifiedClaims, TokenError> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::NotAJwt);
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).or_else(|_| URL_SAFE.decode(payload)).map_err(|_| TokenError::BadEncoding)?;
    serde_json::from_slice(&bytes).map_err(|e| TokenError::BadClaims(e.to_string()))
}

/// Reads a token's [`TokenClaims`] (the host's reader: [`claims_of`]
/// natively, the browser's `atob` and `JSON.parse` in the wasm).
pub type ClaimsOf = fn(&str) -> Result<TokenClaims, String>;

/// A token's [`TokenClaims`], read natively (the browser SDK reads them in JS).
pub fn claims_of(jwt: &str) -> Result<TokenClaims, String> {
    let c = read_claims(jwt).map_err(|e| e.to_string())?;
    Ok(TokenClaims { exp: c.exp, identity: c.identity() })
}

/// What a log line shows of a token: its length and nothing of its content.
pub fn redact(token: &str) -> String {
    crate::cat!("<redacted jwt, ", token.len(), " chars>")
}

/// The refresh lead: tokens are replaced this long before `exp`.
pub const REFRESH_LEAD_MS: u64 = 5 * 60 * 1000;

/// The server's clock as seen from the device: the offset to add to the
/// device's time, from the `Date` header of the server's answers.
///
/// `Date` has one-second resolution, so an offset under
/// [`ServerClock::MIN_SKEW_MS`] is noise and taken as 0; the offset moves
/// only when a new reading differs by that much (a clock set, a sleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerClock {
    offset_ms: i64,
    known: bool,
}

impl Default for ServerClock {
    fn default() -> Self {
        ServerClock::UNKNOWN
    }
}

impl ServerClock {
    /// No answer read yet: the local clock is taken as the server's.
    pub const UNKNOWN: ServerClock = ServerClock { offset_ms: 0, known: false };

    /// Skews smaller than this are not corrected.
    pub const MIN_SKEW_MS: i64 = 5_000;

    /// An answer's `Date` (`server_ms`, Unix ms, truncated to the second)
    /// read at `local_ms`. Returns whether the offset changed.
    pub fn observe(&mut self, local_ms: u64, server_ms: u64) -> bool {
        self.known = true;
        let estimate = server_ms as i64 + 500 - local_ms as i64;
        let estimate = if estimate.abs() < Self::MIN_SKEW_MS { 0 } else { estimate };
        let changed = (estimate - self.offset_ms).abs() >= Self::MIN_SKEW_MS;
        if changed {
            self.offset_ms = estimate;
        }
        changed
    }

    /// The server's time at the device's `local_ms`.
    pub fn to_server(&self, local_ms: u64) -> u64 {
        (local_ms as i64 + self.offset_ms).max(0) as u64
    }

    /// The device's time at the server's `server_ms`.
    pub fn to_local(&self, server_ms: u64) -> u64 {
        (server_ms as i64 - self.offset_ms).max(0) as u64
    }

    /// Server time minus device time, in ms (0 for a skew under
    /// [`ServerClock::MIN_SKEW_MS`]).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Whether an answer told the server's time yet.
    pub fn known(&self) -> bool {
        self.known
    }
}

/// A token that looked expired before the server's time was known is
/// rechecked this soon.
const PROVISIONAL_MS: u64 = 30_000;

#[derive(Debug, Clone)]
struct Held {
    jwt: String,
    /// `exp`, server time.
    exp_ms: u64,
    /// When it was fetched, device time.
    fetched_local_ms: u64,
}

/// The last token held, as the tabs name it (kept after it is rejected:
/// it names the lock for its replacement).
#[derive(Debug, Clone)]
struct Last {
    identity: String,
    exp_ms: u64,
    /// `fnv(identity):fnv(jwt)`.
    key: String,
}

/// An identity's short name ([`UnverifiedClaims::identity`]'s FNV-1a hash):
/// what storage keys of one user's data carry, never the identity itself.
pub fn identity_scope(identity: &str) -> String {
    let mut out = String::new();
    fnv(identity, &mut out);
    out
}

/// FNV-1a, 64 bits, in decimal: a short, stable name (no token or issuer
/// in a lock's name).
fn fnv(text: &str, out: &mut String) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    crate::text::push_u64(out, h);
}

/// What to do to get a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStep {
    /// Use this one.
    Use(String),
    /// Call `fetchJwt` now (this request started the fetch); feed the result
    /// to [`TokenManager::fetched`].
    Fetch,
    /// A fetch is in flight: wait for its result.
    Wait,
}

/// Why a fetched token is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// `fetchJwt` threw or its promise rejected (the message, redacted).
    Threw(String),
    /// `fetchJwt` rejected with a `ValetError` of code `auth`: the user is
    /// signed out (the message).
    SignedOut(String),
    /// `fetchJwt` did not settle within `fetchJwtTimeoutMs`.
    TimedOut(u64),
    /// `fetchJwt` resolved to something that is not a string.
    NotAString,
}

/// The client's token: cache, single flight, refresh schedule, rejections.
#[derive(Debug)]
pub struct TokenManager {
    held: Option<Held>,
    last: Option<Last>,
    rejected: Vec<String>,
    /// The `exp` (server time) of the latest token this tab's requests
    /// were refused: no token expiring at or before it is used or taken.
    refused_exp_ms: u64,
    in_flight: bool,
    clock: ServerClock,
}

impl Default for TokenManager {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenManager {
    /// No token yet.
    pub fn new() -> Self {
        TokenManager { held: None, last: None, rejected: Vec::new(), refused_exp_ms: 0, in_flight: false, clock: ServerClock::default() }
    }

    /// An answer's `Date` (Unix ms) read at the device's `now_ms`. Returns
    /// whether the correction changed (then re-arm the refresh timer at
    /// [`TokenManager::refresh_due_at`]).
    pub fn observe_server_time(&mut self, now_ms: u64, server_ms: u64) -> bool {
        self.clock.observe(now_ms, server_ms)
    }

    /// The server's clock as known so far.
    pub fn server_clock(&self) -> ServerClock {
        self.clock
    }

    /// Takes the server's clock as a host keeps it (one for every source
    /// of a page, fed by every answer).
    pub fn set_server_clock(&mut self, clock: ServerClock) {
        self.clock = clock;
    }

    /// When `h` is due for replacement, server time: the refresh lead (or
    /// half the lifetime it had when fetched) before `exp`; soon, for a
    /// token that looked expired before the server's time was known.
    fn refresh_at(&self, h: &Held) -> u64 {
        let fetched = self.clock.to_server(h.fetched_local_ms);
        if h.exp_ms <= fetched {
            return fetched + PROVISIONAL_MS;
        }
        h.exp_ms - REFRESH_LEAD_MS.min((h.exp_ms - fetched) / 2)
    }

    /// A token for a request at `now_ms`. With `reject`, that token was
    /// refused by the server and must not be used again.
    pub fn request(&mut self, now_ms: u64, reject: Option<&str>) -> TokenStep {
        if let Some(bad) = reject {
            self.reject(bad);
        }
        if self.in_flight {
            return TokenStep::Wait;
        }
        let now = self.clock.to_server(now_ms);
        match &self.held {
            Some(h) if now < self.refresh_at(h) => TokenStep::Use(h.jwt.clone()),
            _ => {
                self.in_flight = true;
                TokenStep::Fetch
            }
        }
    }

    /// Marks a token as refused by the server (here or in another tab).
    /// Returns whether it was news.
    pub fn reject(&mut self, token: &str) -> bool {
        if self.held.as_ref().is_some_and(|h| h.jwt == token) {
            self.held = None;
        }
        if self.rejected.iter().any(|r| r == token) {
            return false;
        }
        self.rejected.push(token.to_owned());
        if self.rejected.len() > 8 {
            self.rejected.remove(0);
        }
        true
    }

    /// The server refused `token`, expiring at `exp_ms` (server time, when
    /// it can be read), to a request of this tab: it is never used again
    /// ([`TokenManager::reject`]), and neither is a token that expires no
    /// later (the held one, one another tab tells): its replacement must
    /// be newer. Returns whether the token itself was news.
    pub fn refused(&mut self, token: &str, exp_ms: Option<u64>) -> bool {
        if let Some(exp_ms) = exp_ms {
            self.refused_exp_ms = self.refused_exp_ms.max(exp_ms);
            if self.held.as_ref().is_some_and(|h| h.exp_ms <= exp_ms) {
                self.held = None;
            }
        }
        self.reject(token)
    }

    /// The name, among the tabs, of the token to replace now (the held
    /// one, or the last one held): hashes of its identity and of the token.
    /// Tabs that must replace the same token ask for the same lock; `None`
    /// before a first token (each tab fetches its first itself).
    pub fn share_key(&self) -> Option<String> {
        self.last.as_ref().map(|l| l.key.clone())
    }

    /// The lock named `key` (from [`TokenManager::share_key`], taken when
    /// the fetch began) is this tab's: `Use` when the token was replaced
    /// meanwhile (another tab's, adopted) and is good, else `Fetch` (call
    /// `fetchJwt`, keep the lock, tell the others).
    pub fn lock_granted(&mut self, now_ms: u64, key: &str) -> TokenStep {
        let now = self.clock.to_server(now_ms);
        match &self.held {
            Some(h) if now < self.refresh_at(h) && self.last.as_ref().is_some_and(|l| l.key != key) => {
                self.in_flight = false;
                TokenStep::Use(h.jwt.clone())
            }
            _ => TokenStep::Fetch,
        }
    }

    /// A token another tab fetched (`claims` read from it). Taken when it
    /// speaks for the same identity as this tab's tokens, is newer than the
    /// one held (or as new and first in byte order: tabs that fetched in
    /// the same second agree on one token), was not rejected, and is not
    /// expired by the server's clock. Taking it ends a wait for the lock:
    /// every waiter gets it.
    pub fn adopt(&mut self, now_ms: u64, jwt: &str, claims: &TokenClaims) -> bool {
        matches!(self.hear(now_ms, jwt, claims), Heard::Took)
    }

    /// [`TokenManager::adopt`], telling also when this tab's own token is
    /// the better one ([`Heard::Better`]: tell it back, so that a tab that
    /// fetched its first token after this one's was told converges too).
    pub fn hear(&mut self, now_ms: u64, jwt: &str, claims: &TokenClaims) -> Heard {
        let jwt = jwt.trim_ascii();
        let Some(last) = &self.last else { return Heard::Ignored };
        let Some(exp_ms) = claims.exp_ms() else {
            return Heard::Ignored;
        };
        if claims.identity != last.identity
            || self.rejected.iter().any(|r| r == jwt)
            || exp_ms <= self.refused_exp_ms
            || (self.clock.known() && exp_ms <= self.clock.to_server(now_ms))
        {
            return Heard::Ignored;
        }
        let newer = match &self.held {
            Some(h) if h.jwt == jwt => return Heard::Ignored,
            Some(h) if exp_ms < h.exp_ms || (exp_ms == h.exp_ms && jwt > h.jwt.as_str()) => return Heard::Better(h.jwt.clone()),
            Some(_) => true,
            None => exp_ms >= last.exp_ms,
        };
        if !newer {
            return Heard::Ignored;
        }
        self.hold(jwt.to_owned(), exp_ms, claims.identity.clone(), now_ms);
        self.in_flight = false;
        Heard::Took
    }

    fn hold(&mut self, jwt: String, exp_ms: u64, identity: String, now_ms: u64) {
        let mut key = String::new();
        fnv(&identity, &mut key);
        key.push(':');
        fnv(&jwt, &mut key);
        self.held = Some(Held { jwt, exp_ms, fetched_local_ms: now_ms });
        self.last = Some(Last { identity, exp_ms, key });
    }

    /// Whether a fetch is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Starts a fetch now if none is in flight (the refresh timer's path).
    /// Returns whether the caller must call `fetchJwt`.
    pub fn begin_refresh(&mut self) -> bool {
        if self.in_flight {
            return false;
        }
        self.in_flight = true;
        true
    }

    /// The result of `fetchJwt`. `Ok` is the token every waiter gets.
    pub fn fetched(&mut self, now_ms: u64, result: Result<String, FetchFailure>) -> Result<String, ClientError> {
        self.fetched_with(now_ms, result, claims_of)
    }

    /// [`TokenManager::fetched`], with the token's claims read by
    /// `claims_of` (`Err`: not a readable JWT). The browser SDK reads them
    /// with `atob` and `JSON.parse`, which cost it no bytes.
    pub fn fetched_with(
        &mut self,
        now_ms: u64,
        result: Result<String, FetchFailure>,
        claims_of: impl FnOnce(&str) -> Result<TokenClaims, String>,
    ) -> Result<String, ClientError> {
        self.in_flight = false;
        // Only the app's own "signed out" is `auth` (final); the rest may pass.
        let auth = |m: String| ClientError::new(ErrorCode::Auth, m);
        let junk = |m: String| ClientError::new(ErrorCode::Protocol, m);
        let jwt = result.map_err(|f| match f {
            FetchFailure::SignedOut(m) => auth(crate::cat!("fetchJwt: signed out: ", m)),
            FetchFailure::Threw(m) => ClientError::new(ErrorCode::Network, crate::cat!("fetchJwt failed: ", m)),
            FetchFailure::TimedOut(ms) => ClientError::new(ErrorCode::Timeout, crate::cat!("fetchJwt did not settle within ", ms, " ms")),
            FetchFailure::NotAString => junk("fetchJwt must resolve to a JWT string".into()),
        })?;
        let jwt = jwt.trim_ascii().to_owned();
        let claims = claims_of(&jwt).map_err(|e| junk(crate::cat!("fetchJwt returned an unusable token: ", e)))?;
        let exp = claims.exp.ok_or_else(|| junk("fetchJwt returned a token without `exp`".into()))?;
        let exp_ms = u64::try_from(exp).unwrap_or(0).saturating_mul(1000);
        // Expired by the server's clock; by the device's alone, the server judges.
        if exp_ms <= self.clock.to_server(now_ms) && self.clock.known() {
            return Err(junk("fetchJwt returned an expired token".into()));
        }
        if self.rejected.iter().any(|r| r == &jwt) {
            return Err(junk("fetchJwt returned the token the server just rejected".into()));
        }
        self.hold(jwt.clone(), exp_ms, claims.identity, now_ms);
        Ok(jwt)
    }

    /// When the held token should be replaced, device time (for a refresh
    /// timer).
    pub fn refresh_due_at(&self) -> Option<u64> {
        self.held.as_ref().map(|h| self.clock.to_local(self.refresh_at(h)))
    }

    /// The held token's expiry, device time.
    pub fn expires_at(&self) -> Option<u64> {
        self.held.as_ref().map(|h| self.clock.to_local(h.exp_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_exp(exp_s: u64, tag: &str) -> String {
        jwt(&format!(r#"{{"exp":{exp_s},"tag":"{tag}"}}"#))
    }

    #[test]
    fn caches_until_the_lead_then_refetches() {
        let mut m = TokenManager::new();
        let t0 = 1_000_000_000;
        assert_eq!(m.request(t0, None), TokenStep::Fetch);
        assert_eq!(m.request(t0, None), TokenStep::Wait, "single flight");
        let tok = jwt_exp(t0 / 1000 + 900, "a");
        assert_eq!(m.fetched(t0, Ok(tok.clone())), Ok(tok.clone()));
        assert_eq!(m.request(t0 + 1000, None), TokenStep::Use(tok.clone()));
        assert_eq!(m.refresh_due_at(), Some(t0 + 600_000));
        assert_eq!(m.request(t0 + 599_999, None), TokenStep::Use(tok));
        assert_eq!(m.request(t0 + 600_000, None), TokenStep::Fetch);
    }

    #[test]
    fn short_tokens_refresh_at_half_life() {
        let mut m = TokenManager::new();
        let t0 = 2_000_000_000;
        m.request(t0, None);
        m.fetched(t0, Ok(jwt_exp(t0 / 1000 + 60, "short"))).unwrap();
        assert_eq!(m.refresh_due_at(), Some(t0 + 30_000));
    }

    #[test]
    fn a_rejected_token_is_never_reused_even_if_fetch_returns_it() {
        let mut m = TokenManager::new();
        let t0 = 1_000_000_000;
        let tok = jwt_exp(t0 / 1000 + 900, "a");
        m.request(t0, None);
        m.fetched(t0, Ok(tok.clone())).unwrap();
        assert_eq!(m.request(t0, Some(&tok)), TokenStep::Fetch, "rejection forces a fetch");
        assert_eq!(m.request(t0, None), TokenStep::Wait, "a retry waits for the refresh in flight");
        let err = m.fetched(t0, Ok(tok.clone())).unwrap_err();
        assert_eq!(err.code, ErrorCode::Protocol, "an error that may pass: fetched again later");
        assert!(err.message.contains("rejected"));
        assert_eq!(m.request(t0, None), TokenStep::Fetch);
        let fresh = jwt_exp(t0 / 1000 + 900, "b");
        assert_eq!(m.fetched(t0, Ok(fresh.clone())), Ok(fresh));
    }

    #[test]
    fn only_signed_out_is_an_auth_error_the_rest_may_pass() {
        let mut m = TokenManager::new();
        let now = 1_000_000_000;
        m.observe_server_time(now, now); // the server's clock is known: "expired" is sure
        for (r, code) in [
            (Err(FetchFailure::SignedOut("no session".into())), ErrorCode::Auth),
            (Err(FetchFailure::Threw("Failed to fetch".into())), ErrorCode::Network),
            (Err(FetchFailure::TimedOut(10_000)), ErrorCode::Timeout),
            (Err(FetchFailure::NotAString), ErrorCode::Protocol),
            (Ok("<html>502 Bad Gateway</html>".to_owned()), ErrorCode::Protocol),
            (Ok(jwt(r#"{"sub":"x"}"#)), ErrorCode::Protocol),
            (Ok(jwt_exp(now / 1000 - 1, "expired")), ErrorCode::Protocol),
        ] {
            m.request(now, None);
            let e = m.fetched(now, r).unwrap_err();
            assert_eq!(e.code, code, "{e}");
            assert!(!m.in_flight());
        }
    }

    const MIN: u64 = 60_000;

    /// A device 20 minutes ahead: by its clock a fresh 15-minute token is
    /// already expired. Before any answer it is used (the server judges),
    /// and once an answer's `Date` is read, the refresh is 5 minutes before
    /// the server's `exp`; no refetch before then.
    #[test]
    fn a_device_clock_ahead_neither_refetches_nor_rejects_good_tokens() {
        let server_now = 1_800_000_000_000;
        let local = server_now + 20 * MIN;
        let mut m = TokenManager::new();
        m.request(local, None);
        let tok = jwt_exp(server_now / 1000 + 15 * 60, "fresh");
        assert_eq!(m.fetched(local, Ok(tok.clone())), Ok(tok.clone()), "used, not an error");
        assert_eq!(m.refresh_due_at(), Some(local + 30_000), "rechecked soon while the server's time is unknown");
        assert!(m.observe_server_time(local + 50, server_now + 50 - 300), "the first answer's Date");
        let due = m.refresh_due_at().unwrap();
        let want = local + 10 * MIN; // exp - 5 min, in device time
        assert!(due.abs_diff(want) < 1_000, "due {} ms after fetch, want ~{}", due - local, want - local);
        assert_eq!(m.request(local + 9 * MIN, None), TokenStep::Use(tok.clone()), "no refetch before the lead");
        assert_eq!(m.request(local + 10 * MIN + 1_000, None), TokenStep::Fetch);
        // A token that is expired by the server's clock is an error again.
        let stale = jwt_exp(server_now / 1000 - 60, "stale");
        assert_eq!(m.fetched(local + 10 * MIN + 1_000, Ok(stale)).unwrap_err().code, ErrorCode::Protocol);
    }

    /// A device 10 minutes behind would refresh 5 minutes after the token
    /// expired; corrected, it refreshes 5 minutes before.
    #[test]
    fn a_device_clock_behind_refreshes_before_the_server_expiry() {
        let server_now = 1_800_000_000_000;
        let local = server_now - 10 * MIN;
        let mut m = TokenManager::new();
        m.observe_server_time(local, server_now);
        m.request(local, None);
        m.fetched(local, Ok(jwt_exp(server_now / 1000 + 15 * 60, "t"))).unwrap();
        let due = m.refresh_due_at().unwrap();
        assert!(due.abs_diff(local + 10 * MIN) < 1_000, "due {} min after fetch", (due - local) / MIN);
        assert!(m.expires_at().unwrap().abs_diff(local + 15 * MIN) < 1_000);
    }

    #[test]
    fn small_skews_are_noise_and_the_offset_moves_only_on_a_real_change() {
        let mut c = ServerClock::default();
        assert!(!c.known());
        assert!(!c.observe(1_000_000, 1_002_000), "2 s: within a Date's resolution and latency");
        assert_eq!((c.offset_ms(), c.known()), (0, true));
        assert!(c.observe(1_000_000, 1_600_000));
        assert_eq!(c.offset_ms(), 600_500);
        assert!(!c.observe(2_000_000, 2_601_000), "a second off: kept");
        assert_eq!(c.to_server(2_000_000), 2_600_500);
        assert_eq!(c.to_local(2_600_500), 2_000_000);
        assert!(c.observe(3_000_000, 3_000_000), "the clock was set right");
        assert_eq!(c.offset_ms(), 0);
    }

    fn user_jwt(exp_s: u64, user: &str) -> String {
        jwt(&format!(r#"{{"iss":"co","agent_uuid":"a1","source_key":"{user}","exp":{exp_s}}}"#))
    }

    /// Two tabs holding one token, both due: one gets the lock and fetches,
    /// the other takes its token (and, had it got the lock late, would
    /// find the token replaced): one `fetchJwt` call for the refresh.
    #[test]
    fn tabs_share_one_refresh() {
        let t0 = 1_800_000_000_000;
        let first = user_jwt(t0 / 1000 + 60, "u1");
        let (mut a, mut b) = (TokenManager::new(), TokenManager::new());
        for m in [&mut a, &mut b] {
            assert_eq!(m.share_key(), None, "a first token is each tab's own");
            m.request(t0, None);
            m.fetched(t0, Ok(first.clone())).unwrap();
        }
        let due = t0 + 30_000;
        assert_eq!((a.request(due, None), b.begin_refresh()), (TokenStep::Fetch, true));
        let key = a.share_key().unwrap();
        assert_eq!(b.share_key().as_deref(), Some(key.as_str()), "the same lock for the same token");
        assert_eq!(a.lock_granted(due, &key), TokenStep::Fetch);
        let next = user_jwt(due / 1000 + 60, "u1");
        a.fetched(due, Ok(next.clone())).unwrap();
        let message = TokenMessage::Token(next.clone()).to_json();
        let TokenMessage::Token(got) = TokenMessage::parse(&message).unwrap() else { panic!() };
        assert!(b.adopt(due + 5, &got, &claims_of(&got).unwrap()), "b takes a's token");
        assert!(!b.in_flight(), "b's wait is over");
        assert_eq!(b.request(due + 10, None), TokenStep::Use(next.clone()));
        assert_eq!(b.lock_granted(due + 20, &key), TokenStep::Use(next.clone()), "granted late: nothing to fetch");
        assert!(!b.adopt(due + 30, &next, &claims_of(&next).unwrap()), "the same token twice is no news");
        assert_ne!(b.share_key().unwrap(), key, "the next refresh has a lock of its own");
    }

    /// Tabs that each fetched a first token in the same second, and tell
    /// each other, settle on one of them: from then on they share a lock.
    #[test]
    fn tokens_of_the_same_second_converge_on_one() {
        let t0 = 1_800_000_000_000;
        let tokens = [user_jwt(t0 / 1000 + 60, "u1") + "b", user_jwt(t0 / 1000 + 60, "u1") + "a", user_jwt(t0 / 1000 + 60, "u1") + "c"];
        let mut tabs: Vec<TokenManager> = tokens
            .iter()
            .map(|t| {
                let mut m = TokenManager::new();
                m.request(t0, None);
                m.fetched(t0, Ok(t.clone())).unwrap();
                m
            })
            .collect();
        for (i, t) in tokens.iter().enumerate() {
            for (j, m) in tabs.iter_mut().enumerate() {
                if i != j {
                    m.adopt(t0 + 1, t, &claims_of(t).unwrap());
                }
            }
        }
        let keys: Vec<_> = tabs.iter().map(|m| m.share_key().unwrap()).collect();
        assert!(keys.iter().all(|k| *k == keys[0]), "one token, one lock");
        assert_eq!(tabs[0].request(t0 + 2, None), TokenStep::Use(tokens[1].clone()));

        // A tab that fetched after another told its token hears the worse
        // one's news, tells its own back, and the newcomer takes it.
        let (mut old, mut new) = (TokenManager::new(), TokenManager::new());
        old.request(t0, None);
        old.fetched(t0, Ok(tokens[1].clone())).unwrap();
        new.request(t0, None);
        new.fetched(t0, Ok(tokens[2].clone())).unwrap();
        let Heard::Better(reply) = old.hear(t0, &tokens[2], &claims_of(&tokens[2]).unwrap()) else { panic!("told back") };
        assert_eq!(new.hear(t0, &reply, &claims_of(&reply).unwrap()), Heard::Took);
        assert_eq!(old.share_key(), new.share_key());
    }

    #[test]
    fn a_tab_takes_only_newer_tokens_of_its_own_identity_never_a_rejected_one() {
        let t0 = 1_800_000_000_000;
        let mut m = TokenManager::new();
        let mine = user_jwt(t0 / 1000 + 600, "u1");
        let claims = |t: &str| claims_of(t).unwrap();
        let theirs = user_jwt(t0 / 1000 + 900, "u2");
        assert!(!m.adopt(t0, &theirs, &claims(&theirs)), "no token yet: nothing to match");
        m.request(t0, None);
        m.fetched(t0, Ok(mine.clone())).unwrap();
        assert!(!m.adopt(t0, &theirs, &claims(&theirs)), "another user's");
        let older = user_jwt(t0 / 1000 + 300, "u1");
        assert_eq!(m.hear(t0, &older, &claims(&older)), Heard::Better(mine.clone()), "older than mine: told back");
        m.observe_server_time(t0, t0);
        let expired = user_jwt(t0 / 1000 - 1, "u1");
        assert!(!m.adopt(t0, &expired, &claims(&expired)));
        let no_exp = jwt(r#"{"iss":"co","agent_uuid":"a1","source_key":"u1"}"#);
        assert!(!m.adopt(t0, &no_exp, &claims(&no_exp)));
        // Another tab saw a newer token refused: it is never taken here.
        let refused = user_jwt(t0 / 1000 + 900, "u1");
        assert!(m.reject(&refused), "news");
        assert!(!m.reject(&refused), "told twice");
        assert!(!m.adopt(t0, &refused, &claims(&refused)));
        assert_eq!(m.request(t0, None), TokenStep::Use(mine.clone()));
        // This tab's own token refused elsewhere: dropped, and its
        // replacement (same identity, not older) is taken.
        m.reject(&mine);
        assert_eq!(m.request(t0, None), TokenStep::Fetch);
        let key = m.share_key().unwrap();
        let fresh = user_jwt(t0 / 1000 + 600, "u1") + "x";
        assert!(m.adopt(t0, &fresh, &claims(&fresh)));
        assert_eq!(m.lock_granted(t0, &key), TokenStep::Use(fresh), "replaced while waiting for the lock");
    }

    /// A request refused its token while the tab holds another (told by a
    /// tab that fetched in the same second): one as old is no replacement.
    #[test]
    fn a_refused_token_is_replaced_by_a_newer_one_only() {
        let t0 = 1_800_000_000_000;
        let exp = t0 / 1000 + 600;
        let claims = |t: &str| claims_of(t).unwrap();
        let mut m = TokenManager::new();
        m.request(t0, None);
        let streamed = user_jwt(exp, "u1") + "b";
        m.fetched(t0, Ok(streamed.clone())).unwrap();
        let twin = user_jwt(exp, "u1") + "a";
        assert!(m.adopt(t0, &twin, &claims(&twin)), "as new, first in byte order: the tabs agree on it");
        assert!(m.refused(&streamed, Some(exp * 1000)));
        assert_eq!(m.request(t0, None), TokenStep::Fetch, "the twin expires as soon: not used");
        let older = user_jwt(exp - 60, "u1");
        assert!(!m.adopt(t0, &twin, &claims(&twin)) && !m.adopt(t0, &older, &claims(&older)), "nor taken when told");
        let newer = user_jwt(exp + 1, "u1");
        assert!(m.adopt(t0, &newer, &claims(&newer)));
        assert_eq!(m.request(t0, None), TokenStep::Use(newer.clone()));
        // A newer token held is kept when an older one is refused.
        assert!(m.refused(&twin, Some(exp * 1000)));
        assert_eq!(m.request(t0, None), TokenStep::Use(newer));
    }

    #[test]
    fn token_messages_round_trip_and_garbage_is_none() {
        for m in [TokenMessage::Token("a.b.c".into()), TokenMessage::Rejected("x\"y".into())] {
            assert_eq!(TokenMessage::parse(&m.to_json()), Some(m));
        }
        for junk in [
            "",
            "null",
            "[]",
            r#"{"sdk":"valet-sdk","v":2,"kind":"token","token":"t"}"#,
            r#"{"sdk":"other","v":1,"kind":"token","token":"t"}"#,
            r#"{"sdk":"valet-sdk","v":1,"kind":"token","token":""}"#,
            r#"{"sdk":"valet-sdk","v":1,"kind":"token","token":5}"#,
            r#"{"sdk":"valet-sdk","v":1,"kind":"steal","token":"t"}"#,
        ] {
            assert_eq!(TokenMessage::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn identity_is_the_json_array_the_browser_builds() {
        let c = read_claims(&jwt(r#"{"iss":"k\"1","source_key":"u","exp":5}"#)).unwrap();
        assert_eq!(c.identity(), r#"["k\"1",null,"u",null]"#);
    }

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
