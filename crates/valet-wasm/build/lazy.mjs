// The snippets' lazily loaded modules, put beside them.
//
// Why: wasm-bindgen copies into `snippets/` only the modules the wasm
// imports (`#[wasm_bindgen(module = "/js/…")]`), which the glue then
// imports statically, so every user downloads them. A module only some
// apps need (idb.js: the IndexedDB code of `persist: "local"`) is imported
// by its snippet with `import("./idb.js")` instead: bundlers make it a
// chunk of its own, and a page without a bundler fetches it on first use.
// This step copies each module a snippet imports so from
// crates/valet-wasm/js/ to beside that snippet; a module that is not there
// fails the build. What it saves: docs/size.md.
//
// Usage: node crates/valet-wasm/build/lazy.mjs <dir> (after wasm-bindgen).
// Imported (build/output.test.mjs), it only exports its readers.
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const SOURCES = new URL("../js/", import.meta.url).pathname;

/** The .js files under `d`. */
export function jsFiles(d) {
  return readdirSync(d).flatMap((name) => {
    const path = join(d, name);
    if (statSync(path).isDirectory()) return jsFiles(path);
    return name.endsWith(".js") ? [path] : [];
  });
}

/** The modules `source` imports dynamically by a relative name: `import("./x.js")`. */
export const lazyImports = (source) => [...source.matchAll(/\bimport\(\s*["']\.\/([\w-]+\.js)["']\s*\)/g)].map((m) => m[1]);

/** Copies into `dir`'s snippets each module they import lazily. */
function copyLazy(dir) {
  const queue = existsSync(join(dir, "snippets")) ? jsFiles(join(dir, "snippets")) : [];
  let copied = 0;
  while (queue.length) {
    const file = queue.shift();
    for (const name of lazyImports(readFileSync(file, "utf8"))) {
      const target = join(dirname(file), name);
      if (existsSync(target)) continue;
      const source = join(SOURCES, name);
      if (!existsSync(source)) throw new Error(`${file} imports ./${name}, which crates/valet-wasm/js/ does not have`);
      copyFileSync(source, target);
      queue.push(target);
      copied += 1;
    }
  }
  if (copied === 0) throw new Error("no snippet imports a module lazily: is this step still needed?");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error("usage: node crates/valet-wasm/build/lazy.mjs <dir>");
    process.exit(2);
  }
  copyLazy(dir);
}
