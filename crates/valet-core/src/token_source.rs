//! A client's token source as one sans-IO machine
//! ([`TokenSource::handle`]: one input type, one action type), over the
//! [`TokenManager`]'s cache and schedule: every decision of the token
//! lifecycle is made here; the host calls `fetchJwt`, holds the Web Lock,
//! the tabs' token channel and the timers, and hands each request its
//! answer.
//!
//! Decisions:
//! - One `fetchJwt` call for every concurrent request (single flight); a
//!   token the server refused is never handed out again, and the other
//!   tabs are told of it; nor is one that expires no later than it.
//! - Tabs share tokens: a token that must be replaced is fetched under a
//!   Web Lock named after it ([`TokenManager::share_key`]), so one tab
//!   fetches while the others wait for the token it tells on the channel.
//!   The fetching tab keeps the lock until its next refresh (a tab that
//!   missed the told token then queues behind it instead of fetching at
//!   once). A tab that waits longer than `fetchJwtTimeoutMs` + 1 s for the
//!   lock, or for another tab's token, fetches for itself. Without a
//!   channel or Web Locks, or before a first token, a tab fetches at once.
//! - A failed fetch releases the lock (the next tab in line tries) and
//!   fails every waiting request with the manager's verdict.
//! - A told token is taken when the manager says so (same identity, newer,
//!   not refused, not expired): it ends the wait for the lock, and every
//!   waiting request gets it. A tab whose own token is the better one tells
//!   it back.
//! - A convo opening needs a token first: told of it (`Active(+1)`), the
//!   source fetches one at once unless it holds one or a fetch is on its
//!   way, and the convo's own request then joins that fetch.
//! - While any convo is open, a refresh timer follows the token: due at
//!   [`TokenManager::refresh_due_at`], and waking at least every minute so
//!   that a corrected server clock takes effect.

use crate::error::ClientError;
#[allow(unused_imports)]
use crate::prelude::*;
use crate::token::{FetchFailure, Heard, ServerClock, TokenClaims, TokenManager, TokenMessage, TokenStep};

/// The refresh timer wakes at least this often (to follow a corrected clock).
pub const REFRESH_CHECK_MS: u64 = 60_000;

/// How long past `fetchJwtTimeoutMs` a tab waits for the lock, or for
/// another tab's token, before it fetches for itself.
pub const GIVE_UP_EXTRA_MS: u64 = 1_000;

/// The source's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTimer {
    /// Time to replace the token ahead of expiry (or to look again).
    Refresh,
    /// The wait for the lock or for another tab's token is over.
    GiveUp,
}

/// Inputs, from the host.
#[derive(Debug, Clone)]
pub enum TokenInput {
    /// A request wants a token; answer it with [`TokenAction::Settle`] and
    /// this `id`. With `reject`, the server refused that token.
    Get {
        /// The host's id for the request.
        id: u64,
        /// A token the server refused.
        reject: Option<String>,
    },
    /// `fetchJwt` settled.
    Fetched(Result<String, FetchFailure>),
    /// A message on the tabs' token channel (text).
    Heard(String),
    /// The lock of [`TokenAction::RequestLock`] `epoch` was granted.
    LockGranted {
        /// The request it answers.
        epoch: u64,
    },
    /// A timer fired.
    Timer(TokenTimer),
    /// A convo opened (`+1`: without a token, one is fetched now) or
    /// closed (`-1`).
    Active(i32),
    /// The server's clock as the page knows it now.
    Clock(ServerClock),
}

/// Actions, for the host to carry out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenAction {
    /// Call the app's `fetchJwt` (within `fetchJwtTimeoutMs`); answer with
    /// [`TokenInput::Fetched`].
    CallFetchJwt,
    /// Answer request `id`.
    Settle {
        /// The request.
        id: u64,
        /// The token, or why none.
        result: Result<String, ClientError>,
    },
    /// Ask for the Web Lock `name`, replacing (releasing) any lock asked
    /// for or kept before; answer a grant with [`TokenInput::LockGranted`].
    RequestLock {
        /// The lock's name (the host's prefix, then this).
        key: String,
        /// This request.
        epoch: u64,
    },
    /// Release the lock, or withdraw the request.
    ReleaseLock,
    /// Post this message on the tabs' token channel.
    Post(String),
    /// (Re)arm a timer.
    SetTimer {
        /// Which.
        timer: TokenTimer,
        /// Delay from now.
        delay_ms: u64,
    },
    /// Cancel a timer.
    ClearTimer(TokenTimer),
    /// A debug line (never a token).
    Log(&'static str),
    /// A `fetchJwt` call settled (for the `token_refresh` hook).
    Refreshed {
        /// It gave a usable token.
        ok: bool,
    },
}

