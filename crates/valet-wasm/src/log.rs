//! Debug logging: `[valet-sdk]`-prefixed `console.debug` lines when the
//! client was made with `debug: true`. Lines come from valet-core, which
//! never puts a token in one. And the `onEvent(kind, payload)` hook for
//! observability tools: what it throws is caught, never breaks delivery.

#[allow(unused_imports)]
use crate::prelude::*;
use wasm_bindgen::JsValue;

/// A logger.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    /// Whether to print.
    pub enabled: bool,
}

impl Logger {
    /// Prints a line when enabled.
    pub fn log(&self, line: &str) {
        if self.enabled {
            web_sys::console::debug_1(&valet_core::cat!("[valet-sdk] ", line).into());
        }
    }
}

/// The app's `onEvent(kind, payload)` hook, if it gave one.
#[derive(Debug, Clone, Default)]
pub struct Hook(pub Option<js_sys::Function>);

impl Hook {
    /// Whether there is a hook to call.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Calls the hook with `kind` and `JSON.parse(json)`; an exception it
    /// throws is reported on the console and goes no further.
    pub fn call(&self, kind: &str, json: &str) {
        let Some(f) = &self.0 else { return };
        let payload = js_sys::JSON::parse(json).unwrap_or(JsValue::NULL);
        if let Err(e) = f.call2(&JsValue::UNDEFINED, &JsValue::from_str(kind), &payload) {
            web_sys::console::error_2(&"[valet-sdk] the onEvent hook threw; delivery goes on:".into(), &e);
        }
    }
}
