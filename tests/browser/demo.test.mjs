// The demo page `make demo` serves: a person can chat with the dev agent,
// and sees who wrote what and when, typing, the conversation's state, the
// connection (reconnects as they happen) and this tab's role.
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

const bubbleTexts = (page) => page.$$eval("#messages li p", (ps) => ps.map((p) => p.textContent));

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
  await page.locator("#messages li.ai_agent", { hasText: `You said: "${text}"` }).waitFor({ timeout: LIVENESS_MS });
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

  // A new conversation greets, and offers the magic texts.
  await page.waitForSelector("#empty:not([hidden])");
  await page.click('#hints button[data-text="/escalate"]');
  assert.equal(await page.inputValue("#text"), "/escalate", "a hint fills the input");
  await page.fill("#text", "");
  const placeholder = await page.$eval("#text", (i) => ({ fits: i.scrollWidth <= i.clientWidth + 1, text: i.placeholder }));
  assert.ok(placeholder.fits, `the placeholder fits on a phone: ${JSON.stringify(placeholder)}`);

  // The typing indicator shows while the agent works, and goes with its reply.
  // Every status a bubble goes through, as the DOM records it (however the
  // pieces are batched, a bubble rendered streaming and then sent shows here).
  await page.evaluate(() => {
    window.statusChanges = [];
    new MutationObserver((records) => {
      for (const r of records) window.statusChanges.push(`${r.target.className}: ${r.oldValue} > ${r.target.dataset.status}`);
    }).observe(document.getElementById("messages"), { subtree: true, attributes: true, attributeFilter: ["data-status"], attributeOldValue: true });
  });
  await page.fill("#text", "Hi, I need help with my order");
  await page.click("#send");
  // Shown at once (pending until the server's copy comes back).
  assert.equal(await page.$$eval("#messages li.appuser", (l) => l.length), 1);
  await page.waitForSelector("#typing:not([hidden])", { timeout: LIVENESS_MS });
  // The reply shows as it is written, then complete, in one bubble.
  await page.waitForSelector('li.ai_agent[data-status="sent"]', { timeout: LIVENESS_MS });
  const changes = await page.evaluate(() => window.statusChanges);
  assert.ok(changes.includes("ai_agent: streaming > sent"), `the reply's bubble went from streaming to sent: ${changes}`);
  await page.waitForSelector("#typing[hidden]", { state: "attached" });
  await page.waitForSelector("#empty", { state: "hidden" });
  assert.deepEqual(await bubbleTexts(page), ["Hi, I need help with my order", 'You said: "Hi, I need help with my order"']);

  // The server drops the stream: the page shows it, and comes back.
  const convoId = await page.evaluate(() => localStorage.getItem("valet-demo-convo"));
  await server.admin("/streams/drop", { convo_id: convoId });
  await page.locator("#events li", { hasText: "reconnected (1 so far)" }).waitFor({ state: "attached", timeout: LIVENESS_MS });
  // The log reads top to bottom, numbered in the order things happened.
  const log = await page.$$eval("#events li", (lis) => lis.map((li) => li.textContent));
  const drop = log.findIndex((l) => l.endsWith(" reconnecting"));
  assert.ok(drop >= 0, `the log shows the drop: ${JSON.stringify(log)}`);
  assert.ok(drop < log.findIndex((l) => l.includes("reconnected (1 so far)")), `then the reconnect: ${JSON.stringify(log)}`);
  await page.waitForSelector("#status[data-status=connected]");
  await say(page, "Where is parcel 42?");

  // A refused send: the message stays on screen, marked, with Retry.
  await server.admin("/faults", { route: "stream_message", status: 429, retry_after: 120, count: 1, body: { status: "rate_limited", convo_id: convoId, state: "open", retry_after_seconds: 120 } });
  await page.fill("#text", "Are you there?");
  await page.click("#send");
  const failed = page.locator('#messages li[data-status="failed"]', { hasText: "Are you there?" });
  await failed.waitFor({ timeout: LIVENESS_MS });
  assert.match(await failed.locator(".meta").innerText(), /^You · not sent: /);
  await failed.getByRole("button", { name: "Retry" }).click();
  await page.locator("#messages li.ai_agent", { hasText: 'You said: "Are you there?"' }).waitFor({ timeout: LIVENESS_MS });

  // A second tab of the same conversation follows the first: one stream.
  const second = await browser.context.newPage();
  await second.goto(`${server.base}/`);
  await second.waitForSelector("#role[data-role=follower]");
  await second.waitForFunction(() => document.querySelectorAll("#messages li").length === 6);
  assert.equal((await server.stats()).live_streams_by_convo[convoId], 1);
  // The follower reports the shared stream's status: no "Connecting…" banner there either.
  await second.waitForSelector("#status[data-status=connected]");
  await second.waitForSelector("#connection", { state: "hidden" });
  await second.close();

  await page.waitForSelector("#connection", { state: "hidden" });
  mkdirSync(join(ROOT, "target"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "target/demo-phone.png") });
  // What a person reads on the page.
  const visible = await page.locator("main").innerText();
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
  const metas = await page.$$eval("#messages li .meta", (ms) => ms.map((m) => m.textContent));
  assert.equal(metas.length, 6, "the retried message shows once");
  for (const [i, meta] of metas.entries()) {
    const who = i % 2 === 0 ? "You" : "Valet Dev Agent";
    assert.match(meta, new RegExp(`^${who} · \\d{1,2}:\\d{2}`), "author and time on every message");
  }
  assert.ok(!visible.includes("sending…"), "no message left pending");

  // A reload comes back to the same conversation, history once.
  await page.reload();
  await page.waitForSelector("#status[data-status=connected]");
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 6);
  await page.waitForTimeout(300);
  assert.equal(await page.$$eval("#messages li", (l) => l.length), 6);

  // On a desktop too.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(ROOT, "target/demo-desktop.png") });

  // Resolved: the server's words show, and the input is closed, saying why.
  await page.fill("#text", "/resolve");
  await page.click("#send");
  await page.waitForSelector("#convo-state[data-state=resolved]", { timeout: LIVENESS_MS });
  await page.waitForSelector("#closed-note:not([hidden])");
  assert.match(await page.innerText("#closed-note"), /resolved/);
  assert.ok(await page.isDisabled("#text"), "no input into a closed conversation");
  assert.match(await page.getAttribute("#text", "placeholder"), /new conversation/);
  await page.screenshot({ path: join(ROOT, "target/demo-closed.png") });

  // A refused new conversation says so, in words, and the current one stays.
  const shown = await page.$$eval("#messages li", (l) => l.length);
  await server.admin("/faults", { route: "sessions", status: 403, count: 1 });
  await page.click("#new-convo");
  await page.waitForSelector("#error:not([hidden])");
  const said = await page.innerText("#error");
  assert.match(said, /isn't allowed for you/, said);
  assert.doesNotMatch(said, /Error|403|fetch/, "no raw error text");
  assert.equal(await page.$$eval("#messages li", (l) => l.length), shown);
  // The next one opens: greeted, and the input is open again.
  await page.click("#new-convo");
  await page.waitForSelector("#empty:not([hidden])", { timeout: LIVENESS_MS });
  await page.waitForSelector("#closed-note", { state: "hidden" });
  assert.ok(!(await page.isDisabled("#text")));
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
  await page.click("#new-convo"); // a fresh conversation, whatever the page had
  await page.waitForSelector("#empty:not([hidden])", { timeout: LIVENESS_MS });
  await page.waitForSelector("#status[data-status=connected]");

  // A fresh convo: /rate_limited says how long to wait.
  await page.fill("#text", "/rate_limited");
  await page.click("#send");
  await page.waitForSelector("#turn-note:not([hidden])", { timeout: LIVENESS_MS });
  assert.match(await page.innerText("#turn-note"), /wait 30 s/);
  assert.ok(await page.isHidden("#error"));

  // /fail: the agent's failure shows; the next turn's end replaces it.
  await page.fill("#text", "/fail");
  await page.click("#send");
  await page.waitForSelector("#error:not([hidden])", { timeout: LIVENESS_MS });
  assert.match(await page.innerText("#error"), /couldn't answer/);
  await page.fill("#text", "/rate_limited");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll("#messages li.appuser").length === 3);
  await page.waitForSelector("#error", { state: "hidden", timeout: LIVENESS_MS });
  assert.match(await page.innerText("#turn-note"), /wait 30 s/);

  // The hints stay after the first messages.
  assert.ok(await page.isVisible('#hints button[data-text="/reopen"]'), "the hints are still offered");
  await page.fill("#text", "/fail");
  await page.click("#send");
  await page.waitForSelector("#error:not([hidden])", { timeout: LIVENESS_MS });
  // Resolved: only the closed state shows (no stale turn error or wait).
  await page.click('#hints button[data-text="/resolve"]');
  assert.equal(await page.inputValue("#text"), "/resolve", "an open conversation: a hint fills the input");
  await page.click("#send");
  await page.waitForSelector("#convo-state[data-state=resolved]", { timeout: LIVENESS_MS });
  await page.waitForSelector("#closed-note:not([hidden])");
  assert.ok(await page.isHidden("#error"), "no stale error on a closed conversation");
  assert.ok(await page.isHidden("#turn-note"));
  assert.ok(await page.isDisabled("#text"));
  // /reopen from the hints, though the input is closed: it goes at once.
  await page.click('#hints button[data-text="/reopen"]');
  await page.waitForSelector("#convo-state[data-state=open]", { timeout: LIVENESS_MS });
  await page.waitForSelector("#closed-note", { state: "hidden" });
  assert.ok(!(await page.isDisabled("#text")), "open again");
  assert.deepEqual(errors, []);
  await page.close();
});
