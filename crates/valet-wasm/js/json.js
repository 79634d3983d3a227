// @ts-check
// The JSON reader the core decides with: `JSON.parse`, and the values at a
// few paths of each text, encoded for one crossing (valet_core::json).
// Imported by src/json.rs (`#[wasm_bindgen(module = "/js/json.js")]`).

/**
 * The value at `keys` (own properties of objects only), or undefined.
 * @param {unknown} v
 * @param {string[]} keys
 * @returns {unknown}
 */
function at(v, keys) {
  for (const k of keys) {
    if (v === null || typeof v !== "object" || Array.isArray(v) || !Object.prototype.hasOwnProperty.call(v, k)) return undefined;
    v = /** @type {Record<string, unknown>} */ (v)[k];
  }
  return v;
}

/**
 * A value as the core reads it: `u` missing, `z` null, `t`/`f`, `i` and a
 * whole number below 2^53, `s` and a string without NUL, `o` anything else.
 * @param {unknown} x
 * @returns {string}
 */
function enc(x) {
  switch (typeof x) {
    case "undefined": return "u";
    case "boolean": return x ? "t" : "f";
    case "number": return Number.isInteger(x) && x >= 0 && x < 9007199254740992 ? "i" + x : "o";
    case "string": return x.includes("\0") ? "o" : "s" + x;
    default: return x === null ? "z" : "o";
  }
}

/** @param {string} paths ","-separated, each "."-separated */
const keysOf = (paths) => (paths === "" ? [] : paths.split(",").map((p) => p.split(".")));

/**
 * @param {string[]} out
 * @param {unknown} v
 * @param {string[][]} ps
 */
const values = (out, v, ps) => { for (const p of ps) out.push(enc(at(v, p))); };

/**
 * Each of the NUL-separated `texts`: `x` (not JSON), or `j` and its values
 * at `paths`; all NUL-separated.
 * @param {string} texts
 * @param {string} paths
 * @returns {string}
 */
export function jsonReadEach(texts, paths) {
  const ps = keysOf(paths);
  /** @type {string[]} */
  const out = [];
  for (const text of texts.split("\0")) {
    let v;
    try { v = JSON.parse(text); } catch { out.push("x"); continue; }
    out.push("j");
    values(out, v, ps);
  }
  return out.join("\0");
}

/**
 * The elements of the array at `path` of `text`: each as JSON, then its
 * values at `paths`; NUL-separated. Undefined when there is no such array.
 * @param {string} text
 * @param {string} path
 * @param {string} paths
 * @returns {string | undefined}
 */
export function jsonElements(text, path, paths) {
  let v;
  try { v = JSON.parse(text); } catch { return undefined; }
  const x = at(v, path.split("."));
  if (!Array.isArray(x)) return undefined;
  const ps = keysOf(paths);
  /** @type {string[]} */
  const out = [];
  for (const e of x) {
    out.push(JSON.stringify(e));
    values(out, e, ps);
  }
  return out.join("\0");
}
