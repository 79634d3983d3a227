//! The browser around the sessions, and the glue's part: each page runs a
//! [`Session`] and carries out its actions the way `valet-wasm` does.
//!
//! - BroadcastChannel: a post reaches every other page, in the order each
//!   sender posted (usually within a few ms, sometimes much later); a
//!   frozen page's messages wait in its queue.
//! - Web Locks: one lock, granted in request order; `steal` takes it from
//!   its holder (who is told it lost it); a closed or crashed page's lock
//!   and requests are released; some browsers have none.
//! - Timers: a hidden page's fire on the next whole second (Chrome's
//!   throttling), a frozen page's when it thaws.
//! - `sessionStorage` keeps the resume point across a reload of the tab.
//! - `fetchJwt`: the app's backend mints a JWT (15 minutes or less) after a
//!   round trip; it may throw, hang (the SDK's timeout ends it), be slow, or
//!   return junk; offline, it throws. Each page runs the core's
//!   [`TokenSource`] as the glue does: tabs share tokens over their token
//!   channel and a Web Lock named after the token being replaced.
//! - `online`/`offline`: offline, every request fails at once; an open
//!   stream either resets or holds its bytes until the browser is back.

use std::collections::{BTreeMap, HashMap};

use crate::server::ServerEv;
use crate::{Ev, PageEv, Rng, World};
use base64::Engine as _;
use serde_json::Value;
use valet_core::action::{Action, Timer, TokenFor};
use valet_core::convo::{ConvoConfig, ConvoMachine, Input, ResumePoint};
use valet_core::election::{Election, ElectionConfig};
use valet_core::events::EventName;
use valet_core::outbox::{Outgoing, RESTORED_IDS};
use valet_core::session::{Session, SessionAction, SessionInput};
use valet_core::token::{claims_of, FetchFailure};
use valet_core::token_source::{TokenAction, TokenInput, TokenSource, TokenTimer};

/// How `fetchJwt` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtFault {
    /// It throws (the app's backend is unreachable).
    Throw,
    /// It never settles (the SDK's timeout ends it).
    Hang,
    /// It answers after seconds.
    Slow,
    /// It resolves to something that is not a JWT.
    Junk,
}

impl JwtFault {
    /// The kind's name, for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            JwtFault::Throw => "fetchJwt throws",
            JwtFault::Hang => "fetchJwt hangs",
            JwtFault::Slow => "fetchJwt slow",
            JwtFault::Junk => "fetchJwt junk",
        }
    }
}

/// `fetchJwtTimeoutMs`'s default.
pub const FETCH_JWT_TIMEOUT_MS: u64 = 10_000;

/// How a page goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unload {
    /// The tab closes or reloads: `pagehide`, then nothing.
    PageHide,
    /// The app calls `convo.close()`, then the page goes.
    AppClose,
    /// The renderer dies: nothing runs.
    Crash,
}

/// What the browser shares between its tabs.
#[derive(Debug)]
pub struct Browser {
    /// `navigator.onLine`.
    pub online: bool,
    /// Web Locks exist.
    pub locks: bool,
    /// One-way latency to the server (base), ms.
    pub latency_ms: u64,
    /// Lifetime of the tokens the app's backend mints, s.
    pub jwt_lifetime_s: u64,
    /// Pending `fetchJwt` failures (kind, how many more).
    pub jwt_faults: Vec<(JwtFault, u32)>,
    /// Tokens minted: issued at (browser ms), expiry (server ms).
    pub issued: HashMap<String, (u64, u64)>,
    /// Web Locks by name: holder and queue, each (page, epoch).
    held: BTreeMap<String, LockState>,
    next_pid: u64,
    /// Per (sender, receiver): when the last post arrives.
    channel_at: HashMap<(u64, u64), u64>,
    /// IndexedDB's local history rows, by (scope, row), when the app asks
    /// for `persist: "local"`.
    pub cache: Option<BTreeMap<(String, usize), String>>,
    /// With `persist: "local"`, IndexedDB's copy of each tab's outbox, by
    /// (tab slot, scope): what a closed tab left, for another to claim.
    pub outboxes: BTreeMap<(usize, String), String>,
}

impl Browser {
    /// A browser of a drawn kind.
    pub fn new(rng: &mut Rng) -> Browser {
        Browser {
            online: true,
            locks: rng.chance(0.8),
            latency_ms: rng.range(1, 60),
            jwt_lifetime_s: if rng.chance(0.5) { 900 } else { rng.range(360, 900) },
            jwt_faults: Vec::new(),
            issued: HashMap::new(),
            held: BTreeMap::new(),
            next_pid: 0,
            channel_at: HashMap::new(),
            cache: rng.chance(0.5).then(BTreeMap::new),
            outboxes: BTreeMap::new(),
        }
    }
}

