// @ts-check
// The event emitter: handlers by event, payloads parsed with `JSON.parse`,
// SDK errors made as `ValetError` instances, and the events of an opening
// held until the app subscribed.
// Imported by src/emitter.rs (`#[wasm_bindgen(module = "/js/emitter.js")]`).

import { nextTask } from "./rt.js";

/**
 * An SDK error as the core writes it (`ClientError::to_json`).
 * @typedef {{ code: string, message: string, status?: number, retry_after_seconds?: number, body?: string, maybe_stored?: boolean }} WireError
 */

/**
 * The error as the package's `ValetError` has it.
 * @typedef {Error & { code?: string, status?: number, retryAfterSeconds?: number, body?: unknown, maybeStored?: boolean }} SdkError
 */

/** @type {(new (message: string) => Error) | null} */
let ErrorClass = null;

/**
 * Errors are made as instances of `c` (the package's `ValetError`, so
 * `instanceof` works); without it they are `Error`s named `ValetError`.
 * @param {unknown} c
 */
export function setErrorClass(c) { ErrorClass = typeof c === "function" ? /** @type {new (message: string) => Error} */ (c) : null; }

/**
 * @param {WireError} e
 * @returns {SdkError}
 */
export function valetError(e) {
  /** @type {SdkError} */
  const err = ErrorClass ? new ErrorClass(e.message) : new Error(e.message);
  err.name = "ValetError";
  err.code = e.code;
  if (e.status !== undefined) err.status = e.status;
  if (e.retry_after_seconds !== undefined) err.retryAfterSeconds = e.retry_after_seconds;
  if (e.body !== undefined) err.body = JSON.parse(e.body);
  if (e.maybe_stored !== undefined) err.maybeStored = e.maybe_stored;
  return err;
}

/**
 * @param {string} json
 * @returns {SdkError}
 */
export function valetErrorFrom(json) { return valetError(JSON.parse(json)); }

/**
 * An event's payload; an SDK failure's `error` becomes a `ValetError`.
 * @param {string} event
 * @param {string} json
 * @returns {any}
 */
function payloadOf(event, json) {
  const p = JSON.parse(json);
  if ((event === "error" || event === "restored_send") && p && typeof p.error === "object" && !("reason" in p)) p.error = valetError(p.error);
  return p;
}

/** @typedef {{ handler: (payload: unknown) => void }} Entry */

export class Emitter {
  /** @param {boolean} held hold what is emitted until `release()` */
  constructor(held) {
    /** @type {Map<string, Set<Entry>>} */
    this.handlers = new Map();
    /** @type {[string, string, boolean][] | null} */
    this.held = held ? [] : null;
  }
  releaseSoon() { void nextTask().then(() => this.release()); }
  get isHeld() { return !!this.held; }
  release() {
    const held = this.held;
    this.held = null;
    if (held) for (const [event, json, many] of held) many ? this.emitMany(event, json) : this.emit(event, json);
  }
  /**
   * `convo.on(event, handler)`: the unsubscribe function, or why not.
   * @param {string} event
   * @param {unknown} handler
   * @param {string} events the event names, ", "-separated
   * @returns {(() => void) | string}
   */
  subscribe(event, handler, events) {
    if (!events.split(", ").includes(event)) return "unknown event " + JSON.stringify(event) + "; events: " + events;
    if (typeof handler !== "function") return "the `" + event + "` handler must be a function";
    return this.on(event, /** @type {(payload: unknown) => void} */ (handler));
  }
  /**
   * @param {string} event
   * @param {(payload: unknown) => void} handler
   * @returns {() => void}
   */
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) { set = new Set(); this.handlers.set(event, set); }
    const entry = { handler };
    const entries = set;
    entries.add(entry);
    return () => { entries.delete(entry); };
  }
  /** @param {string} event */
  has(event) { const set = this.handlers.get(event); return !!set && set.size > 0; }
  /**
   * @param {string} event
   * @param {string} json
   */
  emit(event, json) {
    if (this.held) { this.held.push([event, json, false]); return; }
    const set = this.handlers.get(event);
    if (!set || set.size === 0) return;
    const payload = payloadOf(event, json);
    for (const entry of Array.from(set)) {
      try { entry.handler(payload); }
      catch (e) { console.error("[valet-sdk] a `" + event + "` handler threw; the others still ran:", e); }
    }
  }
  /**
   * @param {string} event
   * @param {string} jsonArray
   */
  emitMany(event, jsonArray) {
    if (this.held) { this.held.push([event, jsonArray, true]); return; }
    const set = this.handlers.get(event);
    if (!set || set.size === 0) return;
    /** @type {unknown[]} */
    const payloads = JSON.parse(jsonArray);
    for (const payload of payloads) {
      // A handler closed the convo (handlers cleared): the rest is not delivered.
      if (this.handlers.get(event) !== set) return;
      for (const entry of Array.from(set)) {
        try { entry.handler(payload); }
        catch (e) { console.error("[valet-sdk] a `" + event + "` handler threw; the others still ran:", e); }
      }
    }
  }
  clear() { this.handlers.clear(); this.held = null; }
}
