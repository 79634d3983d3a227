//! The two stream transports, as handles that clean up on drop.
//!
//! - `fetch` (default): `Authorization` header; the response's status and
//!   `Retry-After` reach the core; the body is decoded by the browser's
//!   streaming `TextDecoder` and fed as text as it arrives.
//! - `EventSource`: trades the token for a single-use ticket (EXTENSION) so
//!   the token never goes in a URL; the browser parses frames. It can not
//!   see an HTTP status, so failures after the ticket are plain failures.
//!
//! Dropping a handle aborts the fetch (or closes the EventSource and removes
//! its listeners): a closed or replaced stream leaves nothing behind.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};

use crate::rt::Listener;
use valet_core::convo::Input;
use valet_core::sse::SseEvent;
use valet_core::wire::KNOWN_FRAME_TYPES;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, EventSource, MessageEvent};

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
"#)]
extern "C" {
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
    source: RefCell<Option<EventSource>>,
    listeners: RefCell<Vec<Listener>>,
    dropped: Cell<bool>,
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        match self {
            StreamHandle::Fetch(c) => crate::http::abort(c),
            StreamHandle::EventSource(s) => {
                s.dropped.set(true);
                crate::http::abort(&s.ticket_abort);
                s.listeners.write().clear();
                if let Some(es) = s.source.write().take() {
                    es.close();
                }
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
        source: RefCell::new(None),
        listeners: RefCell::new(Vec::new()),
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
        let mut listeners = Vec::new();
        let s = sink.clone();
        listeners.push(Listener::new(&es, "open", move |_| feed(&s, Input::StreamOpened { attempt })));
        for name in KNOWN_FRAME_TYPES {
            let s = sink.clone();
            listeners.push(Listener::new(&es, name, move |e| {
                // `error` is both a frame name and the EventSource failure event.
                let Some(m) = e.dyn_ref::<MessageEvent>() else {
                    return feed(&s, Input::StreamFailed { attempt, message: "EventSource error".into() });
                };
                let data = m.data().as_string().unwrap_or_default();
                let event = SseEvent { event: name.to_owned(), data, id: m.last_event_id() };
                feed(&s, Input::StreamEvent { attempt, event });
            }));
        }
        *st.listeners.write() = listeners;
        *st.source.write() = Some(es);
    });
    StreamHandle::EventSource(state)
}
