// The SDK in one tab, in headless Chromium, against the reference server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv(["--ping-interval-ms", "300", "--rate-limit-messages", "50"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

const sdkPage = () => env.page();

let users = 0;
const user = (name) => `${name}-${++users}`;

/**
 * Opens a recorded convo in a fresh page; returns { page, convoId, sourceKey }.
 * The recorder subscribes right after `await openConvo`, so it sees the
 * opening's `ready`: a reconnect's `ready` is the second.
 */
async function opened(name, { clientOptions = {}, jwt = {} } = {}) {
  const page = await sdkPage();
  const sourceKey = user(name);
  const convoId = await page.evaluate(
    (args) => window.h.openRecorded(args),
    { base: server.base, agentId: AGENT, sourceKey, clientOptions, jwt },
  );
  return { page, convoId, sourceKey };
}

const rec = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.t.rec)));
const texts = async (page) => (await rec(page)).message.map((m) => m.message.content);
const waitIn = (page, js, what) => page.evaluate(([js, what]) => window.h.until(() => (0, eval)(js), what), [js, what]);
const send = (page, text) => page.evaluate((text) => window.t.convo.send(text), text);
const closeAll = (page) => page.evaluate(() => window.t.convo.close()).then(() => page.close());

/** Sends `n` messages from the server side (an injected human agent), to test delivery. */
async function inject(convoId, texts) {
  for (const content of texts) await server.admin(`/convos/${convoId}/messages`, { content, from: "human_agent" });
}

test("the getters answer strings: convoId, status, role; and sdkVersion() is the crate's version", async () => {
  const { page, convoId } = await opened("getters");
  await waitIn(page, "window.t.convo.status === 'connected'", "connected");
  const got = await page.evaluate(() => {
    const c = window.t.convo;
    return { convoId: c.convoId, status: c.status, role: c.role, version: window.sdk.sdkVersion() };
  });
  const cargo = readFileSync(new URL("../../Cargo.toml", import.meta.url), "utf8");
  const version = cargo.match(/^\[workspace\.package\][^[]*?^version = "([^"]+)"/m)[1];
  assert.deepEqual(got, { convoId, status: "connected", role: "leader", version });
  await closeAll(page);
});

test("graceful `closed`: reconnects at once, reconciles, nothing lost or doubled", async () => {
  const { page, convoId, sourceKey } = await opened("graceful");
  await inject(convoId, ["a", "b"]);
  await waitIn(page, "window.t.rec.message.length === 2", "a, b");
  const opened0 = (await server.stats()).streams_opened_total;
  await server.admin("/streams/end", { convo_id: convoId, reason: "server_cap" });
  await inject(convoId, ["c", "d"]); // sent while the client is between streams
  await waitIn(page, "window.t.rec.ready.length === 2", "a second ready");
  await waitIn(page, "window.t.rec.message.length >= 4", "c, d");
  await inject(convoId, ["e"]);
  await waitIn(page, "window.t.rec.message.length >= 5", "e");
  await page.waitForTimeout(300);
  assert.deepEqual(await texts(page), ["a", "b", "c", "d", "e"]);
  const r = await rec(page);
  assert.deepEqual(r.closed.map((c) => c.reason), ["server_cap"]);
  const s = await server.stats();
  assert.equal(s.streams_opened_total - opened0 >= 1, true);
  assert.equal(s.live_streams_by_appuser[sourceKey], 1, "exactly one stream after the reconnect");
  await closeAll(page);
});

test("a stream dropped without `closed` backs off and recovers every message", async () => {
  const { page, convoId } = await opened("dropped");
  await server.admin("/streams/drop", { convo_id: convoId });
  await inject(convoId, ["during the gap"]);
  await waitIn(page, "window.t.rec.ready.length === 2", "reconnect");
  await waitIn(page, "window.t.rec.message.length === 1", "the gap message");
  const r = await rec(page);
  const reconnecting = r.status.filter((s) => s.status === "reconnecting" && s.retry_in_ms !== undefined);
  assert.ok(reconnecting.length >= 1, "a backoff was scheduled");
  assert.ok(r.closed.length === 0, "no closed frame was seen");
  assert.equal(r.message[0].from_reconcile, true, "recovered by the reconcile");
  await closeAll(page);
});

