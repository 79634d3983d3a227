//! `Convo`: carries out a `valet_core::session::Session`'s actions (the
//! convo machine and its tab election, wired together in the core).
//!
//! The glue owns handles (stream, timers, the page's events, the tab
//! channel and lock, an abort controller for REST calls) and drops them on
//! `close()`. It decides nothing: every `if` about the protocol is in
//! valet-core. The arguments of the API are checked and read in JS
//! (`sendArgs`), in one crossing.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};

use crate::rt::Timeout;
use crate::rt::{Listener, Subscription};
use valet_core::client::Transport;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, ConvoMetrics, Input, ResumePoint, Timer};
use valet_core::election::Role;
use valet_core::error::{ClientError, ErrorCode};
use valet_core::events::EventName;
use valet_core::session::{Session, SessionAction, SessionInput};
use valet_core::outbox::Outgoing;
use valet_core::send::SendOutcome;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortController;

use crate::shared::ClientShared;
use crate::emitter::Emitter;
use crate::error::{js_error, to_js};
use crate::http;
use crate::stream::{self, StreamHandle};
use crate::tabs::TabLink;

/// One open convo's state in the glue.
pub struct ConvoInner {
    session: RefCell<Session>,
    client: Rc<ClientShared>,
    convo_id: String,
    emitter: Emitter,
    stream: RefCell<Option<(u64, StreamHandle)>>,
    timers: RefCell<Vec<(Timer, Timeout)>>,
    rest_abort: AbortController,
    /// The page's events and the tab channel's messages (`pageEvents`).
    page: RefCell<Option<Subscription<PageReport>>>,
    opened: RefCell<Option<crate::rt::Sender<Result<(), ClientError>>>>,
    /// The channel, lock and timer of the tab election (one stream for
    /// all the tabs of this browser); `None` without BroadcastChannel.
    tab: RefCell<Option<Rc<TabLink>>>,
    /// Sends not settled yet, by id (the machine's outbox decides; this
    /// holds their promises, files and abort listeners).
    sends: RefCell<Vec<(u64, PendingSend)>>,
    next_send: Cell<u64>,
    this: Weak<ConvoInner>,
    /// The generation of the local data it opened in (see `cacheGeneration`).
    local_gen: u32,
    /// Itself, until it is closed or stops: an open convo goes on whether
    /// or not the app keeps its `Convo` (wasm-bindgen frees a collected
    /// handle, and an app may keep only its handlers).
    alive: RefCell<Option<Rc<ConvoInner>>>,
}

/// The `sessionStorage` key of a convo's resume point (per tab: it
/// survives a reload, not a new tab).
fn resume_key(agent_id: &str, convo_id: &str) -> String {
    valet_core::cat!("valet-sdk:resume:", agent_id, ":", convo_id)
}

/// The `sessionStorage` key prefix of a convo's outbox (per tab, per API;
/// the scope, an identity's hash, follows).
fn outbox_key(cfg: &valet_core::client::ClientConfig, convo_id: &str) -> String {
    valet_core::cat!("valet-sdk:outbox:", cfg.base_url, ":", cfg.agent_id, ":", convo_id)
}

