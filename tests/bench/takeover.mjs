// make bench: how long a follower takes to lead after the leader tab is
// closed, crashes (renderer crash) or freezes (no JS runs). Several runs
// each; median and worst, in ms, from the event to the follower's `role`.
import { loadSdk, sdkEnv } from "../browser/harness.mjs";

const AGENT = "00000000-0000-4000-8000-00000000a9e1";
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const env = await sdkEnv(["--ping-interval-ms", "1000"]);
const { server, site, browser } = env;
let n = 0;

async function tab(sourceKey, convoId, noLocks) {
  const page = await browser.context.newPage();
  if (noLocks) await page.addInitScript(() => { delete Navigator.prototype.locks; });
  await loadSdk(page, site.origin);
  await page.evaluate(async ({ base, AGENT, sourceKey, convoId }) => {
    const { fetchJwt } = window.h.makeFetchJwt(base, sourceKey);
    const client = new window.sdk.ValetClient({ agentId: AGENT, fetchJwt, baseUrl: base, pauseOnHidden: false });
    const convo = await client.openConvo({ convoId });
    window.ledAt = null;
    convo.on("role", (r) => { if (r.role === "leader") window.ledAt = Date.now(); });
    window.t = { convo };
  }, { base: server.base, AGENT, sourceKey, convoId });
  return page;
}

const results = {};
for (const kind of ["close", "crash", "freeze", "close, no Web Locks"]) {
  const noLocks = kind.endsWith("no Web Locks");
  results[kind] = [];
  for (let run = 0; run < RUNS; run++) {
    const sourceKey = `takeover-${++n}`;
    const { token } = await server.jwt(sourceKey);
    const convoId = (await (await fetch(`${server.base}/api/v2/sessions`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).json()).convo_id;
    const a = await tab(sourceKey, convoId, noLocks);
    const b = await tab(sourceKey, convoId, noLocks);
    await new Promise((r) => setTimeout(r, 500));
    const [leader, follower] = (await a.evaluate(() => window.t.convo.role)) === "leader" ? [a, b] : [b, a];
    const cdp = await leader.context().newCDPSession(leader);
    if (kind === "freeze") await cdp.send("Debugger.enable");
    const t0 = Date.now();
    if (kind.startsWith("close")) await leader.close();
    if (kind === "crash") cdp.send("Page.crash").catch(() => {});
    if (kind === "freeze") await cdp.send("Debugger.pause");
    await follower.waitForFunction(() => window.ledAt !== null, null, { timeout: 20000 });
    results[kind].push((await follower.evaluate(() => window.ledAt)) - t0);
    if (kind === "freeze") await cdp.send("Debugger.resume").catch(() => {});
    await follower.close();
    await leader.close().catch(() => {});
  }
}
await env.close();

const median = (xs) => xs.slice().sort((p, q) => p - q)[Math.floor(xs.length / 2)];
console.log(`\nLeader takeover, ${RUNS} runs each (ms from the event to the follower leading)`);
for (const [kind, xs] of Object.entries(results)) {
  console.log(`${kind.padEnd(20)} median ${String(median(xs)).padStart(5)}   worst ${String(Math.max(...xs)).padStart(5)}   runs ${xs.join(", ")}`);
}
