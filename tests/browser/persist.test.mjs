// `persist: "local"`: the local history in IndexedDB. A reload shows the
// convo's history before the history request answers (the test holds that
// request), then what is new, each message once, the same keys updated in
// place; another user's token sees nothing of it; a full quota, a corrupted
// database, an old schema and a missing IndexedDB cost only the cache;
// `clearLocalData()` removes everything; the origin's convos are bounded.
// The npm package's store and the reference server; in Chromium, and in
// Firefox and WebKit (`make test-engines`).
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { LIVENESS_MS, ROOT, eventually, loadSdk, sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv();
  ({ server, site, browser } = env);
});

after(async () => {
  await env?.close();
});

let pages = [];
afterEach(async () => {
  for (const p of pages) await p.close().catch(() => {});
  pages = [];
  // Each test starts with no local data (one origin serves them all).
  const page = await env.page();
  await page.evaluate(() => new Promise((resolve, reject) => {
    const q = indexedDB.deleteDatabase("valet-sdk");
    q.onsuccess = resolve;
    q.onerror = () => reject(q.error);
  }));
  await page.close();
});

/** A new page with the SDK loaded, closed after the test. */
async function newPage() {
  const page = await env.page();
  pages.push(page);
  return page;
}

/** How many `storage_error`s the app's `onEvent` got. */
const storageErrors = async (page) => (await page.evaluate(() => window.t.kinds)).filter((k) => k === "storage_error").length;

/**
 * Opens the database in `page` at version 3 with an older layout (one
 * `messages` store); `hold`: keeps that connection open, as a tab that
 * never lets go does.
 */
const openOldSchema = (page, hold) => page.evaluate((hold) => new Promise((resolve, reject) => {
  const q = indexedDB.open("valet-sdk", 3);
  q.onupgradeneeded = () => q.result.createObjectStore("messages").put("old", 1);
  q.onsuccess = () => { if (hold) window.held = q.result; else q.result.close(); resolve(); };
  q.onerror = () => reject(q.error);
}), hold);

let users = 0;
/** A user with a convo of `n` exchanges (the user's text and the dev agent's answer, each). */
async function user(name, n = 2) {
  const sourceKey = `${name}-${++users}`;
  const convoId = await server.session(sourceKey);
  const { token } = await server.jwt(sourceKey);
  for (let i = 1; i <= n; i++) {
    const res = await fetch(`${server.base}/api/v2/agent_convos/${convoId}/stream_message`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ text: `question ${i}` }),
    });
    await res.arrayBuffer();
    assert.ok(res.ok);
  }
  await eventually("the dev agent answers", async () => (await server.history(sourceKey, convoId)).length >= 2 * n);
  return { sourceKey, convoId, token };
}

/**
 * Holds every request of `page` for the convo, its history (`GET
 * /agent_convos/{convo}`) and its stream, until `release()`; `held()`
 * counts the history requests. In the page (its `fetch`, which the SDK
 * calls), so in every engine.
 */
async function holdHistory(page, convoId) {
  await page.evaluate((path) => {
    const fetch0 = window.fetch;
    const held = [];
    let open = false, count = 0;
    window.fetch = (input, init) => {
      const url = new URL(typeof input === "string" ? input : input.url, location.href);
      if (open || (url.pathname !== path && url.pathname !== `${path}/events`)) return fetch0(input, init);
      if (url.pathname === path) count += 1;
      return new Promise((resolve, reject) => held.push(() => fetch0(input, init).then(resolve, reject)));
    };
    window.hold = { held: () => count, release: () => { open = true; for (const go of held.splice(0)) go(); } };
  }, `/api/v2/agent_convos/${convoId}`);
  return {
    held: () => page.evaluate(() => window.hold.held()),
    release: () => page.evaluate(() => window.hold.release()),
  };
}

/**
 * The app in `page` (after each load): a client with `persist` whose
 * `fetchJwt` returns `token`, a store over `convoId`; `message` events
 * (id, `from_cache`), every state of the list and `onEvent` kinds recorded.
 */
