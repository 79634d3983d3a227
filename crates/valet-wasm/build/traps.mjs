// A panic traps at once: the body of each of `core`'s and `alloc`'s
// panic functions becomes a single `unreachable`, and so does each
// formatting function when nothing can call it; the panic locations (file
// names, lines, columns) in the data become zeros.
//
// Why: the wasm's panic handler traps (`unreachable`, crates/valet-wasm/
// src/lib.rs) and formats nothing, but the panic functions that lead to it
// (`panic_fmt`, `panic_bounds_check`, `RefCell`'s `panic_already_borrowed`,
// `unwrap_failed`, …) are compiled in `core`, and they first store their
// message's arguments on the stack: the address of `<u32 as Display>::fmt`,
// of `BorrowError`'s `Display`, … So those formatting functions, with
// `Formatter::pad`, `pad_integral` and the char counting they call, stay in
// the wasm, unused; and wasm-opt may not drop a store before a trap
// (memory is visible after it). Nightly's `-Zbuild-std` with
// `panic=immediate-abort` compiles them without the message; this does the
// same to the built wasm (what it saves: docs/size.md, "The post-link
// steps"). A panic is a bug, and it
// still throws a `RuntimeError` in JS at the same place.
//
// Only panic functions whose every path ends in a trap are rewritten
// (binaryen types their body `unreachable`). All are found by their
// names, so the wasm must still have its name section (wasm-opt drops it
// after). If `panic_fmt` is not among them, the build fails: the names
// changed.
//
// Usage: node crates/valet-wasm/build/traps.mjs <dir> (before imports.mjs and wasm-opt)
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../../../tests/package.json", import.meta.url));
const { default: binaryen } = await import(pathToFileURL(require.resolve("binaryen")).href);

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node crates/valet-wasm/build/traps.mjs <dir>");
  process.exit(2);
}
const wasmPath = join(dir, "valet_wasm_bg.wasm");
const fail = (why) => {
  console.error(`traps.mjs: ${why}`);
  process.exit(1);
};

// `core`'s, `alloc`'s and the allocation error handler's, named as the
// name section spells them (`core[<hash>]::panicking::panic_fmt`,
// `<alloc[<hash>]::vec::Vec<_, _>>::remove::assert_failed`). Each is
// `-> !` in Rust.
const PANICS = /^<?(core|alloc|__rustc)\[[0-9a-f]+\]::.*(panic|_fail|failed|alloc_error|capacity_overflow)/;

// Without `core::fmt::write` (or what could hold it inlined: `write_fmt`,
// `format_inner`, `to_string`) nothing makes a `Formatter`, so no `fmt` of
// a `Display` or `Debug` impl can run: they are left only as the table
// entries that panic messages' arguments point to (which the optimizer
// must keep). They trap too, and `Formatter::pad`, `pad_integral` and the
// char counting they call go. A build that formats
// keeps them all.
const FORMATS = /^<.* as core\[[0-9a-f]+\]::fmt::(Display|Debug)>::fmt(\[\d+\])?$/;

binaryen.setDebugInfo(true);
const module = binaryen.readBinary(readFileSync(wasmPath));
const panics = [];
const impls = [];
let formats = false;
for (let i = 0; i < module.getNumFunctions(); i++) {
  const ref = module.getFunctionByIndex(i);
  const f = binaryen.getFunctionInfo(ref);
  // `fmt::write`, or a function it may have been inlined into.
  if (/::fmt::write$|write_fmt|format_inner|to_string|Formatter.*::new/.test(f.name)) formats = true;
  if (f.module) continue;
  if (FORMATS.test(f.name)) impls.push(ref);
  // A body that can complete (or a function that returns a value) is not
  // a panic: left as it is.
  else if (PANICS.test(f.name) && binaryen.getExpressionInfo(f.body).type === binaryen.unreachable && f.results === binaryen.none) {
    binaryen.Function.setBody(ref, module.unreachable());
    panics.push(f.name);
  }
}
if (!formats) for (const ref of impls) binaryen.Function.setBody(ref, module.unreachable());
if (!panics.some((name) => /::panicking::panic_fmt$/.test(name))) {
  fail(`no core::panicking::panic_fmt among the functions of ${wasmPath} (does it have its name section?)`);
}
if (!module.validate()) fail("the rewritten wasm does not validate");
binaryen.setDebugInfo(false);
const wasm = module.emitBinary();
const zeroed = zeroLocations(module, wasm);
writeFileSync(wasmPath, wasm);
console.log(
  `traps.mjs: ${panics.length} panic functions trap at once; formatting ${formats ? "is used: kept" : `is not: ${impls.length} functions trap`}; ` +
    `${zeroed.locations} panic locations and ${zeroed.files} file names zeroed`,
);

/**
 * The panic locations (`core::panic::Location`: the file name's address
 * and length, line and column, four little-endian u32s; the name ends in
 * `.rs`) and their file names, in the data segments, become zeros: only a
 * panic reads them, and a panic now traps without. Zeros compress to
 * nothing. Patched in `wasm`, the emitted binary,
 * where each segment's bytes stand as they are.
 */
function zeroLocations(module, wasm) {
  const segments = [];
  let end = 0;
  for (let i = 0; i < module.getNumDataSegments(); i++) {
    const s = module.getDataSegmentInfo(module.getDataSegmentByIndex(i));
    if (s.passive) continue;
    segments.push({ offset: s.offset, bytes: new Uint8Array(s.data) });
    end = Math.max(end, s.offset + s.data.byteLength);
  }
  const memory = new Uint8Array(end);
  for (const s of segments) memory.set(s.bytes, s.offset);
  const view = new DataView(memory.buffer);
  const text = new TextDecoder("utf-8", { fatal: false });
  const zero = [];
  const files = new Set();
  for (const s of segments) {
    for (let at = s.offset; at + 16 <= s.offset + s.bytes.length; at += 4) {
      const [ptr, len, line, col] = [0, 4, 8, 12].map((o) => view.getUint32(at + o, true));
      if (len < 4 || len > 4096 || ptr + len > end || line === 0 || col === 0 || line > 1e6 || col > 1e4) continue;
      if (!text.decode(memory.subarray(ptr, ptr + len)).endsWith(".rs")) continue;
      zero.push([at, 16]);
      if (!files.has(ptr)) zero.push([ptr, len]);
      files.add(ptr);
    }
  }
  const patched = new Uint8Array(memory);
  for (const [at, len] of zero) patched.fill(0, at, at + len);
  for (const s of segments) {
    const now = patched.subarray(s.offset, s.offset + s.bytes.length);
    if (now.every((b, i) => b === s.bytes[i])) continue;
    const at = indexOnce(wasm, s.bytes);
    if (at < 0) fail(`the data segment at ${s.offset} is not found once in the emitted wasm`);
    wasm.set(now, at);
  }
  return { locations: zero.length - files.size, files: files.size };
}

/** Where `needle` occurs in `haystack`, if exactly once; else -1. */
function indexOnce(haystack, needle) {
  let found = -1;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    if (found >= 0) return -1;
    found = i;
  }
  return found;
}
