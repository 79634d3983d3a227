//! The client's token source: carries out `valet_core::token_source`'s
//! actions, which decide everything (single flight, the lock shared with
//! the other tabs, told tokens, the refresh timer).
//!
//! It holds the handles: the app's `fetchJwt()` (called in JS, capped by
//! `fetchJwtTimeoutMs`), the requests waiting for a token, the timers, the
//! tabs' token channel (a BroadcastChannel per API and agent) and the Web
//! Lock named after the token being replaced. The server's clock, from the
//! `Date` of every answer ([`observe_server_date`]), is the page's one
//! `ServerClock`, handed to the machine before each input. Without
//! BroadcastChannel, or without Web Locks, the machine does not share.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};
use core::future::Future;

use crate::rt::Listener;
#[cfg(target_arch = "wasm32")]
use crate::rt::PageCell;
use crate::rt::Timeout;
use valet_core::error::{ClientError, ErrorCode};
use valet_core::token::{FetchFailure, ServerClock, TokenClaims};
use valet_core::token_source::{TokenAction, TokenInput, TokenSource as Machine, TokenTimer};
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
pub(crate) fn claims_of(jwt: &str) -> Result<TokenClaims, String> {
    let claims = jwt_claims(jwt);
    if let Some(why) = claims.as_string() {
        return Err(why);
    }
    let claims: js_sys::Array = claims.unchecked_into();
    Ok(TokenClaims { exp: claims.get(0).as_f64().map(|e| e as i64), identity: claims.get(1).as_string().unwrap_or_default() })
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
}

impl Drop for Share {
    fn drop(&mut self) {
        self.channel.close();
    }
}

/// Shared by every convo of a client.
pub struct TokenSource {
    machine: RefCell<Machine>,
    fetch_jwt: js_sys::Function,
    timeout_ms: u64,
    waiters: RefCell<Vec<(u64, Waiter)>>,
    next_id: Cell<u64>,
    timers: RefCell<Vec<(TokenTimer, Timeout)>>,
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

impl TokenSource {
    /// A source over the app's `fetchJwt`, sharing with the other tabs'
    /// sources for the same API and agent.
    pub fn new(fetch_jwt: js_sys::Function, timeout_ms: u64, log: Logger, hook: Hook, api: &str, agent_id: &str) -> Rc<TokenSource> {
        Rc::new_cyclic(|this: &Weak<TokenSource>| {
            let share = token_channel(&valet_core::cat!("valet-token:", api, ":", agent_id)).ok().flatten().map(|channel| {
                let source = this.clone();
                let listener = crate::rt::listen(&channel, "message", move |text| {
                    if let (Some(s), Some(text)) = (source.upgrade(), text) {
                        s.run(TokenInput::Heard(text));
                    }
                });
                Share { channel, _listener: listener, lock_prefix: valet_core::cat!("valet-token:", api, ":", agent_id, ":"), lock: RefCell::new(None) }
            });
            let shared = share.is_some() && locks_available();
            TokenSource {
                machine: RefCell::new(Machine::new(claims_of, shared, timeout_ms)),
                fetch_jwt,
                timeout_ms,
                waiters: RefCell::new(Vec::new()),
                next_id: Cell::new(0),
                timers: RefCell::new(Vec::new()),
                log,
                hook,
                share,
                this: this.clone(),
            }
        })
    }

    /// A token (cached, or fetched once for all concurrent callers). With
    /// `reject`, the server refused that token: it is never returned again.
    /// Asked for when called (a `fetchJwt` call it needs is made then, not
    /// when the answer is first awaited).
    pub fn get(&self, reject: Option<String>) -> impl Future<Output = Result<String, ClientError>> + 'static {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let (tx, rx) = crate::rt::oneshot();
        self.waiters.write().push((id, tx));
        self.run(TokenInput::Get { id, reject });
        async move { rx.await.unwrap_or_else(|| Err(ClientError::new(ErrorCode::Auth, "token fetch abandoned"))) }
    }

    /// A convo opened (`+1`) or closed (`-1`): refresh ahead only while any is open.
    pub fn set_active(&self, delta: i32) {
        self.run(TokenInput::Active(delta));
    }

