// The SDK in Node (20+): the package, installed from its tarball, loads its
// wasm from the file system and runs the quickstart against the reference
// server over real HTTP (fetch streaming; no Web Locks in Node, so tabs -
// here, clients of one process - elect over BroadcastChannel alone).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { startServer } from "../tests/browser/harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let server;
before(async () => {
  server = await startServer();
});
after(async () => server?.stop());

const until = async (what, ok, ms = 20_000) => {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
};

test("the quickstart runs in Node: a session, the agent's reply, once each, in order", async () => {
  const { ValetClient, isLoaded } = await import("@valet.red/sdk");
  const fetchJwt = async () => (await server.jwt("node-quickstart")).token;
  const valet = new ValetClient({ agentId: AGENT, fetchJwt, baseUrl: server.base });
  const { convoId } = await valet.startSession();
  assert.ok(isLoaded(), "the wasm was read from the file system");
  const convo = await valet.openConvo({ convoId });
  const seen = [];
  const off = convo.on("message", ({ message }) => seen.push(`${message.from}: ${message.content}`));
  await convo.send("Hi from Node");
  await until("the agent's reply", () => seen.length >= 2);
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would be here by now
  assert.deepEqual(seen, ["appuser: Hi from Node", 'ai_agent: You said: "Hi from Node"']);
  assert.equal(convo.status, "connected");
  off();
  convo.close();
  await until("the stream closed on the server", async () => ((await server.stats()).live_streams_by_convo[convoId] ?? 0) === 0);
});

test("two clients of one Node process share one stream, and both hear everything", async () => {
  const { ValetClient } = await import("@valet.red/sdk");
  const fetchJwt = async () => (await server.jwt("node-two")).token;
  const a = new ValetClient({ agentId: AGENT, fetchJwt, baseUrl: server.base });
  const b = new ValetClient({ agentId: AGENT, fetchJwt, baseUrl: server.base });
  const { convoId } = await a.startSession();
  const convos = [await a.openConvo({ convoId }), await b.openConvo({ convoId })];
  const seen = convos.map((c) => {
    const list = [];
    c.on("message", ({ message }) => list.push(message.id));
    return list;
  });
  await until("one stream", async () => ((await server.stats()).live_streams_by_convo[convoId] ?? 0) === 1);
  await convos[1].send("from b");
  await until("both heard the send and the reply", () => seen.every((l) => l.length >= 2));
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(seen[0], seen[1]);
  assert.equal(new Set(seen[0]).size, 2, "none twice");
  assert.equal((await server.stats()).live_streams_by_convo[convoId] ?? 0, 1, "one stream for both");
  for (const c of convos) c.close();
});

test("a script that closes its convo exits by itself (nothing left holding Node open)", async () => {
  const script = `
    const { ValetClient } = await import("@valet.red/sdk");
    const jwt = async () => (await (await fetch(${JSON.stringify(server.base)} + "/dev/jwt", { method: "POST",
      headers: { "content-type": "application/json" }, body: JSON.stringify({ source_key: "node-exit" }) })).json()).token;
    const valet = new ValetClient({ agentId: ${JSON.stringify(AGENT)}, fetchJwt: jwt, baseUrl: ${JSON.stringify(server.base)} });
    const { convoId } = await valet.startSession();
    const convo = await valet.openConvo({ convoId });
    await convo.send("bye");
    convo.close();
    console.log("closed");
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: import.meta.dirname, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const code = await new Promise((ok, fail) => {
    const timer = setTimeout(() => { child.kill(); fail(new Error(`still running 20 s after: ${out}`)); }, 20_000);
    child.on("exit", (c) => { clearTimeout(timer); ok(c); });
  });
  assert.equal(code, 0);
  assert.match(out, /closed/);
});

test("the API and the token endpoint unreachable when the convo opens, then back: it connects by itself and a send made meanwhile is stored once", async () => {
  const { ValetClient } = await import("@valet.red/sdk");
  const { createConvoStore } = await import("@valet.red/sdk/store");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "valet-node-offline-"));
  const own = await startServer([], { db: join(dir, "valet.db") });
  try {
    const convoId = await own.session("node-offline");
    await own.kill();
    let calls = 0;
    const fetchJwt = async () => {
      calls++;
      const res = await fetch(`${own.base}/dev/jwt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ source_key: "node-offline" }),
      });
      return (await res.json()).token;
    };
    const valet = new ValetClient({ agentId: AGENT, fetchJwt, baseUrl: own.base });
    const store = createConvoStore(() => valet.openConvo({ convoId }));
    const statuses = [];
    store.subscribe((s) => statuses.push(s.status));
    const sent = store.send("typed while the server was down");
    await until("reconnecting", () => store.getState().status === "reconnecting");
    await new Promise((r) => setTimeout(r, 2_000));
    assert.ok(!statuses.includes("stopped"), statuses.join(" "));
    assert.ok(calls >= 2, `fetchJwt tried again: ${calls}`);
    assert.equal(store.getState().error?.code, "network");
    await own.restart();
    await sent;
    await until("connected", () => store.getState().status === "connected", 40_000);
    await until("the agent's reply", () => store.getState().messages.length >= 2, 40_000);
    const stored = (await own.history("node-offline", convoId)).filter((m) => m.from === "appuser").map((m) => m.content);
    assert.deepEqual(stored, ["typed while the server was down"], "stored once");
    store.close();
  } finally {
    await own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("signed out in Node: openConvo rejects with auth, the store is stopped (canSend false), and reopen() recovers once signed in", async () => {
  const { ValetClient, ValetError } = await import("@valet.red/sdk");
  const { createConvoStore } = await import("@valet.red/sdk/store");
  let signedOut = true;
  const fetchJwt = async () => {
    if (signedOut) throw new ValetError("no session", { code: "auth" });
    return (await server.jwt("node-signed-out")).token;
  };
  const valet = new ValetClient({ agentId: AGENT, fetchJwt, baseUrl: server.base });
  const convoId = await server.session("node-signed-out");
  await assert.rejects(valet.openConvo({ convoId }), (e) => e instanceof ValetError && e.code === "auth");
  const store = createConvoStore(() => valet.openConvo({ convoId }));
  await until("stopped", () => store.getState().status === "stopped");
  assert.equal(store.getState().canSend, false);
  assert.deepEqual([store.getState().cannotSend?.reason, store.getState().cannotSend?.error?.code], ["stopped", "auth"]);
  signedOut = false;
  await store.reopen();
  await until("connected", () => store.getState().status === "connected");
  await store.send("signed in again");
  await until("the agent's reply", () => store.getState().messages.length >= 2);
  store.close();
});
