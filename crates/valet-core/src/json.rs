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
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An object or an array.
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

    /// A whole number from 0 to 2^53 (what JSON numbers hold exactly).
    pub fn u64(&self) -> Option<u64> {
        match *self {
            Val::Num(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0 => Some(n as u64),
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
                    Some(Value::Number(n)) => n.as_f64().map_or(Val::Other, Val::Num),
                    Some(Value::String(s)) => Val::Str(s.clone()),
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

#[cfg(all(test, feature = "serde-reader"))]
mod tests {
    use super::*;

    #[test]
    fn reads_values_at_paths_and_array_elements() {
        let r = SerdeReader;
        let text = r#"{"type":"message","n":null,"b":true,"message":{"id":"m1","seq":3,"x":[1]},"s":1.5}"#;
        let got = r.read(text, &["type", "message.id", "message.seq", "message.x", "n", "b", "nope", "type.deeper", "s"]).unwrap();
        assert_eq!(
            got,
            [
                Val::Str("message".into()),
                Val::Str("m1".into()),
                Val::Num(3.0),
                Val::Other,
                Val::Null,
                Val::Bool(true),
                Val::Missing,
                Val::Missing,
                Val::Num(1.5)
            ]
        );
        assert_eq!(got[2].u64(), Some(3));
        assert_eq!(got[8].u64(), None, "not a whole number");
        assert_eq!(Val::Num(-1.0).u64(), None);
        assert!(r.read("{not json", &["a"]).is_none());
        assert_eq!(r.read("[1]", &["a"]).unwrap(), [Val::Missing]);
        assert_eq!(r.elements(r#"{"messages":[{"id":"a"},{"id":"b"}]}"#, "messages").unwrap(), [r#"{"id":"a"}"#, r#"{"id":"b"}"#]);
        assert!(r.elements(r#"{"messages":{}}"#, "messages").is_none());
    }
}