/// A client's token source.
#[derive(Debug)]
pub struct TokenSource {
    manager: TokenManager,
    claims_of: fn(&str) -> Result<TokenClaims, String>,
    /// The host has a channel to the other tabs and Web Locks.
    shared: bool,
    timeout_ms: u64,
    waiters: Vec<u64>,
    active: u32,
    refresh_armed: bool,
    fetching: bool,
    fetches: u64,
    lock_epoch: u64,
    /// The key of the lock asked for (granted or not), by its epoch.
    lock_key: Option<String>,
    out: Vec<TokenAction>,
}

impl TokenSource {
    /// A source that reads claims with `claims_of` (the browser's `atob`
    /// and `JSON.parse`, or [`crate::token::claims_of`] natively); with
    /// `shared`, the host has the tabs' channel and Web Locks.
    pub fn new(claims_of: fn(&str) -> Result<TokenClaims, String>, shared: bool, fetch_jwt_timeout_ms: u64) -> Self {
        TokenSource {
            manager: TokenManager::new(),
            claims_of,
            shared,
            timeout_ms: fetch_jwt_timeout_ms,
            waiters: Vec::new(),
            active: 0,
            refresh_armed: false,
            fetching: false,
            fetches: 0,
            lock_epoch: 0,
            lock_key: None,
            out: Vec::new(),
        }
    }

    /// `fetchJwt` calls made so far.
    pub fn fetches(&self) -> u64 {
        self.fetches
    }

    /// The token manager (its cache and schedule).
    pub fn manager(&self) -> &TokenManager {
        &self.manager
    }

    /// Handles one input at `now_ms`; returns the actions to carry out.
    pub fn handle(&mut self, now_ms: u64, input: TokenInput) -> Vec<TokenAction> {
        match input {
            TokenInput::Get { id, reject } => {
                if let Some(bad) = reject {
                    let exp_ms = (self.claims_of)(&bad).ok().and_then(|c| c.exp_ms());
                    if self.manager.refused(&bad, exp_ms) {
                        self.out.push(TokenAction::Post(TokenMessage::Rejected(bad).to_json()));
                    }
                }
                match self.manager.request(now_ms, None) {
                    TokenStep::Use(token) => self.out.push(TokenAction::Settle { id, result: Ok(token) }),
                    TokenStep::Fetch => {
                        self.waiters.push(id);
                        self.start_fetch();
                    }
                    TokenStep::Wait => self.waiters.push(id),
                }
            }
            TokenInput::Fetched(raw) => {
                self.fetching = false;
                let result = self.manager.fetched_with(now_ms, raw, self.claims_of);
                self.out.push(TokenAction::Refreshed { ok: result.is_ok() });
                match &result {
                    // Told while the lock is kept: a tab that gets it later finds the token replaced.
                    Ok(jwt) => {
                        self.out.push(TokenAction::Log("got a token from fetchJwt"));
                        self.out.push(TokenAction::Post(TokenMessage::Token(jwt.clone()).to_json()));
                    }
                    // Let the next tab in line try.
                    Err(_) => self.drop_lock(),
                }
                self.settle(now_ms, result);
            }
            TokenInput::Heard(text) => self.heard(now_ms, &text),
            TokenInput::LockGranted { epoch } => {
                if epoch != self.lock_epoch {
                    return core::mem::take(&mut self.out);
                }
                let key = self.lock_key.clone().unwrap_or_default();
                match self.manager.lock_granted(now_ms, &key) {
                    TokenStep::Use(jwt) => {
                        self.drop_lock();
                        self.settle(now_ms, Ok(jwt));
                    }
                    _ => {
                        // Keep the lock (until the next refresh) and fetch.
                        self.out.push(TokenAction::ClearTimer(TokenTimer::GiveUp));
                        self.call_fetch_jwt();
                    }
                }
            }
            TokenInput::Timer(TokenTimer::GiveUp) => {
                if self.manager.in_flight() && !self.fetching {
                    self.out.push(TokenAction::Log("no token from the other tabs in time: fetching one here"));
                    self.drop_lock();
                    self.call_fetch_jwt();
                }
            }
            TokenInput::Timer(TokenTimer::Refresh) => {
                self.refresh_armed = false;
                // Not due yet (a check, or the clock was corrected): wait on.
                if self.manager.refresh_due_at().is_some_and(|due| due > now_ms) {
                    self.arm_refresh(now_ms);
                } else if self.manager.begin_refresh() {
                    self.out.push(TokenAction::Log("refreshing the token ahead of expiry"));
                    self.start_fetch();
                }
            }
            TokenInput::Active(delta) => {
                self.active = (self.active as i32 + delta).max(0) as u32;
                if self.active == 0 {
                    if core::mem::take(&mut self.refresh_armed) {
                        self.out.push(TokenAction::ClearTimer(TokenTimer::Refresh));
                    }
                } else {
                    if delta > 0 && self.manager.request(now_ms, None) == TokenStep::Fetch {
                        self.start_fetch();
                    }
                    self.arm_refresh(now_ms);
                }
            }
            TokenInput::Clock(clock) => self.manager.set_server_clock(clock),
        }
        core::mem::take(&mut self.out)
    }