/**
 * Ends the convo's stream (`shutdown`: the SDK reconnects at once) with its
 * next request refused at the cap, `Retry-After: secs`; returns the
 * server's count of events requests before.
 */
async function refuseReconnect(convoId, secs) {
  await server.admin("/faults", { route: "events", status: 429, retry_after: secs, count: 1, body: { code: "too_many_streams" } });
  const before = (await server.stats()).requests.events;
  await server.admin("/streams/end", { convo_id: convoId, reason: "shutdown" });
  return before;
}

test("429 on the stream waits the server's Retry-After", async () => {
  const { page, convoId } = await opened("retry-after");
  const before = await refuseReconnect(convoId, 2);
  await waitIn(page, "window.t.rec.ready.length === 2", "reconnect after the wait");
  const r = await rec(page);
  const waits = r.status.filter((s) => s.status === "reconnecting" && s.retry_in_ms !== undefined).map((s) => s.retry_in_ms);
  assert.ok(waits.some((ms) => ms >= 2000 && ms <= 2600), `waited Retry-After: ${waits}`);
  const after = (await server.stats()).requests.events;
  assert.equal(after - before, 2, "one refused attempt, one successful: no retry storm");
  assert.equal(r.error.length, 0, "a 429 is not an error the app must handle");
  await closeAll(page);
});

test("a stream refused at the cap waits its Retry-After even when a send is stored meanwhile", async () => {
  const { page, convoId } = await opened("retry-after-send");
  const before = await refuseReconnect(convoId, 20);
  await waitIn(page, "window.t.rec.status.some((s) => s.status === 'reconnecting' && s.retry_in_ms >= 20000)", "the 20 s wait");
  assert.equal((await server.stats()).requests.events - before, 1, "the refused attempt");
  // The server answers a send: it is reachable, but the wait is its own.
  await send(page, "during the wait");
  await page.waitForTimeout(1500);
  assert.equal((await server.stats()).requests.events - before, 1, "no early retry after the send");
  assert.equal(await page.evaluate(() => window.t.convo.status), "reconnecting");
  await closeAll(page);
});

test("401 on the stream: the token is refreshed and the new one is used", async () => {
  const { page, convoId } = await opened("unauthorized");
  const calls0 = await page.evaluate(() => window.t.calls.count);
  await server.admin("/faults", { route: "events", status: 401, count: 1 });
  await server.admin("/streams/end", { convo_id: convoId, reason: "server_cap" });
  await waitIn(page, "window.t.rec.ready.length === 2", "reconnect after 401");
  const calls = await page.evaluate(() => window.t.calls);
  assert.equal(calls.count, calls0 + 1, "fetchJwt was called once more");
  assert.notEqual(calls.tokens.at(-1), calls.tokens.at(-2), "a new token");
  await inject(convoId, ["after refresh"]);
  await waitIn(page, "window.t.rec.message.length === 1", "delivery on the new stream");
  await closeAll(page);
});

test("404: openConvo rejects with an error the app can branch on, and nothing retries", async () => {
  const page = await sdkPage();
  const sourceKey = user("not-found");
  const requests = [];
  const error = await page.evaluate(async ({ base, AGENT, sourceKey }) => {
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base });
    try {
      await client.openConvo({ convoId: "00000000-0000-0000-0000-000000000000" });
      return "resolved";
    } catch (e) {
      return { name: e.name, code: e.code, status: e.status, body: e.body };
    }
  }, { base: server.base, AGENT, sourceKey });
  assert.deepEqual(error, { name: "ValetError", code: "http", status: 404, body: { code: "convo_not_found", message: "no such convo" } });
  page.on("request", (r) => requests.push(r.url()));
  await page.waitForTimeout(1500);
  assert.deepEqual(requests, [], "no retry loop");
  await page.close();
});

