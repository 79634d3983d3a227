//! `JSON.parse` as valet-core's JSON reader (`valet_core::json`), as a few
//! lines of JS.
//!
//! Decisions:
//! - The core asks for the values at a few paths of a JSON text; the
//!   browser parses, so the wasm ships no JSON parser.
//! - A read crosses the boundary once each way, and so do the reads of many
//!   texts (the message frames of a chunk: a crossing per text cost more
//!   than its parse) and a history (parsed once; its messages come back as
//!   texts with their values): the texts in as one string, the values out
//!   as one string, each tagged (`u` missing, `z` null, `t`/`f`, `i` and
//!   the digits of a whole number below 2^53, `s` and the string, `o`
//!   anything else) and separated by NUL, which no read string holds (a
//!   string with one reads as `o`, as the native reader has it).

#[allow(unused_imports)]
use crate::prelude::*;
use valet_core::json::{JsonReader, Val};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/json.js")]
extern "C" {
    /// `JSON.parse` of each of the texts joined by `\0` (none holds one),
    /// and the values at the comma-separated `paths`, in one string (one
    /// crossing): per text `j` and a value per path, or `x` (not JSON);
    /// per value a tag and its text (see [`JsJson`]), `\0` between them.
    #[wasm_bindgen(js_name = jsonReadEach)]
    fn json_read_each(texts: &str, paths: &str) -> String;

    /// The elements of the array at `path`, each as JSON text (which never
    /// holds a raw `\0`) followed by its values at the comma-separated
    /// `paths`, all joined by `\0`; `None`: not JSON, or no array there.
    #[wasm_bindgen(js_name = jsonElements)]
    fn json_elements(text: &str, path: &str, paths: &str) -> Option<String>;
}

/// `JSON.parse` as valet-core's JSON reader (see `valet_core::json`).
pub struct JsJson;

fn join(items: &[&str], sep: char) -> String {
    let mut joined = String::new();
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            joined.push(sep);
        }
        joined.push_str(p);
    }
    joined
}

/// The next `n` tagged values of `parts`.
fn vals(parts: &mut valet_core::text::SplitAscii<'_>, n: usize) -> Vec<Val> {
    let mut vals = Vec::with_capacity(n);
    for _ in 0..n {
        vals.push(val(parts.next().unwrap_or_default()));
    }
    vals
}

/// One tagged value (see the JS above).
fn val(v: &str) -> Val {
    // The tag is one ASCII byte: `get(1..)` never fails.
    match v.as_bytes().first() {
        Some(b'u') => Val::Missing,
        Some(b'z') => Val::Null,
        Some(b't') => Val::Bool(true),
        Some(b'f') => Val::Bool(false),
        Some(b'i') => valet_core::json::parse_u64(v.get(1..).unwrap_or_default()).map_or(Val::Other, Val::Int),
        Some(b's') => Val::Str(v.get(1..).unwrap_or_default().to_owned()),
        _ => Val::Other,
    }
}

impl JsonReader for JsJson {
    fn read(&self, text: &str, paths: &[&str]) -> Option<Vec<Val>> {
        self.read_each(&[text], paths).pop().flatten()
    }

    fn read_each(&self, texts: &[&str], paths: &[&str]) -> Vec<Option<Vec<Val>>> {
        if texts.is_empty() {
            return Vec::new();
        }
        // A text with a NUL is not JSON (JSON holds none raw): it goes as
        // "", which is not JSON either, so that `\0` can join the texts.
        let mut joined = String::new();
        for (i, t) in texts.iter().enumerate() {
            if i > 0 {
                joined.push('\0');
            }
            if !t.bytes().any(|b| b == 0) {
                joined.push_str(t);
            }
        }
        let got = json_read_each(&joined, &join(paths, ','));
        let mut parts = valet_core::text::split_ascii(&got, 0);
        let mut out = Vec::with_capacity(texts.len());
        for _ in texts {
            out.push(if parts.next() == Some("j") { Some(vals(&mut parts, paths.len())) } else { None });
        }
        out
    }

    fn elements(&self, text: &str, path: &str, paths: &[&str]) -> Option<Vec<(String, Vec<Val>)>> {
        let got = json_elements(text, path, &join(paths, ','))?;
        let mut out = Vec::new();
        // No element's text is empty: "" is an empty array.
        if got.is_empty() {
            return Some(out);
        }
        let mut parts = valet_core::text::split_ascii(&got, 0);
        while let Some(text) = parts.next() {
            out.push((text.to_owned(), vals(&mut parts, paths.len())));
        }
        Some(out)
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
        use valet_core::wire::{read_frames, Frame};
        let read = |data: &str| read_frames([("message", data.to_owned())], "c").pop().unwrap();
        let Ok(Some(Frame::Message(m))) = read(r#"{"convo_id":"c","message":{"id":"x","seq":2,"from":"appuser","created_at":"t"}}"#) else {
            panic!("a message")
        };
        assert_eq!((m.id.as_str(), m.seq), ("x", Some(2)));
        assert!(read(r#"{"convo_id":"c","message":{"id":"x","seq":-1,"from":"appuser","created_at":"t"}}"#).is_err());
        assert!(read(r#"{"message":{"id":"x","seq":2,"from":"appuser","created_at":"t"}}"#).is_err(), "no convo_id");
        assert!(read("{nope").is_err());
    }
}
