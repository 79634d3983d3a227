// Streamed replies (the reference server's `--agent-token-ms`): every tab
// gets the `delta` events in order, and a store with `streaming: true` shows
// the reply growing in place until the completed message takes its key.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv(["--ping-interval-ms", "300", "--agent-token-ms", "40"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

/** A tab in the convo: its deltas, messages and every snapshot of a streaming store. */
async function streamingTab(sourceKey, convoId, transport = "fetch") {
  const page = await env.page();
  await page.evaluate(async ({ base, AGENT, sourceKey, convoId, transport }) => {
    const { createConvoStore } = await import("/pkg/store.js");
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false, transport });
    const convo = await client.openConvo({ convoId });
    const t = { convo, deltas: [], messages: [], turns: 0, snapshots: [] };
    convo.on("delta", (d) => t.deltas.push({ ...d, at: performance.now() }));
    convo.on("message", ({ message }) => t.messages.push({ ...message, at: performance.now() }));
    convo.on("turn_done", () => t.turns++);
    const store = createConvoStore(convo, { streaming: true });
    store.subscribe((s) => t.snapshots.push(s.messages.map((m) => ({ key: m.key, status: m.status, from: m.from, content: m.content }))));
    window.t = t;
  }, { base: server.base, AGENT, sourceKey, convoId, transport });
  return page;
}

test("a streamed reply: every tab gets its pieces in order, then the message they make; the store grows it in place", async () => {
  const sourceKey = "streaming-1";
  const convoId = await server.session(sourceKey);
  const tabs = [await streamingTab(sourceKey, convoId), await streamingTab(sourceKey, convoId)];
  const text = "please write me a reply of quite a few words";
  const sentAt = await tabs[0].evaluate(async (text) => {
    await window.t.convo.send(text);
    return performance.now();
  }, text);
  for (const tab of tabs) {
    await tab.evaluate(() => window.h.until(() => window.t.turns >= 1, "turn_done", 20000));
    const t = await tab.evaluate(() => window.t);
    const reply = t.messages.find((m) => m.from === "ai_agent");
    assert.equal(t.messages.length, 2, "the sent message and the reply, once each");
    assert.equal(reply.content, `You said: "${text}"`);
    assert.ok(t.deltas.length >= 8, `word by word: ${t.deltas.length}`);
    assert.deepEqual(t.deltas.map((d) => d.index), t.deltas.map((_, i) => i), "in order, each once");
    assert.ok(t.deltas.every((d) => d.message_id === reply.id && d.type === "message_delta"), "announcing the reply's id");
    assert.equal(t.deltas.map((d) => d.delta).join(""), reply.content, "the pieces make the reply");
    assert.ok(t.deltas.at(-1).at < reply.at, "every piece before the message");

    // The store: the reply grows under one key, then is the message.
    const agent = t.snapshots.map((s) => s.filter((m) => m.from === "ai_agent"));
    assert.ok(agent.every((list) => list.length <= 1), "never two bubbles for the reply");
    const growing = agent.flat().filter((m) => m.status === "streaming").map((m) => m.content);
    assert.ok(new Set(growing).size >= 3, `seen growing: ${growing.length} snapshots`);
    for (let i = 1; i < growing.length; i++) assert.ok(growing[i].startsWith(growing[i - 1]), "each text extends the last");
    const last = agent.at(-1)[0];
    assert.deepEqual(last, { key: reply.id, status: "sent", from: "ai_agent", content: reply.content });
    assert.ok(agent.flat().every((m) => m.key === reply.id), "one key from first piece to message");
  }
  // send() settled when the server took the message, not after the reply
  // streamed (its answer, the token stream, is drained in the background).
  const first = await tabs[0].evaluate(() => window.t.messages.find((m) => m.from === "ai_agent").at);
  assert.ok(sentAt < first, "send() resolved before the reply was complete");
  for (const tab of tabs) await tab.close();
});

test("over EventSource too: the pieces in order, then the message they make", async () => {
  const sourceKey = "streaming-es";
  const convoId = await server.session(sourceKey);
  const tab = await streamingTab(sourceKey, convoId, "eventsource");
  const text = "a streamed reply over an EventSource";
  await tab.evaluate((text) => window.t.convo.send(text), text);
  await tab.evaluate(() => window.h.until(() => window.t.turns >= 1, "turn_done", 20000));
  const t = await tab.evaluate(() => window.t);
  const reply = t.messages.find((m) => m.from === "ai_agent");
  assert.equal(t.messages.length, 2, "the sent message and the reply, once each");
  assert.ok(t.deltas.length >= 6, `word by word: ${t.deltas.length}`);
  assert.deepEqual(t.deltas.map((d) => d.index), t.deltas.map((_, i) => i), "in order, each once");
  assert.equal(t.deltas.map((d) => d.delta).join(""), reply.content, "the pieces make the reply");
  assert.ok(t.deltas.at(-1).at < reply.at, "every piece before the message");
  await tab.close();
});