    /// A message from another tab: a token to take, or one refused.
    fn heard(&mut self, now_ms: u64, text: &str) {
        match TokenMessage::parse(text) {
            Some(TokenMessage::Token(jwt)) => {
                let Ok(claims) = (self.claims_of)(&jwt) else { return };
                match self.manager.hear(now_ms, &jwt, &claims) {
                    Heard::Took => {
                        // No need for the lock any more: withdraw from its queue.
                        self.drop_lock();
                        self.out.push(TokenAction::Log("took the token another tab fetched"));
                        self.settle(now_ms, Ok(jwt));
                    }
                    Heard::Better(ours) => self.out.push(TokenAction::Post(TokenMessage::Token(ours).to_json())),
                    Heard::Ignored => {}
                }
            }
            Some(TokenMessage::Rejected(jwt)) if self.manager.reject(&jwt) => {
                self.out.push(TokenAction::Log("another tab's request was refused its token: it is not used here"));
            }
            _ => {}
        }
    }

    /// A token must be fetched: under the lock named after the token it
    /// replaces, where the other tabs can wait for it; else at once.
    fn start_fetch(&mut self) {
        let Some(key) = self.manager.share_key().filter(|_| self.shared) else { return self.call_fetch_jwt() };
        self.lock_epoch += 1;
        self.lock_key = Some(key.clone());
        self.out.push(TokenAction::RequestLock { key, epoch: self.lock_epoch });
        self.out.push(TokenAction::SetTimer { timer: TokenTimer::GiveUp, delay_ms: self.timeout_ms.saturating_add(GIVE_UP_EXTRA_MS) });
    }

    /// Withdraws from the lock's queue, or releases it.
    fn drop_lock(&mut self) {
        if self.lock_key.take().is_some() {
            self.lock_epoch += 1;
            self.out.push(TokenAction::ClearTimer(TokenTimer::GiveUp));
            self.out.push(TokenAction::ReleaseLock);
        }
    }

    fn call_fetch_jwt(&mut self) {
        self.fetches += 1;
        self.fetching = true;
        self.out.push(TokenAction::CallFetchJwt);
    }

    /// Every waiting request gets `result`; the refresh timer follows the token.
    fn settle(&mut self, now_ms: u64, result: Result<String, ClientError>) {
        if core::mem::take(&mut self.refresh_armed) {
            self.out.push(TokenAction::ClearTimer(TokenTimer::Refresh));
        }
        self.arm_refresh(now_ms);
        for id in core::mem::take(&mut self.waiters) {
            self.out.push(TokenAction::Settle { id, result: result.clone() });
        }
    }

    fn arm_refresh(&mut self, now_ms: u64) {
        if self.active == 0 || self.refresh_armed {
            return;
        }
        let Some(due) = self.manager.refresh_due_at() else { return };
        self.refresh_armed = true;
        let delay_ms = due.saturating_sub(now_ms).min(REFRESH_CHECK_MS);
        self.out.push(TokenAction::SetTimer { timer: TokenTimer::Refresh, delay_ms });
    }
}
