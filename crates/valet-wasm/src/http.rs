//! `fetch`, from whatever global scope the SDK runs in (window or worker).

#[allow(unused_imports)]
use crate::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, FormData};

#[wasm_bindgen(inline_js = r#"
export async function httpSend(method, url, token, json, form, signal, drainOk) {
  const headers = {};
  if (token != null) headers.authorization = "Bearer " + token;
  if (json != null) headers["content-type"] = "application/json";
  let r;
  try { r = await fetch(url, { method, mode: "cors", headers, body: json ?? form, signal }); }
  catch (e) { throw e instanceof Error ? e.name + ": " + e.message : typeof e === "string" ? e : "network error"; }
  const reply = [r.status, r.headers.get("retry-after") ?? undefined, r.headers.get("date") ?? undefined];
  if (drainOk && r.ok) r.arrayBuffer().catch(() => {});
  else reply.push(await r.text().catch(() => ""));
  return reply;
}
"#)]
extern "C" {
    /// `fetch` with the SDK's headers (`Authorization` with `token`,
    /// `content-type` for a JSON body; `json` or `form` is the body), read
    /// in one crossing: resolves to `[status, Retry-After, Date, body]`
    /// (`drainOk` and a 2xx: no body, and it is drained unread); a failure
    /// rejects with its description (`name: message`).
    #[wasm_bindgen(js_name = httpSend)]
    fn http_send(
        method: &str,
        url: &str,
        token: Option<&str>,
        json: Option<String>,
        form: Option<FormData>,
        signal: Option<&AbortSignal>,
        drain_ok: bool,
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

/// Aborts with a plain string reason. A bare `abort()` makes an `AbortError`
/// whose lazily captured stack keeps the calling frames' objects (the
/// `Convo` whose `close()` was running) alive; with the controller rooted in
/// the wasm side, that cycle would never be collected.
pub fn abort(controller: &web_sys::AbortController) {
    controller.abort_with_reason(&JsValue::from_str("valet-sdk: aborted"));
}

/// A request, its whole answer read.
pub async fn send_read(method: &str, url: &str, token: Option<&str>, body: Body, signal: Option<&AbortSignal>) -> Result<Reply, String> {
    send_answer(method, url, token, body, signal, false).await
}

/// A request; with `drain_ok`, a 2xx body is drained in the background
/// (unread: `Reply::body` empty) and the answer is back at its headers.
pub async fn send_answer(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Body,
    signal: Option<&AbortSignal>,
    drain_ok: bool,
) -> Result<Reply, String> {
    let (json, form) = match body {
        Body::Empty => (None, None),
        Body::Json(text) => (Some(text), None),
        Body::Form(form) => (None, Some(form)),
    };
    let reply =
        JsFuture::from(http_send(method, url, token, json, form, signal, drain_ok)).await.map_err(|e| e.as_string().unwrap_or_default())?;
    let reply: js_sys::Array = reply.unchecked_into();
    // The server's clock, for token expiry (needs `Access-Control-Expose-Headers: Date` cross-origin).
    if let Some(date) = reply.get(2).as_string() {
        crate::tokens::observe_server_date(&date);
    }
    Ok(Reply {
        status: reply.get(0).as_f64().unwrap_or_default() as u16,
        retry_after: reply.get(1).as_string(),
        body: reply.get(3).as_string().unwrap_or_default(),
    })
}
