// make bench: delivery rate of 50 000 `message` frames sent in one response,
// in headless Chromium, for our SDK and two baselines in the same run:
//   - @microsoft/fetch-event-source + JSON.parse + a Set dedupe (what the
//     Valet JS SDK does), and
//   - a raw EventSource (+ JSON.parse).
// Reported: messages/s from the first to the last handler call (the issue's
// measure) and from the request to the last handler call (end to end).
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
const fixtures = await startStatic({
  "/": join(ROOT, "tests/bench"),
  "/wasm/": join(ROOT, "target/wasm/web"),
  "/fes/": join(ROOT, "tests/node_modules/@microsoft/fetch-event-source/lib/esm"),
});
// The API: same origin as nothing else needs; CORS open for the bench page.
const api = createServer((req, res) => {
  const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "*" };
  if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
  if (req.url.endsWith("/events") || req.url.includes("/events?")) {
    res.writeHead(200, { ...cors, "content-type": "text/event-stream", "cache-control": "no-cache" });
    return void res.end(STREAM);
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
for (const contender of ["valet-sdk (ours)", "fetch-event-source + JSON.parse + Set", "raw EventSource + JSON.parse"]) {
  results[contender] = [];
  for (let run = 0; run < RUNS; run++) {
    const page = await browser.context.newPage();
    await page.goto(`${fixtures.origin}/bench.html`);
    await page.waitForFunction(() => window.benchReady === true);
    const r = await page.evaluate(([contender, base, n]) => window.bench(contender, base, n), [contender, base, N]);
    if (process.env.BENCH_PHASES) console.log(contender, "opened", await page.evaluate(() => window.openedAt), "first", r.first - r.start, "last", r.last - r.start);
    if (r.count !== N) throw new Error(`${contender}: ${r.count} of ${N} messages`);
    results[contender].push(r);
    await page.close();
  }
}
await browser.close();
await fixtures.close();
api.close();

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nDelivery of ${N} message frames in one response, headless Chromium, median of ${RUNS} runs`);
console.log("contender                                  first→last handler    request→last handler");
for (const [name, runs] of Object.entries(results)) {
  const firstLast = median(runs.map((r) => N / ((r.last - r.first) / 1000)));
  const endToEnd = median(runs.map((r) => N / ((r.last - r.start) / 1000)));
  console.log(`${name.padEnd(42)} ${Math.round(firstLast).toLocaleString("en").padStart(12)} msg/s ${Math.round(endToEnd).toLocaleString("en").padStart(14)} msg/s`);
}