    /// `fetchJwt` calls made so far.
    pub fn fetches(&self) -> u64 {
        self.machine.read().fetches()
    }

    /// Hands `input` to the machine (with the page's server clock first),
    /// then carries out its actions.
    fn run(&self, input: TokenInput) {
        let now = now_ms();
        let actions = {
            let mut machine = self.machine.write();
            machine.handle(now, TokenInput::Clock(page_clock()));
            machine.handle(now, input)
        };
        for action in actions {
            self.execute(action);
        }
    }

    fn execute(&self, action: TokenAction) {
        match action {
            TokenAction::CallFetchJwt => {
                let Some(this) = self.this.upgrade() else { return };
                // Called now: its request goes out before what runs after.
                let answer = self.call_fetch_jwt();
                crate::rt::spawn(async move {
                    let raw = answer.await;
                    this.run(TokenInput::Fetched(raw));
                });
            }
            TokenAction::Settle { id, result } => {
                let waiter = {
                    let mut waiters = self.waiters.write();
                    waiters.iter().position(|(w, _)| *w == id).map(|at| waiters.remove(at).1)
                };
                if let Some(tx) = waiter {
                    tx.send(result);
                }
            }
            TokenAction::RequestLock { key, epoch } => {
                let Some(share) = &self.share else { return };
                let this = self.this.clone();
                let cb = Closure::<dyn FnMut(bool)>::new(move |granted: bool| {
                    if let Some(s) = this.upgrade().filter(|_| granted) {
                        s.run(TokenInput::LockGranted { epoch });
                    }
                });
                let release = request_lock(&valet_core::cat!(share.lock_prefix, key), false, cb.as_ref());
                // Replacing the handle releases the lock kept since the last fetch.
                let old = share.lock.write().replace(LockHandle::new(release, cb));
                drop(old);
            }
            TokenAction::ReleaseLock => {
                if let Some(share) = &self.share {
                    let old = share.lock.write().take();
                    drop(old);
                }
            }
            TokenAction::Post(text) => {
                if let Some(share) = &self.share {
                    let _ = share.channel.post_message(&JsValue::from_str(&text));
                }
            }
            TokenAction::SetTimer { timer, delay_ms } => {
                let this = self.this.clone();
                let t = Timeout::new(delay_ms, move || {
                    if let Some(s) = this.upgrade() {
                        s.run(TokenInput::Timer(timer));
                    }
                });
                let old = self.take_timer(timer);
                drop(old);
                self.timers.write().push((timer, t));
            }
            TokenAction::ClearTimer(timer) => {
                let old = self.take_timer(timer);
                drop(old);
            }
            TokenAction::Log(line) => self.log.log(line),
            TokenAction::Refreshed { ok } => {
                if self.hook.is_set() {
                    let ok = if ok { "true" } else { "false" };
                    self.hook.call("token_refresh", &valet_core::cat!("{\"ok\":", ok, "}"));
                }
            }
        }
    }

    fn take_timer(&self, timer: TokenTimer) -> Option<Timeout> {
        let mut timers = self.timers.write();
        timers.iter().position(|(t, _)| *t == timer).map(|at| timers.remove(at).1)
    }

    /// Calls `fetchJwt` now; the future reads its answer.
    fn call_fetch_jwt(&self) -> impl Future<Output = Result<String, FetchFailure>> + 'static {
        let timeout_ms = self.timeout_ms;
        let answer = JsFuture::from(call_fetch_jwt(&self.fetch_jwt, timeout_ms as f64));
        async move {
            match answer.await {
                Ok(jwt) => Ok(jwt.as_string().unwrap_or_default()),
                Err(e) => Err(match e.as_f64() {
                    Some(0.0) => FetchFailure::TimedOut(timeout_ms),
                    Some(_) => FetchFailure::NotAString,
                    None if js_sys::Array::is_array(&e) => {
                        FetchFailure::SignedOut(js_sys::Array::from(&e).get(0).as_string().unwrap_or_default())
                    }
                    None => FetchFailure::Threw(e.as_string().unwrap_or_default()),
                }),
            }
        }
    }
}
