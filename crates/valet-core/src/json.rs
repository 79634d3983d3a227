//! Reading JSON texts: the few fields the SDK decides on.
//!
//! Decisions:
//! - The SDK reads little of what it receives: a frame's `type`, a message's
//!   `id` and `seq`, a `closed` reason, an error body's `message` and
//!   `retry_after_seconds`, a tab message's envelope. It hands every text on
//!   as it came. So reading is one small service, [`JsonReader`]: the values
//!   at a few paths of a JSON text (or of many texts at once), and the
//!   elements of an array as texts, each with its values at a few paths.
//! - The host provides it ([`set_reader`]). In the browser it is the
//!   engine's `JSON.parse` (valet-wasm), so the wasm ships no JSON parser;
//!   natively (the reference server, the tests) it is serde_json, the
//!   fallback with the `serde-reader` feature (on by default).
//! - Every decision about the values (what is an id, a valid `seq`) is made
//!   here and in the callers, not in the reader: both readers only parse.

#[allow(unused_imports)]
use crate::prelude::*;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A value read at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// No such key (or a step of the path is not an object).
    Missing,
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number from 0 to below 2^53 (held exactly by every reader): the
    /// only numbers the SDK reads. Any other number is `Other`.
    Int(u64),
    /// A string (without NUL characters: the browser reader reads a string
    /// with one as `Other`).
    Str(String),
    /// An object, an array, or a number that is not a whole number.
    Other,
}

impl Val {
    /// The string, if it is one.
    pub fn str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The string, if it is one, taken.
    pub fn into_string(self) -> Option<String> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The whole number, if it is one.
    pub fn u64(&self) -> Option<u64> {
        match *self {
            Val::Int(n) => Some(n),
            _ => None,
        }
    }

    /// `Missing` or `null`: absent, for an optional field.
    pub fn is_absent(&self) -> bool {
        matches!(self, Val::Missing | Val::Null)
    }
}

/// Reads JSON texts (see the module docs).
pub trait JsonReader: Sync {
    /// The values at `paths` (keys separated by `.`) of `text`; `None` when
    /// `text` is not JSON.
    fn read(&self, text: &str, paths: &[&str]) -> Option<Vec<Val>>;
    /// The elements of the array at `path` of `text`, each as JSON text
    /// with the values at `paths` of it (one parse of `text`: a history is
    /// read once); `None` when `text` is not JSON or there is no array there.
    fn elements(&self, text: &str, path: &str, paths: &[&str]) -> Option<Vec<(String, Vec<Val>)>>;
    /// [`JsonReader::read`] of each text, in order: what a chunk of frames
    /// or a history needs, in one call (one crossing for the browser's
    /// reader, where a crossing per text costs more than the parse).
    fn read_each(&self, texts: &[&str], paths: &[&str]) -> Vec<Option<Vec<Val>>> {
        texts.iter().map(|t| self.read(t, paths)).collect()
    }
}

/// 2^53: whole numbers below it are held exactly by every JSON reader.
pub const MAX_INT: u64 = 1 << 53;

/// The installed reader: a pointer to a leaked box holding it (a `dyn`
/// reference is two words, too wide for an atomic). An atomic, not a
/// `OnceLock`, so that the crate needs no `std`.
static READER: AtomicPtr<&'static dyn JsonReader> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the reader (once; later calls are ignored). Without one, the
/// `serde-reader` feature reads with serde_json; without that feature,
/// nothing reads (every text is malformed): the host must install one.
pub fn set_reader(reader: &'static dyn JsonReader) {
    if !READER.load(Ordering::Acquire).is_null() {
        return;
    }
    let slot = Box::into_raw(Box::new(reader));
    if READER.compare_exchange(core::ptr::null_mut(), slot, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // SAFETY: `slot` came from `Box::into_raw` just above and was not published.
        drop(unsafe { Box::from_raw(slot) });
    }
}

/// The reader in force.
pub fn reader() -> &'static dyn JsonReader {
    let slot = READER.load(Ordering::Acquire);
    if !slot.is_null() {
        // SAFETY: a published slot is a leaked box, never freed or written again.
        return unsafe { *slot };
    }
    #[cfg(feature = "serde-reader")]
    {
        &SerdeReader
    }
    #[cfg(not(feature = "serde-reader"))]
    {
        &NoReader
    }
}

