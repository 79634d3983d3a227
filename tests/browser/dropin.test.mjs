// Drop-in: what an app written for the Valet JS SDK receives from ours, at
// run time, through the npm package's entry (pkg/index.js) in headless
// Chromium against the reference server. Every payload is checked against
// the JS SDK's declared type (`shapes` below, from the contract's table
// "The types an app imports"): each field there is present with its type,
// no wider value, `from_reconcile` only on history and then `true`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv(["--agent-delay-ms", "50"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

// ---- the JS SDK's types, as run-time checks --------------------------------
const str = (v) => typeof v === "string";
const num = (v) => typeof v === "number" && Number.isFinite(v);
const oneOf = (...xs) => (v) => xs.includes(v);
const nullOr = (f) => (v) => v === null || f(v);
const arrayOf = (f) => (v) => Array.isArray(v) && v.every(f);
const STATES = ["open", "escalated", "resolved", "auto_resolved", "assumed_resolved", "rage_locked", "attempted_hack", "pending_feedback"];
const shape = (fields) => (v) => v !== null && typeof v === "object" && Object.entries(fields).every(([k, f]) => k in v && f(v[k]));
const participant = shape({ id: str, kind: oneOf("ai_agent", "appuser", "human_agent"), name: str, photo_url: str, initial: str });
const messageFile = shape({ url: str, filename: str, content_type: str, byte_size: num });
const message = shape({
  id: str, content: str, from: oneOf("appuser", "ai_agent", "human_agent"), turn_number: num, created_at: str,
  participant: nullOr(participant), files: arrayOf(messageFile),
});
const shapes = {
  ready: shape({ type: oneOf("ready"), conn_id: str }),
  message: (v) => shape({ type: oneOf("message"), action: oneOf("create"), agent_id: str, convo_id: str, message })(v)
    && (!("from_reconcile" in v) || v.from_reconcile === true),
  typing: shape({ type: oneOf("typing"), kind: oneOf("thinking", "typing"), state: oneOf("start", "stop"), label: str, convo_id: str }),
  convo_state: shape({ type: oneOf("convo_state"), agent_id: str, convo_id: str, state: oneOf(...STATES), prev_state: oneOf(...STATES), closed_user_message: nullOr(str) }),
  turn_done: (v) => shape({ type: oneOf("turn_done"), convo_id: str, reason: oneOf("ok", "blocked", "rate_limited", "closed", "unavailable", "temporary_failure"), at: num })(v)
    && (!("retry_after_seconds" in v) || num(v.retry_after_seconds)),
  closed: shape({ type: oneOf("closed"), reason: oneOf("server_cap", "shutdown", "auth_expiring", "stalled") }),
  error: (v) => "reason" in v
    ? shape({ type: oneOf("error"), convo_id: str, reason: oneOf("temporary_failure"), at: num })(v)
    : shape({ error: shape({ isError: oneOf(true), isValetError: oneOf(true), message: str, code: str }), phase: oneOf("stream", "fetch", "auth") })(v),
};

function assertShapes(rec) {
  for (const [name, payloads] of Object.entries(rec)) {
    for (const p of payloads) assert.ok(shapes[name](p), `a \`${name}\` payload of the JS SDK's type: ${JSON.stringify(p)}`);
  }
}

// ---- the page ----------------------------------------------------------------
let users = 0;

