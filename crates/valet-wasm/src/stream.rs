//! The two stream transports, as handles that clean up on drop.
//!
//! - `fetch` (default): `Authorization` header; the response's status and
//!   `Retry-After` reach the core; the body is decoded by the browser's
//!   streaming `TextDecoder` and fed as text as it arrives.
//! - `EventSource`: trades the token for a single-use ticket (EXTENSION) so
//!   the token never goes in a URL; the browser parses the stream, and the
//!   events of each network chunk reach the core as one SSE text, as the
//!   fetch transport's chunks do (one crossing per chunk, not per event).
//!   It can not see an HTTP status, so failures after the ticket are plain
//!   failures.
//!
//! Dropping a handle aborts the fetch (or stops the EventSource's listening
//! and closes it): a closed or replaced stream leaves nothing behind.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};

use valet_core::convo::Input;
use valet_core::wire::STREAM_EVENT_NAMES;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, EventSource};

use crate::convo::{feed, ConvoInner};
use crate::http;

#[wasm_bindgen(inline_js = r#"
export class TextReader {
  constructor(body) { this.reader = body.getReader(); this.decoder = new TextDecoder(); }
  async read() {
    const { done, value } = await this.reader.read();
    return done ? undefined : this.decoder.decode(value, { stream: true });
  }
}

// EventSource's events as SSE text, one crossing per batch: `cb` gets the
// text of the events one network chunk dispatched (they come in one task;
// the flush is the next task, through a MessageChannel), so they reach the
// core as the fetch transport's chunks do, through the same parser and
// batched frame reading; `true` when the stream opens, `false` when it
// fails (each after what came before).
export function eventSourceText(es, types, cb) {
  let text = "";
  const port = new MessageChannel();
  const flush = () => { if (text) { const t = text; text = ""; cb(t); } };
  port.port1.onmessage = flush;
  const onEvent = (e) => {
    if (!(e instanceof MessageEvent)) { flush(); cb(false); return; }
    if (!text) port.port2.postMessage(0);
    text += "event: " + e.type + "\ndata: " + String(e.data).split("\n").join("\ndata: ") + "\nid: " + e.lastEventId + "\n\n";
  };
  es.addEventListener("open", () => { flush(); cb(true); });
  for (const t of types.split(",")) es.addEventListener(t, onEvent);
  return () => { port.port1.onmessage = null; port.port1.close(); es.close(); };
}
"#)]
extern "C" {
    /// Listens to `es` for the frame types `types` (comma-separated) and
    /// hands their events on to `cb` as SSE text (see above). Returns the
    /// function that stops it and closes `es`.
    #[wasm_bindgen(js_name = eventSourceText)]
    fn event_source_text(es: &EventSource, types: &str, cb: &JsValue) -> js_sys::Function;

    /// A response body read as text: the browser's streaming `TextDecoder`
    /// decodes UTF-8 (a sequence cut by a chunk waits for the next; invalid
    /// bytes become U+FFFD, as the SSE standard's decoder has it), so the
    /// wasm carries no decoder and gets each chunk as a string.
    type TextReader;

    #[wasm_bindgen(constructor)]
    fn new(body: &web_sys::ReadableStream) -> TextReader;

    /// The next chunk's text; `undefined` at the end of the body.
    #[wasm_bindgen(method)]
    fn read(this: &TextReader) -> js_sys::Promise;
}

/// A live stream.
pub enum StreamHandle {
    /// A fetch in flight.
    Fetch(AbortController),
    /// An EventSource (created once its ticket arrives).
    EventSource(Rc<EsState>),
}

/// The parts of an EventSource stream.
pub struct EsState {
    ticket_abort: AbortController,
    listening: RefCell<Option<Listening>>,
    dropped: Cell<bool>,
}

/// An EventSource's events being handed on: dropped, it stops that and
/// closes the EventSource (then frees the callback).
struct Listening {
    stop: js_sys::Function,
    _callback: Closure<dyn FnMut(JsValue)>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.stop.call0(&JsValue::UNDEFINED);
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        match self {
            StreamHandle::Fetch(c) => crate::http::abort(c),
            StreamHandle::EventSource(s) => {
                s.dropped.set(true);
                crate::http::abort(&s.ticket_abort);
                s.listening.write().take();
            }
        }
    }
}

