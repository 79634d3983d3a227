//! Server-Sent Events parsing, as the WHATWG HTML standard specifies it
//! ("Parsing an event stream", section 9.2.6).
//!
//! Decisions:
//! - Input is text, or bytes, in chunks of any size; a chunk boundary may
//!   fall anywhere, including between the CR and LF of a CRLF or inside a
//!   UTF-8 sequence. Bytes are decoded as the standard's streaming UTF-8
//!   decoder does (replacement characters for invalid sequences; a sequence
//!   cut by a chunk waits for the rest), then parsed as text. The browser
//!   SDK feeds text its `TextDecoder` decoded, so the wasm carries no UTF-8
//!   decoder of its own.
//! - One leading U+FEFF (BOM) is dropped; `:` lines are comments; `retry`
//!   is surfaced to the caller; `id` containing NUL is ignored.
//! - An event larger than [`SseParser::max_event_bytes`] is dropped whole and
//!   reported once as [`SseItem::Oversized`]; parsing resumes at the next
//!   blank line, so one bad event never kills the stream or eats memory.
//! - What it looks for is ASCII, looked for by bytes or as `&str` patterns:
//!   a `char` pattern has the char encoded as UTF-8 at run time, and that
//!   encoder (with `str::split`'s searcher and `memchr`) weighs in the wasm.

#[allow(unused_imports)]
use crate::prelude::*;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or `"message"` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id in force when this event was dispatched (may be empty).
    pub id: String,
}

/// What the parser yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// A valid `retry:` field: the server's reconnection time in milliseconds.
    Retry(u64),
    /// An event exceeded the size cap and was discarded.
    Oversized {
        /// The cap that was exceeded, in bytes.
        limit: usize,
    },
}

