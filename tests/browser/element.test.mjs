// `<valet-chat>` (@valet.red/sdk/element) on a page the reference server
// serves, its token from the server's GET /dev/jwt (a backend that knows
// the user): each state as a person and a screen reader get it (the DOM,
// the accessibility tree, axe-core's checks), keyboard only. The basic
// conversation runs in Firefox and WebKit too (make test-engines).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINE, LIVENESS_MS, ROOT, eventually, launchBrowser, startServer } from "./harness.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const CHROMIUM_ONLY = ENGINE !== "chromium" && `${ENGINE}: the basic conversation runs here; the states, axe and screenshots in Chromium`;
const SHOTS = join(ROOT, "target/element");

// The page an app would have: the module, then the element. Attributes come
// from the query (`user` names the user the token endpoint speaks for).
const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Support</title>
<style>body { margin: 0; font-family: system-ui, sans-serif; } main { max-width: 40rem; margin: 0 auto; padding: 0 .5rem; } valet-chat { height: 36rem; }</style>
</head>
<body><main><h1>Support</h1><div id="slot"></div></main>
<script type="module">
import "/sdk/element.js";
const q = new URLSearchParams(location.search);
const el = document.createElement("valet-chat");
el.setAttribute("agent-id", "00000000-0000-4000-8000-00000000a9e1");
el.setAttribute("base-url", "/");
el.setAttribute("jwt-url", q.get("jwt") ?? "/dev/jwt?source_key=" + encodeURIComponent(q.get("user")));
for (const a of ["convo-id", "greeting"]) if (q.has(a)) el.setAttribute(a, q.get(a));
window.events = [];
for (const t of ["message", "turn_done", "error"]) el.addEventListener(t, (e) => window.events.push([t, e.detail?.message?.content ?? e.detail?.reason ?? e.detail?.error?.code ?? null]));
// Every status each bubble went through, and whether typing showed.
window.seen = { statuses: {}, typing: false };
const watch = () => {
  const root = el.shadowRoot;
  new MutationObserver(() => {
    for (const li of root.querySelectorAll("li[data-key]")) {
      const s = (window.seen.statuses[li.querySelector(".text").textContent] ??= []);
      if (s.at(-1) !== li.dataset.status) s.push(li.dataset.status);
    }
    if (!root.querySelector(".typing").hidden) window.seen.typing = true;
  }).observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
};
watch();
document.getElementById("slot").append(el);
window.chat = el;
</script>
</body>
</html>`;

let server, browser, site;
let users = 0;

before(async () => {
  site = mkdtempSync(join(tmpdir(), "valet-element-"));
  writeFileSync(join(site, "chat.html"), PAGE);
  symlinkSync(join(ROOT, "pkg"), join(site, "sdk"));
  mkdirSync(SHOTS, { recursive: true });
  // A database file: the server is killed and restarted in a test.
  server = await startServer(["--static-dir", site, "--agent-delay-ms", "300", "--agent-token-ms", "35"], { db: join(site, "valet.db") });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(site, { recursive: true, force: true });
});

/** A page with the element for a new user (`query`: more attributes), from `base`'s server. */
async function open(query = {}, base = server.base) {
  const user = `element-${++users}`;
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const params = new URLSearchParams({ user, ...query });
  await page.goto(`${base}/chat.html?${params}`);
  return { page, user, errors };
}

/** In the page: waits until `pred(chat, root)` holds. */
const until = (page, pred, arg) =>
  page.waitForFunction(
    ({ pred, arg }) => new Function("chat", "root", "arg", `return (${pred})`)(window.chat, window.chat?.shadowRoot, arg),
    { pred, arg },
    { timeout: LIVENESS_MS },
  );

/** What the element shows: its bubbles as [from, status, text]. */
const bubbles = (page) =>
  page.evaluate(() => [...window.chat.shadowRoot.querySelectorAll("li[data-key]")].map((li) => [li.dataset.from, li.dataset.status, li.querySelector(".text").textContent]));

/** Types into the send box and presses Enter, as a keyboard does (in every engine). */
const typeAndEnter = (page, text) =>
  page.evaluate((text) => {
    const input = window.chat.shadowRoot.querySelector("textarea");
    input.focus();
    input.value = text;
    input.dispatchEvent(new InputEvent("input", { bubbles: true }));
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
  }, text);

const replyTo = (text) => `You said: "${text}"`;

/** axe-core's WCAG 2.1 A/AA and best-practice checks of the whole page: the violations, as text. */
async function axe(page, state) {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" > ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], `axe, ${state}`);
}

/**
 * axe in light and dark, and a screenshot of each; `tree`: what the
 * accessibility tree must say in this state (patterns of its YAML).
 */
async function checkState(page, state, tree = []) {
  const snapshot = await page.locator("valet-chat").ariaSnapshot();
  for (const want of tree) assert.match(snapshot, want, `${state}: the accessibility tree`);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    await axe(page, `${state}, ${scheme}`);
    await page.screenshot({ path: join(SHOTS, `${state}-${scheme}.png`) });
  }
  await page.emulateMedia({ colorScheme: "light" });
}

test("a conversation: sent at once, the reply written in place, announced once, each message once", async () => {
  const { page, errors } = await open({ greeting: "Hi! Ask me anything." });
  await until(page, `chat.dataset.status === "connected"`);
  assert.equal(await page.evaluate(() => window.chat.shadowRoot.querySelector(".greeting").textContent), "Hi! Ask me anything.");
  assert.ok(await page.evaluate(() => window.chat.convoId?.length > 0), "the convo it opened is readable");
  await typeAndEnter(page, "Hi, I need help with my order");
  await until(page, `[...root.querySelectorAll("li.ai_agent")].some((li) => li.dataset.status === "sent")`);
  await until(page, `root.querySelector(".typing").hidden`);
  assert.deepEqual(await bubbles(page), [
    ["appuser", "sent", "Hi, I need help with my order"],
    ["ai_agent", "sent", replyTo("Hi, I need help with my order")],
  ]);
  const seen = await page.evaluate(() => window.seen);
  assert.deepEqual(seen.statuses["Hi, I need help with my order"], ["pending", "sent"], "shown at once as pending");
  assert.equal(seen.statuses[replyTo("Hi, I need help with my order")].at(-1), "sent");
  assert.ok(seen.statuses[replyTo("Hi, I need help with my order")].includes("streaming"), "the reply grew in place while written");
  assert.ok(seen.typing, "the typing indicator showed");
  // A screen reader hears the reply once, complete (not its pieces).
  assert.deepEqual(await page.evaluate(() => [...window.chat.shadowRoot.querySelector(".announcer").children].map((p) => p.textContent)), [
    `Valet Dev Agent: ${replyTo("Hi, I need help with my order")}`,
  ]);
  // The events an app's analytics hear.
  await until(page, `window.events.some(([t]) => t === "turn_done")`);
  const events = await page.evaluate(() => window.events);
  assert.deepEqual(events.filter(([t]) => t === "message"), [
    ["message", "Hi, I need help with my order"],
    ["message", replyTo("Hi, I need help with my order")],
  ]);
  // The input is empty again, and a second message comes in order.
  assert.equal(await page.evaluate(() => window.chat.shadowRoot.querySelector("textarea").value), "");
  await typeAndEnter(page, "Where is parcel 42?");
  await until(page, `root.querySelectorAll("li.ai_agent[data-status=sent]").length === 2`);
  assert.deepEqual((await bubbles(page)).map(([, , t]) => t), [
    "Hi, I need help with my order",
    replyTo("Hi, I need help with my order"),
    "Where is parcel 42?",
    replyTo("Where is parcel 42?"),
  ]);
  // A reload finds the same convo (the user's open one), history once.
  const convoId = await page.evaluate(() => window.chat.convoId);
  await page.goto(await page.evaluate(() => location.href));
  await until(page, `root && root.querySelectorAll("li[data-key]").length === 4 && chat.dataset.status === "connected"`);
  assert.equal(await page.evaluate(() => window.chat.convoId), convoId);
  assert.equal(await page.evaluate(() => window.chat.shadowRoot.querySelector(".announcer").childElementCount), 0, "history is not read out");
  assert.deepEqual(errors, []);
  await page.close();
});

test("keyboard only: Enter sends, Shift+Enter is a new line, a refused send is retried from its Retry button", { skip: CHROMIUM_ONLY }, async () => {
  const { page, user, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  // The empty state, and the tree a screen reader gets.
  await until(page, `!root.querySelector(".empty").hidden`);
  await checkState(page, "empty");
  const tree = await page.locator("valet-chat").ariaSnapshot();
  for (const line of ['log "Conversation"', 'textbox "Message"', 'button "Send"', 'button "Attach files"']) {
    assert.ok(tree.includes(line), `the accessibility tree has ${line}:\n${tree}`);
  }
  // From the page's start, Tab reaches the send box.
  await page.keyboard.press("Tab");
  for (let i = 0; i < 5 && !(await page.evaluate(() => window.chat.shadowRoot.activeElement?.tagName === "TEXTAREA")); i++) await page.keyboard.press("Tab");
  assert.ok(await page.evaluate(() => window.chat.shadowRoot.activeElement?.tagName === "TEXTAREA"), "Tab reaches the send box");
  await page.keyboard.type("two");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("lines");
  assert.equal(await page.evaluate(() => window.chat.shadowRoot.querySelector("textarea").value), "two\nlines", "Shift+Enter: a new line, nothing sent");
  assert.equal((await bubbles(page)).length, 0);
  await page.keyboard.press("Enter");
  await until(page, `root.querySelectorAll("li.ai_agent[data-status=sent]").length === 1`);
  assert.deepEqual((await bubbles(page))[0], ["appuser", "sent", "two\nlines"]);
  await checkState(page, "conversation");

  // The server refuses the next send: the message stays, marked, with Retry.
  const convoId = await page.evaluate(() => window.chat.convoId);
  await server.admin("/faults", { route: "stream_message", status: 422, count: 1, body: { error: { code: "invalid", message: "refused for the test" } } });
  await page.keyboard.type("Are you there?");
  await page.keyboard.press("Enter");
  await until(page, `root.querySelector('li[data-status="failed"]')`);
  const failed = await page.evaluate(() => window.chat.shadowRoot.querySelector('li[data-status="failed"]').innerText);
  assert.match(failed, /Are you there\?/);
  assert.match(failed, /Not sent: /);
  await checkState(page, "failed", [/listitem:[\s\S]*Are you there\?[\s\S]*Not sent[\s\S]*button "Retry"/]);
  // Shift+Tab from the send box: the attach button, then the Retry button.
  await page.keyboard.press("Shift+Tab");
  await page.keyboard.press("Shift+Tab");
  assert.equal(await page.evaluate(() => window.chat.shadowRoot.activeElement?.textContent), "Retry");
  assert.equal(await page.evaluate(() => getComputedStyle(window.chat.shadowRoot.activeElement).outlineStyle), "solid", "focus is visible");
  await page.keyboard.press("Enter");
  await until(page, `[...root.querySelectorAll("li.ai_agent")].some((li) => li.textContent.includes('You said: "Are you there?"'))`);
  const texts = (await bubbles(page)).map(([, s, t]) => `${s} ${t}`);
  assert.equal(texts.filter((t) => t.endsWith(" Are you there?")).length, 1, `the retried message shows once: ${texts}`);
  assert.equal((await server.history(user, convoId)).filter((m) => m.content === "Are you there?").length, 1, "stored once");
  assert.deepEqual(errors, []);
  await page.close();
});

test("pending, typing, a reply being written: each state checked while it shows, nothing read out before the reply is whole", { skip: CHROMIUM_ONLY }, async () => {
  // An agent slow enough to look at: it thinks 2.5 s, then writes a word every 150 ms.
  const slow = await startServer(["--static-dir", site, "--agent-delay-ms", "2500", "--agent-token-ms", "150"]);
  const { page, errors } = await open({}, slow.base);
  try {
    await until(page, `chat.dataset.status === "connected"`);
    // The send held on its way: pending.
    let held;
    await page.route("**/stream_message", (route) => (held = route));
    const text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen";
    await typeAndEnter(page, text);
    await until(page, `root.querySelector('li.appuser[data-status="pending"]')`);
    assert.match(await page.locator("valet-chat").ariaSnapshot(), /listitem:[\s\S]*one two three[\s\S]*Sending…/);
    await checkState(page, "pending");
    await eventually("the held send", () => held);
    await held.continue();
    await page.unroute("**/stream_message");
    // The agent thinks: the typing line.
    await until(page, `!root.querySelector(".typing").hidden`);
    await checkState(page, "typing", [/Valet Dev Agent is thinking/]);
    // It writes: the reply grows in place; nothing is announced yet.
    await until(page, `root.querySelector('li.ai_agent[data-status="streaming"]')`);
    assert.equal(await page.evaluate(() => window.chat.shadowRoot.querySelector(".announcer").childElementCount), 0);
    await checkState(page, "streaming");
    await until(page, `root.querySelector('li.ai_agent[data-status="sent"]')`);
    assert.deepEqual(await page.evaluate(() => [...window.chat.shadowRoot.querySelector(".announcer").children].map((p) => p.textContent)), [
      `Valet Dev Agent: ${replyTo(text)}`,
    ]);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    await slow.stop();
  }
});

test("a hostile agent message renders inert: text, never HTML; links only http(s), opened apart", { skip: CHROMIUM_ONLY }, async () => {
  const { page, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  const convoId = await page.evaluate(() => window.chat.convoId);
  const hostile = `<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> javascript:window.pwned=3 [click](javascript:window.pwned=4) <a href="javascript:window.pwned=5">a</a> see https://example.com/help?x=1&y=<b>2</b>. or http://example.org/a)`;
  await server.admin(`/convos/${convoId}/messages`, { content: hostile, from: "human_agent" });
  await until(page, `root.querySelector("li.human_agent")`);
  const shown = await page.evaluate(() => {
    const li = window.chat.shadowRoot.querySelector("li.human_agent");
    return {
      text: li.querySelector(".text").textContent,
      elements: [...li.querySelector(".text").querySelectorAll("*")].map((e) => e.tagName),
      links: [...li.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.rel, a.target]),
      pwned: window.pwned ?? null,
    };
  });
  assert.equal(shown.text, hostile, "the text as written");
  assert.deepEqual(shown.elements, ["A", "A"], "no element but the two http(s) links");
  assert.deepEqual(shown.links, [
    ["https://example.com/help?x=1&y=", "noopener noreferrer", "_blank"],
    ["http://example.org/a", "noopener noreferrer", "_blank"],
  ]);
  await page.locator("valet-chat li.human_agent").click({ position: { x: 5, y: 5 } });
  assert.equal(await page.evaluate(() => window.pwned ?? null), null);
  await checkState(page, "hostile");
  assert.deepEqual(errors, []);
  await page.close();
});

