// make bench: what the SDK keeps in memory as a convo gets long. One page
// of headless Chromium opens a convo (fetch transport); its stream sends
// 100 000 `message` frames (seq 1, 2, ...), then 100 000 more, each
// delivered to a handler that keeps nothing. Measured right after
// `openConvo` resolved, after the first 100 000 and after 200 000: the wasm
// memory (it never shrinks, so it is also the peak so far, allocator
// high-water included) and the JS heap after a forced GC. The growth from
// 100 000 to 200 000 is what each message costs for ever.
import { launchBrowser } from "../browser/harness.mjs";
import { READY, messageFrame, messageOf, openBenchPage, startBenchApi, startBenchSite } from "./bench-api.mjs";

const HALF = Number(process.env.BENCH_MEMORY_MESSAGES ?? 100_000);

// The stream waits after `ready`, and after the first half, until told.
const gates = [];
const gate = () => { let open; gates.push(new Promise((ok) => { open = ok; })); return open; };

async function write(res, from, to) {
  // In slices, minding back-pressure: no 60 MB string in this process.
  for (let i = from; i <= to; i += 1000) {
    let slice = "";
    for (let k = i; k < Math.min(i + 1000, to + 1); k++) slice += messageFrame(k);
    if (!res.write(slice)) await new Promise((ok) => res.once("drain", ok));
  }
}

const fixtures = await startBenchSite();
const api = await startBenchApi(async (res) => {
  res.write(READY);
  await gates[0];
  await write(res, 1, HALF);
  await gates[1];
  await write(res, HALF + 1, 2 * HALF);
  res.end();
});
const base = api.base;

const browser = await launchBrowser();
/** A bench page, and what its SDK holds now: wasm memory and the JS heap after a GC. */
async function measuredPage() {
  const page = await openBenchPage(browser, fixtures.origin);
  const cdp = await page.context().newCDPSession(page);
  const measure = async () => {
    await new Promise((ok) => setTimeout(ok, 300));
    await cdp.send("HeapProfiler.collectGarbage");
    const js = (await cdp.send("Runtime.getHeapUsage")).usedSize;
    return { wasm: await page.evaluate(() => window.wasmMemory.buffer.byteLength), js };
  };
  return { page, measure };
}
const { page, measure } = await measuredPage();
const opens = [gate(), gate()];
await page.evaluate(([base, n]) => window.benchStart("valet-sdk (ours, fetch)", base, n), [base, 2 * HALF]);
const rows = [["after openConvo", await measure()]];
opens[0]();
await page.waitForFunction((n) => window.progress() >= n, HALF, { timeout: 300_000, polling: 100 });
rows.push([`after ${HALF.toLocaleString("en")} messages`, await measure()]);
opens[1]();
const r = await page.evaluate(() => window.done);
if (r.count !== 2 * HALF) throw new Error(`${r.count} of ${2 * HALF} messages`);
rows.push([`after ${(2 * HALF).toLocaleString("en")} messages`, await measure()]);

// The burst: a convo with 5 messages in its history, which answers only
// once 100 000 live frames (seq 6, 7, ...) have been written. The SDK can
// not know that 6 follows 5 before it, so it holds what arrives, up to its
// caps (MAX_HELD messages, MAX_HELD_BYTES), drops the rest and reconciles
// again (the history has them all by then). A fresh page: its wasm memory
// is measured once the burst is read, before the history answers (what
// holding costs), and after every message was delivered (the peak of the
// whole run, reading a 100 005-message history answer at once included).
let burstWritten;
const burstDone = new Promise((ok) => { burstWritten = ok; });
let answer;
const answerHistory = new Promise((ok) => { answer = ok; });
const burstApi = await startBenchApi(
  async (res) => {
    res.write(READY);
    await write(res, 6, 5 + HALF);
    burstWritten();
  },
  async () => {
    await answerHistory;
    const messages = [];
    for (let i = 1; i <= 5 + HALF; i++) messages.push(messageOf(i));
    return JSON.stringify({ messages });
  },
);
const burstPage = await measuredPage();
const burstOpened = burstPage.page.evaluate(([base, n]) => window.benchStart("valet-sdk (ours, fetch)", base, n), [burstApi.base, 5 + HALF]);
await burstDone;
await new Promise((ok) => setTimeout(ok, 2000)); // the page reads what was written
const beforeHistory = await burstPage.measure();
answer();
await burstOpened;
const burst = await burstPage.page.evaluate(() => window.done);
if (burst.count !== 5 + HALF) throw new Error(`burst: ${burst.count} of ${5 + HALF} messages`);
const burstPeak = await burstPage.measure();
burstApi.close();

await browser.close();
await fixtures.close();
api.close();

const mb = (n) => `${(n / 1048576).toFixed(2)} MB`;
console.log("\nSDK memory as a convo grows (fetch transport, one tab, headless Chromium)");
console.log("                           wasm memory (= peak so far)   JS heap after GC");
for (const [label, m] of rows) console.log(`${label.padEnd(26)} ${mb(m.wasm).padStart(12)} ${mb(m.js).padStart(22)}`);
const [, half, full] = rows.map(([, m]) => m);
const perMessage = (full.wasm - half.wasm + full.js - half.js) / HALF;
console.log(`growth per message from ${HALF.toLocaleString("en")} to ${(2 * HALF).toLocaleString("en")} (wasm + JS): ${perMessage.toFixed(1)} B`);
console.log(`a burst of ${HALF.toLocaleString("en")} live frames before the history answers: wasm memory ${mb(beforeHistory.wasm)} once read (held), ${mb(burstPeak.wasm)} after the ${(5 + HALF).toLocaleString("en")}-message history (read whole) delivered them all; JS heap after GC ${mb(burstPeak.js)}`);
