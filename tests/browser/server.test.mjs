// The reference server as a browser sees it: CORS grants for listed
// origins only, the SSE stream over fetch, and the wasm build loading.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, launchBrowser, startServer, startStatic } from "./harness.mjs";

let server, allowed, denied, browser;

before(async () => {
  server = await startServer();
  const mounts = { "/": join(ROOT, "tests/browser/fixtures"), "/wasm/": join(ROOT, "target/wasm/web") };
  allowed = await startStatic(mounts, "127.0.0.1");
  denied = await startStatic(mounts, "127.0.0.2"); // loopback, but not on the dev company's list
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await allowed?.close();
  await denied?.close();
  await server?.stop();
});

test("a page on an allowed origin chats with the dev agent across origins", async () => {
  const page = await browser.context.newPage();
  await page.goto(`${allowed.origin}/blank.html`);
  const result = await page.evaluate(async (base) => {
    const { token } = await (await fetch(`${base}/dev/jwt`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ source_key: "browser-user" }),
    })).json();
    const auth = { authorization: `Bearer ${token}` };
    const { convo_id } = await (await fetch(`${base}/api/v2/sessions`, { method: "POST", headers: auth })).json();
    const res = await fetch(`${base}/api/v2/agent_convos/${convo_id}/events`, { headers: { ...auth, accept: "text/event-stream" } });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const events = [];
    let buf = "", sent = false;
    while (!events.includes("turn_done")) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name === "message") events.push(`message:${JSON.parse(data).message.from}`);
        else if (name && name !== "ping") events.push(name);
      }
      if (!sent && events.includes("ready")) {
        sent = true;
        const r = await fetch(`${base}/api/v2/agent_convos/${convo_id}/stream_message`, {
          method: "POST", headers: { ...auth, "content-type": "application/json", "idempotency-key": "k1" },
          body: JSON.stringify({ text: "hello from a browser" }),
        });
        events.push(`send:${r.status}`);
      }
    }
    reader.cancel();
    return { events };
  }, server.base);
  assert.deepEqual(result.events, ["ready", "send:200", "message:appuser", "typing", "message:ai_agent", "typing", "turn_done"]);
  await page.close();
});

test("a page can read Retry-After and the 429 body across origins", async () => {
  const page = await browser.context.newPage();
  await page.goto(`${allowed.origin}/blank.html`);
  const { token } = await server.jwt("retry-user");
  await server.admin("/faults", { route: "list_convos", status: 429, retry_after: 9 });
  const got = await page.evaluate(async ([base, token]) => {
    const res = await fetch(`${base}/api/v2/agent_convos`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), code: (await res.json()).code };
  }, [server.base, token]);
  assert.deepEqual(got, { status: 429, retryAfter: "9", code: "injected_fault" });
  await page.close();
});

test("a page on an unlisted origin gets no CORS grant and the server does nothing", async () => {
  const page = await browser.context.newPage();
  await page.goto(`${denied.origin}/blank.html`);
  const { token } = await server.jwt("denied-user");
  const before = await server.stats();
  const error = await page.evaluate(async ([base, token]) => {
    try {
      await fetch(`${base}/api/v2/sessions`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      return "no error";
    } catch (e) {
      return e.name;
    }
  }, [server.base, token]);
  assert.equal(error, "TypeError");
  const after = await server.stats();
  assert.equal(after.convos, before.convos, "no convo was created");
  assert.equal(after.requests.sessions ?? 0, before.requests.sessions ?? 0, "the preflight stopped the request");
  await page.close();
});

test("the wasm build loads in the browser", async () => {
  const page = await browser.context.newPage();
  await page.goto(`${allowed.origin}/blank.html`);
  const version = await page.evaluate(async () => {
    const mod = await import("/wasm/valet_wasm.js");
    await mod.default();
    return mod.sdkVersion();
  });
  assert.match(version, /^\d+\.\d+\.\d+$/);
  await page.close();
});
