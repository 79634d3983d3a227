// pkg-template/rodata.mjs, on a small module built here with binaryen and
// a linker map written in wasm-ld's format: a constant that nothing names
// becomes zeros; one the code names (directly, as a load's offset, a few
// bytes before it), or that live data points to, is kept; the merged C
// strings are judged one by one; a map that is not the wasm's fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { default: binaryen } = await import("binaryen");
const script = new URL("../../pkg-template/rodata.mjs", import.meta.url).pathname;

const BASE = 0x10000;
// The constants of `.rodata`, in order: [name, bytes].
const text = (s) => new TextEncoder().encode(s);
const word = (v) => new Uint8Array(new Uint32Array([v]).buffer);
const CONSTANTS = [
  ["<internal>", text("kept: the code names it\0gone\0")], // two merged C strings
  ["used", text("named by code")],
  ["unused", text("named by nothing")],
  ["table", null], // a pointer to `pointed` (filled in below)
  ["pointed", text("named by the table")],
  ["loaded", text("a load's offset")],
  ["before", text("named 4 bytes before")],
  ["orphan", null], // a pointer to `orphaned`, itself named by nothing
  ["orphaned", text("named by dead data only")],
];

/** The module, its map and where each constant stands. */
function build({ extraCode = false } = {}) {
  const at = {};
  let addr = BASE;
  for (const [name, bytes] of CONSTANTS) {
    at[name] = addr;
    addr += (bytes ?? new Uint8Array(4)).length;
    // Zeros between, more than the 16 bytes before a constant that a
    // name there keeps it for.
    addr = (addr + 32 + 3) & ~3;
  }
  const data = new Uint8Array(addr - BASE);
  for (const [name, bytes] of CONSTANTS) data.set(bytes ?? word(0), at[name] - BASE);
  data.set(word(at.pointed), at.table - BASE);
  data.set(word(at.orphaned), at.orphan - BASE);

  const m = new binaryen.Module();
  const { i32, none } = binaryen;
  m.setMemory(2, 2, "memory", [{ offset: m.i32.const(BASE), data, passive: false }]);
  const body = [
    m.drop(m.i32.const(at.used + 3)),
    m.drop(m.i32.const(at.table)),
    m.drop(m.i32.load(at.loaded, 1, m.i32.const(0))),
    m.drop(m.i32.const(at.before - 4)),
    m.drop(m.i32.const(at["<internal>"])), // "kept"
  ];
  if (extraCode) body.push(m.drop(m.i32.const(1)));
  m.addFunction("f", none, none, [], m.block(null, body));
  m.addFunctionExport("f", "f");
  assert.ok(m.validate());
  const wasm = m.emitBinary();

  const hex = (v, w) => v.toString(16).padStart(w);
  const lines = ["    Addr      Off     Size Out     In      Symbol", `${hex(BASE, 8)} ${hex(0, 8)} ${hex(addr - BASE, 8)} .rodata`];
  for (const [name, bytes] of CONSTANTS) {
    const size = (bytes ?? new Uint8Array(4)).length;
    const input = name === "<internal>" ? "<internal>:(.rodata)" : `lib.o:(.rodata.${name})`;
    lines.push(`${hex(at[name], 8)} ${hex(0, 8)} ${hex(size, 8)}         ${input}`);
    if (name !== "<internal>") lines.push(`${hex(at[name], 8)} ${hex(0, 8)} ${hex(size, 8)}                 ${name}`);
  }
  lines.push(`${hex(addr, 8)} ${hex(0, 8)} ${hex(4, 8)} .data`);
  const dir = mkdtempSync(join(tmpdir(), "rodata-"));
  writeFileSync(join(dir, "in.wasm"), wasm);
  writeFileSync(join(dir, "map.txt"), lines.join("\n") + "\n");
  return { dir, at, wasm };
}

const memoryOf = async (path) => new Uint8Array((await WebAssembly.instantiate(readFileSync(path))).instance.exports.memory.buffer);
const read = (mem, at, n) => new TextDecoder().decode(mem.subarray(at, at + n));

test("constants nothing names become zeros; the rest stay", async () => {
  const { dir, at } = build();
  const wasm = join(dir, "in.wasm");
  // The module is its own optimized version here: the code is final.
  const out = execFileSync("node", [script, wasm, join(dir, "map.txt"), join(dir, "in.wasm")], { encoding: "utf8" });
  // "gone", `unused`, `orphan` and what it points to.
  assert.match(out, /4 of 10 constants \(48 of \d+ bytes\) are read by no code: zeroed/);
  const mem = await memoryOf(wasm);
  assert.equal(read(mem, BASE, 24), "kept: the code names it\0");
  assert.ok(mem.subarray(BASE + 24, BASE + 29).every((b) => b === 0), "the unnamed C string is zeros");
  assert.equal(read(mem, at.used, 13), "named by code");
  assert.ok(mem.subarray(at.unused, at.unused + 16).every((b) => b === 0), "the unnamed constant is zeros");
  assert.equal(read(mem, at.pointed, 18), "named by the table");
  assert.equal(read(mem, at.loaded, 15), "a load's offset");
  assert.equal(read(mem, at.before, 20), "named 4 bytes before");
  assert.ok(mem.subarray(at.orphan, at.orphan + 4).every((b) => b === 0), "dead data is zeros");
  assert.ok(mem.subarray(at.orphaned, at.orphaned + 23).every((b) => b === 0), "and so is what only it points to");
  assert.equal(new DataView(mem.buffer).getUint32(at.table, true), at.pointed, "the table still points to it");
});

test("--same-code fails when the code differs", () => {
  const a = build(), b = build({ extraCode: true });
  const same = spawnSync("node", [script, "--same-code", join(a.dir, "in.wasm"), join(a.dir, "in.wasm")]);
  assert.equal(same.status, 0);
  const differ = spawnSync("node", [script, "--same-code", join(a.dir, "in.wasm"), join(b.dir, "in.wasm")], { encoding: "utf8" });
  assert.equal(differ.status, 1);
  assert.match(differ.stderr, /the second wasm-opt run changed the code/);
});

test("a map that is not the wasm's fails the build, and nothing is written", () => {
  const { dir } = build();
  const map = readFileSync(join(dir, "map.txt"), "utf8");
  // The map says `used` starts 4 bytes later: its first bytes lie between constants.
  const shifted = map.replace(/^( *)([0-9a-f]+)( +0 +d +lib\.o:\(\.rodata\.used\))$/m, (_, sp, addr, rest) => sp + (parseInt(addr, 16) + 4).toString(16) + rest);
  assert.notEqual(shifted, map);
  writeFileSync(join(dir, "bad.txt"), shifted);
  const before = readFileSync(join(dir, "in.wasm"));
  const r = spawnSync("node", [script, join(dir, "in.wasm"), join(dir, "bad.txt"), join(dir, "in.wasm")], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the map is not this wasm's/);
  assert.deepEqual(readFileSync(join(dir, "in.wasm")), before);
});
