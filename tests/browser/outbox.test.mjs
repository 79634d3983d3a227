// The durable outbox: messages sent while the server is unreachable
// survive a reload of the page, show as pending again under the same key,
// and are stored once, in order, when the server is back; never under
// another user. The npm package's store, the reference server on a SQLite
// file (SIGKILLed while the sends wait, restarted on the same data); in
// Chromium, and in Firefox and WebKit (`make test-engines`).
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINE, LIVENESS_MS, eventually, loadSdk, sdkEnv, unlessEngineCan } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser, dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "valet-outbox-"));
  env = await sdkEnv([], { db: join(dir, "valet.db") });
  ({ server, site, browser } = env);
});

after(async () => {
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

let pages = [];
afterEach(async () => {
  for (const p of pages) await p.close().catch(() => {});
  pages = [];
  if (down) await up(); // a test failed while the server was down
});

let down = false;
const up = async () => {
  await server.restart();
  down = false;
};

/**
 * Sets up the app in `page` (after each load): a client whose `fetchJwt`
 * returns `token` (an app that holds its user's token) or, with `token`
 * null, asks the reference server (a token endpoint that is down with it);
 * a store over `convoId`, every state and every `restored_send` recorded.
 */
async function app(page, { convoId, token, sourceKey, persist }) {
  await page.evaluate(async ({ base, AGENT, convoId, token, sourceKey, persist }) => {
    const pkg = await import("/pkg/index.js");
    const { createConvoStore } = await import("/pkg/store.js");
    const fetchJwt = token
      ? () => token
      : async () => {
          const res = await fetch(`${base}/dev/jwt`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ source_key: sourceKey }) });
          return (await res.json()).token;
        };
    const client = new pkg.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false, ...(persist ? { persist } : {}) });
    const t = { states: [], restored: [], sent: {}, posts: [] };
    // The sends this page puts on the wire (their bodies).
    const fetch0 = window.fetch;
    window.fetch = (input, init) => {
      const url = typeof input === "string" ? input : input.url;
      if (url.endsWith("/stream_message") && typeof init?.body === "string") t.posts.push(init.body);
      return fetch0(input, init);
    };
    t.s = createConvoStore(async () => {
      const convo = await client.openConvo({ convoId });
      convo.on("restored_send", (e) => t.restored.push({ key: e.key, text: e.text, state: e.state, code: e.error?.code ?? null }));
      return convo;
    });
    // The user's own messages (the dev agent answers each).
    t.view = () => t.s.getState().messages.filter((m) => m.from === "appuser").map((m) => ({ key: m.key, text: m.content, status: m.status }));
    t.s.subscribe(() => t.states.push(t.view()));
    t.send = (text) => t.s.send(text).then(() => (t.sent[text] = "resolved"), (e) => (t.sent[text] = e.code));
    window.t = t;
  }, { base: server.base, AGENT, convoId, token, sourceKey, persist });
}