test("a stalled stream is detected from missing pings and replaced", async () => {
  const { page, convoId } = await opened("stalled", { clientOptions: { stallTimeoutMs: 1500 } });
  await server.admin("/streams/stall", { convo_id: convoId });
  await inject(convoId, ["sent into the stall"]);
  await waitIn(page, "window.t.rec.ready.length === 2", "a new stream after the stall");
  await waitIn(page, "window.t.rec.message.length === 1", "the message");
  await page.waitForTimeout(300);
  assert.deepEqual(await texts(page), ["sent into the stall"]);
  await server.waitStats("the stalled stream to be released", (s) => s.live_streams_by_convo[convoId] === 1);
  await closeAll(page);
});

test("a malformed frame is reported and the stream goes on; a duplicated frame is delivered once", async () => {
  const { page, convoId } = await opened("malformed");
  await server.admin("/streams/malformed", { convo_id: convoId });
  await waitIn(page, "window.t.rec.error.length === 1", "a protocol error");
  await server.admin("/streams/duplicate", { convo_id: convoId });
  await inject(convoId, ["once"]);
  await waitIn(page, "window.t.rec.message.length >= 1", "the message");
  await page.waitForTimeout(300);
  const r = await rec(page);
  assert.equal(r.error[0].phase, "stream");
  assert.equal(r.error[0].error.code, "protocol");
  assert.deepEqual(r.message.map((m) => m.message.content), ["once"]);
  assert.equal(r.ready.length, 1, "the stream was not dropped (the opening's ready only, no reconnect)");
  await closeAll(page);
});

test("history on open arrives once, in order, marked from_reconcile; live messages follow", async () => {
  const page = await sdkPage();
  const sourceKey = user("history");
  const { token } = await server.jwt(sourceKey);
  const { convo_id: convoId } = await (await fetch(`${server.base}/api/v2/sessions`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).json();
  await inject(convoId, ["h1", "h2", "h3"]);
  const got = await page.evaluate(async ({ base, AGENT, sourceKey, convoId }) => {
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base });
    const convo = await client.openConvo({ convoId });
    const rec = window.h.record(convo);
    window.t = { convo, rec };
    await window.h.until(() => rec.message.length === 3, "history");
    return rec.message.map((m) => [m.message.content, m.from_reconcile]);
  }, { base: server.base, AGENT, sourceKey, convoId });
  assert.deepEqual(got, [["h1", true], ["h2", true], ["h3", true]]);
  await inject(convoId, ["live"]);
  await waitIn(page, "window.t.rec.message.length === 4", "live");
  const last = (await rec(page)).message[3];
  assert.deepEqual([last.message.content, "from_reconcile" in last], ["live", false], "live: no from_reconcile");
  await closeAll(page);
});

test("pause drops the stream; resume reconnects and delivers what came meanwhile, once", async () => {
  const { page, convoId, sourceKey } = await opened("pause");
  await page.evaluate(() => window.t.convo.pause());
  await server.waitStats("the stream to end", (s) => !s.live_streams_by_appuser[sourceKey]);
  await inject(convoId, ["while paused"]);
  await page.waitForTimeout(500);
  assert.deepEqual(await texts(page), [], "nothing while paused");
  await page.evaluate(() => window.t.convo.resume());
  await waitIn(page, "window.t.rec.message.length === 1", "the message after resume");
  assert.equal((await server.stats()).live_streams_by_appuser[sourceKey], 1);
  await closeAll(page);
});

test("pause and resume during a backoff, then close: one stream, then none (no zombie)", async () => {
  const { page, convoId, sourceKey } = await opened("zombie");
  await server.admin("/faults", { route: "events", status: 503, count: 3 });
  await server.admin("/streams/drop", { convo_id: convoId });
  await waitIn(page, "window.t.rec.status.some((s) => s.status === 'reconnecting' && s.retry_in_ms !== undefined)", "a backoff");
  await page.evaluate(() => { window.t.convo.pause(); window.t.convo.resume(); window.t.convo.pause(); window.t.convo.resume(); });
  await waitIn(page, "window.t.rec.ready.length === 2", "connected again");
  await page.waitForTimeout(500);
  assert.equal((await server.stats()).live_streams_by_appuser[sourceKey], 1, "exactly one stream");
  await page.evaluate(() => window.t.convo.close());
  await server.waitStats("no stream", (s) => !s.live_streams_by_appuser[sourceKey]);
  await inject(convoId, ["after close"]);
  await page.waitForTimeout(1000);
  assert.equal((await server.stats()).live_streams_by_appuser[sourceKey], undefined, "nothing came back");
  assert.deepEqual(await texts(page), [], "no handler ran after close()");
  await page.close();
});

