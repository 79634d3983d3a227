// The seed quickstart, verbatim, in one tab. It runs in every engine of
// `make test` (VALET_BROWSER: Chromium, Firefox, WebKit).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv(["--ping-interval-ms", "300"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

test("the seed quickstart runs verbatim: reply once, typing, turn_done, and close() leaves nothing", async () => {
  const page = await env.page();
  const sourceKey = "quickstart";
  const result = await page.evaluate(async ({ base, AGENT, sourceKey }) => {
    const { ValetClient } = window.sdk;
    const agentId = AGENT;
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const baseUrl = base, debug = false, fetchJwtTimeoutMs = 10000;
    const rendered = [];
    const render = (message) => rendered.push(message);

    const valet = new ValetClient({ agentId, fetchJwt, baseUrl, debug, fetchJwtTimeoutMs })
    const { convoId } = await valet.startSession()
    const convo = await valet.openConvo({ convoId })
    convo.on("message", ({ message }) => render(message))   // returns unsubscribe
    const typing = [], turns = [];
    convo.on("typing", (t) => typing.push(t.state));
    convo.on("turn_done", (t) => turns.push(t.reason));
    await convo.send("Hi, I need help with my order")

    await window.h.until(() => turns.length > 0, "turn_done");
    await new Promise((r) => setTimeout(r, 300)); // any duplicate would arrive by now
    window.quickstart = { convo };
    return { convoId, rendered, typing, turns };
  }, { base: server.base, AGENT, sourceKey });

  assert.deepEqual(result.rendered.map((m) => [m.from, m.content]), [
    ["appuser", "Hi, I need help with my order"],
    ["ai_agent", 'You said: "Hi, I need help with my order"'],
  ]);
  assert.deepEqual(result.typing, ["start", "stop"]);
  assert.deepEqual(result.turns, ["ok"]);
  let s = await server.stats();
  assert.equal(s.live_streams_by_appuser[sourceKey], 1, "one stream");

  // close(): the server sees the stream end, and the page goes quiet (where
  // the engine reports a page's requests; elsewhere the server's count below).
  const requests = [];
  if (browser.can.requests) page.on("request", (r) => requests.push(r.url()));
  await page.evaluate(() => window.quickstart.convo.close());
  await server.waitStats("the stream to end", (st) => !st.live_streams_by_appuser[sourceKey]);
  await page.waitForTimeout(1500); // longer than any reconnect delay the SDK could have scheduled
  assert.deepEqual(requests, [], "no request after close()");
  s = await server.stats();
  assert.equal(s.live_streams_by_appuser[sourceKey], undefined);
  await page.close();
});
