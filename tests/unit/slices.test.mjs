// The stream transports' slicing (crates/valet-wasm/js/http.js): a chunk
// larger than a slice reaches the wasm in pieces that join back to it
// exactly, each within the slice, cut after a line end where there is one,
// and never between the two halves of a surrogate pair (which the trip
// into the wasm as UTF-8 would turn into two U+FFFD).
import assert from "node:assert/strict";
import { test } from "node:test";
import { sliced } from "../../crates/valet-wasm/js/http.js";
const pieces = (text) => {
  const out = [];
  sliced(text, (t) => void out.push(t));
  return out;
};
// The slice: the first piece of a long line (a power of two, 64 Ki or more).
const SLICE = pieces("x".repeat(1 << 22))[0].length;
assert.ok(SLICE >= 65536 && (SLICE & (SLICE - 1)) === 0 && SLICE < 1 << 22, `slice ${SLICE}`);

test("a chunk within a slice crosses whole; an empty one not at all", () => {
  assert.deepEqual(pieces("event: message\ndata: {}\n\n"), ["event: message\ndata: {}\n\n"]);
  assert.deepEqual(pieces("x".repeat(SLICE)), ["x".repeat(SLICE)]);
  assert.deepEqual(pieces(""), []);
});

test("a large chunk goes in slices cut after line ends, joining back exactly", () => {
  const frame = (i) => `event: message\ndata: {"n":${i},"text":"é 😀 ${"a".repeat(i % 300)}"}\nid: ${i}\n\n`;
  let text = "";
  for (let i = 0; text.length < 5 * SLICE; i++) text += frame(i);
  const out = pieces(text);
  assert.ok(out.length >= 5);
  assert.equal(out.join(""), text);
  for (const p of out) assert.ok(p.length <= SLICE && p.length > 0);
  for (const p of out.slice(0, -1)) assert.ok(p.endsWith("\n"), "cut after a line end");
});

test("a line longer than a slice is cut, never inside a surrogate pair", () => {
  for (const pad of [0, 1]) {
    // "😀" is two code units: with `pad`, a pair straddles every multiple of SLICE.
    const text = "x".repeat(pad) + "😀".repeat(SLICE);
    const out = pieces(text);
    assert.equal(out.join(""), text);
    for (const p of out) {
      assert.ok(p.length <= SLICE);
      assert.ok(!/[\uD800-\uDBFF]$/.test(p), "no slice ends with a high surrogate");
      assert.ok(!/^[\uDC00-\uDFFF]/.test(p), "no slice starts with a low surrogate");
      assert.equal(new TextDecoder().decode(new TextEncoder().encode(p)), p, "each slice survives UTF-8");
    }
  }
});

test("any slice that asks to yield makes the whole chunk yield", () => {
  const text = "a\n".repeat(SLICE);
  let n = 0;
  assert.equal(sliced(text, () => ++n === 1), true);
  assert.equal(sliced(text, () => false), false);
  assert.equal(sliced("a", () => undefined), false);
});
