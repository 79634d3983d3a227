// @ts-check
// The runtime's small pieces: a sleep, a guarded stop, a listener that
// hands over the string data of events.
// Imported by src/rt.rs (`#[wasm_bindgen(module = "/js/rt.js")]`).

/** @param {number} ms */
export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Resolves in a task of its own, after the microtasks queued before it: a
 * MessageChannel's message, which a loading page runs ahead of its timers
 * (a `setTimeout(0)` waits behind the page's loading tasks), and which a
 * hidden page does not throttle.
 * @returns {Promise<void>}
 */
export function nextTask() {
  if (typeof MessageChannel === "undefined") return sleep(0);
  return new Promise((done) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      done();
    };
    port2.postMessage(null);
  });
}

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
