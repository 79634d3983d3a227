// Token expiry against a server whose auth_expiring lead is 2 s.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { loadSdk, sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv(["--auth-expiring-lead-ms", "2000", "--ping-interval-ms", "500"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

test("auth_expiring forces a fresh token: no reconnect loop on the old one", async () => {
  const page = await env.page();
  // 5 s tokens: the server closes each stream 2 s before its token expires.
  const convoId = await page.evaluate(
    (args) => window.h.openRecorded(args),
    { base: server.base, agentId: AGENT, sourceKey: "expiring-user", jwt: { ttl: 5 } },
  );
  await page.evaluate(() => window.h.until(() => window.t.rec.closed.length >= 1 && window.t.rec.ready.length >= 2, "a reconnect after auth_expiring", 20000));
  const r = await page.evaluate(() => ({ closed: window.t.rec.closed, ready: window.t.rec.ready.length, calls: window.t.calls }));
  assert.equal(r.closed[0].reason, "auth_expiring");
  assert.ok(r.calls.count >= 2, "fetchJwt was called again");
  assert.equal(new Set(r.calls.tokens).size, r.calls.tokens.length, "every token was new");
  // Without a fresh token the server would close again at once: a loop. Count
  // closes over a short window: each token lives 3 s before its close, so at
  // most one more close can fit in 1.5 s.
  const closes0 = r.closed.length;
  await page.waitForTimeout(1500);
  const closes1 = await page.evaluate(() => window.t.rec.closed.length);
  assert.ok(closes1 - closes0 <= 1, `no reconnect loop: ${closes1 - closes0} closes in 1.5 s`);
  await page.evaluate(() => window.t.convo.close());
  await page.close();
  assert.ok(convoId);
});

test("the token is refreshed on a timer ahead of expiry, before any close forces it", async () => {
  const page = await env.page();
  // 12 s tokens: the SDK refreshes at half-life (6 s); the server would close at 10 s.
  await page.evaluate(
    (args) => window.h.openRecorded(args),
    { base: server.base, agentId: AGENT, sourceKey: "refresh-user", jwt: { ttl: 12 } },
  );
  const calls0 = await page.evaluate(() => window.t.calls.count);
  await page.evaluate(() => window.h.until(() => window.t.calls.count > 1, "a refresh", 15000));
  const r = await page.evaluate(() => ({ closed: window.t.rec.closed.length, calls: window.t.calls.count }));
  assert.equal(calls0, 1);
  assert.equal(r.closed, 0, "refreshed before the server had to close the stream");
  await page.evaluate(() => window.t.convo.close());
  await page.close();
});

/** A page whose clock is `shiftMs` off (Date.now, which the SDK reads). */
async function skewedPage(shiftMs) {
  const page = await browser.context.newPage();
  await page.addInitScript((shift) => {
    const real = Date.now;
    Date.now = () => real() + shift;
  }, shiftMs);
  return loadSdk(page, site.origin);
}

test("a device clock 20 minutes ahead: the fresh token is used (not 'expired'), messages flow, no refetch", async () => {
  const page = await skewedPage(20 * 60_000);
  await page.evaluate(
    (args) => window.h.openRecorded(args),
    { base: server.base, agentId: AGENT, sourceKey: "clock-ahead", jwt: { ttl: 900 } },
  );
  await page.evaluate(() => window.t.convo.send("what time is it?"));
  await page.evaluate(() => window.h.until(() => window.t.rec.message.length >= 2, "the reply", 15000));
  await page.waitForTimeout(2000);
  const r = await page.evaluate(() => ({ calls: window.t.calls.count, errors: window.t.rec.error.length, status: window.t.convo.status }));
  assert.deepEqual(r, { calls: 1, errors: 0, status: "connected" });
  await page.evaluate(() => window.t.convo.close());
  await page.close();
});

test("a device clock 10 minutes behind: the token is refreshed before the server's expiry, not after", async () => {
  const page = await skewedPage(-10 * 60_000);
  // 12 s tokens: by the server's clock the refresh is due at 6 s and the
  // server closes the stream at 10 s; by the device's, 5 minutes later.
  await page.evaluate(
    (args) => window.h.openRecorded(args),
    { base: server.base, agentId: AGENT, sourceKey: "clock-behind", jwt: { ttl: 12 } },
  );
  await page.evaluate(() => window.h.until(() => window.t.calls.count > 1, "a refresh", 15000));
  const r = await page.evaluate(() => ({ closed: window.t.rec.closed.length, errors: window.t.rec.error.length }));
  assert.deepEqual(r, { closed: 0, errors: 0 }, "refreshed before the server had to close the stream");
  await page.evaluate(() => window.t.convo.close());
  await page.close();
});
