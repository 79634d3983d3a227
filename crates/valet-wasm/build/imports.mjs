// Short names for what the wasm imports from its glue and exports to it.
//
// Why: wasm-bindgen names each import of the glue `__wbg_<name>_<hash>`
// (`__wbg_httpSend_78d24742a64d2bf3`), from the module
// "./valet_wasm_bg.js". The wasm spells each name once in its import
// section, the glue once as a key of its import object; the hashes do not
// compress. Here they become `a`, `b`, …, `$a`, … from a module `a`
// (emscripten does the same with binaryen's minify-imports-and-exports
// pass). The exports the glue calls get short names too (below). What it
// saves: docs/size.md, "The post-link steps". The snippets' imports
// (imported by their export names) are left as they are.
//
// The wasm is rewritten with binaryen's API (npm `binaryen`, from
// tests/package-lock.json), the glue by replacing each key, which must
// occur exactly once: anything unexpected fails the build.
//
// Usage: node crates/valet-wasm/build/imports.mjs <dir> (before wasm-opt and terser)
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../../../tests/package.json", import.meta.url));
const { default: binaryen } = await import(pathToFileURL(require.resolve("binaryen")).href);

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node crates/valet-wasm/build/imports.mjs <dir>");
  process.exit(2);
}
const GLUE_MODULE = "./valet_wasm_bg.js";
const wasmPath = join(dir, "valet_wasm_bg.wasm");
const gluePath = join(dir, "valet_wasm.js");
const dtsPath = join(dir, "valet_wasm.d.ts");
const bgDtsPath = join(dir, "valet_wasm_bg.wasm.d.ts");

// Short names that are valid JS identifiers and not keywords.
const first = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$";
const rest = first + "0123456789";
const reserved = new Set(["do", "if", "in"]);
function* shortNames() {
  for (const c of first) yield c;
  for (const c of first) for (const d of rest) if (!reserved.has(c + d)) yield c + d;
}

const fail = (why) => {
  console.error(`imports.mjs: ${why}`);
  process.exit(1);
};

const module = binaryen.readBinary(readFileSync(wasmPath));
const imports = [];
for (let i = 0; i < module.getNumFunctions(); i++) {
  const f = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
  if (f.module === GLUE_MODULE) imports.push(f);
}
if (imports.length === 0) fail(`no import from ${GLUE_MODULE} in ${wasmPath}`);

let glue = readFileSync(gluePath, "utf8");
/** `text` with the one match of `pattern` replaced; fails unless it matches once. */
const replacedOnce = (text, path, pattern, replacement, what) => {
  const found = text.match(new RegExp(pattern.source, pattern.flags + "g"))?.length ?? 0;
  if (found !== 1) fail(`${what} occurs ${found} times in ${path}, not once`);
  return text.replace(pattern, replacement);
};
const replaceOnce = (pattern, replacement, what) => {
  glue = replacedOnce(glue, gluePath, pattern, replacement, what);
};

const names = shortNames();
for (const f of imports) {
  const short = names.next().value;
  // Same internal name: the calls to it are unchanged.
  module.removeFunction(f.name);
  module.addFunctionImport(f.name, "a", short, f.params, f.results);
  replaceOnce(new RegExp(`(?<=[\\s{,])${f.base}(?=:)`), short, `the import ${f.base}`);
}
replaceOnce(/"\.\/valet_wasm_bg\.js"(?=: import0,)/, "a", `the module ${GLUE_MODULE}`);

// The exports the glue calls (`wasm.convo_on(…)`, `wasm.__wbindgen_malloc`,
// the closures' `wasm_bindgen__convert__closures_____invoke__<hash>`):
// short names too, in the wasm, the glue and the two declarations of
// `init()`'s answer (`InitOutput` in valet_wasm.d.ts, and
// valet_wasm_bg.wasm.d.ts). `memory` keeps its name, and so do exports
// the glue does not call (wasm-bindgen's `__abort_handler`, …); each
// renamed one must be declared once in each .d.ts.
let dts = readFileSync(dtsPath, "utf8");
let bgDts = readFileSync(bgDtsPath, "utf8");
const exportNames = shortNames();
const exports = [];
for (let i = 0; i < module.getNumExports(); i++) exports.push(binaryen.getExportInfo(module.getExportByIndex(i)));
let renamedExports = 0;
// An identifier may hold a `$`, which a RegExp would read as an anchor.
const literal = (name) => name.replace(/[$]/g, "\\$&");
for (const e of exports) {
  const uses = new RegExp(`(?<![\\w$.])wasm\\.${literal(e.name)}(?![\\w$])`, "g");
  if (e.name === "memory" || !glue.match(uses)) continue;
  const short = exportNames.next().value;
  glue = glue.replace(uses, `wasm.${short}`);
  const what = `the declaration of the export ${e.name}`;
  dts = replacedOnce(dts, dtsPath, new RegExp(`(?<=^    readonly )${literal(e.name)}(?=:)`, "m"), short, what);
  bgDts = replacedOnce(bgDts, bgDtsPath, new RegExp(`(?<=^export const )${literal(e.name)}(?=:)`, "m"), short, what);
  module.removeExport(e.name);
  if (e.kind === binaryen.ExternalFunction) module.addFunctionExport(e.value, short);
  else if (e.kind === binaryen.ExternalTable) module.addTableExport(e.value, short);
  else if (e.kind === binaryen.ExternalGlobal) module.addGlobalExport(e.value, short);
  else fail(`the export ${e.name} is of an unexpected kind`);
  renamedExports++;
}
if (!module.validate()) fail("the rewritten wasm does not validate");

writeFileSync(wasmPath, module.emitBinary());
writeFileSync(gluePath, glue);
writeFileSync(dtsPath, dts);
writeFileSync(bgDtsPath, bgDts);
console.log(`imports.mjs: ${imports.length} imports and ${renamedExports} exports renamed`);
