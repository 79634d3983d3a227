//! Debug logging: `[valet-sdk]`-prefixed `console.debug` lines when the
//! client was made with `debug: true`. Lines come from valet-core, which
//! never puts a token in one. And the `onEvent(kind, payload)` hook for
//! observability tools: what it throws is caught, never breaks delivery.

#[allow(unused_imports)]
use crate::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/log.js")]
extern "C" {
    /// `console.debug` of the line, prefixed.
    #[wasm_bindgen(js_name = debugLine)]
    fn debug_line(line: &str);
    /// Calls `hook(kind, JSON.parse(json))`; what it throws is reported
    /// (`console.error`), never thrown on.
    #[wasm_bindgen(js_name = callHook)]
    fn call_hook(hook: &js_sys::Function, kind: &str, json: &str);
}

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
            debug_line(line);
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
        if let Some(hook) = &self.0 {
            call_hook(hook, kind, json);
        }
    }
}
