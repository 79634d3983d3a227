// Tabs of one browser share their tokens: one `fetchJwt` call per refresh
// for all of them, and no tab uses a token another tab saw refused. Each
// page records its `fetchJwt` calls and the token of every request it makes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { sdkEnv } from "./harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
let env, server, site, browser;

before(async () => {
  // Tokens live 10 s: refreshed ahead at half-life; the stream's
  // `auth_expiring` comes 2 s before expiry.
  env = await sdkEnv(["--ping-interval-ms", "300", "--auth-expiring-lead-ms", "2000"]);
  ({ server, site, browser } = env);
});

after(async () => env?.close());

const newConvo = (name) => server.newConvo(name);

/** A tab in the convo whose `fetchJwt` mints `ttl`-second tokens; it records calls and requests. */
async function tokenTab({ sourceKey, convoId }, ttl) {
  const page = await env.page();
  await page.evaluate(async ({ base, AGENT, sourceKey, convoId, ttl }) => {
    const jwt = window.h.makeFetchJwt(base, sourceKey, { ttl });
    const calls = [];
    const fetchJwt = () => {
      calls.push(Date.now());
      return jwt.fetchJwt();
    };
    const requests = [];
    const fetch0 = window.fetch;
    window.fetch = async (input, init) => {
      // As `fetch` takes it: a Request, or a URL and its init.
      const request = new Request(input, init);
      const auth = request.headers.get("authorization");
      const res = await fetch0(input, init);
      if (auth) requests.push({ url: request.url, token: auth.replace(/^Bearer /, ""), status: res.status, at: Date.now() });
      return res;
    };
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false });
    const convo = await client.openConvo({ convoId });
    window.t = { client, convo, calls, requests, rec: window.h.record(convo) };
  }, { base: server.base, AGENT, sourceKey, convoId, ttl });
  return page;
}

const calls = (page) => page.evaluate(() => window.t.calls);
const requests = (page) => page.evaluate(() => window.t.requests);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Sends one message from each tab; every tab gets them all once, in one order. */
async function everyoneHearsEveryone(pages) {
  // What every tab has so far (the same in each, once this has run before), plus each message and its reply.
  const before = await pages[0].evaluate(() => window.t.rec.message.length);
  for (const [k, p] of pages.entries()) await p.evaluate((k) => window.t.convo.send(`from tab ${k}`), k);
  const n = before + pages.length * 2;
  const lists = [];
  for (const p of pages) {
    await p.evaluate((n) => window.h.until(() => window.t.rec.message.length >= n, `${n} messages`, 30000), n);
    lists.push(await p.evaluate(() => window.t.rec.message.map((m) => m.message.id)));
  }
  for (const l of lists) {
    assert.equal(new Set(l).size, l.length, "none twice");
    assert.deepEqual(l, lists[0], "one order");
  }
}

test("three tabs share every refresh: one fetchJwt call per refresh across the tabs", async () => {
  const c = await newConvo("share");
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await tokenTab(c, 10));
  await sleep(17_000); // three refreshes of 10-second tokens, at half-life
  const all = await Promise.all(pages.map(calls));
  // Each tab's first token is its own; the tabs then agree on one, and
  // every refresh after is one call in one tab, the others taking its token.
  const refreshes = all.flatMap((list) => list.slice(1)).sort((a, b) => a - b);
  const rounds = [];
  for (const at of refreshes) {
    if (rounds.length && at - rounds.at(-1).at(-1) < 1500) rounds.at(-1).push(at);
    else rounds.push([at]);
  }
  assert.ok(rounds.length >= 2, `refreshes happened: ${JSON.stringify(all)}`);
  for (const r of rounds) assert.equal(r.length, 1, `one fetchJwt call per refresh, across the tabs: ${JSON.stringify(all)}`);
  await everyoneHearsEveryone(pages);
  const last = await Promise.all(pages.map(async (p) => (await requests(p)).at(-1).token));
  assert.equal(new Set(last).size, 1, "every tab's latest request carried the same token");
  for (const p of pages) await p.close();
});

test("a token the server refused in one tab is used by no tab; its replacement is one fetchJwt call", async () => {
  const c = await newConvo("refused");
  const a = await tokenTab(c, 600);
  const b = await tokenTab(c, 600);
  await server.waitStats("one stream", (s) => s.live_streams_by_convo[c.convoId] === 1);
  await everyoneHearsEveryone([a, b]);
  const shared = await Promise.all([a, b].map(async (p) => (await requests(p)).at(-1).token));
  assert.equal(shared[0], shared[1], "the two tabs send with one token");
  const leader = (await a.evaluate(() => window.t.convo.role)) === "leader" ? a : b;
  const before = (await calls(a)).length + (await calls(b)).length;
  // The leader's next stream request is refused with a 401.
  await server.admin("/faults", { route: "events", status: 401, count: 1 });
  await server.admin("/streams/drop", { convo_id: c.convoId });
  const refused = await leader.evaluate(() =>
    window.h.until(() => window.t.requests.find((r) => r.status === 401), "the 401", 20000),
  );
  assert.equal(refused.token, shared[0], "the shared token was refused");
  await server.waitStats("the stream back", (s) => s.live_streams_by_convo[c.convoId] === 1);
  await sleep(500);
  await everyoneHearsEveryone([a, b]);
  for (const p of [a, b]) {
    const after = (await requests(p)).filter((r) => r.at > refused.at);
    assert.ok(after.length > 0, "the tab made requests after the refusal");
    assert.ok(after.every((r) => r.token !== refused.token), "the refused token is never sent again, by either tab");
  }
  const fetchedAfter = (await calls(a)).length + (await calls(b)).length - before;
  assert.equal(fetchedAfter, 1, "one fetchJwt call replaced it, for both tabs");
  for (const p of [a, b]) await p.close();
});
