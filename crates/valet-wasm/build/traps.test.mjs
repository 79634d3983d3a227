// traps.mjs, on a small module built here with binaryen: a
// panic function traps at once (its stores are gone), a caller still traps
// where it panicked, and what is not a panic is left as it is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../../../tests/package.json", import.meta.url));
const { default: binaryen } = await import(pathToFileURL(require.resolve("binaryen")).href);
const script = new URL("traps.mjs", import.meta.url).pathname;

/**
 * A module whose panic stores its argument at address 8 and traps, with a
 * `Display` impl (and, with `formats`, the `fmt::write` that could call it).
 */
function build({ names = true, formats = false } = {}) {
  binaryen.setDebugInfo(names);
  const m = new binaryen.Module();
  const { i32, none } = binaryen;
  // Data: a file name, a panic location pointing to it (address, length,
  // line, column), and a string that is neither.
  const data = new Uint8Array(64);
  data.set(new TextEncoder().encode("src/lib.rs"), 0);
  new Uint32Array(data.buffer, 16, 4).set([1024, 10, 42, 7]);
  data.set(new TextEncoder().encode("hello.rs"), 40);
  m.setMemory(1, 1, "memory", [{ offset: m.i32.const(1024), data, passive: false }]);
  const panicFmt = "core[0123456789abcdef]::panicking::panic_fmt";
  const notPanic = "core[0123456789abcdef]::panicking::panic_count";
  m.addFunction(panicFmt, i32, none, [], m.block(null, [m.i32.store(8, 0, m.i32.const(0), m.local.get(0, i32)), m.unreachable()]));
  // A `core` function named like a panic that returns: not rewritten.
  m.addFunction(notPanic, none, i32, [], m.i32.const(3));
  // `f(x)`: panics with x when x is not 0, else answers 7.
  m.addFunction("valet::f", i32, i32, [], m.block(null, [m.if(m.local.get(0, i32), m.call(panicFmt, [m.local.get(0, i32)], none)), m.i32.const(7)], i32));
  m.addFunction("valet::g", none, i32, [], m.call(notPanic, [], i32));
  m.addFunctionExport("valet::f", "f");
  m.addFunctionExport("valet::g", "g");
  const display = "<u32 as core[0123456789abcdef]::fmt::Display>::fmt";
  m.addFunction(display, binaryen.createType([i32, i32]), i32, [], m.i32.const(0));
  m.addFunctionExport(display, "display");
  if (formats) {
    const write = "core[0123456789abcdef]::fmt::write";
    m.addFunction(write, none, i32, [], m.call(display, [m.i32.const(0), m.i32.const(0)], i32));
    m.addFunctionExport(write, "write");
  }
  assert.ok(m.validate());
  const bytes = m.emitBinary();
  binaryen.setDebugInfo(false);
  const dir = mkdtempSync(join(tmpdir(), "traps-"));
  writeFileSync(join(dir, "valet_wasm_bg.wasm"), bytes);
  return dir;
}

const instantiate = async (dir) => (await WebAssembly.instantiate(readFileSync(join(dir, "valet_wasm_bg.wasm")))).instance.exports;

test("a panic traps before it stores anything; the rest is unchanged", async () => {
  const dir = build();
  const before = await instantiate(dir);
  assert.throws(() => before.f(5), WebAssembly.RuntimeError);
  assert.equal(new Uint32Array(before.memory.buffer)[2], 5, "the original stores its argument");

  const out = execFileSync("node", [script, dir], { encoding: "utf8" });
  assert.match(out, /1 panic functions trap at once; formatting is not: 1 functions trap; 1 panic locations and 1 file names zeroed/);
  const after = await instantiate(dir);
  assert.equal(after.f(0), 7);
  assert.equal(after.g(), 3);
  assert.throws(() => after.f(5), WebAssembly.RuntimeError);
  assert.equal(new Uint32Array(after.memory.buffer)[2], 0, "the rewritten panic stores nothing");
  assert.throws(() => after.display(0, 0), WebAssembly.RuntimeError, "nothing formats: the impl traps");
  const text = (memory, at, len) => new TextDecoder().decode(new Uint8Array(memory.buffer, at, len));
  assert.equal(text(before.memory, 1024, 10), "src/lib.rs");
  assert.deepEqual([...new Uint32Array(before.memory.buffer, 1040, 4)], [1024, 10, 42, 7]);
  assert.ok(new Uint8Array(after.memory.buffer, 1024, 32).every((b) => b === 0), "the location and its file name are zeros");
  assert.equal(text(after.memory, 1064, 8), "hello.rs", "other data is left as it is");
});

test("a wasm that formats keeps its formatting functions", async () => {
  const dir = build({ formats: true });
  const out = execFileSync("node", [script, dir], { encoding: "utf8" });
  assert.match(out, /1 panic functions trap at once; formatting is used: kept/);
  const after = await instantiate(dir);
  assert.equal(after.write(), 0);
  assert.equal(after.display(0, 0), 0);
  assert.throws(() => after.f(5), WebAssembly.RuntimeError);
});

test("a wasm without its name section fails the build", () => {
  const dir = build({ names: false });
  const run = spawnSync("node", [script, dir], { encoding: "utf8" });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /no core::panicking::panic_fmt/);
});
