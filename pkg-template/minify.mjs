// The wasm-bindgen JS that ships (the glue and its snippets: crates/valet-wasm/js/),
// minified in place with terser: `make wasm` runs it on target/wasm/web, so
// everything that is tested, measured and packed is what users download.
//
// Why: the glue is wasm-bindgen's generated code with every Rust doc comment
// copied in as JSDoc; a bundler would strip and minify it anyway, but an app
// that imports the package from a `<script type="module">` gets the files as
// they are. The docs stay in the `.d.ts` files, which are not touched.
// Export names, property names (the wasm's import object) and the
// `new URL("valet_wasm_bg.wasm", import.meta.url)` that bundlers look for
// are kept: terser mangles local names only.
//
// Usage: node pkg-template/minify.mjs <dir>
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/package.json", import.meta.url));
const { minify } = require("terser");

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node pkg-template/minify.mjs <dir>");
  process.exit(2);
}

/** The .js files under `dir` (the glue and snippets/…), not the typings. */
function jsFiles(d) {
  return readdirSync(d).flatMap((name) => {
    const path = join(d, name);
    if (statSync(path).isDirectory()) return jsFiles(path);
    return name.endsWith(".js") ? [path] : [];
  });
}

for (const path of jsFiles(dir)) {
  const source = readFileSync(path, "utf8");
  const result = await minify(source, {
    module: true,
    ecma: 2020,
    compress: { passes: 2 },
    mangle: true,
    format: { comments: false },
  });
  writeFileSync(path, result.code);
}