/// One Web Lock: who holds it, who waits (page, epoch), in order.
#[derive(Debug, Default)]
struct LockState {
    holder: Option<(u64, u64)>,
    waiting: Vec<(u64, u64)>,
}

/// The tab election's lock (the token locks are named after tokens).
const ELECTION_LOCK: &str = "election";

/// A send, as the app sees it.
#[derive(Debug, Clone)]
pub struct SendRec {
    /// The glue's id.
    pub id: u64,
    /// Its idempotency key, once posted.
    pub key: Option<String>,
    /// Settled: resolved (`true`) or rejected (`false`).
    pub settled: Option<bool>,
    /// Its text, once known (a restored send's, once posted).
    pub text: Option<String>,
}

/// One page (one document) of a tab, with its session.
#[derive(Debug)]
pub struct Page {
    /// Unique over the run.
    pub pid: u64,
    /// The session.
    pub session: Session,
    tokens: TokenSource,
    /// Token requests of the session, by the token source's id.
    token_waiters: Vec<(u64, TokenFor)>,
    token_ids: u64,
    token_timers: Vec<(TokenTimer, u64)>,
    /// The token lock this page asked for or holds.
    token_lock: Option<String>,
    timers: Vec<(Timer, u64)>,
    tab_timer: Option<u64>,
    arm: u64,
    /// The stream attempt whose handle is open.
    pub stream: Option<u64>,
    /// `seq`s delivered to handlers, in order.
    pub delivered: Vec<u64>,
    /// The app's sends.
    pub sends: Vec<SendRec>,
    /// The last status emitted.
    pub status: String,
}

/// A browser tab (a slot: a closed tab's stays empty).
#[derive(Debug, Default)]
pub struct Tab {
    /// Its page, while it has one.
    pub page: Option<Page>,
    /// Frozen: runs nothing; what reaches it waits.
    pub frozen: bool,
    /// Frozen until the end (a tab the browser froze and never resumed).
    pub frozen_for_good: bool,
    /// Hidden.
    pub hidden: bool,
    backlog: Vec<(u64, PageEv)>,
    /// `sessionStorage`: the resume point.
    pub storage: Option<String>,
    /// `sessionStorage`: the outboxes stored, by scope, and the scope
    /// stored under last.
    pub outbox: Vec<(String, String)>,
    /// See `outbox`.
    pub outbox_scope: Option<String>,
    /// A store of the outbox failed (storage full): sends of this tab may
    /// not survive its reloads.
    pub outbox_lost: bool,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

impl World {
    /// A new, empty tab slot.
    pub fn new_tab_slot(&mut self) -> usize {
        self.tabs.push(Tab::default());
        self.tabs.len() - 1
    }

    fn slot_of(&self, pid: u64) -> Option<usize> {
        self.tabs.iter().position(|t| t.page.as_ref().is_some_and(|p| p.pid == pid))
    }

    /// Whether page `pid` still holds the handle of stream `attempt`.
    pub fn page_streams(&self, pid: u64, attempt: u64) -> bool {
        self.slot_of(pid).and_then(|s| self.tabs[s].page.as_ref()).is_some_and(|p| p.stream == Some(attempt))
    }

    /// Tab `slot` loads a page of the app, which opens the convo.
    pub fn load(&mut self, slot: usize) {
        if self.tabs[slot].page.is_some() {
            return;
        }
        self.browser.next_pid += 1;
        let pid = self.browser.next_pid;
        let mut cfg = ConvoConfig::new("agent", "convo");
        cfg.resume = self.tabs[slot].storage.as_deref().and_then(ResumePoint::parse);
        cfg.claims_of = Some(claims_of);
        cfg.local_history = self.browser.cache.is_some();
        let tab = &self.tabs[slot];
        cfg.stored_outbox = tab.outbox_scope.clone().map(|s| {
            let json = tab.outbox.iter().find(|(k, _)| *k == s).map(|(_, j)| j.clone());
            (s, json)
        });
        let convo = ConvoMachine::new(cfg, self.rng.next_u64());
        let election = Election::new(ElectionConfig { locks: self.browser.locks, ..Default::default() }, format!("tab{slot}p{pid}"));
        let page = Page {
            pid,
            session: Session::new(convo, Some(election)),
            tokens: TokenSource::new(claims_of, self.browser.locks, FETCH_JWT_TIMEOUT_MS),
            token_waiters: Vec::new(),
            token_ids: 0,
            token_timers: Vec::new(),
            token_lock: None,
            timers: Vec::new(),
            tab_timer: None,
            arm: 0,
            stream: None,
            delivered: Vec::new(),
            sends: Vec::new(),
            status: String::new(),
        };
        let hidden = !self.healed() && self.rng.chance(0.1);
        let tab = &mut self.tabs[slot];
        tab.page = Some(page);
        tab.frozen = false;
        tab.hidden = hidden;
        tab.backlog.clear();
        trace!(self, "tab {slot} loads page {pid} (hidden: {hidden})");
        // As the glue does: the token source first (it fetches when it has no token).
        self.token_input(slot, TokenInput::Active(1));
        self.feed(slot, SessionInput::Start { hidden });
    }

