//! Text built without `core::fmt`: [`cat!`](crate::cat) joins pieces
//! (strings, integers in decimal, booleans) into a `String`.
//!
//! Why: in the browser build, `format!` brought `core::fmt::write`, an
//! argument table per call and `String`'s `fmt::Write` into the wasm for
//! log lines, error messages and a few JSON bodies that are plain
//! concatenations (docs/size.md has what that weighed). What is left of
//! `core::fmt` is reached from `core`'s own panic messages. The crate's
//! non-test code uses [`cat!`](crate::cat): the prelude has `format!` only
//! for the tests and the `std` build (the server's).

#[allow(unused_imports)]
use crate::prelude::*;

/// Something [`cat!`](crate::cat) can append.
pub trait Piece {
    /// Appends it to `out`.
    fn push_to(&self, out: &mut String);
}

impl Piece for str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn push_to(&self, out: &mut String) {
        (**self).push_to(out);
    }
}

impl Piece for bool {
    fn push_to(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

/// In decimal ([`push_u64`]; not `itoa`, whose `expect`s keep a panic path
/// whose `Debug` formatting brings back what `cat!` leaves out).
impl Piece for u64 {
    fn push_to(&self, out: &mut String) {
        push_u64(out, *self);
    }
}

// One integer width in the wasm (`u64`): the others widen to it.

macro_rules! widen {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn push_to(&self, out: &mut String) {
                (*self as u64).push_to(out);
            }
        }
    )*};
}
widen!(u32, u16, usize);

/// Appends `n` in decimal.
///
/// Recursive (at most 20 deep), so no digit buffer: its index checks would
/// keep the bounds-check panic and, through its message, `core::fmt`'s
/// integer formatting in the wasm.
pub fn push_u64(out: &mut String, n: u64) {
    if n >= 10 {
        push_u64(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Unix ms as ISO 8601 in UTC, as JS's `Date.prototype.toISOString` has it
/// (`2026-12-07T04:05:06.789Z`; years 0 to 9999).
pub fn iso_utc(ms: u64) -> String {
    // Days to a civil date: Howard Hinnant's `civil_from_days`, with March
    // as the first month of a 400-year era (1970-01-01 is day 719,468).
    let days = ms / 86_400_000 + 719_468;
    let (era, doe) = (days / 146_097, days % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let in_day = ms % 86_400_000;
    let mut out = String::with_capacity(24);
    let parts = [(year, 4, '-'), (month, 2, '-'), (day, 2, 'T'), (in_day / 3_600_000, 2, ':'), (in_day / 60_000 % 60, 2, ':'), (in_day / 1000 % 60, 2, '.'), (in_day % 1000, 3, 'Z')];
    for (n, width, sep) in parts {
        for w in (1..width).rev() {
            if n < 10u64.pow(w) {
                out.push('0');
            }
        }
        push_u64(&mut out, n);
        out.push(sep);
    }
    out
}

/// Appends `byte` as two hex digits (`upper`: `A`–`F`).
pub fn push_hex(out: &mut String, byte: u8, upper: bool) {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    out.push(digits[usize::from(byte >> 4)] as char);
    out.push(digits[usize::from(byte & 15)] as char);
}

/// The parts of `s` between the ASCII bytes `sep`, as `s.split(sep)` has
/// them: found byte by byte, which in the wasm is a short loop where
/// `str::split` brings a char searcher and its `memchr`.
pub fn split_ascii(s: &str, sep: u8) -> SplitAscii<'_> {
    debug_assert!(sep.is_ascii(), "split_ascii splits at an ASCII byte");
    SplitAscii { rest: Some(s), sep }
}

/// See [`split_ascii`].
pub struct SplitAscii<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for SplitAscii<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        // `sep` is ASCII: both sides of it are char boundaries, `get` never fails.
        match rest.bytes().position(|b| b == self.sep) {
            Some(at) => {
                self.rest = rest.get(at + 1..);
                rest.get(..at)
            }
            None => self.rest.take(),
        }
    }
}

/// Joins its arguments (each a [`Piece`](crate::text::Piece): `&str`,
/// `String`, an unsigned integer, a `bool`) into a new `String`, like
/// `format!` with only `{}` and without `core::fmt`.
///
/// ```
/// let attempt = 3u64;
/// assert_eq!(valet_core::cat!("attempt ", attempt, ", ok: ", true), "attempt 3, ok: true");
/// ```
#[macro_export]
macro_rules! cat {
    ($($piece:expr),* $(,)?) => {{
        #[allow(unused_mut)] // `cat!()`
        let mut out = $crate::text::String::new();
        $( $crate::text::Piece::push_to(&$piece, &mut out); )*
        out
    }};
}

#[doc(hidden)]
pub use alloc::string::String;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_utc_is_what_js_to_iso_string_writes() {
        for (ms, iso) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_796_616_306_789, "2026-12-07T04:05:06.789Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(iso_utc(ms), iso, "{ms}");
        }
    }

    #[test]
    fn split_ascii_splits_as_str_split_does() {
        for s in ["", ",", "a", "a,b", ",a,,b,", "é,€,😀", "\0x\0"] {
            for sep in [b',', b'\0'] {
                let want: Vec<&str> = s.split(sep as char).collect();
                assert_eq!(split_ascii(s, sep).collect::<Vec<_>>(), want, "{s:?} by {sep}");
            }
        }
    }

    #[test]
    fn cat_writes_what_format_would() {
        let s = String::from("s");
        let cases: [(String, String); 4] = [
            (crate::cat!("a", 0u64, "b", u64::MAX), format!("a{}b{}", 0u64, u64::MAX)),
            (crate::cat!(7u16, " ", 65_535u32, " ", usize::MAX), format!("{} {} {}", 7u16, 65_535u32, usize::MAX)),
            (crate::cat!(true, false, s, &s, "x"), format!("{}{}{s}{s}x", true, false)),
            (crate::cat!(), String::new()),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        for byte in [0u8, 9, 10, 0x7f, 0xa5, 0xff] {
            let (mut lower, mut upper) = (String::new(), String::new());
            push_hex(&mut lower, byte, false);
            push_hex(&mut upper, byte, true);
            assert_eq!((lower, upper), (format!("{byte:02x}"), format!("{byte:02X}")));
        }
    }
}
