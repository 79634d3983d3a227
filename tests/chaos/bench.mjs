// The long chaos run of `make bench`: several seeds, both transports; prints
// faults by kind, messages, losses, duplicates, reorders and the recovery
// time after the last fault (median and worst). Usage:
//   node chaos/bench.mjs [seeds=5] [durationMs=90000]
import { runChaos } from "./chaos.mjs";

const seeds = Number(process.argv[2] ?? 5);
const durationMs = Number(process.argv[3] ?? 90_000);
const results = [];
let failed = 0;
for (let seed = 101; seed < 101 + seeds; seed++) {
  for (const transport of ["fetch", "eventsource"]) {
    try {
      const r = await runChaos({ seed, transport, durationMs });
      results.push(r);
      console.log(`seed ${seed} ${transport}: ${r.messages} messages, ${r.sends.resolved} sends resolved, ${r.sends.rejected} rejected (${r.sends.maybeStored} maybe stored), ${r.sends.unknown} unsettled (tab gone); losses ${r.losses}, duplicates ${r.duplicates}, reorders ${r.reorders}; recovered ${r.recoveryMs} ms after the last fault`);
    } catch (e) {
      failed++;
      console.log(e.message);
      if (e.result) results.push(e.result);
    }
  }
}
const faults = {};
for (const r of results) for (const [k, n] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + n;
const rec = results.map((r) => r.recoveryMs).filter((x) => x !== null).sort((a, b) => a - b);
const back = results.flatMap((r) => r.restartRecoveryMs ?? []).sort((a, b) => a - b);
const sum = (f) => results.reduce((a, r) => a + f(r), 0);
console.log(`\nchaos: ${results.length} runs of ${durationMs / 1000} s (2 cores, headless Chromium, 3 tabs, reference server on a SQLite file, loopback)`);
console.log(`faults by kind: ${Object.entries(faults).map(([k, n]) => `${k} ${n}`).join(", ")}`);
console.log(`messages stored: ${sum((r) => r.messages)}; sends resolved ${sum((r) => r.sends.resolved)}, rejected ${sum((r) => r.sends.rejected)}, unsettled with their tab ${sum((r) => r.sends.unknown)}`);
console.log(`losses ${sum((r) => r.losses)}, duplicates ${sum((r) => r.duplicates)}, reorders ${sum((r) => r.reorders)}, server restarts ${sum((r) => r.restarts)}`);
console.log(`recovery after the server came back (SIGKILL, restart, until every tab has a message stored after it): median ${back[Math.floor(back.length / 2)] ?? "-"} ms, worst ${back.at(-1) ?? "-"} ms (${back.length} restarts)`);
console.log(`convergence after the last fault (sends stopped and settled, every tab has every message): median ${rec[Math.floor(rec.length / 2)] ?? "-"} ms, worst ${rec.at(-1) ?? "-"} ms`);
console.log(`${failed} run(s) broke an invariant`);