/// The values at `paths` of `text` (see [`JsonReader::read`]).
pub fn read(text: &str, paths: &[&str]) -> Option<Vec<Val>> {
    reader().read(text, paths)
}

/// `read` for a fixed number of paths: `[Val; N]`.
pub fn read_n<const N: usize>(text: &str, paths: [&str; N]) -> Option<[Val; N]> {
    let vals = reader().read(text, &paths)?;
    vals.try_into().ok()
}

/// `read_n` of each text (see [`JsonReader::read_each`]).
pub fn read_each_n<const N: usize>(texts: &[&str], paths: [&str; N]) -> Vec<Option<[Val; N]>> {
    let mut out = Vec::with_capacity(texts.len());
    for vals in reader().read_each(texts, &paths) {
        out.push(vals.and_then(|v| v.try_into().ok()));
    }
    out
}

/// Writes the SDK's own JSON texts (payloads, request bodies: a few fixed
/// shapes), field by field, as serde_json would: the wasm carries no
/// serializer and no number formatting. Unit tests compare each shape with
/// serde_json's output.
///
/// ```
/// use valet_core::json::Obj;
/// let json = Obj::new().str("code", "timeout").opt_u64("status", None).u64("n", 42).finish();
/// assert_eq!(json, r#"{"code":"timeout","n":42}"#);
/// ```
#[derive(Debug)]
pub struct Obj(String);

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj(String::from("{"))
    }

    fn key(mut self, key: &str) -> Obj {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_string(&mut self.0, key);
        self.0.push(':');
        self
    }

    /// A string field.
    pub fn str(self, key: &str, value: &str) -> Obj {
        let mut o = self.key(key);
        push_string(&mut o.0, value);
        o
    }

    /// A string field, left out when `None`.
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Obj {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    /// A string field, `null` when `None`.
    pub fn str_or_null(self, key: &str, value: Option<&str>) -> Obj {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A whole-number field.
    pub fn u64(self, key: &str, value: u64) -> Obj {
        let mut o = self.key(key);
        crate::text::push_u64(&mut o.0, value);
        o
    }

    /// A whole-number field, left out when `None`.
    pub fn opt_u64(self, key: &str, value: Option<u64>) -> Obj {
        match value {
            Some(v) => self.u64(key, v),
            None => self,
        }
    }

    /// A whole-number field, `null` when `None`.
    pub fn u64_or_null(self, key: &str, value: Option<u64>) -> Obj {
        match value {
            Some(v) => self.u64(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A boolean field.
    pub fn bool(self, key: &str, value: bool) -> Obj {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// A field whose value is `json`, a JSON text already.
    pub fn raw(self, key: &str, json: &str) -> Obj {
        let mut o = self.key(key);
        o.0.push_str(json);
        o
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `get`, not indexing: `i` is at an ASCII byte, so this never fails,
        // and the wasm keeps no panic path for it.
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            crate::text::push_hex(out, b, false);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// A whole number written in ASCII digits only (no sign, no space), if it
/// fits in a `u64`. Not `str::parse`: its sign handling and generic code
/// weigh in the wasm, for three readers of plain digits.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None })
}


/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_string(&mut out, s);
    out
}

#[cfg(not(feature = "serde-reader"))]
struct NoReader;

#[cfg(not(feature = "serde-reader"))]
impl JsonReader for NoReader {
    fn read(&self, _: &str, _: &[&str]) -> Option<Vec<Val>> {
        None
    }
    fn elements(&self, _: &str, _: &str, _: &[&str]) -> Option<Vec<(String, Vec<Val>)>> {
        None
    }
}

/// serde_json as a [`JsonReader`].
#[cfg(feature = "serde-reader")]
pub struct SerdeReader;

#[cfg(feature = "serde-reader")]
impl SerdeReader {
    fn at<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
        path.split('.').try_fold(v, |v, key| v.as_object()?.get(key))
    }

    fn values(v: &serde_json::Value, paths: &[&str]) -> Vec<Val> {
        use serde_json::Value;
        paths
            .iter()
            .map(|p| match Self::at(v, p) {
                None => Val::Missing,
                Some(Value::Null) => Val::Null,
                Some(Value::Bool(b)) => Val::Bool(*b),
                Some(Value::Number(n)) => n.as_u64().filter(|&n| n < MAX_INT).map_or(Val::Other, Val::Int),
                Some(Value::String(s)) if !s.contains('\0') => Val::Str(s.clone()),
                Some(_) => Val::Other,
            })
            .collect()
    }
}

#[cfg(feature = "serde-reader")]
impl JsonReader for SerdeReader {
    fn read(&self, text: &str, paths: &[&str]) -> Option<Vec<Val>> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Self::values(&v, paths))
    }

    fn elements(&self, text: &str, path: &str, paths: &[&str]) -> Option<Vec<(String, Vec<Val>)>> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Self::at(&v, path)?.as_array()?.iter().map(|e| (e.to_string(), Self::values(e, paths))).collect())
    }
}

