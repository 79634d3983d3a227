// Opening a chat on a bad network: the API and the app's token endpoint
// unreachable when the convo opens (the browser offline), then back. The
// convo never dies of a failure that may pass: it retries, connects by
// itself, and sends made meanwhile are stored once. A definite refusal (the
// app's fetchJwt says the user is signed out) stops it, and `reopen()`
// recovers once the user signs in. Headless Chromium, the reference server,
// the npm package's store and the bindings' openers.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, browser;

before(async () => {
  env = await sdkEnv();
  ({ server, browser } = env);
});
after(async () => env?.close());

let pages = [];
afterEach(async () => {
  await browser.context.setOffline(false);
  for (const p of pages) await p.close().catch(() => {});
  pages = [];
});

let users = 0;

/**
 * A page whose client's fetchJwt asks the reference server (so it fails
 * while the browser is offline, as a real token endpoint would); `signedOut`
 * makes it reject with a ValetError of code `auth` until `signIn()`.
 */
async function page(name) {
  const p = await env.page();
  pages.push(p);
  const sourceKey = `${name}-${++users}`;
  await p.evaluate(async ({ base, AGENT, sourceKey }) => {
    const pkg = await import("/pkg/index.js");
    const store = await import("/pkg/store.js");
    const t = { signedOut: false, tokenCalls: 0, states: [] };
    t.fetchJwt = async () => {
      t.tokenCalls++;
      if (t.signedOut) throw new pkg.ValetError("no session", { code: "auth" });
      const res = await fetch(`${base}/dev/jwt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ source_key: sourceKey }),
      });
      return (await res.json()).token;
    };
    t.client = new pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    await t.client.startSession().then(() => {}); // the wasm loaded, a first token held
    t.pkg = pkg;
    t.store = store;
    /** Follows a store: every state, and the outcome of each send. */
    t.follow = (s) => {
      t.s = s;
      t.sent = {};
      s.subscribe((st) => t.states.push({ status: st.status, canSend: st.canSend, reason: st.cannotSend?.reason ?? null, code: st.error?.code ?? null }));
    };
    // A snapshot as plain data (an Error's own fields do not cross to the test).
    const plain = (e) => (e ? { code: e.code, message: e.message, name: e.name } : null);
    t.plain = () => {
      const st = t.s.getState();
      return { ...st, error: plain(st.error), cannotSend: st.cannotSend && { ...st.cannotSend, error: plain(st.cannotSend.error) } };
    };
    t.send = (text) => {
      t.sent[text] = "pending";
      t.s.send(text).then(() => (t.sent[text] = "resolved"), (e) => (t.sent[text] = e.code));
    };
    window.t = t;
  }, { base: server.base, AGENT, sourceKey });
  return { page: p, sourceKey };
}

const waitState = (p, what, pred) =>
  p.evaluate(
    ({ what, pred }) => window.h.until(() => new Function("s", `return ${pred}`)(window.t.s.getState()), what, 30_000),
    { what, pred },
  );

const userTexts = async (sourceKey, convoId) =>
  (await server.history(sourceKey, convoId)).filter((m) => m.from === "appuser").map((m) => m.content);

for (const [kind, open] of [
  ["a plain convo id", "t.store.retainConvoStore(t.client, t.convoId).store"],
  ['"new"', 't.store.retainConvoStore(t.client, {}, undefined, {}, t.store.specOpener(t.client, "new")).store'],
  ["a function", "t.store.retainConvoStore(t.client, {}, undefined, {}, t.store.specOpener(t.client, async () => (await t.client.listConvos())[0]?.id ?? (await t.client.startSession()).convoId)).store"],
]) {
  test(`offline at mount with ${kind}: reconnecting, never stopped; back online it connects by itself and a send made meanwhile is stored once`, async () => {
    const { page: p, sourceKey } = await page(`offline-${kind.replace(/\W/g, "")}`);
    const convoId = kind === "a plain convo id" ? await server.session(sourceKey) : null;
    await browser.context.setOffline(true);
    await p.evaluate(({ base, AGENT, convoId, open }) => {
      const t = window.t;
      t.convoId = convoId;
      // A new client: no token held from before, so its first fetchJwt fails too.
      t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
      t.follow(new Function("t", `return ${open}`)(t));
    }, { base: server.base, AGENT, convoId, open });
    await waitState(p, "reconnecting with an error", 's.status === "reconnecting" && s.error !== null');
    await p.evaluate(() => window.t.send("typed offline"));
    // Well past the first retries: still retrying, the send still pending.
    await new Promise((r) => setTimeout(r, 4_000));
    const offline = await p.evaluate(() => ({ state: window.t.plain(), sent: window.t.sent, states: window.t.states, calls: window.t.tokenCalls }));
    assert.ok(!offline.states.some((s) => s.status === "stopped"), `never stopped: ${JSON.stringify(offline.states)}`);
    assert.notEqual(offline.state.status, "connected");
    assert.equal(offline.state.canSend, true, "a send may be made: it waits");
    assert.deepEqual(offline.sent, { "typed offline": "pending" });
    assert.ok(offline.calls >= 2, `fetchJwt tried again (${offline.calls} calls)`);
    assert.ok(["network", "timeout"].includes(offline.state.error.code), `the last error, for a "can't reach the server" line: ${offline.state.error.code}`);
    assert.deepEqual(offline.state.messages.map((m) => [m.content, m.status]), [["typed offline", "pending"]]);

    await browser.context.setOffline(false);
    await waitState(p, "connected", 's.status === "connected"');
    await p.evaluate(() => window.h.until(() => window.t.sent["typed offline"] !== "pending", "the send to settle", 30_000));
    assert.equal(await p.evaluate(() => window.t.sent["typed offline"]), "resolved");
    const id = await p.evaluate(() => window.t.s.getState().convoId);
    if (convoId) assert.equal(id, convoId);
    await waitState(p, "the agent's reply", 's.messages.length >= 2');
    assert.deepEqual(await userTexts(sourceKey, id), ["typed offline"], "stored once");
    const shown = await p.evaluate(() => window.t.s.getState().messages.map((m) => [m.from, m.status]));
    assert.deepEqual(shown, [["appuser", "sent"], ["ai_agent", "sent"]], "shown once each");
    const streams = await server.waitStats("one stream", (s) => (s.live_streams_by_convo[id] ?? 0) === 1);
    assert.equal(streams.live_streams_by_convo[id], 1);
    await p.evaluate(() => window.t.s.close());
  });
}

test("openConvo itself resolves while offline (status reconnecting) and the convo connects by itself when the network is back", async () => {
  const { page: p, sourceKey } = await page("open-offline");
  const convoId = await server.session(sourceKey);
  await browser.context.setOffline(true);
  const opened = await p.evaluate(async ({ base, AGENT, convoId }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    t.convo = await t.client.openConvo({ convoId });
    t.rec = window.h.record(t.convo);
    t.status = [];
    t.convo.on("status", (s) => t.status.push(s));
    await new Promise((r) => setTimeout(r, 10));
    return { status: t.convo.status, events: t.status };
  }, { base: server.base, AGENT, convoId });
  assert.equal(opened.status, "reconnecting");
  const retry = opened.events.find((s) => s.status === "reconnecting");
  assert.ok(retry && retry.retry_in_ms > 0, `the wait is told: ${JSON.stringify(opened.events)}`);
  await browser.context.setOffline(false);
  await p.evaluate(() => window.h.until(() => window.t.convo.status === "connected", "connected", 30_000));
  await p.evaluate(() => window.t.convo.send("after the network came back"));
  await p.evaluate(() => window.h.until(() => window.t.rec.message.length >= 2, "the reply", 30_000));
  assert.deepEqual(await userTexts(sourceKey, convoId), ["after the network came back"]);
  await p.evaluate(() => window.t.convo.close());
});

test("a signed-out fetchJwt stops the opening: canSend false with the error; reopen() recovers once signed in, without a new store", async () => {
  const { page: p, sourceKey } = await page("signed-out");
  const convoId = await server.session(sourceKey);
  await p.evaluate(({ base, AGENT, convoId }) => {
    const t = window.t;
    t.signedOut = true;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    t.follow(t.store.retainConvoStore(t.client, convoId).store);
  }, { base: server.base, AGENT, convoId });
  await waitState(p, "stopped", 's.status === "stopped"');
  const stopped = await p.evaluate(() => window.t.plain());
  assert.equal(stopped.canSend, false);
  assert.equal(stopped.cannotSend.reason, "stopped");
  assert.equal(stopped.cannotSend.error.code, "auth");
  assert.equal(stopped.error.code, "auth");
  // A send anyway: failed at once (the bubble), no unhandled rejection.
  await p.evaluate(() => window.t.send("while signed out"));
  await p.evaluate(() => window.h.until(() => window.t.sent["while signed out"] !== "pending", "the send to fail", 10_000));
  assert.equal(await p.evaluate(() => window.t.sent["while signed out"]), "auth");
  // Signed in again: reopen() connects, and the failed message can be retried.
  await p.evaluate(() => {
    window.t.signedOut = false;
    return window.t.s.reopen();
  });
  await waitState(p, "connected", 's.status === "connected" && s.canSend');
  const key = await p.evaluate(() => window.t.s.getState().messages.find((m) => m.status === "failed").key);
  await p.evaluate((key) => window.t.s.retry(key), key);
  await waitState(p, "the reply", 's.messages.filter((m) => m.status === "sent").length >= 2');
  assert.deepEqual(await userTexts(sourceKey, convoId), ["while signed out"]);
  assert.equal((await p.evaluate(() => window.t.plain())).error, null);
  await p.evaluate(() => window.t.s.close());
});

test("signed out while open: the convo stops instead of retrying for ever; openConvo rejects with auth for a signed-out user", async () => {
  const { page: p, sourceKey } = await page("signed-out-later");
  const convoId = await server.session(sourceKey);
  await p.evaluate(async ({ base, AGENT, convoId }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    t.follow(t.store.retainConvoStore(t.client, convoId).store);
  }, { base: server.base, AGENT, convoId });
  await waitState(p, "connected", 's.status === "connected"');
  // The user signs out; the server asks for a new token.
  await p.evaluate(() => (window.t.signedOut = true));
  await server.admin("/streams/end", { convo_id: convoId, reason: "auth_expiring" });
  await waitState(p, "stopped", 's.status === "stopped"');
  const state = await p.evaluate(() => window.t.plain());
  assert.deepEqual([state.canSend, state.cannotSend.reason, state.error.code], [false, "stopped", "auth"]);
  const calls = await p.evaluate(() => window.t.tokenCalls);
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(await p.evaluate(() => window.t.tokenCalls), calls, "no more fetchJwt calls: it stopped");
  await server.waitStats("no stream", (s) => (s.live_streams_by_convo[convoId] ?? 0) === 0);
  // A new opening for the signed-out user is refused at once.
  const rejected = await p.evaluate((convoId) =>
    window.t.client.openConvo({ convoId }).then(() => "resolved", (e) => `${e.name} ${e.code}: ${e.message}`), convoId);
  assert.match(rejected, /^ValetError auth: fetchJwt: signed out: no session/);
  await p.evaluate(() => window.t.s.close());
});
