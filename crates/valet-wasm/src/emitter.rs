//! Handler registry for `convo.on(...)`, as a few lines of JS.
//!
//! Decisions:
//! - Handlers live on the JS side: `on` returns a plain JS closure as the
//!   unsubscribe function (no Rust closure per subscription, so nothing to
//!   leak), and an event crosses the boundary once, as a JSON string parsed
//!   once for all its handlers.
//! - Consecutive events of one name (a burst of messages) cross as one JSON
//!   array: one string and one parse for the burst.
//! - A handler that throws is reported (`console.error`) and the others
//!   still run.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export class Emitter {
  constructor() { this.handlers = new Map(); }
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) { set = new Set(); this.handlers.set(event, set); }
    const entry = { handler };
    set.add(entry);
    return () => { set.delete(entry); };
  }
  has(event) { const set = this.handlers.get(event); return !!set && set.size > 0; }
  emit(event, json) {
    const set = this.handlers.get(event);
    if (!set || set.size === 0) return;
    const payload = JSON.parse(json);
    for (const entry of Array.from(set)) {
      try { entry.handler(payload); }
      catch (e) { console.error("[valet-sdk] a `" + event + "` handler threw; the others still ran:", e); }
    }
  }
  emitMany(event, jsonArray) {
    const set = this.handlers.get(event);
    if (!set || set.size === 0) return;
    const payloads = JSON.parse(jsonArray);
    for (const payload of payloads) {
      for (const entry of Array.from(set)) {
        try { entry.handler(payload); }
        catch (e) { console.error("[valet-sdk] a `" + event + "` handler threw; the others still ran:", e); }
      }
    }
  }
  clear() { this.handlers.clear(); }
}
"#)]
extern "C" {
    /// The registry.
    pub type Emitter;

    #[wasm_bindgen(constructor)]
    pub fn new() -> Emitter;

    #[wasm_bindgen(method)]
    pub fn on(this: &Emitter, event: &str, handler: &js_sys::Function) -> js_sys::Function;

    #[wasm_bindgen(method)]
    pub fn has(this: &Emitter, event: &str) -> bool;

    #[wasm_bindgen(method)]
    pub fn emit(this: &Emitter, event: &str, json: &str);

    #[wasm_bindgen(method, js_name = emitMany)]
    pub fn emit_many(this: &Emitter, event: &str, json_array: &str);

    #[wasm_bindgen(method)]
    pub fn clear(this: &Emitter);
}
