// Several tabs of one browser profile on one convo: one stream, every tab
// gets every event once, in the same order, across leader changes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv, unlessEngineCan } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  env = await sdkEnv(["--ping-interval-ms", "300", "--rate-limit-messages", "200"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

const newConvo = (name) => server.newConvo(name);

/** A page with the SDK loaded (optionally without Web Locks), not yet in the convo. */
function tabPage({ noLocks = false, tab = false } = {}) {
  return env.page({ query: noLocks ? "?nolocks" : "", tab });
}

/** Opens the convo in a page and records everything (role events too). */
function join(page, { sourceKey, convoId }) {
  return page.evaluate(async ({ base, AGENT, sourceKey, convoId }) => {
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false });
    const convo = await client.openConvo({ convoId });
    const rec = window.h.record(convo);
    rec.role = [];
    convo.on("role", (r) => rec.role.push(r.role));
    window.t = { client, convo, rec };
  }, { base: server.base, AGENT, sourceKey, convoId });
}

const ids = (page) => page.evaluate(() => window.t.rec.message.map((m) => m.message.id));
const texts = (page) => page.evaluate(() => window.t.rec.message.map((m) => m.message.content));
const role = (page) => page.evaluate(() => window.t.convo.role);
const send = (page, text) => page.evaluate((text) => window.t.convo.send(text), text);
const waitMessages = (page, n) =>
  page.evaluate((n) => window.h.until(() => window.t.rec.message.length >= n, `${n} messages`, 30000), n);

