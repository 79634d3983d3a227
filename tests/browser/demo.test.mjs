// The demo page `make demo` serves: a person can chat with the dev agent.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, launchBrowser, startServer } from "./harness.mjs";

let server, browser;

before(async () => {
  server = await startServer(["--static-dir", join(ROOT, "target/demo"), "--agent-delay-ms", "300"]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the demo page chats with the dev agent: reply, typing indicator, status", async () => {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 390, height: 720 }); // a phone
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.base}/`);
  await page.waitForSelector("#status[data-status=connected]");
  await page.fill("#text", "Hi, I need help with my order");
  await page.click("#send");
  await page.waitForSelector("#typing:not([hidden])");
  await page.waitForSelector("li.ai_agent");
  await page.waitForSelector("#typing[hidden]", { state: "attached" });
  const bubbles = await page.$$eval("#messages li p", (ps) => ps.map((p) => p.textContent));
  assert.deepEqual(bubbles, ["Hi, I need help with my order", 'You said: "Hi, I need help with my order"']);
  mkdirSync(join(ROOT, "target"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "target/demo-screenshot.png") });
  // A reload comes back to the same conversation, history once.
  await page.reload();
  await page.waitForSelector("#status[data-status=connected]");
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 2);
  await page.waitForTimeout(300);
  assert.equal(await page.$$eval("#messages li", (l) => l.length), 2);
  assert.deepEqual(errors, []);
  await page.close();
});
