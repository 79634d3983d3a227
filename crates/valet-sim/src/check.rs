//! The invariants: checked at every step, at convergence, and at the end.
//!
//! - Every page delivers the stored messages to its handlers exactly once,
//!   in `seq` order, with no gap and nothing the server never stored
//!   (checked as each is delivered, in `browser`).
//! - A send resolves only once stored, and is stored once; a send that was
//!   refused (no `maybe_stored`) is never stored; none settles twice.
//! - The server never holds more streams than its cap; none is left once
//!   every tab closed; no page asks for the network after `close()`; no
//!   page stops; no log line carries a token.
//! - After the heal, every live tab converges: it has every stored
//!   message, its sends are settled, and the browser holds one stream.
//! - A send a page left unsettled (a reload, a crash) is sent by a later
//!   page of its tab: stored once, or failed for good (the durable outbox;
//!   not owed by a tab whose storage failed, nor by one that closed).
//!   No text is ever stored twice.

use crate::server::STREAM_CAP;
use crate::World;

impl World {
    /// After each step.
    pub fn check_step(&mut self) {
        let n = self.server.alive_streams();
        if n > STREAM_CAP {
            self.violation(format!("the server holds {n} streams (cap {STREAM_CAP})"));
        }
    }

    /// Pages that run: loaded and not frozen.
    fn running(&self) -> impl Iterator<Item = &crate::Page> {
        self.tabs.iter().filter(|t| !t.frozen).filter_map(|t| t.page.as_ref())
    }

    /// Streams the server holds for pages that are not frozen (a frozen
    /// page's stream is the browser's, not the SDK's, to drop).
    fn running_streams(&self) -> usize {
        let frozen: Vec<u64> = self.tabs.iter().filter(|t| t.frozen).filter_map(|t| t.page.as_ref().map(|p| p.pid)).collect();
        self.server.streams.iter().filter(|s| s.alive && !frozen.contains(&s.pid)).count()
    }

    /// Every running page has every stored message and no unsettled send,
    /// and the browser holds one stream.
    pub fn converged(&self) -> bool {
        let stored = self.server.messages.len();
        self.running().all(|p| p.delivered.len() == stored && p.sends.iter().all(|s| s.settled.is_some()))
            && self.running_streams() == 1
            && self.owed().is_empty()
    }

    /// Sends left by a page that a running later page of its tab has not
    /// stored (or failed) yet.
    fn owed(&self) -> Vec<&str> {
        self.carried
            .iter()
            .filter(|(slot, text)| {
                let t = &self.tabs[*slot];
                t.page.is_some() && !t.frozen && !t.outbox_lost && self.server.stored_with_text(text) == 0
            })
            .map(|(_, text)| text.as_str())
            .collect()
    }

    /// What keeps a session from converging, for the report.
    pub fn not_converged_why(&self) -> String {
        let stored = self.server.messages.len();
        let mut why = vec![format!("{stored} stored, {} stream(s) of running pages", self.running_streams())];
        for text in self.owed() {
            why.push(format!("a send left by a reload is not stored: {text:?}"));
        }
        for t in &self.tabs {
            if let Some(p) = &t.page {
                why.push(format!(
                    "page {}{}: {} delivered, {} unsettled sends, status {}, role {:?}",
                    p.pid,
                    if t.frozen { " (frozen)" } else { "" },
                    p.delivered.len(),
                    p.sends.iter().filter(|s| s.settled.is_none()).count(),
                    p.status,
                    p.session.role()
                ));
            }
        }
        why.join("; ")
    }

    /// At the end: no refused send was stored.
    pub fn check_sends_at_end(&mut self) {
        let stored: Vec<String> = self
            .rejected
            .iter()
            .filter(|(key, maybe, _)| !maybe && self.server.stored_with_key(key) > 0)
            .map(|(_, _, which)| which.clone())
            .collect();
        for which in stored {
            self.violation(format!("{which} was rejected as not stored, and the server stored it"));
        }
        let twice: Vec<String> = self.sent_texts.iter().filter(|t| self.server.stored_with_text(t) > 1).cloned().collect();
        for text in twice {
            self.violation(format!("{text:?} was stored more than once"));
        }
    }
}
