// The startup bench's two servers, in a worker thread of their own: the
// app's site (OUT/<app>/ gzip-encoded, and the app's `/jwt`) and a
// stand-in of the Valet API. In the bench's own thread they would answer
// only when the DevTools protocol's traffic of the page under test (every
// request's events, read in that same event loop) lets them: a page that
// asks for two files at once then waited ~10 ms for the second.
//
// Posts `{ site, api }` (their origins) once listening; then answers each
// `{ withHistory }` (the scenario: a new convo, or one with 5 messages)
// with "ok", and closes on "close".
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { gzipSync } from "node:zlib";
import { READY, messageFrame, messageOf } from "./bench-api.mjs";

/** Where the apps are built. */
const OUT = workerData.out;

// A token the bench API never checks; far `exp`, so no refresh.
const payload = Buffer.from(JSON.stringify({ exp: 4102444800, sub: "u" })).toString("base64url");
const JWT = `eyJhbGciOiJIUzI1NiJ9.${payload}.sig`;

const MIME = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".wasm": "application/wasm" };

/** Serves OUT/<app>/ at /<app>/ gzip-encoded, and `/jwt`. */
async function startSite() {
  const cache = new Map();
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/jwt") return void res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" }).end(JWT);
    const [, app, ...rest] = path.split("/");
    let file = join(OUT, app ?? "", ...rest);
    if (!file.startsWith(OUT) || app === "src") return void res.writeHead(403).end();
    try {
      if (statSync(file).isDirectory()) file = join(file, "index.html");
      if (!cache.has(file)) cache.set(file, gzipSync(readFileSync(file), { level: 9 }));
    } catch {
      return void res.writeHead(404).end();
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "content-encoding": "gzip", "cache-control": "no-store" });
    res.end(cache.get(file));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** The scenario the stand-in API plays: a new convo, or one with 5 messages. */
let withHistory = false;

/** The stand-in API: `ready` and message 1 at once, an empty history; or (`withHistory`) `ready` alone and a history of 5. */
async function startApi() {
  const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "*" };
  const streams = new Set();
  const server = createServer((req, res) => {
    if (req.method === "OPTIONS") return void res.writeHead(204, { ...cors, "access-control-max-age": "600" }).end();
    if (req.url.includes("/events")) {
      res.writeHead(200, { ...cors, "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(withHistory ? READY : READY + messageFrame(1));
      streams.add(res);
      res.on("close", () => streams.delete(res));
      return;
    }
    if (req.url.startsWith("/api/v2/agent_convos/c")) {
      const messages = withHistory ? [1, 2, 3, 4, 5].map(messageOf) : [];
      return void res.writeHead(200, { ...cors, "content-type": "application/json" }).end(JSON.stringify({ messages }));
    }
    res.writeHead(404, cors).end();
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => { for (const s of streams) s.destroy(); server.close(); },
  };
}

const [site, api] = await Promise.all([startSite(), startApi()]);
parentPort.on("message", (m) => {
  if (m === "close") {
    site.close();
    api.close();
    parentPort.close();
    return;
  }
  withHistory = !!m.withHistory;
  parentPort.postMessage("ok");
});
parentPort.postMessage({ site: site.origin, api: api.origin });
