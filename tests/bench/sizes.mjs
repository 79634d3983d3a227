// make size / make bench: what a user downloads, per entry point of the npm
// package (pkg/), gzip -9 and brotli (max quality): the wasm and its glue
// (what the size budget counts), and each JS module an app imports.
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const PKG = resolve(fileURLToPath(import.meta.url), "../../../pkg");
const gz = (b) => gzipSync(b, { level: 9 }).length;
const br = (b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
const read = (f) => readFileSync(join(PKG, f));
// The lazily loaded snippets (crates/valet-wasm/build/lazy.mjs, the Makefile's
// LAZY_JS) apart: only the apps that use them download them.
const LAZY = ["idb.js"];
const files = readdirSync(join(PKG, "wasm/snippets"), { recursive: true }).filter((f) => f.endsWith(".js"));
const snippets = files.filter((f) => !LAZY.some((l) => f.endsWith(`/${l}`))).map((f) => read(join("wasm/snippets", f)));
const lazy = files.filter((f) => LAZY.some((l) => f.endsWith(`/${l}`))).map((f) => read(join("wasm/snippets", f)));

const rows = [
  ["wasm (valet_wasm_bg.wasm)", read("wasm/valet_wasm_bg.wasm")],
  ["wasm-bindgen glue (valet_wasm.js)", read("wasm/valet_wasm.js")],
  ["glue snippets (as one file)", Buffer.concat(snippets)],
  ["@valet.red/sdk (index.js, error.js)", Buffer.concat([read("index.js"), read("error.js")])],
  ["@valet.red/sdk/store (store.js)", read("store.js")],
  ["@valet.red/sdk/react (react.js)", read("react.js")],
  ["@valet.red/sdk/vue (vue.js)", read("vue.js")],
  ["@valet.red/sdk/element (element.js)", read("element.js")],
  ["@valet.red/sdk/testing (testing.js; tests only)", read("testing.js")],
  ['persist: "local" (idb.js; loaded on use)', Buffer.concat(lazy)],
];
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log("\nWhat the package ships, per part (bytes as downloaded)");
console.log("part                                       raw        gzip -9     brotli");
const budget = [0, 0]; // the first three rows: what the size budget counts
rows.forEach(([name, bytes], i) => {
  const g = gz(bytes), b = br(bytes);
  if (i < 3) (budget[0] += g), (budget[1] += b);
  console.log(`${name.padEnd(40)} ${kb(bytes.length).padStart(9)} ${kb(g).padStart(10)} ${kb(b).padStart(10)}`);
});
console.log(`${"wasm + glue (the size budget's measure)".padEnd(40)} ${"".padStart(9)} ${kb(budget[0]).padStart(10)} ${kb(budget[1]).padStart(10)}`);
