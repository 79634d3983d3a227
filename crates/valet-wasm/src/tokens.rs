//! The client's token source: carries out `valet_core::token::TokenManager`.
//!
//! It calls the app's `fetchJwt()` (capped by `fetchJwtTimeoutMs`), hands
//! the result to every waiter of the single flight, and keeps a refresh
//! timer ahead of expiry while any convo is open. The server's clock, from
//! the `Date` of every answer ([`observe_server_date`]), is the page's one
//! `ServerClock`, which each source takes before it decides; the refresh
//! timer wakes at least once a minute to take a corrected clock into
//! account.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use gloo_timers::callback::Timeout;
use gloo_timers::future::TimeoutFuture;
use valet_core::error::{ClientError, ErrorCode};
use valet_core::token::{FetchFailure, ServerClock, TokenManager, TokenStep};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::log::{Hook, Logger};

type Waiter = oneshot::Sender<Result<String, ClientError>>;

#[wasm_bindgen(inline_js = r#"
export function jwtExp(jwt) {
  const parts = jwt.split(".");
  if (parts.length !== 3) throw new Error("not a JWT (three dot-separated parts)");
  let b = parts[1].replace(/-/g, "+").replace(/_/g, "/");
  while (b.length % 4) b += "=";
  let claims;
  try { claims = JSON.parse(atob(b)); } catch (_) { throw new Error("the payload is not base64url JSON"); }
  if (!claims || typeof claims !== "object" || Array.isArray(claims)) throw new Error("the payload is not a JSON object of claims");
  return typeof claims.exp === "number" && Number.isFinite(claims.exp) ? claims.exp : undefined;
}
"#)]
extern "C" {
    /// The JWT's `exp` (unverified: the client only schedules refreshes by it).
    #[wasm_bindgen(js_name = jwtExp, catch)]
    fn jwt_exp(jwt: &str) -> Result<JsValue, JsValue>;
}

/// Reads `exp` with the browser's `atob` and `JSON.parse`.
fn jwt_exp_of(jwt: &str) -> Result<Option<i64>, String> {
    match jwt_exp(jwt) {
        Ok(v) => Ok(v.as_f64().map(|e| e as i64)),
        Err(e) => Err(e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| "unreadable".into())),
    }
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
    log: Logger,
    hook: Hook,
    this: Weak<TokenSource>,
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

thread_local! {
    /// The server's clock as the page's answers tell it.
    static CLOCK: Cell<ServerClock> = Cell::new(ServerClock::default());
}

/// An answer's `Date` header: the page's server clock takes it.
pub fn observe_server_date(date: &str) {
    let server_ms = js_sys::Date::parse(date);
    if server_ms.is_finite() && server_ms > 0.0 {
        CLOCK.with(|c| {
            let mut clock = c.get();
            clock.observe(now_ms(), server_ms as u64);
            c.set(clock);
        });
    }
}

/// The refresh timer wakes at least this often (to follow a corrected clock).
const REFRESH_CHECK_MS: u64 = 60_000;

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "rejected".to_owned())
}

impl TokenSource {
    /// A source over the app's `fetchJwt`.
    pub fn new(fetch_jwt: js_sys::Function, timeout_ms: u64, log: Logger, hook: Hook) -> Rc<TokenSource> {
        Rc::new_cyclic(|this| TokenSource {
            manager: RefCell::new(TokenManager::new()),
            fetch_jwt,
            timeout_ms,
            waiters: RefCell::new(Vec::new()),
            refresh: RefCell::new(None),
            active: Cell::new(0),
            fetches: Cell::new(0),
            log,
            hook,
            this: this.clone(),
        })
    }

