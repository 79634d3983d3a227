//! The client's token source: carries out `valet_core::token::TokenManager`.
//!
//! It calls the app's `fetchJwt()` (capped by `fetchJwtTimeoutMs`), hands
//! the result to every waiter of the single flight, and keeps a refresh
//! timer ahead of expiry while any convo is open. The server's clock, from
//! the `Date` of every answer ([`observe_server_date`]), is the page's one
//! `ServerClock`, which each source takes before it decides; the refresh
//! timer wakes at least once a minute to take a corrected clock into
//! account.
//!
//! Tabs share tokens (`valet_core::token`'s "one refresh per browser"): a
//! BroadcastChannel per (API, agent) carries each token a tab fetched and
//! each token the server refused; a Web Lock named after the token being
//! replaced lets one tab fetch while the others wait for its token. Without
//! BroadcastChannel each tab is on its own; without Web Locks a tab fetches
//! for itself but still takes the others' tokens and rejections.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};

use crate::rt::Listener;
#[cfg(target_arch = "wasm32")]
use crate::rt::PageCell;
use crate::rt::Timeout;
use valet_core::error::{ClientError, ErrorCode};
use valet_core::token::{FetchFailure, Heard, ServerClock, TokenClaims, TokenManager, TokenMessage, TokenStep};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::log::{Hook, Logger};
use crate::tabs::{locks_available, request_lock, LockHandle};

type Waiter = crate::rt::Sender<Result<String, ClientError>>;

#[wasm_bindgen(module = "/js/tokens.js")]
extern "C" {
    /// The JWT's `[exp, identity]` (unverified: the client only schedules
    /// refreshes by them, and shares tokens between tabs of one identity),
    /// or why they can't be read (a string).
    #[wasm_bindgen(js_name = jwtClaims)]
    fn jwt_claims(jwt: &str) -> JsValue;
    /// Calls the app's `fetchJwt`, for at most `ms`: resolves to the token,
    /// or rejects with 0 (no answer in time), 1 (not a string), `[message]`
    /// (a `ValetError` of code `auth`: the user is signed out), or why it
    /// threw or rejected, as a string (an `Error`'s message, a string as it
    /// is, anything else "rejected": a number it throws is not one of ours).
    #[wasm_bindgen(js_name = callFetchJwt)]
    fn call_fetch_jwt(fetch_jwt: &js_sys::Function, ms: f64) -> js_sys::Promise;
    /// The tabs' token channel, where BroadcastChannel exists (in Node
    /// `unref`'d: an open channel must not keep the process alive).
    #[wasm_bindgen(js_name = tokenChannel, catch)]
    fn token_channel(name: &str) -> Result<Option<web_sys::BroadcastChannel>, JsValue>;
}

/// Reads the claims with the browser's `atob` and `JSON.parse`.
fn claims_of(jwt: &str) -> Result<TokenClaims, String> {
    let claims = jwt_claims(jwt);
    if let Some(why) = claims.as_string() {
        return Err(why);
    }
    let claims: js_sys::Array = claims.unchecked_into();
    Ok(TokenClaims { exp: claims.get(0).as_f64().map(|e| e as i64), identity: claims.get(1).as_string().unwrap_or_default() })
}

impl Drop for Share {
    fn drop(&mut self) {
        self.channel.close();
    }
}

/// The link to the other tabs' token sources.
struct Share {
    channel: web_sys::BroadcastChannel,
    _listener: Listener,
    /// `valet-token:{api}:{agent}:`, the prefix of the locks' names.
    lock_prefix: String,
    /// The lock asked for (to replace a token) or kept (after fetching its
    /// replacement, until the next one).
    lock: RefCell<Option<LockHandle>>,
    /// A wait for the lock (or for another tab's token) lasts at most
    /// `fetchJwtTimeoutMs` and a second; then this tab fetches for itself.
    give_up: RefCell<Option<Timeout>>,
}

