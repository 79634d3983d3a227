// The README's JavaScript/TypeScript snippets, extracted (never copied by
// hand) into target/readme-snippets/, one module each, for `tsc` to check
// against the package's typings (readme.tsconfig.json). What a snippet
// leaves to the app (its backend's fetchJwt, a render function...) is
// declared in readme-app.d.ts. Vue single-file components are not checked;
// the Vite plugin is checked to be examples/react's, whose build type-checks it.
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
  // A Vite config (its types are the examples'): checked where the same
  // function lives and is built, examples/react/vite.config.ts.
  if (code.includes('from "vite"')) {
    const fn = /^function valetPreload[\s\S]*?^}$/m.exec(code)?.[0];
    const config = readFileSync(join(ROOT, "examples/react/vite.config.ts"), "utf8");
    if (!fn || !config.includes(fn)) throw new Error(`README.md line ${start + 1}: its valetPreload is not the one in examples/react/vite.config.ts`);
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
