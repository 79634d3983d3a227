//! `Convo`: carries out a `valet_core::convo::ConvoMachine`'s actions.
//!
//! The glue owns handles (stream, timers, visibility listener, an abort
//! controller for REST calls) and drops them on `close()`. It decides
//! nothing: every `if` about the protocol is in valet-core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use serde::Deserialize;
use valet_core::client::Transport;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, Timer};
use valet_core::election::{Role, TabAction, TabInput};
use valet_core::events::ConvoRoleEvent;
use valet_core::error::{ClientError, ErrorCode};
use valet_core::events::EventName;
use valet_core::wire::{SendRequest, UploadResponse};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortController;

use crate::client::ClientShared;
use crate::emitter::Emitter;
use crate::error::{js_error, to_js};
use crate::http;
use crate::stream::{open_eventsource, open_fetch, StreamHandle};
use crate::tabs::TabLink;

/// One open convo's state in the glue.
pub struct ConvoInner {
    machine: RefCell<ConvoMachine>,
    client: Rc<ClientShared>,
    convo_id: String,
    emitter: Emitter,
    stream: RefCell<Option<(u64, StreamHandle)>>,
    timers: RefCell<HashMap<Timer, Timeout>>,
    rest_abort: AbortController,
    visibility: RefCell<Option<EventListener>>,
    opened: RefCell<Option<futures_channel::oneshot::Sender<Result<(), ClientError>>>>,
    /// The link to the other tabs of this browser (one stream for all).
    tab: RefCell<Option<Rc<TabLink>>>,
    this: Weak<ConvoInner>,
}

/// Feeds an election input to a convo if it still exists.
pub fn feed_tab(sink: &Weak<ConvoInner>, input: TabInput) {
    if let Some(inner) = sink.upgrade() {
        inner.tab_input(input);
    }
}

