// Sends that survive a bad network, a reconnect that does not wait out its
// backoff once the server is back, metrics and the onEvent hook: one tab,
// headless Chromium, the reference server on a SQLite file (so it can be
// SIGKILLed and restarted on the same data).
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSdk, sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser, dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "valet-resilience-"));
  env = await sdkEnv(["--ping-interval-ms", "300", "--rate-limit-messages", "200"], { db: join(dir, "valet.db") });
  ({ server, site, browser } = env);
});

after(async () => {
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

let users = 0;

/** A page with a recorded convo of a new user; `onEvent` calls land in window.t.events. */
/** Pages the current test opened: closed after it, pass or fail. */
let pages = [];
afterEach(async () => {
  for (const p of pages) await p.close().catch(() => {});
  pages = [];
  await browser.context.setOffline(false);
});

async function opened(name, clientOptions = {}) {
  const page = await env.page();
  pages.push(page);
  const sourceKey = `${name}-${++users}`;
  const convoId = await page.evaluate(async ({ base, AGENT, sourceKey, clientOptions }) => {
    const events = [];
    const options = { pauseOnHidden: false, ...clientOptions, onEvent: (kind, payload) => events.push({ kind, payload }) };
    if (clientOptions.throwingHook) options.onEvent = (kind, payload) => { events.push({ kind, payload }); throw new Error("observer bug"); };
    const convoId = await window.h.openRecorded({ base, agentId: AGENT, sourceKey, clientOptions: options });
    window.t.events = events;
    window.t.rec.statusTimes = [];
    window.t.convo.on("status", (s) => window.t.rec.statusTimes.push({ ...s, t: Date.now() }));
    return convoId;
  }, { base: server.base, AGENT, sourceKey, clientOptions });
  return { page, sourceKey, convoId };
}

/** Loads the SDK page in `page` and opens an existing convo there, recorded from the task `await openConvo` returns in. */
async function openExisting(page, sourceKey, convoId) {
  await loadSdk(page, site.origin);
  await page.evaluate(async ({ base, AGENT, sourceKey, convoId }) => {
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false });
    const convo = await client.openConvo({ convoId });
    window.t = { convo, rec: window.h.record(convo) };
  }, { base: server.base, AGENT, sourceKey, convoId });
}

const userTexts = async (sourceKey, convoId) =>
  (await server.history(sourceKey, convoId)).filter((m) => m.from === "appuser").map((m) => m.content);

/** Starts sends in the page without awaiting them; their outcomes go to window.t.sent. */
const startSends = (page, texts, opts = {}) =>
  page.evaluate(({ texts, opts }) => {
    window.t.sent ??= {};
    for (const text of texts) {
      window.t.sent[text] = "pending";
      window.t.convo.send(text, opts).then(
        () => { window.t.sent[text] = "resolved"; },
        (e) => { window.t.sent[text] = { code: e.code, maybeStored: e.maybeStored ?? false, name: e.name }; },
      );
    }
  }, { texts, opts });

const outcomes = (page) => page.evaluate(() => window.t.sent);
const waitSettled = (page, texts) =>
  page.evaluate((texts) => window.h.until(() => texts.every((t) => window.t.sent[t] !== "pending") && window.t.sent, "sends to settle", 30000), texts);
const waitMessages = (page, n) =>
  page.evaluate((n) => window.h.until(() => window.t.rec.message.length >= n, `${n} messages`, 30000), n);
const seenTexts = (page) => page.evaluate(() => window.t.rec.message.map((m) => m.message.content));

