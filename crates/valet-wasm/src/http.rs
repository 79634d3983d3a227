//! `fetch`, from whatever global scope the SDK runs in (window or worker).

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, FormData, Headers, Request, RequestInit, RequestMode, Response};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(input: &Request) -> js_sys::Promise;
}

#[wasm_bindgen(inline_js = "export function drain(r) { r.arrayBuffer().then(() => {}, () => {}); }")]
extern "C" {
    /// Reads a body to its end in the background, unparsed (`stream_message`
    /// may answer with the reply's token stream: the contract says drain it).
    fn drain(response: &Response);
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
        .map(|e| format!("{}: {}", String::from(e.name()), String::from(e.message())))
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

/// Sends a request; `Err` is a network failure (no HTTP answer), described.
pub async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    extra_headers: &[(&str, &str)],
    body: Body,
    signal: Option<&AbortSignal>,
) -> Result<Response, String> {
    let headers = Headers::new().map_err(|e| describe(&e))?;
    if let Some(t) = token {
        headers.set("authorization", &format!("Bearer {t}")).map_err(|e| describe(&e))?;
    }
    for (k, v) in extra_headers {
        headers.set(k, v).map_err(|e| describe(&e))?;
    }
    let init = RequestInit::new();
    init.set_method(method);
    init.set_mode(RequestMode::Cors);
    match body {
        Body::Empty => {}
        Body::Json(text) => {
            headers.set("content-type", "application/json").map_err(|e| describe(&e))?;
            init.set_body(&JsValue::from_str(&text));
        }
        Body::Form(form) => init.set_body(&form),
    }
    init.set_headers(&headers);
    if let Some(s) = signal {
        init.set_signal(Some(s));
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(|e| describe(&e))?;
    let response = JsFuture::from(global_fetch(&request)).await.map_err(|e| describe(&e))?;
    let response = response.dyn_into::<Response>().map_err(|_| "fetch did not return a Response".to_owned())?;
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
    let response = send(method, url, token, &[], body, signal).await?;
    let retry_after = response.headers().get("retry-after").ok().flatten();
    let status = response.status();
    if drain_ok && (200..300).contains(&status) {
        drain(&response);
        return Ok(Reply { status, retry_after, body: String::new() });
    }
    Ok(Reply { status, retry_after, body: text(&response).await })
}