async function app(page, { convoId, token, persist = "local", close = false }) {
  await page.evaluate(async ({ base, AGENT, convoId, token, persist }) => {
    const pkg = await import("/pkg/index.js");
    const { createConvoStore } = await import("/pkg/store.js");
    const t = { states: [], events: [], kinds: [] };
    // `persist` null: the option left out.
    const options = { agentId: AGENT, fetchJwt: () => token, baseUrl: base, pauseOnHidden: false, onEvent: (k) => t.kinds.push(k) };
    t.client = new pkg.ValetClient(persist === null ? options : { ...options, persist });
    t.s = createConvoStore(async () => {
      const convo = await t.client.openConvo({ convoId });
      convo.on("message", (e) => t.events.push({ id: e.message.id, cache: e.from_cache === true, history: e.from_reconcile === true }));
      t.convo = convo;
      return convo;
    });
    t.view = () => t.s.getState().messages.map((m) => ({ key: m.key, text: m.content }));
    t.s.subscribe(() => t.states.push(t.view().map((m) => m.key)));
    window.t = t;
  }, { base: server.base, AGENT, convoId, token, persist });
  if (close) await until(page, "the convo open", () => window.t.convo !== undefined);
}

const until = (page, what, pred, arg) => page.waitForFunction(pred, arg, { timeout: LIVENESS_MS }).catch(async (e) => {
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await page.evaluate(() => ({ view: window.t?.view(), kinds: window.t?.kinds })))}`, { cause: e });
});

/** The rows of the local history in `page`'s origin (none without a database). */
const rows = (page) => page.evaluate(() => new Promise((resolve) => {
  const q = indexedDB.open("valet-sdk");
  q.onupgradeneeded = () => q.transaction.abort(); // no database: do not make one
  q.onerror = () => resolve([]);
  q.onsuccess = () => {
    const d = q.result;
    if (!d.objectStoreNames.contains("rows")) return d.close(), resolve([]);
    const r = d.transaction("rows").objectStore("rows").getAll();
    r.onsuccess = () => { d.close(); resolve(r.result); };
  };
}));

/** A page whose app delivered the user's convo (`count` messages) and wrote it to the local history. */
async function cached(u, count) {
  const page = await newPage();
  await app(page, u);
  await until(page, "the history", (n) => window.t.view().length === n, count);
  await eventually("the local history is written", async () => (await rows(page)).length >= count);
  return page;
}

/** Reloads `page` while the network is held: the convo's 4 messages show, all from the local history. */
async function showsCached(page, u, what) {
  const hold = await reload(page, u);
  await until(page, what, () => window.t.view().length === 4);
  assert.ok(await page.evaluate(() => window.t.events.every((e) => e.cache)));
  await hold.release();
}

/** Reloads `page`; `meanwhile()` runs before the app starts again. */
async function reload(page, u, options = {}, meanwhile = async () => {}) {
  await loadSdk(page, site.origin);
  await meanwhile();
  const hold = await holdHistory(page, u.convoId);
  await app(page, { ...u, ...options });
  return hold;
}

test("a reload shows the cached history before the history request answers, then what is new, once, keys in place", async () => {
  const u = await user("reload");
  const page = await cached(u, 4);
  const keys = await page.evaluate(() => window.t.view().map((m) => m.key));
  // A message the cache does not have, and its answer (stored while the page was away).
  const hold = await reload(page, u, {}, async () => {
    await fetch(`${server.base}/api/v2/agent_convos/${u.convoId}/stream_message`, {
      method: "POST",
      headers: { authorization: `Bearer ${u.token}`, "content-type": "application/json" },
      body: JSON.stringify({ text: "while away" }),
    }).then((r) => r.arrayBuffer());
    await eventually("the dev agent answers", async () => (await server.history(u.sourceKey, u.convoId)).length >= 6);
  });
  await until(page, "the cached history", (n) => window.t.view().length === n, 4);
  assert.ok((await hold.held()) >= 1, "the history request was made, and is held");
  assert.deepEqual(await page.evaluate(() => window.t.view().map((m) => m.key)), keys, "the cached list, same keys");
  assert.deepEqual(await page.evaluate(() => window.t.events), keys.map((id) => ({ id, cache: true, history: true })));

  await hold.release();
  await until(page, "what is new", (n) => window.t.view().length >= n, 6);
  const view = await page.evaluate(() => window.t.view());
  assert.deepEqual(view.slice(0, 4).map((m) => m.key), keys);
  assert.equal(view[4].text, "while away");
  const events = await page.evaluate(() => window.t.events);
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, "each message once");
  assert.deepEqual(events.slice(4).map((e) => e.cache), [false, false]);
  // No flicker: every state is a prefix of the final list.
  const final = view.map((m) => m.key);
  for (const s of await page.evaluate(() => window.t.states)) assert.deepEqual(s, final.slice(0, s.length));
  // The cache grew with what this page delivered.
  await eventually("the new messages are written", async () => (await rows(page)).length >= 6);
});

test("without persist: nothing is stored, and a reload shows nothing before the history answers", async () => {
  const u = await user("plain");
  const page = await newPage();
  await app(page, { ...u, persist: null });
  await until(page, "the history", () => window.t.view().length === 4);
  const hold = await reload(page, u, { persist: "none" });
  await page.waitForTimeout(700);
  assert.ok((await hold.held()) >= 1);
  assert.deepEqual(await page.evaluate(() => window.t.view()), []);
  assert.deepEqual(await rows(page), []);
  await hold.release();
  await until(page, "the history", () => window.t.view().length === 4);
});

test("another user's token on the same browser reads nothing of the first user's local history", async () => {
  const a = await user("owner");
  const b = await user("other", 1);
  const page = await cached(a, 4);
  // b signs in on this browser and opens their own convo, then a's (a shared link): nothing of a's shows.
  let hold = await reload(page, b);
  await page.waitForTimeout(500);
  assert.deepEqual(await page.evaluate(() => window.t.view()), [], "b's own convo was never cached");
  await hold.release();
  await until(page, "b's history", () => window.t.view().length === 2);
  hold = await reload(page, { ...a, token: b.token });
  await page.waitForTimeout(700);
  assert.deepEqual(await page.evaluate(() => window.t.events), [], "nothing of a's shown to b");
  await hold.release();
  // a again, on this browser: a's cache is there.
  await showsCached(page, a, "a's cached history");
});

test("a full quota: every message is delivered, one storage_error, and nothing is cached", async () => {
  const u = await user("quota");
  const page = await newPage();
  await page.evaluate(() => {
    IDBObjectStore.prototype.put = function () {
      throw new DOMException("the quota is exceeded", "QuotaExceededError");
    };
  });
  await app(page, u);
  await until(page, "the history", () => window.t.view().length === 4);
  await until(page, "the storage_error", () => window.t.kinds.includes("storage_error"));
  await page.evaluate(() => window.t.s.send("one more"));
  await until(page, "the answer", () => window.t.view().length === 6);
  assert.equal(await storageErrors(page), 1);
  assert.deepEqual(await rows(page), []);
});

test("a corrupted row: reported once, the network's history delivered, and the cache written again", async () => {
  const u = await user("corrupt");
  const page = await cached(u, 4);
  await page.evaluate(() => new Promise((resolve) => {
    const q = indexedDB.open("valet-sdk");
    q.onsuccess = () => {
      const d = q.result;
      const store = d.transaction("rows", "readwrite").objectStore("rows");
      const keys = store.getAllKeys();
      keys.onsuccess = () => {
        store.put('{"type":"message","message":{"id":', keys.result[1]);
        store.put(42, keys.result[2]);
        store.transaction.oncomplete = () => { d.close(); resolve(); };
      };
    };
  }));
  const hold = await reload(page, u);
  await until(page, "the storage_error", () => window.t.kinds.includes("storage_error"));
  assert.deepEqual(await page.evaluate(() => window.t.view()), [], "nothing shown from a corrupted cache");
  await hold.release();
  await until(page, "the history", () => window.t.view().length === 4);
  assert.ok(await page.evaluate(() => window.t.events.every((e) => !e.cache)));
  assert.equal(await storageErrors(page), 1);
  // Written again: the next reload shows it from the cache.
  await eventually("the cache is written again", async () => {
    const r = await rows(page);
    return r.length === 4 && r.every((f) => typeof f === "string" && f.startsWith("{"));
  });
  await showsCached(page, u, "the cached history");
});

test("an old schema under the database's name is replaced, and the cache works", async () => {
  const u = await user("schema");
  const page = await newPage();
  await openOldSchema(page, false);
  await app(page, u);
  await until(page, "the history", () => window.t.view().length === 4);
  await eventually("the local history is written", async () => (await rows(page)).length >= 4);
  assert.equal(await storageErrors(page), 0);
  await showsCached(page, u, "the cached history");
});

test("a database another tab holds open at an old schema blocks the upgrade: every message is delivered, one storage_error", async () => {
  const u = await user("blocked");
  // Another tab (another library, or an older SDK) opened the database and never lets go.
  const other = await newPage();
  await openOldSchema(other, true);
  const page = await newPage();
  await app(page, u);
  await until(page, "the history", () => window.t.view().length === 4);
  await until(page, "the storage_error", () => window.t.kinds.includes("storage_error"));
  assert.equal(await storageErrors(page), 1);
  await other.evaluate(() => window.held.close());
});

test("no IndexedDB at all: every message is delivered, one storage_error", async () => {
  const u = await user("noidb");
  const page = await newPage();
  await page.evaluate(() => void Object.defineProperty(window, "indexedDB", { value: undefined }));
  await app(page, u);
  await until(page, "the history", () => window.t.view().length === 4);
  await until(page, "the storage_error", () => window.t.kinds.includes("storage_error"));
  assert.equal(await storageErrors(page), 1);
});

test("clearLocalData() removes the local history and the SDK's sessionStorage, here and in the origin's other tabs", async () => {
  const u = await user("clear");
  const page = await cached(u, 4);
  const other = await newPage();
  await app(other, { ...u, persist: null });
  await other.evaluate(() => sessionStorage.setItem("valet-sdk:outbox:marker", "x"));
  await page.evaluate(() => sessionStorage.setItem("valet-sdk:resume:marker", "x"));
  await page.evaluate(async () => {
    window.t.convo.close();
    await window.t.client.clearLocalData();
  });
  assert.deepEqual(await rows(page), []);
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith("valet-sdk:"))), []);
  await other.waitForFunction(() => !Object.keys(sessionStorage).some((k) => k.startsWith("valet-sdk:")), undefined, { timeout: LIVENESS_MS }).catch(async (e) => {
    throw new Error(`the other tab keeps ${JSON.stringify(await other.evaluate(() => Object.keys(sessionStorage)))}`, { cause: e });
  });
  const hold = await reload(page, u);
  await page.waitForTimeout(700);
  assert.deepEqual(await page.evaluate(() => window.t.view()), [], "nothing cached any more");
  await hold.release();
  await until(page, "the history", () => window.t.view().length === 4);
});

test("bounded: past 50 convos or 16 MiB for the origin, the convos used least recently are evicted, never the one written", async () => {
  const page = await newPage();
  const [snippets] = readdirSync(join(ROOT, "pkg/wasm/snippets"));
  const kept = await page.evaluate(async (path) => {
    const idb = await import(path);
    const frame = (c) => JSON.stringify({ type: "message", convo_id: c, message: { id: `${c}-m1` } });
    const write = (c, bytes) => idb.cacheAppend("https://api.test", "agent", c, "scope", 0, [frame(c)], bytes);
    // 51 convos written one after the other (each a millisecond apart: `used` orders them);
    // a write that fails rejects, and so does this evaluation.
    for (let i = 0; i <= idb.MAX_CONVOS; i++) {
      await write(`c${i}`, 1000);
      await new Promise((r) => setTimeout(r, 2));
    }
    const present = async () => {
      const out = [];
      for (let i = 0; i <= idb.MAX_CONVOS; i++) {
        const rows = await idb.cacheLoad("https://api.test", "agent", `c${i}`, "scope");
        if (rows.length) out.push(`c${i}`);
      }
      return out;
    };
    const byCount = await present();
    // One convo as large as the origin's cap: every other one goes, it stays.
    await write("big", idb.MAX_BYTES);
    const big = await idb.cacheLoad("https://api.test", "agent", "big", "scope");
    return { byCount, afterBig: await present(), big: big.length };
  }, `/pkg/wasm/snippets/${snippets}/js/idb.js`);
  assert.equal(typeof kept, "object", kept);
  assert.equal(kept.byCount.length, 50);
  assert.ok(!kept.byCount.includes("c0"), "the least recently used went");
  assert.ok(kept.byCount.includes("c50"), "the one written stays");
  assert.deepEqual(kept.afterBig, [], "past the bytes cap, every other convo went");
  assert.equal(kept.big, 1);
});