/// Feeds an input to a convo if it still exists, and carries out the actions.
pub fn feed(sink: &Weak<ConvoInner>, input: Input) {
    if let Some(inner) = sink.upgrade() {
        inner.handle(input);
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn page_hidden() -> Option<bool> {
    web_sys::window().and_then(|w| w.document()).map(|d| d.hidden())
}

impl ConvoInner {
    pub(crate) fn open(client: Rc<ClientShared>, convo_id: String) -> Rc<ConvoInner> {
        let cfg = &client.config;
        let mut machine_cfg = ConvoConfig::new(cfg.agent_id.clone(), convo_id.clone());
        machine_cfg.pause_on_hidden = cfg.pause_on_hidden;
        machine_cfg.stall_timeout_ms = cfg.stall_timeout_ms;
        let tab = TabLink::new(&cfg.agent_id, &convo_id, client.uuid()).map(Rc::new);
        machine_cfg.relay = tab.is_some();
        let seed = client.seed();
        let inner = Rc::new_cyclic(|this| ConvoInner {
            machine: RefCell::new(ConvoMachine::new(machine_cfg, seed)),
            client: client.clone(),
            convo_id,
            emitter: Emitter::new(),
            stream: RefCell::new(None),
            timers: RefCell::new(HashMap::new()),
            rest_abort: AbortController::new().expect("AbortController"),
            visibility: RefCell::new(None),
            opened: RefCell::new(None),
            tab: RefCell::new(tab),
            this: this.clone(),
        });
        if let Some(tab) = inner.tab.borrow().as_ref() {
            let sink = Rc::downgrade(&inner);
            let listener = EventListener::new(&tab.channel, "message", move |e| {
                // Only strings can be our envelopes; anything else is counted as garbage.
                let data = e.dyn_ref::<web_sys::MessageEvent>().and_then(|m| m.data().as_string()).unwrap_or_default();
                feed_tab(&sink, TabInput::Channel(data));
            });
            *tab.listener.borrow_mut() = Some(listener);
            if let Some(window) = web_sys::window() {
                let sink = Rc::downgrade(&inner);
                let hide = EventListener::new(&window, "pagehide", move |_| feed_tab(&sink, TabInput::PageHide));
                let sink = Rc::downgrade(&inner);
                let show = EventListener::new(&window, "pageshow", move |e| {
                    let persisted = js_sys::Reflect::get(e, &"persisted".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false);
                    if persisted {
                        feed_tab(&sink, TabInput::PageShow { visible: !page_hidden().unwrap_or(false) });
                    }
                });
                *tab.page_listeners.borrow_mut() = vec![hide, show];
            }
        }
        client.tokens.set_active(1);
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            let sink = Rc::downgrade(&inner);
            let listener = EventListener::new(&document, "visibilitychange", move |_| {
                if let Some(hidden) = page_hidden() {
                    feed(&sink, Input::Visibility { hidden });
                    feed_tab(&sink, TabInput::Visibility { visible: !hidden });
                }
            });
            *inner.visibility.borrow_mut() = Some(listener);
        }
        inner
    }

    /// Handles one input and carries out the actions, in order.
    pub fn handle(&self, input: Input) {
        let actions = self.machine.borrow_mut().handle(now_ms(), input);
        for action in actions {
            self.execute(action);
        }
    }

    fn is_closed(&self) -> bool {
        self.machine.borrow().is_closed()
    }

    fn execute(&self, action: Action) {
        // A handler may have closed the convo mid-batch: then only cleanup runs.
        if self.is_closed() && !matches!(action, Action::CloseStream { .. } | Action::ClearTimer(_) | Action::Emit { event: EventName::Status, .. }) {
            return;
        }
        match action {
            Action::GetToken { purpose, reject } => {
                let sink = self.this.clone();
                let tokens = self.client.tokens.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let input = match tokens.get(reject).await {
                        Ok(token) => Input::Token { purpose, token },
                        Err(error) => Input::TokenFailed { purpose, error },
                    };
                    feed(&sink, input);
                });
            }
            Action::OpenStream { attempt, token, last_event_id } => {
                let cfg = &self.client.config;
                let handle = match cfg.transport {
                    Transport::Fetch => {
                        open_fetch(self.this.clone(), attempt, cfg.events_url(&self.convo_id, None), token, last_event_id)
                    }
                    Transport::EventSource => {
                        let client = self.client.clone();
                        let convo = self.convo_id.clone();
                        let events_url = move |ticket: &str| client.config.events_url(&convo, Some(ticket));
                        open_eventsource(self.this.clone(), attempt, cfg.ticket_url(&self.convo_id), events_url, token)
                    }
                };
                // Replacing drops (aborts) any previous stream.
                *self.stream.borrow_mut() = Some((attempt, handle));
            }
            Action::CloseStream { attempt } => {
                let mut stream = self.stream.borrow_mut();
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
                wasm_bindgen_futures::spawn_local(async move {
                    let input = match http::send_read("GET", &url, Some(&token), http::Body::Empty, Some(&signal)).await {
                        Ok(reply) => Input::ReconcileDone { req, status: reply.status, body: reply.body },
                        Err(message) => Input::ReconcileFailed { req, message },
                    };
                    feed(&sink, input);
                });
            }
            Action::SetTimer { timer, delay_ms } => {
                let sink = self.this.clone();
                let t = Timeout::new(delay_ms.min(i32::MAX as u64) as u32, move || feed(&sink, Input::TimerFired(timer)));
                self.timers.borrow_mut().insert(timer, t);
            }
            Action::ClearTimer(timer) => {
                let old = self.timers.borrow_mut().remove(&timer);
                drop(old);
            }
            Action::Emit { event, payload } => self.emitter.emit(event.as_str(), &payload),
            Action::EmitMany { event, json_array, .. } => self.emitter.emit_many(event.as_str(), &json_array),
            Action::Log(line) => self.client.log.log(&format!("convo {}: {line}", self.convo_id)),
            Action::Relay { event, data } => {
                let tab = self.tab.borrow().clone();
                if let Some(tab) = tab {
                    let env = tab.election.borrow().forward(&event, data);
                    if let Some(env) = env {
                        let _ = tab.channel.post_message(&JsValue::from_str(&serde_json::to_string(&env).expect("serializable")));
                    }
                }
            }
            Action::Opened(result) => {
                if let Some(tx) = self.opened.borrow_mut().take() {
                    let _ = tx.send(result);
                }
            }
        }
    }

    /// Handles one election input and carries out its actions.
    pub fn tab_input(&self, input: TabInput) {
        let Some(tab) = self.tab.borrow().clone() else { return };
        let ignored = tab.election.borrow().ignored();
        let actions = tab.election.borrow_mut().handle(now_ms(), input);
        let now_ignored = tab.election.borrow().ignored();
        if now_ignored > ignored {
            self.client.log.log(&format!("convo {}: ignored a message on the tab channel that is not ours ({now_ignored} so far)", self.convo_id));
        }
        for action in actions {
            match action {
                TabAction::RequestLock { steal } => {
                    self.client.log.log(&format!("convo {}: requesting the tab lock (steal: {steal})", self.convo_id));
                    let epoch = tab.lock_epoch.get() + 1;
                    tab.lock_epoch.set(epoch);
                    let sink = self.this.clone();
                    let cb = Closure::<dyn FnMut(JsValue)>::new(move |kind: JsValue| {
                        let Some(inner) = sink.upgrade() else { return };
                        let current = inner.tab.borrow().as_ref().is_some_and(|t| t.lock_epoch.get() == epoch);
                        inner.client.log.log(&format!("tab lock {:?} (current: {current})", kind.as_string()));
                        if current {
                            let input = if kind.as_string().as_deref() == Some("granted") { TabInput::LockGranted } else { TabInput::LockLost };
                            inner.tab_input(input);
                        }
                    });
                    tab.request(steal, cb);
                }
                TabAction::ReleaseLock => {
                    tab.lock_epoch.set(tab.lock_epoch.get() + 1);
                    tab.release();
                }
                TabAction::Broadcast(env) => {
                    let _ = tab.channel.post_message(&JsValue::from_str(&serde_json::to_string(&env).expect("serializable")));
                }
                TabAction::Lead { gen } => {
                    self.client.log.log(&format!("convo {}: this tab leads (generation {gen})", self.convo_id));
                    self.emit_role("leader", gen);
                    self.handle(Input::Lead);
                }
                TabAction::Follow { gen } => {
                    self.client.log.log(&format!("convo {}: this tab follows (generation {gen})", self.convo_id));
                    self.emit_role("follower", gen);
                    self.handle(Input::Standby);
                    self.handle(Input::Sync);
                }
                TabAction::Deliver { name, json } => self.handle(Input::Relayed { event: name, data: json }),
                TabAction::SetTimer { delay_ms } => {
                    let sink = self.this.clone();
                    let t = Timeout::new(delay_ms.min(i32::MAX as u64) as u32, move || feed_tab(&sink, TabInput::Tick));
                    *tab.timer.borrow_mut() = Some(t);
                }
            }
        }
    }

    fn emit_role(&self, role: &'static str, generation: u64) {
        if !self.is_closed() {
            let payload = serde_json::to_string(&ConvoRoleEvent { role, generation }).expect("serializable");
            self.emitter.emit(EventName::Role.as_str(), &payload);
        }
    }

    /// Without a tab link this tab is alone, so it leads; with one, it
    /// follows until the election makes it lead.
    fn role(&self) -> &'static str {
        match self.tab.borrow().as_ref() {
            Some(tab) if tab.election.borrow().role() != Some(Role::Leader) => "follower",
            _ => "leader",
        }
    }

    fn close(&self) {
        if self.is_closed() {
            return;
        }
        self.tab_input(TabInput::Close);
        let tab = self.tab.borrow_mut().take();
        if let Some(tab) = tab {
            tab.timer.borrow_mut().take();
            tab.release();
        }
        self.handle(Input::Close);
        crate::http::abort(&self.rest_abort);
        self.visibility.borrow_mut().take();
        self.timers.borrow_mut().clear();
        let stream = self.stream.borrow_mut().take();
        drop(stream);
        self.emitter.clear();
        self.client.tokens.set_active(-1);
    }

    async fn send(&self, text: String, files: Vec<web_sys::Blob>) -> Result<(), ClientError> {
        if self.is_closed() {
            return Err(ClientError::new(ErrorCode::Closed, "the convo is closed"));
        }
        let cfg = &self.client.config;
        let message_id = if files.is_empty() {
            None
        } else {
            let url = cfg.upload_url(&self.convo_id);
            let body = self
                .request("upload", "POST", &url, move || {
                    let form = web_sys::FormData::new().expect("FormData");
                    for f in &files {
                        let name = f.dyn_ref::<web_sys::File>().map(|f| f.name()).unwrap_or_else(|| "file".into());
                        let _ = form.append_with_blob_and_filename("files[]", f, &name);
                    }
                    http::Body::Form(form)
                })
                .await?;
            let upload: UploadResponse = serde_json::from_str(&body)
                .map_err(|e| ClientError::new(ErrorCode::Protocol, format!("malformed upload answer: {e}")))?;
            Some(upload.message_id)
        };
        let request = SendRequest { text, message_id, idempotency_key: Some(self.client.uuid()) };
        let json = serde_json::to_string(&request).expect("serializable");
        self.request("send", "POST", &cfg.send_url(&self.convo_id), move || http::Body::Json(json.clone())).await?;
        Ok(())
    }

    /// A REST call of this convo: the client's policy, aborted by `close()`.
    async fn request(&self, what: &'static str, method: &str, url: &str, body: impl Fn() -> http::Body) -> Result<String, ClientError> {
        let signal = self.rest_abort.signal();
        self.client.request(what, method, url, body, Some(&signal), || self.is_closed()).await
    }
}

