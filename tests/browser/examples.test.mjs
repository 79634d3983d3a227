// The examples as users build them: the SDK installed from its `npm pack`
// tarball, each app built with its real bundler (make examples), run in
// headless Chromium against the reference server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LIVENESS_MS, ROOT, launchBrowser, startServer, startStatic } from "./harness.mjs";

const EXAMPLES = join(ROOT, "examples");

let server;
let browser;
const sites = [];

before(async () => {
  for (const dir of ["node_modules/@valet.red/sdk", "react/dist", "vue/dist", "webpack/dist", "nextjs/out"]) {
    assert.ok(existsSync(join(EXAMPLES, dir)), `examples/${dir} is missing: run \`make examples\` first`);
  }
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const site of sites) await site.close();
  await server?.stop();
});

async function serve(dir) {
  const site = await startStatic({ "/": join(EXAMPLES, dir) });
  sites.push(site);
  return site.origin;
}

/** Opens an example page; fails the test on any uncaught page error. */
async function openPage(url) {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  return { page, errors };
}

async function waitConnected(page) {
  await page.waitForFunction(() => document.querySelector("[data-testid=status]")?.textContent === "connected", null, {
    timeout: LIVENESS_MS,
  });
}

/** Every bubble of the page, in display order: [from, status, text]. */
async function bubbles(page) {
  return page.locator("li[data-from]").evaluateAll((lis) =>
    lis.map((li) => [li.dataset.from, li.dataset.status, li.querySelector("p").textContent]),
  );
}

/**
 * Sends a message and waits for the dev agent's reply; checks what the user
 * sees: the message once, sent, then the reply.
 */
async function converse(page, text) {
  await page.getByLabel("Message").fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  const reply = `You said: "${text}"`;
  await page.locator('li[data-from="ai_agent"]', { hasText: reply }).waitFor({ timeout: LIVENESS_MS });
  const seen = await bubbles(page);
  assert.deepEqual(
    seen.filter(([, , t]) => t === text),
    [["appuser", "sent", text]],
    `the message shows once, as sent: ${JSON.stringify(seen)}`,
  );
  assert.equal(seen.filter(([, , t]) => t === reply).length, 1, "the reply shows once");
  const mine = seen.findIndex(([, , t]) => t === text);
  assert.ok(mine < seen.findIndex(([, , t]) => t === reply), "the message comes before its reply");
  return seen;
}

// The hooks' store asks for the convo's state (GET /agent_convos) once per
// convo it opens: with tab election hiding a second stream of the same tab,
// this is what counts a double open.
let lists = 0;
let sessionsBefore = 0;
/** Convos started (POST /sessions) since the example's page opened. */
async function sessionsStarted() {
  return ((await server.stats()).requests.sessions ?? 0) - sessionsBefore;
}
async function convosOpenedByHook() {
  return ((await server.stats()).requests.list_convos ?? 0) - lists;
}

/** Runs one example through a conversation; returns the page for more checks. */
async function runExample(url, name) {
  await server.waitStats("no stream left from an earlier example", (s) => s.live_streams === 0);
  const start = await server.stats();
  const opened = start.streams_opened_total;
  sessionsBefore = start.requests.sessions ?? 0;
  lists = start.requests.list_convos ?? 0;
  const { page, errors } = await openPage(url);
  await waitConnected(page);
  await converse(page, `hello from ${name}`);
  const stats = await server.stats();
  assert.equal(stats.streams_opened_total - opened, 1, "the page opened exactly one stream");
  assert.equal(stats.live_streams, 1, "one live stream");
  return { page, errors, opened };
}

/** Hides the chat (unmount: the stream closes), shows it again (history once). */
async function unmountAndRemount(page, opened) {
  assert.equal(await convosOpenedByHook(), 1, "the hook opened the convo once");
  const before = await bubbles(page);
  await page.getByRole("button", { name: "Hide chat" }).click();
  await server.waitStats("the stream closed on unmount", (s) => s.live_streams === 0);
  await page.getByRole("button", { name: "Show chat" }).click();
  await waitConnected(page);
  await page.waitForFunction((n) => document.querySelectorAll("li[data-from]").length >= n, before.length, { timeout: LIVENESS_MS });
  assert.deepEqual(await bubbles(page), before, "the history comes back once, in order");
  await converse(page, "and again");
  assert.equal((await server.stats()).streams_opened_total - opened, 2, "one stream per mount");
  assert.equal(await convosOpenedByHook(), 2, "the hook opened the convo once per mount");
}