/// The cases every reader must answer alike (panics on the first that it
/// does not): run on serde_json here, on `JSON.parse` by valet-wasm's tests.
#[cfg(any(test, feature = "check-reader"))]
#[doc(hidden)]
pub fn check_reader(r: &dyn JsonReader) {
    let text = r#"{"type":"message","n":null,"b":true,"message":{"id":"m1","seq":3,"x":[1]},"s":1.5}"#;
    let got = r.read(text, &["type", "message.id", "message.seq", "message.x", "n", "b", "nope", "type.deeper", "s"]).unwrap();
    let want = [
        Val::Str("message".into()),
        Val::Str("m1".into()),
        Val::Int(3),
        Val::Other,
        Val::Null,
        Val::Bool(true),
        Val::Missing,
        Val::Missing,
        Val::Other,
    ];
    assert_eq!(got, want);
    assert_eq!(got[2].u64(), Some(3));
    let odd = r.read(r#"{"a":-1,"b":9007199254740993,"c":"x\u0000y"}"#, &["a", "b", "c"]).unwrap();
    assert_eq!(odd, [Val::Other, Val::Other, Val::Other], "negative, too large, a string with NUL");
    assert!(r.read("{not json", &["a"]).is_none());
    assert_eq!(r.read("[1]", &["a"]).unwrap(), [Val::Missing]);
    assert_eq!(r.read("{}", &[]).unwrap(), []);
    let els = r.elements(r#"{"messages":[{"id":"a","seq":1},{"id":"b"},7,{"id":"x\u0000"}]}"#, "messages", &["id", "seq"]).unwrap();
    let want = [
        (r#"{"id":"a","seq":1}"#, [Val::Str("a".into()), Val::Int(1)]),
        (r#"{"id":"b"}"#, [Val::Str("b".into()), Val::Missing]),
        ("7", [Val::Missing, Val::Missing]),
        (r#"{"id":"x\u0000"}"#, [Val::Other, Val::Missing]),
    ];
    assert_eq!(els.len(), want.len());
    for ((text, vals), (want_text, want_vals)) in els.iter().zip(want) {
        assert_eq!((text.as_str(), vals.as_slice()), (want_text, &want_vals[..]));
        assert_eq!(r.read(text, &["id", "seq"]).as_deref(), Some(&want_vals[..]), "as `read` reads the element's text");
    }
    assert_eq!(r.elements(r#"{"messages":[{"id":"a"}]}"#, "messages", &[]).unwrap(), [(r#"{"id":"a"}"#.to_owned(), vec![])]);
    assert_eq!(r.elements(r#"{"messages":[]}"#, "messages", &["id"]).unwrap(), []);
    assert!(r.elements(r#"{"messages":{}}"#, "messages", &["id"]).is_none());
    assert!(r.elements("{nope", "messages", &["id"]).is_none());
    // Many texts at once read as each alone, including what is not JSON,
    // strings with the separators a reader may use, and no texts at all.
    let texts = [text, "{not json", r#"{"type":"a\u0001b","message":{"id":"x\u0000"}}"#, "{}", r#"{"type":""}"#];
    let paths = ["type", "message.id", "message.seq"];
    let each = r.read_each(&texts, &paths);
    let alone: Vec<_> = texts.iter().map(|t| r.read(t, &paths)).collect();
    assert_eq!(each, alone);
    assert_eq!(each[2].as_ref().unwrap()[0], Val::Str("a\u{1}b".into()));
    assert!(r.read_each(&[], &paths).is_empty());
    assert_eq!(r.read_each(&["{}", "{}"], &[]), [Some(vec![]), Some(vec![])]);
}

#[cfg(all(test, feature = "serde-reader"))]
mod tests {
    #[allow(unused_imports)]
    use crate::prelude::*;
    #[test]
    fn serde_json_reads_every_case() {
        super::check_reader(&super::SerdeReader);
    }
}
