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
    this: Weak<ConvoInner>,
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
            this: this.clone(),
        });
        client.tokens.set_active(1);
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            let sink = Rc::downgrade(&inner);
            let listener = EventListener::new(&document, "visibilitychange", move |_| {
                if let Some(hidden) = page_hidden() {
                    feed(&sink, Input::Visibility { hidden });
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
            Action::Opened(result) => {
                if let Some(tx) = self.opened.borrow_mut().take() {
                    let _ = tx.send(result);
                }
            }
        }
    }

    fn close(&self) {
        if self.is_closed() {
            return;
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
        if let Some(true) = page_hidden() {
            inner.handle(Input::Visibility { hidden: true });
        }
        inner.handle(Input::Start);
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