/** A page with the package loaded, a client and a new convo, recorded from the task `await openConvo` returns in. */
async function opened(name) {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${site.origin}/blank.html`);
  const sourceKey = `${name}-${++users}`;
  const convoId = await page.evaluate(async ({ base, AGENT, sourceKey }) => {
    const pkg = await import("/pkg/index.js");
    const h = await import("/recorder.js");
    const { fetchJwt } = h.makeFetchJwt(base, sourceKey);
    const valet = new pkg.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base });
    const { convoId } = await valet.startSession();
    const convo = await valet.openConvo({ convoId });
    // Subscribed in the task where `await openConvo` returned, as JS SDK apps do.
    const rec = { ready: [], message: [], typing: [], convo_state: [], turn_done: [], closed: [], error: [] };
    for (const n of Object.keys(rec)) {
      convo.on(n, (p) => {
        // An Error does not survive serialization to the test: note what it is.
        if (n === "error" && !("reason" in p)) {
          const e = p.error;
          p = { ...p, error: { isError: e instanceof Error, isValetError: e instanceof pkg.ValetError, message: e.message, code: e.code, status: e.status } };
        }
        rec[n].push(p);
      });
    }
    window.t = { pkg, h, valet, convo, rec };
    return convoId;
  }, { base: server.base, AGENT, sourceKey });
  return { page, convoId, sourceKey };
}

const rec = (page) => page.evaluate(() => window.t.rec);
const until = (page, pred, what) => page.evaluate(({ pred, what }) => window.t.h.until(() => eval(pred), what), { pred, what });

async function say(page, text) {
  const before = await page.evaluate(() => window.t.rec.turn_done.length);
  await page.evaluate((text) => window.t.convo.send(text), text);
  await until(page, `window.t.rec.turn_done.length > ${before}`, `turn_done after ${text}`);
  return (await rec(page)).turn_done.at(-1);
}

test("handlers attached right after `await openConvo` get the first ready; every frame value reaches them with the JS SDK's type", async () => {
  const { page, convoId } = await opened("dropin");
  await until(page, "window.t.rec.ready.length === 1", "the first ready");

  // A turn: the user's message, typing with its label, the reply with a whole participant, turn_done{ok}.
  assert.equal((await say(page, "hello")).reason, "ok");
  await until(page, "window.t.rec.message.length === 2", "the reply");
  let r = await rec(page);
  assert.deepEqual(r.message.map((m) => [m.message.from, "from_reconcile" in m]), [["appuser", false], ["ai_agent", false]], "live: no from_reconcile");
  assert.equal(r.message[1].message.participant.kind, "ai_agent");
  assert.deepEqual(r.typing.map((t) => t.state), ["start", "stop"]);

  // Every turn_done reason the contract has.
  for (const [text, reason] of [["/blocked", "blocked"], ["/unavailable", "unavailable"], ["/rate_limited", "rate_limited"], ["/fail", "temporary_failure"]]) {
    const done = await say(page, text);
    assert.equal(done.reason, reason, text);
    if (reason === "rate_limited") assert.equal(done.retry_after_seconds, 30);
  }
  // The server's `error` frame reaches `error` handlers as the frame itself.
  r = await rec(page);
  const frames = r.error.filter((e) => "reason" in e);
  assert.equal(frames.length, 1, "one error frame, from /fail");
  assert.equal(frames[0].convo_id, convoId);

  // convo_state: escalated with its text, a human_agent message with a whole participant, reopened with null text.
  await say(page, "/escalate");
  await server.admin(`/convos/${convoId}/messages`, { content: "Sam here" });
  await until(page, "window.t.rec.message.some((m) => m.message.from === 'human_agent')", "the human agent's message");
  await say(page, "/reopen");
  await say(page, "/resolve");
  r = await rec(page);
  assert.deepEqual(r.convo_state.map((s) => [s.prev_state, s.state, typeof s.closed_user_message]),
    [["open", "escalated", "string"], ["escalated", "open", "object"], ["open", "resolved", "string"]]);
  assert.equal(r.convo_state[1].closed_user_message, null);
  assert.equal(r.message.find((m) => m.message.from === "human_agent").message.participant.kind, "human_agent");

  // A `closed` frame, then the reconnect's ready.
  await server.admin("/streams/end", { convo_id: convoId, reason: "server_cap" });
  await until(page, "window.t.rec.ready.length === 2", "the reconnect");

  // An SDK failure: `{ error, phase }` with a real ValetError.
  await server.admin("/streams/malformed", { convo_id: convoId });
  await until(page, "window.t.rec.error.some((e) => !('reason' in e))", "the SDK error");
  r = await rec(page);
  const sdkError = r.error.find((e) => !("reason" in e));
  assert.deepEqual([sdkError.phase, sdkError.error.code, sdkError.error.isValetError], ["stream", "protocol", true]);
  assert.deepEqual(r.closed.map((c) => c.reason), ["server_cap"]);
  assertShapes(r);
  await page.close();
});

test("history reaches a second page with from_reconcile: true, typed as the JS SDK's MessageEvent", async () => {
  const { page, convoId, sourceKey } = await opened("history");
  await say(page, "first");
  const other = await browser.context.newPage();
  await other.goto(`${site.origin}/blank.html`);
  const got = await other.evaluate(async ({ base, AGENT, sourceKey, convoId }) => {
    const pkg = await import("/pkg/index.js");
    const h = await import("/recorder.js");
    const valet = new pkg.ValetClient({ agentId: AGENT, fetchJwt: h.makeFetchJwt(base, sourceKey).fetchJwt, baseUrl: base });
    const convo = await valet.openConvo({ convoId });
    const messages = [];
    convo.on("message", (m) => messages.push(m));
    await h.until(() => messages.length === 2, "the history");
    convo.close();
    return messages;
  }, { base: server.base, AGENT, sourceKey, convoId });
  assert.deepEqual(got.map((m) => [m.message.content, m.from_reconcile]), [["first", true], ['You said: "first"', true]]);
  assertShapes({ message: got });
  await other.close();
  await page.close();
});

test("errors are ValetError instances; uploadFiles resolves to the draft id that send finalizes", async () => {
  const { page, convoId, sourceKey } = await opened("errors");
  const refused = await page.evaluate(async () => {
    const { pkg, valet } = window.t;
    try {
      await valet.openConvo({ convoId: "00000000-0000-4000-8000-000000000404" });
      return null;
    } catch (e) {
      return { isValetError: e instanceof pkg.ValetError, isError: e instanceof Error, name: e.name, code: e.code, status: e.status };
    }
  });
  assert.deepEqual(refused, { isValetError: true, isError: true, name: "ValetError", code: "http", status: 404 });

  const draft = await page.evaluate(async () => {
    const { convo } = window.t;
    const id = await convo.uploadFiles([new File(["hello"], "note.txt", { type: "text/plain" })]);
    await convo.send("the note", { messageId: id });
    const wrong = await convo.uploadFiles([]).catch((e) => [e instanceof window.t.pkg.ValetError, e.code]);
    return { id, wrong };
  });
  assert.equal(typeof draft.id, "string");
  assert.deepEqual(draft.wrong, [true, "invalid_argument"]);
  const { token } = await server.jwt(sourceKey);
  const history = await (await fetch(`${server.base}/api/v2/agent_convos/${convoId}`, { headers: { authorization: `Bearer ${token}` } })).json();
  const mine = history.messages.filter((m) => m.from === "appuser");
  assert.equal(mine.length, 1, "the draft and its text are one message");
  assert.deepEqual([mine[0].id, mine[0].content, mine[0].files.map((f) => f.filename)], [draft.id, "the note", ["note.txt"]]);
  await page.close();
});

test("startSession reports a lockout and the attachment policy with the JS SDK's types", async () => {
  const { page } = await opened("lockout");
  await say(page, "/rage");
  const session = await page.evaluate(() => window.t.valet.startSession());
  const lockout = shape({ locked_out: oneOf(true), expires_at: str, permanent: oneOf(false), reason: oneOf("rage"), user_message: str });
  const policy = shape({ max_files_per_message: num, max_files_per_convo: num, max_file_size_bytes: num, allowed_mime_types: arrayOf(str) });
  assert.ok(str(session.convoId), JSON.stringify(session));
  assert.ok(lockout(session.lockout), `lockout: ${JSON.stringify(session.lockout)}`);
  assert.ok(policy(session.attachmentPolicy), `attachmentPolicy: ${JSON.stringify(session.attachmentPolicy)}`);
  await page.close();
});
