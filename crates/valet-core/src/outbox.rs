//! The outbox: one convo's `send()`s, in order, surviving a bad network.
//!
//! Decisions:
//! - One send on the wire at a time, oldest first: the server stores a tab's
//!   messages in the order `send()` was called.
//! - Every send carries its own idempotency key (EXTENSION, in the body),
//!   the same on every attempt, so a retry after a lost answer is never
//!   stored twice by a server that knows the key.
//! - No definite answer (a network failure, 408, a 5xx) is not a failure:
//!   the send stays queued, *held*, and is tried again after a backoff, or
//!   at once when the server shows it is back (the stream's `ready`, the
//!   leader tab's `connected`, the browser's `online`, any REST success).
//!   Its promise stays pending meanwhile; bound it with an `AbortSignal`.
//! - 429 waits the server's `retry_after_seconds` (body first, then the
//!   header; a sign that the server is back does not cut that wait short)
//!   and tries again; three in a row for one send, or a wait over
//!   [`MAX_RETRY_AFTER_MS`], fail it with `rate_limited` (the app decides).
//! - 401 refreshes the token and retries; three in a row fail the send with
//!   `auth`. Other 4xx fail it with `http` at once. A send that fails on such
//!   an answer was refused, so it is not stored.
//! - `fetchJwt` failing is held and retried too, as long as it may pass;
//!   the app's "signed out" (an `auth` error) fails the send at once.
//! - An abort (`AbortSignal`) or `close()` settles a queued send with
//!   `aborted` or `closed`; `maybe_stored` says whether an earlier attempt
//!   got no definite answer (the server may have stored it then). A send
//!   already on the wire when aborted finishes that attempt: stored, it
//!   resolves (too late to abort); otherwise it rejects with `aborted`.
//! - The queue is a `Vec`: it is short (one convo's unsent messages), and a
//!   `VecDeque` of its own would add its code to the wasm.
//! - Durable (see [`Outbox::to_json`]): the messages not settled yet, each
//!   with its key, text, draft and time, are what the machine has the glue
//!   store whenever they change; a page after a reload queues them again
//!   ([`Outbox::restore`]) with the same keys, so a server that knows the
//!   keys stores each once however many pages tried it. Files are kept only
//!   with `persist: "local"` ([`Outbox::keep_files`]: the glue keeps them in
//!   IndexedDB, under the send's key, until they are uploaded or the send
//!   settles); otherwise, or when the glue could not keep them, a restored
//!   send whose files were not uploaded yet fails with `closed`.
//!   A restored send has no promise: it reports through `restored_send`
//!   events (`pending`, then `sent` or `failed`), and a failure as an
//!   `error` event too.

use crate::backoff::{Backoff, BackoffConfig, Rng};
use crate::action::{Action, Timer, TokenFor};
use crate::error::{retry_after_seconds, ClientError, ErrorCode};
use crate::events::{ConvoErrorEvent, EventName, Stage};
#[allow(unused_imports)]
use crate::prelude::*;
use crate::json::Obj;
use crate::send::SendOutcome;
use crate::wire::SendRequest;

/// The glue ids of restored sends start here (the glue counts its own from 1).
pub const RESTORED_IDS: u64 = 1 << 52;

/// 401s or 429s in a row before a send fails.
pub const MAX_REFUSALS: u32 = 3;
/// The longest `retry_after_seconds` a send waits out, in ms; a longer one
/// fails it at once.
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// What a queued send is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A message: its text, after uploading the glue's files (`files`), or
    /// finalizing a draft that `uploadFiles()` made.
    Message {
        /// The text.
        text: String,
        /// The glue holds files to upload first.
        files: bool,
        /// A draft's `message_id`.
        draft: Option<String>,
    },
    /// `uploadFiles()`: the glue's files only; settles with the draft's id.
    Upload,
}

