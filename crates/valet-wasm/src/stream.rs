//! The two stream transports, as a handle that stops its stream on drop.
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
//! Decisions:
//! - The transport is a few lines of JS (`openStream`) that report what
//!   happens to one callback, as the core's inputs: the wasm keeps no
//!   future, reader or listener per stream (a Rust `async` driver with its
//!   `Response`, `Headers` and reader handles cost it 1.3 KB gzipped more).
//! - Dropping the handle stops the JS first (the fetch aborted, or the
//!   EventSource closed), then frees the callback: nothing calls it after.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::rc::Weak;

use valet_core::convo::Input;
use valet_core::wire::STREAM_EVENT_NAMES;
use wasm_bindgen::prelude::*;

use crate::convo::{feed, ConvoInner};
use crate::rt::Subscription;

#[wasm_bindgen(inline_js = r#"
const described = (e, or) => e instanceof Error ? e.name + ": " + e.message : typeof e === "string" ? e : or;
export function openStream(eventSource, url, ticketUrl, token, lastEventId, types, cb) {
  let stopped = false, es = null, port = null;
  const ctrl = new AbortController();
  const call = (...a) => !stopped && cb(...a);
  const request = async (method, u, sse) => {
    const headers = { authorization: "Bearer " + token };
    if (sse) headers.accept = "text/event-stream";
    if (sse && lastEventId != null) headers["last-event-id"] = lastEventId;
    let r;
    try { r = await fetch(u, { method, mode: "cors", headers, signal: ctrl.signal }); } catch (e) { call(3, described(e, "network error")); return; }
    const date = r.headers.get("date");
    if (date) call(5, date);
    return r;
  };
  const refused = async (r) => call(4, await r.text().catch(() => ""), r.status, r.headers.get("retry-after") ?? undefined);
  const fetchStream = async () => {
    const r = await request("GET", url, true);
    if (!r) return;
    if (r.status !== 200 || !/^text\/event-stream/i.test(r.headers.get("content-type") ?? "")) return refused(r);
    call(0);
    if (!r.body) return call(2);
    const reader = r.body.getReader(), decoder = new TextDecoder();
    for (;;) {
      let chunk;
      try { chunk = await reader.read(); } catch (e) { return call(3, typeof e === "string" ? e : "stream read failed"); }
      if (chunk.done) return call(2);
      // The convo holds its events (`openConvo` pending): a macrotask per chunk lets it release them.
      if (call(1, decoder.decode(chunk.value, { stream: true }))) await new Promise((go) => setTimeout(go, 0));
    }
  };
  // EventSource's events as SSE text, one crossing per batch: the events one
  // network chunk dispatched come in one task; the flush is the next task,
  // through a MessageChannel. `open` and a failure flush what came before.
  const eventSourceStream = async () => {
    const r = await request("POST", ticketUrl, false);
    if (!r) return;
    if (r.status < 200 || r.status > 299) return refused(r);
    let ticket;
    try { ticket = JSON.parse(await r.text()).ticket; } catch {}
    if (typeof ticket !== "string") return call(3, "malformed stream ticket");
    if (stopped) return;
    try { es = new EventSource(url + encodeURIComponent(ticket)); } catch { return call(3, "EventSource refused the URL"); }
    let text = "";
    port = new MessageChannel();
    const flush = () => { if (text) { const t = text; text = ""; call(1, t); } };
    port.port1.onmessage = flush;
    es.addEventListener("open", () => { flush(); call(0); });
    const onEvent = (e) => {
      // `error` is both a frame name and the failure event: a frame is a MessageEvent.
      if (!(e instanceof MessageEvent)) { flush(); call(3, "EventSource error"); return; }
      if (!text) port.port2.postMessage(0);
      text += "event: " + e.type + "\ndata: " + String(e.data).split("\n").join("\ndata: ") + "\nid: " + e.lastEventId + "\n\n";
    };
    for (const t of types.split(",")) es.addEventListener(t, onEvent);
  };
  (eventSource ? eventSourceStream() : fetchStream()).catch((e) => call(3, described(e, "stream failed")));
  return () => {
    stopped = true;
    ctrl.abort("valet-sdk: aborted");
    es?.close();
    if (port) { port.port1.onmessage = null; port.port1.close(); }
  };
}
"#)]
extern "C" {
    /// Opens the stream (`eventSource`: a ticket from `ticketUrl`, then an
    /// EventSource on `url` and the ticket, URI-encoded; else a fetch of
    /// `url`) and reports to `cb(kind, text, status, retryAfter)`: 0
    /// opened; 1 text (the chunk's SSE text); 2 the body ended; 3 failed
    /// (`text`: why); 4 refused (`text`: the body, `status`,
    /// `retryAfter`); 5 an answer's `Date` (`text`). `cb` answers whether
    /// the convo holds its events. Returns the function that stops it all.
    #[wasm_bindgen(js_name = openStream)]
    fn open_stream(
        event_source: bool,
        url: &str,
        ticket_url: &str,
        token: &str,
        last_event_id: Option<String>,
        types: &str,
        cb: &JsValue,
    ) -> js_sys::Function;
}

/// What `openStream` reports: kind, text, status, `Retry-After`.
type Report = dyn FnMut(u32, Option<String>, u16, Option<String>) -> bool;

/// A live stream: dropped, it stops (the fetch aborted, or the EventSource
/// closed), then frees its callback.
pub type StreamHandle = Subscription<Report>;

/// Opens the stream of `attempt`: over fetch at `url`, or (`ticket_url`)
/// over EventSource at `url` followed by the ticket.
pub fn open(
    sink: Weak<ConvoInner>,
    attempt: u64,
    url: &str,
    ticket_url: Option<&str>,
    token: &str,
    last_event_id: Option<String>,
) -> StreamHandle {
    let callback = Closure::<Report>::new(move |kind: u32, text: Option<String>, status: u16, retry_after: Option<String>| {
        let text = text.unwrap_or_default();
        let input = match kind {
            0 => Input::StreamOpened { attempt },
            1 => Input::StreamText { attempt, text },
            2 => Input::StreamEnded { attempt },
            3 => Input::StreamFailed { attempt, message: text },
            4 => Input::StreamRefused { attempt, status, retry_after, body: text },
            _ => {
                crate::tokens::observe_server_date(&text);
                return false;
            }
        };
        feed(&sink, input);
        sink.upgrade().is_some_and(|inner| inner.events_held())
    });
    let stop =
        open_stream(ticket_url.is_some(), url, ticket_url.unwrap_or_default(), token, last_event_id, STREAM_EVENT_NAMES, callback.as_ref());
    Subscription::new(stop, callback)
}
