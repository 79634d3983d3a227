// What the delivery and memory benches share: the `message` frames they
// stream, the static site of the bench page, and a stand-in for the Valet
// API (CORS open; an empty history; a stream ticket) whose `/events` the
// bench writes itself.
import { createServer } from "node:http";
import { join } from "node:path";
import { ROOT, startStatic } from "../browser/harness.mjs";

/** The stream's first event. */
export const READY = 'event: ready\ndata: {"type":"ready","conn_id":"bench"}\n\n';

/** Message `i` (seq `i`), as the history has it. */
export function messageOf(i) {
  return {
    id: `m${i}`, content: `message number ${i} of the benchmark`, from: i % 2 ? "appuser" : "ai_agent",
    turn_number: Math.ceil(i / 2), created_at: "2026-11-21T12:00:00.000Z", participant: null, files: [], seq: i,
  };
}

/** Message `i` (seq `i`) as an SSE event. */
export function messageFrame(i) {
  const message = messageOf(i);
  return `event: message\ndata: ${JSON.stringify({ type: "message", action: "create", agent_id: "a", convo_id: "c", message })}\n\n`;
}

/** The bench page, our wasm (BENCH_WASM_DIR: another build of ours, e.g. an older commit's, to compare) and fetch-event-source. */
export function startBenchSite() {
  return startStatic({
    "/": join(ROOT, "tests/bench"),
    "/wasm/": process.env.BENCH_WASM_DIR ?? join(ROOT, "target/wasm/web"),
    "/fes/": join(ROOT, "tests/node_modules/@microsoft/fetch-event-source/lib/esm"),
  });
}

/** A new page of `browser` with the bench page loaded (its wasm initialized). */
export async function openBenchPage(browser, origin) {
  const page = await browser.context.newPage();
  await page.goto(`${origin}/bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  return page;
}

/**
 * The API on 127.0.0.1; `events(res)` writes the stream after its head;
 * `history()` (optional) resolves to the body of the convo's history (an
 * empty one by default), when it should be answered.
 * Resolves to `{ base, close() }`.
 */
export async function startBenchApi(events, history = async () => '{"messages":[]}') {
  const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "*" };
  const api = createServer((req, res) => {
    if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
    if (req.url.endsWith("/events") || req.url.includes("/events?")) {
      res.writeHead(200, { ...cors, "content-type": "text/event-stream", "cache-control": "no-cache" });
      return void events(res);
    }
    if (req.url.endsWith("/stream_ticket")) {
      res.writeHead(200, { ...cors, "content-type": "application/json" });
      return void res.end('{"ticket":"t"}');
    }
    if (req.url.startsWith("/api/v2/agent_convos/c")) {
      return void history().then((body) => {
        res.writeHead(200, { ...cors, "content-type": "application/json" });
        res.end(body);
      });
    }
    res.writeHead(404, cors).end();
  });
  await new Promise((ok) => api.listen(0, "127.0.0.1", ok));
  return { base: `http://127.0.0.1:${api.address().port}`, close: () => api.close() };
}
