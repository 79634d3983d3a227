//! Handler registry for `convo.on(...)`, as a few lines of JS.
//!
//! Decisions:
//! - Handlers live on the JS side: `on` returns a plain JS closure as the
//!   unsubscribe function (no Rust closure per subscription, so nothing to
//!   leak), and an event crosses the boundary once, as a JSON string parsed
//!   once for all its handlers.
//! - A burst of messages crosses as one JSON array (valet-core's `EmitMany`):
//!   one string and one parse for the burst.
//! - A handler that throws is reported (`console.error`) and the others
//!   still run.
//! - An SDK failure reaches `error` handlers as `{ error, phase, stage }`
//!   with `error` a real `Error`: an instance of the class the package
//!   registers ([`set_error_class`], its exported `ValetError`), so
//!   `instanceof ValetError` works. A server `error` frame is handed over as
//!   the frame itself (it has `reason`; an SDK failure has not).
//! - A convo's emitter starts *held*: what happens while `openConvo` is
//!   pending (the first `ready`, `status`, `role`, history that arrives early)
//!   is queued, in order, and replayed once the app has subscribed in the
//!   task where `await openConvo(...)` returned ([`Emitter::release`]).

#[allow(unused_imports)]
use crate::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/emitter.js")]
extern "C" {
    /// Errors are made as instances of `class` from now on.
    #[wasm_bindgen(js_name = setErrorClass)]
    pub fn set_error_class(class: &JsValue);

    /// A `ValetError` from a `ClientError`'s JSON.
    #[wasm_bindgen(js_name = valetErrorFrom)]
    pub fn valet_error_from(json: &str) -> JsValue;

    /// The registry.
    pub type Emitter;

    /// `held`: queue events until [`Emitter::release`].
    #[wasm_bindgen(constructor)]
    pub fn new(held: bool) -> Emitter;

    /// Replays what was held, in order, and emits directly from then on.
    #[wasm_bindgen(method)]
    pub fn release(this: &Emitter);

    /// [`Emitter::release`] in a macrotask (after the continuation of the
    /// `await` that resolved in this one).
    #[wasm_bindgen(method, js_name = releaseSoon)]
    pub fn release_soon(this: &Emitter);

    /// Still holding events.
    #[wasm_bindgen(method, getter, js_name = isHeld)]
    pub fn held(this: &Emitter) -> bool;

    #[wasm_bindgen(method)]
    pub fn on(this: &Emitter, event: &str, handler: &js_sys::Function) -> js_sys::Function;

    /// `on`, if `event` is one of `events` (comma-separated) and `handler`
    /// a function; else why not (a string).
    #[wasm_bindgen(method)]
    pub fn subscribe(this: &Emitter, event: &str, handler: &JsValue, events: &str) -> JsValue;

    #[wasm_bindgen(method)]
    pub fn has(this: &Emitter, event: &str) -> bool;

    #[wasm_bindgen(method)]
    pub fn emit(this: &Emitter, event: &str, json: &str);

    #[wasm_bindgen(method, js_name = emitMany)]
    pub fn emit_many(this: &Emitter, event: &str, json_array: &str);

    #[wasm_bindgen(method)]
    pub fn clear(this: &Emitter);
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::*;

    /// A JS handler that records `payload.n`, and what it recorded.
    fn recorder() -> (js_sys::Array, js_sys::Function) {
        use wasm_bindgen::JsCast;
        let make = js_sys::Function::new_no_args("const seen = []; const f = (p) => seen.push(p.n); f.seen = seen; return f;");
        let f: js_sys::Function = make.call0(&JsValue::NULL).unwrap().unchecked_into();
        let seen: js_sys::Array = js_sys::Reflect::get(&f, &"seen".into()).unwrap().unchecked_into();
        (seen, f)
    }

    #[wasm_bindgen_test]
    fn emits_parsed_payloads_in_order_and_unsubscribes() {
        let e = Emitter::new(false);
        let (seen, handler) = recorder();
        let off = e.on("message", &handler);
        assert!(e.has("message"));
        e.emit("message", r#"{"n":1}"#);
        e.emit_many("message", r#"[{"n":2},{"n":3}]"#);
        e.emit("typing", r#"{"n":99}"#);
        off.call0(&JsValue::NULL).unwrap();
        off.call0(&JsValue::NULL).unwrap(); // twice is harmless
        e.emit("message", r#"{"n":4}"#);
        let got: Vec<f64> = seen.iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got, [1.0, 2.0, 3.0]);
        assert!(!e.has("message"));
    }

    #[wasm_bindgen_test]
    fn a_held_emitter_replays_in_order_on_release() {
        let e = Emitter::new(true);
        let (seen, handler) = recorder();
        e.emit("message", r#"{"n":1}"#);
        e.emit_many("message", r#"[{"n":2},{"n":3}]"#);
        e.on("message", &handler);
        assert_eq!(seen.length(), 0, "nothing before release");
        e.release();
        e.emit("message", r#"{"n":4}"#);
        let got: Vec<f64> = seen.iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got, [1.0, 2.0, 3.0, 4.0]);
    }

    #[wasm_bindgen_test]
    fn a_throwing_handler_does_not_stop_the_others() {
        let e = Emitter::new(false);
        let throwing = js_sys::Function::new_with_args("p", "throw new Error('app bug')");
        let (seen, handler) = recorder();
        e.on("message", &throwing);
        e.on("message", &handler);
        e.emit_many("message", r#"[{"n":1},{"n":2}]"#);
        assert_eq!(seen.length(), 2);
    }

    #[wasm_bindgen_test]
    fn a_batch_stops_when_a_handler_clears_the_emitter() {
        let e = Emitter::new(false);
        let (seen, handler) = recorder();
        e.on("message", &handler);
        // As `convo.close()` from a handler does: the emitter is cleared.
        let closing = js_sys::Function::new_with_args("p", "if (p.n === 2) this.clear();");
        let closing = closing.bind0(&e);
        e.on("message", &closing);
        e.emit_many("message", r#"[{"n":1},{"n":2},{"n":3}]"#);
        let got: Vec<f64> = seen.iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got, [1.0, 2.0]);
    }

    #[wasm_bindgen_test]
    fn the_same_function_can_subscribe_twice_and_clear_removes_all() {
        let e = Emitter::new(false);
        let (seen, handler) = recorder();
        e.on("ready", &handler);
        e.on("ready", &handler);
        e.emit("ready", r#"{"n":1}"#);
        assert_eq!(seen.length(), 2);
        e.clear();
        e.emit("ready", r#"{"n":1}"#);
        assert_eq!(seen.length(), 2);
    }
}
