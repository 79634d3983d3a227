// The constants no code reads any more become zeros.
//
// Why: once traps.mjs has made `core`'s panic functions trap, wasm-opt
// drops the arguments their callers passed (dead argument elimination),
// and with them the last reads of the panic messages ("index out of
// bounds: the len is …", "RefCell already borrowed", "called
// `Result::unwrap()` on an `Err` value", `core`'s table of decimal digits
// for formatting, …). The code goes; the bytes stay: wasm-opt can not know
// where one constant in a data segment ends and the next begins, so it
// keeps them all. The linker knows: its map (`--Map`, asked for by the
// Makefile's release build) lists each constant's address and size. Here
// every constant of `.rodata` that no code of the optimized wasm and no
// live constant refers to becomes zeros, which wasm-opt's memory packing
// then leaves out of the file: 0.5 KB less gzipped.
//
// A constant is live when an address in it, or up to MARGIN bytes before
// it, appears in the optimized code: an `i32.const`, a load's or store's
// constant offset (with its constant address, if any), either half of an
// `i64.const`; or as a 32-bit word, at any byte position, in a live
// constant or in the other data (`.data`). That over-approximates: it
// keeps a constant that a number merely equals, and the neighbours of
// addresses computed with a small negative offset. The linker's merged
// C strings (`<internal>`: the panic messages' templates) are split at
// their NULs.
//
// Usage: node pkg-template/rodata.mjs <wasm> <map> <optimized wasm>
//   zeroes, in <wasm> (the input of wasm-opt, patched in place), the
//   constants that no code of <optimized wasm> (wasm-opt's output for it)
//   reads; run wasm-opt on <wasm> again after.
// node pkg-template/rodata.mjs --same-code <a> <b>
//   fails unless the two have the same code section: the second wasm-opt
//   run made the code the first one's, which the zeroing was decided on.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../tests/package.json", import.meta.url));
const { default: binaryen } = await import(pathToFileURL(require.resolve("binaryen")).href);

const fail = (why) => {
  console.error(`rodata.mjs: ${why}`);
  process.exit(1);
};
const MARGIN = 16;

if (process.argv[2] === "--same-code") {
  const [a, b] = process.argv.slice(3).map((p) => section(readFileSync(p), 10));
  if (!a || !b || Buffer.compare(a, b) !== 0) fail("the second wasm-opt run changed the code: the zeroed constants were decided on other code");
  process.exit(0);
}
const [wasmPath, mapPath, optimizedPath] = process.argv.slice(2);
if (!optimizedPath) {
  console.error("usage: node pkg-template/rodata.mjs <wasm> <map> <optimized wasm> | --same-code <a> <b>");
  process.exit(2);
}

const optimized = binaryen.readBinary(readFileSync(optimizedPath));
const memory = image(optimized);
const units = constants(readFileSync(mapPath, "utf8"), memory.bytes);

