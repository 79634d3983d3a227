// The framework-agnostic store (pkg/store.js), natively in Node, over a
// scripted stand-in for a Convo: its events are the SDK's, fed by hand.
// (The browser tests run the same store over the real SDK and server.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { createConvoStore, resolveConvoSpec, retainConvoStore } from "../../pkg/store.js";

/** A Convo's surface: on/emit, send (resolved or refused by the test), close. */
class ScriptedConvo {
  constructor(convoId = "c1") {
    this.convoId = convoId;
    this.status = "connected";
    this.role = "leader";
    this.handlers = new Map();
    this.sent = [];
    this.closed = 0;
  }
  on(event, handler) {
    const set = this.handlers.get(event) ?? new Set();
    set.add(handler);
    this.handlers.set(event, set);
    return () => set.delete(handler);
  }
  emit(event, payload) {
    if (event === "status") this.status = payload.status; // as the SDK: the getter first, then the event
    for (const h of this.handlers.get(event) ?? []) h(payload);
  }
  listeners() {
    return [...this.handlers.values()].reduce((n, s) => n + s.size, 0);
  }
  send(text, options) {
    let settle;
    const done = new Promise((ok, fail) => (settle = { ok, fail }));
    this.sent.push({ text, key: options?.idempotencyKey, ...settle });
    return done;
  }
  close() {
    this.closed += 1;
  }
  /** The server's copy of a message, as the `message` event carries it. */
  deliver(id, from, content) {
    const message = { id, from, content, created_at: "2026-11-21T10:00:00Z", participant: null, files: [], turn_number: 1 };
    this.emit("message", { type: "message", message });
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const view = (store) => store.getState().messages.map((m) => [/^[0-9a-f]{8}-[0-9a-f]{4}-4/.test(m.key) ? "local" : m.key, m.status, m.content]);

async function openStore() {
  const convo = new ScriptedConvo();
  const store = createConvoStore(convo);
  await tick();
  return { convo, store };
}

test("a sent message shows at once as pending, and the server's copy takes its place and key", async () => {
  const { convo, store } = await openStore();
  convo.deliver("m1", "ai_agent", "Hello!");
  const sending = store.send("I need help");
  assert.deepEqual(view(store), [["m1", "sent", "Hello!"], ["local", "pending", "I need help"]]);
  const key = store.getState().messages[1].key;
  convo.sent[0].ok();
  await sending;
  assert.deepEqual(view(store), [["m1", "sent", "Hello!"], ["local", "pending", "I need help"]], "no copy yet: still pending");
  convo.deliver("m2", "appuser", "I need help");
  convo.deliver("m3", "ai_agent", "Sure");
  assert.deepEqual(view(store), [["m1", "sent", "Hello!"], ["local", "sent", "I need help"], ["m3", "sent", "Sure"]]);
  const mine = store.getState().messages[1];
  assert.equal(mine.key, key, "same key: the view keeps the bubble");
  assert.equal(mine.id, "m2");
});

test("a send's key is its idempotency key: a UUID, or the one the app gave", async () => {
  const { convo, store } = await openStore();
  void store.send("one");
  void store.send("two", { idempotencyKey: "app-key-2" });
  const keys = store.getState().messages.map((m) => m.key);
  assert.match(keys[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(keys[1], "app-key-2");
  await tick();
  assert.deepEqual(convo.sent.map((s) => s.key), keys, "each send carries its bubble's key");
});

test("sends restored after a reload: pending under their keys, then sent in place, or failed and retried with the same key", async () => {
  const { convo, store } = await openStore();
  const restored = (key, text, state, error) => convo.emit("restored_send", { key, text, created_at: "2026-12-07T04:00:00.000Z", state, ...(error ? { error } : {}) });
  restored("k-1", "from the train", "pending");
  restored("k-2", "and this", "pending");
  restored("k-1", "from the train", "pending"); // told again (another opening): still one
  assert.deepEqual(view(store), [["k-1", "pending", "from the train"], ["k-2", "pending", "and this"]]);
  assert.equal(store.getState().messages[0].createdAt, "2026-12-07T04:00:00.000Z");
  // The first is stored: its copy takes its place and key.
  restored("k-1", "from the train", "sent");
  convo.deliver("m1", "appuser", "from the train");
  // The second is refused for good.
  const error = Object.assign(new Error("send failed with HTTP 422"), { name: "ValetError", code: "http" });
  restored("k-2", "and this", "failed", error);
  assert.deepEqual(view(store), [["k-1", "sent", "from the train"], ["k-2", "failed", "and this"]]);
  assert.equal(store.getState().messages[1].error, error);
  // Retried by its key, with that key.
  const retry = store.retry("k-2");
  assert.deepEqual(view(store)[1], ["k-2", "pending", "and this"]);
  await tick();
  assert.deepEqual(convo.sent.map((s) => [s.text, s.key]), [["and this", "k-2"]]);
  convo.sent[0].ok();
  await retry;
  convo.deliver("m2", "appuser", "and this");
  assert.deepEqual(view(store), [["k-1", "sent", "from the train"], ["k-2", "sent", "and this"]]);
});

test("the server's copy may come before send() resolves: still one bubble", async () => {
  const { convo, store } = await openStore();
  const sending = store.send("fast");
  convo.deliver("m1", "appuser", "fast");
  convo.sent[0].ok();
  await sending;
  assert.deepEqual(view(store), [["local", "sent", "fast"]]);
});

test("equal texts pair up with their copies in order; a message from another tab is just a message", async () => {
  const { convo, store } = await openStore();
  store.send("again");
  store.send("again");
  convo.deliver("m1", "appuser", "again");
  assert.deepEqual(view(store), [["local", "sent", "again"], ["local", "pending", "again"]]);
  convo.deliver("m2", "appuser", "from my other tab");
  convo.deliver("m3", "appuser", "again");
  assert.deepEqual(view(store), [
    ["local", "sent", "again"],
    ["m2", "sent", "from my other tab"],
    ["local", "sent", "again"],
  ]);
  const keys = store.getState().messages.map((m) => m.key);
  assert.equal(new Set(keys).size, 3, "keys are unique");
});

test("a refused send turns failed with the error; retry sends it again", async () => {
  const { convo, store } = await openStore();
  const sending = store.send("hi");
  const refusal = Object.assign(new Error("slow down"), { name: "ValetError", code: "rate_limited", retryAfterSeconds: 2 });
  convo.sent[0].fail(refusal);
  await assert.rejects(sending, (e) => e.code === "rate_limited");
  const [failed] = store.getState().messages;
  assert.equal(failed.status, "failed");
  assert.equal(failed.error.code, "rate_limited");
  assert.equal(store.getState().error.code, "rate_limited");
  const retrying = store.retry(failed.key);
  assert.deepEqual(view(store), [["local", "pending", "hi"]]);
  assert.equal(convo.sent.length, 2);
  convo.sent[1].ok();
  await retrying;
  assert.equal(store.getState().error, null, "a successful send clears the error");
  convo.deliver("m1", "appuser", "hi");
  assert.deepEqual(view(store), [["local", "sent", "hi"]]);
});

test("each message once, even if delivered twice", async () => {
  const { convo, store } = await openStore();
  convo.deliver("m1", "ai_agent", "one");
  convo.deliver("m1", "ai_agent", "one");
  assert.deepEqual(view(store), [["m1", "sent", "one"]]);
});

test("typing starts and stops; a message, turn_done, convo_state or server error ends it", async () => {
  const { convo, store } = await openStore();
  const start = () => convo.emit("typing", { type: "typing", kind: "thinking", state: "start", label: "Thinking…" });
  start();
  assert.deepEqual(store.getState().typing, { kind: "thinking", label: "Thinking…" });
  convo.emit("typing", { type: "typing", kind: "thinking", state: "stop" });
  assert.equal(store.getState().typing, null);
  for (const end of [
    () => convo.deliver("m1", "ai_agent", "x"),
    () => convo.emit("turn_done", { type: "turn_done", reason: "ok" }),
    () => convo.emit("convo_state", { type: "convo_state", state: "escalated" }),
    () => convo.emit("error", { type: "error", convo_id: "c1", reason: "temporary_failure", at: 1 }),
  ]) {
    start();
    end();
    assert.equal(store.getState().typing, null);
  }
  assert.equal(store.getState().convoState, "escalated");
});

test("status, role, reconnects and errors follow the convo's events", async () => {
  const { convo, store } = await openStore();
  assert.equal(store.getState().convoId, "c1");
  assert.equal(store.getState().status, "connected");
  assert.equal(store.getState().role, "leader");
  convo.emit("error", { phase: "stream", error: { code: "network", message: "dropped" } });
  convo.emit("status", { status: "reconnecting", attempt: 1, retry_in_ms: 250 });
  assert.equal(store.getState().status, "reconnecting");
  assert.equal(store.getState().error.code, "network");
  convo.emit("status", { status: "connected", attempt: 2 });
  assert.equal(store.getState().reconnects, 1);
  assert.equal(store.getState().error, null, "reconnected: the error is over");
  convo.emit("role", { role: "follower", generation: 2 });
  assert.equal(store.getState().role, "follower");
});

test("the snapshot is the same object until something changes; listeners hear each change", async () => {
  const { convo, store } = await openStore();
  const a = store.getState();
  assert.equal(store.getState(), a);
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a.messages));
  let calls = 0;
  const off = store.subscribe(() => (calls += 1));
  assert.equal(calls, 1, "called at once (Svelte's store contract)");
  calls = 0;
  convo.deliver("m1", "ai_agent", "x");
  assert.equal(calls, 1);
  assert.notEqual(store.getState(), a);
  const kept = store.getState().messages[0];
  convo.deliver("m2", "ai_agent", "y");
  assert.equal(store.getState().messages[0], kept, "unchanged messages keep their identity");
  off();
  convo.deliver("m3", "ai_agent", "z");
  assert.equal(calls, 2, "no call after unsubscribe");
});

test("over the promise of a convo: connecting, sends wait for it; a refusal stops the store", async () => {
  let open;
  const store = createConvoStore(new Promise((ok) => (open = ok)));
  assert.equal(store.getState().status, "connecting");
  assert.equal(store.getState().convoId, null);
  const sending = store.send("early");
  assert.deepEqual(view(store), [["local", "pending", "early"]]);
  const convo = new ScriptedConvo();
  open(convo);
  await tick();
  assert.deepEqual(convo.sent.map((s) => s.text), ["early"]);
  convo.sent[0].ok();
  await sending;

  const refused = createConvoStore(Promise.reject(Object.assign(new Error("no such convo"), { code: "http", status: 404 })));
  const lost = refused.send("never");
  await assert.rejects(lost, (e) => e.status === 404);
  assert.equal(refused.getState().status, "stopped");
  assert.equal(refused.getState().error.status, 404);
  assert.deepEqual(view(refused), [["local", "failed", "never"]], "the text is kept, marked failed");
});

test("the convo state from options, unless an event says otherwise", async () => {
  const convo = new ScriptedConvo();
  const store = createConvoStore(convo, { convoState: Promise.resolve("resolved") });
  await tick();
  assert.equal(store.getState().convoState, "resolved");
  const late = createConvoStore(convo, { convoState: new Promise((ok) => setTimeout(() => ok("open"), 5)) });
  await tick();
  convo.emit("convo_state", { type: "convo_state", state: "escalated" });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(late.getState().convoState, "escalated");
});

test("close() closes the convo, drops its handlers and refuses sends; a convo resolved after close is closed", async () => {
  const { convo, store } = await openStore();
  assert.ok(convo.listeners() > 0);
  store.close();
  assert.equal(convo.closed, 1);
  assert.equal(convo.listeners(), 0);
  assert.equal(store.getState().status, "closed");
  await assert.rejects(store.send("x"), (e) => e.code === "closed");

  let open;
  const early = createConvoStore(new Promise((ok) => (open = ok)));
  early.close();
  const late = new ScriptedConvo();
  open(late);
  await tick();
  assert.equal(late.closed, 1);
  assert.equal(late.listeners(), 0);
});

test("retainConvoStore: mount, unmount, mount in one task opens one convo; the last release closes it", async () => {
  const opened = [];
  const client = {
    openConvo: ({ convoId }) => {
      const c = new ScriptedConvo(convoId);
      opened.push(c);
      return Promise.resolve(c);
    },
    listConvos: async () => [{ id: "c1", state: "open" }],
  };
  const a = retainConvoStore(client, "c1");
  a.release();
  const b = retainConvoStore(client, "c1");
  const other = retainConvoStore(client, "c1");
  assert.equal(b.store, a.store, "one store per (client, convo)");
  await tick();
  assert.equal(opened.length, 1);
  assert.equal(b.store.getState().convoState, "open");
  b.release();
  b.release(); // twice is once
  await tick();
  assert.equal(opened[0].closed, 0, "still held by the other view");
  other.release();
  await tick();
  assert.equal(opened[0].closed, 1);
  assert.equal(b.store.getState().status, "closed");
  const again = retainConvoStore(client, "c1");
  assert.notEqual(again.store, b.store, "a closed store is not handed out again");
  assert.equal(opened.length, 2);
  again.release();
});

test("a server error frame becomes the store's error: a ValetError with code `server` and the frame in body", async () => {
  const { ValetError } = await import("../../pkg/error.js");
  const { convo, store } = await openStore();
  const frame = { type: "error", convo_id: "c1", reason: "temporary_failure", at: 1 };
  convo.emit("error", frame);
  const error = store.getState().error;
  assert.ok(error instanceof ValetError);
  assert.deepEqual([error.code, error.body], ["server", frame]);
});

test("Svelte's store contract: subscribe calls back at once with the snapshot, then with each new one", async () => {
  const { convo, store } = await openStore();
  const seen = [];
  const off = store.subscribe((state) => seen.push(state));
  assert.deepEqual(seen, [store.getState()], "at once, with the current snapshot");
  convo.deliver("m1", "ai_agent", "hello");
  assert.equal(seen.length, 2);
  assert.equal(seen[1], store.getState());
  assert.deepEqual(seen[1].messages.map((m) => m.content), ["hello"]);
  off();
});

test("the agent's failure report stays through a send and a reconnect, until the agent completes a turn", async () => {
  const { convo, store } = await openStore();
  convo.emit("error", { type: "error", convo_id: "c1", reason: "temporary_failure", at: 1 });
  assert.equal(store.getState().error.code, "server");
  const sending = store.send("again");
  await tick();
  convo.sent.at(-1).ok();
  await sending;
  assert.equal(store.getState().error?.code, "server", "a send that went through does not hide it");
  convo.emit("status", { status: "connected", attempt: 2 });
  assert.equal(store.getState().error?.code, "server", "nor does a reconnect");
  convo.emit("turn_done", { type: "turn_done", convo_id: "c1", reason: "temporary_failure", at: 2 });
  assert.equal(store.getState().error?.code, "server", "a failed turn does not end it");
  convo.emit("turn_done", { type: "turn_done", convo_id: "c1", reason: "ok", at: 3 });
  assert.equal(store.getState().error, null, "a completed turn does");
  // A connection error is still cleared by a send that goes through.
  convo.emit("error", { phase: "stream", stage: "stream", error: { code: "network", message: "dropped" } });
  const more = store.send("once more");
  await tick();
  convo.sent.at(-1).ok();
  await more;
  assert.equal(store.getState().error, null);
});

test("the turn: idle, thinking, typing, done with its reason; a send starts a new one", async () => {
  const { convo, store } = await openStore();
  assert.deepEqual(store.getState().turn, { phase: "idle", reason: null, retryAfterSeconds: null });
  convo.emit("typing", { type: "typing", kind: "thinking", state: "start", label: "Thinking…", convo_id: "c1" });
  assert.equal(store.getState().turn.phase, "thinking");
  convo.emit("typing", { type: "typing", kind: "typing", state: "start", label: "", convo_id: "c1" });
  assert.equal(store.getState().turn.phase, "typing");
  assert.equal(store.getState().typing.label, null, "an empty label is no label");
  convo.emit("turn_done", { type: "turn_done", convo_id: "c1", reason: "rate_limited", at: 1, retry_after_seconds: 30 });
  assert.deepEqual(store.getState().turn, { phase: "done", reason: "rate_limited", retryAfterSeconds: 30 });
  store.send("next").catch(() => {});
  assert.deepEqual(store.getState().turn, { phase: "idle", reason: null, retryAfterSeconds: null });
});

test("canSend: false with the server's text while the convo is closed, true again when it reopens", async () => {
  const { convo, store } = await openStore();
  assert.deepEqual([store.getState().canSend, store.getState().cannotSend], [true, null]);
  const state = (state, prev, text) => ({ type: "convo_state", agent_id: "a", convo_id: "c1", state, prev_state: prev, closed_user_message: text });
  convo.emit("convo_state", state("escalated", "open", "A teammate is taking it from here."));
  assert.equal(store.getState().convoStateText, "A teammate is taking it from here.");
  assert.equal(store.getState().canSend, true, "an escalated convo takes messages");
  convo.emit("convo_state", state("resolved", "escalated", "This conversation was resolved."));
  assert.equal(store.getState().canSend, false);
  assert.deepEqual(store.getState().cannotSend, { reason: "closed", text: "This conversation was resolved.", error: null });
  convo.emit("convo_state", state("open", "resolved", null));
  assert.deepEqual([store.getState().canSend, store.getState().cannotSend, store.getState().convoStateText], [true, null, null]);
});

test("canSend: false from the start while the user is locked out (startSession's lockout); a lapsed lockout does not block", async () => {
  const { createConvoStore } = await import("../../pkg/store.js");
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const past = new Date(Date.now() - 1000).toISOString();
  const lockout = (expires_at) => ({ locked_out: true, expires_at, permanent: expires_at === null, reason: "rage", user_message: "Locked until later." });
  const locked = createConvoStore(new ScriptedConvo(), { lockout: lockout(future) });
  assert.deepEqual([locked.getState().canSend, locked.getState().cannotSend], [false, { reason: "locked_out", text: "Locked until later.", error: null }]);
  const forever = createConvoStore(new ScriptedConvo(), { lockout: lockout(null) });
  assert.equal(forever.getState().canSend, false);
  const lapsed = createConvoStore(new ScriptedConvo(), { lockout: lockout(past) });
  assert.equal(lapsed.getState().canSend, true);
});

test("store.on: handlers registered before the convo opens get its events after the store's state changed; off stops them", async () => {
  const convo = new ScriptedConvo();
  let resolve;
  const store = createConvoStore(new Promise((ok) => (resolve = ok)));
  const seen = [];
  const off = store.on("message", (e) => seen.push([e.message.id, store.getState().messages.length]));
  store.on("turn_done", (e) => seen.push(["turn_done", e.reason]));
  resolve(convo);
  await tick();
  convo.deliver("m1", "ai_agent", "hi");
  convo.emit("turn_done", { type: "turn_done", reason: "ok" });
  off();
  convo.deliver("m2", "ai_agent", "again");
  await tick();
  assert.deepEqual(seen, [["m1", 1], ["turn_done", "ok"]], "the state had the message when the handler ran; none after off()");
  store.close();
  assert.equal(convo.listeners(), 0, "close() drops the store's handlers on the convo");
});

test('resolveConvoSpec: an id is itself, "new" starts a session (with its lockout), a function is called', async () => {
  const lockout = { locked: false };
  const client = { starts: 0, async startSession() { this.starts++; return { convoId: "n1", lockout }; }, openConvo() {} };
  assert.deepEqual(await resolveConvoSpec(client, "c9"), { convoId: "c9" });
  assert.deepEqual(await resolveConvoSpec(client, "new"), { convoId: "n1", lockout });
  assert.deepEqual(await resolveConvoSpec(client, async () => "f1"), { convoId: "f1" });
  assert.deepEqual(await resolveConvoSpec(client, () => ({ convoId: "f2", lockout: null })), { convoId: "f2", lockout: null });
  assert.equal(client.starts, 1);
  await assert.rejects(resolveConvoSpec({ openConvo() {} }, "new"), (e) => e.code === "invalid_argument");
});

test("the opening's statuses replayed after attach count no reconnect; a real drop and return does", async () => {
  // As the SDK does: the convo is connected when openConvo resolves, and
  // the events of the opening (connecting, connected) reach handlers after.
  const convo = new ScriptedConvo();
  const store = createConvoStore(convo);
  await tick();
  for (const h of convo.handlers.get("status")) h({ status: "connecting", attempt: 1 });
  for (const h of convo.handlers.get("status")) h({ status: "connected", attempt: 1 });
  assert.equal(store.getState().status, "connected");
  assert.equal(store.getState().reconnects, 0, "the first connection is no reconnect");
  const before = store.getState();
  convo.emit("status", { status: "connected", attempt: 1 });
  assert.equal(store.getState(), before, "the same status again changes nothing");
  convo.emit("status", { status: "reconnecting", attempt: 2, retry_in_ms: 100 });
  convo.emit("status", { status: "connected", attempt: 2 });
  assert.equal(store.getState().reconnects, 1, "a real drop and return counts");
});

test("streaming: a reply being written grows in place, and the completed message takes its key; without the option, nothing changes", async () => {
  const delta = (index, text, id = "r1") => ({ type: "message_delta", agent_id: "a", convo_id: "c1", message_id: id, index, delta: text });
  const convo = new ScriptedConvo();
  const store = createConvoStore(convo, { streaming: true });
  await tick();
  convo.deliver("m1", "appuser", "Hi");
  convo.emit("typing", { type: "typing", kind: "thinking", state: "start", label: "", convo_id: "c1" });
  convo.emit("delta", delta(0, "You "));
  assert.deepEqual(view(store), [["m1", "sent", "Hi"], ["r1", "streaming", "You "]]);
  assert.equal(store.getState().typing, null, "the text shows: no thinking indicator over it");
  convo.emit("delta", delta(2, "Hi"));
  assert.deepEqual(view(store).at(-1), ["r1", "streaming", "You "], "a piece after a missing one waits");
  convo.emit("delta", delta(1, "said: "));
  convo.emit("delta", delta(1, "said: "));
  assert.deepEqual(view(store).at(-1), ["r1", "streaming", "You said: Hi"], "in order, each piece once");
  const before = store.getState().messages.at(-1);
  convo.deliver("r1", "ai_agent", "You said: Hi");
  assert.deepEqual(view(store), [["m1", "sent", "Hi"], ["r1", "sent", "You said: Hi"]], "the completed message in its place, once");
  assert.equal(before.key, store.getState().messages.at(-1).key, "same key: no flicker");
  convo.emit("delta", delta(3, "late"));
  assert.equal(store.getState().messages.length, 2, "a piece after the message changes nothing");

  // A reply that never completes goes at the end of the turn.
  convo.emit("delta", delta(0, "half", "r2"));
  assert.equal(view(store).at(-1)[1], "streaming");
  convo.emit("turn_done", { type: "turn_done", convo_id: "c1", reason: "temporary_failure", at: 1 });
  assert.deepEqual(view(store).map((m) => m[0]), ["m1", "r1"]);

  const scripted = new ScriptedConvo();
  const off = createConvoStore(scripted);
  await tick();
  scripted.emit("delta", delta(0, "ignored"));
  assert.deepEqual(view(off), [], "without `streaming`, deltas show nothing");
  off.close();
  store.close();
});

const valetError = (code, message, fields = {}) => Object.assign(new Error(message), { name: "ValetError", code, ...fields });

test("an opener that fails in a way that may pass is tried again (reconnecting, with the error); sends made meanwhile wait and go once", async () => {
  const failures = [valetError("network", "startSession failed: Failed to fetch"), valetError("http", "HTTP 503", { status: 503 }), new TypeError("Failed to fetch")];
  let calls = 0;
  const convo = new ScriptedConvo();
  const store = createConvoStore(() => {
    calls += 1;
    return calls <= failures.length ? Promise.reject(failures[calls - 1]) : Promise.resolve(convo);
  });
  const states = [];
  store.subscribe((s) => states.push(s.status));
  const sending = store.send("typed offline");
  await tick();
  assert.equal(store.getState().status, "reconnecting");
  assert.equal(store.getState().error.code, "network");
  assert.equal(store.getState().canSend, true, "it waits: a send may be made");
  const deadline = Date.now() + 20_000;
  while (convo.sent.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls, 4, "tried until it opened");
  assert.ok(!states.includes("stopped"), states.join(" "));
  assert.deepEqual(convo.sent.map((s) => s.text), ["typed offline"], "sent once, after the opening");
  convo.sent[0].ok();
  await sending;
  store.close();
});

test("a definite refusal stops the store (canSend false, cannotSend stopped with the error); reopen() calls the opener again", async () => {
  let signedIn = false;
  let calls = 0;
  const convo = new ScriptedConvo();
  const store = createConvoStore(() => {
    calls += 1;
    return signedIn ? convo : Promise.reject(valetError("auth", "fetchJwt: signed out: no session"));
  });
  await tick();
  const stopped = store.getState();
  assert.equal(stopped.status, "stopped");
  assert.equal(stopped.canSend, false);
  assert.equal(stopped.cannotSend.reason, "stopped");
  assert.equal(stopped.cannotSend.error.code, "auth");
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(calls, 1, "not tried again");
  // A send anyway fails at once: the bubble, and a handled rejection.
  await assert.rejects(store.send("while stopped"), (e) => e.code === "auth");
  signedIn = true;
  await store.reopen();
  assert.equal(calls, 2);
  assert.equal(store.getState().status, "connected");
  assert.equal(store.getState().canSend, true);
  assert.equal(store.getState().error, null);
  // Stopped later (the convo's own status): reopen closes it and opens anew.
  convo.emit("status", { status: "stopped" });
  assert.equal(store.getState().cannotSend.reason, "stopped");
  const made = [];
  const next = createConvoStore(() => {
    made.push(new ScriptedConvo());
    return made.at(-1);
  });
  await tick();
  made[0].emit("status", { status: "stopped" });
  await next.reopen();
  assert.equal(made.length, 2, "opened anew");
  assert.equal(made[0].closed, 1, "the stopped convo is closed");
  assert.equal(made[0].listeners(), 0, "and no longer followed");
  assert.equal(next.getState().status, "connected");
  store.close();
  next.close();
  // Without an opener and no convo: reopen says why.
  const given = createConvoStore(Promise.reject(valetError("http", "not found", { status: 404 })));
  await tick();
  await assert.rejects(given.reopen(), (e) => e.code === "invalid_argument");
});

test("send and retry rejections are handled: a UI that ignores the promise leaves no unhandled rejection", async () => {
  const unhandled = [];
  const onUnhandled = (e) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  try {
    const { convo, store } = await openStore();
    store.send("refused"); // ignored, as `onClick={() => send(text)}` does
    convo.sent[0].fail(valetError("http", "bad request", { status: 400 }));
    await new Promise((r) => setTimeout(r, 20));
    const key = store.getState().messages[0].key;
    assert.equal(store.getState().messages[0].status, "failed");
    store.retry(key);
    convo.sent[1].fail(valetError("http", "bad request", { status: 400 }));
    store.close();
    store.send("after close");
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("the agent's failure report is not shown past a later turn's end, nor on a closed convo", async () => {
  const { convo, store } = await openStore();
  const report = () => {
    convo.emit("error", { type: "error", convo_id: "c1", reason: "temporary_failure", at: 1 });
    convo.emit("turn_done", { type: "turn_done", convo_id: "c1", reason: "temporary_failure", at: 2 });
  };
  report();
  assert.equal(store.getState().error?.code, "server", "its own turn's end keeps it");
  const sending = store.send("/rate_limited");
  await tick();
  convo.sent.at(-1).ok();
  await sending;
  assert.equal(store.getState().error?.code, "server", "shown while the next turn runs");
  convo.emit("turn_done", { type: "turn_done", convo_id: "c1", reason: "rate_limited", at: 3, retry_after_seconds: 30 });
  assert.equal(store.getState().error, null, "a later turn ended: the report is past");
  assert.deepEqual([store.getState().turn.reason, store.getState().turn.retryAfterSeconds], ["rate_limited", 30]);
  report();
  convo.emit("convo_state", { type: "convo_state", state: "resolved", prev_state: "open", closed_user_message: "Resolved." });
  assert.equal(store.getState().error, null, "a closed convo shows its closed state");
  store.close();
});