test("offline: sends stay pending in order and go once the browser is back online; each stored and delivered once", async () => {
  const { page, sourceKey, convoId } = await opened("offline");
  await page.context().setOffline(true);
  await startSends(page, ["one", "two", "three"]);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await outcomes(page), { one: "pending", two: "pending", three: "pending" }, "pending while offline, not failed");
  assert.equal(await page.evaluate(() => window.t.convo.metrics().queuedSends), 3);
  assert.deepEqual(await userTexts(sourceKey, convoId), [], "nothing reached the server");
  await page.context().setOffline(false);
  assert.deepEqual(await waitSettled(page, ["one", "two", "three"]), { one: "resolved", two: "resolved", three: "resolved" });
  assert.deepEqual(await userTexts(sourceKey, convoId), ["one", "two", "three"], "stored once each, in order");
  await waitMessages(page, 6);
  await new Promise((r) => setTimeout(r, 500));
  const seen = await seenTexts(page);
  assert.deepEqual(seen.filter((t) => !t.startsWith("You said")), ["one", "two", "three"], "delivered once each, in order");
  assert.equal(seen.length, 6);
  await page.close();
});

test("server SIGKILLed and restarted on the same database: sends made while it is down go when it is back, and the stream recovers", async () => {
  const { page, sourceKey, convoId } = await opened("killed");
  await page.evaluate(() => window.t.convo.send("before"));
  await waitMessages(page, 2);
  await server.kill();
  await startSends(page, ["while down 1", "while down 2"]);
  await page.evaluate(() => window.h.until(() => window.t.convo.status === "reconnecting", "the stream to notice", 20000));
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await outcomes(page), { "while down 1": "pending", "while down 2": "pending" });
  await server.restart();
  assert.deepEqual(await waitSettled(page, ["while down 1", "while down 2"]), { "while down 1": "resolved", "while down 2": "resolved" });
  await page.evaluate(() => window.h.until(() => window.t.convo.status === "connected", "reconnected", 30000));
  await waitMessages(page, 6);
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await userTexts(sourceKey, convoId), ["before", "while down 1", "while down 2"]);
  const seen = await seenTexts(page);
  assert.equal(seen.length, 6, JSON.stringify(seen));
  assert.equal(new Set(await page.evaluate(() => window.t.rec.message.map((m) => m.message.id))).size, 6, "none twice");
  await page.close();
});

test("a long reconnect backoff is cut short by a send that succeeds once the server is back (still jittered)", async () => {
  const { page } = await opened("cut-short");
  await server.kill();
  // Wait until the SDK is waiting out a long delay.
  const long = await page.evaluate(() => window.h.until(
    () => window.t.rec.statusTimes.find((s) => s.status === "reconnecting" && s.retry_in_ms >= 4000), "a long backoff", 40000));
  await server.restart();
  // From the moment the send starts: its success reschedules the reconnect
  // before the send() promise settles.
  const sentAt = await page.evaluate(async () => { const t = Date.now(); await window.t.convo.send("I am back"); return t; });
  await page.evaluate(() => window.h.until(() => window.t.convo.status === "connected", "reconnected", 20000));
  const after = await page.evaluate((t) => window.t.rec.statusTimes.filter((s) => s.t >= t), sentAt);
  const rescheduled = after.find((s) => s.status === "reconnecting" && s.retry_in_ms !== undefined);
  assert.ok(rescheduled, `a reconnect was rescheduled after the send: ${JSON.stringify(after)}`);
  assert.ok(rescheduled.retry_in_ms < 1000, `within the jitter window, not the ${long.retry_in_ms} ms backoff: ${rescheduled.retry_in_ms}`);
  await page.close();
});

test("the browser's online event cuts a long backoff short", async () => {
  const { page } = await opened("online");
  await server.kill();
  await page.evaluate(() => window.h.until(
    () => window.t.rec.statusTimes.find((s) => s.status === "reconnecting" && s.retry_in_ms >= 4000), "a long backoff", 40000));
  await server.restart();
  const at = await page.evaluate(() => { const t = Date.now(); window.dispatchEvent(new Event("online")); return t; });
  await page.evaluate(() => window.h.until(() => window.t.convo.status === "connected", "reconnected", 20000));
  const after = await page.evaluate((t) => window.t.rec.statusTimes.filter((s) => s.t >= t), at);
  const rescheduled = after.find((s) => s.status === "reconnecting" && s.retry_in_ms !== undefined);
  assert.ok(rescheduled && rescheduled.retry_in_ms < 1000, JSON.stringify(after));
  await page.close();
});