async function leaderOf(pages) {
  for (let i = 0; i < 100; i++) {
    const roles = await Promise.all(pages.map(role));
    const leaders = pages.filter((_, k) => roles[k] === "leader");
    if (leaders.length === 1) return leaders[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no single leader");
}

async function streamsOf(convoId) {
  return (await server.stats()).live_streams_by_convo[convoId] ?? 0;
}

async function settledStreams(convoId, n) {
  await server.waitStats(`${n} stream(s) for the convo`, (s) => (s.live_streams_by_convo[convoId] ?? 0) === n);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await streamsOf(convoId), n, "and it stays so");
}

/** Tab A joins, then tab B: settled on one stream, A leading. */
async function aLeadsB(c, noLocks) {
  const a = await tabPage({ noLocks });
  await join(a, c);
  const b = await tabPage({ noLocks });
  await join(b, c);
  await settledStreams(c.convoId, 1);
  assert.equal(await role(a), "leader");
  return [a, b];
}

/** Three tabs in the convo, settled on one stream: the leader and the others. */
async function threeTabsWithLeader(c, noLocks) {
  const pages = [await tabPage({ noLocks }), await tabPage({ noLocks }), await tabPage({ noLocks })];
  for (const p of pages) await join(p, c);
  await settledStreams(c.convoId, 1);
  const leader = await leaderOf(pages);
  return { leader, rest: pages.filter((p) => p !== leader) };
}

/** Every page got exactly these messages once, in one order. */
async function sameMessagesOnce(pages, n) {
  for (const p of pages) await waitMessages(p, n);
  await new Promise((r) => setTimeout(r, 500)); // duplicates would arrive by now
  const all = await Promise.all(pages.map(ids));
  for (const list of all) {
    assert.equal(list.length, n, `each tab has ${n} messages: ${list.length}`);
    assert.equal(new Set(list).size, n, "none twice");
    assert.deepEqual(list, all[0], "the same order in every tab");
  }
}

for (const noLocks of [false, true]) {
  const label = noLocks ? " (no Web Locks)" : "";

  test(`3 tabs: one stream; messages sent from each tab arrive once, in the same order, in all 3${label}`, async () => {
    const c = await newConvo("three");
    const pages = [await tabPage({ noLocks }), await tabPage({ noLocks }), await tabPage({ noLocks })];
    for (const p of pages) await join(p, c);
    await settledStreams(c.convoId, 1);
    await leaderOf(pages);
    for (let round = 0; round < 2; round++) for (const [k, p] of pages.entries()) await send(p, `tab ${k} round ${round}`);
    await sameMessagesOnce(pages, 12); // 6 sent + 6 replies
    const mine = (await texts(pages[0])).filter((t) => t.startsWith("tab "));
    assert.equal(mine.length, 6);
    for (const p of pages) await p.close();
    await settledStreams(c.convoId, 0);
  });

  test(`2 tabs opened in the same instant settle on one stream, no duplicates${label}`, async () => {
    const c = await newConvo("same-instant");
    const pages = [await tabPage({ noLocks }), await tabPage({ noLocks })];
    await Promise.all(pages.map((p) => join(p, c)));
    await settledStreams(c.convoId, 1);
    await send(pages[1], "hello both");
    await sameMessagesOnce(pages, 2);
    for (const p of pages) await p.close();
  });

  test(`leader closed: a follower takes over and nothing sent during the handover is lost or doubled${label}`, async () => {
    const c = await newConvo("closed-leader");
    const { leader, rest } = await threeTabsWithLeader(c, noLocks);
    await send(rest[0], "before");
    const roles = async () => Promise.all(rest.map((p) => p.evaluate(() => window.t.rec.role.slice())));
    const rolesBefore = await roles();
    await leader.close(); // pagehide: resigns (naming its heir) and releases the lock
    await send(rest[1], "during handover");
    await server.admin(`/convos/${c.convoId}/messages`, { content: "from a human, during handover" });
    await leaderOf(rest);
    await send(rest[0], "after");
    await sameMessagesOnce(rest, 7);
    await settledStreams(c.convoId, 1);
    // One tab took over: not every follower at once, each opening a stream
    // held against the user's cap of two until the duel settles.
    const took = (await roles()).filter((r, k) => r.slice(rolesBefore[k].length).includes("leader"));
    assert.equal(took.length, 1, "one tab took the lead");
    for (const p of rest) await p.close();
  });

  test(`leader crashed (renderer crash): a follower takes over, nothing lost or doubled${label}`, { skip: unlessEngineCan("cdp") }, async () => {
    const c = await newConvo("crashed-leader");
    const { leader, rest } = await threeTabsWithLeader(c, noLocks);
    await send(rest[0], "before");
    const cdp = await leader.context().newCDPSession(leader);
    cdp.send("Page.crash").catch(() => {});
    await send(rest[1], "during crash");
    await leaderOf(rest);
    await send(rest[0], "after");
    await sameMessagesOnce(rest, 6);
    await settledStreams(c.convoId, 1);
    for (const p of rest) await p.close();
    await leader.close().catch(() => {});
  });

  // CDP's Page.setWebLifecycleState "frozen" is a no-op on a visible page in
  // this headless Chromium (timers keep running; checked), so the freeze is
  // made with the debugger: the page runs no JS at all, keeps its Web Lock and
  // its open stream, exactly as a frozen tab does.
  test(`leader frozen: a follower takes over; thawed, the old leader stands down${label}`, { skip: unlessEngineCan("cdp") }, async () => {
    const c = await newConvo("frozen-leader");
    const pages = [await tabPage({ noLocks }), await tabPage({ noLocks })];
    for (const p of pages) await join(p, c);
    await settledStreams(c.convoId, 1);
    const leader = await leaderOf(pages);
    const follower = pages.find((p) => p !== leader);
    await send(follower, "before");
    await waitMessages(follower, 2);
    const cdp = await leader.context().newCDPSession(leader);
    await cdp.send("Debugger.enable");
    await cdp.send("Debugger.pause");
    await follower.evaluate(() => window.h.until(() => window.t.convo.role === "leader", "the follower to lead", 20000));
    await send(follower, "while frozen");
    await waitMessages(follower, 4);
    await cdp.send("Debugger.resume");
    await cdp.send("Debugger.disable");
    await leader.evaluate(() => window.h.until(() => window.t.convo.role === "follower", "the thawed leader to stand down", 20000));
    await settledStreams(c.convoId, 1);
    await send(leader, "after thaw");
    await sameMessagesOnce(pages, 6);
    for (const p of pages) await p.close();
  });

  test(`a follower opened late gets the whole history once${label}`, async () => {
    const c = await newConvo("late");
    const first = await tabPage({ noLocks });
    await join(first, c);
    for (const text of ["one", "two", "three"]) await send(first, text);
    await waitMessages(first, 6);
    const late = await tabPage({ noLocks });
    await join(late, c);
    assert.equal(await role(late), "follower");
    await sameMessagesOnce([first, late], 6);
    const fromHistory = await late.evaluate(() => window.t.rec.message.every((m) => m.from_reconcile));
    assert.ok(fromHistory, "the late tab's history came from its own reconcile");
    await send(late, "from the late tab");
    await sameMessagesOnce([first, late], 8);
    await first.close();
    await late.close();
  });

  test(`garbage posted on the channel changes nothing${label}`, async () => {
    const c = await newConvo("garbage");
    const pages = [await tabPage({ noLocks }), await tabPage({ noLocks })];
    for (const p of pages) await join(p, c);
    await settledStreams(c.convoId, 1);
    const leader = await leaderOf(pages);
    const rogue = await tabPage({ noLocks });
    await rogue.evaluate(({ AGENT, convoId }) => {
      const ch = new BroadcastChannel(`valet-events:${AGENT}:${convoId}`);
      const junk = [
        "not json", "{}", 42, null, { kind: "heartbeat" }, [1, 2, 3], new Uint8Array([1, 2]),
        JSON.stringify({ sdk: "valet-sdk", v: 99, tab: "x", gen: 1e9, body: { kind: "heartbeat", visible: true } }),
        JSON.stringify({ sdk: "other", v: 1, tab: "x", gen: 1e9, body: { kind: "heartbeat", visible: true } }),
        JSON.stringify({ sdk: "valet-sdk", v: 1, tab: "x", gen: 0, body: { kind: "event", name: "message", json: "{", many: false } }),
        JSON.stringify({ sdk: "valet-sdk", v: 2, tab: "x", gen: 0, body: { kind: "events", sse: "event: message\ndata: {\n\n" } }),
        JSON.stringify({ sdk: "valet-sdk", v: 2, tab: "x", gen: 1, body: { kind: "presence", visible: true } }),
      ];
      for (const j of junk) ch.postMessage(j);
      ch.close();
    }, { AGENT, convoId: c.convoId });
    await send(pages[0], "still fine");
    await sameMessagesOnce(pages, 2);
    assert.equal(await leaderOf(pages), leader, "the leader did not change");
    await settledStreams(c.convoId, 1);
    for (const p of [...pages, rogue]) await p.close();
  });

  // The sequence that left tabs deaf: a frozen leader is replaced, thaws and
  // follows, then the new leader closes. Someone must lead and every tab
  // must hear it; and a tab opened later must be heard too.
  test(`frozen leader replaced, thawed, then the new leader closes: the thawed tab leads and hears everything, and so does a late tab${label}`, { skip: unlessEngineCan("cdp") }, async () => {
    const c = await newConvo("deaf");
    const [a, b] = await aLeadsB(c, noLocks);
    const cdp = await a.context().newCDPSession(a);
    await cdp.send("Debugger.enable");
    await cdp.send("Debugger.pause");
    await new Promise((r) => setTimeout(r, 6000)); // longer than the lease
    assert.equal(await role(b), "leader", "B stole the lease");
    await cdp.send("Debugger.resume");
    await cdp.send("Debugger.disable");
    await a.evaluate(() => window.h.until(() => window.t.convo.role === "follower", "the thawed tab to follow", 20000));
    await settledStreams(c.convoId, 1);
    await b.close(); // the new leader goes away
    await a.evaluate(() => window.h.until(() => window.t.convo.role === "leader", "A to lead again", 20000));
    await settledStreams(c.convoId, 1);
    await send(a, "A is not deaf");
    await waitMessages(a, 2);
    const late = await tabPage({ noLocks });
    await join(late, c);
    await settledStreams(c.convoId, 1);
    await send(late, "from the late tab");
    await server.admin(`/convos/${c.convoId}/messages`, { content: "from a human" });
    await sameMessagesOnce([a, late], 5);
    assert.deepEqual(
      (await texts(a)).filter((t) => !t.startsWith("You said")),
      ["A is not deaf", "from the late tab", "from a human"],
    );
    for (const p of [a, late]) await p.close();
    await settledStreams(c.convoId, 0);
  });

  // A lone tab posts no frames on the channel (nobody listens); a tab that
  // joins says hello, is acknowledged, fetches the history and hears the
  // rest; frames go out a chunk per message.
  test(`the leader relays only while another tab listens${label}`, async () => {
    const c = await newConvo("relay-listeners");
    const a = await tabPage({ noLocks });
    await join(a, c);
    await settledStreams(c.convoId, 1);
    // A raw listener on the channel, in the leader's own page (it does not
    // say hello, so it does not count as listening).
    await a.evaluate(({ AGENT, convoId }) => {
      const ch = new BroadcastChannel(`valet-events:${AGENT}:${convoId}`);
      window.kinds = [];
      window.frames = 0;
      ch.onmessage = (e) => {
        const env = JSON.parse(e.data);
        window.kinds.push(env.body.kind);
        if (env.body.kind === "events") window.frames += (env.body.sse.match(/^event: message$/gm) ?? []).length;
      };
    }, { AGENT, convoId: c.convoId });
    for (let i = 0; i < 5; i++) await server.admin(`/convos/${c.convoId}/messages`, { content: `alone ${i}` });
    await waitMessages(a, 5);
    await new Promise((r) => setTimeout(r, 1500));
    const alone = await a.evaluate(() => window.kinds);
    assert.ok(alone.includes("heartbeat"), `the leader heartbeats: ${alone}`);
    assert.ok(!alone.includes("events"), `nothing relayed while alone: ${alone}`);

    const b = await tabPage({ noLocks });
    await join(b, c);
    await waitMessages(b, 5); // the history, once acknowledged
    await a.evaluate(() => { window.kinds = []; window.frames = 0; });
    await send(b, "joined");
    await sameMessagesOnce([a, b], 7);
    const after = await a.evaluate(() => ({ kinds: window.kinds, frames: window.frames }));
    const posts = after.kinds.filter((k) => k === "events").length;
    assert.ok(posts >= 1, `relayed once a tab listens: ${after.kinds}`);
    assert.ok(after.frames >= 2, `the sent message and its reply were relayed: ${after.frames}`);
    assert.equal(await role(b), "follower");
    await settledStreams(c.convoId, 1);
    await b.close();
    await a.close();
  });

  // A real background tab: Firefox hides the page a new tab covers (headless
  // Chromium keeps every page visible, so there it is tested natively only).
  test(`a leader hidden behind a new tab hands the stream to a visible tab; nothing lost or doubled${label}`, { skip: unlessEngineCan("tabs") }, async () => {
    const c = await newConvo("hidden-leader");
    const [a, b] = await aLeadsB(c, noLocks);
    await send(b, "before");
    await sameMessagesOnce([a, b], 2);
    await a.bringToFront();
    const cover = await tabPage({ noLocks, tab: true }); // in front of A, in A's window
    assert.equal(await a.evaluate(() => document.visibilityState), "hidden", "the new tab hides A");
    await b.evaluate(() => window.h.until(() => window.t.convo.role === "leader", "the visible tab to lead", 20000));
    assert.equal(await role(a), "follower");
    await send(b, "after the handover");
    await server.admin(`/convos/${c.convoId}/messages`, { content: "from a human, while A is hidden" });
    await sameMessagesOnce([a, b], 5);
    await settledStreams(c.convoId, 1);
    for (const p of [cover, a, b]) await p.close();
    await settledStreams(c.convoId, 0);
  });

  test(`followers report the shared stream's status: connected, then reconnecting and connected after a drop${label}`, async () => {
    const c = await newConvo("status");
    const pages = [await tabPage({ noLocks }), await tabPage({ noLocks }), await tabPage({ noLocks })];
    for (const p of pages) await join(p, c);
    await settledStreams(c.convoId, 1);
    const leader = await leaderOf(pages);
    const followers = pages.filter((p) => p !== leader);
    for (const f of followers) {
      await f.evaluate(() => window.h.until(() => window.t.convo.status === "connected", "a follower to report connected", 20000));
    }
    const before = await Promise.all(followers.map((f) => f.evaluate(() => window.t.rec.status.length)));
    await server.admin("/streams/drop", { convo_id: c.convoId });
    for (const [k, f] of followers.entries()) {
      const seen = await f.evaluate((from) => window.h.until(() => {
        const s = window.t.rec.status.slice(from).map((e) => e.status);
        return s.includes("reconnecting") && s.at(-1) === "connected" && s;
      }, "reconnecting then connected", 30000), before[k]);
      assert.ok(seen.indexOf("reconnecting") < seen.lastIndexOf("connected"), JSON.stringify(seen));
      assert.equal(await f.evaluate(() => window.t.convo.status), "connected");
    }
    for (const p of pages) await p.close();
  });
}

test("a tab opened after the convo closed shows the server's text, as the tab that was open does", async () => {
  const c = await newConvo("late-closed");
  const a = await tabPage();
  await join(a, c);
  await send(a, "/resolve");
  await a.evaluate(() => window.h.until(() => window.t.rec.convo_state.length >= 1, "the closed state", 30000));
  const said = await a.evaluate(() => window.t.rec.convo_state.at(-1).closed_user_message);
  assert.match(said, /resolved/);
  // A second tab, through the store as an app shows it: the same words.
  const b = await tabPage();
  const shown = await b.evaluate(async ({ base, AGENT, sourceKey, convoId }) => {
    const { createConvoStore, convoStateOf } = await import("/pkg/store.js");
    const pkg = await import("/pkg/index.js");
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new pkg.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false });
    const store = createConvoStore(() => client.openConvo({ convoId }), { convoState: convoStateOf(client, convoId) });
    const state = await window.h.until(() => {
      const s = store.getState();
      return s.role === "follower" && s.cannotSend?.text ? s : null;
    }, "the closed text in the late tab", 30000);
    const states = [];
    store.on("convo_state", (e) => states.push(e.state));
    await new Promise((r) => setTimeout(r, 1500)); // told once: no repeat comes
    store.close();
    return { reason: state.cannotSend.reason, text: state.cannotSend.text, repeats: states.length };
  }, { base: server.base, AGENT, sourceKey: c.sourceKey, convoId: c.convoId });
  assert.deepEqual(shown, { reason: "closed", text: said, repeats: 0 });
  // The tab that was open heard the state once.
  assert.equal(await a.evaluate(() => window.t.rec.convo_state.length), 1);
  await a.close();
  await b.close();
});
