// @ts-check
// A convo's JS: the page's events, the resume point and the outbox in
// sessionStorage, `send()`'s arguments checked and read, an upload's form.
// Imported by src/convo.rs (`#[wasm_bindgen(module = "/js/convo.js")]`).

/**
 * `JSON.parse` of JSON the SDK wrote.
 * @param {string} json
 * @returns {unknown}
 */
export const jsonValue = (json) => JSON.parse(json);

/** `document.hidden`; undefined outside a page. */
export const pageHidden = () => typeof document === "object" ? document.hidden : undefined;

/**
 * Follows the page's events and `channel`'s messages, reporting each to
 * `cb(kind, data, flag)`: 0 online; 1 pagehide; 2 pageshow from the
 * back/forward cache (`flag`: visible); 3 visibilitychange (`flag`:
 * hidden); 4 a message (`data`: its text, or "" when it is not one).
 * Returns the function that stops.
 * @param {BroadcastChannel | undefined} channel
 * @param {(kind: number, data?: string, flag?: boolean) => void} cb
 * @returns {() => void}
 */
export function pageEvents(channel, cb) {
  /** @type {[EventTarget, string, (e: any) => void][]} */
  const on = [];
  /** @type {(target: EventTarget, type: string, f: (e: any) => void) => void} */
  const listen = (target, type, f) => { target.addEventListener(type, f); on.push([target, type, f]); };
  if (typeof document === "object") {
    listen(window, "online", () => cb(0));
    listen(window, "pagehide", () => cb(1));
    listen(window, "pageshow", (/** @type {PageTransitionEvent} */ e) => { if (e.persisted) cb(2, undefined, !document.hidden); });
    listen(document, "visibilitychange", () => cb(3, undefined, document.hidden));
  }
  // Only strings can be our envelopes; anything else is counted as garbage.
  if (channel) listen(channel, "message", (/** @type {MessageEvent} */ e) => cb(4, typeof e.data === "string" ? e.data : ""));
  return () => { for (const [target, type, f] of on) target.removeEventListener(type, f); };
}

/**
 * The resume point stored under `key` in `sessionStorage` (`json`: stores
 * it instead). A storage that is missing, full or refused only costs the
 * resume.
 * @param {string} key
 * @param {string | undefined} json
 * @returns {string | undefined}
 */
export function resumePoint(key, json) {
  try {
    if (json === undefined) return sessionStorage.getItem(key) ?? undefined;
    sessionStorage.setItem(key, json);
  } catch {}
  return undefined;
}

/**
 * The outbox stored under `prefix`: `[scope, json]` of the scope stored
 * under last (`json` undefined: nothing there), or undefined (none, or no
 * storage).
 * @param {string} prefix
 * @returns {[string, string | undefined] | undefined}
 */
export function lastOutbox(prefix) {
  try {
    const scope = sessionStorage.getItem(prefix);
    return scope === null ? undefined : [scope, loadOutbox(prefix, scope)];
  } catch {
    return undefined;
  }
}

/**
 * The outbox stored under `prefix` and `scope`.
 * @param {string} prefix
 * @param {string} scope
 * @returns {string | undefined}
 */
export function loadOutbox(prefix, scope) {
  try {
    return sessionStorage.getItem(`${prefix}:${scope}`) ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stores the outbox under `prefix` and `scope` (`json` undefined: removes
 * it), and `scope` as the last. False when storage is missing, full or
 * refused.
 * @param {string} prefix
 * @param {string} scope
 * @param {string | undefined} json
 * @returns {boolean}
 */
export function saveOutbox(prefix, scope, json) {
  try {
    if (json === undefined) sessionStorage.removeItem(`${prefix}:${scope}`);
    else sessionStorage.setItem(`${prefix}:${scope}`, json);
    sessionStorage.setItem(prefix, scope);
    return true;
  } catch {
    return false;
  }
}

/**
 * `send(text, options)`'s arguments (`upload`: `uploadFiles(text)`'s
 * files), checked and read in one crossing: `[text, files, messageId,
 * signal, resolveWhenQueued, idempotencyKey]`, or the message of the
 * `invalid_argument` error. Throws what a getter of `options` throws.
 * @param {boolean} upload
 * @param {unknown} text
 * @param {unknown} options
 * @returns {unknown[] | string}
 */
export function sendArgs(upload, text, options) {
  /** @type {(k: string) => unknown} */
  const get = (k) => (options == null ? undefined : /** @type {Record<string, unknown>} */ (options)[k] ?? undefined);
  const files = upload ? text : get("files") ?? [];
  const blobs = Array.isArray(files) && files.every((f) => f instanceof Blob);
  if (upload) return blobs && files.length ? [undefined, files, undefined, undefined, false] : "uploadFiles(files): files must be a non-empty array of File or Blob";
  if (!blobs) return "send(text, { files }): files must be an array of File or Blob";
  if (typeof text !== "string") return "send(text): text must be a string";
  const id = get("messageId"), signal = get("signal"), detached = get("resolveWhenQueued") ?? false, key = get("idempotencyKey");
  if (id !== undefined && (typeof id !== "string" || !id)) return "send(text, { messageId }): must be the string uploadFiles() resolved to";
  if (!text.trim() && !files.length && id === undefined) return "send(text): text must not be empty";
  if (files.length && id !== undefined) return "send(text, { files, messageId }): give files or a draft's messageId, not both";
  if (signal !== undefined && !(signal instanceof AbortSignal)) return "send(text, { signal }): signal must be an AbortSignal";
  if (typeof detached !== "boolean") return "send(text, { resolveWhenQueued }): must be a boolean";
  if (key !== undefined && (typeof key !== "string" || !/^[\x21-\x7e]{1,200}$/.test(key))) return "send(text, { idempotencyKey }): must be 1 to 200 printable ASCII characters";
  return [text, files, id, signal, detached, key];
}

/**
 * The upload form of a send's files: `files[]` parts named as the `File`s
 * are (a `Blob`: `file`).
 * @param {Blob[] | undefined} files
 * @returns {FormData}
 */
export function formOf(files) {
  const form = new FormData();
  for (const f of files ?? []) form.append("files[]", f, f instanceof File ? f.name : "file");
  return form;
}