test("an aborted send rejects with `aborted` and is never stored; the sends behind it go", async () => {
  const { page, sourceKey, convoId } = await opened("abort");
  await page.context().setOffline(true);
  await page.evaluate(() => {
    window.t.ctrl = new AbortController();
    window.t.sent = {};
  });
  await page.evaluate(() => {
    const track = (text, p) => { window.t.sent[text] = "pending"; p.then(() => { window.t.sent[text] = "resolved"; }, (e) => { window.t.sent[text] = { code: e.code, name: e.name }; }); };
    track("first", window.t.convo.send("first"));
    track("aborted", window.t.convo.send("aborted", { signal: window.t.ctrl.signal }));
    track("last", window.t.convo.send("last"));
    track("pre-aborted", window.t.convo.send("pre-aborted", { signal: AbortSignal.abort() }));
    window.t.ctrl.abort();
  });
  await page.context().setOffline(false);
  const out = await waitSettled(page, ["first", "aborted", "last", "pre-aborted"]);
  assert.deepEqual(out, {
    first: "resolved",
    aborted: { code: "aborted", name: "ValetError" },
    last: "resolved",
    "pre-aborted": { code: "aborted", name: "ValetError" },
  });
  assert.deepEqual(await userTexts(sourceKey, convoId), ["first", "last"]);
  await page.close();
});

test("a 429 on send waits the server's retry_after_seconds, then the send is stored once", async () => {
  const { page, sourceKey, convoId } = await opened("honour-429");
  await server.admin("/faults", { route: "stream_message", status: 429, retry_after: 30, count: 1, body: { status: "rate_limited", convo_id: convoId, state: "open", retry_after_seconds: 1 } });
  const before = (await server.stats()).requests.stream_message ?? 0;
  const waited = await page.evaluate(async () => { const t = Date.now(); await window.t.convo.send("patient"); return Date.now() - t; });
  const calls = ((await server.stats()).requests.stream_message ?? 0) - before;
  assert.equal(calls, 2, "the send met the 429, then went again");
  assert.ok(waited >= 900, `it waited the server's second, not less: ${waited} ms`);
  assert.deepEqual(await userTexts(sourceKey, convoId), ["patient"]);
  await page.close();
});

test("resolveWhenQueued resolves at once; a refused send then surfaces as an `error` event with stage `send`", async () => {
  const { page, sourceKey, convoId } = await opened("detached");
  await server.admin("/faults", { route: "stream_message", status: 422, count: 1, body: { code: "invalid" } });
  await page.evaluate(() => window.t.convo.send("refused", { resolveWhenQueued: true }));
  const err = await page.evaluate(() => window.h.until(() => window.t.rec.error.find((e) => e.stage === "send"), "the send error", 20000));
  assert.equal(err.error.code, "http");
  assert.equal(err.error.status, 422);
  assert.equal(err.phase, "fetch", "the JS SDK's phase for a REST call");
  assert.equal(err.error.isError, true, "a real Error");
  await page.evaluate(() => window.t.convo.send("accepted", { resolveWhenQueued: true }));
  await waitMessages(page, 2);
  assert.deepEqual(await userTexts(sourceKey, convoId), ["accepted"]);
  await page.close();
});