/// Options of `convo.send` (read with `Reflect`, so a wrong value gets a
/// precise error).
#[allow(dead_code)]
#[derive(Default, Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SendOptions {
    /// Files to upload first; they become part of the message.
    #[serde(default)]
    #[tsify(type = "Blob[]", optional)]
    pub files: (),
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
        let (tx, rx) = futures_channel::oneshot::channel();
        *inner.opened.borrow_mut() = Some(tx);
        let hidden = page_hidden().unwrap_or(false);
        if hidden {
            inner.handle(Input::Visibility { hidden: true });
        }
        if inner.tab.borrow().is_some() {
            inner.tab_input(TabInput::Start { visible: !hidden });
        } else {
            inner.handle(Input::Start);
        }
        let outcome = rx.await.unwrap_or_else(|_| Err(ClientError::new(ErrorCode::Closed, "the convo was closed")));
        match outcome {
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
    pub fn convo_id(&self) -> String {
        self.inner.convo_id.clone()
    }

    /// Subscribes to an event; returns the unsubscribe function.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, handler: JsValue) -> Result<js_sys::Function, JsValue> {
        if EventName::parse(event).is_none() {
            let names: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
            return Err(js_error(ErrorCode::InvalidArgument, format!("unknown event {event:?}; events: {}", names.join(", "))));
        }
        let handler: js_sys::Function = handler
            .dyn_into()
            .map_err(|_| js_error(ErrorCode::InvalidArgument, format!("the `{event}` handler must be a function")))?;
        Ok(self.inner.emitter.on(event, &handler))
    }

    /// Sends a user message (after uploading `files`, if any). Resolves once
    /// the server stored it; retries are idempotent.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn send(&self, #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue, options: Option<tsify::Ts<SendOptions>>) -> js_sys::Promise {
        let inner = self.inner.clone();
        let options = options.map(JsValue::from);
        wasm_bindgen_futures::future_to_promise(async move {
            let text = text
                .as_string()
                .ok_or_else(|| js_error(ErrorCode::InvalidArgument, "send(text): text must be a string"))?;
            let files = read_files(options)?;
            if text.trim().is_empty() && files.is_empty() {
                return Err(js_error(ErrorCode::InvalidArgument, "send(text): text must not be empty"));
            }
            inner.send(text, files).await.map_err(|e| to_js(&e))?;
            Ok(JsValue::UNDEFINED)
        })
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
    pub fn status(&self) -> String {
        serde_json::to_value(self.inner.machine.borrow().status())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// This tab's role: `leader` (holds the stream) or `follower` (gets the
    /// leader's events); the `role` event announces changes.
    #[wasm_bindgen(getter, unchecked_return_type = "\"leader\" | \"follower\"")]
    pub fn role(&self) -> String {
        self.inner.role().to_owned()
    }

    /// Messages delivered so far.
    #[wasm_bindgen(getter, js_name = deliveredCount)]
    pub fn delivered_count(&self) -> u32 {
        self.inner.machine.borrow().delivered_count() as u32
    }
}

fn read_files(options: Option<JsValue>) -> Result<Vec<web_sys::Blob>, JsValue> {
    let Some(options) = options.filter(|o| !o.is_undefined() && !o.is_null()) else { return Ok(Vec::new()) };
    let files = js_sys::Reflect::get(&options, &"files".into()).unwrap_or(JsValue::UNDEFINED);
    if files.is_undefined() || files.is_null() {
        return Ok(Vec::new());
    }
    let err = || js_error(ErrorCode::InvalidArgument, "send(text, { files }): files must be an array of File or Blob");
    let array: js_sys::Array = files.dyn_into().map_err(|_| err())?;
    array.iter().map(|f| f.dyn_into::<web_sys::Blob>().map_err(|_| err())).collect()
}

