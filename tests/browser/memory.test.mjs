// Memory. A convo the app keeps no handle of (only its handlers) goes on
// delivering after a garbage collection: it lives until closed. And a
// burst the network hands over as one chunk (20,000 `message`
// frames, ~4 MB, in one write) reaches the handlers once each, in order,
// and the wasm's memory (which never shrinks: its size is the high-water)
// grows by less than 2 MB over its size after `openConvo`: the transports
// feed a large chunk in slices. Both transports; headless Chromium, a
// stand-in API that writes the burst (the delivery bench's).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, loadSdk, startStatic, ROOT } from "./harness.mjs";
import { READY, messageFrame, messageOf, startBenchApi } from "../bench/bench-api.mjs";
import { join } from "node:path";

const BURST = 20_000;
const MB = 1024 * 1024;
let browser, site, api;
let burst = () => {};
// What the stand-in has stored (its history answers with it, as the API
// would), and the number of history answers so far.
let written = 0;
let histories = 0;

before(async () => {
  browser = await launchBrowser();
  site = await startStatic({ "/": join(ROOT, "tests/browser/fixtures"), "/wasm/": join(ROOT, "target/wasm/web") });
  api = await startBenchApi(
    (res) => {
      res.write(READY);
      burst = () => {
        let all = "";
        for (let i = 1; i <= BURST; i++) all += messageFrame(i);
        written = BURST;
        res.write(all);
      };
    },
    async () => {
      histories++;
      return JSON.stringify({ messages: Array.from({ length: written }, (_, i) => messageOf(i + 1)) });
    },
  );
});
after(async () => {
  api?.close();
  await site?.close();
  await browser?.close();
});

for (const transport of ["fetch", "eventsource"]) {
  test(`a ${BURST}-message chunk keeps the wasm's high-water within 2 MB, its handle collected (${transport})`, async () => {
    written = 0;
    histories = 0;
    const page = await loadSdk(await browser.context.newPage(), site.origin);
    await page.evaluate(async ([base, transport]) => {
      const payload = btoa(JSON.stringify({ exp: 4102444800 })).replace(/=+$/, "");
      const client = new window.sdk.ValetClient({ agentId: "a", fetchJwt: () => `eyJhbGciOiJIUzI1NiJ9.${payload}.sig`, baseUrl: base, pauseOnHidden: false, transport });
      const convo = await client.openConvo({ convoId: "c" });
      window.seqs = [];
      convo.on("message", ({ message }) => window.seqs.push(message.seq));
      window.opened = window.wasmMemory.buffer.byteLength;
    }, [api.base, transport]);
    await page.waitForFunction(() => window.opened > 0);
    // The page keeps no reference to the convo: a collection must not end it.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("HeapProfiler.collectGarbage");
    await cdp.send("HeapProfiler.collectGarbage");
    // The opening's history has answered: the burst is live, not held for it.
    while (histories === 0) await new Promise((ok) => setTimeout(ok, 20));
    burst();
    await page.waitForFunction((n) => window.seqs.length >= n, BURST, { timeout: 60_000, polling: 100 });
    const { seqs, opened, now } = await page.evaluate(() => ({ seqs: window.seqs, opened: window.opened, now: window.wasmMemory.buffer.byteLength }));
    assert.deepEqual(seqs, Array.from({ length: BURST }, (_, i) => i + 1), "each once, in order");
    assert.ok(now - opened < 2 * MB, `wasm memory grew ${((now - opened) / MB).toFixed(2)} MB (from ${(opened / MB).toFixed(2)} MB)`);
    await page.close();
  });
}
