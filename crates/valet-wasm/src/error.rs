//! SDK errors as JS `Error`s a caller can branch on: `name` is
//! `"ValetError"`, and `code`, `status`, `retryAfterSeconds`, `body`,
//! `maybeStored` carry the fields of `valet_core::error::ClientError`. The
//! package registers its `ValetError` class, so they are its instances.

#[allow(unused_imports)]
use crate::prelude::*;
use valet_core::error::{ClientError, ErrorCode};
use wasm_bindgen::prelude::*;

/// Converts an SDK error into a thrown/rejected JS value: one JSON string
/// across the boundary, made into a `ValetError` in JS.
pub fn to_js(e: &ClientError) -> JsValue {
    crate::emitter::valet_error_from(&e.to_json())
}

/// Errors are made as instances of `class` (the package's exported
/// `ValetError`, so `instanceof` works); the package calls it once the
/// wasm is loaded. Without it (the raw `./wasm` entry) they are `Error`s
/// named `ValetError`.
///
/// @internal
#[wasm_bindgen(js_name = setErrorClass)]
pub fn set_error_class(#[wasm_bindgen(unchecked_param_type = "new (message: string) => Error")] class: JsValue) {
    crate::emitter::set_error_class(&class);
}

/// A `ValetError` with a code and message.
pub fn js_error(code: ErrorCode, message: impl Into<String>) -> JsValue {
    to_js(&ClientError::new(code, message))
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_test::*;

    fn field(v: &JsValue, k: &str) -> JsValue {
        js_sys::Reflect::get(v, &k.into()).unwrap()
    }

    #[wasm_bindgen_test]
    fn errors_are_js_errors_with_branchable_fields() {
        // As `ValetClient::new` does: the body is read with `JSON.parse`.
        valet_core::json::set_reader(&crate::json::JsJson);
        let e = ClientError::from_http(429, Some(12), r#"{"status":"rate_limited","retry_after_seconds":12}"#, "send");
        let js = to_js(&e);
        let err = js.dyn_ref::<js_sys::Error>().expect("an Error");
        assert_eq!(String::from(err.name()), "ValetError");
        assert_eq!(field(&js, "code").as_string().as_deref(), Some("rate_limited"));
        assert_eq!(field(&js, "status").as_f64(), Some(429.0));
        assert_eq!(field(&js, "retryAfterSeconds").as_f64(), Some(12.0));
        assert_eq!(field(&field(&js, "body"), "status").as_string().as_deref(), Some("rate_limited"));
        let plain = js_error(ErrorCode::Closed, "closed");
        assert!(field(&plain, "status").is_undefined());
        assert_eq!(field(&plain, "code").as_string().as_deref(), Some("closed"));
    }
}