const until = (page, what, pred, arg) => page.waitForFunction(pred, arg, { timeout: LIVENESS_MS }).catch(async (e) => {
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await page.evaluate(() => window.t.view()))}`, { cause: e });
});

const userTexts = async (sourceKey, convoId) =>
  (await server.history(sourceKey, convoId)).filter((m) => m.from === "appuser").map((m) => m.content);

let users = 0;
async function user(name) {
  const sourceKey = `${name}-${++users}`;
  const convoId = await server.session(sourceKey);
  const { token } = await server.jwt(sourceKey);
  return { sourceKey, convoId, token };
}

/** A new page of the app for user `u` (`options` as `app` takes them), closed after the test. */
async function opened(u, options = {}) {
  const page = await env.page();
  pages.push(page);
  await app(page, { ...u, ...options });
  return page;
}

/** Closes `page`'s tab: its `sessionStorage` goes with it. */
async function closeTab(page) {
  await page.close();
  pages = pages.filter((p) => p !== page);
}

/** A page of the app, connected, that sends `texts` while the server is down. */
async function leftWhileDown(u, texts, { token = u.token, persist } = {}) {
  const page = await opened(u, { token, persist });
  await until(page, "connected", () => window.t.s.getState().status === "connected");
  await server.kill();
  down = true;
  for (const text of texts) await page.evaluate((text) => void window.t.send(text), text);
  const before = await page.evaluate(() => window.t.view());
  assert.deepEqual(before.map((m) => [m.text, m.status]), texts.map((t) => [t, "pending"]));
  return { page, keys: before.map((m) => m.key) };
}

async function reload(page, u, token) {
  await loadSdk(page, site.origin);
  await app(page, { ...u, token });
}

test("three sends while the server is down, two reloads: pending again under the same keys, then each stored once, in order", async () => {
  const u = await user("reload");
  const texts = ["first, from the train", "second", "third"];
  const { page, keys } = await leftWhileDown(u, texts);
  await reload(page, u, u.token);
  // The server is still down: the restored sends show, pending, as they were.
  await until(page, "the restored sends", (n) => window.t.view().filter((m) => m.status === "pending").length === n, texts.length);
  const restored = await page.evaluate(() => window.t.view());
  assert.deepEqual(restored, texts.map((text, i) => ({ key: keys[i], text, status: "pending" })));
  assert.equal(await page.evaluate(() => window.t.s.getState().status === "connected"), false);
  // And again: however many reloads, the same sends under the same keys.
  await reload(page, u, u.token);
  await until(page, "the restored sends, again", (n) => window.t.view().filter((m) => m.status === "pending").length === n, texts.length);
  assert.deepEqual(await page.evaluate(() => window.t.view()), restored);

  await up();
  await until(page, "the sends stored", (n) => window.t.view().filter((m) => m.status === "sent").length === n, texts.length);
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), texts, "each stored once, in order");
  // The server's copies took the pending bubbles' places: same keys, no flicker of a duplicate.
  assert.deepEqual(await page.evaluate(() => window.t.view()), texts.map((text, i) => ({ key: keys[i], text, status: "sent" })));
  const states = await page.evaluate(() => window.t.states);
  assert.ok(states.every((s) => s.length <= texts.length), `never shown twice: ${JSON.stringify(states.find((s) => s.length > texts.length))}`);
  assert.deepEqual(await page.evaluate(() => window.t.restored.map((r) => r.state)), [...texts.map(() => "pending"), ...texts.map(() => "sent")]);

  // Nothing is left to send: a later reload restores nothing.
  await reload(page, u, u.token);
  await until(page, "the history", (n) => window.t.view().length === n, texts.length);
  assert.deepEqual(await page.evaluate(() => window.t.restored), []);
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), texts);
});

test("three sends while the browser is offline, a reload: pending again under the same keys, then each stored once, in order", { skip: ENGINE === "chromium" ? false : "the browser context's offline mode is Playwright's (Chromium runs it)" }, async () => {
  const u = await user("offline");
  const texts = ["one, offline", "two", "three"];
  const page = await opened(u);
  await until(page, "connected", () => window.t.s.getState().status === "connected");
  await browser.context.setOffline(true);
  try {
    for (const text of texts) await page.evaluate((text) => void window.t.send(text), text);
    const before = await page.evaluate(() => window.t.view());
    assert.deepEqual(before.map((m) => [m.text, m.status]), texts.map((t) => [t, "pending"]));
    // The reload needs the page's own server: back online, the API still unreachable.
    await server.kill();
    down = true;
    await browser.context.setOffline(false);
    await reload(page, u, u.token);
    await until(page, "the restored sends", (n) => window.t.view().filter((m) => m.status === "pending").length === n, texts.length);
    assert.deepEqual(await page.evaluate(() => window.t.view()), before);
  } finally {
    await browser.context.setOffline(false);
  }
  await up();
  await until(page, "the sends stored", (n) => window.t.view().filter((m) => m.status === "sent").length === n, texts.length);
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), texts, "each stored once, in order");
});

test("a token endpoint down with the server: the sends are restored when a token comes, and stored once", async () => {
  const u = await user("nettoken");
  const texts = ["one", "two"];
  const { page } = await leftWhileDown(u, texts, { token: null });
  await reload(page, u, null);
  await page.waitForTimeout(300);
  // No token, no user known: nothing of the outbox is shown yet.
  assert.deepEqual(await page.evaluate(() => window.t.view()), []);
  await up();
  await until(page, "the sends stored", (n) => window.t.view().filter((m) => m.status === "sent").length === n, texts.length);
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), texts);
});

test("another user's token in the same tab: the outbox is never shown or sent; its own user's is", async () => {
  const a = await user("owner");
  const b = await user("other");
  const { page } = await leftWhileDown(a, ["a's private message"]);
  await up();
  // The same tab, signed in as b, on a's convo (a link shared, say).
  await reload(page, a, b.token);
  await page.waitForTimeout(1500);
  assert.deepEqual(await page.evaluate(() => window.t.view()), [], "nothing of a's shown to b");
  assert.deepEqual(await page.evaluate(() => window.t.restored), []);
  assert.deepEqual(await page.evaluate(() => window.t.posts), [], "nothing of a's sent with b's token");
  assert.deepEqual(await userTexts(a.sourceKey, a.convoId), []);
  // a again: a's message goes, once.
  await reload(page, a, a.token);
  await until(page, "a's send stored", () => window.t.view().some((m) => m.status === "sent"));
  assert.deepEqual(await userTexts(a.sourceKey, a.convoId), ["a's private message"]);
  assert.ok((await page.evaluate(() => window.t.posts)).some((p) => p.includes("private")), "the recorder sees a send");
});

test("a sessionStorage that refuses every write: the sends still go, and a storage_error is reported once", async () => {
  const u = await user("quota");
  const page = await env.page();
  pages.push(page);
  await page.evaluate(() => {
    Storage.prototype.setItem = function () {
      throw new DOMException("quota", "QuotaExceededError");
    };
  });
  await page.evaluate(async ({ base, AGENT, convoId, token }) => {
    const pkg = await import("/pkg/index.js");
    const events = [];
    const client = new pkg.ValetClient({ agentId: AGENT, fetchJwt: () => token, baseUrl: base, onEvent: (kind) => events.push(kind) });
    const convo = await client.openConvo({ convoId });
    window.t = { events, convo };
    await convo.send("one");
    await convo.send("two");
  }, { base: server.base, AGENT, ...u });
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), ["one", "two"]);
  assert.equal((await page.evaluate(() => window.t.events)).filter((k) => k === "storage_error").length, 1);
});

/**
 * Waits until `page`'s IndexedDB keeps an outbox of `sends` sends and the
 * files of `files` sends (`persist: "local"`).
 */
async function keptInIndexedDb(page, sends, files) {
  const kept = () => page.evaluate(() => new Promise((resolve) => {
    const q = indexedDB.open("valet-sdk");
    q.onsuccess = () => {
      const d = q.result;
      if (!d.objectStoreNames.contains("outboxes")) return d.close(), resolve([0, 0]);
      const t = d.transaction(["outboxes", "files"]);
      const o = t.objectStore("outboxes").getAll(), f = t.objectStore("files").count();
      t.oncomplete = () => { d.close(); resolve([Math.max(0, ...o.result.map((json) => JSON.parse(json).sends.length)), f.result]); };
    };
    q.onerror = () => resolve([0, 0]);
  }));
  await eventually("the outbox kept in IndexedDB", async () => {
    const [s, f] = await kept();
    return s >= sends && f >= files;
  });
}

test("persist: \"local\": sends left by a closed tab go from the next tab of the browser, once, in order", async () => {
  const u = await user("closed");
  const texts = ["typed on the train", "and this", "and that"];
  const { page } = await leftWhileDown(u, texts, { persist: "local" });
  // The outbox is kept in IndexedDB too: wait for it, then close the tab (its sessionStorage goes with it).
  await keptInIndexedDb(page, texts.length, 0);
  await closeTab(page);
  await up();
  // Every tab was closed; the user opens the chat again in a new one.
  const next = await opened(u, { persist: "local" });
  await until(next, "the sends stored", (n) => window.t.view().filter((m) => m.status === "sent").length === n, texts.length);
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), texts, "each stored once, in order");
  assert.deepEqual(await next.evaluate(() => window.t.restored.map((r) => r.state)), [...texts.map(() => "pending"), ...texts.map(() => "sent")]);
  // Claimed once: another new tab finds nothing left.
  const third = await opened(u, { persist: "local" });
  await until(third, "the history", (n) => window.t.view().length === n, texts.length);
  await third.waitForTimeout(300);
  assert.deepEqual(await third.evaluate(() => window.t.restored), []);
  assert.deepEqual(await userTexts(u.sourceKey, u.convoId), texts);
});

test("persist: \"local\": a send with a file, its tab closed before the upload: the next tab uploads the kept file and stores the message once", { skip: unlessEngineCan("idbBlobs") }, async () => {
  const u = await user("file");
  const tab = await opened(u, { persist: "local" });
  await until(tab, "connected", () => window.t.s.getState().status === "connected");
  await server.kill();
  down = true;
  await tab.evaluate(() => void window.t.s.send("see the photo", { files: [new File(["pixels"], "photo.png", { type: "image/png" })] }));
  await keptInIndexedDb(tab, 1, 1);
  await closeTab(tab);
  await up();
  const next = await opened(u, { persist: "local" });
  await until(next, "the send stored", () => window.t.view().some((m) => m.status === "sent"));
  const mine = (await server.history(u.sourceKey, u.convoId)).filter((m) => m.from === "appuser");
  assert.deepEqual(mine.map((m) => [m.content, m.files.map((f) => [f.filename, f.byte_size, f.content_type])]), [["see the photo", [["photo.png", 6, "image/png"]]]]);
  // Uploaded: the file is not kept any more.
  await eventually("the kept file dropped", () => next.evaluate(() => new Promise((resolve) => {
    const q = indexedDB.open("valet-sdk");
    q.onsuccess = () => { const c = q.result.transaction("files").objectStore("files").count(); c.onsuccess = () => { q.result.close(); resolve(c.result === 0); }; };
  })));
});
