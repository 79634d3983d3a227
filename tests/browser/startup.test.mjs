// Startup: the npm package's entry calls the app's fetchJwt while its
// WebAssembly is still downloading (the token's round trip off the critical
// path), and that token is the one the client opens with: one call, not
// two. A client that is only constructed fetches no token. Headless
// Chromium, the reference server, the package as built (pkg/), its wasm
// held back by the test until it says so.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv } from "./harness.mjs";

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