    /// The page of tab `slot` goes away.
    pub fn unload(&mut self, slot: usize, how: Unload) {
        let Some(pid) = self.tabs[slot].page.as_ref().map(|p| p.pid) else { return };
        // A frozen page runs no handler: it goes as if it crashed.
        let how = if self.tabs[slot].frozen { Unload::Crash } else { how };
        trace!(self, "tab {slot} page {pid} goes ({how:?})");
        match how {
            Unload::PageHide => self.feed(slot, SessionInput::PageHide),
            Unload::AppClose => self.feed(slot, SessionInput::Close),
            Unload::Crash => {}
        }
        let Some(page) = self.tabs[slot].page.take() else { return };
        // What the page left unsettled is for a later page of this tab to send.
        for text in page.sends.iter().filter(|s| s.settled.is_none()).filter_map(|s| s.text.clone()) {
            if !self.carried.contains(&(slot, text.clone())) {
                self.carried.push((slot, text));
            }
        }
        self.tabs[slot].backlog.clear();
        self.tabs[slot].frozen = false;
        self.release_lock(ELECTION_LOCK, pid);
        if let Some(name) = page.token_lock {
            self.release_lock(&name, pid);
        }
        if let Some(attempt) = page.stream {
            self.drop_stream(pid, attempt);
        }
    }

    /// Page `pid` let go of stream `attempt`: the server hears of it.
    fn drop_stream(&mut self, pid: u64, attempt: u64) {
        for sid in 0..self.server.streams.len() {
            let s = &self.server.streams[sid];
            if s.alive && s.pid == pid && s.attempt == attempt {
                // Given up while its answer was on the way: the browser may drain the socket.
                let draining = self.now < s.answered_at;
                let d = self.latency() + if draining { self.rng.range(0, crate::server::DRAIN_MS) } else { 0 };
                self.at(d, Ev::Server(ServerEv::ClientClosed { sid }));
            }
        }
    }

    /// Tab `slot` freezes.
    pub fn freeze(&mut self, slot: usize) {
        self.tabs[slot].frozen = true;
    }

    /// Tab `slot` thaws: what waited runs, in order.
    pub fn thaw(&mut self, slot: usize) {
        if !self.tabs[slot].frozen {
            return;
        }
        self.tabs[slot].frozen = false;
        let backlog = std::mem::take(&mut self.tabs[slot].backlog);
        trace!(self, "tab {slot} thaws ({} queued)", backlog.len());
        // At once, before anything that happens after the thaw.
        for (pid, what) in backlog {
            self.page_event(pid, what);
        }
    }

    /// Tab `slot` is hidden or shown.
    pub fn set_hidden(&mut self, slot: usize, hidden: bool) {
        if self.tabs[slot].hidden == hidden {
            return;
        }
        self.tabs[slot].hidden = hidden;
        if let Some(pid) = self.tabs[slot].page.as_ref().map(|p| p.pid) {
            self.page_event(pid, PageEv::Input(SessionInput::Visibility { hidden }));
        }
    }