test("a handler that throws does not stop the others", async () => {
  const { page, convoId } = await opened("throwing");
  await page.evaluate(() => {
    window.seen = [];
    window.t.convo.on("message", () => { throw new Error("app bug"); });
    window.t.convo.on("message", ({ message }) => window.seen.push(message.content));
  });
  await inject(convoId, ["x", "y"]);
  await waitIn(page, "window.seen.length === 2", "both messages to the second handler");
  assert.deepEqual(await page.evaluate(() => window.seen), ["x", "y"]);
  // unsubscribe works
  await page.evaluate(() => { const off = window.t.convo.on("message", () => window.seen.push("extra")); off(); off(); });
  await inject(convoId, ["z"]);
  await waitIn(page, "window.seen.length === 3", "z");
  assert.deepEqual(await page.evaluate(() => window.seen), ["x", "y", "z"]);
  await closeAll(page);
});

test("send errors carry a code: rate_limited with retryAfterSeconds, closed, invalid_argument", async () => {
  const { page, convoId } = await opened("send-errors");
  // Over a minute to wait: the send fails at once and the app decides.
  await server.admin("/faults", { route: "stream_message", status: 429, retry_after: 30, body: { status: "rate_limited", convo_id: convoId, state: "open", retry_after_seconds: 120 } });
  const errors = await page.evaluate(async () => {
    const out = [];
    const grab = async (p) => { try { await p; out.push("resolved"); } catch (e) { out.push({ name: e.name, code: e.code, status: e.status, retryAfterSeconds: e.retryAfterSeconds, message: e.message }); } };
    await grab(window.t.convo.send("too fast"));
    await grab(window.t.convo.send(""));
    await grab(window.t.convo.send(42));
    try { window.t.convo.on("nope", () => {}); out.push("no throw"); } catch (e) { out.push({ code: e.code, message: e.message }); }
    window.t.convo.close();
    await grab(window.t.convo.send("after close"));
    return out;
  });
  assert.deepEqual(
    { name: errors[0].name, code: errors[0].code, status: errors[0].status, retryAfterSeconds: errors[0].retryAfterSeconds },
    { name: "ValetError", code: "rate_limited", status: 429, retryAfterSeconds: 120 },
  );
  assert.equal(errors[1].code, "invalid_argument");
  assert.equal(errors[2].code, "invalid_argument");
  assert.equal(errors[3].code, "invalid_argument");
  assert.match(errors[3].message, /unknown event "nope"/);
  assert.equal(errors[4].code, "closed");
  await page.close();
});

