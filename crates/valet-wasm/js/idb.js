// @ts-check
// The IndexedDB side of `persist: "local"`: the local history, the outboxes
// of closed tabs, the files of unsent messages. Loaded by local.js (a
// dynamic import) only when a client asks for `persist: "local"`; the build
// puts it beside the snippets (crates/valet-wasm/build/lazy.mjs).
//
// One database per origin, `valet-sdk`, four stores:
// - `rows`: a convo's `message` frames, one per row, under
//   [scope, api, agent, convo, row] (scope: the user's identity hash);
// - `convos`: per [scope, api, agent, convo], `{ used, bytes }`, to evict
//   whole convos, the least recently used first, past MAX_CONVOS or
//   MAX_BYTES;
// - `outboxes`: each tab's outbox as the core stores it (the same JSON as
//   in its `sessionStorage`), under [api, agent, convo, tab, scope], so a
//   tab of the origin can claim what a closed tab left unsent;
// - `files`: the files of a send not uploaded yet, under [api, agent,
//   convo, idempotency key], until they are uploaded or the send settles.
// Which rows to write, what they mean and which sends to restore is
// valet-core's (`cache.rs`, `outbox.rs`): this file stores and reads.

const NAME = "valet-sdk";
const STORES = ["rows", "convos", "outboxes", "files"];
/** Convos kept, at most (for every user of the origin together). */
export const MAX_CONVOS = 50;
/** The bytes of the frames kept, at most (idem). */
export const MAX_BYTES = 16 << 20;

/** @type {Promise<IDBDatabase> | undefined} */
let opening;

/**
 * A request's result.
 * @template T
 * @param {IDBRequest<T>} req
 * @returns {Promise<T>}
 */
const result = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

/**
 * A transaction's end.
 * @param {IDBTransaction} t
 * @returns {Promise<void>}
 */
const committed = (t) => new Promise((resolve, reject) => {
  t.oncomplete = () => resolve();
  t.onerror = t.onabort = () => reject(t.error ?? new Error("aborted"));
});

/**
 * Opens the database at `version` (the current one if undefined),
 * recreating the stores at an upgrade.
 * @param {number} [version]
 * @returns {Promise<IDBDatabase>}
 */
function open(version) {
  const req = indexedDB.open(NAME, version);
  req.onupgradeneeded = () => {
    const d = req.result;
    for (const s of [...d.objectStoreNames]) d.deleteObjectStore(s);
    for (const s of STORES) d.createObjectStore(s);
  };
  return new Promise((resolve, reject) => {
    let blocked = false;
    // Given up on while blocked: a connection that comes later is closed.
    req.onsuccess = () => (blocked ? req.result.close() : resolve(req.result));
    req.onerror = () => reject(req.error);
    // An older connection that does not close (another tab's) holds the upgrade.
    req.onblocked = () => {
      blocked = true;
      reject(new Error("the local database is blocked by another tab"));
    };
  });
}

/**
 * The database, opened once per page. A layout that is not this one (an
 * older schema, or a database of another library under this name) is
 * dropped: the next version recreates the stores.
 * @returns {Promise<IDBDatabase>}
 */
function db() {
  opening ??= (async () => {
    let d = await open();
    if (!STORES.every((s) => d.objectStoreNames.contains(s))) {
      const version = d.version + 1;
      d.close();
      d = await open(version);
    }
    // `clearLocalData()` elsewhere, or a newer layout: let it proceed.
    d.onversionchange = () => { d.close(); opening = undefined; };
    return d;
  })();
  // A failed opening is tried again at the next call.
  opening.catch(() => { opening = undefined; });
  return opening;
}

/**
 * The key range of a convo's rows.
 * @param {string[]} convo [scope, api, agent, convo]
 */
const rowsOf = (convo) => IDBKeyRange.bound([...convo, 0], [...convo, Infinity]);