    /// The browser goes offline or back online.
    pub fn set_online(&mut self, online: bool) {
        if self.browser.online == online {
            return;
        }
        self.browser.online = online;
        trace!(self, "browser {}", if online { "online" } else { "offline" });
        if online {
            self.flush_held();
            let pids: Vec<u64> = self.tabs.iter().filter_map(|t| t.page.as_ref().map(|p| p.pid)).collect();
            for pid in pids {
                self.page_event(pid, PageEv::Input(SessionInput::Online));
            }
        } else {
            for sid in 0..self.server.streams.len() {
                if self.server.streams[sid].alive && self.rng.chance(0.5) {
                    // The connection resets; the server finds out at a later write.
                    let (pid, attempt) = (self.server.streams[sid].pid, self.server.streams[sid].attempt);
                    let d = self.rng.range(0, 2000);
                    self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::StreamFailed { attempt, message: "offline".into() })) });
                    self.at(crate::server::PING_MS, Ev::Server(ServerEv::ClientClosed { sid }));
                }
            }
        }
    }

    /// Another script posts something that is not ours on the channel.
    pub fn channel_garbage(&mut self) {
        const JUNK: &[&str] = &[
            "",
            "null",
            "[1,2]",
            "{\"sdk\":\"valet-sdk\"}",
            "{\"sdk\":\"valet-sdk\",\"v\":1,\"tab\":\"old\",\"gen\":1,\"body\":{\"kind\":\"resign\"}}",
            "{\"sdk\":\"valet-sdk\",\"v\":2,\"tab\":7,\"gen\":\"x\",\"body\":{\"kind\":\"heartbeat\"}}",
            "{\"sdk\":\"other\",\"v\":2,\"tab\":\"a\",\"gen\":1,\"body\":{\"kind\":\"resign\"}}",
            "{\"sdk\":\"valet-sdk\",\"v\":2,\"tab\":\"a\",\"gen\":1,\"body\":{\"kind\":\"events\"}}",
            "\u{0}\u{ffff}",
        ];
        let junk = self.rng.pick(JUNK).to_owned();
        let pids: Vec<u64> = self.tabs.iter().filter_map(|t| t.page.as_ref().map(|p| p.pid)).collect();
        for pid in pids {
            let d = self.rng.range(0, 5);
            self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Channel(junk.clone())) });
        }
    }

    /// A random live, running page's app sends a message.
    pub fn user_send(&mut self) {
        let slots: Vec<usize> = (0..self.tabs.len()).filter(|&s| self.tabs[s].page.is_some() && !self.tabs[s].frozen).collect();
        if slots.is_empty() {
            return;
        }
        let slot = slots[self.rng.next_u64() as usize % slots.len()];
        let page = self.tabs[slot].page.as_mut().unwrap();
        let id = page.sends.len() as u64 + 1;
        let text = format!("hello {} from page {}", id, page.pid);
        page.sends.push(SendRec { id, key: None, settled: None, text: Some(text.clone()) });
        self.sent_texts.push(text.clone());
        self.feed(slot, SessionInput::Convo(Input::Send { id, key: None, what: Outgoing::Message { text, files: false, draft: None }, detached: false }));
    }

    /// Something for page `pid` (gone: dropped; frozen: queued).
    pub fn page_event(&mut self, pid: u64, what: PageEv) {
        let Some(slot) = self.slot_of(pid) else { return };
        if self.tabs[slot].frozen {
            self.tabs[slot].backlog.push((pid, what));
            return;
        }
        match what {
            PageEv::Input(input) => {
                // A stream's answer ends the server's 401 streak only when
                // the page takes it, as its machine counts: an answer to an
                // attempt it gave up on (a tab that began to follow) is not.
                if let SessionInput::Convo(Input::StreamOpened { attempt }) = input {
                    if self.page_streams(pid, attempt) {
                        self.succeeded(pid, crate::server::Endpoint::Stream);
                    }
                }
                self.feed(slot, input)
            }
            PageEv::Timer(timer, arm) => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                if let Some(i) = page.timers.iter().position(|t| *t == (timer, arm)) {
                    page.timers.remove(i);
                    self.feed(slot, SessionInput::Convo(Input::TimerFired(timer)));
                }
            }
            PageEv::TabTimer(arm) => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                if page.tab_timer == Some(arm) {
                    page.tab_timer = None;
                    self.feed(slot, SessionInput::TabTick);
                }
            }
            PageEv::Jwt(result) => self.token_input(slot, TokenInput::Fetched(result)),
            PageEv::Token(input) => self.token_input(slot, input),
            PageEv::TokenTimer(timer, arm) => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                if let Some(at) = page.token_timers.iter().position(|t| *t == (timer, arm)) {
                    page.token_timers.remove(at);
                    self.token_input(slot, TokenInput::Timer(timer));
                }
            }
        }
    }

    /// Hands `input` to the page's session and carries out its actions.
    pub fn feed(&mut self, slot: usize, input: SessionInput) {
        let now = self.now;
        let Some(page) = self.tabs[slot].page.as_mut() else { return };
        let pid = page.pid;
        if self.trace_enabled() {
            let shown = format!("{input:?}");
            trace!(self, "page {pid} <- {}", clip(&shown));
        }
        let page = self.tabs[slot].page.as_mut().unwrap();
        let actions = page.session.handle(now, input);
        for action in actions {
            self.execute(slot, pid, action);
        }
    }

    fn timer_delay(&mut self, slot: usize, delay_ms: u64) -> u64 {
        if self.tabs[slot].hidden {
            // Chrome runs a hidden page's timers on whole seconds.
            let at = (self.now + delay_ms).div_ceil(1000) * 1000;
            at - self.now
        } else {
            delay_ms
        }
    }

    fn execute(&mut self, slot: usize, pid: u64, action: SessionAction) {
        if self.trace_enabled() && !matches!(action, SessionAction::Convo(Action::Log(_))) {
            let shown = format!("{action:?}");
            trace!(self, "page {pid} -> {}", clip(&shown));
        }
        match action {
            SessionAction::Convo(a) => self.execute_convo(slot, pid, a),
            SessionAction::RequestLock { steal, epoch } => self.request_lock(ELECTION_LOCK, pid, epoch, steal),
            SessionAction::ReleaseLock => self.release_lock(ELECTION_LOCK, pid),
            SessionAction::Broadcast(json) => self.broadcast(pid, json),
            SessionAction::SetTabTimer { delay_ms } => {
                let d = self.timer_delay(slot, delay_ms);
                let page = self.tabs[slot].page.as_mut().unwrap();
                page.arm += 1;
                let arm = page.arm;
                page.tab_timer = Some(arm);
                self.at(d, Ev::Page { pid, what: PageEv::TabTimer(arm) });
            }
            SessionAction::ClearTabTimer => self.tabs[slot].page.as_mut().unwrap().tab_timer = None,
        }
    }

    fn execute_convo(&mut self, slot: usize, pid: u64, action: Action) {
        let online = self.browser.online;
        let closed = self.tabs[slot].page.as_ref().unwrap().session.is_closed();
        if closed && matches!(action, Action::GetToken { .. } | Action::OpenStream { .. } | Action::Reconcile { .. } | Action::Post { .. }) {
            self.violation(format!("page {pid} asked for the network after close(): {action:?}"));
        }
        match action {
            Action::GetToken { purpose, reject } => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                page.token_ids += 1;
                let id = page.token_ids;
                page.token_waiters.push((id, purpose));
                self.token_input(slot, TokenInput::Get { id, reject });
            }
            Action::OpenStream { attempt, token, last_event_id } => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                // Replacing a handle aborts the old stream.
                if let Some(old) = page.stream.replace(attempt) {
                    self.drop_stream(pid, old);
                }
                if !online {
                    let input = Input::StreamFailed { attempt, message: "offline".into() };
                    self.at(1, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(input)) });
                } else {
                    let d = self.latency();
                    self.at(d, Ev::Server(ServerEv::Open { pid, attempt, token, last_event_id }));
                }
            }
            Action::CloseStream { attempt } => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                if page.stream == Some(attempt) {
                    page.stream = None;
                    self.drop_stream(pid, attempt);
                }
            }
            Action::Reconcile { req, token, after } => {
                if !online {
                    let input = Input::ReconcileFailed { req, message: "offline".into() };
                    self.at(1, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(input)) });
                } else {
                    let d = self.latency();
                    self.at(d, Ev::Server(ServerEv::Reconcile { pid, req, token, after }));
                }
            }
            Action::Post { id, token, json } => {
                let body = serde_json::from_str::<Value>(&json).unwrap_or_default();
                let key = body["idempotency_key"].as_str().map(str::to_owned);
                if id >= RESTORED_IDS {
                    let text = body["text"].as_str().unwrap_or("").to_owned();
                    if !self.sent_texts.contains(&text) {
                        self.violation(format!("page {pid} restored a send no app made: {json}"));
                    }
                    self.restored_rec(slot, id).text = Some(text);
                }
                let page = self.tabs[slot].page.as_mut().unwrap();
                match page.sends.iter_mut().find(|s| s.id == id) {
                    Some(rec) => {
                        let changed = rec.key.is_some() && rec.key != key;
                        rec.key = key;
                        if changed {
                            self.violation(format!("page {pid} send {id} changed its idempotency key between attempts"));
                        }
                    }
                    None => self.violation(format!("page {pid} posted send {id} the app never made")),
                }
                if !online {
                    let input = Input::Posted { id, outcome: valet_core::send::SendOutcome::Network("offline".into()), body: String::new() };
                    self.at(1, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(input)) });
                } else {
                    let d = self.latency();
                    self.at(d, Ev::Server(ServerEv::Post { pid, id, token, json }));
                }
            }
            Action::Upload { id, .. } | Action::KeepFiles { id, .. } | Action::LoadFiles { id, .. } => {
                self.violation(format!("page {pid} handled files for send {id}, which has none"))
            }
            Action::DropFiles { .. } => self.violation(format!("page {pid} dropped files no send had")),
            Action::SetTimer { timer, delay_ms } => {
                let d = self.timer_delay(slot, delay_ms);
                let page = self.tabs[slot].page.as_mut().unwrap();
                page.arm += 1;
                let arm = page.arm;
                page.timers.retain(|t| t.0 != timer);
                page.timers.push((timer, arm));
                self.at(d, Ev::Page { pid, what: PageEv::Timer(timer, arm) });
            }
            Action::ClearTimer(timer) => self.tabs[slot].page.as_mut().unwrap().timers.retain(|t| t.0 != timer),
            Action::Emit { event: EventName::Message, payload } => self.delivered_payloads(slot, pid, &[serde_json::from_str(&payload).unwrap()]),
            Action::EmitMany { event: EventName::Message, json_array, count } => {
                let list: Vec<Value> = serde_json::from_str(&json_array).unwrap();
                if list.len() != count {
                    self.violation(format!("page {pid}: EmitMany said {count} payloads and carried {}", list.len()));
                }
                self.delivered_payloads(slot, pid, &list);
            }
            Action::Emit { event: EventName::Status, payload } => {
                let v: Value = serde_json::from_str(&payload).unwrap();
                let status = v["status"].as_str().unwrap_or("").to_owned();
                if status == "stopped" {
                    self.violation(format!("page {pid} stopped: {payload}"));
                }
                self.tabs[slot].page.as_mut().unwrap().status = status;
            }
            Action::Emit { event: EventName::RestoredSend, payload } => {
                let v: Value = serde_json::from_str(&payload).unwrap();
                let text = v["text"].as_str().unwrap_or("").to_owned();
                if !self.sent_texts.contains(&text) {
                    self.violation(format!("page {pid} restored a send no app made: {payload}"));
                }
                if v["state"] == "sent" {
                    self.sends_restored += 1;
                }
                if v["state"] == "failed" {
                    // Failed for good (and said so): not owed any more.
                    self.carried.retain(|(_, t)| *t != text);
                }
            }
            Action::Emit { .. } | Action::EmitMany { .. } | Action::Observe { .. } | Action::Relay { .. } => {}
            Action::Log(line) => {
                if line.contains("eyJ") {
                    self.violation(format!("page {pid} logged a token: {line}"));
                }
                trace!(self, "page {pid} log: {line}");
            }
            Action::Persist(json) => self.tabs[slot].storage = Some(json),
            Action::LoadOutbox { scope } => {
                let json = self.tabs[slot].outbox.iter().find(|(s, _)| *s == scope).map(|(_, j)| j.clone());
                // `persist: "local"`: claimed, what the user's closed tabs left
                // (a tab without a page: its lock is free).
                let closed: Vec<(usize, String)> = self
                    .browser
                    .outboxes
                    .keys()
                    .filter(|(s, sc)| *s != slot && *sc == scope && self.tabs[*s].page.is_none())
                    .cloned()
                    .collect();
                let orphans: Vec<String> = closed.iter().filter_map(|k| self.browser.outboxes.remove(k)).collect();
                if !orphans.is_empty() {
                    trace!(self, "page {pid} claims {} outbox(es) of closed tabs", orphans.len());
                }
                self.at(0, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::OutboxLoaded { json, orphans })) });
            }
            Action::SaveOutbox { scope, json } => {
                if json.is_some() && !self.healed() && self.rng.chance(0.01) {
                    trace!(self, "page {pid}: sessionStorage is full");
                    self.tabs[slot].outbox_lost = true;
                    self.at(0, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::OutboxNotSaved)) });
                    return;
                }
                if self.browser.cache.is_some() {
                    match &json {
                        Some(json) => self.browser.outboxes.insert((slot, scope.clone()), json.clone()),
                        None => self.browser.outboxes.remove(&(slot, scope.clone())),
                    };
                }
                let tab = &mut self.tabs[slot];
                tab.outbox.retain(|(s, _)| *s != scope);
                tab.outbox_scope = Some(scope.clone());
                if let Some(json) = json {
                    tab.outbox.push((scope, json));
                }
            }
            Action::LoadCache { scope } => {
                let frames = if self.rng.chance(0.01) {
                    trace!(self, "page {pid}: IndexedDB refuses to open");
                    Err("blocked".to_owned())
                } else {
                    // What IndexedDB's reader takes: the rows from row 0 on, up to a hole.
                    let rows = self.browser.cache.as_ref().expect("asked only with persist: local");
                    let mut frames = Vec::new();
                    while let Some(f) = rows.get(&(scope.clone(), frames.len())) {
                        frames.push(f.clone());
                    }
                    if !frames.is_empty() && self.rng.chance(0.01) {
                        trace!(self, "page {pid}: a row of the local history is corrupted");
                        frames[0] = "{\"type\":\"message\",\"garbage".into();
                    }
                    Ok(frames)
                };
                let d = self.rng.range(1, 40);
                self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::CacheLoaded { frames })) });
            }
            Action::CacheAppend { scope, at, frames, .. } => {
                if self.rng.chance(0.01) {
                    trace!(self, "page {pid}: IndexedDB is full");
                    self.at(1, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::CacheNotSaved)) });
                    return;
                }
                let evict = self.rng.chance(0.005);
                let rows = self.browser.cache.as_mut().expect("asked only with persist: local");
                if evict {
                    // Another convo's write evicted this one (or the app cleared the data).
                    rows.retain(|(s, _), _| *s != scope);
                }
                for (i, f) in frames.into_iter().enumerate() {
                    rows.insert((scope.clone(), at + i), f);
                }
            }
            Action::DropCache { scope } => {
                if let Some(rows) = self.browser.cache.as_mut() {
                    rows.retain(|(s, _), _| *s != scope);
                }
            }
            Action::SendSettled { id, result } => {
                if id >= RESTORED_IDS {
                    self.restored_rec(slot, id);
                }
                let page = self.tabs[slot].page.as_mut().unwrap();
                let Some(rec) = page.sends.iter_mut().find(|s| s.id == id) else {
                    return self.violation(format!("page {pid} settled send {id} the app never made"));
                };
                if rec.settled.is_some() {
                    return self.violation(format!("page {pid} settled send {id} twice"));
                }
                rec.settled = Some(result.is_ok());
                let key = rec.key.clone();
                let text = rec.text.clone();
                match result {
                    Ok(_) => {
                        self.sends_resolved += 1;
                        let n = key.as_deref().map_or(0, |k| self.server.stored_with_key(k));
                        if n != 1 {
                            self.violation(format!("page {pid} send {id} resolved but is stored {n} times"));
                        }
                    }
                    Err(e) => {
                        trace!(self, "page {pid} send {id} rejected: {:?} {}", e.code, e.message);
                        if let Some(text) = &text {
                            self.carried.retain(|(_, t)| t != text);
                        }
                        if let Some(k) = key {
                            self.rejected.push((k, e.maybe_stored == Some(true), format!("page {pid} send {id}: {:?}", e.code)));
                        }
                    }
                }
            }
            Action::Opened(result) => {
                if let Err(e) = result {
                    self.violation(format!("page {pid}: openConvo rejected: {:?} {}", e.code, e.message));
                }
            }
        }
    }

    /// The record of restored send `id` of tab `slot`'s page (made at its
    /// first action: the page's app never made it).
    fn restored_rec(&mut self, slot: usize, id: u64) -> &mut SendRec {
        let page = self.tabs[slot].page.as_mut().unwrap();
        if let Some(i) = page.sends.iter().position(|s| s.id == id) {
            return &mut page.sends[i];
        }
        page.sends.push(SendRec { id, key: None, settled: None, text: None });
        page.sends.last_mut().unwrap()
    }

    fn delivered_payloads(&mut self, slot: usize, pid: u64, list: &[Value]) {
        for v in list {
            let id = v["message"]["id"].as_str().unwrap_or("");
            let seq = id.strip_prefix('m').and_then(|s| s.parse::<u64>().ok());
            if v["from_cache"] == true {
                self.from_cache += 1;
            }
            let page = self.tabs[slot].page.as_mut().unwrap();
            let expected = page.delivered.len() as u64 + 1;
            match seq {
                Some(seq) if seq as usize <= self.server.messages.len() => {
                    page.delivered.push(seq);
                    self.delivered += 1;
                    if seq != expected {
                        let what = if seq < expected { "twice or out of order" } else { "after a gap" };
                        self.violation(format!("page {pid} delivered m{seq} {what} (expected m{expected})"));
                    }
                }
                _ => self.violation(format!("page {pid} delivered a message the server never stored: {v}")),
            }
        }
    }

    fn fetch_jwt(&mut self, pid: u64) {
        let fault = self.browser.jwt_faults.first_mut().map(|f| {
            f.1 -= 1;
            f.0
        });
        self.browser.jwt_faults.retain(|f| f.1 > 0);
        let rtt = 2 * self.latency() + 5;
        let (delay, result) = match (self.browser.online, fault) {
            (false, _) | (_, Some(JwtFault::Throw)) => (self.rng.range(1, 5), Err(FetchFailure::Threw("Failed to fetch".into()))),
            (_, Some(JwtFault::Hang)) => (FETCH_JWT_TIMEOUT_MS, Err(FetchFailure::TimedOut(FETCH_JWT_TIMEOUT_MS))),
            (_, Some(JwtFault::Junk)) => (rtt, Err(FetchFailure::NotAString)),
            (_, Some(JwtFault::Slow)) => (self.rng.range(2000, 8000), Ok(())),
            (true, None) => (rtt, Ok(())),
        };
        let result = result.map(|()| {
            // Minted by the app's backend, on the server's clock.
            let server_now = (self.now as i64 + self.server.skew_ms) as u64 + delay / 2;
            let exp_s = server_now / 1000 + self.browser.jwt_lifetime_s;
            let n = self.browser.issued.len();
            let claims = format!(
                "{{\"iss\":\"key\",\"aud\":\"valet-sdk\",\"company_api_key\":\"key\",\"agent_uuid\":\"agent\",\"source_key\":\"user\",\"iat\":{},\"exp\":{exp_s},\"n\":{n}}}",
                server_now / 1000
            );
            let jwt = format!("{}.{}.sig", b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"), b64(&claims));
            self.browser.issued.insert(jwt.clone(), (self.now + delay, exp_s * 1000));
            jwt
        });
        self.at(delay, Ev::Page { pid, what: PageEv::Jwt(result) });
    }

    fn broadcast(&mut self, from: u64, json: String) {
        let pids: Vec<u64> = self.tabs.iter().filter_map(|t| t.page.as_ref().map(|p| p.pid)).filter(|&p| p != from).collect();
        for to in pids {
            let d = if self.rng.chance(0.02) { self.rng.range(20, 300) } else { self.rng.range(0, 3) };
            let last = self.browser.channel_at.get(&(from, to)).copied().unwrap_or(0);
            let at = (self.now + d).max(last);
            self.browser.channel_at.insert((from, to), at);
            self.at(at - self.now, Ev::Page { pid: to, what: PageEv::Input(SessionInput::Channel(json.clone())) });
        }
    }

    fn request_lock(&mut self, name: &str, pid: u64, epoch: u64, steal: bool) {
        self.release_lock(name, pid);
        let lock = self.browser.held.entry(name.to_owned()).or_default();
        if steal {
            if let Some((holder, their)) = lock.holder.take() {
                self.at(0, Ev::Page { pid: holder, what: PageEv::Input(SessionInput::Lock { epoch: their, granted: false }) });
            }
            self.grant(name, pid, epoch);
        } else if lock.holder.is_none() && lock.waiting.is_empty() {
            self.grant(name, pid, epoch);
        } else {
            lock.waiting.push((pid, epoch));
        }
    }

    fn grant(&mut self, name: &str, pid: u64, epoch: u64) {
        self.browser.held.entry(name.to_owned()).or_default().holder = Some((pid, epoch));
        let d = self.rng.range(0, 2);
        let what = if name == ELECTION_LOCK {
            PageEv::Input(SessionInput::Lock { epoch, granted: true })
        } else {
            PageEv::Token(TokenInput::LockGranted { epoch })
        };
        self.at(d, Ev::Page { pid, what });
    }

    /// Page `pid` releases lock `name` or withdraws its request.
    fn release_lock(&mut self, name: &str, pid: u64) {
        let Some(lock) = self.browser.held.get_mut(name) else { return };
        lock.waiting.retain(|w| w.0 != pid);
        if lock.holder.is_some_and(|h| h.0 == pid) {
            lock.holder = None;
            if !lock.waiting.is_empty() {
                let (next, epoch) = lock.waiting.remove(0);
                self.grant(name, next, epoch);
            }
        }
    }

    /// Hands `input` to the page's token source and carries out its actions.
    fn token_input(&mut self, slot: usize, input: TokenInput) {
        let now = self.now;
        let Some(page) = self.tabs[slot].page.as_mut() else { return };
        let pid = page.pid;
        if self.trace_enabled() {
            let shown = format!("{input:?}");
            trace!(self, "page {pid} tokens <- {}", clip(&shown));
        }
        let page = self.tabs[slot].page.as_mut().unwrap();
        for action in page.tokens.handle(now, input) {
            self.token_action(slot, pid, action);
        }
    }

    fn token_action(&mut self, slot: usize, pid: u64, action: TokenAction) {
        if self.trace_enabled() && !matches!(action, TokenAction::Log(_)) {
            let shown = format!("{action:?}");
            trace!(self, "page {pid} tokens -> {}", clip(&shown));
        }
        match action {
            TokenAction::CallFetchJwt => self.fetch_jwt(pid),
            TokenAction::Settle { id, result } => {
                let page = self.tabs[slot].page.as_mut().unwrap();
                let Some(at) = page.token_waiters.iter().position(|w| w.0 == id) else { return };
                let (_, purpose) = page.token_waiters.remove(at);
                let input = match result {
                    Ok(token) => Input::Token { purpose, token },
                    Err(error) => Input::TokenFailed { purpose, error },
                };
                self.at(0, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(input)) });
            }
            TokenAction::RequestLock { key, epoch } => {
                let name = format!("token:{key}");
                if let Some(old) = self.tabs[slot].page.as_mut().unwrap().token_lock.replace(name.clone()) {
                    self.release_lock(&old, pid);
                }
                self.request_lock(&name, pid, epoch, false);
            }
            TokenAction::ReleaseLock => {
                if let Some(old) = self.tabs[slot].page.as_mut().unwrap().token_lock.take() {
                    self.release_lock(&old, pid);
                }
            }
            TokenAction::Post(text) => {
                let pids: Vec<u64> = self.tabs.iter().filter_map(|t| t.page.as_ref().map(|p| p.pid)).filter(|&p| p != pid).collect();
                for to in pids {
                    let d = self.rng.range(0, 3);
                    self.at(d, Ev::Page { pid: to, what: PageEv::Token(TokenInput::Heard(text.clone())) });
                }
            }
            TokenAction::SetTimer { timer, delay_ms } => {
                let d = self.timer_delay(slot, delay_ms);
                let page = self.tabs[slot].page.as_mut().unwrap();
                page.arm += 1;
                let arm = page.arm;
                page.token_timers.retain(|t| t.0 != timer);
                page.token_timers.push((timer, arm));
                self.at(d, Ev::Page { pid, what: PageEv::TokenTimer(timer, arm) });
            }
            TokenAction::ClearTimer(timer) => self.tabs[slot].page.as_mut().unwrap().token_timers.retain(|t| t.0 != timer),
            TokenAction::Log(line) => trace!(self, "page {pid} tokens log: {line}"),
            TokenAction::Refreshed { .. } => {}
        }
    }
}

fn clip(s: &str) -> String {
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}
