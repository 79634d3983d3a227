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
//! - The transport is a few lines of JS (`openStream`, in `http`'s, on the
//!   REST calls' request helper) that report what happens to one callback,
//!   as the core's inputs: the wasm keeps no future, reader or listener
//!   per stream (a Rust `async` driver with its `Response`, `Headers` and
//!   reader handles is much more code).
//! - Dropping the handle stops the JS first (the fetch aborted, or the
//!   EventSource closed), then frees the callback: nothing calls it after.
//! - A stream is handed a [`Sink`] for the core's inputs, not a convo: it
//!   knows nothing above it.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::boxed::Box;

use valet_core::convo::Input;
use valet_core::wire::STREAM_EVENT_NAMES;
use wasm_bindgen::prelude::*;

use crate::http::open_stream;
use crate::rt::Subscription;

/// What `openStream` reports: kind, text, status, `Retry-After`.
type Report = dyn FnMut(u32, Option<String>, u16, Option<String>) -> bool;

/// A live stream: dropped, it stops (the fetch aborted, or the EventSource
/// closed), then frees its callback.
pub type StreamHandle = Subscription<Report>;

/// Where a stream's inputs go. It answers whether the events it got are
/// held for now (the transport then stops reading until they are not).
pub type Sink = Box<dyn FnMut(Input) -> bool>;

/// Opens the stream of `attempt`: over fetch at `url`, or (`ticket_url`)
/// over EventSource at `url` followed by the ticket.
pub fn open(
    mut sink: Sink,
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
        sink(input)
    });
    let stop =
        open_stream(ticket_url.is_some(), url, ticket_url.unwrap_or_default(), token, last_event_id, STREAM_EVENT_NAMES, callback.as_ref());
    Subscription::new(stop, callback)
}