test("no bundler: vanilla.html loads the SDK and its wasm with <script type=module>", async () => {
  const origin = await serve(".");
  const { page, errors } = await runExample(`${origin}/vanilla.html?api=${server.base}`, "vanilla");
  assert.deepEqual(errors, []);
  await page.close();
});

test("React (Vite production build): one stream, closed on unmount", async () => {
  const origin = await serve("react/dist");
  const { page, errors, opened } = await runExample(`${origin}/?api=${server.base}`, "react");
  await unmountAndRemount(page, opened);
  assert.equal(await sessionsStarted(), 1, "useConvo's convoId function started one convo; the remount found it again");
  assert.deepEqual(errors, []);
  await page.close();
});

// The same element in each framework as a plain element, its client set
// as a property by the framework.
for (const [name, dir, greeting] of [
  ["React 19 under Strict Mode", "react/dist", "Hi from a React app!"],
  ["Vue 3", "vue/dist", "Hi from a Vue app!"],
  ["Svelte 5", "svelte/dist", "Hi from a Svelte app!"],
]) {
  test(`${name}: <valet-chat> as a plain element opens one convo and one stream, closed on unmount`, async () => {
    const origin = await serve(dir);
    await server.waitStats("no stream left from an earlier example", (s) => s.live_streams === 0);
    const start = await server.stats();
    sessionsBefore = start.requests.sessions ?? 0;
    const { page, errors } = await openPage(`${origin}/element.html?api=${server.base}`);
    await page.waitForSelector("valet-chat[data-status=connected]", { timeout: LIVENESS_MS });
    // The shadow root's controls, as a person finds them.
    assert.equal(await page.locator("valet-chat .greeting").innerText(), greeting);
    await converse(page, `hello from the element in ${name}`);
    const stats = await server.stats();
    assert.equal(stats.streams_opened_total - start.streams_opened_total, 1, "one stream (in React: through Strict Mode's double effects)");
    assert.equal(await sessionsStarted(), 1, "one convo started");
    await page.getByRole("button", { name: "Hide chat" }).click();
    await server.waitStats("the stream closed on unmount", (s) => s.live_streams === 0);
    await page.getByRole("button", { name: "Show chat" }).click();
    await page.waitForSelector("valet-chat[data-status=connected]", { timeout: LIVENESS_MS });
    await page.waitForFunction(() => document.querySelector("valet-chat").shadowRoot.querySelectorAll("li[data-key]").length === 2);
    assert.equal(await sessionsStarted(), 1, "shown again: the user's open convo, not a new one");
    assert.equal((await server.stats()).streams_opened_total - start.streams_opened_total, 2, "one stream per mount");
    assert.deepEqual(errors, []);
    await page.close();
  });
}

const HINTED = [
  ["no bundler", ".", "/vanilla.html"],
  ["React (Vite)", "react/dist", "/"],
  ["webpack 5 (html-webpack-plugin)", "webpack/dist", "/"],
  ["Next.js (react-dom's preload)", "nextjs/out", "/"],
];
for (const [name, dir, path] of HINTED) {
  test(`${name}: the README's startup hint preloads the wasm, which is downloaded once`, async () => {
    const origin = await serve(dir);
    const page = await browser.context.newPage();
    const wasm = [];
    page.on("request", (r) => { if (r.url().endsWith(".wasm")) wasm.push(r.url()); });
    await page.goto(`${origin}${path}?api=${server.base}`);
    await waitConnected(page);
    const hint = await page.evaluate(() => {
      const link = document.querySelector('link[rel="preload"][as="fetch"][type="application/wasm"]');
      return link && { href: link.href, crossorigin: link.getAttribute("crossorigin"), inHead: link.parentElement === document.head };
    });
    assert.ok(hint, "the built page has the wasm's preload");
    assert.equal(hint.crossorigin, "", "crossorigin (anonymous), as the glue's CORS-mode fetch");
    assert.ok(hint.inHead, "in the head, where the preload scanner finds it before the body");
    assert.deepEqual(wasm, [hint.href], "one download, the preloaded one (the glue's fetch took it)");
    await page.close();
  });
}

