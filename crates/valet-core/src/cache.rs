//! The local history (`persist: "local"`): the messages a page delivered,
//! kept by the glue (IndexedDB) under the user's identity, and shown by
//! the next page before the network answers.
//!
//! Decisions:
//! - What is kept is the page's delivered sequence: each `message` frame
//!   the handlers got, in the order they got it. Every page delivers a
//!   convo from its first message (the first history it asks for is the
//!   whole one, or follows the cache it delivered), so row `n` is the
//!   `n`th message of the convo as delivered, and two tabs of one user
//!   write the same rows.
//! - A prefix, not the newest: past [`MAX_CACHED`] messages or
//!   [`MAX_CACHED_BYTES`] a convo's cache stops growing. A prefix is what
//!   delivery can trust: the machine delivers it as a history read before
//!   the (re)connect, so the real history that follows delivers exactly
//!   what the cache lacks, after it. The newest messages alone would hide
//!   the older ones behind the delivery's watermark.
//! - Read once, at the first token (its identity names the rows: another
//!   user's token never reads them), and delivered only if the page has
//!   delivered nothing yet: once the network answered, it adds nothing.
//! - A cache is not a sync: it may lack the newest messages, so what the
//!   stream brings still waits for the real history (with `seq`, a message
//!   that follows the cache's last goes at once: it is the next one).
//! - Unreadable (a row that is not a `message` frame of this convo):
//!   dropped, and written again from what this page delivers. Storage
//!   missing or a failed write: nothing more is written by this page.
//!   Either is the machine's one `storage_error`; delivery goes on as
//!   without a cache.

use crate::action::Action;
#[allow(unused_imports)]
use crate::prelude::*;
use crate::wire::{read_frame, Frame, RawMessage, FRAME_PATHS};

/// Messages kept per convo, at most.
pub const MAX_CACHED: usize = 1000;
/// The bytes of the frames kept per convo, at most (as UTF-8).
pub const MAX_CACHED_BYTES: usize = 1 << 20;

/// What [`LocalHistory::on_loaded`] makes of a read.
#[derive(Debug, PartialEq)]
pub enum Loaded {
    /// Deliver these, as history from the cache.
    Deliver(Vec<RawMessage>),
    /// Nothing to deliver (none stored, or the page delivered first).
    Nothing,
    /// Storage failed, or the rows were unreadable (and are dropped).
    Trouble(&'static str),
}

/// One convo's local history: where it is kept and what this page adds.
#[derive(Debug, Default)]
pub struct LocalHistory {
    /// The first token's identity's scope.
    scope: Option<String>,
    /// A read is in flight.
    loading: bool,
    /// Storage failed: nothing more is written.
    off: bool,
    /// Rows counted: stored, or in `pending`.
    next: usize,
    /// The bytes of those rows.
    bytes: usize,
    /// The cap is reached: nothing more is written.
    full: bool,
    /// Frames to write, from row `pending_at`.
    pending: Vec<String>,
    pending_at: usize,
}

impl LocalHistory {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token's identity's scope: the first one names the rows, and they
    /// are read if the page has delivered nothing yet.
    pub fn on_identity(&mut self, scope: &str, out: &mut Vec<Action>) {
        if self.scope.is_some() || self.off {
            return;
        }
        self.scope = Some(scope.into());
        if self.next == 0 {
            self.loading = true;
            out.push(Action::LoadCache { scope: scope.into() });
        }
    }

    /// What [`Action::LoadCache`] read: the stored frames in row order, or
    /// why storage failed.
    pub fn on_loaded(&mut self, frames: Result<Vec<String>, String>, convo_id: &str, out: &mut Vec<Action>) -> Loaded {
        if !core::mem::take(&mut self.loading) {
            return Loaded::Nothing;
        }
        let frames = match frames {
            Ok(frames) => frames,
            Err(_) => {
                self.off = true;
                self.pending = Vec::new();
                return Loaded::Trouble("the local history can not be read; nothing is kept");
            }
        };
        // The network answered first: its rows are written from row 0.
        if self.next > 0 || frames.is_empty() {
            return Loaded::Nothing;
        }
        let bytes = frames.iter().map(String::len).sum();
        let count = frames.len();
        let mut messages = Vec::with_capacity(count);
        // Their heads read in one call to the JSON reader, as a chunk's are.
        let heads = {
            let texts: Vec<&str> = frames.iter().map(String::as_str).collect();
            crate::json::read_each_n(&texts, FRAME_PATHS)
        };
        for (frame, head) in frames.into_iter().zip(heads) {
            match read_frame("message", frame, head, convo_id) {
                Ok(Some(Frame::Message(m))) => messages.push(m),
                _ => {
                    if let Some(scope) = &self.scope {
                        out.push(Action::DropCache { scope: scope.clone() });
                    }
                    return Loaded::Trouble("the local history is unreadable; it is dropped");
                }
            }
        }
        self.next = count;
        self.pending_at = count;
        self.bytes = bytes;
        self.full = count >= MAX_CACHED || bytes >= MAX_CACHED_BYTES;
        Loaded::Deliver(messages)
    }

    /// Whether delivered messages are still written ([`LocalHistory::record`]).
    pub fn recording(&self) -> bool {
        !self.off && !self.full
    }

