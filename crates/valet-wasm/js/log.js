// @ts-check
// Debug lines and the app's `onEvent` hook.
// Imported by src/log.rs (`#[wasm_bindgen(module = "/js/log.js")]`).

/**
 * A debug line (the caller leaves tokens out), with the SDK's prefix.
 * @param {string} line
 */
export const debugLine = (line) => console.debug("[valet-sdk] " + line);

/**
 * Calls the app's hook with `kind` and the payload; what it throws is
 * reported and delivery goes on.
 * @param {(kind: string, payload: unknown) => void} hook
 * @param {string} kind
 * @param {string} json
 */
export function callHook(hook, kind, json) {
  try { hook(kind, JSON.parse(json)); }
  catch (e) { console.error("[valet-sdk] the onEvent hook threw; delivery goes on:", e); }
}
