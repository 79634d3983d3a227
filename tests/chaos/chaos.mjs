// The chaos suite: three tabs of one browser on one convo send a steady
// stream of messages while seeded faults fire at seeded times; at the end,
// after a settle, every invariant a user relies on is checked.
//
// Only the public API is used in the pages. Faults: server SIGKILL and
// restart on the same SQLite file; streams ended with each `closed` reason
// and without one; stalls; malformed and duplicate frames; 5xx and 429
// bursts on each route the SDK uses (`upload_file`, `sessions` and
// `list_convos` are not: the tabs send text into one open convo); a tab
// offline and back; the leader closed, crashed (`Page.crash`) and frozen
// (`Debugger.pause`) past the lease; a follower frozen (crash and freezes
// need Chromium's DevTools: a run in another engine leaves them out);
// every tab closed and reopened; `fetchJwt` slow, failing and hanging;
// tokens living 10–20 s; bursts of injected agent messages.
//
// Invariants: every live tab's `message` handler saw every stored message
// exactly once, in server order; every `send()` that resolved is stored
// exactly once; no send rejected without `maybeStored` is stored; no text is
// ever stored twice; the server never held more streams than its cap, and
// holds none once every tab has closed.
//
// `runChaos({ seed, transport, durationMs })` returns a report; a violated
// invariant throws with the seed and the fault timeline.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchBrowser, loadSdk, startServer, startStatic, ROOT, LIVENESS_MS } from "../browser/harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
const STREAM_CAP = 2;
const LEASE_MS = 3000;