#[derive(Debug)]
struct Queued {
    id: u64,
    key: String,
    text: String,
    files: bool,
    upload_only: bool,
    message_id: Option<String>,
    auth_failures: u32,
    rate_limits: u32,
    /// The token of the attempt on the wire, and one the server refused.
    token: Option<String>,
    reject: Option<String>,
    ambiguous: bool,
    /// An upload or post of it awaits its answer.
    on_wire: bool,
    cancelled: bool,
    detached: bool,
    /// When it was queued (Unix ms), the first time.
    at_ms: u64,
    /// Queued again from storage: it reports through `restored_send` events.
    restored: bool,
    /// It went on the wire (here or on an earlier page).
    tried: bool,
    /// The glue was asked to keep its files ([`Action::KeepFiles`]), or
    /// holds them again: [`Action::DropFiles`] once they are not needed.
    files_kept: bool,
    /// Restored with files: waits for [`Outbox::on_files`].
    awaiting_files: bool,
}

/// A send as stored, for a later page ([`Outbox::to_json`], [`Outbox::parse_stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its idempotency key.
    pub key: String,
    /// Its text.
    pub text: String,
    /// The draft its files were uploaded to.
    pub message_id: Option<String>,
    /// It had files.
    pub files: bool,
    /// When it was first queued, Unix ms.
    pub at_ms: u64,
    /// It went on the wire: the server may have stored it.
    pub tried: bool,
}

