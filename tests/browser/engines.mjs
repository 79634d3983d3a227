// The browsers other than Chromium, behind the small part of playwright-core's
// Page API that the cross-engine tests use (`goto`, `evaluate(fn, arg)`,
// `waitForFunction(fn, arg)`, `waitForTimeout`, `on`, `close`, and the
// context's `newPage` and `exposeBinding`), so one test file runs in each.
//
// - Firefox: Debian's firefox-esr, driven by puppeteer-core over WebDriver
//   BiDi (stock Firefox speaks it; playwright needs a patched build).
// - WebKit: Debian's WebKitGTK MiniBrowser, under Xvfb, through
//   WebKitGTK's own driver (WebKitWebDriver) over classic W3C WebDriver.
//   The client below is the handful of W3C endpoints the tests use, called
//   with fetch: the npm WebDriver clients pull in packages whose install
//   scripts download browser drivers, which nothing here may do.
//
// What each engine offers beyond that is `ENGINE_CAN` in harness.mjs.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LIVENESS_MS } from "./harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Firefox ESR over WebDriver BiDi (puppeteer-core; nothing downloaded). */
export async function launchFirefox() {
  const { default: puppeteer } = await import("puppeteer-core");
  const userDataDir = mkdtempSync(join(tmpdir(), "valet-firefox-"));
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX_PATH ?? "/usr/bin/firefox-esr",
    headless: true,
    userDataDir,
    // No update checks, telemetry or remote settings: this machine's network is closed.
    extraPrefsFirefox: { "app.update.enabled": false, "datareporting.policy.dataSubmissionEnabled": false },
  });
  const bindings = [];
  const wrap = (page) => ({
    goto: (url) => page.goto(url),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitForFunction: (fn, arg, { timeout = LIVENESS_MS } = {}) => page.waitForFunction(fn, { timeout, polling: 50 }, arg),
    waitForTimeout: sleep,
    on: (event, cb) => page.on(event, cb),
    setOffline: (offline) => page.setOfflineMode(offline),
    bringToFront: () => page.bringToFront(),
    close: () => page.close(),
  });
  return {
    engine: "firefox",
    context: {
      /**
       * A page in a window of its own (visible, as every page in headless
       * Chromium is), or with `{ tab: true }` a tab in front of the last
       * window's page, which it hides.
       */
      async newPage({ tab = false } = {}) {
        const page = await browser.newPage({ type: tab ? "tab" : "window" });
        for (const [name, fn] of bindings) await page.exposeFunction(name, (...args) => fn(null, ...args));
        return wrap(page);
      },
      async exposeBinding(name, fn) {
        bindings.push([name, fn]);
      },
    },
    async close() {
      await browser.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

/** Waits for `child` to print `pattern` on stderr or stdout; rejects if it exits first. */
function started(child, what, ready) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} did not start`)), LIVENESS_MS);
    child.once("exit", (code) => fail(new Error(`${what} exited with ${code}`)));
    ready(() => {
      clearTimeout(timer);
      ok();
    });
  });
}

/**
 * WebKitGTK's MiniBrowser under a private Xvfb display, one WebDriver
 * session: every page is a window of it (one web context, so
 * BroadcastChannel and Web Locks are shared as between tabs). Commands are
 * serialized (W3C WebDriver has one current window per session), and the
 * session's first window stays open at about:blank so closing every test
 * page does not end the session.
 */
export async function launchWebKit() {
  const children = [];
  const xvfb = spawn("Xvfb", ["-displayfd", "1", "-screen", "0", "1280x900x24", "-nolisten", "tcp"], { stdio: ["ignore", "pipe", "ignore"] });
  children.push(xvfb);
  let display = "";
  await started(xvfb, "Xvfb", (ok) =>
    xvfb.stdout.on("data", (d) => {
      display += d;
      if (display.includes("\n")) ok();
    }),
  );
  const port = await freePort();
  const driver = spawn(process.env.WEBKIT_DRIVER_PATH ?? "WebKitWebDriver", [`--port=${port}`, "--host=127.0.0.1"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, DISPLAY: `:${display.trim()}` },
  });
  children.push(driver);
  driver.stderr.resume();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/status`)).ok) break;
    } catch (e) {
      if (i > 200) throw new Error(`WebKitWebDriver did not start: ${e.message}`);
    }
    await sleep(50);
  }
  const call = async (method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`WebDriver ${method} ${path}: ${json.value?.error}: ${json.value?.message}`);
    return json.value;
  };
  const binary = process.env.WEBKIT_BROWSER_PATH ?? "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
  const { sessionId } = await call("POST", "/session", {
    capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary, args: ["--automation"] } } },
  });
  const s = `/session/${sessionId}`;
  await call("POST", `${s}/timeouts`, { script: 5 * 60_000, pageLoad: 60_000 });
  const anchor = await call("GET", `${s}/window`);
  let current = anchor;

  // One command at a time, each in its page's window.
  let queue = Promise.resolve();
  const inWindow = (handle, command) => {
    const run = queue.then(async () => {
      if (current !== handle) {
        await call("POST", `${s}/window`, { handle });
        current = handle;
      }
      return command();
    });
    queue = run.catch(() => {});
    return run;
  };

  // The function runs in the page with its argument; its value (or its
  // promise's) comes back, undefined kept apart from null.
  const SCRIPT = `
    const done = arguments[arguments.length - 1];
    const fn = (0, eval)("(" + arguments[0] + ")");
    Promise.resolve().then(() => fn(arguments[1])).then(
      (v) => done(v === undefined ? { undef: true } : { value: v }),
      (e) => done({ error: String((e && e.stack) || e) }),
    );`;
  const makePage = (handle) => {
    const page = {
      goto: (url) => inWindow(handle, () => call("POST", `${s}/url`, { url })),
      async evaluate(fn, arg) {
        const out = await inWindow(handle, () => call("POST", `${s}/execute/async`, { script: SCRIPT, args: [String(fn), arg ?? null] }));
        if (out.error) throw new Error(`in the page: ${out.error}`);
        return out.undef ? undefined : out.value;
      },
      async waitForFunction(fn, arg, { timeout = LIVENESS_MS } = {}) {
        const deadline = Date.now() + timeout;
        for (;;) {
          const v = await page.evaluate(fn, arg).catch(() => undefined);
          if (v) return v;
          if (Date.now() > deadline) throw new Error(`waitForFunction timed out: ${String(fn).slice(0, 80)}`);
          await sleep(50);
        }
      },
      waitForTimeout: sleep,
      on() {}, // page errors and requests are not reported over classic WebDriver
      close: () =>
        inWindow(handle, async () => {
          await call("DELETE", `${s}/window`);
          current = null;
        }),
    };
    return page;
  };
  return {
    engine: "webkit",
    context: {
      async newPage() {
        const { handle } = await inWindow(anchor, () => call("POST", `${s}/window/new`, { type: "window" }));
        return makePage(handle);
      },
      exposeBinding() {
        throw new Error("exposeBinding: not available over classic WebDriver");
      },
    },
    async close() {
      await call("DELETE", s).catch(() => {});
      for (const c of children.reverse()) {
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await Promise.race([exited, sleep(3000)]);
      }
    },
  };
}
