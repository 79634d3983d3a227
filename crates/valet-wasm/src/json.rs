//! `JSON.parse` as valet-core's JSON reader (`valet_core::json`), as a few
//! lines of JS.
//!
//! Decisions:
//! - The core asks for the values at a few paths of a JSON text; the
//!   browser parses, so the wasm ships no JSON parser.
//! - A read crosses the boundary once each way: the text in, the values out
//!   as one string, each tagged (`u` missing, `z` null, `t`/`f`, `i` and the
//!   digits of a whole number below 2^53, `s` and the string, `o` anything
//!   else) and separated by NUL, which no read string holds (a string with
//!   one reads as `o`, as the native reader has it).

use valet_core::json::{JsonReader, Val};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
function at(v, path) {
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object" || Array.isArray(v) || !Object.prototype.hasOwnProperty.call(v, k)) return undefined;
    v = v[k];
  }
  return v;
}
function enc(x) {
  switch (typeof x) {
    case "undefined": return "u";
    case "boolean": return x ? "t" : "f";
    case "number": return Number.isInteger(x) && x >= 0 && x < 9007199254740992 ? "i" + x : "o";
    case "string": return x.includes("\0") ? "o" : "s" + x;
    default: return x === null ? "z" : "o";
  }
}
export function jsonRead(text, paths) {
  let v;
  try { v = JSON.parse(text); } catch { return undefined; }
  return paths === "" ? "" : paths.split(",").map((p) => enc(at(v, p))).join("\0");
}
export function jsonElements(text, path) {
  let v;
  try { v = JSON.parse(text); } catch { return undefined; }
  const x = at(v, path);
  return Array.isArray(x) ? x.map((e) => JSON.stringify(e)).join("\0") : undefined;
}
"#)]
extern "C" {
    /// `JSON.parse(text)`'s values at the comma-separated `paths`, in one
    /// string (one crossing): per value a tag and its text, `\0` between
    /// them (see [`JsJson`]); `None` if not JSON.
    #[wasm_bindgen(js_name = jsonRead)]
    fn json_read(text: &str, paths: &str) -> Option<String>;

    /// The elements of the array at `path`, as JSON texts joined by `\0`
    /// (which JSON text never holds raw); `None`: no array there.
    #[wasm_bindgen(js_name = jsonElements)]
    fn json_elements(text: &str, path: &str) -> Option<String>;
}

/// `JSON.parse` as valet-core's JSON reader (see `valet_core::json`).
pub struct JsJson;

impl JsonReader for JsJson {
    fn read(&self, text: &str, paths: &[&str]) -> Option<Vec<Val>> {
        let mut joined = String::new();
        for (i, p) in paths.iter().enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(p);
        }
        let got = json_read(text, &joined)?;
        if paths.is_empty() {
            return Some(Vec::new());
        }
        Some(
            got.split('\0')
                .map(|v| match v.as_bytes().first() {
                    // The tag is one ASCII byte: `get(1..)` never fails.
                    Some(b'u') => Val::Missing,
                    Some(b'z') => Val::Null,
                    Some(b't') => Val::Bool(true),
                    Some(b'f') => Val::Bool(false),
                    Some(b'i') => v.get(1..).unwrap_or_default().parse().map_or(Val::Other, Val::Int),
                    Some(b's') => Val::Str(v.get(1..).unwrap_or_default().to_owned()),
                    _ => Val::Other,
                })
                .collect(),
        )
    }

    fn elements(&self, text: &str, path: &str) -> Option<Vec<String>> {
        let got = json_elements(text, path)?;
        Some(if got.is_empty() { Vec::new() } else { got.split('\0').map(str::to_owned).collect() })
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::*;

    #[wasm_bindgen_test]
    fn json_parse_reads_as_the_native_reader_does() {
        valet_core::json::check_reader(&JsJson);
        // What the core reads with it.
        valet_core::json::set_reader(&JsJson);
        let m = valet_core::wire::RawMessage::from_frame(r#"{"message":{"id":"x","seq":2}}"#.into()).unwrap();
        assert_eq!((m.id.as_str(), m.seq), ("x", Some(2)));
        assert!(valet_core::wire::RawMessage::from_frame(r#"{"message":{"id":"x","seq":-1}}"#.into()).is_err());
        assert!(valet_core::wire::RawMessage::from_frame("{nope".into()).is_err());
    }
}