/// The queue of sends of one convo (see the module docs).
#[derive(Debug)]
pub struct Outbox {
    queue: Vec<Queued>,
    in_flight: Option<u64>,
    held: bool,
    /// Held for the server's `retry_after_seconds` (a 429): only the timer
    /// ends that wait, not a sign that the server is reachable.
    rate_limited: bool,
    backoff: Backoff,
    /// Bumped when what [`Outbox::to_json`] writes changes.
    changes: u64,
    /// Files are kept for a later page (see [`Outbox::keep_files`]).
    keep_files: bool,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Outbox {
            queue: Vec::new(),
            in_flight: None,
            held: false,
            rate_limited: false,
            backoff: Backoff::new(BackoffConfig { base_ms: 500, cap_ms: 15_000, immediate_jitter_ms: 0 }),
            changes: 0,
            keep_files: false,
        }
    }

    /// From now on, the files of a send are kept for a later page while
    /// they are not uploaded ([`Action::KeepFiles`]), and a restored send
    /// with files asks for them ([`Action::LoadFiles`]) instead of failing.
    pub fn keep_files(&mut self) {
        self.keep_files = true;
    }

    /// What [`Action::LoadFiles`] found for send `id`: it goes on with them,
    /// or fails (they were not kept).
    pub fn on_files(&mut self, id: u64, found: bool, out: &mut Vec<Action>) {
        let Some(pos) = self.queue.iter().position(|o| o.id == id && o.awaiting_files) else { return };
        if found {
            let o = &mut self.queue[pos];
            o.awaiting_files = false;
            o.files_kept = true;
        } else {
            self.changes += 1;
            let o = self.queue.remove(pos);
            Self::settle_err(o, Self::files_not_kept(), out);
        }
        self.next(out);
    }

    fn files_not_kept() -> ClientError {
        ClientError::new(ErrorCode::Closed, "the page went away before this message's files were uploaded; files are not kept")
    }

    /// Its files are not needed any more (uploaded, or the send settled).
    fn files_done(o: &mut Queued, out: &mut Vec<Action>) {
        if core::mem::take(&mut o.files_kept) | core::mem::take(&mut o.awaiting_files) {
            out.push(Action::DropFiles { key: o.key.clone() });
        }
    }

    /// A count that changes whenever what [`Outbox::to_json`] writes does.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether a send with this key is queued.
    pub fn has_key(&self, key: &str) -> bool {
        self.queue.iter().any(|o| o.key == key)
    }

    /// `before`, then the messages not settled yet, as stored:
    /// `{"v":1,"sends":[{"key","text","message_id","files","at","tried"}]}`
    /// (uploads alone and aborted sends are not: no page after this one can
    /// settle them); `None` when there is none.
    pub fn to_json(&self, before: &[Stored]) -> Option<String> {
        let before = before.iter().map(|s| (&s.key, &s.text, s.message_id.as_deref(), s.files, s.at_ms, s.tried));
        let queued = self.queue.iter().filter(|o| !o.upload_only && !o.cancelled);
        let queued = queued.map(|o| (&o.key, &o.text, o.message_id.as_deref(), o.files, o.at_ms, o.tried));
        let mut out = String::from("{\"v\":1,\"sends\":[");
        for (key, text, message_id, files, at, tried) in before.chain(queued) {
            if !out.ends_with('[') {
                out.push(',');
            }
            let send = Obj::new().str("key", key).str("text", text).str_or_null("message_id", message_id).bool("files", files);
            out.push_str(&send.u64("at", at).bool("tried", tried).finish());
        }
        out.push_str("]}");
        Some(out).filter(|o| !o.ends_with("[]}"))
    }

    /// Reads what [`Outbox::to_json`] wrote; `None` for anything else (an
    /// older or newer shape, a corrupted text). Entries that are not sends
    /// are skipped.
    pub fn parse_stored(json: &str) -> Option<Vec<Stored>> {
        let [v] = crate::json::read_n(json, ["v"])?;
        if v.u64() != Some(1) {
            return None;
        }
        let elements = crate::json::reader().elements(json, "sends", &["key", "text", "message_id", "files", "at", "tried"])?;
        let mut sends = Vec::new();
        for (_, vals) in elements {
            let Ok::<[crate::json::Val; 6], _>([key, text, message_id, files, at, tried]) = vals.try_into() else { continue };
            let (Some(key), Some(text)) = (key.into_string(), text.into_string()) else { continue };
            if key.is_empty() || !(message_id.is_absent() || message_id.str().is_some_and(|m| !m.is_empty())) {
                continue;
            }
            let (files, tried) = (files == crate::json::Val::Bool(true), tried != crate::json::Val::Bool(false));
            sends.push(Stored { key, text, message_id: message_id.into_string(), files, at_ms: at.u64().unwrap_or(0), tried });
        }
        Some(sends)
    }

    /// Queues again the sends an earlier page stored (those not queued
    /// already, by key), oldest first, as `restored_send`s (ids from
    /// [`RESTORED_IDS`]), before this page's own sends that are not on the
    /// wire. One with files not uploaded yet fails at once.
    pub fn restore(&mut self, stored: Vec<Stored>, out: &mut Vec<Action>) {
        let stored: Vec<Stored> = stored.into_iter().filter(|s| !self.has_key(&s.key)).collect();
        if stored.is_empty() {
            return;
        }
        let mut at = usize::from(self.queue.first().is_some_and(|o| o.on_wire));
        if at == 0 && self.in_flight.is_some() {
            // The head waits for its token: the restored go first (that
            // token's answer is dropped).
            self.in_flight = None;
        }
        for s in stored {
            // The change count grows with each: a distinct id for each.
            let id = RESTORED_IDS + self.changes;
            self.changes += 1;
            let what = Outgoing::Message { text: s.text, files: s.files, draft: s.message_id };
            let mut o = Queued::new(id, s.key, what, true, s.at_ms);
            o.restored = true;
            // An earlier page may have had it stored: a refusal now does
            // not say it is not.
            (o.tried, o.ambiguous) = (s.tried, s.tried);
            restored_event(&o, "pending", None, out);
            if o.files && o.message_id.is_none() {
                if !self.keep_files {
                    Self::settle_err(o, Self::files_not_kept(), out);
                    continue;
                }
                o.awaiting_files = true;
                out.push(Action::LoadFiles { id, key: o.key.clone() });
            }
            self.queue.insert(at, o);
            at += 1;
        }
        self.next(out);
    }

    /// Sends not yet settled.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether every send has settled.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue waits for a retry (the server seemed unreachable).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Queues a send (`detached`: its promise already resolved, so a final
    /// failure is reported as an `error` event too) and starts it if it is
    /// the oldest.
    /// `at_ms` is now (Unix ms): the send's time, as stored.
    pub fn push(&mut self, id: u64, key: String, what: Outgoing, detached: bool, at_ms: u64, out: &mut Vec<Action>) {
        self.changes += 1;
        let mut o = Queued::new(id, key, what, detached, at_ms);
        if self.keep_files && o.files && !o.upload_only {
            o.files_kept = true;
            out.push(Action::KeepFiles { id, key: o.key.clone() });
        }
        self.queue.push(o);
        self.next(out);
    }

    fn next(&mut self, out: &mut Vec<Action>) {
        if self.in_flight.is_some() || self.held {
            return;
        }
        // In order: a restored send waiting for its files holds the rest.
        if let Some(head) = self.queue.first_mut().filter(|o| !o.awaiting_files) {
            self.in_flight = Some(head.id);
            out.push(Action::GetToken { purpose: TokenFor::Send(head.id), reject: head.reject.take() });
        }
    }

    /// The server seems reachable again: a held queue goes now, unless it
    /// waits out a 429's `retry_after_seconds` (the server asked for that).
    pub fn release(&mut self, out: &mut Vec<Action>) {
        if self.held && !self.rate_limited {
            self.held = false;
            out.push(Action::ClearTimer(Timer::Outbox));
            self.next(out);
        }
    }

    /// The retry timer fired.
    pub fn on_timer(&mut self, out: &mut Vec<Action>) {
        if self.held {
            self.held = false;
            self.rate_limited = false;
            self.next(out);
        }
    }

    fn hold(&mut self, delay_ms: u64, rate_limited: bool, out: &mut Vec<Action>) {
        self.in_flight = None;
        self.held = true;
        self.rate_limited = rate_limited;
        out.push(Action::SetTimer { timer: Timer::Outbox, delay_ms });
    }

    /// A token for send `id`.
    pub fn on_token(&mut self, id: u64, token: String, out: &mut Vec<Action>) {
        if self.in_flight != Some(id) {
            return;
        }
        let Some(head) = self.queue.first_mut().filter(|o| !o.on_wire) else { return };
        head.token = Some(token.clone());
        head.on_wire = true;
        if head.files && head.message_id.is_none() {
            out.push(Action::Upload { id, token });
        } else {
            // The message itself goes out: the server may store it now.
            self.changes += u64::from(!core::mem::replace(&mut head.tried, true));
            let body =
                SendRequest { text: head.text.clone(), message_id: head.message_id.clone(), idempotency_key: Some(head.key.clone()) };
            let json = body.to_json();
            out.push(Action::Post { id, token, json });
        }
    }

    /// No token could be had for send `id`: held and retried, unless the
    /// app said the user is signed out (`auth`), which fails it.
    pub fn on_token_failed(&mut self, id: u64, error: ClientError, rng: &mut Rng, out: &mut Vec<Action>) {
        if self.in_flight != Some(id) {
            return;
        }
        let Some(head) = self.queue.first_mut() else { return };
        if error.signed_out() {
            return self.fail_head(error, out);
        }
        if head.cancelled {
            return self.fail_head(ClientError::new(ErrorCode::Aborted, "the send was aborted"), out);
        }
        let delay = self.backoff.next_delay(rng);
        self.hold(delay, false, out);
    }

    /// The answer to send `id`'s upload or post. Returns whether the server
    /// answered with a success (it is reachable).
    pub fn on_answer(&mut self, id: u64, outcome: SendOutcome, body: &str, rng: &mut Rng, out: &mut Vec<Action>) -> bool {
        if self.in_flight != Some(id) {
            return false;
        }
        let Some(head) = self.queue.first_mut() else { return false };
        head.on_wire = false;
        let uploading = head.files && head.message_id.is_none();
        let what = if uploading { "upload" } else { "send" };
        match outcome {
            SendOutcome::Ok if uploading => {
                let draft = crate::json::read_n(body, ["message_id"]).and_then(|[id]| id.into_string()).filter(|id| !id.is_empty());
                match draft {
                    Some(message_id) if head.upload_only => {
                        self.backoff.reset();
                        self.in_flight = None;
                        self.changes += 1;
                        let head = self.queue.remove(0);
                        out.push(Action::SendSettled { id: head.id, result: Ok(Some(message_id)) });
                        self.next(out);
                    }
                    Some(message_id) => {
                        head.message_id = Some(message_id);
                        Self::files_done(head, out);
                        self.changes += 1;
                        self.in_flight = None;
                        self.backoff.reset();
                        if head.cancelled {
                            self.fail_head(ClientError::new(ErrorCode::Aborted, "the send was aborted"), out);
                        } else {
                            self.next(out);
                        }
                    }
                    None => self.fail_head(ClientError::new(ErrorCode::Protocol, "malformed upload answer: no `message_id`"), out),
                }
                true
            }
            SendOutcome::Ok => {
                self.backoff.reset();
                self.changes += 1;
                let head = self.queue.remove(0);
                self.in_flight = None;
                if head.restored {
                    restored_event(&head, "sent", None, out);
                }
                out.push(Action::SendSettled { id: head.id, result: Ok(None) });
                self.next(out);
                true
            }
            SendOutcome::Http { status, retry_after, body } => {
                let error = ClientError::from_http(status, retry_after_seconds(retry_after.as_deref(), &body), &body, what);
                match status {
                    401 => {
                        head.auth_failures += 1;
                        if head.auth_failures >= MAX_REFUSALS || head.cancelled {
                            self.fail_head(error, out);
                        } else {
                            head.reject = head.token.take();
                            self.in_flight = None;
                            self.next(out);
                        }
                    }
                    429 => {
                        head.rate_limits += 1;
                        let delay = match error.retry_after_seconds {
                            Some(s) => s.saturating_mul(1000),
                            None => self.backoff.next_delay(rng),
                        };
                        if head.rate_limits >= MAX_REFUSALS || head.cancelled || delay > MAX_RETRY_AFTER_MS {
                            self.fail_head(error, out);
                        } else {
                            self.hold(delay, true, out);
                        }
                    }
                    408 | 500..=599 => self.unanswered(rng, out),
                    _ => self.fail_head(error, out),
                }
                false
            }
            SendOutcome::Network(_) => {
                self.unanswered(rng, out);
                false
            }
        }
    }

    /// The head's attempt got no definite answer (network, 408, 5xx): the
    /// server may have stored it. Held for a retry, or, if aborted meanwhile,
    /// failed with `aborted` (and `maybe_stored`).
    fn unanswered(&mut self, rng: &mut Rng, out: &mut Vec<Action>) {
        let Some(head) = self.queue.first_mut() else { return };
        head.ambiguous = true;
        if head.cancelled {
            self.fail_head(ClientError::new(ErrorCode::Aborted, "the send was aborted"), out);
        } else {
            let delay = self.backoff.next_delay(rng);
            self.hold(delay, false, out);
        }
    }

    /// The caller's signal aborted send `id`. Queued: it settles now with
    /// `aborted`. On the wire: that attempt decides (see the module docs).
    pub fn cancel(&mut self, id: u64, out: &mut Vec<Action>) {
        let Some(pos) = self.queue.iter().position(|o| o.id == id) else { return };
        if self.in_flight == Some(id) {
            self.queue[pos].cancelled = true;
            self.changes += 1;
            return;
        }
        self.changes += 1;
        let o = self.queue.remove(pos);
        Self::settle_err(o, ClientError::new(ErrorCode::Aborted, "the send was aborted"), out);
        if pos == 0 {
            // The head waited for a retry: the next one need not.
            if self.held {
                self.held = false;
                self.rate_limited = false;
                out.push(Action::ClearTimer(Timer::Outbox));
            }
            self.next(out);
        }
    }

    /// `close()`: every send not settled yet fails with `closed`; one on
    /// the wire may have been stored (`maybe_stored`).
    pub fn close(&mut self, out: &mut Vec<Action>) {
        self.in_flight = None;
        self.held = false;
        self.rate_limited = false;
        self.changes += 1;
        for mut o in core::mem::take(&mut self.queue) {
            o.ambiguous |= o.on_wire;
            Self::settle_err(o, ClientError::new(ErrorCode::Closed, "the convo was closed before the message was sent"), out);
        }
    }

    fn fail_head(&mut self, error: ClientError, out: &mut Vec<Action>) {
        self.in_flight = None;
        if !self.queue.is_empty() {
            self.changes += 1;
            Self::settle_err(self.queue.remove(0), error, out);
        }
        self.next(out);
    }

    fn settle_err(mut o: Queued, mut error: ClientError, out: &mut Vec<Action>) {
        Self::files_done(&mut o, out);
        if o.ambiguous {
            error.maybe_stored = Some(true);
        }
        if o.restored {
            restored_event(&o, "failed", Some(&error), out);
        }
        if o.detached {
            let payload = ConvoErrorEvent::new(error.clone(), Stage::Send).to_json();
            out.push(Action::Emit { event: EventName::Error, payload });
        }
        out.push(Action::SendSettled { id: o.id, result: Err(error) });
    }
}