#[wasm_bindgen(module = "/js/convo.js")]
extern "C" {
    /// Follows the page's events (in a page: `window`'s `online`,
    /// `pagehide` and `pageshow` from the back/forward cache, `document`'s
    /// `visibilitychange`) and `channel`'s messages, reporting each to
    /// `cb(kind, data, flag)`: 0 online; 1 pagehide; 2 pageshow (`flag`:
    /// visible); 3 visibilitychange (`flag`: hidden); 4 a message (`data`:
    /// its text, or "" when it is not one). Returns the function that stops.
    #[wasm_bindgen(js_name = pageEvents)]
    fn page_events(channel: Option<&web_sys::BroadcastChannel>, cb: &JsValue) -> js_sys::Function;
    /// `JSON.parse` of JSON the SDK wrote.
    #[wasm_bindgen(js_name = jsonValue)]
    fn json_value(json: &str) -> JsValue;
    /// `document.hidden`; `None` outside a page.
    #[wasm_bindgen(js_name = pageHidden)]
    fn page_hidden() -> Option<bool>;
    /// The resume point stored under `key` in `sessionStorage` (`json`:
    /// stores it instead). A storage that is missing, full or refused
    /// only costs the resume.
    #[wasm_bindgen(js_name = resumePoint)]
    fn resume_point(key: &str, json: Option<&str>) -> Option<String>;
    /// The outbox stored under `prefix` in `sessionStorage`: `[scope, json]`
    /// of the scope stored under last (`json` undefined: nothing there), or
    /// undefined.
    #[wasm_bindgen(js_name = lastOutbox)]
    fn last_outbox(prefix: &str) -> Option<js_sys::Array>;
    /// The outbox stored under `prefix` and `scope`.
    #[wasm_bindgen(js_name = loadOutbox)]
    fn load_outbox(prefix: &str, scope: &str) -> Option<String>;
    /// Stores the outbox under `prefix` and `scope` (`json` undefined:
    /// removes it), and `scope` as the last; false if storage failed.
    #[wasm_bindgen(js_name = saveOutbox)]
    fn save_outbox(prefix: &str, scope: &str, json: Option<&str>) -> bool;
    /// `send(text, options)`'s arguments (`upload`: `uploadFiles(text)`'s
    /// files), checked and read in one crossing: `[text, files, messageId,
    /// signal, resolveWhenQueued, idempotencyKey]` (`text` undefined for an
    /// upload, absent options undefined), or the message of the
    /// `invalid_argument` error.
    /// Throws what a getter of `options` throws.
    #[wasm_bindgen(js_name = sendArgs, catch)]
    fn send_args(upload: bool, text: &JsValue, options: &JsValue) -> Result<JsValue, JsValue>;
    /// The upload form of a send's files: `files[]` parts named as the
    /// `File`s are (a `Blob`: `file`).
    #[wasm_bindgen(js_name = formOf)]
    fn form_of(files: &JsValue) -> web_sys::FormData;
}

#[wasm_bindgen(module = "/js/local.js")]
extern "C" {
    /// The generation of the local data: `clearLocalData()` (in any tab of
    /// the origin) bumps it, and a convo stores nothing (local history,
    /// outbox, resume point) once it is not the one it opened in.
    #[wasm_bindgen(js_name = cacheGeneration)]
    fn cache_generation() -> u32;
    /// A convo's local history: a Promise of its frames in row order, or
    /// of why storage failed (a string).
    #[wasm_bindgen(js_name = cacheLoad)]
    fn cache_load(api: &str, agent: &str, convo: &str, scope: &str) -> js_sys::Promise;
    /// Writes frames from row `at` on: a Promise of false if that failed.
    #[wasm_bindgen(js_name = cacheAppend)]
    fn cache_append(api: &str, agent: &str, convo: &str, scope: &str, at: usize, frames: Vec<String>, bytes: usize) -> js_sys::Promise;
    /// Deletes a convo's local history.
    #[wasm_bindgen(js_name = cacheDrop)]
    fn cache_drop(api: &str, agent: &str, convo: &str, scope: &str);
    /// Keeps this tab's outbox under `scope` in IndexedDB too (`json`
    /// undefined: removes it): a Promise of false if that failed.
    #[wasm_bindgen(js_name = keepOutbox)]
    fn keep_outbox(api: &str, agent: &str, convo: &str, scope: &str, json: Option<&str>) -> js_sys::Promise;
    /// The outboxes closed tabs left under `scope`, claimed for this page:
    /// a Promise of their JSON texts.
    #[wasm_bindgen(js_name = claimOutboxes)]
    fn claim_outboxes(api: &str, agent: &str, convo: &str, scope: &str) -> js_sys::Promise;
    /// Keeps a send's files under its idempotency key (within the caps).
    #[wasm_bindgen(js_name = keepFiles)]
    fn keep_files(api: &str, agent: &str, convo: &str, key: &str, files: &JsValue);
    /// Deletes the files kept under a send's key.
    #[wasm_bindgen(js_name = dropFiles)]
    fn drop_files(api: &str, agent: &str, convo: &str, key: &str);
    /// The files kept under a send's key: a Promise of them, or of
    /// undefined.
    #[wasm_bindgen(js_name = loadFiles)]
    fn load_files(api: &str, agent: &str, convo: &str, key: &str) -> js_sys::Promise;
}

