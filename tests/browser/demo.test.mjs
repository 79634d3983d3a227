// The demo page `make demo` serves: the SDK's `<valet-chat>` element, and
// around it what a developer wants to see: the conversation's state, the
// connection (reconnects as they happen) and this tab's role. A person can
// chat with the dev agent and sees who wrote what and when, typing, the
// conversation's state and the connection.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LIVENESS_MS, ROOT, launchBrowser, startServer } from "./harness.mjs";

let server, browser;

before(async () => {
  // As `make demo` runs it: replies streamed word by word.
  server = await startServer(["--static-dir", join(ROOT, "target/demo"), "--agent-delay-ms", "300", "--agent-token-ms", "35"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// Playwright's CSS reaches into the element's (open) shadow root.
const bubbleTexts = (page) => page.$$eval("valet-chat li[data-key] .text", (ps) => ps.map((p) => p.textContent));
const bubbleCount = (page) => page.$$eval("valet-chat li[data-key]", (l) => l.length);
const input = "valet-chat textarea";
const shownConvo = (page) => page.evaluate(() => document.getElementById("chat").convoId);

async function type(page, text) {
  await page.fill(input, text);
  await page.press(input, "Enter");
}

async function say(page, text) {
  await type(page, text);
  await page.locator("valet-chat li.ai_agent", { hasText: `You said: "${text}"` }).waitFor({ timeout: LIVENESS_MS });
}

test("the demo page: a conversation, a reconnect, a second tab, on a phone", async () => {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 390, height: 760 }); // a phone
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // Every file the page asks its own server for exists (the favicon included).
  const missing = [];
  page.on("response", (r) => {
    if (r.status() === 404 && !new URL(r.url()).pathname.startsWith("/api/")) missing.push(r.url());
  });
  await page.goto(`${server.base}/`);
  await page.waitForSelector("#status[data-status=connected]");
  await page.waitForSelector("#role[data-role=leader]");
  await page.waitForSelector("#convo-state[data-state=open]");

  // A new conversation greets; the placeholder fits on a phone.
  await page.waitForSelector("valet-chat .greeting");
  assert.equal(await bubbleCount(page), 0);
  const placeholder = await page.$eval(input, (i) => ({ fits: i.scrollWidth <= i.clientWidth + 1, text: i.placeholder }));
  assert.ok(placeholder.fits, `the placeholder fits on a phone: ${JSON.stringify(placeholder)}`);

  // Every status a bubble goes through, as the DOM records it.
  await page.evaluate(() => {
    window.statusChanges = [];
    new MutationObserver((records) => {
      for (const r of records) window.statusChanges.push(`${r.target.className}: ${r.oldValue} > ${r.target.dataset.status}`);
    }).observe(document.getElementById("chat").shadowRoot.querySelector("ol"), { subtree: true, attributes: true, attributeFilter: ["data-status"], attributeOldValue: true });
  });
  await type(page, "Hi, I need help with my order");
  // Shown at once (pending until the server's copy comes back).
  assert.equal(await page.$$eval("valet-chat li.appuser", (l) => l.length), 1);
  await page.waitForSelector("valet-chat .typing:not([hidden])", { timeout: LIVENESS_MS });
  // The reply shows as it is written, then complete, in one bubble.
  await page.waitForSelector('valet-chat li.ai_agent[data-status="sent"]', { timeout: LIVENESS_MS });
  const changes = await page.evaluate(() => window.statusChanges);
  assert.ok(changes.includes("ai_agent: streaming > sent"), `the reply's bubble went from streaming to sent: ${changes}`);
  await page.waitForSelector("valet-chat .typing[hidden]", { state: "attached" });
  assert.deepEqual(await bubbleTexts(page), ["Hi, I need help with my order", 'You said: "Hi, I need help with my order"']);

  // The server drops the stream: the page shows it, and comes back.
  const convoId = await shownConvo(page);
  await server.admin("/streams/drop", { convo_id: convoId });
  await page.locator("#events li", { hasText: "reconnected (1 so far)" }).waitFor({ state: "attached", timeout: LIVENESS_MS });
  // The log reads top to bottom, in the order things happened.
  const log = await page.$$eval("#events li", (lis) => lis.map((li) => li.textContent));
  const drop = log.findIndex((l) => l.endsWith(" reconnecting"));
  assert.ok(drop >= 0, `the log shows the drop: ${JSON.stringify(log)}`);
  assert.ok(drop < log.findIndex((l) => l.includes("reconnected (1 so far)")), `then the reconnect: ${JSON.stringify(log)}`);
  await page.waitForSelector("#status[data-status=connected]");
  await say(page, "Where is parcel 42?");

  // A refused send: the message stays on screen, marked, with Retry.
  await server.admin("/faults", { route: "stream_message", status: 429, retry_after: 120, count: 1, body: { status: "rate_limited", convo_id: convoId, state: "open", retry_after_seconds: 120 } });
  await type(page, "Are you there?");
  const failed = page.locator('valet-chat li[data-status="failed"]', { hasText: "Are you there?" });
  await failed.waitFor({ timeout: LIVENESS_MS });
  assert.match(await failed.locator(".meta").innerText(), /^You · Not sent: /);
  await failed.getByRole("button", { name: "Retry" }).click();
  await page.locator("valet-chat li.ai_agent", { hasText: 'You said: "Are you there?"' }).waitFor({ timeout: LIVENESS_MS });

  // A second tab of the same user shows the same conversation: one stream.
  const second = await browser.context.newPage();
  await second.goto(`${server.base}/`);
  await second.waitForSelector("#role[data-role=follower]");
  await second.waitForFunction(() => document.getElementById("chat").shadowRoot.querySelectorAll("li[data-key]").length === 6);
  assert.equal(await shownConvo(second), convoId, "the user's open conversation");
  assert.equal((await server.stats()).live_streams_by_convo[convoId], 1);
  // The follower reports the shared stream's status: no "Connecting…" banner there either.
  await second.waitForSelector("#status[data-status=connected]");
  await second.waitForSelector("valet-chat .status", { state: "hidden" });
  await second.close();

  await page.waitForSelector("valet-chat .status", { state: "hidden" });
  mkdirSync(join(ROOT, "target"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "target/demo-phone.png") });
  // What a person reads on the page.
  // (innerText does not reach into a shadow root: the chat's text is read apart.)
  const visible = `${await page.locator("main").innerText()}\n${await page.evaluate(() => document.getElementById("chat").shadowRoot.querySelector(".chat").innerText)}`;
  for (const text of [
    "Valet Dev Agent",
    "open",
    "connected",
    "leader",
    "Hi, I need help with my order",
    'You said: "Hi, I need help with my order"',
    "Where is parcel 42?",
    'You said: "Where is parcel 42?"',
    'You said: "Are you there?"',
  ]) {
    assert.ok(visible.includes(text), `the page shows ${JSON.stringify(text)}:\n${visible}`);
  }
  const metas = await page.$$eval("valet-chat li .meta", (ms) => ms.map((m) => m.textContent));
  assert.equal(metas.length, 6, "the retried message shows once");
  for (const [i, meta] of metas.entries()) {
    const who = i % 2 === 0 ? "You" : "Valet Dev Agent";
    assert.match(meta, new RegExp(`^${who} · \\d{1,2}:\\d{2}`), "author and time on every message");
  }
  assert.ok(!visible.includes("Sending…"), "no message left pending");

  // A reload comes back to the same conversation, history once.
  await page.reload();
  await page.waitForSelector("#status[data-status=connected]");
  await page.waitForFunction(() => document.getElementById("chat").shadowRoot.querySelectorAll("li[data-key]").length === 6);
  await page.waitForTimeout(300);
  assert.equal(await bubbleCount(page), 6);
  assert.equal(await shownConvo(page), convoId);

  // On a desktop too.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(ROOT, "target/demo-desktop.png") });
  await page.locator("valet-chat").screenshot({ path: join(ROOT, "target/demo-element.png") }); // docs/element.png

  // Resolved: the server's words show, and the input is closed, with a way on.
  await type(page, "/resolve");
  await page.waitForSelector("#convo-state[data-state=resolved]", { timeout: LIVENESS_MS });
  await page.waitForSelector("valet-chat .notice:not([hidden])");
  assert.match(await page.innerText("valet-chat .notice"), /resolved/);
  assert.ok(await page.isDisabled(input), "no input into a closed conversation");
  await page.waitForSelector("valet-chat .new-convo:not([hidden])");
  await page.screenshot({ path: join(ROOT, "target/demo-closed.png") });

  // A refused new conversation says so, in words, and the current one stays.
  const shown = await bubbleCount(page);
  await server.admin("/faults", { route: "sessions", status: 403, count: 1 });
  await page.click("#new-convo");
  await page.waitForSelector("valet-chat .error:not([hidden])");
  const said = await page.innerText("valet-chat .error");
  assert.match(said, /isn't allowed for you/, said);
  assert.doesNotMatch(said, /Error|403|fetch/, "no raw error text");
  assert.equal(await bubbleCount(page), shown);
  // The next one opens: greeted, and the input is open again.
  await page.getByRole("button", { name: "Start a new conversation" }).click();
  await page.waitForSelector("#convo-state[data-state=open]", { timeout: LIVENESS_MS });
  await page.waitForFunction(() => !document.getElementById("chat").shadowRoot.querySelector("textarea").disabled);
  assert.equal(await bubbleCount(page), 0);
  assert.notEqual(await shownConvo(page), convoId);
  await page.waitForSelector("valet-chat .notice", { state: "hidden" });
  await page.setViewportSize({ width: 390, height: 760 });
  await page.screenshot({ path: join(ROOT, "target/demo-new.png") });
  assert.deepEqual(errors, []);
  assert.deepEqual(missing, [], "no file of the page is missing");
  await page.close();
});

test("the demo's turns: /rate_limited shows the wait, no stale /fail error, a closed conversation shows only its state, and /reopen works from the hints once closed", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.base}/`);
  await page.waitForSelector("#status[data-status=connected]");
  const first = await shownConvo(page);
  await page.click("#new-convo"); // a fresh conversation, whatever the page had
  await page.waitForFunction((first) => document.getElementById("chat").convoId !== first, first);
  await page.waitForSelector("#status[data-status=connected]");
  const notice = "valet-chat .notice";
  const error = "valet-chat .error";

  // A fresh convo: /rate_limited says how long to wait.
  await type(page, "/rate_limited");
  await page.waitForSelector(`${notice}:not([hidden])`, { timeout: LIVENESS_MS });
  assert.match(await page.innerText(notice), /wait 30 s/);
  assert.ok(await page.isHidden(error));

  // /fail: the agent's failure shows; the next turn's end replaces it.
  await type(page, "/fail");
  await page.waitForSelector(`${error}:not([hidden])`, { timeout: LIVENESS_MS });
  assert.match(await page.innerText(error), /couldn't answer/);
  await type(page, "/rate_limited");
  await page.waitForFunction(() => document.getElementById("chat").shadowRoot.querySelectorAll("li.appuser").length === 3);
  await page.waitForSelector(error, { state: "hidden", timeout: LIVENESS_MS });
  assert.match(await page.innerText(notice), /wait 30 s/);

  // The hints send at once.
  await type(page, "/fail");
  await page.waitForSelector(`${error}:not([hidden])`, { timeout: LIVENESS_MS });
  // Resolved: only the closed state shows (no stale turn error or wait).
  await page.click('#hints button[data-text="/resolve"]');
  await page.waitForSelector("#convo-state[data-state=resolved]", { timeout: LIVENESS_MS });
  await page.waitForFunction(() => document.getElementById("chat").shadowRoot.querySelector("textarea").disabled);
  assert.ok(await page.isHidden(error), "no stale error on a closed conversation");
  assert.doesNotMatch(await page.innerText(notice), /wait/, "the closed state, not the last turn's wait");
  // /reopen from the hints, though the input is closed: it goes at once.
  await page.click('#hints button[data-text="/reopen"]');
  await page.waitForSelector("#convo-state[data-state=open]", { timeout: LIVENESS_MS });
  await page.waitForFunction(() => !document.getElementById("chat").shadowRoot.querySelector("textarea").disabled);
  assert.ok(await page.isHidden("valet-chat .new-convo"), "open again");
  assert.deepEqual(errors, []);
  await page.close();
});
