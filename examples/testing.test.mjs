// An app's tests with `@valet.red/sdk/testing`: the real SDK and store
// against a scripted Valet API in memory (no server, no network). The same
// works under Vitest or Jest; here with `node:test`. The "app" under test
// is the few lines of `chatView` below: what a chat component renders.
import assert from "node:assert/strict";
import { mock as testMock, test } from "node:test";
import { createConvoStore } from "@valet.red/sdk";
import { createMockValet } from "@valet.red/sdk/testing";

/** The app: the lines a chat view shows, from the store's snapshot. */
function chatView(state) {
  const lines = state.messages.map((m) => `${m.from === "appuser" ? "me" : "agent"}: ${m.content}${m.status === "pending" ? " (sending)" : m.status === "streaming" ? "…" : ""}`);
  if (state.typing) lines.push("agent is typing");
  if (!state.canSend) lines.push(`closed: ${state.cannotSend.text}`);
  return lines;
}

const settle = (store, pred, what) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(chatView(store.getState()))}`)), 10_000);
    const off = store.subscribe((s) => {
      if (!pred(s)) return;
      clearTimeout(timer);
      queueMicrotask(() => off());
      resolve(s);
    });
  });

test("a conversation: my message, the agent's echo, then a scripted reply with typing", async () => {
  const mock = createMockValet();
  const { convoId } = await mock.client.startSession();
  const store = createConvoStore(mock.client.openConvo({ convoId }));
  await settle(store, (s) => s.status === "connected", "connected");

  await store.send("Where is my order?");
  await settle(store, (s) => s.turn.phase === "done", "the agent's turn");
  assert.deepEqual(chatView(store.getState()), ["me: Where is my order?", 'agent: You said: "Where is my order?"']);

  mock.convo(convoId).reply("It ships today.", { typing: true });
  await settle(store, (s) => s.messages.length === 3, "the scripted reply");
  assert.deepEqual(chatView(store.getState()).at(-1), "agent: It ships today.");
  assert.deepEqual(mock.requests.filter((r) => r.route === "stream_message").map((r) => r.body.text), ["Where is my order?"]);
  store.close();
  mock.close();
});

test("a dropped stream: the SDK reconnects and reconciles; what came meanwhile shows once", async () => {
  const mock = createMockValet({ agent: false }); // the test plays the agent
  const c = mock.createConvo({ messages: [{ content: "Hello! How can I help?" }] });
  const store = createConvoStore(mock.client.openConvo({ convoId: c.id }));
  await settle(store, (s) => s.status === "connected" && s.messages.length === 1, "the history");
  c.disconnect(); // cut: no `closed` frame
  c.reply("Are you still there?"); // stored while the stream is down
  await settle(store, (s) => s.reconnects === 1 && s.messages.length === 2, "the reconnect and the missed message");
  assert.deepEqual(chatView(store.getState()), ["agent: Hello! How can I help?", "agent: Are you still there?"]);
  assert.equal(c.streams, 1, "one stream again");
  store.close();
  mock.close();
});

test("a streamed reply, a refused send and a resolved convo", async () => {
  const mock = createMockValet({ agent: false });
  const { convoId } = await mock.client.startSession();
  const c = mock.convo(convoId);
  const store = createConvoStore(mock.client.openConvo({ convoId }), { streaming: true });
  await settle(store, (s) => s.status === "connected", "connected");

  const seen = [];
  const off = store.subscribe((s) => seen.push(chatView(s).join(" | ")));
  // Written over time, as a reply streams: each piece shows before the next.
  await c.streamReply("Let me check that for you.", { gapMs: 30 });
  await settle(store, (s) => s.messages.at(-1)?.status === "sent", "the completed reply");
  off();
  assert.ok(seen.some((v) => v.endsWith("…")), "shown while written");
  assert.deepEqual(chatView(store.getState()), ["agent: Let me check that for you."]);

  mock.fail("stream_message", 400);
  await assert.rejects(store.send("this one is refused"), (e) => e.code === "http" && e.status === 400);
  assert.equal(store.getState().messages.at(-1).status, "failed");

  c.setState("resolved");
  await settle(store, (s) => s.convoState === "resolved", "the state change");
  assert.equal(chatView(store.getState()).at(-1), "closed: This conversation has been resolved.");
  store.close();
  mock.close();
});

test("time under the runner's fake timers: a slow agent answers when the clock says so", async (t) => {
  // Every timer and the clock are fake from here on, the SDK's included:
  // time moves only when the test says (Vitest: vi.useFakeTimers(), which
  // fakes Date too, and vi.advanceTimersByTimeAsync).
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.now() });
  const advance = async (ms) => {
    for (let done = 0; done < ms; done += 50) {
      t.mock.timers.tick(50);
      // A moment of real time for what is not a timer (promises, I/O).
      const end = performance.now() + 1;
      while (performance.now() < end) await new Promise((r) => setImmediate(r));
    }
  };
  const until = async (pred, what) => {
    for (let waited = 0; !pred(); waited += 50) {
      if (waited > 10_000) throw new Error(`no ${what} within 10 s of fake time`);
      await advance(50);
    }
  };
  const mock = createMockValet({ replyDelayMs: 30_000 });
  const { convoId } = await mock.client.startSession();
  const store = createConvoStore(mock.client.openConvo({ convoId }));
  await until(() => store.getState().status === "connected", "connection");
  const sent = store.send("Hello?");
  await until(() => store.getState().messages[0]?.status === "sent", "stored message");
  await sent;
  await advance(29_000);
  assert.equal(store.getState().messages.length, 1, "no answer before its time");
  await advance(1_000);
  await until(() => store.getState().messages.length === 2, "answer");
  assert.equal(store.getState().messages[1].content, 'You said: "Hello?"');
  store.close();
  mock.close();
});
