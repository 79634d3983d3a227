// @ts-check
// Web Locks, for the tab election and for token sharing.
// Imported by src/tabs.rs (`#[wasm_bindgen(module = "/js/tabs.js")]`).

/** Whether this page has Web Locks. */
export function locksAvailable() {
  return typeof navigator !== "undefined" && !!navigator.locks && typeof navigator.locks.request === "function";
}

/**
 * Asks for the lock `name` (`steal`: take it from its holder), reporting to
 * `cb` true when granted and false when it ends (released, stolen, or the
 * request withdrawn); returns the function that releases it or withdraws
 * the request.
 * @param {string} name
 * @param {boolean} steal
 * @param {(granted: boolean) => void} cb
 * @returns {() => void}
 */
export function requestLock(name, steal, cb) {
  /** @param {boolean} kind */
  const call = (kind) => { try { cb(kind); } catch {} };
  const ctrl = new AbortController();
  /** @type {(value?: unknown) => void} */
  let release = () => {};
  const held = new Promise((resolve) => { release = resolve; });
  /** @type {LockOptions} */
  const options = steal ? { steal: true } : { signal: ctrl.signal };
  navigator.locks.request(name, options, () => { call(true); return held; })
    .then(() => call(false), () => call(false));
  return () => { release(); ctrl.abort("valet-sdk: released"); };
}