/**
 * A convo's rows from row 0 on, up to the first missing one (an eviction
 * or a clear may have left a later writer's rows alone); rejects when
 * they can not be read. A row that is not a string reads as "" (the core
 * finds it unreadable).
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @returns {Promise<string[]>}
 */
export async function cacheLoad(api, agent, convo, scope) {
  const id = [scope, api, agent, convo];
  const t = (await db()).transaction(STORES, "readwrite");
  const rows = t.objectStore("rows"), convos = t.objectStore("convos");
  const keys = result(rows.getAllKeys(rowsOf(id))), values = result(rows.getAll(rowsOf(id)));
  const meta = convos.get(id);
  meta.onsuccess = () => { if (meta.result) convos.put({ ...meta.result, used: Date.now() }, id); };
  const [, k, v] = await Promise.all([committed(t), keys, values]);
  /** @type {string[]} */
  const frames = [];
  while (frames.length < k.length && /** @type {unknown[]} */ (k[frames.length])[4] === frames.length) {
    const f = v[frames.length];
    frames.push(typeof f === "string" ? f : "");
  }
  return frames;
}

/**
 * Writes `frames` from row `at` on, and the convo's size (`bytes`), then
 * evicts whole convos past the caps. Rejects when it fails (full,
 * refused, missing).
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @param {number} at
 * @param {string[]} frames
 * @param {number} bytes
 */
export async function cacheAppend(api, agent, convo, scope, at, frames, bytes) {
  const id = [scope, api, agent, convo];
  const d = await db();
  const t = d.transaction(STORES, "readwrite");
  const rows = t.objectStore("rows");
  frames.forEach((f, i) => rows.put(f, [...id, at + i]));
  t.objectStore("convos").put({ used: Date.now(), bytes }, id);
  await committed(t);
  await evict(d, id);
}

/**
 * Deletes the least recently used convos (never `keep`) while more than
 * MAX_CONVOS or MAX_BYTES are kept.
 * @param {IDBDatabase} d
 * @param {string[]} keep
 */
async function evict(d, keep) {
  const t = d.transaction(STORES, "readwrite");
  const convos = t.objectStore("convos");
  // Requests of one store answer in order: the keys are in at the values'
  // answer, where the deletes go in the same transaction.
  const keys = convos.getAllKeys(), metas = convos.getAll();
  metas.onsuccess = () => {
    const all = keys.result.map((k, i) => ({ id: /** @type {string[]} */ (k), used: metas.result[i]?.used ?? 0, bytes: metas.result[i]?.bytes ?? 0 }));
    let bytes = all.reduce((n, c) => n + c.bytes, 0), count = all.length;
    all.sort((a, b) => a.used - b.used);
    for (const c of all) {
      if (count <= MAX_CONVOS && bytes <= MAX_BYTES) break;
      if (indexedDB.cmp(c.id, keep) === 0) continue;
      t.objectStore("rows").delete(rowsOf(c.id));
      convos.delete(c.id);
      count -= 1;
      bytes -= c.bytes;
    }
  };
  await committed(t);
}

/**
 * Deletes a convo's rows (they were unreadable).
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 */
export async function cacheDrop(api, agent, convo, scope) {
  const id = [scope, api, agent, convo];
  const t = (await db()).transaction(STORES, "readwrite");
  t.objectStore("rows").delete(rowsOf(id));
  t.objectStore("convos").delete(id);
  await committed(t);
}

/** This tab's id (see `tabId`). @type {string | undefined} */
let tab;

/**
 * This tab's id, kept in `sessionStorage` (a reload keeps it; a closed
 * tab's is gone with it). While the page lives it holds the Web Lock
 * `valet-sdk:tab:{id}`: an outbox whose tab's lock is free is a closed
 * tab's.
 * @returns {string}
 */
function tabId() {
  if (tab) return tab;
  try {
    tab = sessionStorage.getItem("valet-sdk:tab") ?? undefined;
  } catch {}
  if (!tab) {
    tab = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      sessionStorage.setItem("valet-sdk:tab", tab);
    } catch {}
  }
  navigator.locks?.request(`valet-sdk:tab:${tab}`, () => new Promise(() => {})).catch(() => {});
  return tab;
}

