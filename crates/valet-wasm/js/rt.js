// @ts-check
// The runtime's small pieces: a sleep, a guarded stop, a listener that
// hands over the string data of events.
// Imported by src/rt.rs (`#[wasm_bindgen(module = "/js/rt.js")]`).

/** @param {number} ms */
export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Calls `stop`; what it throws is dropped (it ends something already gone).
 * @param {() => void} stop
 */
export function end(stop) { try { stop(); } catch {} }

/**
 * Listens to `type` on `target`, handing `cb` each event's data when it is
 * a string; returns the function that stops.
 * @param {EventTarget} target
 * @param {string} type
 * @param {(data: string | undefined) => void} cb
 * @returns {() => void}
 */
export function addListener(target, type, cb) {
  /** @param {Event} e */
  const f = (e) => {
    const data = /** @type {MessageEvent} */ (e).data;
    cb(typeof data === "string" ? data : undefined);
  };
  target.addEventListener(type, f);
  return () => target.removeEventListener(type, f);
}
