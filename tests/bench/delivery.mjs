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
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, launchBrowser, startStatic } from "../browser/harness.mjs";

const N = Number(process.env.BENCH_MESSAGES ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function body() {
  const parts = ['event: ready\ndata: {"type":"ready","conn_id":"bench"}\n\n'];
  for (let i = 1; i <= N; i++) {
    const message = {
      id: `m${i}`, content: `message number ${i} of the benchmark`, from: i % 2 ? "appuser" : "ai_agent",
      turn_number: Math.ceil(i / 2), created_at: "2026-11-21T12:00:00.000Z", participant: null, files: [], seq: i,
    };
    parts.push(`event: message\ndata: ${JSON.stringify({ type: "message", action: "create", agent_id: "a", convo_id: "c", message })}\n\n`);
  }
  return parts.join("");
}

const STREAM = body();
const READY = STREAM.slice(0, STREAM.indexOf("\n\n") + 2);
const MESSAGES = STREAM.slice(READY.length);
// With a follower: the stream sends `ready`, then waits for `open()`.
let gate = null;
const fixtures = await startStatic({
  "/": join(ROOT, "tests/bench"),
  // BENCH_WASM_DIR: another build of ours (e.g. an older commit's) to compare.
  "/wasm/": process.env.BENCH_WASM_DIR ?? join(ROOT, "target/wasm/web"),
  "/fes/": join(ROOT, "tests/node_modules/@microsoft/fetch-event-source/lib/esm"),
});
// The API: same origin as nothing else needs; CORS open for the bench page.
const api = createServer((req, res) => {
  const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "*" };
  if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
  if (req.url.endsWith("/events") || req.url.includes("/events?")) {
    res.writeHead(200, { ...cors, "content-type": "text/event-stream", "cache-control": "no-cache" });
    if (!gate) return void res.end(STREAM);
    res.write(READY);
    return void gate.then(() => res.end(MESSAGES));
  }
  if (req.url.endsWith("/stream_ticket")) {
    res.writeHead(200, { ...cors, "content-type": "application/json" });
    return void res.end('{"ticket":"t"}');
  }
  if (req.url.startsWith("/api/v2/agent_convos/c")) {
    res.writeHead(200, { ...cors, "content-type": "application/json" });
    return void res.end('{"messages":[]}');
  }
  res.writeHead(404, cors).end();
});
await new Promise((ok) => api.listen(0, "127.0.0.1", ok));
const base = `http://127.0.0.1:${api.address().port}`;

const browser = await launchBrowser();
const results = {};
const CONTENDERS = [
  "valet-sdk (ours, fetch)",
  "valet-sdk (ours, EventSource)",
  "valet-sdk (ours, fetch) + a follower tab",
  "fetch-event-source + JSON.parse + Set",
  "raw EventSource + JSON.parse",
];
const newPage = async () => {
  const page = await browser.context.newPage();
  await page.goto(`${fixtures.origin}/bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  return page;
};
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