/** SplitMix64 on BigInt: the same sequence for the same seed. */
function rng(seed) {
  let s = BigInt(seed) & 0xffffffffffffffffn;
  const M = 0xffffffffffffffffn;
  const next = () => {
    s = (s + 0x9e3779b97f4a7c15n) & M;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return Number((z ^ (z >> 31n)) >> 11n) / 2 ** 53;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The fault kinds, each `async (ctx, r) => detail`. */
const FAULTS = {
  async server_kill(ctx, r) {
    const down = r.int(800, 2500);
    await ctx.server.kill();
    await sleep(down);
    await ctx.server.restart();
    // Recovery: from the restart until every live tab has a message stored then.
    const back = Date.now();
    const probe = `probe-${ctx.restarts.length}`;
    await ctx.admin(`/convos/${ctx.convoId}/messages`, { content: probe });
    const deadline = back + 3 * LIVENESS_MS;
    for (;;) {
      const got = await Promise.all(ctx.tabs.filter((t) => t.page && !t.frozen).map((t) => t.eval((p) => window.chaos?.probes.includes(p), probe)));
      if (got.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error(`no tab recovered within ${3 * LIVENESS_MS} ms of the server's restart`);
      await sleep(20);
    }
    ctx.restarts.push(Date.now() - back);
    return `down ${down} ms, every tab had a new message ${Date.now() - back} ms after the restart`;
  },
  async stream_end(ctx, r) {
    // Each `closed` reason, in a seeded order, a moment apart.
    const reasons = ["server_cap", "shutdown", "auth_expiring", "stalled"].sort(() => r.next() - 0.5);
    for (const reason of reasons) {
      await ctx.admin("/streams/end", { convo_id: ctx.convoId, reason });
      await sleep(r.int(300, 1200));
    }
    return reasons.join(", ");
  },
  async stream_drop(ctx) {
    await ctx.admin("/streams/drop", { convo_id: ctx.convoId });
  },
  async stall(ctx) {
    await ctx.admin("/streams/stall", { convo_id: ctx.convoId });
  },
  async malformed(ctx) {
    await ctx.admin("/streams/malformed", { convo_id: ctx.convoId });
  },
  async duplicate(ctx) {
    await ctx.admin("/streams/duplicate", { convo_id: ctx.convoId });
    await ctx.admin(`/convos/${ctx.convoId}/messages`, { content: `dup-probe-${ctx.timeline.length}` });
  },
  async burst_5xx(ctx, r) {
    // On each route the SDK uses, at once.
    const done = [];
    for (const route of ctx.routes) {
      const status = r.pick([500, 502, 503]);
      const count = r.int(2, 4);
      await ctx.admin("/faults", { route, status, count });
      done.push(`${route} ${status} x${count}`);
    }
    return done.join(", ");
  },
  async burst_429(ctx, r) {
    const done = [];
    for (const route of ctx.routes) {
      const count = r.int(1, 2);
      await ctx.admin("/faults", {
        route, status: 429, retry_after: 1, count,
        body: { status: "rate_limited", convo_id: ctx.convoId, state: "open", retry_after_seconds: 1 },
      });
      done.push(`${route} x${count}`);
    }
    return done.join(", ");
  },
  async tab_offline(ctx, r) {
    const tab = r.pick(ctx.tabs.filter((t) => t.page));
    const ms = r.int(1000, 4000);
    await tab.offline(true);
    await sleep(ms);
    await tab.offline(false);
    return `${tab.name} ${ms} ms`;
  },
  async leader_close(ctx) {
    const tab = await ctx.leader();
    if (!tab) return "no leader";
    await tab.close();
    await tab.open();
    return tab.name;
  },
  async leader_crash(ctx) {
    const tab = await ctx.leader();
    if (!tab) return "no leader";
    await tab.crash();
    await tab.open();
    return tab.name;
  },
  async leader_freeze(ctx, r) {
    const tab = await ctx.leader();
    if (!tab) return "no leader";
    const ms = LEASE_MS + r.int(1000, 2500);
    await tab.freeze(ms);
    return `${tab.name} ${ms} ms`;
  },
  async follower_freeze(ctx, r) {
    const leader = await ctx.leader();
    const tab = r.pick(ctx.tabs.filter((t) => t.page && t !== leader));
    const ms = r.int(1500, 5000);
    await tab.freeze(ms);
    return `${tab.name} ${ms} ms`;
  },
  async all_reopen(ctx) {
    for (const t of ctx.tabs) await t.close();
    await sleep(300);
    for (const t of ctx.tabs) await t.open();
  },
  async jwt_trouble(ctx, r) {
    // fetchJwt slow, failing and hanging, each for a while, in a seeded order.
    const done = [];
    for (const mode of ["slow", "fail", "hang"].sort(() => r.next() - 0.5)) {
      const ms = r.int(1500, 3000);
      for (const t of ctx.tabs) await t.eval((m) => window.chaos?.setJwtMode(m), mode);
      await sleep(ms);
      done.push(`${mode} ${ms} ms`);
    }
    for (const t of ctx.tabs) await t.eval(() => window.chaos?.setJwtMode("ok"));
    return done.join(", ");
  },
  async agent_burst(ctx, r) {
    const n = r.int(5, 15);
    for (let i = 0; i < n; i++) await ctx.admin(`/convos/${ctx.convoId}/messages`, { content: `burst-${ctx.timeline.length}-${i}`, from: "human_agent" });
    return `${n} messages`;
  },
};

/**
 * What a fault kind needs of the engine beyond the common page API
 * (`launchBrowser().can`): a run in an engine without it leaves the kind out.
 */
const NEEDS = { leader_crash: "cdp", leader_freeze: "cdp", follower_freeze: "cdp", tab_offline: "offline" };

/** The SDK debug lines kept per tab for the report of a broken invariant. */
const TRAIL = 400;

/** What runs in each page: the client, a recorder, and a steady send loop. */
async function startTab(page, { base, sourceKey, convoId, transport, tabName, report, sendEveryMs }) {
  await loadSdk(page, base.site);
  await page.evaluate(async ({ api, AGENT, sourceKey, convoId, transport, tabName, report, sendEveryMs }) => {
    let mode = "ok";
    let calls = 0;
    const fetchJwt = async () => {
      calls++;
      if (mode === "fail") throw new Error("backend down");
      if (mode === "hang") return new Promise(() => {});
      if (mode === "slow") await new Promise((r) => setTimeout(r, 1500));
      const ttl = 10 + ((calls * 7) % 11); // tokens living 10–20 s
      const res = await fetch(`${api}/dev/jwt`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ source_key: sourceKey, ttl_seconds: ttl }),
      });
      return (await res.json()).token;
    };
    const client = new window.sdk.ValetClient({
      agentId: AGENT, fetchJwt, baseUrl: api, transport, pauseOnHidden: false, fetchJwtTimeoutMs: 3000, stallTimeoutMs: 4000, debug: true,
    });
    const seen = [];
    const chaos = { seen, probes: [], stopped: false, setJwtMode: (m) => { mode = m; }, pending: 0 };
    window.chaos = chaos;
    let convo;
    for (let i = 0; ; i++) {
      try { convo = await client.openConvo({ convoId }); break; } catch (e) {
        if (i > 40) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    chaos.convo = convo;
    convo.on("message", ({ message }) => {
      seen.push(message.id);
      if (message.content.startsWith("probe-")) chaos.probes.push(message.content);
    });
    let n = 0;
    chaos.loop = setInterval(() => {
      if (chaos.stopped) return;
      const text = `${tabName}-${++n}`;
      chaos.pending++;
      window[report]("queued", text);
      convo.send(text).then(
        () => { chaos.pending--; window[report]("resolved", text); },
        (e) => { chaos.pending--; window[report]("rejected", text, { code: e.code, maybeStored: !!e.maybeStored }); },
      );
    }, sendEveryMs);
  }, { api: base.api, AGENT, sourceKey, convoId, transport, tabName, report, sendEveryMs });
}

/**
 * One seeded run. Returns `{ seed, transport, faults, messages, sends,
 * losses, duplicates, reorders, recoveryMs, timeline }`; throws on a
 * violated invariant (the message has the seed and the timeline).
 */
export async function runChaos({ seed, transport = "fetch", durationMs = 45_000, browser: given, log = () => {} }) {
  const r = rng(seed);
  const dir = mkdtempSync(join(tmpdir(), "valet-chaos-"));
  const server = await startServer(
    [
      "--ping-interval-ms", "500", "--rate-limit-messages", "100000", "--auth-expiring-lead-ms", "3000",
      "--stream-cap-retry-after-secs", "2", "--max-streams-per-user", String(STREAM_CAP),
    ],
    // The 5xx it is told to answer are not news: no log line for each.
    { db: join(dir, "valet.db"), log: "warn,tower_http=off" },
  );
  const site = await startStatic({ "/": join(ROOT, "tests/browser/fixtures"), "/wasm/": join(ROOT, "target/wasm/web") });
  const browser = given ?? (await launchBrowser());
  const report = `chaosReport_${seed}_${transport}_${Date.now()}`;
  const sends = new Map(); // text -> { state, code, maybeStored }
  await browser.context.exposeBinding(report, (_src, kind, text, extra = {}) => {
    sends.set(text, { state: kind, ...extra });
  });
  const sourceKey = `chaos-${seed}-${transport}-${Date.now()}`;
  const { token } = await server.jwt(sourceKey);
  const convoId = (await (await fetch(`${server.base}/api/v2/sessions`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).json()).convo_id;
  const timeline = [];
  const t0 = Date.now();
  const note = (what) => { timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`); log(timeline.at(-1)); };

  let incarnations = 0;
  const makeTab = (name) => {
    const tab = {
      name, page: null, cdpSession: null, frozen: false,
      // The SDK's debug lines (`debug: true`), the last TRAIL of them
      // across this tab's pages: shown for a tab that broke an invariant.
      trail: [],
      async open() {
        tab.page = await browser.context.newPage();
        tab.cdpSession = null;
        tab.page.on("pageerror", (e) => note(`page error in ${name}: ${e.message}`));
        tab.page.on("console", (m) => {
          if (!m.text().startsWith("[valet-sdk]")) return;
          tab.trail.push(`${((Date.now() - t0) / 1000).toFixed(2)}s ${m.text().slice(12)}`);
          if (tab.trail.length > TRAIL) tab.trail.shift();
        });
        await startTab(tab.page, {
          base: { site: site.origin, api: server.base }, sourceKey, convoId, transport,
          tabName: `${name}.${++incarnations}`, report, sendEveryMs: 400 + r.int(0, 300),
        });
      },
      async cdp() {
        tab.cdpSession ??= await tab.page.context().newCDPSession(tab.page);
        return tab.cdpSession;
      },
      /** Cuts the page from the network, or reconnects it. */
      async offline(on) {
        if (!browser.can.cdp) return tab.page.setOffline(on);
        const cdp = await tab.cdp();
        await cdp.send("Network.enable");
        await cdp.send("Network.emulateNetworkConditions", { offline: on, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      },
      async eval(fn, arg) {
        if (!tab.page || tab.frozen) return undefined;
        return tab.page.evaluate(fn, arg).catch(() => undefined);
      },
      async close() {
        if (tab.page) await tab.page.close().catch(() => {});
        tab.page = null;
      },
      async crash() {
        const cdp = await tab.cdp();
        cdp.send("Page.crash").catch(() => {});
        await sleep(300);
        await tab.page.close().catch(() => {});
        tab.page = null;
      },
      async freeze(ms) {
        const cdp = await tab.cdp();
        await cdp.send("Debugger.enable");
        await cdp.send("Debugger.pause");
        tab.frozen = true;
        await sleep(ms);
        // A page that ran no script since the pause request never paused:
        // nothing to resume (the fault was milder, not a failure).
        await cdp.send("Debugger.resume").catch((e) => {
          if (!/only perform operation while paused/.test(e.message)) throw e;
        });
        await cdp.send("Debugger.disable");
        tab.frozen = false;
      },
    };
    return tab;
  };
  const tabs = ["A", "B", "C"].map(makeTab);
  const admin = async (path, body) => {
    for (let i = 0; ; i++) {
      try { return await server.admin(path, body); } catch (e) {
        if (i > 50) throw e;
        await sleep(100); // the server may be restarting
      }
    }
  };
  let maxStreams = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const s = await server.stats();
        maxStreams = Math.max(maxStreams, s.live_streams_by_convo[convoId] ?? 0);
      } catch { /* down */ }
      await sleep(100);
    }
  })();
  const ctx = {
    server, convoId, transport, tabs, admin, timeline, restarts: [],
    // The routes the SDK uses in this run (tickets only with EventSource).
    routes: transport === "eventsource" ? ["events", "stream_ticket", "get_convo", "stream_message"] : ["events", "get_convo", "stream_message"],
    async leader() {
      for (const t of tabs) {
        if (t.page && (await t.eval(() => window.chaos?.convo?.role)) === "leader") return t;
      }
      return null;
    },
  };
  const faultsByKind = {};
  try {
    for (const t of tabs) await t.open();
    note("3 tabs open");
    // The kinds this engine can inject (see NEEDS).
    const kinds = Object.keys(FAULTS).filter((k) => !NEEDS[k] || browser.can[NEEDS[k]]);
    // Every kind once, in a seeded order, then seeded picks until the time is up.
    const order = [...kinds].sort(() => r.next() - 0.5);
    while (Date.now() - t0 < durationMs) {
      const kind = order.length ? order.shift() : r.pick(kinds);
      await sleep(r.int(500, 2500));
      note(`fault ${kind}…`);
      const detail = await FAULTS[kind](ctx, r);
      faultsByKind[kind] = (faultsByKind[kind] ?? 0) + 1;
      note(`fault ${kind} done${detail ? `: ${detail}` : ""}`);
    }
    const lastFault = Date.now();
    // Settle: no faults left, sends stopped and settled.
    await fetch(`${server.base}/dev/admin/faults`, { method: "DELETE", headers: { authorization: "Bearer dev-admin-secret" } });
    for (const t of tabs) await t.eval(() => { window.chaos.setJwtMode("ok"); window.chaos.stopped = true; });
    note("sends stopped; settling");
    const deadline = Date.now() + 3 * LIVENESS_MS;
    for (const t of tabs) {
      while ((await t.eval(() => window.chaos.pending)) > 0) {
        if (Date.now() > deadline) throw new Error(`${t.name}: sends still pending after the settle`);
        await sleep(100);
      }
    }
    // Quiet: the agent's replies to the last sends are stored (the count
    // holds still for a second).
    for (let last = -1, still = 0; still < 5; ) {
      const n = (await server.stats()).messages;
      still = n === last ? still + 1 : 0;
      last = n;
      if (Date.now() > deadline) break;
      await sleep(200);
    }
    // Convergence: every tab delivered what the server stored. The
    // invariants below are checked on the snapshot taken here.
    let history = [];
    let seenByTab = [];
    let recoveryMs = null; // from the end of the last fault to every tab having every message
    for (;;) {
      history = await server.history(sourceKey, convoId);
      const want = history.map((m) => m.id).join(",");
      seenByTab = await Promise.all(tabs.map((t) => t.eval(() => window.chaos.seen)));
      if (seenByTab.every((s) => s?.join(",") === want)) { recoveryMs = Date.now() - lastFault; break; }
      if (Date.now() > deadline) break; // checked below, with details
      await sleep(200);
    }
    note(`settled (${recoveryMs ?? "not converged"} ms after the last fault)`);

    // Invariants.
    const problems = [];
    const trails = [];
    const ids = history.map((m) => m.id);
    let losses = 0, duplicates = 0, reorders = 0;
    for (const [k, t] of tabs.entries()) {
      const seen = seenByTab[k] ?? [];
      const counts = new Map();
      for (const id of seen) counts.set(id, (counts.get(id) ?? 0) + 1);
      const lost = ids.filter((id) => !counts.has(id));
      const dup = [...counts.values()].filter((c) => c > 1).length;
      const order = seen.filter((id, i) => seen.indexOf(id) === i);
      const stored = new Set(ids);
      const phantom = order.filter((id) => !stored.has(id));
      const known = order.filter((id) => stored.has(id));
      const reordered = known.filter((id, i) => i > 0 && ids.indexOf(id) < ids.indexOf(known[i - 1])).length;
      losses += lost.length; duplicates += dup; reorders += reordered;
      if (lost.length || dup || reordered || phantom.length || seen.length !== ids.length) {
        const seqOf = (id) => history.find((m) => m.id === id)?.seq;
        const lostSeqs = lost.map(seqOf);
        const state = await t.eval(() => ({ role: window.chaos.convo.role, status: window.chaos.convo.status, metrics: window.chaos.convo.metrics() }));
        trails.push(`${t.name}'s last SDK debug lines:\n    ${t.trail.join("\n    ")}`);
        problems.push(`${t.name}: ${lost.length} lost (seq ${JSON.stringify(lostSeqs.length > 12 ? [...lostSeqs.slice(0, 6), "…", ...lostSeqs.slice(-6)] : lostSeqs)}), ${dup} twice, ${reordered} out of order, ${phantom.length} never stored ${JSON.stringify(phantom)} (saw ${seen.length}, stored ${ids.length}); tab: ${JSON.stringify(state)}`);
      }
    }
    const storedTexts = new Map();
    for (const m of history.filter((m) => m.from === "appuser")) storedTexts.set(m.content, (storedTexts.get(m.content) ?? 0) + 1);
    for (const [text, n] of storedTexts) if (n > 1) problems.push(`"${text}" stored ${n} times`);
    const tally = { resolved: 0, rejected: 0, maybeStored: 0, unknown: 0 };
    for (const [text, s] of sends) {
      const n = storedTexts.get(text) ?? 0;
      if (s.state === "resolved") {
        tally.resolved++;
        if (n !== 1) problems.push(`resolved send "${text}" stored ${n} times`);
      } else if (s.state === "rejected") {
        tally.rejected++;
        if (s.maybeStored) tally.maybeStored++;
        else if (n !== 0) problems.push(`send "${text}" rejected (${s.code}) yet stored`);
      } else {
        tally.unknown++; // its tab closed or crashed before it settled
      }
    }
    if (maxStreams > STREAM_CAP) problems.push(`the server held ${maxStreams} streams (cap ${STREAM_CAP})`);
    for (const t of tabs) await t.close();
    try {
      await server.waitStats("no stream once every tab closed", (s) => (s.live_streams_by_convo[convoId] ?? 0) === 0);
    } catch (e) {
      problems.push(e.message);
    }
    const result = {
      seed, transport, faults: faultsByKind, messages: ids.length, sends: tally,
      losses, duplicates, reorders, recoveryMs, maxStreams, restarts: ctx.restarts.length,
      restartRecoveryMs: ctx.restarts, timeline,
    };
    if (problems.length) {
      const err = new Error(
        `chaos seed ${seed} (${transport}) broke ${problems.length} invariant(s):\n  ${problems.join("\n  ")}\ntimeline:\n  ${timeline.join("\n  ")}` +
          (trails.length ? `\n${trails.join("\n")}` : ""),
      );
      err.result = result;
      throw err;
    }
    return result;
  } catch (e) {
    if (!e.result) e.message = `chaos seed ${seed} (${transport}): ${e.message}\ntimeline:\n  ${timeline.join("\n  ")}`;
    throw e;
  } finally {
    polling = false;
    await poller;
    for (const t of tabs) await t.close();
    if (!given) await browser.close();
    await site.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
