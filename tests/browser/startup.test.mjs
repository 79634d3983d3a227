// Startup: the npm package's entry calls the app's fetchJwt while its
// WebAssembly is still downloading (the token's round trip off the critical
// path), and that token is the one the client opens with: one call, not
// two. openConvo asks for the stream and the history with it ahead, and
// the convo takes them (a tab another tab leads asks for nothing; a guess
// not taken is aborted). A client that is only constructed fetches no token.
// A convo opened once the wasm is in calls fetchJwt before the rest of its
// setup, and asks for the tab lock while the token comes. The opening's
// held events reach the app before its next request (the history read
// asked for after `ready`). Headless
// Chromium, the reference server, the package as built (pkg/), its wasm
// held back by the test until it says so.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server;

before(async () => {
  env = await sdkEnv();
  ({ server } = env);
});
after(async () => env?.close());

let users = 0;

/**
 * A fresh page of test `t` (closed after it) whose package wasm is held
 * until `release()`; `wasmServed()` says whether it was. `signedOut`: its
 * fetchJwt rejects with a ValetError of code `auth`.
 */
async function page(t, { signedOut = false } = {}) {
  const p = await env.page();
  t.after(() => p.close().catch(() => {}));
  let release;
  const held = new Promise((ok) => { release = ok; });
  let served = false;
  await p.route("**/pkg/wasm/valet_wasm_bg.wasm", async (route) => {
    await held;
    served = true;
    await route.continue();
  });
  await p.evaluate(async ({ base, sourceKey, signedOut }) => {
    const pkg = await import("/pkg/index.js");
    const t = { calls: 0, pkg };
    t.fetchJwt = async () => {
      t.calls++;
      if (signedOut) throw new pkg.ValetError("no session", { code: "auth" });
      const res = await fetch(`${base}/dev/jwt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ source_key: sourceKey }),
      });
      return (await res.json()).token;
    };
    window.t = t;
  }, { base: server.base, sourceKey: `startup-${++users}`, signedOut });
  return { p, release, wasmServed: () => served };
}

test("the first token is fetched while the wasm loads, and opened with", async (t) => {
  const { p, release, wasmServed } = await page(t);
  await p.evaluate(({ base, AGENT }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    t.opened = t.client.startSession().then(({ convoId }) => t.client.openConvo({ convoId }));
    t.opened.then((c) => { t.convo = c; t.messages = []; c.on("message", ({ message }) => t.messages.push(message)); }, (e) => { t.failed = e.code; });
  }, { base: server.base, AGENT });
  // The token's fetch has answered while the wasm is still held.
  await p.waitForFunction(() => window.t.calls === 1);
  assert.equal(wasmServed(), false, "the wasm is still held");
  assert.equal(await p.evaluate(() => window.t.pkg.isLoaded()), false);
  release();
  await p.waitForFunction(() => window.t.convo || window.t.failed, null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.failed), undefined);
  await p.waitForFunction(() => window.t.convo.status === "connected", null, { timeout: 20_000 });
  // The convo works on it: a send is stored and comes back as a message.
  await p.evaluate(() => window.t.convo.send("hello from a cold start"));
  await p.waitForFunction(() => window.t.messages.some((m) => m.content === "hello from a cold start"), null, { timeout: 20_000 });
  // One fetchJwt call in all: startSession, openConvo and the stream took the early token.
  assert.equal(await p.evaluate(() => window.t.calls), 1);
});

test("a signed-out user's early token makes the first call reject with `auth`", async (t) => {
  const { p, release } = await page(t, { signedOut: true });
  await p.evaluate(({ base, AGENT }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    t.client.openConvo({ convoId: "00000000-0000-4000-8000-0000000000c1" }).then(() => { t.failed = "resolved"; }, (e) => { t.failed = e.code; });
  }, { base: server.base, AGENT });
  await p.waitForFunction(() => window.t.calls === 1);
  release();
  await p.waitForFunction(() => window.t.failed, null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.failed), "auth");
  assert.equal(await p.evaluate(() => window.t.calls), 1);
});

test("a client only constructed fetches no token", async (t) => {
  const { p, release } = await page(t);
  release();
  await p.evaluate(async ({ base, AGENT }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    await t.pkg.init();
    await new Promise((ok) => setTimeout(ok, 500));
  }, { base: server.base, AGENT });
  assert.equal(await p.evaluate(() => window.t.calls), 0);
  assert.equal(await p.evaluate(() => window.t.pkg.isLoaded()), true);
});

/** The server's counters now: streams opened, and requests per route. */
async function counts() {
  const s = await server.stats();
  return { streams: s.streams_opened_total, events: s.requests.events ?? 0, history: s.requests.get_convo ?? 0, live: s.live_streams_by_convo };
}

/** Opens `convoId` in the page while its wasm is held (`options`: more client options); its messages in `t.messages`. */
const openHeld = (p, convoId, options = {}) =>
  p.evaluate(({ base, AGENT, convoId, options }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false, ...options });
    t.messages = [];
    t.client.openConvo({ convoId }).then((c) => { t.convo = c; c.on("message", ({ message }) => t.messages.push(message)); }, (e) => { t.failed = e.code; });
  }, { base: server.base, AGENT, convoId, options });

test("openConvo while the wasm loads: the stream and the history are asked for with the early token, and the convo takes both", async (t) => {
  const { p, release, wasmServed } = await page(t);
  const sourceKey = `startup-${users}`;
  const convoId = await server.session(sourceKey);
  await server.admin(`/convos/${convoId}/messages`, { content: "from before", from: "human_agent" });
  const before = await counts();
  await openHeld(p, convoId);
  // The stream is open on the server, and the history read, while the wasm is still held.
  await server.waitStats("the stream asked for ahead", (s) => (s.live_streams_by_convo[convoId] ?? 0) === 1 && (s.requests.get_convo ?? 0) > before.history);
  assert.equal(wasmServed(), false, "the wasm is still held");
  release();
  await p.waitForFunction(() => window.t.convo?.status === "connected" || window.t.failed, null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.failed), undefined);
  await p.waitForFunction(() => window.t.messages.length >= 1, null, { timeout: 20_000 });
  await p.evaluate(() => window.t.convo.send("after a cold start"));
  await p.waitForFunction(() => window.t.messages.some((m) => m.content === 'You said: "after a cold start"'), null, { timeout: 20_000 });
  assert.deepEqual(await p.evaluate(() => window.t.messages.map((m) => m.content)), ["from before", "after a cold start", 'You said: "after a cold start"'], "each once, in order");
  const now = await counts();
  assert.equal(now.streams - before.streams, 1, "one stream: the one asked for ahead was taken");
  assert.equal(now.events - before.events, 1);
  assert.equal(now.live[convoId], 1);
  assert.equal(await p.evaluate(() => window.t.calls), 1, "one fetchJwt call");
});

/**
 * Holds the page's token until `window.t.giveToken()`, and records which
 * module made each request for the convo's stream: `t.streamsFrom`.
 */
const holdToken = (p) =>
  p.evaluate(() => {
    const t = window.t;
    const fetchJwt = t.fetchJwt;
    let give;
    const gate = new Promise((ok) => { give = ok; });
    t.giveToken = give;
    t.fetchJwt = async () => { await gate; return fetchJwt(); };
    t.streamsFrom = [];
    const fetch = window.fetch;
    window.fetch = function (url, init) {
      if (String(url).endsWith("/events")) t.streamsFrom.push(/prefetch\.js/.test(new Error().stack ?? "") ? "ahead" : "convo");
      return fetch.call(this, url, init);
    };
  });

test("the wasm ready before the token: the stream is asked for ahead once the token is in, and taken", async (t) => {
  const { p, release } = await page(t);
  const convoId = await server.session(`startup-${users}`);
  await holdToken(p);
  const before = await counts();
  await openHeld(p, convoId);
  release();
  // The wasm is in, and the convo waits for its token.
  await p.waitForFunction(() => window.t.pkg.isLoaded(), null, { timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 200));
  await p.evaluate(() => window.t.giveToken());
  await p.waitForFunction(() => window.t.convo?.status === "connected" || window.t.failed, null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.failed), undefined);
  assert.deepEqual(await p.evaluate(() => window.t.streamsFrom), ["ahead"], "one stream request, the one asked for ahead");
  assert.equal((await counts()).streams - before.streams, 1, "one stream on the server, taken by the convo");
  await p.evaluate(() => window.t.convo.send("after the token"));
  await p.waitForFunction(() => window.t.messages.some((m) => m.content === 'You said: "after the token"'), null, { timeout: 20_000 });
});

test("a convo opened once the wasm is in: fetchJwt first, and the tab lock while the token comes", async (t) => {
  const { p, release } = await page(t);
  release();
  const convoId = await server.session(`startup-${users}`);
  await holdToken(p);
  await p.evaluate(async ({ base, AGENT }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: () => { t.order.push("fetchJwt"); return t.fetchJwt(); }, baseUrl: base, pauseOnHidden: false });
    await t.pkg.init();
    // What the opening does, in order: the token's call, the convo's
    // channel, its lock request.
    t.order = [];
    const Channel = window.BroadcastChannel;
    window.BroadcastChannel = class extends Channel {
      constructor(name) { super(name); t.order.push(`channel ${name.split(":")[0]}`); }
    };
    const request = navigator.locks.request.bind(navigator.locks);
    navigator.locks.request = (name, ...rest) => { t.order.push(`lock ${name.split(":")[0]}`); return request(name, ...rest); };
  }, { base: server.base, AGENT });
  const before = await counts();
  await p.evaluate((convoId) => {
    const t = window.t;
    t.messages = [];
    t.client.openConvo({ convoId }).then((c) => { t.convo = c; c.on("message", ({ message }) => t.messages.push(message)); }, (e) => { t.failed = e.code; });
  }, convoId);
  // The token is held: the lock is asked for, and granted, meanwhile.
  // (Polled from here: a page function returning a promise is truthy to waitForFunction.)
  await eventually("the convo's lock held", () => p.evaluate(async (name) => (await navigator.locks.query()).held.some((l) => l.name === name), `valet:${AGENT}:${convoId}`));
  assert.deepEqual(await p.evaluate(() => window.t.order), ["fetchJwt", "channel valet-events", "lock valet"], "the token's call before the rest");
  assert.equal(await p.evaluate(() => window.t.convo), undefined, "not open before its token");
  await p.evaluate(() => window.t.giveToken());
  await p.waitForFunction(() => window.t.convo?.status === "connected" || window.t.failed, null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.failed), undefined);
  assert.equal(await p.evaluate(() => window.t.order.filter((o) => o === "lock valet").length), 1, "one request: the one made while the token came");
  assert.equal((await counts()).streams - before.streams, 1);
  await p.evaluate(() => window.t.convo.send("opened after the load"));
  await p.waitForFunction(() => window.t.messages.some((m) => m.content === 'You said: "opened after the load"'), null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.calls), 1, "one fetchJwt call");
});

test("the opening's held events reach the app before the history is asked for again after `ready`", async (t) => {
  const { p, release } = await page(t);
  release();
  const convoId = await server.session(`startup-${users}`);
  // The stream's answer held until the first history is in: `ready`
  // then asks for the history again at once.
  let history;
  const historyIn = new Promise((ok) => { history = ok; });
  await p.route(`**/agent_convos/${convoId}/events*`, async (route) => {
    await historyIn;
    await route.continue();
  });
  await p.exposeFunction("historyAnswered", () => history());
  await p.evaluate(async ({ base, AGENT, convoId }) => {
    const t = window.t;
    await t.pkg.init();
    t.historyReads = 0;
    const fetch0 = window.fetch;
    window.fetch = (url, ...rest) => {
      const read = new URL(String(url)).pathname.endsWith(`/agent_convos/${convoId}`);
      if (read) t.historyReads++;
      const answer = fetch0(url, ...rest);
      if (read) answer.then(() => window.historyAnswered(), () => {});
      return answer;
    };
    const client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    t.convo = await client.openConvo({ convoId });
    t.convo.on("ready", () => { t.readsAtReady ??= t.historyReads; });
  }, { base: server.base, AGENT, convoId });
  await eventually("the history asked for again after `ready`", () => p.evaluate(() => window.t.historyReads >= 2));
  assert.equal(await p.evaluate(() => window.t.readsAtReady), 1, "`ready` handed to the app before the second history request");
  await p.evaluate(() => window.t.convo.close());
});

test("a convo that asks before the guess is made: no guess", async (t) => {
  const { p, release } = await page(t);
  const convoId = await server.session(`startup-${users}`);
  await holdToken(p);
  // The guess waits on the lock query, whose answer says what it did
  // before the convo took its lock (no lock held); the convo does not
  // wait. The convo's stream's answer is held.
  await p.evaluate(() => {
    window.t.slowQuery = new Promise((ok) => { window.t.endQuery = ok; });
    navigator.locks.query = () => window.t.slowQuery.then(() => ({ held: [], pending: [] }));
  });
  let answer;
  const held = new Promise((ok) => { answer = ok; });
  await p.route("**/events", async (route) => { await held; await route.continue(); });
  const before = await counts();
  await openHeld(p, convoId);
  release();
  await p.waitForFunction(() => window.t.pkg.isLoaded(), null, { timeout: 20_000 });
  await p.evaluate(() => window.t.giveToken());
  await p.waitForFunction(() => window.t.streamsFrom.length === 1, null, { timeout: 20_000 });
  // The guess could go now (the token is in, openConvo pending): it does not.
  await p.evaluate(() => window.t.endQuery());
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await p.evaluate(() => window.t.streamsFrom), ["convo"], "the convo's own request, no guess after it");
  answer();
  await p.waitForFunction(() => window.t.convo?.status === "connected" || window.t.failed, null, { timeout: 20_000 });
  assert.equal(await p.evaluate(() => window.t.failed), undefined);
  assert.equal((await counts()).streams - before.streams, 1);
});

test("a tab whose convo another tab leads asks for nothing ahead; a guess not taken is aborted", async (t) => {
  const leader = await page(t);
  leader.release();
  const sourceKey = `startup-${users}`;
  const convoId = await server.session(sourceKey);
  await leader.p.evaluate(({ base, AGENT, convoId, sourceKey }) => {
    const t = window.t;
    t.client = new t.pkg.ValetClient({ agentId: AGENT, fetchJwt: t.fetchJwt, baseUrl: base, pauseOnHidden: false });
    return t.client.openConvo({ convoId }).then((c) => { t.convo = c; });
  }, { base: server.base, AGENT, convoId, sourceKey });
  await leader.p.waitForFunction(() => window.t.convo.status === "connected");
  const before = await counts();
  // A second tab of the same user and convo, its wasm held: it will follow.
  const follower = await page(t);
  await follower.p.evaluate(({ base, sourceKey }) => {
    window.t.fetchJwt = async () => {
      window.t.calls++;
      const res = await fetch(`${base}/dev/jwt`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ source_key: sourceKey }) });
      return (await res.json()).token;
    };
  }, { base: server.base, sourceKey });
  await openHeld(follower.p, convoId);
  await follower.p.waitForFunction(() => window.t.calls === 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await counts()).streams, before.streams, "no stream asked for ahead: another tab leads");
  follower.release();
  await follower.p.waitForFunction(() => window.t.convo?.status === "connected", null, { timeout: 20_000 });
  assert.equal(await follower.p.evaluate(() => window.t.convo.role), "follower");
  assert.equal((await counts()).streams, before.streams, "still the leader's stream alone");

  // A page that will not stream at first (hidden, paused): its guess is aborted once openConvo settles.
  const hidden = await page(t);
  const other = await server.session(`startup-hidden-${users}`);
  await hidden.p.evaluate(({ base, key }) => {
    Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
    Object.defineProperty(document, "hidden", { get: () => true });
    window.t.fetchJwt = async () => {
      window.t.calls++;
      const res = await fetch(`${base}/dev/jwt`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ source_key: key }) });
      return (await res.json()).token;
    };
  }, { base: server.base, key: `startup-hidden-${users}` });
  await openHeld(hidden.p, other, { pauseOnHidden: true });
  await server.waitStats("the guess reached the server", (s) => (s.live_streams_by_convo[other] ?? 0) === 1);
  hidden.release();
  await hidden.p.waitForFunction(() => window.t.convo || window.t.failed, null, { timeout: 20_000 });
  assert.equal(await hidden.p.evaluate(() => window.t.convo.status), "paused");
  // Aborted when openConvo settled, well before the 15 s after which an unclaimed guess goes anyway.
  const deadline = Date.now() + 10_000;
  while (((await server.stats()).live_streams_by_convo[other] ?? 0) !== 0) {
    assert.ok(Date.now() < deadline, "the guess not taken is aborted once openConvo settles");
    await new Promise((r) => setTimeout(r, 50));
  }
});
