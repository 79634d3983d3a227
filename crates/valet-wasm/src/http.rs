//! `fetch`, from whatever global scope the SDK runs in (window or worker).

#[allow(unused_imports)]
use crate::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, FormData, Response};

#[wasm_bindgen(inline_js = r#"
export function drain(r) { r.arrayBuffer().then(() => {}, () => {}); }
export function httpSend(method, url, token, sse, lastEventId, json, form, signal) {
  const headers = {};
  if (token != null) headers.authorization = "Bearer " + token;
  if (sse) headers.accept = "text/event-stream";
  if (lastEventId != null) headers["last-event-id"] = lastEventId;
  if (json != null) headers["content-type"] = "application/json";
  return fetch(url, { method, mode: "cors", headers, body: json ?? form, signal });
}
"#)]
extern "C" {
    /// Reads a body to its end in the background, unparsed (`stream_message`
    /// may answer with the reply's token stream: the contract says drain it).
    fn drain(response: &Response);
    /// `fetch` with the request built in JS: one crossing, and none of
    /// `Headers`, `RequestInit` and `Request`'s bindings in the wasm.
    #[wasm_bindgen(js_name = httpSend)]
    fn http_send(
        method: &str,
        url: &str,
        token: Option<&str>,
        sse: bool,
        last_event_id: Option<&str>,
        json: Option<String>,
        form: Option<FormData>,
        signal: Option<&AbortSignal>,
    ) -> js_sys::Promise;
}

/// A request body.
pub enum Body {
    /// None.
    Empty,
    /// JSON text.
    Json(String),
    /// Multipart.
    Form(FormData),
}

/// A whole answer, body read as text.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`.
    pub retry_after: Option<String>,
    /// Body text.
    pub body: String,
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| valet_core::cat!(String::from(e.name()), ": ", String::from(e.message())))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "network error".to_owned())
}

/// Aborts with a plain string reason. A bare `abort()` makes an `AbortError`
/// whose lazily captured stack keeps the calling frames' objects (the
/// `Convo` whose `close()` was running) alive; with the controller rooted in
/// the wasm side, that cycle would never be collected.
pub fn abort(controller: &web_sys::AbortController) {
    controller.abort_with_reason(&JsValue::from_str("valet-sdk: aborted"));
}

/// The stream's request headers: `accept: text/event-stream`, and the
/// `Last-Event-ID` to resume after.
pub struct Sse<'a> {
    /// Resume after this event.
    pub last_event_id: Option<&'a str>,
}

/// Sends a request; `Err` is a network failure (no HTTP answer), described.
pub async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    sse: Option<Sse<'_>>,
    body: Body,
    signal: Option<&AbortSignal>,
) -> Result<Response, String> {
    let (json, form) = match body {
        Body::Empty => (None, None),
        Body::Json(text) => (Some(text), None),
        Body::Form(form) => (None, Some(form)),
    };
    let last_event_id = sse.as_ref().and_then(|s| s.last_event_id);
    let promise = http_send(method, url, token, sse.is_some(), last_event_id, json, form, signal);
    let response: Response = JsFuture::from(promise).await.map_err(|e| describe(&e))?.unchecked_into();
    // The server's clock, for token expiry (needs `Access-Control-Expose-Headers: Date` cross-origin).
    if let Ok(Some(date)) = response.headers().get("date") {
        crate::tokens::observe_server_date(&date);
    }
    Ok(response)
}

/// Reads a response's body as text (empty on failure).
pub async fn text(response: &Response) -> String {
    match response.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// `send` and read the whole body.
pub async fn send_read(method: &str, url: &str, token: Option<&str>, body: Body, signal: Option<&AbortSignal>) -> Result<Reply, String> {
    send_answer(method, url, token, body, signal, false).await
}

/// `send`; with `drain_ok`, a 2xx body is drained in the background
/// (unread: `Reply::body` empty) and the answer is back at its headers.
pub async fn send_answer(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Body,
    signal: Option<&AbortSignal>,
    drain_ok: bool,
) -> Result<Reply, String> {
    let response = send(method, url, token, None, body, signal).await?;
    let retry_after = response.headers().get("retry-after").ok().flatten();
    let status = response.status();
    if drain_ok && (200..300).contains(&status) {
        drain(&response);
        return Ok(Reply { status, retry_after, body: String::new() });
    }
    Ok(Reply { status, retry_after, body: text(&response).await })
}