    /// A message delivered by this page (not from the cache): its frame,
    /// kept while under the caps.
    pub fn record(&mut self, frame: String) {
        if !self.recording() {
            return;
        }
        if self.next >= MAX_CACHED || self.bytes + frame.len() > MAX_CACHED_BYTES {
            self.full = true;
            return;
        }
        self.next += 1;
        self.bytes += frame.len();
        self.pending.push(frame);
    }

    /// At the end of an input: what was recorded, to write (once the
    /// identity is known).
    pub fn flush(&mut self, out: &mut Vec<Action>) {
        let Some(scope) = &self.scope else { return };
        if self.pending.is_empty() || self.off {
            return;
        }
        let frames = core::mem::take(&mut self.pending);
        let at = core::mem::replace(&mut self.pending_at, self.next);
        out.push(Action::CacheAppend { scope: scope.clone(), at, frames, bytes: self.bytes });
    }

    /// A write failed: nothing more is written by this page.
    pub fn on_not_saved(&mut self) {
        self.off = true;
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: &str, seq: u64) -> String {
        std::format!(
            r#"{{"type":"message","action":"create","agent_id":"a","convo_id":"c","message":{{"id":"{id}","seq":{seq},"from":"agent","created_at":"t","content":"x"}}}}"#
        )
    }

    #[test]
    fn reads_at_the_first_identity_and_writes_from_the_cache_end() {
        let mut h = LocalHistory::new();
        let mut out = Vec::new();
        h.on_identity("s1", &mut out);
        h.on_identity("s2", &mut out);
        assert_eq!(out, [Action::LoadCache { scope: "s1".into() }]);
        out.clear();
        let loaded = h.on_loaded(Ok(vec![frame("m1", 1), frame("m2", 2)]), "c", &mut out);
        let Loaded::Deliver(ms) = loaded else { panic!("{loaded:?}") };
        assert_eq!(ms.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
        h.record(frame("m3", 3));
        h.flush(&mut out);
        let bytes = frame("m1", 1).len() * 3;
        assert_eq!(out, [Action::CacheAppend { scope: "s1".into(), at: 2, frames: vec![frame("m3", 3)], bytes }]);
    }

    #[test]
    fn what_is_delivered_before_the_identity_waits_for_it() {
        let mut h = LocalHistory::new();
        let mut out = Vec::new();
        h.record(frame("m1", 1));
        h.flush(&mut out);
        assert!(out.is_empty());
        h.on_identity("s", &mut out);
        h.flush(&mut out);
        // Delivered first: no read, the rows are written from row 0.
        assert_eq!(out, [Action::CacheAppend { scope: "s".into(), at: 0, frames: vec![frame("m1", 1)], bytes: frame("m1", 1).len() }]);
    }

    #[test]
    fn a_read_after_the_network_answered_delivers_nothing() {
        let mut h = LocalHistory::new();
        let mut out = Vec::new();
        h.on_identity("s", &mut out);
        h.record(frame("m1", 1));
        assert_eq!(h.on_loaded(Ok(vec![frame("m1", 1), frame("m2", 2)]), "c", &mut out), Loaded::Nothing);
        out.clear();
        h.flush(&mut out);
        assert!(matches!(&out[..], [Action::CacheAppend { at: 0, .. }]));
    }

    #[test]
    fn unreadable_rows_are_dropped_and_written_again() {
        for bad in ["{not json", r#"{"type":"typing"}"#, &frame("m1", 1).replace("\"c\"", "\"other\"")] {
            let mut h = LocalHistory::new();
            let mut out = Vec::new();
            h.on_identity("s", &mut out);
            out.clear();
            let loaded = h.on_loaded(Ok(vec![frame("m0", 1), bad.into()]), "c", &mut out);
            assert!(matches!(loaded, Loaded::Trouble(_)), "{bad}");
            assert_eq!(out, [Action::DropCache { scope: "s".into() }]);
            out.clear();
            h.record(frame("m1", 1));
            h.flush(&mut out);
            assert!(matches!(&out[..], [Action::CacheAppend { at: 0, .. }]));
        }
    }

    #[test]
    fn storage_failing_stops_the_writes() {
        let mut h = LocalHistory::new();
        let mut out = Vec::new();
        h.on_identity("s", &mut out);
        assert!(matches!(h.on_loaded(Err("no IndexedDB".into()), "c", &mut out), Loaded::Trouble(_)));
        out.clear();
        h.record(frame("m1", 1));
        h.flush(&mut out);
        assert!(out.is_empty());
        let mut h = LocalHistory::new();
        h.on_identity("s", &mut out);
        h.on_loaded(Ok(vec![]), "c", &mut out);
        h.on_not_saved();
        out.clear();
        h.record(frame("m1", 1));
        h.flush(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_cache_is_a_prefix_within_its_caps() {
        let mut h = LocalHistory::new();
        let mut out = Vec::new();
        h.on_identity("s", &mut out);
        h.on_loaded(Ok(vec![]), "c", &mut out);
        for i in 0..MAX_CACHED as u64 + 5 {
            h.record(frame(&std::format!("m{i}"), i + 1));
        }
        out.clear();
        h.flush(&mut out);
        let [Action::CacheAppend { at: 0, frames, .. }] = &out[..] else { panic!() };
        assert_eq!(frames.len(), MAX_CACHED);
        assert!(!h.recording());
        // By bytes too: a frame that would pass the cap ends the cache.
        let mut h = LocalHistory::new();
        h.record("x".repeat(MAX_CACHED_BYTES - 10));
        h.record("y".repeat(11));
        h.record("z".into());
        assert_eq!(h.pending.len(), 1);
    }
}