/// Shared by every convo of a client.
pub struct TokenSource {
    manager: RefCell<TokenManager>,
    fetch_jwt: js_sys::Function,
    timeout_ms: u64,
    waiters: RefCell<Vec<Waiter>>,
    refresh: RefCell<Option<Timeout>>,
    active: Cell<u32>,
    fetches: Cell<u64>,
    /// A `fetchJwt` call of this tab is running.
    fetching: Cell<bool>,
    log: Logger,
    hook: Hook,
    share: Option<Share>,
    this: Weak<TokenSource>,
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The server's clock as the page's answers tell it (in the browser; built
/// natively, for the workspace's checks, the glue never runs).
#[cfg(target_arch = "wasm32")]
static CLOCK: PageCell<ServerClock> = PageCell::new(ServerClock::UNKNOWN);

#[cfg(target_arch = "wasm32")]
fn page_clock() -> ServerClock {
    CLOCK.get()
}

#[cfg(not(target_arch = "wasm32"))]
fn page_clock() -> ServerClock {
    ServerClock::UNKNOWN
}

/// An answer's `Date` header: the page's server clock takes it.
pub fn observe_server_date(date: &str) {
    let server_ms = js_sys::Date::parse(date);
    if server_ms.is_finite() && server_ms > 0.0 {
        let mut clock = page_clock();
        clock.observe(now_ms(), server_ms as u64);
        #[cfg(target_arch = "wasm32")]
        CLOCK.set(clock);
    }
}

/// The refresh timer wakes at least this often (to follow a corrected clock).
const REFRESH_CHECK_MS: u64 = 60_000;

impl TokenSource {
    /// A source over the app's `fetchJwt`, sharing with the other tabs'
    /// sources for the same API and agent.
    pub fn new(fetch_jwt: js_sys::Function, timeout_ms: u64, log: Logger, hook: Hook, api: &str, agent_id: &str) -> Rc<TokenSource> {
        Rc::new_cyclic(|this: &Weak<TokenSource>| TokenSource {
            share: token_channel(&valet_core::cat!("valet-token:", api, ":", agent_id)).ok().flatten().map(|channel| {
                let source = this.clone();
                let listener = crate::rt::listen(&channel, "message", move |text| {
                    if let (Some(s), Some(text)) = (source.upgrade(), text) {
                        s.heard(&text);
                    }
                });
                Share {
                    channel,
                    _listener: listener,
                    lock_prefix: valet_core::cat!("valet-token:", api, ":", agent_id, ":"),
                    lock: RefCell::new(None),
                    give_up: RefCell::new(None),
                }
            }),
            manager: RefCell::new(TokenManager::new()),
            fetch_jwt,
            timeout_ms,
            waiters: RefCell::new(Vec::new()),
            refresh: RefCell::new(None),
            active: Cell::new(0),
            fetches: Cell::new(0),
            fetching: Cell::new(false),
            log,
            hook,
            this: this.clone(),
        })
    }

    /// A token (cached, or fetched once for all concurrent callers). With
    /// `reject`, the server refused that token: it is never returned again.
    pub async fn get(&self, reject: Option<String>) -> Result<String, ClientError> {
        if let Some(bad) = &reject {
            if self.manager().reject(bad) {
                self.tell(TokenMessage::Rejected(bad.clone()));
            }
        }
        let step = self.manager().request(now_ms(), None);
        match step {
            TokenStep::Use(t) => Ok(t),
            TokenStep::Fetch => {
                let rx = self.wait();
                self.start_fetch();
                rx.await.unwrap_or_else(|| Err(ClientError::new(ErrorCode::Auth, "token fetch abandoned")))
            }
            TokenStep::Wait => {
                let rx = self.wait();
                rx.await.unwrap_or_else(|| Err(ClientError::new(ErrorCode::Auth, "token fetch abandoned")))
            }
        }
    }

    /// The manager, with the page's server clock.
    fn manager(&self) -> core::cell::RefMut<'_, TokenManager> {
        let mut m = self.manager.write();
        m.set_server_clock(page_clock());
        m
    }

    fn wait(&self) -> crate::rt::Receiver<Result<String, ClientError>> {
        let (tx, rx) = crate::rt::oneshot();
        self.waiters.write().push(tx);
        rx
    }

    /// A convo opened (`+1`) or closed (`-1`): refresh ahead only while any is open.
    pub fn set_active(&self, delta: i32) {
        let n = (self.active.get() as i32 + delta).max(0) as u32;
        self.active.set(n);
        if n == 0 {
            self.refresh.write().take();
        } else {
            self.arm_refresh();
        }
    }

    fn arm_refresh(&self) {
        if self.active.get() == 0 || self.refresh.read().is_some() {
            return;
        }
        let Some(due) = self.manager().refresh_due_at() else { return };
        let delay = due.saturating_sub(now_ms()).min(REFRESH_CHECK_MS);
        let this = self.this.clone();
        *self.refresh.write() = Some(Timeout::new(delay, move || {
            if let Some(s) = this.upgrade() {
                s.refresh.write().take();
                // Not due yet (a check, or the clock was corrected): wait on.
                if s.manager().refresh_due_at().is_some_and(|due| due > now_ms()) {
                    return s.arm_refresh();
                }
                if s.manager.write().begin_refresh() {
                    s.log.log("refreshing the token ahead of expiry");
                    s.start_fetch();
                }
            }
        }));
    }

    /// `fetchJwt` calls made so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.get()
    }

    /// Posts a message to the other tabs' sources.
    fn tell(&self, message: TokenMessage) {
        if let Some(share) = &self.share {
            let _ = share.channel.post_message(&JsValue::from_str(&message.to_json()));
        }
    }