/// What `pageEvents` reports: kind, data, flag.
type PageReport = dyn FnMut(u32, Option<String>, bool);

/// A send's handles: its promise's sender (none once resolved with
/// `resolveWhenQueued`), its files, and its `AbortSignal` listener.
struct PendingSend {
    settle: Option<crate::rt::Sender<Result<Option<String>, ClientError>>>,
    files: JsValue,
    _abort: Option<Listener>,
}

/// Feeds a session input to a convo if it still exists, and carries out
/// the actions.
pub fn feed_session(sink: &Weak<ConvoInner>, input: SessionInput) {
    if let Some(inner) = sink.upgrade() {
        inner.run(input);
    }
}

/// Feeds an input of the convo machine to a convo if it still exists.
pub fn feed(sink: &Weak<ConvoInner>, input: Input) {
    feed_session(sink, SessionInput::Convo(input));
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

impl ConvoInner {
    pub(crate) fn open(client: Rc<ClientShared>, convo_id: String) -> Rc<ConvoInner> {
        // First: without a token, `fetchJwt` is called now (the session asks for one first).
        client.tokens.set_active(1);
        let cfg = &client.config;
        let mut machine_cfg = ConvoConfig::new(cfg.agent_id.clone(), convo_id.clone());
        machine_cfg.pause_on_hidden = cfg.pause_on_hidden;
        machine_cfg.stall_timeout_ms = cfg.stall_timeout_ms;
        let tab = TabLink::new(&cfg.agent_id, &convo_id).map(Rc::new);
        let election = tab.as_ref().map(|_| TabLink::election(client.uuid()));
        // Relaying starts when another tab says hello (the election says when).
        machine_cfg.relay = false;
        machine_cfg.observe = client.hook.is_set();
        machine_cfg.resume = resume_point(&resume_key(&cfg.agent_id, &convo_id), None).and_then(|json| ResumePoint::parse(&json));
        machine_cfg.claims_of = Some(crate::tokens::claims_of);
        machine_cfg.local_history = cfg.local_history;
        machine_cfg.stored_outbox = last_outbox(&outbox_key(cfg, &convo_id)).map(|a| (a.get(0).as_string().unwrap_or_default(), a.get(1).as_string()));
        let seed = client.seed();
        let inner = Rc::new_cyclic(|this| ConvoInner {
            session: RefCell::new(Session::new(ConvoMachine::new(machine_cfg, seed), election)),
            client: client.clone(),
            convo_id,
            emitter: Emitter::new(true),
            stream: RefCell::new(None),
            timers: RefCell::new(Vec::new()),
            rest_abort: AbortController::new().expect_throw("AbortController"),
            page: RefCell::new(None),
            opened: RefCell::new(None),
            tab: RefCell::new(tab),
            sends: RefCell::new(Vec::new()),
            next_send: Cell::new(0),
            this: this.clone(),
            local_gen: cache_generation(),
            alive: RefCell::new(None),
        });
        *inner.alive.write() = Some(inner.clone());
        inner
    }

    /// Follows the page's events and the tab channel's messages (after the
    /// session's start: its token request goes out first).
    fn follow_page(self: &Rc<Self>) {
        let sink = Rc::downgrade(self);
        let callback = Closure::<PageReport>::new(move |kind: u32, data: Option<String>, flag: bool| {
            let input = match kind {
                0 => SessionInput::Online,
                1 => SessionInput::PageHide,
                2 => SessionInput::PageShow { visible: flag },
                3 => SessionInput::Visibility { hidden: flag },
                _ => SessionInput::Channel(data.unwrap_or_default()),
            };
            feed_session(&sink, input);
        });
        let stop = page_events(self.tab.read().as_ref().map(|tab| &tab.channel), callback.as_ref());
        *self.page.write() = Some(Subscription::new(stop, callback));
    }

    /// Handles one input of the convo machine and carries out the actions.
    pub fn handle(&self, input: Input) {
        self.run(SessionInput::Convo(input));
    }

    /// Handles one session input and carries out the actions, in order.
    pub fn run(&self, input: SessionInput) {
        let actions = self.session.write().handle(now_ms(), input);
        for action in actions {
            match action {
                SessionAction::Convo(action) => self.execute(action),
                SessionAction::RequestLock { steal, epoch } => {
                    let Some(tab) = self.tab.read().clone() else { continue };
                    let sink = self.this.clone();
                    let cb = Closure::<dyn FnMut(bool)>::new(move |granted: bool| {
                        feed_session(&sink, SessionInput::Lock { epoch, granted });
                    });
                    tab.request(steal, cb);
                }
                SessionAction::ReleaseLock => {
                    if let Some(tab) = self.tab.read().clone() {
                        tab.release();
                    }
                }
                SessionAction::Broadcast(json) => {
                    if let Some(tab) = self.tab.read().clone() {
                        let _ = tab.channel.post_message(&JsValue::from_str(&json));
                    }
                }
                SessionAction::SetTabTimer { delay_ms } => {
                    if let Some(tab) = self.tab.read().clone() {
                        let sink = self.this.clone();
                        let t = Timeout::new(delay_ms, move || feed_session(&sink, SessionInput::TabTick));
                        *tab.timer.write() = Some(t);
                    }
                }
                SessionAction::ClearTabTimer => {
                    if let Some(tab) = self.tab.read().clone() {
                        let old = tab.timer.write().take();
                        drop(old);
                    }
                }
            }
        }
        if self.is_closed() {
            // Whoever called holds it too: it lives to the end of this call.
            let me = self.alive.write().take();
            drop(me);
        }
    }

    /// The events of the opening are held until a macrotask after
    /// `openConvo` resolved (see `start`). A stream whose bytes are already
    /// buffered is read in microtasks only, which would hold that release
    /// back until the buffer drains: the reader yields a macrotask per chunk
    /// while events are held.
    pub fn events_held(&self) -> bool {
        self.emitter.held()
    }

    fn is_closed(&self) -> bool {
        self.session.read().is_closed()
    }

    /// The opening resolved, and its held events are released in the next
    /// task (see `Action::Opened`).
    fn release_pending(&self) -> bool {
        self.opened.read().is_none() && self.events_held()
    }

    fn execute(&self, action: Action) {
        // A handler may have closed the convo mid-batch: then only cleanup runs.
        if self.is_closed()
            && !matches!(
                action,
                Action::CloseStream { .. }
                    | Action::ClearTimer(_)
                    | Action::Emit { event: EventName::Status, .. }
                    | Action::SendSettled { .. }
                    | Action::Observe { .. }
            )
        {
            return;
        }
        match action {
            Action::GetToken { purpose, reject } => {
                let sink = self.this.clone();
                // Asked for now: a `fetchJwt` call goes out before the rest.
                let answer = self.client.tokens.get(reject);
                crate::rt::spawn(async move {
                    let input = match answer.await {
                        Ok(token) => Input::Token { purpose, token },
                        Err(error) => Input::TokenFailed { purpose, error },
                    };
                    feed(&sink, input);
                });
            }
            Action::OpenStream { attempt, token, last_event_id } => {
                let cfg = &self.client.config;
                // The stream's inputs go to this convo, while it lives.
                let this = self.this.clone();
                let sink: stream::Sink = Box::new(move |input| {
                    feed(&this, input);
                    this.upgrade().is_some_and(|inner| inner.events_held())
                });
                let handle = match cfg.transport {
                    Transport::Fetch => {
                        stream::open(sink, attempt, &cfg.events_url(&self.convo_id, None), None, &token, last_event_id)
                    }
                    // The ticket is appended to this URL (an empty ticket encodes as nothing).
                    Transport::EventSource => {
                        let url = cfg.events_url(&self.convo_id, Some(""));
                        stream::open(sink, attempt, &url, Some(&cfg.ticket_url(&self.convo_id)), &token, None)
                    }
                };
                // Replacing drops (aborts) any previous stream.
                *self.stream.write() = Some((attempt, handle));
            }
            Action::CloseStream { attempt } => {
                let mut stream = self.stream.write();
                if stream.as_ref().is_some_and(|(a, _)| *a == attempt) {
                    let old = stream.take();
                    drop(stream);
                    drop(old);
                }
            }
            Action::Reconcile { req, token, after } => {
                let sink = self.this.clone();
                let url = self.client.config.history_url(&self.convo_id, after.as_deref());
                let signal = self.rest_abort.signal();
                // The opening's held events are released in the next task:
                // they go before this request is made.
                let after_release = self.release_pending();
                crate::rt::spawn(async move {
                    if after_release {
                        crate::rt::next_task().await;
                    }
                    let input = match http::send_read("GET", &url, Some(&token), http::Body::Empty, Some(&signal)).await {
                        Ok(reply) => Input::ReconcileDone { req, status: reply.status, body: reply.body },
                        Err(message) => Input::ReconcileFailed { req, message },
                    };
                    feed(&sink, input);
                });
            }
            Action::SetTimer { timer, delay_ms } => {
                let sink = self.this.clone();
                let t = Timeout::new(delay_ms, move || feed(&sink, Input::TimerFired(timer)));
                let old = take_key(&mut self.timers.write(), &timer);
                drop(old);
                self.timers.write().push((timer, t));
            }
            Action::ClearTimer(timer) => {
                let old = take_key(&mut self.timers.write(), &timer);
                drop(old);
            }
            Action::Emit { event, payload } => {
                if matches!(event, EventName::Status | EventName::Error | EventName::Role) {
                    self.client.hook.call(event.as_str(), &payload);
                }
                self.emitter.emit(event.as_str(), &payload)
            }
            Action::Observe { kind, payload } => self.client.hook.call(kind, &payload),
            // Cleared since it opened (sign-out): nothing more is stored.
            Action::Persist(_) | Action::SaveOutbox { .. } | Action::CacheAppend { .. } if cache_generation() != self.local_gen => {}
            Action::Persist(json) => {
                resume_point(&resume_key(&self.client.config.agent_id, &self.convo_id), Some(&json));
            }
            Action::LoadOutbox { scope } => {
                let json = load_outbox(&outbox_key(&self.client.config, &self.convo_id), &scope);
                // `persist: "local"`: and what the user's closed tabs left.
                let (api, agent, convo) = self.names();
                let claim = self.client.config.local_history.then(|| claim_outboxes(api, agent, convo, &scope));
                let sink = self.this.clone();
                crate::rt::spawn(async move {
                    let mut orphans = Vec::new();
                    if let Some(claim) = claim {
                        let claimed = wasm_bindgen_futures::JsFuture::from(claim).await.unwrap_or_default();
                        orphans = js_sys::Array::from(&claimed).iter().filter_map(|o| o.as_string()).collect();
                    }
                    feed(&sink, Input::OutboxLoaded { json, orphans });
                });
            }
            Action::SaveOutbox { scope, json } => {
                let saved = save_outbox(&outbox_key(&self.client.config, &self.convo_id), &scope, json.as_deref());
                // `persist: "local"`: in IndexedDB too, for when every tab is closed.
                let (api, agent, convo) = self.names();
                let kept = self.client.config.local_history.then(|| keep_outbox(api, agent, convo, &scope, json.as_deref()));
                if saved && kept.is_none() {
                    return;
                }
                let sink = self.this.clone();
                crate::rt::spawn(async move {
                    let kept = match kept {
                        Some(kept) => crate::rt::resolves_true(kept).await,
                        None => true,
                    };
                    if !(saved && kept) {
                        feed(&sink, Input::OutboxNotSaved);
                    }
                });
            }
            Action::LoadCache { scope } => {
                let (api, agent, convo) = self.names();
                let (read, sink) = (cache_load(api, agent, convo, &scope), self.this.clone());
                crate::rt::spawn(async move {
                    let read = wasm_bindgen_futures::JsFuture::from(read).await.unwrap_or_default();
                    let frames = match read.as_string() {
                        Some(why) => Err(why),
                        None => Ok(js_sys::Array::from(&read).iter().map(|r| r.as_string().unwrap_or_default()).collect()),
                    };
                    feed(&sink, Input::CacheLoaded { frames });
                });
            }
            Action::CacheAppend { scope, at, frames, bytes } => {
                let (api, agent, convo) = self.names();
                let (write, sink) = (cache_append(api, agent, convo, &scope, at, frames, bytes), self.this.clone());
                crate::rt::spawn(async move {
                    if !crate::rt::resolves_true(write).await {
                        feed(&sink, Input::CacheNotSaved);
                    }
                });
            }
            Action::DropCache { scope } => {
                let (api, agent, convo) = self.names();
                cache_drop(api, agent, convo, &scope);
            }
            Action::KeepFiles { id, key } => {
                let (api, agent, convo) = self.names();
                if let Some((_, pending)) = self.sends.read().iter().find(|(k, _)| *k == id) {
                    keep_files(api, agent, convo, &key, &pending.files);
                }
            }
            Action::DropFiles { key } => {
                let (api, agent, convo) = self.names();
                drop_files(api, agent, convo, &key);
            }
            Action::LoadFiles { id, key } => {
                let (api, agent, convo) = self.names();
                let read = load_files(api, agent, convo, &key);
                let this = self.this.clone();
                crate::rt::spawn(async move {
                    let files = wasm_bindgen_futures::JsFuture::from(read).await.unwrap_or_default();
                    let Some(inner) = this.upgrade() else { return };
                    let found = !files.is_undefined();
                    if found {
                        // Held as a send's files are: the upload reads them by id.
                        inner.sends.write().push((id, PendingSend { settle: None, files, _abort: None }));
                    }
                    inner.handle(Input::FilesLoaded { id, found });
                });
            }
            Action::Upload { id, token } => {
                let form = form_of(self.sends.read().iter().find(|(k, _)| *k == id).map(|(_, p)| &p.files).unwrap_or(&JsValue::UNDEFINED));
                self.spawn_post(id, self.client.config.upload_url(&self.convo_id), token, http::Body::Form(form));
            }
            Action::Post { id, token, json } => {
                let url = self.client.config.send_url(&self.convo_id);
                self.spawn_post(id, url, token, http::Body::Json(json));
            }
            Action::SendSettled { id, result } => {
                let pending = take_key(&mut self.sends.write(), &id);
                if let Some(tx) = pending.and_then(|p| p.settle) {
                    tx.send(result);
                }
            }
            Action::EmitMany { event, json_array, .. } => self.emitter.emit_many(event.as_str(), &json_array),
            Action::Log(line) => self.client.log.log(&valet_core::cat!("convo ", self.convo_id, ": ", line)),
            // The session sends relays as its own broadcasts.
            Action::Relay { .. } => {}
            Action::Opened(result) => {
                if let Some(tx) = self.opened.write().take() {
                    if result.is_ok() {
                        // Events of the opening are held until the app
                        // subscribed in the continuation of its `await
                        // openConvo(...)` (microtasks of this task): they go
                        // in the next task, ahead of any task the stream's
                        // reader queues after this chunk.
                        self.emitter.release_soon();
                    }
                    tx.send(result);
                }
            }
        }
    }

    /// What names this convo's local data: the API, the agent, the convo.
    fn names(&self) -> (&str, &str, &str) {
        (&self.client.config.base_url, &self.client.config.agent_id, &self.convo_id)
    }

    /// This tab's role.
    fn role(&self) -> &'static str {
        match self.session.read().role() {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }

    fn close(&self) {
        if self.is_closed() {
            return;
        }
        // The session lets the other tabs know, then releases the lock and
        // stops the election's timer; the channel goes with the link.
        self.run(SessionInput::Close);
        let tab = self.tab.write().take();
        drop(tab);
        crate::http::abort(&self.rest_abort);
        self.page.write().take();
        self.sends.write().clear();
        self.timers.write().clear();
        let stream = self.stream.write().take();
        drop(stream);
        self.emitter.clear();
        self.client.tokens.set_active(-1);
    }

    /// Carries out an upload or a post of the outbox; its answer goes back
    /// to the machine. `close()` aborts it.
    fn spawn_post(&self, id: u64, url: String, token: String, body: http::Body) {
        let sink = self.this.clone();
        let signal = self.rest_abort.signal();
        // A send's answer may be the reply's token stream: the send settles
        // at its headers, the body drains (an upload's answer is read).
        let drain = matches!(body, http::Body::Json(_));
        crate::rt::spawn(async move {
            let (outcome, body) = match http::send_answer("POST", &url, Some(&token), body, Some(&signal), drain).await {
                Ok(r) if (200..300).contains(&r.status) => (SendOutcome::Ok, r.body),
                Ok(r) => (SendOutcome::Http { status: r.status, retry_after: r.retry_after, body: r.body }, String::new()),
                Err(m) => (SendOutcome::Network(m), String::new()),
            };
            feed(&sink, Input::Posted { id, outcome, body });
        });
    }

    /// Queues a send in the outbox; resolves when it settles (at once with
    /// `detached`), with the draft's id for an upload.
    async fn send(
        &self,
        what: Outgoing,
        key: Option<String>,
        files: JsValue,
        signal: Option<web_sys::AbortSignal>,
        detached: bool,
    ) -> Result<Option<String>, ClientError> {
        if self.is_closed() {
            return Err(ClientError::new(ErrorCode::Closed, "the convo is closed"));
        }
        if signal.as_ref().is_some_and(|s| s.aborted()) {
            return Err(ClientError::new(ErrorCode::Aborted, "the send was aborted before it started"));
        }
        let id = self.next_send.get() + 1;
        self.next_send.set(id);
        let (tx, rx) = crate::rt::oneshot();
        let abort = signal.map(|s| {
            let sink = self.this.clone();
            crate::rt::listen(&s, "abort", move |_| feed(&sink, Input::CancelSend { id }))
        });
        self.sends.write().push((id, PendingSend { settle: (!detached).then_some(tx), files, _abort: abort }));
        self.handle(Input::Send { id, key, what, detached });
        if detached {
            return Ok(None);
        }
        rx.await.unwrap_or_else(|| Err(ClientError::new(ErrorCode::Closed, "the convo was closed")))
    }

    /// The session's metrics, with the token source's.
    fn metrics(&self) -> ConvoMetrics {
        let mut m = self.session.read().metrics();
        m.token_refreshes = self.client.tokens.fetches();
        m
    }
}

/// An open convo. Get one with `valet.openConvo({ convoId })`.
#[wasm_bindgen]
pub struct Convo {
    inner: Rc<ConvoInner>,
}

impl Convo {
    /// Starts the stream; resolves when the machine reports the first
    /// outcome (live, paused, or retrying), rejects if it stopped (the
    /// convo is then closed).
    pub(crate) async fn start(inner: Rc<ConvoInner>) -> Result<Convo, ClientError> {
        let (tx, rx) = crate::rt::oneshot();
        *inner.opened.write() = Some(tx);
        inner.run(SessionInput::Start { hidden: page_hidden().unwrap_or(false) });
        inner.follow_page();
        let outcome = rx.await.unwrap_or_else(|| Err(ClientError::new(ErrorCode::Closed, "the convo was closed")));
        match outcome {
            // The held events go in the next task (see `Action::Opened`).
            Ok(()) => Ok(Convo { inner }),
            Err(e) => {
                inner.close();
                Err(e)
            }
        }
    }
}

#[wasm_bindgen]
impl Convo {
    /// The convo id.
    #[wasm_bindgen(getter, js_name = convoId)]
    pub fn convo_id(&self) -> js_sys::JsString {
        self.inner.convo_id.as_str().into()
    }

    /// Subscribes to an event; returns the unsubscribe function.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, handler: JsValue) -> Result<js_sys::Function, JsValue> {
        let off = self.inner.emitter.subscribe(event, &handler, EventName::LIST);
        match off.as_string() {
            Some(why) => Err(js_error(ErrorCode::InvalidArgument, why)),
            None => Ok(off.unchecked_into()),
        }
    }

    /// Sends a user message (after uploading `files`, if any). Resolves once
    /// the server stored it. Sends go in order; while the server is
    /// unreachable they wait (pending) and go when it is back, each with its
    /// own idempotency key so a retry is never stored twice.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "SendOptions | null")] options: Option<JsValue>,
    ) -> js_sys::Promise {
        submit(self.inner.clone(), false, text, options.unwrap_or_default())
    }

    /// Uploads files as a draft message and resolves to its `message_id`
    /// (in turn with the sends, with the same retries); `send(text, {
    /// messageId })` then sends the text with them.
    #[wasm_bindgen(js_name = uploadFiles, unchecked_return_type = "Promise<string>")]
    pub fn upload_files(&self, #[wasm_bindgen(unchecked_param_type = "Blob[]")] files: JsValue) -> js_sys::Promise {
        submit(self.inner.clone(), true, files, JsValue::UNDEFINED)
    }

    /// Counters for monitoring: reconnects, the last event's time, duplicates
    /// dropped, gaps filled by reconcile, leader changes, token refreshes,
    /// queued sends, messages delivered.
    #[wasm_bindgen(unchecked_return_type = "ConvoMetrics")]
    pub fn metrics(&self) -> JsValue {
        let json = self.inner.metrics().to_json();
        json_value(&json)
    }

    /// Stops for good: no stream, timer, fetch or listener is left behind.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Drops the stream until `resume()`.
    pub fn pause(&self) {
        self.inner.handle(Input::Pause);
    }

    /// Reconnects after `pause()`, or after a stop on an error.
    pub fn resume(&self) {
        self.inner.handle(Input::Start);
    }

    /// The connection status: `connecting`, `connected`, `reconnecting`,
    /// `paused`, `stopped` or `closed` (the `status` event announces changes).
    #[wasm_bindgen(getter, unchecked_return_type = "Status")]
    pub fn status(&self) -> js_sys::JsString {
        self.inner.session.read().status().as_str().into()
    }

    /// This tab's role: `leader` (holds the stream) or `follower` (gets the
    /// leader's events); the `role` event announces changes.
    #[wasm_bindgen(getter, unchecked_return_type = "\"leader\" | \"follower\"")]
    pub fn role(&self) -> js_sys::JsString {
        self.inner.role().into()
    }

    /// Messages delivered so far.
    #[wasm_bindgen(getter, js_name = deliveredCount)]
    pub fn delivered_count(&self) -> u32 {
        self.inner.session.read().convo().delivered_count() as u32
    }
}

