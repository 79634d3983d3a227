// What each example ships to the browser, gzipped (level 9): its JS, its
// wasm, its HTML/CSS. A report for `make examples`, not a test.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const EXAMPLES = resolve(fileURLToPath(import.meta.url), "../../../examples");
const builds = { react: "react/dist", vue: "vue/dist", svelte: "svelte/dist", webpack: "webpack/dist", nextjs: "nextjs/out" };

function files(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

const gz = (p) => gzipSync(readFileSync(p), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

console.log("example    wasm (gz)   JS (gz)    other (gz)  total (gz)");
for (const [name, dir] of Object.entries(builds)) {
  const sum = { wasm: 0, js: 0, other: 0 };
  for (const f of files(join(EXAMPLES, dir))) {
    const kind = f.endsWith(".wasm") ? "wasm" : f.endsWith(".js") ? "js" : f.endsWith(".txt") || f.endsWith(".map") ? null : "other";
    if (kind) sum[kind] += gz(f);
  }
  console.log(
    `${name.padEnd(10)} ${kb(sum.wasm).padStart(9)} ${kb(sum.js).padStart(9)} ${kb(sum.other).padStart(12)} ${kb(sum.wasm + sum.js + sum.other).padStart(11)}`,
  );
}
