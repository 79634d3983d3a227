// @ts-check
// What `persist: "local"` keeps, as the glue calls it, and what
// `clearLocalData()` removes. Imported by src/convo.rs and src/client.rs
// (`#[wasm_bindgen(module = "/js/local.js")]`). The IndexedDB code is in
// idb.js, imported on first use: only with `persist: "local"` (each call
// below is made only then, but `clearLocalData()`). What a failure (of the
// import, or of storage) comes to is decided here, once per call.

/** Bumped by `clearLocalData()`: convos opened before it store nothing more (the glue checks). */
let generation = 0;

/** `clearLocalData()` in another tab of the origin asks this one to clear its part. */
const CLEAR_CHANNEL = "valet-sdk:clear";
/** The channel followed (kept: a collected channel hears nothing). @type {BroadcastChannel | undefined} */
let clears;

/** @type {Promise<typeof import("./idb.js")> | undefined} */
let loading;

/**
 * The IndexedDB module, loaded once (tried again after a failed load).
 * @returns {Promise<typeof import("./idb.js")>}
 */
function idb() {
  loading ??= import("./idb.js");
  loading.catch(() => { loading = undefined; });
  return loading;
}

/** The generation a convo opened in (see `clearLocalData`). */
export const cacheGeneration = () => generation;

/**
 * A convo's local history from row 0 on: the frames, or why they can not
 * be read (a string). See idb.js.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @returns {Promise<string[] | string>}
 */
export const cacheLoad = (api, agent, convo, scope) => idb().then((m) => m.cacheLoad(api, agent, convo, scope)).catch(String);

/**
 * Writes frames from row `at` on: false when it fails.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @param {number} at
 * @param {string[]} frames
 * @param {number} bytes
 * @returns {Promise<boolean>}
 */
export const cacheAppend = (api, agent, convo, scope, at, frames, bytes) =>
  idb().then((m) => m.cacheAppend(api, agent, convo, scope, at, frames, bytes)).then(() => true, () => false);

/**
 * Deletes a convo's local history.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 */
export const cacheDrop = (api, agent, convo, scope) => void idb().then((m) => m.cacheDrop(api, agent, convo, scope)).catch(() => {});

/**
 * Keeps this tab's outbox in IndexedDB too: false when it fails.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @param {string | undefined} json
 * @returns {Promise<boolean>}
 */
export const keepOutbox = (api, agent, convo, scope, json) => idb().then((m) => m.keepOutbox(api, agent, convo, scope, json)).then(() => true, () => false);

/**
 * The outboxes the user's closed tabs left, claimed for this page.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @returns {Promise<string[]>}
 */
export const claimOutboxes = (api, agent, convo, scope) => idb().then((m) => m.claimOutboxes(api, agent, convo, scope)).catch(() => []);

/**
 * Keeps a send's files under its idempotency key (within the caps).
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} key
 * @param {Blob[]} files
 */
export const keepFiles = (api, agent, convo, key, files) => void idb().then((m) => m.keepFiles(api, agent, convo, key, files)).catch(() => {});

/**
 * Deletes the files kept under a send's key.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} key
 */
export const dropFiles = (api, agent, convo, key) => void idb().then((m) => m.dropFiles(api, agent, convo, key)).catch(() => {});

/**
 * The files kept under a send's key, or undefined.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} key
 * @returns {Promise<Blob[] | undefined>}
 */
export const loadFiles = (api, agent, convo, key) => idb().then((m) => m.loadFiles(api, agent, convo, key)).catch(() => undefined);

/** Removes the SDK's keys of this tab's `sessionStorage` (outboxes, resume points, the tab's id). */
function clearSession() {
  try {
    for (const k of Object.keys(sessionStorage)) if (k.startsWith("valet-sdk:")) sessionStorage.removeItem(k);
  } catch {}
}

/**
 * Follows `clearLocalData()` of the origin's other tabs (in a page; once).
 */
export function followClears() {
  if (clears || typeof document !== "object" || typeof BroadcastChannel !== "function") return;
  clears = new BroadcastChannel(CLEAR_CHANNEL);
  clears.onmessage = () => {
    generation += 1;
    clearSession();
  };
  // Under a DOM in Node (jsdom, happy-dom), a channel would keep the process alive.
  /** @type {{ unref?: () => void }} */ (/** @type {unknown} */ (clears)).unref?.();
}

/**
 * `clearLocalData()`: deletes the database, this tab's SDK keys of
 * `sessionStorage`, and asks the origin's other tabs to delete theirs;
 * convos open now store nothing more. Resolves once the database is gone
 * (another tab's convos close their connections when asked).
 * @returns {Promise<void>}
 */
export async function clearLocalData() {
  generation += 1;
  clearSession();
  if (typeof BroadcastChannel === "function") {
    const c = new BroadcastChannel(CLEAR_CHANNEL);
    c.postMessage("clear");
    c.close();
  }
  if (typeof indexedDB !== "object") return;
  await loading?.then((m) => m.closeDb(), () => {});
  await new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase("valet-sdk");
    req.onsuccess = () => resolve(undefined);
    req.onerror = () => reject(req.error);
  });
}
