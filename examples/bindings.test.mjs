// The Vue binding outside a component (an effect scope), natively in Node:
// it follows a changing convoId, shares a store per (client, convo) and
// closes on scope disposal. (The browser tests run it inside components.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { effectScope, nextTick, ref } from "vue";

/** A client whose convos record what happened to them. */
function recordingClient() {
  const convos = [];
  return {
    convos,
    async openConvo({ convoId }) {
      const handlers = new Map();
      const convo = {
        convoId,
        status: "connected",
        role: "leader",
        closed: 0,
        on(event, h) {
          if (!handlers.has(event)) handlers.set(event, new Set());
          handlers.get(event).add(h);
          return () => handlers.get(event).delete(h);
        },
        emit: (event, payload) => {
          for (const h of [...(handlers.get(event) ?? [])]) h(payload);
        },
        send: async () => {},
        close() {
          this.closed += 1;
        },
      };
      convos.push(convo);
      return convo;
    },
    listConvos: async () => [],
    sessions: 0,
    async startSession() {
      this.sessions += 1;
      return { convoId: `new-${this.sessions}`, lockout: null };
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 5));

test("Vue useConvo: follows convoId, shares stores, closes with its scope", async () => {
  globalThis.window ??= globalThis; // a browser, as far as the binding can tell
  const { useConvo } = await import("@valet.red/sdk/vue");
  const client = recordingClient();
  const convoId = ref("c1");
  const scope = effectScope();
  const chat = scope.run(() => useConvo({ client, convoId }));
  const again = scope.run(() => useConvo({ client, convoId: "c1" }));
  await settle();
  assert.equal(client.convos.length, 1, "two views of c1 share one convo");
  assert.equal(chat.status.value, "connected");
  assert.equal(chat.convoId.value, "c1");

  client.convos[0].emit("message", { message: { id: "m1", from: "ai_agent", content: "hi", created_at: "2026-11-21T10:00:00Z" } });
  assert.deepEqual(chat.messages.value.map((m) => m.content), ["hi"]);
  assert.equal(again.messages.value, chat.messages.value, "the same snapshot");

  convoId.value = "c2";
  await nextTick();
  await settle();
  assert.equal(client.convos.length, 2);
  assert.equal(chat.convoId.value, "c2");
  assert.deepEqual(chat.messages.value, [], "c2's own (empty) history");
  assert.equal(client.convos[0].closed, 0, "c1 is still shown by the other view");

  scope.stop();
  await settle();
  assert.deepEqual(client.convos.map((c) => c.closed), [1, 1], "both convos closed with the scope");
  await assert.rejects(chat.send("late"), (e) => e.code === "closed");
});

test('Vue useConvo: convoId "new" starts one session; a promise of an id is awaited; the callbacks get the events', async () => {
  globalThis.window ??= globalThis;
  const { useConvo } = await import("@valet.red/sdk/vue");
  const client = recordingClient();
  const got = { message: [], turnDone: [], error: [], events: [] };
  const scope = effectScope();
  const chat = scope.run(() =>
    useConvo({
      client,
      convoId: "new",
      onMessage: (e) => got.message.push(e.message.id),
      onTurnDone: (e) => got.turnDone.push(e.reason),
      onError: (e) => got.error.push(e.reason),
      onEvent: (e) => got.events.push(e.type),
    }),
  );
  await settle();
  assert.equal(client.sessions, 1, "one session started");
  assert.equal(chat.convoId.value, "new-1");
  const convo = client.convos[0];
  convo.emit("message", { message: { id: "m1", from: "ai_agent", content: "hi", created_at: "2026-11-21T10:00:00Z" } });
  convo.emit("turn_done", { type: "turn_done", reason: "ok", convo_id: "new-1", at: 1 });
  convo.emit("error", { type: "error", reason: "temporary_failure", convo_id: "new-1", at: 2 });
  assert.deepEqual(got, { message: ["m1"], turnDone: ["ok"], error: ["temporary_failure"], events: ["message", "turn_done", "error"] });
  assert.deepEqual(chat.messages.value.map((m) => m.content), ["hi"], "the store still renders them");

  const found = scope.run(() => useConvo({ client, convoId: () => Promise.resolve("found-1") }));
  await settle();
  assert.equal(found.convoId.value, "found-1", "a getter's promise is awaited");
  assert.equal(client.sessions, 1);
  scope.stop();
  await settle();
  assert.deepEqual(client.convos.map((c) => c.closed), [1, 1]);
  convo.emit("message", { message: { id: "m2", from: "ai_agent", content: "late", created_at: "2026-11-21T10:00:01Z" } });
  assert.deepEqual(got.message, ["m1"], "no callback after the scope ended");
});

test("Vue useConvo: an opening that fails in a way that may pass is tried again; a refusal stops it, and reopen() recovers", async () => {
  globalThis.window ??= globalThis;
  const { useConvo } = await import("@valet.red/sdk/vue");
  const client = recordingClient();
  const open = client.openConvo.bind(client);
  const failures = [Object.assign(new Error("startSession failed: Failed to fetch"), { name: "ValetError", code: "network" })];
  const start = client.startSession.bind(client);
  client.startSession = async () => {
    const f = failures.shift();
    if (f) throw f;
    return start();
  };
  const scope = effectScope();
  const chat = scope.run(() => useConvo({ client, convoId: "new" }));
  await settle();
  assert.equal(chat.status.value, "reconnecting", "offline: retrying, not stopped");
  assert.equal(chat.error.value?.code, "network");
  const sending = chat.send("typed offline");
  for (let i = 0; i < 100 && chat.status.value !== "connected"; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(chat.status.value, "connected");
  assert.equal(chat.convoId.value, "new-1", "one session started");
  await sending;

  // Signed out: a definite refusal stops it; reopen() tries again.
  let signedOut = true;
  client.openConvo = async (o) => {
    if (signedOut) throw Object.assign(new Error("fetchJwt: signed out"), { name: "ValetError", code: "auth" });
    return open(o);
  };
  const c2 = scope.run(() => useConvo({ client, convoId: "c2" }));
  await settle();
  assert.equal(c2.status.value, "stopped");
  assert.equal(c2.canSend.value, false);
  assert.equal(c2.cannotSend.value?.reason, "stopped");
  signedOut = false;
  await c2.reopen();
  assert.equal(c2.status.value, "connected");
  assert.equal(c2.canSend.value, true);
  scope.stop();
});