/// Opens the stream over fetch.
pub fn open_fetch(sink: Weak<ConvoInner>, attempt: u64, url: String, token: String, last_event_id: Option<String>) -> StreamHandle {
    let controller = AbortController::new().expect_throw("AbortController");
    let signal = controller.signal();
    crate::rt::spawn(async move {
        let sse = http::Sse { last_event_id: last_event_id.as_deref() };
        let response = match http::send("GET", &url, Some(&token), Some(sse), http::Body::Empty, Some(&signal)).await {
            Ok(r) => r,
            Err(message) => return feed(&sink, Input::StreamFailed { attempt, message }),
        };
        let status = response.status();
        let is_sse =
            response.headers().get("content-type").ok().flatten().is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        if status != 200 || !is_sse {
            let retry_after = response.headers().get("retry-after").ok().flatten();
            let body = http::text(&response).await;
            return feed(&sink, Input::StreamRefused { attempt, status, retry_after, body });
        }
        feed(&sink, Input::StreamOpened { attempt });
        let Some(body) = response.body() else {
            return feed(&sink, Input::StreamEnded { attempt });
        };
        let reader = TextReader::new(&body);
        loop {
            let text = match JsFuture::from(reader.read()).await {
                Ok(t) => t,
                Err(e) => {
                    let message = e.as_string().unwrap_or_else(|| "stream read failed".into());
                    return feed(&sink, Input::StreamFailed { attempt, message });
                }
            };
            let Some(text) = text.as_string() else {
                return feed(&sink, Input::StreamEnded { attempt });
            };
            if sink.upgrade().is_none() {
                return;
            }
            feed(&sink, Input::StreamText { attempt, text });
            if sink.upgrade().is_some_and(|inner| inner.events_held()) {
                crate::rt::sleep(0).await;
            }
        }
    });
    StreamHandle::Fetch(controller)
}

/// Opens the stream over EventSource with a ticket.
pub fn open_eventsource(
    sink: Weak<ConvoInner>,
    attempt: u64,
    ticket_url: String,
    events_url: impl Fn(&str) -> String + 'static,
    token: String,
) -> StreamHandle {
    let state = Rc::new(EsState {
        ticket_abort: AbortController::new().expect_throw("AbortController"),
        listening: RefCell::new(None),
        dropped: Cell::new(false),
    });
    let st = state.clone();
    crate::rt::spawn(async move {
        let signal = st.ticket_abort.signal();
        let reply = match http::send_read("POST", &ticket_url, Some(&token), http::Body::Empty, Some(&signal)).await {
            Ok(r) => r,
            Err(message) => return feed(&sink, Input::StreamFailed { attempt, message }),
        };
        if !(200..300).contains(&reply.status) {
            return feed(&sink, Input::StreamRefused { attempt, status: reply.status, retry_after: reply.retry_after, body: reply.body });
        }
        let ticket = match valet_core::json::read_n(&reply.body, ["ticket"]).and_then(|[t]| t.into_string()) {
            Some(t) => t,
            None => return feed(&sink, Input::StreamFailed { attempt, message: "malformed stream ticket".into() }),
        };
        if st.dropped.get() {
            return;
        }
        let es = match EventSource::new(&events_url(&ticket)) {
            Ok(es) => es,
            Err(_) => return feed(&sink, Input::StreamFailed { attempt, message: "EventSource refused the URL".into() }),
        };
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
            let input = match (v.as_string(), v.as_bool()) {
                (Some(text), _) => Input::StreamText { attempt, text },
                (None, Some(true)) => Input::StreamOpened { attempt },
                // `error` is both a frame name and the failure event: the JS tells them apart.
                _ => Input::StreamFailed { attempt, message: "EventSource error".into() },
            };
            feed(&sink, input);
        });
        let stop = event_source_text(&es, STREAM_EVENT_NAMES, callback.as_ref());
        *st.listening.write() = Some(Listening { stop, _callback: callback });
    });
    StreamHandle::EventSource(state)
}
