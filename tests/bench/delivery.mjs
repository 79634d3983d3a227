// make bench: delivery of 50 000 `message` frames sent in one response, in
// headless Chromium, for our SDK (fetch and EventSource transports, alone
// and with a follower tab) and two baselines in the same run:
//   - @microsoft/fetch-event-source + JSON.parse + a Set dedupe: the core of
//     what the Valet JS SDK does, without its tab election or relay (so
//     faster than the real JS SDK), and
//   - a raw EventSource + JSON.parse (no dedupe, no reconnect logic).
// Reported per contender (median of BENCH_RUNS): messages/s from the first
// to the last handler call, and from the request to the last handler call
// (end to end: what an app waits); the time from the request to the first
// handler call. "+ a follower tab": a second page of the same browser opens
// the convo too (the stream waits until it follows and is acknowledged),
// then the leader's page is timed, and the follower's own last message.
// BENCH_ONLY="EventSource|raw" runs the contenders whose names contain one of them.
import { launchBrowser } from "../browser/harness.mjs";
import { READY, messageFrame, openBenchPage, startBenchApi, startBenchSite } from "./bench-api.mjs";

const N = Number(process.env.BENCH_MESSAGES ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const MESSAGES = Array.from({ length: N }, (_, i) => messageFrame(i + 1)).join("");
// With a follower: the stream sends `ready`, then waits for `open()`.
let gate = null;
const fixtures = await startBenchSite();
const api = await startBenchApi((res) => {
  if (!gate) return void res.end(READY + MESSAGES);
  res.write(READY);
  gate.then(() => res.end(MESSAGES));
});
const base = api.base;

const browser = await launchBrowser();
const results = {};
const CONTENDERS = [
  "valet-sdk (ours, fetch)",
  "valet-sdk (ours, EventSource)",
  "valet-sdk (ours, fetch) + a follower tab",
  "fetch-event-source + JSON.parse + Set",
  "raw EventSource + JSON.parse",
].filter((c) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split("|").some((o) => c.includes(o)));
const newPage = () => openBenchPage(browser, fixtures.origin);
for (const contender of CONTENDERS) {
  results[contender] = [];
  for (let run = 0; run < RUNS; run++) {
    const page = await newPage();
    let r, follower = null;
    if (contender.endsWith("+ a follower tab")) {
      let open;
      gate = new Promise((ok) => { open = ok; });
      const ours = contender.replace(" + a follower tab", "");
      await page.evaluate(([c, base, n]) => window.benchStart(c, base, n), [ours, base, N]);
      follower = await newPage();
      await follower.evaluate(([c, base, n]) => window.benchStart(c, base, n), [ours, base, N]);
      await follower.waitForFunction(() => window.convo.role === "follower");
      await new Promise((ok) => setTimeout(ok, 1500)); // acknowledged by the leader
      const start = await page.evaluate(() => performance.timeOrigin + performance.now());
      open();
      r = { ...(await page.evaluate(() => window.done)), start };
      const f = await follower.evaluate(() => window.done);
      r.followerLast = f.last;
      if (f.count !== N) throw new Error(`${contender}: the follower got ${f.count} of ${N} messages`);
      gate = null;
    } else {
      r = await page.evaluate(([contender, base, n]) => window.bench(contender, base, n), [contender, base, N]);
    }
    if (process.env.BENCH_PHASES) console.log(contender, "opened", await page.evaluate(() => window.openedAt), "first", r.first - r.start, "last", r.last - r.start);
    // BENCH_METRICS=1: our convos' metrics (history fetches show as gaps filled).
    if (process.env.BENCH_METRICS && contender.startsWith("valet-sdk")) {
      for (const [who, p] of [["page", page], ["follower", follower]]) if (p) console.log(contender, who, JSON.stringify(await p.evaluate(() => window.convo?.metrics())));
    }
    if (r.count !== N) throw new Error(`${contender}: ${r.count} of ${N} messages`);
    results[contender].push(r);
    await page.close();
    await follower?.close();
  }
}
await browser.close();
await fixtures.close();
api.close();

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString("en");
console.log(`\nDelivery of ${N} message frames in one response, headless Chromium, median of ${RUNS} runs`);
console.log("(with a follower tab: from the moment the held stream is let go, not from the request)");
console.log("contender                                     first→last handler  request→last handler  request→first handler");
for (const [name, runs] of Object.entries(results)) {
  const firstLast = median(runs.map((r) => N / ((r.last - r.first) / 1000)));
  const endToEnd = median(runs.map((r) => N / ((r.last - r.start) / 1000)));
  const toFirst = median(runs.map((r) => r.first - r.start));
  console.log(`${name.padEnd(45)} ${fmt(firstLast).padStart(12)} msg/s ${fmt(endToEnd).padStart(14)} msg/s ${fmt(toFirst).padStart(15)} ms`);
  if (runs[0].followerLast) {
    const f = median(runs.map((r) => N / ((r.followerLast - r.start) / 1000)));
    console.log(`${"  the follower tab, its last message".padEnd(45)} ${"".padStart(18)} ${fmt(f).padStart(14)} msg/s`);
  }
}