test("files: attached with the button, sent, shown as an image preview with its name", { skip: CHROMIUM_ONLY }, async () => {
  const { page, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  // A 1×1 PNG, and a file the policy refuses (its type).
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
  const chooser = page.waitForEvent("filechooser");
  await page.locator("valet-chat").getByRole("button", { name: "Attach files" }).click();
  await (await chooser).setFiles([
    { name: "dot.png", mimeType: "image/png", buffer: png },
    { name: "tool.exe", mimeType: "application/x-msdownload", buffer: Buffer.from("MZ") },
  ]);
  await until(page, `!root.querySelector(".chosen").hidden`);
  assert.deepEqual(await page.evaluate(() => [...window.chat.shadowRoot.querySelectorAll(".chosen li span")].map((s) => s.textContent)), ["dot.png"]);
  assert.match(await page.evaluate(() => window.chat.shadowRoot.querySelector(".error").textContent), /tool\.exe is not a kind of file this chat takes/);
  await checkState(page, "attaching");
  await page.locator("valet-chat textarea").fill("a photo");
  await page.locator("valet-chat textarea").press("Enter");
  await until(page, `root.querySelector("li.appuser img")`);
  assert.ok(await page.evaluate(() => window.chat.shadowRoot.querySelector(".error").hidden), "the note on the file left out goes with the send");
  const img = await page.evaluate(() => {
    const i = window.chat.shadowRoot.querySelector("li.appuser img");
    return { alt: i.alt, src: i.src, link: i.closest("a").rel };
  });
  assert.equal(img.alt, "dot.png");
  assert.match(img.src, /^http:\/\/127\.0\.0\.1:\d+\//);
  assert.equal(img.link, "noopener noreferrer");
  await until(page, `root.querySelector("li.appuser img").complete && root.querySelector("li.appuser img").naturalWidth === 1`);
  await checkState(page, "files");
  assert.deepEqual(errors, []);
  await page.close();
});

test("states: reconnecting, escalated, closed with the server's text and a new conversation, locked out, signed out", { skip: CHROMIUM_ONLY }, async () => {
  const { page, errors } = await open();
  await page.setViewportSize({ width: 320, height: 640 }); // the narrowest phone
  await until(page, `chat.dataset.status === "connected"`);
  const status = () => page.evaluate(() => {
    const r = window.chat.shadowRoot;
    const shown = (sel) => (r.querySelector(sel).hidden ? null : r.querySelector(sel).textContent);
    return { banner: shown(".status"), notice: shown(".notice"), error: shown(".error"), input: !r.querySelector("textarea").disabled, newConvo: !r.querySelector(".new-convo").hidden };
  });

  // The server goes away: the banner says so, and goes when it is back.
  await server.kill();
  try {
    await until(page, `chat.dataset.status === "reconnecting"`);
    assert.equal((await status()).banner, "Connection lost. Reconnecting…");
    await checkState(page, "reconnecting", [/- status: Connection lost\. Reconnecting…/]);
  } finally {
    await server.restart();
  }
  await until(page, `chat.dataset.status === "connected"`);
  assert.equal((await status()).banner, null);

  // Escalated: the server's words; the user can still write.
  await typeAndEnter(page, "/escalate");
  await until(page, `root.querySelector(".notice").dataset.state === "escalated"`);
  let s = await status();
  assert.ok(s.notice && s.input && !s.newConvo, JSON.stringify(s));
  await checkState(page, "escalated");
  await typeAndEnter(page, "/reopen");
  await until(page, `root.querySelector(".notice").hidden`);

  // Closed: the server's text, no input, and a way to a new conversation.
  const first = await page.evaluate(() => window.chat.convoId);
  await typeAndEnter(page, "/resolve");
  await until(page, `root.querySelector("textarea").disabled`);
  s = await status();
  assert.ok(s.notice && !s.input && s.newConvo && s.error === null, JSON.stringify(s));
  await checkState(page, "closed", [/- status: This conversation has been resolved/, /textbox "Message" \[disabled\]/, /button "Start a new conversation"/]);
  await page.locator("valet-chat").getByRole("button", { name: "Start a new conversation" }).click();
  await until(page, `chat.convoId !== arg && !root.querySelector("textarea").disabled && !root.querySelector(".empty").hidden`, first);
  assert.deepEqual(await bubbles(page), [], "a new, empty conversation");

  // Locked out: the agent locks the user out; a new conversation says why.
  await typeAndEnter(page, "/rage");
  await until(page, `root.querySelector("textarea").disabled && !root.querySelector(".new-convo").hidden`);
  await page.locator("valet-chat").getByRole("button", { name: "Start a new conversation" }).click();
  await until(page, `chat.store?.getState().cannotSend?.reason === "locked_out"`);
  s = await status();
  assert.ok(s.notice && !s.input && !s.newConvo, JSON.stringify(s));
  assert.ok(await page.evaluate(() => window.chat.shadowRoot.querySelector(".empty").hidden), "no invitation to write where one can't");
  await checkState(page, "locked-out", [/- status: /, /textbox "Message" \[disabled\]/]);
  await page.close();

  // Signed out (the token endpoint answers 401): stopped, said in words, with Try again.
  const signedOut = await open({ jwt: "/api/v2/agent_convos" });
  await until(signedOut.page, `chat.dataset.status === "stopped"`);
  const out = await signedOut.page.evaluate(() => ({
    banner: window.chat.shadowRoot.querySelector(".status").innerText,
    error: window.chat.shadowRoot.querySelector(".error").textContent,
  }));
  assert.match(out.banner, /Disconnected\.\s+Try again/);
  assert.equal(out.error, "You are signed out of the chat.");
  await checkState(signedOut.page, "signed-out", [/- status:\s+- text: Disconnected\.\s+- button "Try again"/, /- alert: You are signed out of the chat\./]);
  await signedOut.page.close();
  assert.deepEqual([...errors, ...signedOut.errors], []);
});

test("themable and translatable: custom properties, ::part(), strings; a phone and a desktop, right to left", { skip: CHROMIUM_ONLY }, async () => {
  const { page, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  await page.evaluate(() => {
    const style = document.createElement("style");
    style.textContent = `valet-chat { --valet-accent: rgb(0, 90, 0); } valet-chat::part(send) { border-radius: 0px; }`;
    document.head.append(style);
    window.chat.strings = { send: "Envoyer", placeholder: "Votre message", conversation: "Discussion" };
    document.documentElement.dir = "rtl";
  });
  const looks = await page.evaluate(() => {
    const send = window.chat.shadowRoot.querySelector(".send");
    const cs = getComputedStyle(send);
    return { bg: cs.backgroundColor, radius: cs.borderRadius, text: send.textContent, label: window.chat.shadowRoot.querySelector("textarea").getAttribute("aria-label") };
  });
  assert.deepEqual(looks, { bg: "rgb(0, 90, 0)", radius: "0px", text: "Envoyer", label: "Votre message" });
  await typeAndEnter(page, "مرحبا");
  await until(page, `root.querySelectorAll("li.ai_agent[data-status=sent]").length === 1`);
  // Right to left: the user's bubble on the left now.
  const side = await page.evaluate(() => {
    const mine = window.chat.shadowRoot.querySelector("li.appuser").getBoundingClientRect();
    const log = window.chat.shadowRoot.querySelector("ol").getBoundingClientRect();
    return mine.left - log.left < log.right - mine.right ? "left" : "right";
  });
  assert.equal(side, "left");
  await axe(page, "translated, right to left");
  // The typing dots move, unless the user asked for less motion.
  const dots = () => page.evaluate(() => getComputedStyle(window.chat.shadowRoot.querySelector(".typing"), "::after").animationName);
  assert.equal(await dots(), "valet-dots");
  await page.emulateMedia({ reducedMotion: "reduce" });
  assert.equal(await dots(), "none");
  await page.emulateMedia({ reducedMotion: "no-preference" });
  for (const [name, width] of [["phone", 320], ["desktop", 1280]]) {
    await page.setViewportSize({ width, height: 720 });
    const fits = await page.evaluate(() => window.chat.shadowRoot.querySelector(".chat").scrollWidth <= window.chat.clientWidth + 1);
    assert.ok(fits, `nothing overflows sideways on a ${name}`);
    await page.screenshot({ path: join(SHOTS, `rtl-${name}.png`) });
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test("one element, one stream: moved in the page it keeps its convo; removed, its stream closes", { skip: CHROMIUM_ONLY }, async () => {
  await server.waitStats("no stream left", (s) => s.live_streams === 0);
  const opened = (await server.stats()).streams_opened_total;
  const { page, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  await typeAndEnter(page, "before the move");
  await until(page, `root.querySelectorAll("li.ai_agent[data-status=sent]").length === 1`);
  await page.evaluate(() => document.body.append(window.chat)); // a move: disconnected, connected again
  await page.waitForTimeout(300);
  assert.equal((await bubbles(page)).length, 2);
  assert.equal((await server.stats()).streams_opened_total - opened, 1, "the move opened no stream");
  await page.evaluate(() => window.chat.remove());
  await server.waitStats("the stream closed", (s) => s.live_streams === 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test("convo-id: set to another convo, the element shows that one (its history once), and sends go there", { skip: CHROMIUM_ONLY }, async () => {
  const { page, user, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  const first = await page.evaluate(() => window.chat.convoId);
  await typeAndEnter(page, "in the first");
  await until(page, `root.querySelectorAll("li.ai_agent[data-status=sent]").length === 1`);
  const second = await server.session(user);
  await server.admin(`/convos/${second}/messages`, { content: "from a teammate", from: "human_agent" });
  await page.evaluate((id) => (window.chat.convoId = id), second);
  await until(page, `chat.convoId === arg && chat.dataset.status === "connected" && root.querySelectorAll("li[data-key]").length === 1`, second);
  assert.deepEqual(await bubbles(page), [["human_agent", "sent", "from a teammate"]]);
  await typeAndEnter(page, "in the second");
  await until(page, `root.querySelectorAll("li.ai_agent[data-status=sent]").length === 1`);
  assert.deepEqual((await server.history(user, second)).map((m) => m.content), ["from a teammate", "in the second", replyTo("in the second")]);
  assert.deepEqual((await server.history(user, first)).map((m) => m.content), ["in the first", replyTo("in the first")]);
  assert.deepEqual(errors, []);
  await page.close();
});

test("properties set before the element is defined (a framework rendering before the import) still apply", { skip: CHROMIUM_ONLY }, async () => {
  const { page, user, errors } = await open();
  await until(page, `chat.dataset.status === "connected"`);
  // An element of another name, upgraded after its properties were set.
  await page.evaluate(async (user) => {
    const el = document.createElement("late-chat");
    el.greeting = "set before the upgrade";
    el.fetchJwt = () => fetch("/dev/jwt?source_key=" + encodeURIComponent(user)).then((r) => r.json()).then((j) => j.token);
    el.setAttribute("agent-id", "00000000-0000-4000-8000-00000000a9e1");
    el.setAttribute("base-url", "/");
    el.id = "late";
    document.body.append(el);
    const { ValetChatElement } = await import("/sdk/element.js");
    customElements.define("late-chat", class extends ValetChatElement {});
  }, user);
  await eventually("the late element connected", () => page.evaluate(() => document.getElementById("late").dataset.status === "connected"));
  assert.equal(await page.evaluate(() => document.getElementById("late").shadowRoot.querySelector(".greeting").textContent), "set before the upgrade");
  assert.deepEqual(errors, []);
  await page.close();
});

test("not set up: it says what it needs instead of failing silently", { skip: CHROMIUM_ONLY }, async () => {
  const { page } = await open();
  await page.evaluate(() => {
    const el = document.createElement("valet-chat");
    el.id = "bare";
    document.body.append(el);
  });
  await eventually("the message", () =>
    page.evaluate(() => document.getElementById("bare").shadowRoot.querySelector(".error").textContent.includes("needs agent-id and jwt-url")),
  );
  await page.close();
});
