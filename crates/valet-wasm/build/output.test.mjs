// The post-link steps on the real toolchain output: the wasm-bindgen build
// of this checkout as `make wasm` keeps it before they run
// (target/wasm/raw), and what ships (target/wasm/web).
//
// - traps.mjs: every panic function of `core` and `alloc` that the build
//   has becomes a bare `unreachable`, `panic_fmt` among them, and the wasm
//   still validates.
// - imports.mjs: every import the wasm takes from its glue gets a short
//   name, and the glue provides exactly those: the module instantiates
//   (a missing or misnamed import is a LinkError), after both steps and in
//   the shipped build (after wasm-opt and terser too).
//
// - lazy.mjs: each module a snippet imports lazily (`import("./x.js")`) is
//   shipped beside it, and nothing imports it statically.
//
// Run by `make test-build` (part of `make test`), after `make wasm`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { jsFiles, lazyImports } from "./lazy.mjs";

const require = createRequire(new URL("../../../tests/package.json", import.meta.url));
const { default: binaryen } = await import(pathToFileURL(require.resolve("binaryen")).href);

const root = new URL("../../../", import.meta.url).pathname;
const raw = join(root, "target/wasm/raw");
const shipped = join(root, "target/wasm/web");
if (!existsSync(join(raw, "valet_wasm_bg.wasm"))) throw new Error(`${raw} is missing: run make wasm first`);

const PANICS = /^<?(core|alloc|__rustc)\[[0-9a-f]+\]::.*(panic|_fail|failed|alloc_error|capacity_overflow)/;

/** The raw build copied to a fresh directory, with `steps` run on it. */
function processed(...steps) {
  const dir = join(mkdtempSync(join(tmpdir(), "valet-build-")), "web");
  cpSync(raw, dir, { recursive: true });
  for (const step of steps) execFileSync("node", [new URL(step, import.meta.url).pathname, dir], { stdio: "pipe" });
  return dir;
}

/** Function index → [name, body expression id], for the functions `keep` selects. */
function bodies(path, keep) {
  binaryen.setDebugInfo(true);
  const m = binaryen.readBinary(readFileSync(path));
  const out = new Map();
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
    if (!f.module && f.body && keep(f, i)) out.set(i, [f.name, binaryen.getExpressionId(f.body)]);
  }
  const valid = m.validate();
  m.dispose();
  return { out, valid };
}

/** Instantiates `dir`'s wasm with its own glue, in Node (the glue's `initSync`). */
async function instantiate(dir) {
  const glue = await import(pathToFileURL(join(dir, "valet_wasm.js")).href + `?${Math.random()}`);
  const exports = glue.initSync({ module: readFileSync(join(dir, "valet_wasm_bg.wasm")) });
  assert.ok(exports.memory instanceof WebAssembly.Memory);
  return new WebAssembly.Module(readFileSync(join(dir, "valet_wasm_bg.wasm")));
}

test("traps.mjs: the build's panic functions trap at once, and the wasm validates", () => {
  // traps.mjs writes the wasm without names, in the same function order.
  const before = bodies(join(raw, "valet_wasm_bg.wasm"), (f) => PANICS.test(f.name) && f.results === binaryen.none);
  const panicFmt = [...before.out].filter(([, [name]]) => /::panicking::panic_fmt$/.test(name));
  assert.equal(panicFmt.length, 1, "core::panicking::panic_fmt is in the build");
  const dir = processed("traps.mjs");
  const after = bodies(join(dir, "valet_wasm_bg.wasm"), (_, i) => before.out.has(i));
  assert.ok(after.valid, "validates");
  assert.equal(after.out.get(panicFmt[0][0])[1], binaryen.UnreachableId, "panic_fmt is a bare unreachable");
  const rewritten = [...before.out].filter(([i, [, id]]) => id !== binaryen.UnreachableId && after.out.get(i)[1] === binaryen.UnreachableId);
  assert.ok(rewritten.length >= 5, `panic functions rewritten: ${rewritten.length}`);
});

test("imports.mjs: short import names, and the glue provides exactly those", async () => {
  const dir = processed("traps.mjs", "imports.mjs");
  const module = await instantiate(dir);
  const fromGlue = WebAssembly.Module.imports(module).filter((i) => i.module === "a");
  assert.ok(fromGlue.length > 20, `imports from the glue: ${fromGlue.length}`);
  assert.ok(fromGlue.every((i) => i.name.length <= 2), "each named in one or two characters");
  const left = readFileSync(join(dir, "valet_wasm.js"), "utf8").match(/__wbg_\w+_[0-9a-f]{16}\b/g);
  assert.equal(left, null, "no wasm-bindgen import name is left in the glue");
});

test("the shipped build instantiates with its glue", async () => {
  const module = await instantiate(shipped);
  assert.ok(WebAssembly.Module.imports(module).some((i) => i.module === "a"));
});

test("lazy.mjs: each module a snippet imports lazily is shipped beside it, and no snippet imports it statically", () => {
  const files = jsFiles(join(shipped, "snippets"));
  const lazy = files.flatMap((f) => lazyImports(readFileSync(f, "utf8")).map((name) => join(dirname(f), name)));
  assert.ok(lazy.some((f) => f.endsWith("/idb.js")), "the IndexedDB module is imported lazily");
  for (const f of lazy) assert.ok(existsSync(f), `${f} is shipped`);
  // Loaded lazily only: neither the glue nor a snippet imports it statically.
  for (const f of [join(shipped, "valet_wasm.js"), ...files]) {
    const text = readFileSync(f, "utf8");
    for (const l of lazy) assert.ok(!new RegExp(`from\\s*["'][^"']*${basename(l).replace(".", "\\.")}["']`).test(text), `${f} imports ${basename(l)} statically`);
  }
});
