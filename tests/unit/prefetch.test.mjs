// The opening's guess (pkg/prefetch.js), natively in Node: its URLs are the
// client's (`encode_segment` in crates/valet-core/src/client.rs: RFC 3986's
// unreserved bytes kept, every other byte `%XX`, upper case), or the glue
// would never take what it asked for. The browser tests
// (tests/browser/startup.test.mjs) run the guess against the real client.
import assert from "node:assert/strict";
import { test } from "node:test";
import { historyUrl, prefetchOpening, prefetchPlan } from "../../pkg/prefetch.js";

/** `encode_segment`, byte by byte, as the core writes it. */
const encodeSegment = (s) =>
  Array.from(new TextEncoder().encode(s), (b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");

test("the history URL encodes a convo id as the client does", () => {
  const plan = prefetchPlan({ agentId: "a", baseUrl: "https://api.example.com/" });
  assert.deepEqual(plan, { base: "https://api.example.com", agentId: "a" });
  // The core's own example (client.rs), then every ASCII byte and a few others.
  assert.equal(historyUrl(plan, "../x?y"), "https://api.example.com/api/v2/agent_convos/..%2Fx%3Fy");
  const ids = ["c", "a b/c!'()*~._-é", "日本", "😀", String.fromCharCode(...Array.from({ length: 127 }, (_, i) => i + 1))];
  for (const id of ids) assert.equal(historyUrl(plan, id), `https://api.example.com/api/v2/agent_convos/${encodeSegment(id)}`, id);
});

test("a convo id that is not well-formed UTF-16 gets no guess, and no error", () => {
  const plan = prefetchPlan({ agentId: "a", baseUrl: "https://api.example.com" });
  const drop = prefetchOpening(plan, "bad\uD800", Promise.resolve("t"));
  assert.equal(typeof drop, "function");
  drop();
});

test("no plan for the EventSource transport or an unusable base URL", () => {
  assert.equal(prefetchPlan({ agentId: "a", transport: "eventsource" }), null);
  assert.equal(prefetchPlan({ agentId: "a", baseUrl: "ftp://x" }), null);
  assert.equal(prefetchPlan({ baseUrl: "https://x" }), null);
  assert.deepEqual(prefetchPlan({ agentId: "a" }), { base: "https://api.valet.red", agentId: "a" });
});