test("send retries a 503 with the same idempotency key: stored once", async () => {
  const { page, convoId, sourceKey } = await opened("idempotent");
  await server.admin("/faults", { route: "stream_message", status: 503, count: 2 });
  await send(page, "exactly once");
  await waitIn(page, "window.t.rec.message.length >= 2", "message and reply");
  const { token } = await server.jwt(sourceKey);
  const history = await (await fetch(`${server.base}/api/v2/agent_convos/${convoId}`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.deepEqual(history.messages.filter((m) => m.from === "appuser").map((m) => m.content), ["exactly once"]);
  await closeAll(page);
});

test("send with files uploads first; the message carries them", async () => {
  const { page } = await opened("files");
  await page.evaluate(() => window.t.convo.send("see attached", { files: [new File(["hello"], "note.txt", { type: "text/plain" })] }));
  await waitIn(page, "window.t.rec.message.length === 2", "message and reply");
  const r = await rec(page);
  assert.deepEqual(r.message[0].message.files.map((f) => [f.filename, f.byte_size, f.content_type]), [["note.txt", 5, "text/plain"]]);
  assert.match(r.message[1].message.content, /note\.txt/);
  await closeAll(page);
});

test("send and uploadFiles check their arguments: each mistake rejects with invalid_argument and its own message, and sends nothing", async () => {
  const { page, convoId, sourceKey } = await opened("send-args");
  const out = await page.evaluate(async () => {
    const { convo } = window.t;
    const blob = new Blob(["x"]);
    const grab = (p) => p.then(() => "resolved", (e) => (e.name === "ValetError" ? `${e.code}: ${e.message}` : `thrown: ${e.message}`));
    const getterThrows = { get files() { throw new Error("a getter threw"); } };
    return {
      notText: await grab(convo.send(42)),
      empty: await grab(convo.send("  \n ")),
      filesNotArray: await grab(convo.send("x", { files: blob })),
      filesNotBlobs: await grab(convo.send("x", { files: [blob, "b"] })),
      draftEmpty: await grab(convo.send("x", { messageId: "" })),
      draftNumber: await grab(convo.send("x", { messageId: 7 })),
      both: await grab(convo.send("x", { files: [blob], messageId: "m" })),
      signal: await grab(convo.send("x", { signal: {} })),
      queued: await grab(convo.send("x", { resolveWhenQueued: "yes" })),
      keyEmpty: await grab(convo.send("x", { idempotencyKey: "" })),
      keySpace: await grab(convo.send("x", { idempotencyKey: "a b" })),
      keyLong: await grab(convo.send("x", { idempotencyKey: "k".repeat(201) })),
      keyNumber: await grab(convo.send("x", { idempotencyKey: 7 })),
      getter: await grab(convo.send("x", getterThrows)),
      uploadNone: await grab(convo.uploadFiles([])),
      uploadNotArray: await grab(convo.uploadFiles(blob)),
      uploadNotBlobs: await grab(convo.uploadFiles([1])),
    };
  });
  assert.deepEqual(out, {
    notText: "invalid_argument: send(text): text must be a string",
    empty: "invalid_argument: send(text): text must not be empty",
    filesNotArray: "invalid_argument: send(text, { files }): files must be an array of File or Blob",
    filesNotBlobs: "invalid_argument: send(text, { files }): files must be an array of File or Blob",
    draftEmpty: "invalid_argument: send(text, { messageId }): must be the string uploadFiles() resolved to",
    draftNumber: "invalid_argument: send(text, { messageId }): must be the string uploadFiles() resolved to",
    both: "invalid_argument: send(text, { files, messageId }): give files or a draft's messageId, not both",
    signal: "invalid_argument: send(text, { signal }): signal must be an AbortSignal",
    queued: "invalid_argument: send(text, { resolveWhenQueued }): must be a boolean",
    keyEmpty: "invalid_argument: send(text, { idempotencyKey }): must be 1 to 200 printable ASCII characters",
    keySpace: "invalid_argument: send(text, { idempotencyKey }): must be 1 to 200 printable ASCII characters",
    keyLong: "invalid_argument: send(text, { idempotencyKey }): must be 1 to 200 printable ASCII characters",
    keyNumber: "invalid_argument: send(text, { idempotencyKey }): must be 1 to 200 printable ASCII characters",
    getter: "thrown: a getter threw",
    uploadNone: "invalid_argument: uploadFiles(files): files must be a non-empty array of File or Blob",
    uploadNotArray: "invalid_argument: uploadFiles(files): files must be a non-empty array of File or Blob",
    uploadNotBlobs: "invalid_argument: uploadFiles(files): files must be a non-empty array of File or Blob",
  });
  // Null options are no options; a Blob goes up as `file`; absent flags are their defaults.
  await page.evaluate(() => window.t.convo.send("plain", null));
  await page.evaluate(() => window.t.convo.send("a blob", { files: [new Blob(["hey"], { type: "text/plain" })], signal: undefined, resolveWhenQueued: null }));
  await waitIn(page, "window.t.rec.message.filter((m) => m.message.from === 'appuser').length === 2", "the two sends");
  const { token } = await server.jwt(sourceKey);
  const history = await (await fetch(`${server.base}/api/v2/agent_convos/${convoId}`, { headers: { authorization: `Bearer ${token}` } })).json();
  const mine = history.messages.filter((m) => m.from === "appuser");
  assert.deepEqual(mine.map((m) => [m.content, m.files.map((f) => f.filename)]), [["plain", []], ["a blob", ["file"]]]);
  await closeAll(page);
});

test("the EventSource transport: same behaviour, and the token never appears in a URL", async () => {
  const page = await sdkPage();
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));
  const sourceKey = user("eventsource");
  const convoId = await page.evaluate(
    (args) => window.h.openRecorded(args),
    { base: server.base, agentId: AGENT, sourceKey, clientOptions: { transport: "eventsource" } },
  );
  await send(page, "over EventSource");
  await waitIn(page, "window.t.rec.turn_done.length === 1", "turn_done");
  assert.deepEqual(await texts(page), ["over EventSource", 'You said: "over EventSource"']);
  await server.admin("/streams/end", { convo_id: convoId, reason: "server_cap" });
  await waitIn(page, "window.t.rec.ready.length === 2", "reconnect");
  const tokens = await page.evaluate(() => window.t.calls.tokens);
  for (const url of urls) for (const t of tokens) assert.ok(!url.includes(t), `token in ${url}`);
  assert.ok(urls.some((u) => u.includes("/events?ticket=")), "a ticket opened the stream");
  await closeAll(page);
  await server.waitStats("stream ended", (s) => !s.live_streams_by_appuser[sourceKey]);
});