/// Where the outbox is stored (see the module docs), for one convo of one
/// tab, by scope (an identity's hash). From the first token on, under its
/// identity's scope, where what earlier pages stored is restored. Before
/// it, under the scope the tab's last page stored under, beside what that
/// page stored there (read, not restored: only a token of that identity
/// restores it); or, in a tab that never had a token, under the unknown
/// scope `""`, whose sends the first token's identity takes as its own
/// (they were typed in this tab before any identity was known).
#[derive(Debug, Default)]
pub struct Durable {
    /// The first token's identity's scope.
    scope: Option<String>,
    /// What was stored under `scope` is read.
    loaded: bool,
    /// Until the first token: the tab's last scope and what is stored there.
    tentative: Option<(String, Vec<Stored>)>,
    /// Sends stored under the unknown scope (by earlier pages), taken by
    /// `scope`'s identity: `Some` until taken, when the tab stored under it.
    adopted: Option<Vec<Stored>>,
    /// Storage holds sends under the tentative scope (an earlier page's,
    /// or this one's before the first token).
    tentative_held: bool,
    /// The outbox's change count last stored (or that storage already
    /// holds, as it would be stored).
    saved: Option<u64>,
}

impl Durable {
    /// From what the tab's last page stored: the scope it stored under and
    /// what is stored there (see [`Outbox::to_json`]; none when it left
    /// nothing to send), and whether that was readable (if not, it is
    /// dropped).
    pub fn new(last: Option<(String, Option<String>)>) -> (Durable, bool) {
        let (scope, json) = last.unwrap_or_default();
        let (sends, readable) = match json.as_deref().map(Outbox::parse_stored) {
            None => (Vec::new(), true),
            Some(Some(sends)) => (sends, true),
            Some(None) => (Vec::new(), false),
        };
        // Readable, storage holds what the empty outbox would store there:
        // nothing is written until it changes.
        let saved = readable.then_some(0);
        (Durable { tentative: Some((scope, sends)), tentative_held: json.is_some(), saved, ..Durable::default() }, readable)
    }

