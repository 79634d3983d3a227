// `@valet.red/sdk/testing` in a page, as Storybook runs it: the real SDK and
// store against the scripted in-memory API; no request leaves the page.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startStatic, ROOT } from "./harness.mjs";
import { join } from "node:path";

let site, browser;
before(async () => {
  site = await startStatic({ "/": join(ROOT, "tests/browser/fixtures"), "/pkg/": join(ROOT, "pkg") });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await site?.close();
});

test("the mock client in a page: a scripted conversation through the real SDK and store, nothing on the network", async () => {
  const page = await browser.context.newPage();
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(site.origin)) external.push(r.url()); });
  await page.goto(`${site.origin}/blank.html`);
  const view = await page.evaluate(async () => {
    const { createMockValet } = await import("/pkg/testing.js");
    const { createConvoStore } = await import("/pkg/index.js");
    const until = async (pred) => { for (let i = 0; i < 400 && !pred(); i++) await new Promise((r) => setTimeout(r, 25)); };
    const mock = createMockValet();
    const { convoId } = await mock.client.startSession();
    const store = createConvoStore(mock.client.openConvo({ convoId }), { streaming: true });
    await until(() => store.getState().status === "connected");
    await store.send("Hi from a story");
    await until(() => store.getState().turn.phase === "done");
    const c = mock.convo(convoId);
    c.disconnect("server_cap");
    await c.streamReply("Anything else?");
    await until(() => store.getState().messages.length === 3 && store.getState().messages[2].status === "sent");
    const out = { messages: store.getState().messages.map((m) => `${m.from}: ${m.content}`), streams: c.streams, status: store.getState().status };
    store.close();
    mock.close();
    return out;
  });
  assert.deepEqual(view.messages, ["appuser: Hi from a story", 'ai_agent: You said: "Hi from a story"', "ai_agent: Anything else?"]);
  assert.equal(view.status, "connected");
  assert.equal(view.streams, 1, "reconnected after the server's close");
  assert.deepEqual(external, [], "nothing left the page");
  await page.close();
});