    /// A message from another tab: a token to take, or one refused.
    fn heard(&self, text: &str) {
        match TokenMessage::parse(text) {
            Some(TokenMessage::Token(jwt)) => {
                let Ok(claims) = claims_of(&jwt) else { return };
                let heard = self.manager().hear(now_ms(), &jwt, &claims);
                match heard {
                    Heard::Took => {
                        // No need for the lock any more: withdraw from its queue.
                        self.drop_lock();
                        self.log.log("took the token another tab fetched");
                        self.settle(Ok(jwt));
                    }
                    Heard::Better(ours) => self.tell(TokenMessage::Token(ours)),
                    Heard::Ignored => {}
                }
            }
            Some(TokenMessage::Rejected(jwt)) if self.manager().reject(&jwt) => {
                self.log.log("another tab's request was refused its token: it is not used here");
            }
            _ => {}
        }
    }

    /// A token must be fetched: under the lock named after the token it
    /// replaces, where the other tabs can wait for it; else at once.
    fn start_fetch(&self) {
        let (Some(share), Some(key)) = (&self.share, self.manager().share_key()) else { return self.spawn_fetch() };
        if !locks_available() {
            return self.spawn_fetch();
        }
        let this = self.this.clone();
        let granted_key = key.clone();
        let cb = Closure::<dyn FnMut(bool)>::new(move |granted: bool| {
            if let Some(s) = this.upgrade().filter(|_| granted) {
                s.lock_granted(&granted_key);
            }
        });
        let release = request_lock(&valet_core::cat!(share.lock_prefix, key), false, cb.as_ref());
        // Replacing the handle releases the lock kept since the last fetch.
        let old = share.lock.write().replace(LockHandle::new(release, cb));
        drop(old);
        let this = self.this.clone();
        let give_up = Timeout::new(self.timeout_ms.saturating_add(1_000), move || {
            if let Some(s) = this.upgrade().filter(|s| s.manager.read().in_flight() && !s.fetching.get()) {
                s.log.log("no token from the other tabs in time: fetching one here");
                s.drop_lock();
                s.spawn_fetch();
            }
        });
        *share.give_up.write() = Some(give_up);
    }

    /// Withdraws from the lock's queue, or releases it.
    fn drop_lock(&self) {
        if let Some(share) = &self.share {
            share.give_up.write().take();
            let old = share.lock.write().take();
            drop(old);
        }
    }

    fn lock_granted(&self, key: &str) {
        let step = self.manager().lock_granted(now_ms(), key);
        match step {
            TokenStep::Use(jwt) => {
                self.drop_lock();
                self.settle(Ok(jwt));
            }
            _ => {
                if let Some(share) = &self.share {
                    share.give_up.write().take();
                }
                self.spawn_fetch();
            }
        }
    }

    fn spawn_fetch(&self) {
        let Some(this) = self.this.upgrade() else { return };
        self.fetches.set(self.fetches.get() + 1);
        self.fetching.set(true);
        crate::rt::spawn(async move {
            let raw = this.call_fetch_jwt().await;
            this.fetching.set(false);
            let result = this.manager().fetched_with(now_ms(), raw, claims_of);
            if this.hook.is_set() {
                let ok = if result.is_ok() { "true" } else { "false" };
                this.hook.call("token_refresh", &valet_core::cat!("{\"ok\":", ok, "}"));
            }
            match &result {
                // Told while the lock is kept: a tab that gets it later finds the token replaced.
                Ok(jwt) => {
                    this.log.log("got a token from fetchJwt");
                    this.tell(TokenMessage::Token(jwt.clone()));
                }
                Err(e) => {
                    this.log.log(&valet_core::cat!("fetchJwt: ", e.message));
                    // Let the next tab in line try.
                    this.drop_lock();
                }
            }
            this.settle(result);
        });
    }

    /// Every waiter gets `result`; the refresh timer follows the token.
    fn settle(&self, result: Result<String, ClientError>) {
        self.refresh.write().take();
        self.arm_refresh();
        let waiters = core::mem::take(&mut *self.waiters.write());
        for w in waiters {
            w.send(result.clone());
        }
    }

    async fn call_fetch_jwt(&self) -> Result<String, FetchFailure> {
        match JsFuture::from(call_fetch_jwt(&self.fetch_jwt, self.timeout_ms as f64)).await {
            Ok(jwt) => Ok(jwt.as_string().unwrap_or_default()),
            Err(e) => Err(match e.as_f64() {
                Some(0.0) => FetchFailure::TimedOut(self.timeout_ms),
                Some(_) => FetchFailure::NotAString,
                None if js_sys::Array::is_array(&e) => {
                    FetchFailure::SignedOut(js_sys::Array::from(&e).get(0).as_string().unwrap_or_default())
                }
                None => FetchFailure::Threw(e.as_string().unwrap_or_default()),
            }),
        }
    }
}