// The addresses the code names.
const refs = [];
const code = optimized
  .emitText()
  .split("\n")
  .filter((line) => !/^\s*\(data /.test(line))
  .join("\n");
for (const [, v] of code.matchAll(/i32\.const (-?\d+)/g)) refs.push(Number(v) >>> 0);
for (const [, v] of code.matchAll(/i64\.const (-?\d+)/g)) {
  const x = BigInt.asUintN(64, BigInt(v));
  refs.push(Number(x & 0xffffffffn), Number(x >> 32n));
}
for (const [, v] of code.matchAll(/offset=(\d+)/g)) refs.push(Number(v));
for (const [, o, v] of code.matchAll(/offset=(\d+)[^\n]*\n\s*\(i32\.const (-?\d+)\)/g)) refs.push((Number(o) + Number(v)) >>> 0);

// Live: named by the code, or by a word of live data.
const live = new Set();
const work = [];
const starts = units.map((u) => u.addr);
const mark = (v) => {
  // The constant holding `v`, and any that starts within MARGIN after it.
  let i = upperBound(starts, v) - 1;
  if (i >= 0 && v < units[i].addr + units[i].size) keep(units[i]);
  for (i++; i < units.length && units[i].addr <= v + MARGIN; i++) keep(units[i]);
};
const keep = (u) => {
  if (!live.has(u)) {
    live.add(u);
    work.push(u);
  }
};
const words = (from, to) => {
  for (let at = from; at + 4 <= to; at++) mark(memory.view.getUint32(at, true));
};
for (const v of refs) mark(v);
// The data outside `.rodata` (`.data`) is all live.
for (const [from, to] of memory.ranges) {
  words(from, Math.min(to, units.start));
  words(Math.max(from, units.end), to);
}
while (work.length) {
  const u = work.pop();
  words(u.addr, u.addr + u.size);
}

const dead = units.filter((u) => !live.has(u) && memory.bytes.subarray(u.addr, u.addr + u.size).some((b) => b !== 0));
const zeroed = dead.reduce((n, u) => n + u.size, 0);

// Patch the input's data segments where they stand in its binary.
const wasm = new Uint8Array(readFileSync(wasmPath));
const input = image(binaryen.readBinary(wasm));
for (const u of dead) {
  for (let at = u.addr; at < u.addr + u.size; at++) {
    if (input.bytes[at] !== memory.bytes[at]) fail(`the constant at ${u.addr} differs between ${wasmPath} and ${optimizedPath}`);
  }
}
const segments = dataSegments(wasm);
for (const u of dead) {
  for (const s of segments) {
    const lo = Math.max(u.addr, s.offset), hi = Math.min(u.addr + u.size, s.offset + s.size);
    if (hi > lo) wasm.fill(0, s.at + (lo - s.offset), s.at + (hi - s.offset));
  }
}
writeFileSync(wasmPath, wasm);
console.log(`rodata.mjs: ${dead.length} of ${units.length} constants (${zeroed} of ${units.end - units.start} bytes) are read by no code: zeroed`);

/** The active data segments of a module as one memory image. */
function image(module) {
  let end = 0;
  const segs = [];
  for (let i = 0; i < module.getNumDataSegments(); i++) {
    const s = module.getDataSegmentInfo(module.getDataSegmentByIndex(i));
    if (s.passive) fail("a passive data segment: not expected");
    segs.push(s);
    end = Math.max(end, s.offset + s.data.byteLength);
  }
  const bytes = new Uint8Array(end + 4);
  for (const s of segs) bytes.set(new Uint8Array(s.data), s.offset);
  const ranges = segs.map((s) => [s.offset, s.offset + s.data.byteLength]);
  return { bytes, view: new DataView(bytes.buffer), ranges };
}

/**
 * The constants of `.rodata`, from the linker's map: each input section
 * (`<file>:(.rodata.<symbol>)`) with its address and size, in address
 * order; the merged C strings split at their NULs. Fails unless they tile
 * `.rodata` with nothing but zeros between them.
 */
function constants(map, bytes) {
  const out = [];
  let section = null;
  let rodata = null;
  for (const line of map.split("\n")) {
    // "    Addr      Off     Size Out     In      Symbol": an output
    // section is indented by one space, its input sections by nine.
    const m = line.match(/^\s*(\S+)\s+[0-9a-f]+\s+([0-9a-f]+)( +)(\S.*)$/);
    if (!m || m[1] === "-") continue;
    const [addr, size, depth, name] = [parseInt(m[1], 16), parseInt(m[2], 16), m[3].length, m[4]];
    if (depth === 1) {
      section = name;
      if (name === ".rodata") rodata = { addr, size };
    } else if (depth === 9 && section === ".rodata" && size > 0) {
      if (!name.startsWith("<internal>")) {
        out.push({ addr, size });
        continue;
      }
      let from = addr;
      for (let at = addr; at < addr + size; at++) {
        if (bytes[at] === 0) {
          out.push({ addr: from, size: at + 1 - from });
          from = at + 1;
        }
      }
      if (from < addr + size) out.push({ addr: from, size: addr + size - from });
    }
  }
  if (!rodata || out.length === 0) fail("no .rodata in the map (was it made by this build's linker?)");
  out.sort((a, b) => a.addr - b.addr);
  let at = rodata.addr;
  for (const u of out) {
    if (u.addr < at) fail(`constants overlap at ${u.addr}`);
    if (bytes.subarray(at, u.addr).some((b) => b !== 0)) fail(`bytes between constants at ${at}: the map is not this wasm's`);
    at = u.addr + u.size;
  }
  if (at > rodata.addr + rodata.size) fail("constants beyond .rodata");
  out.start = rodata.addr;
  out.end = rodata.addr + rodata.size;
  return out;
}

/** The first index whose value is greater than `v`. */
function upperBound(sorted, v) {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An unsigned LEB128 at `p.at`, advancing it. */
function leb(bytes, p) {
  let value = 0, shift = 0, byte;
  do {
    byte = bytes[p.at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return value;
}

/** The content of a module's section `id`, or null. */
function section(bytes, id) {
  const p = { at: 8 };
  while (p.at < bytes.length) {
    const sid = bytes[p.at++];
    const size = leb(bytes, p);
    if (sid === id) return bytes.subarray(p.at, p.at + size);
    p.at += size;
  }
  return null;
}

/** Where each active data segment's bytes stand in the binary. */
function dataSegments(bytes) {
  const data = section(bytes, 11);
  if (!data) fail("no data section");
  const base = data.byteOffset - bytes.byteOffset;
  const p = { at: 0 };
  const out = [];
  for (let n = leb(data, p); n > 0; n--) {
    const flags = leb(data, p);
    if (flags === 2) leb(data, p);
    if (flags !== 0 && flags !== 2) fail(`a data segment with flags ${flags}: not expected`);
    // The offset: `i32.const <sleb> end`.
    if (data[p.at++] !== 0x41) fail("a data segment whose offset is not an i32.const");
    let offset = 0, shift = 0, byte;
    do {
      byte = data[p.at++];
      offset |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    if (shift < 32 && byte & 0x40) offset |= -1 << shift;
    if (data[p.at++] !== 0x0b) fail("a data segment's offset is not a constant");
    const size = leb(data, p);
    out.push({ offset: offset >>> 0, size, at: base + p.at });
    p.at += size;
  }
  return out;
}