test("EventSource: a refused or malformed ticket is a failure the stream recovers from", async () => {
  const { page, convoId, sourceKey } = await opened("ticket", { clientOptions: { transport: "eventsource", debug: true } });
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  // After the stream ends, the first ticket is refused (503), the second is not a ticket: the third opens it.
  await server.admin("/faults", { route: "stream_ticket", status: 503, count: 1 });
  await server.admin("/faults", { route: "stream_ticket", status: 200, body: { not_a_ticket: true }, count: 1 });
  await server.admin("/streams/end", { source_key: sourceKey, reason: "stalled" });
  await waitIn(page, "window.t.rec.ready.length === 2", "the stream back after the two bad tickets");
  await inject(convoId, ["after the tickets"]);
  await waitIn(page, "window.t.rec.message.length === 1", "a message");
  assert.deepEqual(await texts(page), ["after the tickets"]);
  assert.ok(logs.some((l) => l.includes("stream refused: HTTP 503")), "the refused ticket was logged");
  assert.ok(logs.some((l) => l.includes("stream failed: malformed stream ticket")), "the malformed ticket was logged");
  await closeAll(page);
});

test("bad options and a failing fetchJwt give clear errors", async () => {
  const page = await sdkPage();
  const out = await page.evaluate(async ({ base, AGENT }) => {
    const { ValetClient } = window.sdk;
    const res = {};
    const sync = (f) => { try { f(); return "no throw"; } catch (e) { return `${e.code}: ${e.message}`; } };
    res.noAgent = sync(() => new ValetClient({ fetchJwt: () => "x" }));
    res.noFetch = sync(() => new ValetClient({ agentId: AGENT }));
    res.badTransport = sync(() => new ValetClient({ agentId: AGENT, fetchJwt: () => "x", transport: "ws" }));
    res.notObject = sync(() => new ValetClient("x"));
    res.badTypes = ["agentId", "baseUrl", "transport"].map((k) => sync(() => new ValetClient({ agentId: AGENT, fetchJwt: () => "x", [k]: 5 })))
      .concat(["debug", "pauseOnHidden"].map((k) => sync(() => new ValetClient({ agentId: AGENT, fetchJwt: () => "x", [k]: "yes" }))))
      .concat(["fetchJwtTimeoutMs", "stallTimeoutMs"].map((k) => sync(() => new ValetClient({ agentId: AGENT, fetchJwt: () => "x", [k]: "5" }))))
      .concat([sync(() => new ValetClient({ agentId: AGENT, fetchJwt: () => "x", onEvent: 5 }))]);
    res.nulls = sync(() => new ValetClient({ agentId: AGENT, fetchJwt: () => "x", baseUrl: null, debug: null, onEvent: null, transport: undefined }));
    const ok = new ValetClient({ agentId: AGENT, fetchJwt: () => "x", baseUrl: base });
    const openWith = (o) => ok.openConvo(o).then(() => "resolved", (e) => `${e.code}: ${e.message}`);
    res.openConvo = [await openWith(), await openWith({}), await openWith({ convoId: 5 }), await openWith({ convoId: "  " })];
    const open = async (mode, extra = {}) => {
      const { fetchJwt, calls } = window.h.makeFetchJwt(base, "fj", { mode });
      const c = new ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, fetchJwtTimeoutMs: 300, ...extra });
      // A failure that may pass: openConvo resolves, retrying, and reports it.
      let convo;
      try { convo = await c.openConvo({ convoId: "c" }); } catch (e) { return `rejected ${e.code}: ${e.message}`; }
      const errors = [];
      convo.on("error", (e) => errors.push(`${e.error.code}: ${e.error.message}`));
      await new Promise((r) => setTimeout(r, 50));
      const status = convo.status;
      convo.close();
      return `${status} ${errors[0]}`;
    };
    res.throws = await open("throw");
    res.hangs = await open("hang");
    res.junk = await open("junk");
    res.number = await open("number");
    // What it rejects with is its own, even a number.
    const zero = new ValetClient({ agentId: AGENT, fetchJwt: () => Promise.reject(0), baseUrl: base, fetchJwtTimeoutMs: 300 });
    res.zero = await zero.openConvo({ convoId: "c" }).then((c) => {
      const errors = [];
      c.on("error", (e) => errors.push(`${e.error.code}: ${e.error.message}`));
      return new Promise((r) => setTimeout(r, 50)).then(() => (c.close(), errors[0]));
    }, (e) => `rejected ${e.code}: ${e.message}`);
    return res;
  }, { base: server.base, AGENT });
  assert.match(out.noAgent, /^invalid_argument: `agentId` is required/);
  assert.match(out.noFetch, /^invalid_argument: `fetchJwt` is required/);
  assert.match(out.badTransport, /^invalid_argument: `transport`/);
  assert.equal(out.notObject, "invalid_argument: new ValetClient(options): options must be an object");
  assert.deepEqual(out.badTypes, [
    "invalid_argument: `agentId` must be a string", "invalid_argument: `baseUrl` must be a string", "invalid_argument: `transport` must be a string",
    "invalid_argument: `debug` must be a boolean", "invalid_argument: `pauseOnHidden` must be a boolean",
    "invalid_argument: `fetchJwtTimeoutMs` must be a number", "invalid_argument: `stallTimeoutMs` must be a number",
    "invalid_argument: `onEvent` must be a function",
  ]);
  assert.equal(out.nulls, "no throw");
  assert.deepEqual(out.openConvo, Array(4).fill("invalid_argument: openConvo({ convoId }): convoId is required (a non-empty string)"));
  // Each may pass (only a ValetError of code `auth` is "signed out"): retried, reported.
  assert.match(out.throws, /^reconnecting network: fetchJwt failed: backend down/);
  assert.match(out.hangs, /^reconnecting timeout: fetchJwt did not settle within 300 ms/);
  assert.match(out.junk, /^reconnecting protocol: fetchJwt returned an unusable token/);
  assert.match(out.number, /^reconnecting protocol: fetchJwt must resolve to a JWT string/);
  assert.equal(out.zero, "network: fetchJwt failed: rejected");
  await page.close();
});