    /// A token's identity's scope: the first one names where the outbox is
    /// stored. Another identity's sends are put back as they were, never
    /// restored here.
    pub fn on_identity(&mut self, scope: String, outbox: &mut Outbox, out: &mut Vec<Action>) {
        if self.scope.is_some() {
            return;
        }
        let in_sync = self.saved == Some(outbox.changes());
        self.saved = None;
        self.scope = Some(scope.clone());
        match self.tentative.take() {
            Some((last, earlier)) if last == scope => {
                self.loaded = true;
                // Stored under this very scope, with nothing to restore:
                // storage holds what it would store.
                if in_sync && earlier.is_empty() {
                    self.saved = Some(outbox.changes());
                }
                outbox.restore(earlier, out);
                return;
            }
            Some((last, earlier)) if last.is_empty() => self.adopted = Some(earlier),
            Some((last, earlier)) => out.push(Action::SaveOutbox { scope: last, json: Outbox::new().to_json(&earlier) }),
            None => {}
        }
        out.push(Action::LoadOutbox { scope });
    }

    /// What [`Action::LoadOutbox`] found: restored, with the sends of the
    /// unknown scope taken and those of closed tabs (`orphans`, the same
    /// user's outboxes that the glue claimed: `persist: "local"`), oldest
    /// first. Returns whether all was readable (what is not is dropped).
    pub fn on_loaded(&mut self, json: Option<&str>, orphans: &[String], outbox: &mut Outbox, out: &mut Vec<Action>) -> bool {
        if self.loaded || self.scope.is_none() {
            return true;
        }
        self.loaded = true;
        let stored = json.map(Outbox::parse_stored);
        let mut unreadable = matches!(stored, Some(None));
        let mut sends = stored.flatten().unwrap_or_default();
        if let Some(adopted) = self.adopted.take() {
            // They (and this page's own) are stored under this scope at the
            // end of this input.
            if self.tentative_held {
                out.push(Action::SaveOutbox { scope: String::new(), json: None });
            }
            merge(&mut sends, adopted);
        }
        for orphan in orphans {
            match Outbox::parse_stored(orphan) {
                Some(theirs) => merge(&mut sends, theirs),
                None => unreadable = true,
            }
        }
        outbox.restore(sends, out);
        !unreadable
    }