/**
 * Keeps this tab's outbox under `scope` (as the core stores it in
 * `sessionStorage`; `json` undefined: removes it). Rejects when it fails.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @param {string | undefined} json
 */
export async function keepOutbox(api, agent, convo, scope, json) {
  const id = [api, agent, convo, tabId(), scope];
  const t = (await db()).transaction("outboxes", "readwrite");
  if (json === undefined) t.objectStore("outboxes").delete(id);
  else t.objectStore("outboxes").put(json, id);
  await committed(t);
}

/**
 * The outboxes closed tabs left under `scope` for this convo, each taken
 * (deleted) under its tab's lock, so that one page only claims it. None
 * without Web Locks (a closed tab can not be told from an open one) or
 * storage; a failure midway returns what was taken so far (it is deleted:
 * only this page has it).
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} scope
 * @returns {Promise<string[]>}
 */
export async function claimOutboxes(api, agent, convo, scope) {
  /** @type {string[]} */
  const claimed = [];
  try {
    if (!navigator.locks) return claimed;
    const d = await db();
    const mine = tabId();
    // Arrays sort after strings: every key of this convo is below [..., []].
    const keys = await result(d.transaction("outboxes").objectStore("outboxes").getAllKeys(IDBKeyRange.bound([api, agent, convo], [api, agent, convo, []])));
    for (const key of keys) {
      const [, , , t, s] = /** @type {string[]} */ (key);
      if (t === mine || s !== scope) continue;
      await navigator.locks.request(`valet-sdk:tab:${t}`, { ifAvailable: true }, async (lock) => {
        if (!lock) return; // that tab is open
        const tx = d.transaction("outboxes", "readwrite");
        const store = tx.objectStore("outboxes");
        const r = store.get(key);
        r.onsuccess = () => {
          if (typeof r.result === "string") claimed.push(r.result);
          store.delete(key);
        };
        await committed(tx);
      });
    }
  } catch {}
  return claimed;
}

/** The files of one send kept, at most (bytes). */
export const MAX_SEND_FILES = 10 << 20;
/** The files of every send kept, at most (bytes, for the origin). */
export const MAX_FILES = 50 << 20;

/**
 * Keeps a send's files (Blobs, or Files with their names) under its
 * idempotency key, within MAX_SEND_FILES and MAX_FILES: past them, or when
 * storage fails, they are not kept (the next page fails that send).
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} key
 * @param {Blob[]} files
 */
export async function keepFiles(api, agent, convo, key, files) {
  const size = files.reduce((n, f) => n + f.size, 0);
  if (size > MAX_SEND_FILES) return;
  const t = (await db()).transaction("files", "readwrite");
  const store = t.objectStore("files");
  const all = store.getAll();
  all.onsuccess = () => {
    const kept = all.result.flat().reduce((n, f) => n + f.size, 0);
    if (kept + size <= MAX_FILES) store.put(files, [api, agent, convo, key]);
  };
  await committed(t);
}

/**
 * Deletes the files kept under a send's key.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} key
 */
export async function dropFiles(api, agent, convo, key) {
  const t = (await db()).transaction("files", "readwrite");
  t.objectStore("files").delete([api, agent, convo, key]);
  await committed(t);
}

/**
 * The files kept under a send's key, or undefined.
 * @param {string} api
 * @param {string} agent
 * @param {string} convo
 * @param {string} key
 * @returns {Promise<Blob[] | undefined>}
 */
export async function loadFiles(api, agent, convo, key) {
  const files = await result((await db()).transaction("files").objectStore("files").get([api, agent, convo, key]));
  return Array.isArray(files) && files.every((f) => f instanceof Blob) ? files : undefined;
}

/** Closes this page's connection (before `clearLocalData()` deletes the database). */
export async function closeDb() {
  const d = await opening?.catch(() => undefined);
  d?.close();
  opening = undefined;
}