test("debug logs carry the prefix and never a token", async () => {
  const page = await sdkPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  const sourceKey = user("debug");
  await page.evaluate((args) => window.h.openRecorded(args), { base: server.base, agentId: AGENT, sourceKey, clientOptions: { debug: true } });
  await server.admin("/faults", { route: "events", status: 401, count: 1 });
  await server.admin("/streams/end", { source_key: sourceKey, reason: "auth_expiring" });
  await waitIn(page, "window.t.rec.ready.length === 2", "reconnect");
  const tokens = await page.evaluate(() => window.t.calls.tokens);
  const ours = logs.filter((l) => l.startsWith("[valet-sdk]"));
  assert.ok(ours.length > 3, "debug lines were logged");
  for (const line of logs) for (const t of tokens) assert.ok(!line.includes(t) && !line.includes(t.split(".")[2]), `token in: ${line}`);
  await closeAll(page);
});

test("opening and closing a convo 6,000 times leaves the heap flat", async () => {
  const page = await sdkPage();
  const cdp = await page.context().newCDPSession(page);
  const sourceKey = user("heap");
  await page.evaluate(async ({ base, AGENT, sourceKey }) => {
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    window.heapClient = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base });
    window.heapConvo = (await window.heapClient.startSession()).convoId;
    window.cycle = async (n) => {
      for (let i = 0; i < n; i++) {
        const convo = await window.heapClient.openConvo({ convoId: window.heapConvo });
        const off = convo.on("message", () => {});
        convo.on("status", () => {});
        if (i % 2) off();
        convo.close();
        // no convo.free(): as real apps, rely on GC (wasm-bindgen finalizers)
      }
    };
  }, { base: server.base, AGENT, sourceKey });
  const measure = async () => {
    // GC, then let FinalizationRegistry callbacks (which free the wasm side
    // of collected handles) run, then GC again.
    for (let i = 0; i < 3; i++) {
      await cdp.send("HeapProfiler.collectGarbage");
      await page.waitForTimeout(200);
    }
    const { usedSize } = await cdp.send("Runtime.getHeapUsage");
    return { js: usedSize, wasm: await page.evaluate(() => window.wasmMemory.buffer.byteLength) };
  };
  // Apps do not call free(): a closed convo's wasm side is freed when its JS
  // handle is collected. Wasm memory never shrinks, so it is the allocator's
  // high-water mark: measured over 12,000 cycles it settles within the first
  // 4,000 (one or two pages more than after 2,000, in some runs) and stays
  // flat to 12,000. So 4,000 cycles warm up, and a leak shows as growth in
  // the next 2,000: one page is 32 bytes a cycle, so a leak of 64 bytes or
  // more a cycle fails (what one kept id, closure or convo would cost).
  await page.evaluate(() => window.cycle(4000));
  const before = await measure();
  await page.evaluate(() => window.cycle(2000));
  const after = await measure();
  const wasmGrowth = after.wasm - before.wasm, jsGrowth = after.js - before.js;
  console.log(`heap across 2000 more open/close: wasm ${before.wasm} -> ${after.wasm} bytes, js heap ${before.js} -> ${after.js} bytes`);
  assert.ok(wasmGrowth <= 64 * 1024, `wasm memory grew by ${wasmGrowth} bytes`);
  assert.ok(jsGrowth < 1024 * 1024, `JS heap grew by ${jsGrowth} bytes`);
  await server.waitStats("every stream closed", (s) => !s.live_streams_by_appuser[sourceKey]);
  await page.close();
});

test("two convos send while one is waiting to retry: both succeed", async () => {
  const { page } = await opened("concurrent-send");
  const result = await page.evaluate(async () => {
    const other = await window.t.client.openConvo({ convoId: (await window.t.client.startSession()).convoId });
    const outcomes = [];
    // B sends at several points of A's backoff sleep (A's 503 is answered at once).
    for (const delay of [5, 40, 80, 120]) {
      await fetch(`${window.t.base}/dev/admin/faults`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer dev-admin-secret" },
        body: JSON.stringify({ route: "stream_message", status: 503, count: 1 }),
      });
      const a = window.t.convo.send(`A after ${delay}`);
      await new Promise((r) => setTimeout(r, delay));
      const b = other.send(`B at ${delay}`);
      const settled = await Promise.race([
        Promise.allSettled([a, b]),
        new Promise((r) => setTimeout(() => r([{ status: "hung" }, { status: "hung" }]), 5000)),
      ]);
      outcomes.push(settled.map((s) => s.status).join("+"));
    }
    other.close();
    return outcomes;
  });
  assert.deepEqual(result, Array(4).fill("fulfilled+fulfilled"));
  await closeAll(page);
});