    /// Stores the outbox if it changed since it was last stored.
    pub fn save(&mut self, outbox: &Outbox, out: &mut Vec<Action>) {
        let (scope, before) = match (&self.scope, &self.tentative) {
            (Some(scope), _) if self.loaded => (scope, &[][..]),
            (None, Some((last, earlier))) => (last, &earlier[..]),
            _ => return,
        };
        if self.saved == Some(outbox.changes()) {
            return;
        }
        self.saved = Some(outbox.changes());
        let json = outbox.to_json(before);
        if self.scope.is_none() {
            self.tentative_held = json.is_some();
        }
        out.push(Action::SaveOutbox { scope: scope.clone(), json });
    }
}

/// Merges `more` into `sends` (both oldest first), leaving out the keys
/// `sends` has.
fn merge(sends: &mut Vec<Stored>, more: Vec<Stored>) {
    for m in more {
        if !sends.iter().any(|s| s.key == m.key) {
            let at = sends.iter().position(|s| s.at_ms > m.at_ms).unwrap_or(sends.len());
            sends.insert(at, m);
        }
    }
}

impl Queued {
    fn new(id: u64, key: String, what: Outgoing, detached: bool, at_ms: u64) -> Queued {
        let (text, files, message_id, upload_only) = match what {
            Outgoing::Message { text, files, draft } => (text, files, draft, false),
            Outgoing::Upload => (String::new(), true, None, true),
        };
        Queued {
            id,
            key,
            text,
            files,
            upload_only,
            message_id,
            auth_failures: 0,
            rate_limits: 0,
            token: None,
            reject: None,
            ambiguous: false,
            on_wire: false,
            cancelled: false,
            detached,
            at_ms,
            restored: false,
            tried: false,
            files_kept: false,
            awaiting_files: false,
        }
    }
}

/// A `restored_send` event: `{ key, text, created_at, state, error? }`.
fn restored_event(o: &Queued, state: &str, error: Option<&ClientError>, out: &mut Vec<Action>) {
    let mut payload = Obj::new().str("key", &o.key).str("text", &o.text).str("created_at", &crate::text::iso_utc(o.at_ms)).str("state", state);
    if let Some(e) = error {
        payload = payload.raw("error", &e.to_json());
    }
    out.push(Action::Emit { event: EventName::RestoredSend, payload: payload.finish() });
}