/// Default cap on one event's size (line plus accumulated data): 4 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// An incremental event-stream parser. Feed it chunks; it returns whatever
/// the chunk completed.
#[derive(Debug)]
pub struct SseParser {
    line: String,
    /// The start of a UTF-8 sequence that a byte chunk cut.
    partial: Vec<u8>,
    data: String,
    event_type: String,
    last_id: String,
    seen_first: bool,
    skip_lf: bool,
    overflow: bool,
    /// Largest event accepted, in bytes.
    pub max_event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends one event to `out` as SSE text (`event:` and a `data:` line
/// per line of `data`), so that [`SseParser`] reads back `event` and
/// `data` as given: how the leading tab relays a chunk of frames in one
/// message. `event` must hold no line break.
pub fn encode(out: &mut String, event: &str, data: &str) {
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in crate::text::split_ascii(data, b'\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

impl SseParser {
    /// A parser with the default event size cap.
    pub fn new() -> Self {
        Self {
            line: String::new(),
            partial: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            last_id: String::new(),
            seen_first: false,
            skip_lf: false,
            overflow: false,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// The last event id seen so far (what a resume would send as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Feeds a chunk of bytes and returns the items it completed, in order.
    /// The bytes are decoded as the standard's UTF-8 decoder does (invalid
    /// sequences as U+FFFD; a sequence a chunk cuts waits for the next).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut bytes = core::mem::take(&mut self.partial);
        bytes.extend_from_slice(chunk);
        let mut text = String::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match core::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    rest = &[];
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(core::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            text.push('\u{FFFD}');
                            rest = after.get(n..).unwrap_or_default();
                        }
                        None => {
                            self.partial = after.to_vec();
                            rest = &[];
                        }
                    }
                }
            }
        }
        self.feed_str(&text)
    }

    /// Feeds a chunk of text (decoded already: the browser's `TextDecoder`
    /// in the SDK) and returns the items it completed, in order.
    pub fn feed_str(&mut self, mut chunk: &str) -> Vec<SseItem> {
        if chunk.is_empty() {
            return Vec::new();
        }
        if !self.seen_first {
            self.seen_first = true;
            chunk = chunk.strip_prefix("\u{FEFF}").unwrap_or(chunk);
        }
        if self.skip_lf {
            // The previous chunk ended in CR: an LF here completes that CRLF.
            chunk = chunk.strip_prefix("\n").unwrap_or(chunk);
            self.skip_lf = false;
        }
        let mut out = Vec::new();
        while let Some(pos) = chunk.bytes().position(|b| b == b'\n' || b == b'\r') {
            let (head, tail) = chunk.split_at_checked(pos).unwrap_or_default();
            // `tail` starts with an ASCII byte: `get(1..)` never fails (and
            // keeps the panic path of string indexing out of the wasm).
            let mut rest = tail.get(1..).unwrap_or_default();
            if tail.starts_with("\r") {
                if rest.is_empty() {
                    self.skip_lf = true;
                }
                rest = rest.strip_prefix("\n").unwrap_or(rest);
            }
            chunk = rest;
            if self.line.is_empty() {
                // The whole line is in this chunk: no copy.
                self.process_line(head, &mut out);
            } else {
                if !self.overflow {
                    self.line.push_str(head);
                }
                let line = core::mem::take(&mut self.line);
                self.process_line(&line, &mut out);
                self.line = line;
                self.line.clear();
            }
        }
        if !self.overflow {
            self.line.push_str(chunk);
            self.check_size(&mut out);
        }
        out
    }

    fn check_size(&mut self, out: &mut Vec<SseItem>) {
        if self.line.len() + self.data.len() > self.max_event_bytes {
            self.overflow = true;
            self.line.clear();
            self.data.clear();
            self.event_type.clear();
            out.push(SseItem::Oversized { limit: self.max_event_bytes });
        }
    }

    fn process_line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            if self.overflow {
                self.overflow = false;
                return;
            }
            self.dispatch(out);
            return;
        }
        if self.overflow || line.starts_with(":") {
            return;
        }
        let (field, value) = match line.bytes().position(|b| b == b':') {
            Some(i) => {
                let (field, v) = line.split_at_checked(i).unwrap_or_default();
                let v = v.get(1..).unwrap_or_default();
                (field, v.strip_prefix(" ").unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.check_size(out);
            }
            "id" if !value.bytes().any(|b| b == 0) => value.clone_into(&mut self.last_id),
            "retry" => {
                if let Some(ms) = crate::json::parse_u64(value) {
                    out.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = core::mem::take(&mut self.data);
        data.truncate(data.len() - 1); // the trailing LF (not empty, see above; not `pop`: no char decoding)
        let event = if self.event_type.is_empty() { "message".to_owned() } else { core::mem::take(&mut self.event_type) };
        out.push(SseItem::Event(SseEvent { event, data, id: self.last_id.clone() }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_events_read_back_as_given() {
        let events = [("message", "{\"a\":1}"), ("status", "two\nlines"), ("typing", ""), ("x", "\n")];
        let mut text = String::new();
        for (e, d) in events {
            encode(&mut text, e, d);
        }
        let got: Vec<(String, String)> = SseParser::new()
            .feed(text.as_bytes())
            .into_iter()
            .map(|i| match i {
                SseItem::Event(ev) => (ev.event, ev.data),
                other => panic!("{other:?}"),
            })
            .collect();
        let want: Vec<(String, String)> = events.iter().map(|(e, d)| (e.to_string(), d.to_string())).collect();
        assert_eq!(got, want);
    }
    use proptest::prelude::*;

    fn events(input: &[u8]) -> Vec<SseItem> {
        SseParser::new().feed(input)
    }

    fn ev(event: &str, data: &str, id: &str) -> SseItem {
        SseItem::Event(SseEvent { event: event.into(), data: data.into(), id: id.into() })
    }

    #[test]
    fn basic_event_with_name_and_multiline_data() {
        let got = events(b"event: ready\ndata: {\"a\":1}\ndata: x\n\n");
        assert_eq!(got, vec![ev("ready", "{\"a\":1}\nx", "")]);
    }

    #[test]
    fn all_three_line_endings() {
        let got = events(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n");
        assert_eq!(got, vec![ev("message", "a", ""), ev("message", "b", ""), ev("message", "c", "")]);
    }

    #[test]
    fn bom_comments_and_unknown_fields() {
        let got = events(b"\xEF\xBB\xBF: hello\nfoo: bar\ndata\n\ndata:no-space\n\n");
        assert_eq!(got, vec![ev("message", "", ""), ev("message", "no-space", "")]);
    }

    #[test]
    fn only_one_bom_is_stripped() {
        let got = events(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n");
        // The second BOM makes the field name "\u{feff}data", an unknown field.
        assert_eq!(got, vec![]);
    }

    #[test]
    fn id_persists_and_nul_id_ignored() {
        let got = events(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\0\ndata: c\n\nid\ndata: d\n\n");
        assert_eq!(got, vec![ev("message", "a", "7"), ev("message", "b", "7"), ev("message", "c", "7"), ev("message", "d", "")]);
    }

    #[test]
    fn retry_only_digits() {
        let got = events(b"retry: 1500\nretry: 15x\nretry:\n\n");
        assert_eq!(got, vec![SseItem::Retry(1500)]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_type_resets() {
        let got = events(b"event: typing\n\ndata: x\n\n");
        assert_eq!(got, vec![ev("message", "x", "")]);
    }

    #[test]
    fn incomplete_trailing_event_is_not_dispatched() {
        let got = events(b"data: x\n\ndata: y\n");
        assert_eq!(got, vec![ev("message", "x", "")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        let got = events(b"data: a\xFFb\n\n");
        assert_eq!(got, vec![ev("message", "a\u{FFFD}b", "")]);
    }

    #[test]
    fn oversized_event_is_dropped_and_stream_goes_on() {
        let mut p = SseParser::new();
        p.max_event_bytes = 16;
        let mut got = p.feed(b"data: 0123456789abcdefghij\ndata: more\n\n");
        got.extend(p.feed(b"data: ok\n\n"));
        assert_eq!(got, vec![SseItem::Oversized { limit: 16 }, ev("message", "ok", "")]);
    }

    #[test]
    fn oversized_by_many_lines_is_dropped() {
        let mut p = SseParser::new();
        p.max_event_bytes = 10;
        let got = p.feed(b"data: 1234\ndata: 5678\ndata: 9\n\ndata: ok\n\n");
        assert_eq!(got, vec![SseItem::Oversized { limit: 10 }, ev("message", "ok", "")]);
    }

    /// `0..len` cut at `cuts`, each piece fed in order to one parser.
    fn in_pieces(
        mut cuts: Vec<usize>,
        len: usize,
        mut feed: impl FnMut(&mut SseParser, core::ops::Range<usize>) -> Vec<SseItem>,
    ) -> Vec<SseItem> {
        cuts.sort_unstable();
        let mut p = SseParser::new();
        let mut got = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([len]) {
            got.extend(feed(&mut p, start..c));
            start = c;
        }
        got
    }

    const SAMPLE: &[u8] = b"\xEF\xBB\xBFevent: ready\r\ndata: {\"conn_id\":\"c\"}\r\n\r\n: ping\n\
id: 1\nevent: message\ndata: {\"t\":\"h\xC3\xA9llo\"}\n\nretry: 300\r\rdata: a\rdata: b\r\r\
event: x\ndata\n\n";

    proptest! {
        /// Any split of a byte stream into chunks parses exactly as the whole.
        #[test]
        fn any_chunking_parses_the_same(cuts in proptest::collection::vec(0usize..SAMPLE.len(), 0..12)) {
            let got = in_pieces(cuts, SAMPLE.len(), |p, piece| p.feed(&SAMPLE[piece]));
            prop_assert_eq!(got, events(SAMPLE));
        }

        /// Text fed as text, cut at any char boundaries, parses as its bytes do.
        #[test]
        fn text_parses_as_its_bytes(cuts in proptest::collection::vec(0usize..SAMPLE.len(), 0..12)) {
            let text = core::str::from_utf8(SAMPLE).unwrap();
            let cuts = cuts.into_iter().filter(|&c| text.is_char_boundary(c)).collect();
            let got = in_pieces(cuts, text.len(), |p, piece| p.feed_str(&text[piece]));
            prop_assert_eq!(got, events(SAMPLE));
        }

        /// Arbitrary bytes never panic, and chunking never changes the result.
        #[test]
        fn arbitrary_bytes_chunked_equal_whole(bytes in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..200) {
            let cut = cut.min(bytes.len());
            let whole = events(&bytes);
            let mut p = SseParser::new();
            let mut got = p.feed(&bytes[..cut]);
            got.extend(p.feed(&bytes[cut..]));
            prop_assert_eq!(got, whole);
        }
    }

    #[test]
    fn sample_parses_as_expected() {
        let got = events(SAMPLE);
        assert_eq!(
            got,
            vec![
                ev("ready", "{\"conn_id\":\"c\"}", ""),
                ev("message", "{\"t\":\"héllo\"}", "1"),
                SseItem::Retry(300),
                ev("message", "a\nb", "1"),
                ev("x", "", "1"),
            ]
        );
    }
}
