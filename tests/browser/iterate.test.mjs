// `for await (const ev of convo.events())` and `await using`, through the
// npm package's entry (pkg/index.js), in headless Chromium against the
// reference server.
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

let users = 0;

/** A page with the package loaded and a client (`window.t`). */
async function page(name) {
  const p = await browser.context.newPage();
  p.on("pageerror", (e) => console.error("page error:", e));
  await p.goto(`${site.origin}/blank.html`);
  await p.evaluate(async ({ base, AGENT, sourceKey }) => {
    const pkg = await import("/pkg/index.js");
    const h = await import("/recorder.js");
    const { fetchJwt } = h.makeFetchJwt(base, sourceKey);
    window.t = { pkg, h, valet: new pkg.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base }) };
  }, { base: server.base, AGENT, sourceKey: `${name}-${++users}` });
  return p;
}

test("for await over convo.events(): the first ready, then the message and its reply in order; it ends after close()", async () => {
  const p = await page("iterate");
  const got = await p.evaluate(async () => {
    const { valet } = window.t;
    const { convoId } = await valet.startSession();
    const convo = await valet.openConvo({ convoId });
    const seen = [];
    const loop = (async () => {
      for await (const ev of convo.events()) {
        if (ev.type === "message") seen.push(`message ${ev.payload.message.from}: ${ev.payload.message.content}`);
        else if (ev.type === "ready" || ev.type === "turn_done") seen.push(ev.type);
        if (ev.type === "turn_done") convo.close();
      }
      seen.push("ended");
    })();
    await convo.send("hello");
    await loop;
    return seen;
  });
  assert.deepEqual(got, ["ready", "message appuser: hello", 'message ai_agent: You said: "hello"', "turn_done", "ended"]);
  await p.close();
});

test("events({ events, signal }) yields only the named events and ends at once on abort; break unsubscribes", async () => {
  const p = await page("iterate-signal");
  const got = await p.evaluate(async () => {
    const { valet } = window.t;
    const { convoId } = await valet.startSession();
    const convo = await valet.openConvo({ convoId });
    const ctrl = new AbortController();
    const types = [];
    const loop = (async () => {
      for await (const ev of convo.events({ events: ["message"], signal: ctrl.signal })) {
        types.push(ev.type);
        if (types.length === 2) ctrl.abort();
      }
    })();
    // A second iterator that breaks after its first event.
    const first = (async () => {
      for await (const ev of convo.events({ events: ["turn_done"] })) return ev.payload.reason;
    })();
    await convo.send("one");
    await loop;
    const reason = await first;
    await convo.send("two"); // no iterator is left to queue it
    let unknown;
    try {
      convo.events({ events: ["nope"] });
    } catch (e) {
      unknown = { isValetError: e instanceof window.t.pkg.ValetError, code: e.code };
    }
    const aborted = new AbortController();
    aborted.abort();
    const none = [];
    for await (const ev of convo.events({ signal: aborted.signal })) none.push(ev);
    convo.close();
    return { types, reason, unknown, none: none.length };
  });
  assert.deepEqual(got, { types: ["message", "message"], reason: "ok", unknown: { isValetError: true, code: "invalid_argument" }, none: 0 });
  await p.close();
});

test("await using: leaving the block closes the convo and its stream", async () => {
  const p = await page("using");
  const { convoId, status } = await p.evaluate(async () => {
    const { valet } = window.t;
    const { convoId } = await valet.startSession();
    let convo;
    {
      // What `await using convo = await valet.openConvo(...)` compiles to.
      const c = await valet.openConvo({ convoId });
      convo = c;
      try {
        await c.send("inside");
      } finally {
        await c[Symbol.asyncDispose]();
      }
    }
    return { convoId, status: convo.status };
  });
  assert.equal(status, "closed");
  await server.waitStats("the stream closed", (s) => (s.live_streams_by_convo[convoId] ?? 0) === 0);
  await p.close();
});
