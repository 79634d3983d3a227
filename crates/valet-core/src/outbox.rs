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

use crate::backoff::{Backoff, BackoffConfig, Rng};
use crate::action::{Action, Timer, TokenFor};
use crate::error::{retry_after_seconds, ClientError, ErrorCode};
use crate::events::{ConvoErrorEvent, EventName, Stage};
#[allow(unused_imports)]
use crate::prelude::*;
use crate::send::SendOutcome;
use crate::wire::SendRequest;

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
        }
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
    pub fn push(&mut self, id: u64, key: String, what: Outgoing, detached: bool, out: &mut Vec<Action>) {
        let (text, files, message_id, upload_only) = match what {
            Outgoing::Message { text, files, draft } => (text, files, draft, false),
            Outgoing::Upload => (String::new(), true, None, true),
        };
        self.queue.push(Queued {
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
        });
        self.next(out);
    }

    fn next(&mut self, out: &mut Vec<Action>) {
        if self.in_flight.is_some() || self.held {
            return;
        }
        if let Some(head) = self.queue.first_mut() {
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
        let Some(head) = self.queue.first_mut() else { return };
        head.token = Some(token.clone());
        head.on_wire = true;
        if head.files && head.message_id.is_none() {
            out.push(Action::Upload { id, token });
        } else {
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
                        let head = self.queue.remove(0);
                        out.push(Action::SendSettled { id: head.id, result: Ok(Some(message_id)) });
                        self.next(out);
                    }
                    Some(message_id) => {
                        head.message_id = Some(message_id);
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
                let head = self.queue.remove(0);
                self.in_flight = None;
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
            return;
        }
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
        for mut o in core::mem::take(&mut self.queue) {
            o.ambiguous |= o.on_wire;
            Self::settle_err(o, ClientError::new(ErrorCode::Closed, "the convo was closed before the message was sent"), out);
        }
    }

    fn fail_head(&mut self, error: ClientError, out: &mut Vec<Action>) {
        self.in_flight = None;
        if !self.queue.is_empty() {
            Self::settle_err(self.queue.remove(0), error, out);
        }
        self.next(out);
    }

    fn settle_err(o: Queued, mut error: ClientError, out: &mut Vec<Action>) {
        if o.ambiguous {
            error.maybe_stored = Some(true);
        }
        if o.detached {
            let payload = ConvoErrorEvent::new(error.clone(), Stage::Send).to_json();
            out.push(Action::Emit { event: EventName::Error, payload });
        }
        out.push(Action::SendSettled { id: o.id, result: Err(error) });
    }
}