/// `send(text, options)`, or `uploadFiles(files)` (`upload`, the files in
/// `text`): one async driver for both.
fn submit(inner: Rc<ConvoInner>, upload: bool, text: JsValue, options: JsValue) -> js_sys::Promise {
    crate::rt::promise(async move {
        let args = send_args(upload, &text, &options)?;
        if let Some(message) = args.as_string() {
            return Err(js_error(ErrorCode::InvalidArgument, message));
        }
        let args: js_sys::Array = args.unchecked_into();
        let files = args.get(1);
        let has_files = files.unchecked_ref::<js_sys::Array>().length() > 0;
        let what = match args.get(0).as_string() {
            Some(text) => Outgoing::Message { text, files: has_files, draft: args.get(2).as_string() },
            None => Outgoing::Upload,
        };
        let signal = args.get(3).dyn_into::<web_sys::AbortSignal>().ok();
        let key = args.get(5).as_string();
        let draft = inner.send(what, key, files, signal, args.get(4).is_truthy()).await.map_err(|e| to_js(&e))?;
        Ok(draft.map(JsValue::from).unwrap_or(JsValue::UNDEFINED))
    })
}

/// Removes and returns the value under `key` in a short list of pairs (a
/// few timers, the pending sends): a list, not a map, whose code would
/// weigh more in the wasm than the lookups ever cost.
fn take_key<K: PartialEq, V>(list: &mut Vec<(K, V)>, key: &K) -> Option<V> {
    let at = list.iter().position(|(k, _)| k == key)?;
    Some(list.swap_remove(at).1)
}
