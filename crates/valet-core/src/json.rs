//! Reading JSON texts: the few fields the SDK decides on.
//!
//! Decisions:
//! - The SDK reads little of what it receives: a frame's `type`, a message's
//!   `id` and `seq`, a `closed` reason, an error body's `message` and
//!   `retry_after_seconds`, a tab message's envelope. It hands every text on
//!   as it came. So reading is one small service, [`JsonReader`]: the values
//!   at a few paths of a JSON text, and the elements of an array as texts.
//! - The host provides it ([`set_reader`]). In the browser it is the
//!   engine's `JSON.parse` (valet-wasm), so the wasm ships no JSON parser;
//!   natively (the reference server, the tests) it is serde_json, the
//!   fallback with the `serde-reader` feature (on by default).
//! - Every decision about the values (what is an id, a valid `seq`) is made
//!   here and in the callers, not in the reader: both readers only parse.

use std::sync::OnceLock;

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
    /// The elements of the array at `path` of `text`, each as JSON text;
    /// `None` when `text` is not JSON or there is no array there.
    fn elements(&self, text: &str, path: &str) -> Option<Vec<String>>;
}

/// 2^53: whole numbers below it are held exactly by every JSON reader.
pub const MAX_INT: u64 = 1 << 53;

static READER: OnceLock<&'static dyn JsonReader> = OnceLock::new();

/// Installs the reader (once; later calls are ignored). Without one, the
/// `serde-reader` feature reads with serde_json; without that feature,
/// nothing reads (every text is malformed): the host must install one.
pub fn set_reader(reader: &'static dyn JsonReader) {
    let _ = READER.set(reader);
}

/// The reader in force.
pub fn reader() -> &'static dyn JsonReader {
    if let Some(r) = READER.get() {
        return *r;
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

/// `value` as JSON text. The SDK's payloads always serialize (no map
/// with non-string keys); an empty string would mean a bug, never a panic
/// (a panic message would pull error formatting into the wasm).
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(not(feature = "serde-reader"))]
struct NoReader;

#[cfg(not(feature = "serde-reader"))]
impl JsonReader for NoReader {
    fn read(&self, _: &str, _: &[&str]) -> Option<Vec<Val>> {
        None
    }
    fn elements(&self, _: &str, _: &str) -> Option<Vec<String>> {
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
}

#[cfg(feature = "serde-reader")]
impl JsonReader for SerdeReader {
    fn read(&self, text: &str, paths: &[&str]) -> Option<Vec<Val>> {
        use serde_json::Value;
        let v: Value = serde_json::from_str(text).ok()?;
        Some(
            paths
                .iter()
                .map(|p| match Self::at(&v, p) {
                    None => Val::Missing,
                    Some(Value::Null) => Val::Null,
                    Some(Value::Bool(b)) => Val::Bool(*b),
                    Some(Value::Number(n)) => n.as_u64().filter(|&n| n < MAX_INT).map_or(Val::Other, Val::Int),
                    Some(Value::String(s)) if !s.contains('\0') => Val::Str(s.clone()),
                    Some(_) => Val::Other,
                })
                .collect(),
        )
    }

    fn elements(&self, text: &str, path: &str) -> Option<Vec<String>> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Self::at(&v, path)?.as_array()?.iter().map(|e| e.to_string()).collect())
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
    assert_eq!(r.elements(r#"{"messages":[{"id":"a"},{"id":"b"}]}"#, "messages").unwrap(), [r#"{"id":"a"}"#, r#"{"id":"b"}"#]);
    assert_eq!(r.elements(r#"{"messages":[]}"#, "messages").unwrap(), Vec::<String>::new());
    assert!(r.elements(r#"{"messages":{}}"#, "messages").is_none());
}

#[cfg(all(test, feature = "serde-reader"))]
mod tests {
    #[test]
    fn serde_json_reads_every_case() {
        super::check_reader(&super::SerdeReader);
    }
}
