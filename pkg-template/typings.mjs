// The typings that ship come from a second build of the glue: `make wasm`
// builds it with the `typings` feature (tsify declares the option, payload
// and error types) and the wasm and JS that ship without it (tsify links
// `std`; the shipped wasm is `no_std`). This writes, into the shipped
// build's valet_wasm.d.ts, the typings build's type declarations in place
// of its own, after checking that both builds declare the same classes and
// functions: the typings build may only add type declarations. The rest
// (the init functions, the raw exports) stays the shipped build's.
//
// Usage: node pkg-template/typings.mjs <typings build dir> <shipped build dir>
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [from, to] = process.argv.slice(2);
if (!from || !to) {
  console.error("usage: node pkg-template/typings.mjs <typings build dir> <shipped build dir>");
  process.exit(2);
}
const FILE = "valet_wasm.d.ts";
/** A .d.ts in three: the type declarations, the classes and functions, the init part. */
function parts(dir) {
  const text = readFileSync(join(dir, FILE), "utf8");
  const api = text.search(/^export (class|function) /m), init = text.indexOf("export type InitInput");
  if (api < 0 || init < api) throw new Error(`typings: ${join(dir, FILE)} is not a wasm-bindgen .d.ts`);
  return { types: text.slice(0, api), api: text.slice(api, init), init: text.slice(init) };
}
const typed = parts(from), shipped = parts(to);
const fail = (why) => {
  console.error(`typings: ${why} (${join(from, FILE)} against ${join(to, FILE)})`);
  process.exit(1);
};
if (typed.api !== shipped.api) fail("the two builds declare different classes or functions");
const declared = new Set(typed.types.split("\n"));
if (shipped.types.split("\n").some((line) => !declared.has(line))) fail("the typings build lacks a declaration of the shipped build");
// `initSync` is wasm-bindgen's (the package's own `init()` loads the wasm):
// not part of the API the reference documents.
const initSync = "export function initSync(";
if (!shipped.init.includes(initSync)) fail("no initSync in the init part");
const init = shipped.init.replace(/ \*\/\nexport function initSync\(/, " *\n * @internal\n */\n" + initSync);
writeFileSync(join(to, FILE), typed.types + shipped.api + init);
