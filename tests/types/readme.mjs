// The README's JavaScript/TypeScript snippets, extracted (never copied by
// hand) into target/readme-snippets/, one module each, for `tsc` to check
// against the package's typings (readme.tsconfig.json). What a snippet
// leaves to the app (its backend's fetchJwt, a render function...) is
// declared in readme-app.d.ts. Vue single-file components are not checked;
// the bundler plugins (Vite, webpack) are checked to be the examples' own,
// which their builds compile and the browser tests run.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const OUT = join(ROOT, "target/readme-snippets");
const lines = readFileSync(join(ROOT, "README.md"), "utf8").split("\n");
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
let n = 0;
for (let i = 0; i < lines.length; i++) {
  const open = /^```(js|jsx|ts|tsx)\s*$/.exec(lines[i]);
  if (!open) continue;
  const start = i + 1;
  let end = start;
  while (end < lines.length && lines[end] !== "```") end++;
  const code = lines.slice(start, end).join("\n");
  // A bundler's config (their types and packages are the examples'):
  // checked where the same plugin lives and is built, by the examples.
  const config = [
    ["export function valetPreload", /^export function valetPreload[\s\S]*?^}$/m, "examples/react/valet-preload.mjs"],
    ['require("html-webpack-plugin")', /^class ValetPreloadPlugin[\s\S]*?^}$/m, "examples/webpack/webpack.config.js"],
  ].find(([marker]) => code.includes(marker));
  if (config) {
    const [, plugin, file] = config;
    const body = plugin.exec(code)?.[0];
    if (!body || !readFileSync(join(ROOT, file), "utf8").includes(body)) throw new Error(`README.md line ${start + 1}: its plugin is not the one in ${file}`);
    i = end;
    continue;
  }
  // Next.js's hint (react-dom's `preload`): its URL and its call are the
  // example's (examples/nextjs/app/chat.tsx, built and run by the tests).
  if (code.includes('from "react-dom"') && code.includes("preload(")) {
    const example = readFileSync(join(ROOT, "examples/nextjs/app/chat.tsx"), "utf8");
    for (const line of code.split("\n").filter((l) => /^(const WASM|  preload\()/.test(l))) {
      if (!example.includes(line)) throw new Error(`README.md line ${start + 1}: "${line.trim()}" is not in examples/nextjs/app/chat.tsx`);
    }
    i = end;
    continue;
  }
  // Each snippet is a module (top-level await, its own names).
  const text = `// README.md line ${start + 1}\n${code}\nexport {};\n`;
  writeFileSync(join(OUT, `snippet-${String(++n).padStart(2, "0")}-line${start + 1}.tsx`), text);
  i = end;
}
if (n === 0) throw new Error("no snippet found in README.md");
console.log(`extracted ${n} README snippets into target/readme-snippets/`);
