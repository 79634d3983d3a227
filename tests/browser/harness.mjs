// Test harness for browser end-to-end tests: the real reference server as a
// child process, a static file server for pages (on any loopback origin),
// and Debian's Chromium driven by playwright-core with a fresh profile.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
export const ADMIN_SECRET = "dev-admin-secret";
/** Generous liveness bound for anything a test waits on. */
export const LIVENESS_MS = 20_000;

const SERVER_BIN = process.env.VALET_SERVER_BIN ?? join(ROOT, "target/debug/valet-server");

/** Polls `check()` (it may be async) until it holds; fails with `what` after LIVENESS_MS. */
export async function eventually(what, check) {
  const deadline = Date.now() + LIVENESS_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Starts the reference server (dev mode) on a free port, with in-memory
 * SQLite unless `db` names a file (`log`: its RUST_LOG, default `warn`). `kill()` SIGKILLs it; `restart()` starts
 * it again on the same address and database.
 */
export async function startServer(extraArgs = [], { db = ":memory:", log } = {}) {
  let child;
  let addr = "127.0.0.1:0";
  // The per-user limits are tested natively (crates/valet-server/tests/hardening.rs);
  // browser tests send more than a person would, so they are lifted unless set.
  const limits = [["--rate-limit-sessions", "10000"], ["--rate-limit-tickets", "100000"], ["--rate-limit-user-messages", "100000"]]
    .filter(([flag]) => !extraArgs.includes(flag)).flat();
  const spawnServer = async () => {
    child = spawn(
      SERVER_BIN,
      ["--dev", "--addr", addr, "--db", db, "--agent-delay-ms", "50", ...limits, ...extraArgs],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? log ?? "warn" } },
    );
    const lines = createInterface({ input: child.stdout });
    const base = await new Promise((ok, fail) => {
      child.once("exit", (code) => fail(new Error(`valet-server exited early with ${code}`)));
      lines.once("line", (line) => ok(line.replace("valet-server listening on ", "").trim()));
    });
    lines.on("line", () => {}); // keep draining stdout
    return base;
  };
  const base = await spawnServer();
  let users = 0;
  addr = base.replace("http://", "");
  const server = {
    base,
    async stats() {
      return (await fetch(`${base}/dev/stats`)).json();
    },
    async jwt(sourceKey, ttlSeconds) {
      const res = await fetch(`${base}/dev/jwt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ source_key: sourceKey, ttl_seconds: ttlSeconds }),
      });
      return res.json();
    },
    async admin(path, body = {}) {
      const res = await fetch(`${base}/dev/admin${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_SECRET}` },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`admin ${path}: ${res.status} ${await res.text()}`);
      return res.json();
    },
    /** A new user (`{name}-{n}`) with a new convo: `{ sourceKey, convoId }`. */
    async newConvo(name) {
      const sourceKey = `${name}-${++users}`;
      return { sourceKey, convoId: await server.session(sourceKey) };
    },
    /** Starts a session for the user (`POST /sessions`); returns its convo id. */
    async session(sourceKey) {
      const { token } = await server.jwt(sourceKey);
      const res = await fetch(`${base}/api/v2/sessions`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      return (await res.json()).convo_id;
    },
    /** The convo's stored messages, as its user sees them. */
    async history(sourceKey, convoId) {
      const { token } = await server.jwt(sourceKey);
      const res = await fetch(`${base}/api/v2/agent_convos/${convoId}`, { headers: { authorization: `Bearer ${token}` } });
      return (await res.json()).messages;
    },
    /** Polls /dev/stats until pred(stats) holds. */
    async waitStats(what, pred) {
      const deadline = Date.now() + LIVENESS_MS;
      for (;;) {
        const s = await server.stats();
        if (pred(s)) return s;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    /** SIGKILL: no goodbye to any stream, nothing flushed but what was committed. */
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
    /** Starts it again on the same address and database (after `kill`). */
    async restart() {
      for (let i = 0; ; i++) {
        try {
          await spawnServer();
          return;
        } catch (e) {
          if (i >= 50) throw e; // the port may take a moment to be free
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
  return server;
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".css": "text/css",
  ".map": "application/json",
};

/**
 * Serves files: `mounts` maps a URL prefix to a directory. Listens on
 * `host` (any loopback address), a free port.
 */
export async function startStatic(mounts, host = "127.0.0.1") {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const prefix = Object.keys(mounts)
      .sort((a, b) => b.length - a.length)
      .find((p) => path.startsWith(p));
    if (prefix === undefined) return void res.writeHead(404).end();
    const dir = mounts[prefix];
    let file = normalize(join(dir, path.slice(prefix.length)));
    if (!file.startsWith(dir)) return void res.writeHead(403).end();
    try {
      // Extensionless ESM imports ("./fetch") resolve to ".js", as bundlers do.
      if (!extname(file)) {
        try { statSync(file); } catch { file += ".js"; }
      }
      if (statSync(file).isDirectory()) file = join(file, "index.html");
      const body = readFileSync(file);
      res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, host, ok));
  return {
    origin: `http://${host}:${server.address().port}`,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/**
 * The browser engine of this run: `VALET_BROWSER` = `chromium` (the
 * default), `firefox` or `webkit` (see engines.mjs).
 */
export const ENGINE = process.env.VALET_BROWSER ?? "chromium";

/**
 * Why a test is skipped in this engine, or false: for `node:test`'s
 * `skip` option. `needs` names capabilities of `launchBrowser().can`.
 */
export function unlessEngineCan(...needs) {
  const can = ENGINE_CAN[ENGINE];
  const missing = needs.filter((n) => !can[n]);
  return missing.length ? `${ENGINE} here has no ${missing.join(", ")} (Chromium runs it)` : false;
}

/**
 * What an engine offers beyond the common page API: `cdp` (Chromium's
 * DevTools: crash, debugger freeze, heap), `offline` (a page cut from the
 * network: `page.setOffline`), `requests` (a page's `request` events),
 * `bindings` (`context.exposeBinding`), `tabs` (a page opened as a tab in
 * front of another, which is then hidden: `newPage({ tab: true })`,
 * `page.bringToFront()`; every page of headless Chromium is visible),
 * `idbBlobs` (Blobs stored in IndexedDB: WebKit's automation session is
 * ephemeral, and WebKit aborts the transaction of a Blob there, as in a
 * private window).
 */
const ENGINE_CAN = {
  chromium: { cdp: true, offline: true, requests: true, bindings: true, tabs: false, idbBlobs: true },
  firefox: { cdp: false, offline: true, requests: true, bindings: true, tabs: true, idbBlobs: true },
  webkit: { cdp: false, offline: false, requests: false, bindings: false, tabs: false, idbBlobs: false },
};

/**
 * Launches the run's engine (`ENGINE`) with a fresh profile; returns its
 * one context, `can` (what it offers beyond the common page API) and
 * `close()`.
 */
export async function launchBrowser() {
  if (ENGINE === "firefox") return { ...(await (await import("./engines.mjs")).launchFirefox()), can: ENGINE_CAN.firefox };
  if (ENGINE === "webkit") return { ...(await (await import("./engines.mjs")).launchWebKit()), can: ENGINE_CAN.webkit };
  if (ENGINE !== "chromium") throw new Error(`VALET_BROWSER=${ENGINE}: chromium, firefox or webkit`);
  const userDataDir = mkdtempSync(join(tmpdir(), "valet-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    engine: "chromium",
    can: ENGINE_CAN.chromium,
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Loads the SDK test page (`query`, e.g. `"?nolocks"`) in `page` from `origin`; resolves once the SDK is ready. */
export async function loadSdk(page, origin, query = "") {
  await page.goto(`${origin}/sdk.html${query}`);
  await page.waitForFunction(() => window.sdkReady === true);
  return page;
}

/**
 * The usual set-up of an SDK test file: the reference server (with
 * `serverArgs`), the test pages and the wasm build on another origin, and a
 * browser. `close()` tears all three down.
 */
export async function sdkEnv(serverArgs = [], serverOptions = {}) {
  const server = await startServer(serverArgs, serverOptions);
  const site = await startStatic({ "/": join(ROOT, "tests/browser/fixtures"), "/wasm/": join(ROOT, "target/wasm/web"), "/pkg/": join(ROOT, "pkg") });
  const browser = await launchBrowser();
  return {
    server,
    site,
    browser,
    /** A new page with the SDK loaded (`tab`: see `newPage`), its errors logged. */
    async page({ query = "", tab = false } = {}) {
      const page = await browser.context.newPage(tab ? { tab } : undefined);
      page.on("pageerror", (e) => console.error("page error:", e.message));
      return loadSdk(page, site.origin, query);
    },
    async close() {
      await browser.close();
      await site.close();
      await server.stop();
    },
  };
}
