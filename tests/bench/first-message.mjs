// make bench: how soon a live message reaches its handler after the server
// wrote it, in both orders of the opening: the history (the reconcile)
// answers first, or the live frame arrives first (the history is held back
// LATE_HISTORY_MS). For a new convo (the frame is seq 1) and for one with
// five messages in its history (the frame is seq 6): the SDK delivers a
// frame at once when it knows it follows what was delivered, so only
// "history of 5, live frame first" has to wait for the history (it can
// not know that 6 follows 5 before). Ours over fetch and over EventSource,
// with a follower tab (both tabs' handlers) and without; beside the
// minimal fetch-event-source + JSON.parse + Set baseline and a raw
// EventSource + JSON.parse, which do no reconcile (so have no order).
// With a follower, the leader's history has come by the time the follower
// is acknowledged (1.5 s), so in "live frame first" only the follower's own
// history (fetched when it is acknowledged) is still out.
// Median of BENCH_RUNS, in ms from the server's write to the handler call
// (one clock: server and browser on this machine).
import { launchBrowser } from "../browser/harness.mjs";
import { READY, messageFrame, messageOf, openBenchPage, startBenchApi, startBenchSite } from "./bench-api.mjs";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LATE_HISTORY_MS = 1000;
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

let scenario = { history: [], historyDelay: 0 };
let stream = null;
let historyAnswered = null;
const fixtures = await startBenchSite();
const api = await startBenchApi(
  (res) => { res.write(READY); stream = res; },
  async () => {
    await sleep(scenario.historyDelay);
    historyAnswered?.();
    return JSON.stringify({ messages: scenario.history.map(messageOf) });
  },
);
const browser = await launchBrowser();

const newPage = () => openBenchPage(browser, fixtures.origin);

/** Opens the convo in `page` with our SDK; records when each message id first reached a handler. */
const openOurs = (page, transport) => page.evaluate(async ([base, transport]) => {
  const client = new window.ValetClient({ agentId: "a", fetchJwt: () => window.jwt, baseUrl: base, pauseOnHidden: false, transport });
  const convo = await client.openConvo({ convoId: "c" });
  window.seen = {};
  convo.on("message", (m) => { window.seen[m.message.id] ??= window.now(); });
  window.convo = convo;
}, [api.base, transport]);

/** Opens a baseline in `page`. */
const openBaseline = (page, which) => page.evaluate(([url, which]) => new Promise((opened) => {
  window.seen = {};
  const record = (data) => { window.seen[data.message.id] ??= window.now(); };
  if (which === "fes") {
    const ids = new Set();
    window.fetchEventSource(url, {
      headers: { authorization: `Bearer ${window.jwt}` }, openWhenHidden: true, onopen: async () => opened(),
      onmessage(ev) { if (ev.event !== "message") return; const d = JSON.parse(ev.data); if (ids.has(d.message.id)) return; ids.add(d.message.id); record(d); },
      onerror(e) { throw e; },
    }).catch(() => {});
  } else {
    const es = new EventSource(url);
    es.onopen = () => opened();
    es.addEventListener("message", (ev) => record(JSON.parse(ev.data)));
  }
}), [`${api.base}/api/v2/agent_convos/c/events`, which]);

const handlerAt = (page, id) => page.waitForFunction((id) => window.seen[id], id, { timeout: 30_000, polling: "raf" }).then((h) => h.jsonValue());

/** One run: opens, writes the live frame, returns the latency per page. */
async function run({ contender, history, liveFirst }) {
  scenario = { history, historyDelay: liveFirst ? LATE_HISTORY_MS : 0 };
  stream = null;
  const answered = new Promise((ok) => { historyAnswered = ok; });
  const live = history.length + 1;
  const pages = [await newPage()];
  if (contender.startsWith("ours")) {
    const transport = contender.includes("EventSource") ? "eventsource" : "fetch";
    await openOurs(pages[0], transport);
    if (contender.endsWith("follower")) {
      pages.push(await newPage());
      await openOurs(pages[1], transport);
      await pages[1].waitForFunction(() => window.convo.role === "follower");
      await sleep(1500); // acknowledged by the leader
    }
  } else {
    await openBaseline(pages[0], contender.includes("fetch-event-source") ? "fes" : "es");
  }
  if (contender.startsWith("ours") && !liveFirst) {
    await answered;
    // Every tab has delivered the history (a follower fetches its own).
    for (const page of pages) await page.waitForFunction((n) => Object.keys(window.seen).length >= n, history.length);
  }
  await sleep(liveFirst ? 100 : 300);
  if (!stream) throw new Error(`${contender}: no stream`);
  const written = Date.now();
  stream.write(messageFrame(live));
  const at = await Promise.all(pages.map((p) => handlerAt(p, `m${live}`)));
  for (const p of pages) await p.close();
  stream.end();
  return at.map((t) => t - written);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
const CASES = [
  ["new convo, history answers first", [], false],
  ["new convo, live frame first", [], true],
  ["5 in history, history answers first", [1, 2, 3, 4, 5], false],
  ["5 in history, live frame first (must wait)", [1, 2, 3, 4, 5], true],
];
for (const contender of ["ours, fetch", "ours, EventSource", "ours, fetch + follower"]) {
  for (const [name, history, liveFirst] of CASES) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await run({ contender, history, liveFirst }));
    rows.push([`${contender}: ${name}`, runs.map((r) => r[0]), runs[0].length > 1 ? runs.map((r) => r[1]) : null]);
  }
}
for (const contender of ["fetch-event-source + JSON.parse + Set", "raw EventSource + JSON.parse"]) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run({ contender, history: [], liveFirst: false }));
  rows.push([`${contender} (no reconcile)`, runs.map((r) => r[0]), null]);
}
await browser.close();
await fixtures.close();
api.close();

console.log(`\nFirst live message: server write → handler, ms, median of ${RUNS} (history held back ${LATE_HISTORY_MS} ms when the live frame comes first)`);
console.log(`${"case".padEnd(66)} ${"tab".padStart(8)} ${"follower".padStart(9)}`);
for (const [name, lead, follow] of rows) {
  console.log(`${name.padEnd(66)} ${median(lead).toFixed(1).padStart(8)} ${(follow ? median(follow).toFixed(1) : "").padStart(9)}`);
}