test("metrics() counts reconnects, duplicates, gaps and token refreshes; onEvent sees them, and a throwing onEvent breaks nothing", async () => {
  const { page, convoId } = await opened("metrics", { throwingHook: true });
  await page.evaluate(() => window.t.convo.send("hello"));
  await waitMessages(page, 2);
  await server.admin("/streams/duplicate", { convo_id: convoId });
  await server.admin(`/convos/${convoId}/messages`, { content: "duplicated" });
  await waitMessages(page, 3);
  await server.admin("/streams/drop", { convo_id: convoId });
  await page.evaluate(() => window.h.until(() => window.t.convo.metrics().reconnects >= 1, "a reconnect", 20000));
  await page.evaluate(() => window.h.until(() => window.t.convo.status === "connected", "reconnected", 20000));
  await page.evaluate(() => window.t.convo.send("after"));
  await waitMessages(page, 5);
  const { m, kinds } = await page.evaluate(() => ({ m: window.t.convo.metrics(), kinds: [...new Set(window.t.events.map((e) => e.kind))] }));
  assert.ok(m.reconnects >= 1, JSON.stringify(m));
  assert.ok(m.duplicatesDropped >= 1, JSON.stringify(m));
  assert.ok(m.tokenRefreshes >= 1, JSON.stringify(m));
  assert.equal(m.queuedSends, 0);
  assert.equal(m.messagesDelivered, 5);
  assert.ok(m.lastEventAt > Date.now() - 60_000, JSON.stringify(m));
  for (const k of ["status", "reconnect", "duplicate_dropped", "token_refresh", "send_queued", "send_settled"]) {
    assert.ok(kinds.includes(k), `onEvent saw ${k}: ${kinds}`);
  }
  const seen = await seenTexts(page);
  assert.equal(new Set(seen).size, seen.length, "every message once, though the hook throws on each event");
  await page.close();
});

test("a reload resumes where the tab was: history once as from_reconcile, what came during the reload live, nothing twice", async () => {
  const { page, sourceKey, convoId } = await opened("reload");
  await page.evaluate(() => window.t.convo.send("before the reload"));
  await waitMessages(page, 2);
  await page.goto(`${site.origin}/blank.html`); // pagehide: the tab remembers where it was
  await server.admin(`/convos/${convoId}/messages`, { content: "during the reload", from: "human_agent" });
  await openExisting(page, sourceKey, convoId);
  await waitMessages(page, 3);
  await page.evaluate(() => window.t.convo.send("after the reload"));
  await waitMessages(page, 5);
  await new Promise((r) => setTimeout(r, 500));
  const got = await page.evaluate(() => window.t.rec.message.map((m) => [m.message.content, m.from_reconcile === true]));
  assert.deepEqual(got, [
    ["before the reload", true],
    ['You said: "before the reload"', true],
    ["during the reload", false],
    ["after the reload", false],
    ['You said: "after the reload"', false],
  ]);
  await page.close();
});

test("handlers attached right after `await openConvo` get everything of the opening: the first ready, the status, the whole history", async () => {
  const { page, sourceKey, convoId } = await opened("opening");
  for (const text of ["one", "two", "three"]) await page.evaluate((t) => window.t.convo.send(t), text);
  await waitMessages(page, 6);
  await page.close();
  // A new page opens the convo (alone: it leads and opens the stream). Its
  // history is fetched beside the stream and may be in before the stream is
  // live, i.e. before openConvo resolves.
  const other = await browser.context.newPage();
  pages.push(other);
  await openExisting(other, sourceKey, convoId);
  // The recorder subscribed in the task where `await openConvo` returned.
  const got = await other.evaluate(async () => {
    const { rec } = window.t;
    await window.h.until(() => rec.message.length >= 6, "the history", 20000);
    return { message: rec.message.map((m) => m.message.content), ready: rec.ready.length, status: rec.status.map((s) => s.status) };
  });
  assert.deepEqual(got.message.filter((t) => !t.startsWith("You said")), ["one", "two", "three"]);
  assert.equal(got.message.length, 6);
  assert.equal(got.ready, 1, "the first ready reaches a handler attached after the await");
  assert.equal(got.status.at(-1), "connected");
  await other.close();
});
