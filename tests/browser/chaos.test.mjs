// The short chaos run of `make test`: two fixed seeds, one per transport
// (`make bench` runs the long one over several seeds). See tests/chaos/chaos.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runChaos } from "../chaos/chaos.mjs";

for (const [seed, transport] of [[1, "fetch"], [2, "eventsource"]]) {
  test(`chaos, seed ${seed}, ${transport}: every tab gets every message once, in order; sends resolved = stored once`, async () => {
    const result = await runChaos({ seed, transport, durationMs: 45_000 });
    console.log(`chaos seed ${seed} ${transport}: ${JSON.stringify({ ...result, timeline: undefined })}`);
    assert.equal(result.losses + result.duplicates + result.reorders, 0);
    assert.ok(result.sends.resolved > 0, "sends went through");
    assert.ok(Object.keys(result.faults).length >= 10, `most fault kinds fired: ${Object.keys(result.faults)}`);
  });
}
