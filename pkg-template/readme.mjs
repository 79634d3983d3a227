// pkg/README.md: the head in pkg-template/README.md, then the SDK section of
// the repository's README.md (between the package-readme markers), with
// links into the repository turned into plain text.
import { readFileSync, writeFileSync } from "node:fs";

const [head, repoReadme, out] = process.argv.slice(2);
const text = readFileSync(repoReadme, "utf8");
const start = text.indexOf("<!-- package-readme -->");
const end = text.indexOf("<!-- /package-readme -->");
if (start < 0 || end < start) throw new Error(`${repoReadme}: no package-readme section`);
const body = text
  .slice(start + "<!-- package-readme -->".length, end)
  .replace(/\[([^\]]+)\]\((?:examples|docs)\/[^)]*\)/g, "$1")
  .replace(/^###/gm, "##");
writeFileSync(out, readFileSync(head, "utf8") + body.trim() + "\n");
