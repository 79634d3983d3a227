//! SDK errors as JS `Error`s a caller can branch on: `name` is
//! `"ValetError"`, and `code`, `status`, `retryAfterSeconds`, `body` carry
//! the fields of `valet_core::error::ClientError`.

use valet_core::error::{ClientError, ErrorCode};
use wasm_bindgen::prelude::*;

/// Converts an SDK error into a thrown/rejected JS value.
pub fn to_js(e: &ClientError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("ValetError");
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&err, &JsValue::from_str(k), &v);
    };
    let code = serde_json::to_value(e.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    set("code", JsValue::from_str(&code));
    if let Some(s) = e.status {
        set("status", JsValue::from(s));
    }
    if let Some(s) = e.retry_after_seconds {
        set("retryAfterSeconds", JsValue::from(s as f64));
    }
    if let Some(body) = &e.body {
        if let Ok(v) = js_sys::JSON::parse(&body.to_string()) {
            set("body", v);
        }
    }
    err.into()
}

/// A `ValetError` with a code and message.
pub fn js_error(code: ErrorCode, message: impl Into<String>) -> JsValue {
    to_js(&ClientError::new(code, message))
}