test("React: the API down when the chat mounts: reconnecting, a message typed meanwhile is stored once when it is back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "valet-react-offline-"));
  const own = await startServer([], { db: join(dir, "valet.db") });
  try {
    await own.kill();
    const origin = await serve("react/dist");
    const { page, errors } = await openPage(`${origin}/?api=${own.base}`);
    await page.waitForFunction(() => document.querySelector("[data-testid=status]")?.textContent === "reconnecting", null, { timeout: LIVENESS_MS });
    await page.getByLabel("Message").fill("typed while the API was down");
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator('li[data-from="appuser"][data-status="pending"]').waitFor({ timeout: LIVENESS_MS });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.notEqual(await page.textContent("[data-testid=status]"), "stopped", "never stopped");
    await own.restart();
    await page.locator('li[data-from="ai_agent"]', { hasText: 'You said: "typed while the API was down"' }).waitFor({ timeout: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await bubbles(page), [
      ["appuser", "sent", "typed while the API was down"],
      ["ai_agent", "sent", 'You said: "typed while the API was down"'],
    ]);
    assert.equal((await own.stats()).requests.stream_message, 1, "stored once");
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A free loopback port (for a tool that wants one up front). */
async function freePort() {
  const probe = createServer();
  await new Promise((ok) => probe.listen(0, "127.0.0.1", ok));
  const { port } = probe.address();
  await new Promise((ok) => probe.close(ok));
  return port;
}

/** `vite` (the dev server) in an example directory; resolves once it listens. */
async function viteDev(dir) {
  const port = await freePort();
  const child = spawn(join(EXAMPLES, "node_modules/.bin/vite"), ["--port", String(port), "--strictPort", "--host", "127.0.0.1"], {
    cwd: join(EXAMPLES, dir),
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  await new Promise((ok, fail) => {
    child.once("exit", (code) => fail(new Error(`vite exited with ${code}`)));
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes(`127.0.0.1:${port}`)) ok();
    });
  });
  sites.push({ close: () => new Promise((ok) => (child.exitCode !== null ? ok() : (child.once("exit", ok), child.kill()))) });
  return `http://127.0.0.1:${port}`;
}

// Strict Mode mounts, unmounts and remounts every component in development
// builds only: this is where a second stream would show.
test("React under `vite dev` (Strict Mode mounts twice): one stream per mount, closed on unmount", async () => {
  const origin = await viteDev("react");
  const { page, errors, opened } = await runExample(`${origin}/?api=${server.base}`, "react dev");
  assert.equal(await sessionsStarted(), 1, "Strict Mode's double mount started one convo, not two");
  await unmountAndRemount(page, opened);
  assert.equal(await sessionsStarted(), 1, "the remount found this tab's convo again");
  assert.deepEqual(errors, []);
  await page.close();
});

test("Vue (Vite): one stream, closed on unmount", async () => {
  const origin = await serve("vue/dist");
  const { page, errors, opened } = await runExample(`${origin}/?api=${server.base}`, "vue");
  await unmountAndRemount(page, opened);
  assert.deepEqual(errors, []);
  await page.close();
});

test("Svelte 5 (Vite): the store as `$chat`, one stream, closed on unmount", async () => {
  const origin = await serve("svelte/dist");
  const { page, errors, opened } = await runExample(`${origin}/?api=${server.base}`, "svelte");
  await unmountAndRemount(page, opened);
  assert.deepEqual(errors, []);
  await page.close();
});

test("webpack 5: the store rendered with DOM code", async () => {
  const origin = await serve("webpack/dist");
  const { page, errors } = await runExample(`${origin}/?api=${server.base}`, "webpack");
  assert.deepEqual(errors, []);
  await page.close();
});

test("Next.js (App Router, prerendered, client component)", async () => {
  const origin = await serve("nextjs/out");
  const { page, errors } = await runExample(`${origin}/?api=${server.base}`, "nextjs");
  assert.deepEqual(errors, []);
  await page.close();
});

test("each binding pulls in only its own framework", () => {
  // Strings only each framework's runtime contains.
  const REACT = "react.transitional.element";
  const VUE = "__vue_app__";
  const js = (dir) =>
    readdirSync(join(EXAMPLES, dir), { recursive: true })
      .filter((f) => f.endsWith(".js"))
      .map((f) => readFileSync(join(EXAMPLES, dir, f), "utf8"))
      .join("\n");
  const react = js("react/dist");
  const vue = js("vue/dist");
  const plain = js("webpack/dist");
  const svelte = js("svelte/dist");
  assert.ok(react.includes(REACT) && vue.includes(VUE), "the markers are found where they belong");
  assert.ok(!react.includes(VUE), "no Vue in the React app");
  assert.ok(!vue.includes(REACT), "no React in the Vue app");
  assert.ok(!svelte.includes(REACT) && !svelte.includes(VUE), "no React or Vue in the Svelte app (it uses the store alone)");
  assert.ok(!plain.includes(REACT) && !plain.includes(VUE), "no framework in the plain webpack app");
});