    /// A token (cached, or fetched once for all concurrent callers). With
    /// `reject`, the server refused that token: it is never returned again.
    pub async fn get(&self, reject: Option<String>) -> Result<String, ClientError> {
        let step = self.manager().request(now_ms(), reject.as_deref());
        match step {
            TokenStep::Use(t) => Ok(t),
            TokenStep::Fetch => {
                let rx = self.wait();
                self.spawn_fetch();
                rx.await.unwrap_or_else(|_| Err(ClientError::new(ErrorCode::Auth, "token fetch abandoned")))
            }
            TokenStep::Wait => {
                let rx = self.wait();
                rx.await.unwrap_or_else(|_| Err(ClientError::new(ErrorCode::Auth, "token fetch abandoned")))
            }
        }
    }

    /// The manager, with the page's server clock.
    fn manager(&self) -> std::cell::RefMut<'_, TokenManager> {
        let mut m = self.manager.borrow_mut();
        m.set_server_clock(CLOCK.with(Cell::get));
        m
    }

    fn wait(&self) -> oneshot::Receiver<Result<String, ClientError>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().push(tx);
        rx
    }

    /// A convo opened (`+1`) or closed (`-1`): refresh ahead only while any is open.
    pub fn set_active(&self, delta: i32) {
        let n = (self.active.get() as i32 + delta).max(0) as u32;
        self.active.set(n);
        if n == 0 {
            self.refresh.borrow_mut().take();
        } else {
            self.arm_refresh();
        }
    }

    fn arm_refresh(&self) {
        if self.active.get() == 0 || self.refresh.borrow().is_some() {
            return;
        }
        let Some(due) = self.manager().refresh_due_at() else { return };
        let delay = due.saturating_sub(now_ms()).min(REFRESH_CHECK_MS) as u32;
        let this = self.this.clone();
        *self.refresh.borrow_mut() = Some(Timeout::new(delay, move || {
            if let Some(s) = this.upgrade() {
                s.refresh.borrow_mut().take();
                // Not due yet (a check, or the clock was corrected): wait on.
                if s.manager().refresh_due_at().is_some_and(|due| due > now_ms()) {
                    return s.arm_refresh();
                }
                if s.manager.borrow_mut().begin_refresh() {
                    s.log.log("refreshing the token ahead of expiry");
                    s.spawn_fetch();
                }
            }
        }));
    }

    /// `fetchJwt` calls made so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.get()
    }

    fn spawn_fetch(&self) {
        let Some(this) = self.this.upgrade() else { return };
        self.fetches.set(self.fetches.get() + 1);
        wasm_bindgen_futures::spawn_local(async move {
            let raw = this.call_fetch_jwt().await;
            let result = this.manager().fetched_with(now_ms(), raw, jwt_exp_of);
            if this.hook.is_set() {
                let ok = if result.is_ok() { "true" } else { "false" };
                this.hook.call("token_refresh", &format!("{{\"ok\":{ok}}}"));
            }
            match &result {
                Ok(_) => this.log.log("got a token from fetchJwt"),
                Err(e) => this.log.log(&format!("fetchJwt: {}", e.message)),
            }
            this.refresh.borrow_mut().take();
            this.arm_refresh();
            let waiters = std::mem::take(&mut *this.waiters.borrow_mut());
            for w in waiters {
                let _ = w.send(result.clone());
            }
        });
    }

    async fn call_fetch_jwt(&self) -> Result<String, FetchFailure> {
        let value = self.fetch_jwt.call0(&JsValue::UNDEFINED).map_err(|e| FetchFailure::Threw(describe(&e)))?;
        let promise = js_sys::Promise::resolve(&value);
        let fetch = JsFuture::from(promise);
        let timeout = TimeoutFuture::new(self.timeout_ms.min(i32::MAX as u64) as u32);
        match select(fetch, timeout).await {
            Either::Left((Ok(v), _)) => v.as_string().ok_or(FetchFailure::NotAString),
            Either::Left((Err(e), _)) => Err(FetchFailure::Threw(describe(&e))),
            Either::Right(_) => Err(FetchFailure::TimedOut(self.timeout_ms)),
        }
    }
}
