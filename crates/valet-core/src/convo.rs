//! The convo machine: one convo's stream, reconnects, reconcile and
//! delivery, as a sans-IO state machine.
//!
//! The glue feeds [`Input`]s (with the time) and carries out the
//! [`Action`]s it gets back: get a token, open or close the stream, fetch
//! history, set or clear a timer, emit an event. It decides nothing itself.
//!
//! Decisions (each one a defect of the Valet JS SDK that this fixes):
//! - One stream at a time. Every connection attempt has a number; input
//!   about any other attempt is ignored, so a pause/resume during a backoff
//!   sleep can not start a second stream, and `close()` leaves nothing
//!   running (defect 5).
//! - A refused stream keeps its HTTP status (defect 1): 401 refreshes the
//!   token and retries at once, three in a row stop with an `auth` error;
//!   403 and 404 (and other 4xx but 408) stop; 429 waits `Retry-After`
//!   (body value first, capped), a wait no sign of the server's
//!   reachability cuts short; 408, 5xx and network errors back off.
//! - `closed{server_cap|shutdown}` reconnect "at once" with jitter;
//!   `closed{auth_expiring}` also rejects the token, forcing a refresh
//!   (defect 2); `stalled`, unknown reasons and streams that end without
//!   `closed` back off. Jitter everywhere (defect 9).
//! - A stream silent (no byte, not even a `ping`) for `stall_timeout_ms` is
//!   dead: closed and reconnected (defect 9).
//! - Every `ready` starts a reconcile; delivery holds live messages that
//!   can not be placed until it answers, so history never arrives after newer messages (defect 7) and
//!   no old message comes back (defect 8): see [`crate::delivery`]. A failed
//!   reconcile is reported and retried with backoff until it succeeds.
//! - `send()`s go through the [`Outbox`]: in order, idempotent, held (not
//!   failed) while the server is unreachable, flushed when it is back.
//! - A reconnect waiting out a long backoff is cut short when the server
//!   shows it is back: the browser's `online` event, or a REST call of this
//!   convo (a send, a reconcile) that just succeeded. Still jittered, so a
//!   herd that comes back together does not reconnect in one instant.
//! - Resume across a reload: the glue keeps a [`ResumePoint`] per tab (the
//!   last message delivered and the last event id) and hands it to the next
//!   machine of the same convo. Every message at or before it is delivered
//!   as history (`from_reconcile: true`), even if it arrives live, so a
//!   reload never emits a live message twice; with `Last-Event-ID` the
//!   server replays what came during the reload, which is new, so live.
//! - `persist: "local"` ([`ConvoConfig::local_history`]): what a page
//!   delivers is written for the next page ([`crate::cache`]), which
//!   delivers it first, as a history read before its (re)connect, and
//!   resolves the opening with it.
//! - Extensions are used only when the server shows it has them: `?after=`
//!   is a harmless query parameter, but `Last-Event-ID` (a header a strict
//!   CORS policy may refuse) is sent only after frames carried `id:`.

pub use crate::action::{Action, Timer, TokenFor};
use crate::backoff::{Backoff, BackoffConfig, Rng};
use crate::delivery::{Delivered, Delivery};
use crate::error::{retry_after_seconds, ClientError, ErrorCode};
use crate::events::{ConvoErrorEvent, ConvoStatusEvent, EventName, Stage, Status};
use crate::cache::{Loaded, LocalHistory};
use crate::outbox::{Durable, Outbox, Outgoing};
#[allow(unused_imports)]
use crate::prelude::*;
use crate::send::SendOutcome;
use crate::sse::{SseEvent, SseItem, SseParser};
use crate::token::redact;
use crate::wire::{ClosedReason, Frame, FrameHead, FrameKind, FrameValues, RawMessage, FRAME_PATHS};

/// The most frame text whose values are read in one call to the
/// JSON reader: batches bound what a huge chunk costs at once (the texts
/// are copied out for the reading).
pub const READ_BATCH_BYTES: usize = 64 * 1024;

/// The size past which delivered messages start a new batch for the
/// handlers (`Action::EmitMany`) rather than join the last one.
pub const EMIT_BATCH_BYTES: usize = 64 * 1024;

/// Tunables of a convo machine.
#[derive(Debug, Clone)]
pub struct ConvoConfig {
    /// The agent.
    pub agent_id: String,
    /// The convo.
    pub convo_id: String,
    /// A stream with no bytes for this long is dead (connecting included).
    pub stall_timeout_ms: u64,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
    /// 401s in a row before giving up with an `auth` error.
    pub max_auth_failures: u32,
    /// The longest `Retry-After` honoured, in ms.
    pub retry_after_cap_ms: u64,
    /// Drop the stream while the page is hidden, resume when visible.
    pub pause_on_hidden: bool,
    /// Relay what this tab receives from the start (see [`Input::Relay`]).
    pub relay: bool,
    /// Emit [`Action::Observe`] for observability hooks.
    pub observe: bool,
    /// Where an earlier page of this tab left off (see [`ResumePoint`]).
    pub resume: Option<ResumePoint>,
    /// Reads a token's claims: with it the outbox is durable (see
    /// [`Durable`]); without, it lives as long as the machine.
    pub claims_of: Option<crate::token::ClaimsOf>,
    /// What the tab's last page stored of this convo's outbox (see
    /// [`Action::SaveOutbox`]): the scope it last stored under, and what is
    /// stored there.
    pub stored_outbox: Option<(String, Option<String>)>,
    /// Keep a local history (`persist: "local"`; needs `claims_of`): see
    /// [`crate::cache`].
    pub local_history: bool,
}

/// What a tab had delivered of a convo when its page went away: kept by the
/// glue (`sessionStorage`) and given to the next page's machine.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    /// The last message delivered.
    pub id: Option<String>,
    /// Its `seq`, when the server gives one.
    #[serde(default)]
    pub seq: Option<u64>,
    /// The last SSE event id seen (EXTENSION: `Last-Event-ID`).
    #[serde(default)]
    pub event_id: Option<String>,
}

impl ResumePoint {
    /// What [`Action::Persist`] carries (the same as serde's JSON).
    pub fn to_json(&self) -> String {
        crate::json::Obj::new()
            .str_or_null("id", self.id.as_deref())
            .u64_or_null("seq", self.seq)
            .str_or_null("event_id", self.event_id.as_deref())
            .finish()
    }

    /// Reads what [`Action::Persist`] wrote; `None` for anything else.
    pub fn parse(json: &str) -> Option<ResumePoint> {
        let [id, seq, event_id] = crate::json::read_n(json, ["id", "seq", "event_id"])?;
        Some(ResumePoint { id: id.into_string(), seq: seq.u64(), event_id: event_id.into_string() })
    }
}

impl ConvoConfig {
    /// Defaults for a convo.
    pub fn new(agent_id: impl Into<String>, convo_id: impl Into<String>) -> Self {
        ConvoConfig {
            agent_id: agent_id.into(),
            convo_id: convo_id.into(),
            stall_timeout_ms: 45_000,
            backoff: BackoffConfig::default(),
            max_auth_failures: 3,
            retry_after_cap_ms: 30_000,
            pause_on_hidden: true,
            relay: false,
            observe: false,
            resume: None,
            claims_of: None,
            stored_outbox: None,
            local_history: false,
        }
    }
}

/// Inputs, from the glue.
#[derive(Debug, Clone)]
pub enum Input {
    /// Open (or resume) the stream.
    Start,
    /// Drop the stream until `Start`.
    Pause,
    /// Stop for good.
    Close,
    /// Another tab leads: run no stream, take relayed frames instead.
    Standby,
    /// This tab leads (after `Standby`): open the stream.
    Lead,
    /// Fetch history now (a follower opening, or a new leader generation).
    Sync,
    /// Follower side: the leader's relays may have skipped frames (a new
    /// leader, or relaying stopped while this tab did not answer): hold
    /// what is relayed until the next [`Input::Sync`] places it.
    Resync,
    /// Frames relayed by the leading tab, as SSE text (see
    /// [`Action::Relay`]; event `"status"`: its status).
    Relayed {
        /// The frames, as SSE events.
        sse: String,
    },
    /// Leader side: whether another tab listens, so that what this tab
    /// receives is relayed ([`Action::Relay`]) or not.
    Relay(bool),
    /// The page became hidden (`true`) or visible (`false`).
    Visibility {
        /// Hidden now.
        hidden: bool,
    },
    /// A token, as asked with [`Action::GetToken`].
    Token {
        /// What it is for.
        purpose: TokenFor,
        /// The JWT.
        token: String,
    },
    /// No token could be had.
    TokenFailed {
        /// What it was for.
        purpose: TokenFor,
        /// Why.
        error: ClientError,
    },
    /// The stream answered 200 with `text/event-stream`.
    StreamOpened {
        /// The attempt.
        attempt: u64,
    },
    /// The stream answered another status (body read, possibly empty).
    StreamRefused {
        /// The attempt.
        attempt: u64,
        /// HTTP status.
        status: u16,
        /// `Retry-After` header.
        retry_after: Option<String>,
        /// Response body.
        body: String,
    },
    /// Text of the stream, as the host decoded it from UTF-8 in chunks (a
    /// chunk may end anywhere; the browser's streaming `TextDecoder`, or
    /// `sse::SseParser::feed`'s decoder natively). An `EventSource` host
    /// writes what it dispatched back as SSE text, whole events.
    StreamText {
        /// The attempt.
        attempt: u64,
        /// The chunk.
        text: String,
    },
    /// The stream's body ended.
    StreamEnded {
        /// The attempt.
        attempt: u64,
    },
    /// The stream failed without an HTTP answer, or mid-body.
    StreamFailed {
        /// The attempt.
        attempt: u64,
        /// Why (no token in it).
        message: String,
    },
    /// The reconcile fetch answered.
    ReconcileDone {
        /// The request.
        req: u64,
        /// HTTP status.
        status: u16,
        /// Body.
        body: String,
    },
    /// The reconcile fetch failed without an HTTP answer.
    ReconcileFailed {
        /// The request.
        req: u64,
        /// Why.
        message: String,
    },
    /// A timer set with [`Action::SetTimer`] fired.
    TimerFired(Timer),
    /// `send()` or `uploadFiles()`: queue it (see [`Outbox`]). `id` is the
    /// glue's, to match [`Action::SendSettled`]; the glue holds the files.
    /// An upload settles with the draft's `message_id`, which a later
    /// message finalizes as its `draft`.
    Send {
        /// The glue's id for it.
        id: u64,
        /// Its idempotency key (the app's `idempotencyKey`), or none: a new
        /// UUID v4.
        key: Option<String>,
        /// A message or an upload.
        what: Outgoing,
        /// Resolved already: report a final failure as an `error` event.
        detached: bool,
    },
    /// The caller's `AbortSignal` aborted send `id`.
    CancelSend {
        /// The send.
        id: u64,
    },
    /// The answer to [`Action::Upload`] or [`Action::Post`].
    Posted {
        /// The send.
        id: u64,
        /// How it went.
        outcome: SendOutcome,
        /// The 2xx body (an upload's answer).
        body: String,
    },
    /// The browser's `online` event.
    Online,
    /// `pagehide`: the page may go away; persist where it is.
    PageHide,
    /// Another tab joined or changed role: relay the status (leader side).
    Announce,
    /// What [`Action::LoadOutbox`] found (`None`: nothing, or no storage).
    OutboxLoaded {
        /// What [`Action::SaveOutbox`] stored there.
        json: Option<String>,
        /// With `persist: "local"`: what the same user's closed tabs left
        /// unsent (each as [`Action::SaveOutbox`] stored it), claimed for
        /// this page.
        orphans: Vec<String>,
    },
    /// [`Action::SaveOutbox`] could not store (no storage, full, refused):
    /// the outbox lives on in this page only.
    OutboxNotSaved,
    /// What [`Action::LoadCache`] read: the frames in row order, or why
    /// storage failed.
    CacheLoaded {
        /// The rows, or what failed.
        frames: Result<Vec<String>, String>,
    },
    /// [`Action::CacheAppend`] could not write (no storage, full, refused).
    CacheNotSaved,
    /// What [`Action::LoadFiles`] found for restored send `id`.
    FilesLoaded {
        /// The restored send.
        id: u64,
        /// The glue holds its files now.
        found: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Idle,
    Paused,
    Stopped,
    Closed,
    Backoff,
    Standby,
    Authorizing(u64),
    Connecting(u64),
    Live(u64),
}

/// The machine.
#[derive(Debug)]
pub struct ConvoMachine {
    cfg: ConvoConfig,
    rng: Rng,
    backoff: Backoff,
    conn: Conn,
    attempt: u64,
    ever_connected: bool,
    opened_sent: bool,
    status: Status,
    user_paused: bool,
    hidden: bool,
    stream_token: Option<String>,
    reject_next: Option<String>,
    auth_failures: u32,
    parser: SseParser,
    /// The values of the frames of the chunk being handled (at
    /// `wire::FRAME_PATHS`), read ahead in one call to the JSON reader, last
    /// first (see `read_ahead`): one per event.
    heads: Vec<Option<FrameValues>>,
    last_activity_ms: u64,
    ids_seen: bool,
    last_event_id: Option<String>,
    delivery: Delivery<RawMessage>,
    /// `{"type":"message","action":"create","agent_id":…,"convo_id":…,"message":`
    message_prefix: String,
    reconcile_req: u64,
    reconcile_in_flight: bool,
    reconcile_again: bool,
    /// Syncs begun (each (re)connect, new leader or unheard spell): a
    /// history asked for in an earlier one can not end the current one.
    sync_gen: u64,
    /// The sync the reconcile in flight was asked for in.
    reconcile_sync_gen: u64,
    /// The reconcile asked for alongside the first opening's stream (see
    /// `connect`), while it is in flight.
    early_history: Option<u64>,
    reconcile_token: Option<String>,
    reconcile_auth_failures: u32,
    reconcile_backoff: Backoff,
    outbox: Outbox,
    /// When the pending reconnect is due, where a sign that the server is
    /// reachable may cut that wait short: not a wait the server asked for
    /// (429's `Retry-After`), which only its timer ends.
    reconnect_due_ms: Option<u64>,
    /// The time of the input being handled.
    now_ms: u64,
    history_loaded: bool,
    metrics: ConvoMetrics,
    /// Until the first history is in: what an earlier page of this tab
    /// delivered.
    resumed_until: Option<ResumePoint>,
    /// A message past `resumed_until` was delivered.
    resume_passed: bool,
    /// The last message delivered (for the resume point).
    last_delivered: Option<(String, Option<u64>)>,
    /// When the resume point was last stored (with a delivery at most once
    /// a second, and at `pagehide`); `None` before the first delivery, which
    /// starts that clock without storing: the opening's first messages are
    /// not held up by a storage write.
    last_persist_ms: Option<u64>,
    /// Relay what this tab receives (it leads, and another tab listens).
    relaying: bool,
    /// What to relay at the end of this input.
    relay_buf: String,
    /// Where the outbox is stored (with `claims_of`).
    durable: Option<Durable>,
    /// The local history (with `local_history`).
    cache: Option<LocalHistory>,
    /// Storage failed (reported once).
    storage_failed: bool,
    /// The last `convo_state` frame (with its `type`): the leader tells it
    /// to a tab that joins, so a tab opened after the convo closed shows the
    /// server's text as every other tab does; one heard again is not
    /// emitted again.
    last_convo_state: Option<String>,
    out: Vec<Action>,
}

/// What `convo.metrics()` reports (camelCase in JS).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct ConvoMetrics {
    /// Reconnects after the first connection (this tab's stream).
    pub reconnects: u64,
    /// When the last stream event (or relayed event) arrived, Unix ms.
    pub last_event_at: Option<u64>,
    /// Live messages dropped as already delivered.
    pub duplicates_dropped: u64,
    /// Messages a reconcile delivered after the history was loaded: each
    /// one a gap in the live feed, filled.
    pub gaps_filled: u64,
    /// Times this tab's view of the leading tab changed.
    pub leader_changes: u64,
    /// `fetchJwt` calls made (shared by the client's convos).
    pub token_refreshes: u64,
    /// Sends queued, not settled yet.
    pub queued_sends: u64,
    /// Messages delivered to `message` handlers.
    pub messages_delivered: u64,
}

impl ConvoMetrics {
    /// The JSON `convo.metrics()` returns (the same as serde's).
    pub fn to_json(&self) -> String {
        crate::json::Obj::new()
            .u64("reconnects", self.reconnects)
            .u64_or_null("lastEventAt", self.last_event_at)
            .u64("duplicatesDropped", self.duplicates_dropped)
            .u64("gapsFilled", self.gaps_filled)
            .u64("leaderChanges", self.leader_changes)
            .u64("tokenRefreshes", self.token_refreshes)
            .u64("queuedSends", self.queued_sends)
            .u64("messagesDelivered", self.messages_delivered)
            .finish()
    }
}

impl ConvoMachine {
    /// A machine (not started) with a random seed for jitter.
    pub fn new(mut cfg: ConvoConfig, seed: u64) -> Self {
        let resume = cfg.resume.take().filter(|r| r.id.is_some() || r.event_id.is_some());
        let resume_event_id = resume.as_ref().and_then(|r| r.event_id.clone());
        let last_delivered = resume.as_ref().and_then(|r| r.id.clone().map(|id| (id, r.seq)));
        let resumed_until = resume.filter(|r| r.id.is_some());
        let relaying = cfg.relay;
        let cache = (cfg.local_history && cfg.claims_of.is_some()).then(LocalHistory::new);
        let (durable, unreadable) = match cfg.claims_of {
            Some(_) => {
                let (d, readable) = Durable::new(cfg.stored_outbox.take());
                (Some(d), !readable)
            }
            None => (None, false),
        };
        let message_prefix = crate::cat!(
            "{\"type\":\"message\",\"action\":\"create\",\"agent_id\":",
            crate::error::json_string(&cfg.agent_id),
            ",\"convo_id\":",
            crate::error::json_string(&cfg.convo_id),
            ",\"message\":",
        );
        let mut machine = ConvoMachine {
            message_prefix,
            backoff: Backoff::new(cfg.backoff.clone()),
            reconcile_backoff: Backoff::new(cfg.backoff.clone()),
            cfg,
            rng: Rng::new(seed),
            conn: Conn::Idle,
            attempt: 0,
            ever_connected: false,
            opened_sent: false,
            status: Status::Connecting,
            user_paused: false,
            hidden: false,
            stream_token: None,
            reject_next: None,
            auth_failures: 0,
            parser: SseParser::new(),
            heads: Vec::new(),
            last_activity_ms: 0,
            ids_seen: resume_event_id.is_some(),
            last_event_id: resume_event_id,
            delivery: Delivery::new(),
            reconcile_req: 0,
            reconcile_in_flight: false,
            reconcile_again: false,
            sync_gen: 0,
            reconcile_sync_gen: 0,
            early_history: None,
            reconcile_token: None,
            reconcile_auth_failures: 0,
            outbox: Outbox::new(),
            reconnect_due_ms: None,
            now_ms: 0,
            history_loaded: false,
            metrics: ConvoMetrics::default(),
            resumed_until,
            resume_passed: false,
            last_delivered,
            last_persist_ms: None,
            relaying,
            relay_buf: String::new(),
            durable,
            cache,
            storage_failed: false,
            last_convo_state: None,
            out: Vec::new(),
        };
        if machine.cache.is_some() {
            machine.outbox.keep_files();
        }
        if unreadable {
            machine.storage_trouble("the stored outbox is unreadable; it is dropped");
        }
        machine
    }

    /// The metrics so far (`leader_changes` and `token_refreshes` are the
    /// glue's to fill in).
    pub fn metrics(&self) -> ConvoMetrics {
        ConvoMetrics {
            queued_sends: self.outbox.len() as u64,
            messages_delivered: self.delivery.delivered_count() as u64,
            ..self.metrics.clone()
        }
    }

    /// The convo id.
    pub fn convo_id(&self) -> &str {
        &self.cfg.convo_id
    }

    /// Whether `close()` happened.
    pub fn is_closed(&self) -> bool {
        self.conn == Conn::Closed
    }

    /// The connection status last emitted.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Messages delivered so far.
    pub fn delivered_count(&self) -> usize {
        self.delivery.delivered_count()
    }

    /// Handles one input at `now_ms`; returns the actions to carry out.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        if self.conn == Conn::Closed {
            return Vec::new();
        }
        self.now_ms = now_ms;
        match input {
            Input::Start => {
                self.user_paused = false;
                if self.hidden && self.cfg.pause_on_hidden {
                    self.pause();
                } else {
                    self.start(now_ms, true);
                }
            }
            Input::Pause => {
                self.user_paused = true;
                self.pause();
            }
            Input::Standby => {
                if self.conn != Conn::Standby {
                    self.close_stream();
                    self.out.push(Action::ClearTimer(Timer::Reconnect));
                    self.conn = Conn::Standby;
                }
                // Relays are placed once the leader has this tab listening
                // and a history has answered (`Sync`).
                self.begin_sync();
                self.opened(Ok(()));
            }
            Input::Resync => self.begin_sync(),
            Input::Lead => {
                if self.user_paused || (self.hidden && self.cfg.pause_on_hidden) {
                    self.pause();
                } else {
                    self.start(now_ms, false);
                }
            }
            Input::Sync => {
                self.begin_sync();
                self.request_reconcile();
            }
            Input::Relayed { sse } => {
                if self.conn == Conn::Standby {
                    // A fresh parser per message: each holds whole events.
                    let items = SseParser::new().feed_str(&sse);
                    drop(sse);
                    self.each_item(items, |m, item| {
                        if let SseItem::Event(ev) = item {
                            m.on_relayed(ev.event, ev.data);
                        }
                        true
                    });
                }
            }
            // The status goes out with the election's `Announce`.
            Input::Relay(on) => self.relaying = on,
            Input::Visibility { hidden } => {
                self.hidden = hidden;
                if self.cfg.pause_on_hidden && !self.user_paused && !matches!(self.conn, Conn::Idle | Conn::Standby) {
                    if hidden {
                        self.pause();
                    } else {
                        self.start(now_ms, false);
                    }
                }
            }
            Input::Close => self.close(),
            Input::Token { purpose, token } => self.on_token(now_ms, purpose, token),
            Input::TokenFailed { purpose, error } => self.on_token_failed(purpose, error),
            Input::StreamOpened { attempt } => {
                if self.conn == Conn::Connecting(attempt) {
                    self.conn = Conn::Live(attempt);
                    self.last_activity_ms = now_ms;
                    // The server took a token: 401s count again from zero.
                    self.auth_failures = 0;
                }
            }
            Input::StreamRefused { attempt, status, retry_after, body } => {
                if self.conn == Conn::Connecting(attempt) {
                    self.on_refused(status, retry_after.as_deref(), &body);
                }
            }
            Input::StreamText { attempt, text } => {
                if self.conn == Conn::Live(attempt) {
                    self.last_activity_ms = now_ms;
                    self.metrics.last_event_at = Some(now_ms);
                    let items = self.parser.feed_str(&text);
                    drop(text);
                    self.each_item(items, |m, item| {
                        // A `closed` frame ended this stream: the rest is not read.
                        let live = m.conn == Conn::Live(attempt);
                        if live {
                            m.on_sse_item(attempt, item);
                        }
                        live
                    });
                }
            }
            Input::StreamEnded { attempt } => {
                if matches!(self.conn, Conn::Connecting(a) | Conn::Live(a) if a == attempt) {
                    self.log(crate::cat!("stream ended without a `closed` frame (attempt ", attempt, ")"));
                    self.close_stream();
                    self.schedule_backoff();
                }
            }
            Input::StreamFailed { attempt, message } => {
                if matches!(self.conn, Conn::Connecting(a) | Conn::Live(a) if a == attempt) {
                    self.log(crate::cat!("stream failed: ", message));
                    self.close_stream();
                    self.schedule_backoff();
                }
            }
            Input::ReconcileDone { req, status, body } => self.on_reconcile_done(req, status, body),
            Input::ReconcileFailed { req, message } => {
                if req == self.reconcile_req && self.reconcile_in_flight {
                    self.reconcile_in_flight = false;
                    if self.take_early(req) {
                        self.early_history_failed();
                    } else {
                        self.reconcile_failed(ClientError::new(ErrorCode::Network, crate::cat!("reconcile failed: ", message)));
                    }
                }
            }
            Input::TimerFired(timer) => self.on_timer(now_ms, timer),
            Input::Send { id, key, what, detached } => {
                let key = key.unwrap_or_else(|| self.rng.uuid_v4());
                self.outbox.push(id, key, what, detached, now_ms, &mut self.out);
                let queued = self.outbox.len();
                self.observe("send_queued", crate::cat!("{\"queued\":", queued, "}"));
            }
            Input::CancelSend { id } => self.outbox.cancel(id, &mut self.out),
            Input::Posted { id, outcome, body } => {
                if self.outbox.on_answer(id, outcome, &body, &mut self.rng, &mut self.out) {
                    self.server_reachable(now_ms);
                }
            }
            Input::Online => {
                self.log("the browser is online".into());
                self.server_reachable(now_ms);
                if self.reconnect_due_ms.is_some() {
                    // Reachability is a guess here: the reconnect itself decides.
                    self.backoff.reset();
                }
            }
            Input::PageHide => self.persist(),
            Input::Announce => self.relay_status(),
            Input::OutboxLoaded { json, orphans } => {
                let readable = self.durable.as_mut().is_none_or(|d| d.on_loaded(json.as_deref(), &orphans, &mut self.outbox, &mut self.out));
                if !readable {
                    self.storage_trouble("the stored outbox is unreadable; it is dropped");
                }
            }
            Input::OutboxNotSaved => self.storage_trouble("the outbox could not be stored; it lives in this page only"),
            Input::CacheLoaded { frames } => self.on_cache_loaded(frames),
            Input::FilesLoaded { id, found } => self.outbox.on_files(id, found, &mut self.out),
            Input::CacheNotSaved => {
                if let Some(cache) = &mut self.cache {
                    cache.on_not_saved();
                }
                self.storage_trouble("the local history could not be stored; nothing more is kept");
            }
        }
        self.save_outbox();
        if let Some(cache) = &mut self.cache {
            cache.flush(&mut self.out);
        }
        self.settled_observations();
        if !self.relay_buf.is_empty() {
            let sse = core::mem::take(&mut self.relay_buf);
            self.out.push(Action::Relay { sse });
        }
        core::mem::take(&mut self.out)
    }

    /// Queues an event for the other tabs (while relaying).
    fn relay(&mut self, event: &str, data: &str) {
        if self.relaying {
            crate::sse::encode(&mut self.relay_buf, event, data);
        }
    }

    /// Relays this tab's stream status and the convo's last state (leader
    /// side), so tabs that just started to listen report them at once.
    fn relay_status(&mut self) {
        if self.conn != Conn::Standby && self.status != Status::Closed {
            let payload = self.status_payload(None);
            self.relay("status", &payload);
            if let Some(frame) = self.last_convo_state.clone() {
                self.relay("message", &frame);
            }
        }
    }

    /// The server answered a REST call, or the browser is back online: a
    /// held outbox goes now, and a reconnect still far off comes soon.
    fn server_reachable(&mut self, now_ms: u64) {
        self.outbox.release(&mut self.out);
        if self.conn == Conn::Backoff {
            if let Some(due) = self.reconnect_due_ms {
                let soon = self.backoff.immediate(&mut self.rng);
                if due.saturating_sub(now_ms) > soon.max(1000) {
                    self.log("the server is reachable: reconnecting now".into());
                    self.schedule(soon);
                }
            }
        }
    }

    /// Where this tab is, for the next page of it (see [`ResumePoint`]).
    pub fn resume_point(&self) -> ResumePoint {
        let (id, seq) = match &self.last_delivered {
            Some((id, seq)) => (Some(id.clone()), *seq),
            None => (None, None),
        };
        ResumePoint { id, seq, event_id: if self.ids_seen { self.last_event_id.clone() } else { None } }
    }

    fn persist(&mut self) {
        self.last_persist_ms = Some(self.now_ms);
        let point = self.resume_point();
        if point.id.is_some() || point.event_id.is_some() {
            self.out.push(Action::Persist(point.to_json()));
        }
    }

    fn observe(&mut self, kind: &'static str, payload: String) {
        if self.cfg.observe {
            self.out.push(Action::Observe { kind, payload });
        }
    }

    /// The first token's identity names where the outbox and the local
    /// history are kept (see [`Durable::on_identity`] and
    /// [`LocalHistory::on_identity`]).
    fn storage_identity(&mut self, token: &str) {
        let (Some(claims_of), Some(durable)) = (self.cfg.claims_of, &mut self.durable) else { return };
        if let Ok(claims) = claims_of(token) {
            let scope = crate::token::identity_scope(&claims.identity);
            if let Some(cache) = &mut self.cache {
                cache.on_identity(&scope, &mut self.out);
            }
            durable.on_identity(scope, &mut self.outbox, &mut self.out);
        }
    }

    /// The local history is read: delivered as a history read before the
    /// (re)connect (see [`crate::cache`]), each of its messages marked
    /// `from_cache`. A cache of the convo means this user had it open on
    /// this browser: the opening resolves now, so the app shows it before
    /// the network answers (a refusal that follows is an `error` event and
    /// the status `stopped`, as on any later connection).
    fn on_cache_loaded(&mut self, frames: Result<Vec<String>, String>) {
        let Some(cache) = &mut self.cache else { return };
        match cache.on_loaded(frames, &self.cfg.convo_id, &mut self.out) {
            Loaded::Nothing => {}
            Loaded::Trouble(why) => self.storage_trouble(why),
            Loaded::Deliver(history) => {
                let delivered = self.delivery.on_cached(history);
                self.opened(Ok(()));
                self.emit_delivered(delivered);
            }
        }
    }

    /// Stores the outbox when it changed.
    fn save_outbox(&mut self) {
        if let Some(durable) = &mut self.durable {
            durable.save(&self.outbox, &mut self.out);
        }
    }

    /// Storage failed: reported once (`storage_error`), the SDK goes on.
    fn storage_trouble(&mut self, message: &str) {
        if !core::mem::replace(&mut self.storage_failed, true) {
            self.log(message.into());
            self.observe("storage_error", crate::json::Obj::new().str("message", message).finish());
        }
    }

    /// With `observe`, one `send_settled` per settled send of this batch.
    fn settled_observations(&mut self) {
        if !self.cfg.observe {
            return;
        }
        let settled: Vec<String> = self
            .out
            .iter()
            .filter_map(|a| match a {
                Action::SendSettled { result: Ok(_), .. } => Some("{\"ok\":true}".to_owned()),
                Action::SendSettled { result: Err(e), .. } => {
                    Some(crate::json::Obj::new().bool("ok", false).str("code", e.code.as_str()).finish())
                }
                _ => None,
            })
            .collect();
        for payload in settled {
            self.out.push(Action::Observe { kind: "send_settled", payload });
        }
    }

    fn log(&mut self, line: String) {
        self.out.push(Action::Log(line));
    }

    fn emit(&mut self, event: EventName, payload: String) {
        self.out.push(Action::Emit { event, payload });
    }

    fn opened(&mut self, result: Result<(), ClientError>) {
        if !core::mem::replace(&mut self.opened_sent, true) {
            self.out.push(Action::Opened(result));
        }
    }

    fn status_payload(&self, retry_in_ms: Option<u64>) -> String {
        ConvoStatusEvent { status: self.status, attempt: self.attempt, retry_in_ms }.to_json()
    }

    fn emit_status(&mut self, status: Status, retry_in_ms: Option<u64>) {
        self.status = status;
        let payload = self.status_payload(retry_in_ms);
        if status != Status::Closed {
            self.relay("status", &payload);
        }
        self.emit(EventName::Status, payload);
    }

    fn emit_error(&mut self, error: ClientError, stage: Stage) {
        self.log(crate::cat!("error (", stage.as_str(), "): ", error.message));
        let payload = ConvoErrorEvent::new(error, stage).to_json();
        self.emit(EventName::Error, payload);
    }

    /// `message` payloads: the server's message JSON inside our envelope,
    /// built by concatenation (the message is never decoded and re-encoded).
    /// Two or more go out as one array.
    fn emit_delivered(&mut self, mut delivered: Vec<Delivered<RawMessage>>) {
        let count = delivered.len();
        if count == 0 {
            return;
        }
        for d in delivered.iter_mut() {
            let Some(until) = &self.resumed_until else { break };
            let passed = match (d.message.seq, until.seq) {
                (Some(seq), Some(last)) => seq > last,
                _ => self.resume_passed,
            };
            if passed {
                // It came while the tab was away: new to the user, live
                // whether the stream's replay or the history brings it
                // (the local history's rows say where they are from).
                self.resume_passed = true;
                d.from_reconcile = d.from_cache;
            } else {
                // An earlier page of this tab delivered it: history, never live again.
                d.from_reconcile = true;
                if until.id.as_deref() == Some(d.message.id.as_str()) {
                    self.resume_passed = true;
                }
            }
        }
        if let Some(last) = delivered.last() {
            self.last_delivered = Some((last.message.id.clone(), last.message.seq));
        }
        match self.last_persist_ms {
            None => self.last_persist_ms = Some(self.now_ms),
            Some(at) if self.now_ms.saturating_sub(at) >= 1000 => self.persist(),
            Some(_) => {}
        }
        let size: usize = delivered.iter().map(|d| self.message_prefix.len() + d.message.json.len() + 24).sum();
        // What one input delivers goes out in batches (one crossing, one
        // parse each): messages join the batch this input emitted last, if
        // any, up to [`EMIT_BATCH_BYTES`].
        let (mut json, before) = match self.out.pop() {
            Some(Action::EmitMany { event: EventName::Message, mut json_array, count }) if json_array.len() < EMIT_BATCH_BYTES => {
                json_array.truncate(json_array.len().saturating_sub(1)); // its `]` (not `pop`: no char decoding)
                (json_array, count)
            }
            Some(Action::Emit { event: EventName::Message, payload }) => {
                let mut json = String::with_capacity(payload.len() + size + 3);
                json.push('[');
                json.push_str(&payload);
                (json, 1)
            }
            other => {
                self.out.extend(other);
                (String::with_capacity(size + 2), 0)
            }
        };
        if before == 0 && count > 1 {
            json.push('[');
        }
        for (i, d) in delivered.iter().enumerate() {
            if i > 0 || before > 0 {
                json.push(',');
            }
            // `from_reconcile` is present only on reconcile output, and then
            // `true`; `from_cache` only on the local history's.
            let tail = match (d.from_reconcile, d.from_cache) {
                (_, true) => ",\"from_reconcile\":true,\"from_cache\":true}",
                (true, false) => ",\"from_reconcile\":true}",
                (false, false) => "}",
            };
            let cache = self.cache.as_mut().filter(|c| c.recording() && !d.from_cache);
            // The frame as delivered (without our fields) is what the cache keeps.
            if d.message.framed {
                // The server's frame as sent, `from_reconcile` added before its `}`.
                let frame = d.message.json.trim_ascii_end();
                let head = frame.strip_suffix("}").unwrap_or(frame);
                json.push_str(head);
                if let Some(cache) = cache {
                    cache.record(crate::cat!(head, "}"));
                }
            } else {
                json.push_str(&self.message_prefix);
                json.push_str(&d.message.json);
                if let Some(cache) = cache {
                    cache.record(crate::cat!(self.message_prefix, &*d.message.json, "}"));
                }
            }
            json.push_str(tail);
        }
        let count = before + count;
        if count == 1 {
            self.out.push(Action::Emit { event: EventName::Message, payload: json });
        } else {
            json.push(']');
            self.out.push(Action::EmitMany { event: EventName::Message, json_array: json, count });
        }
    }

    fn start(&mut self, now_ms: u64, by_user: bool) {
        match self.conn {
            // Only the user restarts a convo stopped on an error.
            Conn::Stopped if !by_user => {}
            Conn::Idle | Conn::Paused | Conn::Stopped | Conn::Backoff | Conn::Standby => {
                self.out.push(Action::ClearTimer(Timer::Reconnect));
                if self.conn == Conn::Stopped {
                    self.auth_failures = 0;
                }
                self.connect(now_ms);
            }
            // Already running: a second start must not open a second stream.
            Conn::Authorizing(_) | Conn::Connecting(_) | Conn::Live(_) | Conn::Closed => {}
        }
    }

    fn pause(&mut self) {
        if matches!(self.conn, Conn::Closed | Conn::Paused) {
            return;
        }
        if self.conn != Conn::Standby {
            // Paused means nothing is delivered until resume: a reconcile in
            // flight is dropped (what it would bring, the reconcile after the
            // resumed stream's `ready` brings), and messages held for it stay
            // held until then.
            self.reconcile_req += 1;
            self.reconcile_in_flight = false;
            self.reconcile_again = false;
            self.early_history = None;
            self.out.push(Action::ClearTimer(Timer::Reconcile));
        }
        self.close_stream();
        self.conn = Conn::Paused;
        self.out.push(Action::ClearTimer(Timer::Reconnect));
        self.out.push(Action::ClearTimer(Timer::Stall));
        self.emit_status(Status::Paused, None);
        self.opened(Ok(()));
    }

    fn close(&mut self) {
        self.close_stream();
        self.conn = Conn::Closed;
        self.outbox.close(&mut self.out);
        for t in [Timer::Reconnect, Timer::Stall, Timer::Reconcile, Timer::Outbox] {
            self.out.push(Action::ClearTimer(t));
        }
        self.emit_status(Status::Closed, None);
    }

    fn connect(&mut self, _now_ms: u64) {
        self.attempt += 1;
        self.reconnect_due_ms = None;
        if self.ever_connected {
            self.metrics.reconnects += 1;
            let attempt = self.attempt;
            self.observe("reconnect", crate::cat!("{\"attempt\":", attempt, "}"));
        }
        self.conn = Conn::Authorizing(self.attempt);
        self.parser = SseParser::new();
        let status = if self.ever_connected { Status::Reconnecting } else { Status::Connecting };
        self.emit_status(status, None);
        let reject = self.reject_next.take();
        self.out.push(Action::GetToken { purpose: TokenFor::Stream(self.attempt), reject });
        // Until a first history is in, the history is asked for alongside
        // the stream, not after its `ready`: what it has shows a round trip
        // sooner. It is placed as any history read before a (re)connect
        // (it ends no sync begun after it was asked for); the history asked
        // for at `ready` is the one that places what the stream brings. Its
        // failure says nothing: that one is still to come.
        if !self.history_loaded && !self.reconcile_in_flight {
            self.request_reconcile();
            self.early_history = Some(self.reconcile_req);
        }
    }

    /// Whether `req` is the history asked for alongside the opening (it is
    /// then no longer in flight).
    fn take_early(&mut self, req: u64) -> bool {
        let early = self.early_history == Some(req);
        if early {
            self.early_history = None;
        }
        early
    }

    /// The history asked for alongside the opening failed: nothing is said
    /// or retried (the history asked for at `ready` is to come), but one
    /// asked for meanwhile goes out.
    fn early_history_failed(&mut self) {
        if core::mem::take(&mut self.reconcile_again) {
            self.request_reconcile();
        }
    }

    fn close_stream(&mut self) {
        if let Conn::Connecting(a) | Conn::Live(a) = self.conn {
            self.out.push(Action::CloseStream { attempt: a });
        }
        self.out.push(Action::ClearTimer(Timer::Stall));
    }

    fn schedule(&mut self, delay_ms: u64) {
        self.conn = Conn::Backoff;
        self.reconnect_due_ms = Some(self.now_ms + delay_ms);
        self.out.push(Action::ClearTimer(Timer::Stall));
        self.out.push(Action::SetTimer { timer: Timer::Reconnect, delay_ms });
        self.emit_status(Status::Reconnecting, Some(delay_ms));
    }

    fn schedule_backoff(&mut self) {
        let d = self.backoff.next_delay(&mut self.rng);
        self.schedule(d);
        self.opened(Ok(()));
    }

    fn schedule_immediate(&mut self) {
        let d = self.backoff.immediate(&mut self.rng);
        self.schedule(d);
    }

    fn stop(&mut self, error: ClientError, stage: Stage) {
        self.close_stream();
        self.conn = Conn::Stopped;
        self.out.push(Action::ClearTimer(Timer::Reconnect));
        self.opened(Err(error.clone()));
        self.emit_error(error, stage);
        self.emit_status(Status::Stopped, None);
    }

    fn on_token(&mut self, now_ms: u64, purpose: TokenFor, token: String) {
        self.storage_identity(&token);
        match purpose {
            TokenFor::Stream(a) if self.conn == Conn::Authorizing(a) => {
                self.conn = Conn::Connecting(a);
                self.log(crate::cat!("opening stream (attempt ", a, ", token ", redact(&token), ")"));
                self.stream_token = Some(token.clone());
                self.last_activity_ms = now_ms;
                let last_event_id = if self.ids_seen { self.last_event_id.clone() } else { None };
                self.out.push(Action::OpenStream { attempt: a, token, last_event_id });
                self.out.push(Action::SetTimer { timer: Timer::Stall, delay_ms: self.cfg.stall_timeout_ms });
            }
            TokenFor::Send(id) => self.outbox.on_token(id, token, &mut self.out),
            TokenFor::Reconcile(r) if r == self.reconcile_req && self.reconcile_in_flight => {
                self.reconcile_token = Some(token.clone());
                let after = self.delivery.last_id().map(str::to_owned);
                self.out.push(Action::Reconcile { req: r, token, after });
            }
            _ => {}
        }
    }

    /// No token: an `auth` error (the app says the user is signed out)
    /// stops the convo; any other failure may pass, and is retried with
    /// backoff (the stream's and the reconcile's alike).
    fn on_token_failed(&mut self, purpose: TokenFor, error: ClientError) {
        let signed_out = error.signed_out();
        match purpose {
            TokenFor::Stream(a) if self.conn == Conn::Authorizing(a) => {
                if signed_out {
                    self.stop(error, Stage::Auth);
                } else {
                    self.emit_error(error, Stage::Auth);
                    self.schedule_backoff();
                }
            }
            TokenFor::Send(id) => self.outbox.on_token_failed(id, error, &mut self.rng, &mut self.out),
            TokenFor::Reconcile(r) if r == self.reconcile_req && self.reconcile_in_flight => {
                self.reconcile_in_flight = false;
                if self.take_early(r) {
                    // The stream's token (asked for with it) says the same.
                    self.early_history_failed();
                } else if signed_out && self.conn != Conn::Stopped {
                    self.out.push(Action::ClearTimer(Timer::Reconcile));
                    self.stop(error, Stage::Auth);
                } else {
                    self.reconcile_failed(error);
                }
            }
            _ => {}
        }
    }

    fn on_refused(&mut self, status: u16, retry_after: Option<&str>, body: &str) {
        self.out.push(Action::ClearTimer(Timer::Stall));
        self.conn = Conn::Backoff;
        let error = ClientError::from_http(status, retry_after_seconds(retry_after, body), body, "opening the stream");
        self.log(crate::cat!("stream refused: HTTP ", status));
        match status {
            401 => {
                self.auth_failures += 1;
                if self.auth_failures >= self.cfg.max_auth_failures {
                    let mut e = error;
                    e.message = crate::cat!("the server refused ", self.auth_failures, " tokens in a row: ", e.message);
                    self.stop(e, Stage::Auth);
                } else {
                    self.reject_next = self.stream_token.clone();
                    self.schedule_immediate();
                }
            }
            403 => self.stop(error, Stage::Auth),
            429 => {
                let secs = error.retry_after_seconds;
                let nominal = self.backoff.next_delay(&mut self.rng);
                let delay = match secs {
                    Some(s) => s.saturating_mul(1000).min(self.cfg.retry_after_cap_ms) + self.backoff.immediate(&mut self.rng),
                    None => nominal,
                };
                self.schedule(delay);
                // The server's wait: an early try would be refused again.
                self.reconnect_due_ms = None;
                self.opened(Ok(()));
            }
            408 | 500..=599 => self.schedule_backoff(),
            _ => self.stop(error, Stage::Connect),
        }
    }

    fn on_sse_item(&mut self, attempt: u64, item: SseItem) {
        match item {
            SseItem::Event(ev) => self.on_event(attempt, ev),
            SseItem::Retry(_) => {} // reconnect timing is ours, not the server's
            SseItem::Oversized { limit } => self.emit_error(
                ClientError::new(ErrorCode::Protocol, crate::cat!("a stream event exceeded ", limit, " bytes and was dropped")),
                Stage::Stream,
            ),
        }
    }

    fn on_event(&mut self, attempt: u64, ev: SseEvent) {
        self.relay(&ev.event, &ev.data);
        if !ev.id.is_empty() {
            self.ids_seen = true;
            self.last_event_id = Some(ev.id.clone());
        }
        let Some(frame) = self.read_frame(&ev.event, ev.data) else {
            return;
        };
        match frame.kind {
            FrameKind::Ready => {
                self.ever_connected = true;
                self.backoff.reset();
                self.auth_failures = 0;
                self.emit(EventName::Ready, frame.text);
                self.emit_status(Status::Connected, None);
                self.opened(Ok(()));
                self.begin_sync();
                self.request_reconcile();
                self.outbox.release(&mut self.out);
            }
            FrameKind::Closed => {
                let reason = frame.reason.unwrap_or(ClosedReason::Unknown);
                self.emit(EventName::Closed, frame.text);
                self.log(crate::cat!("server closed the stream: ", reason.as_str()));
                if self.conn == Conn::Live(attempt) {
                    self.close_stream();
                }
                match reason {
                    ClosedReason::ServerCap | ClosedReason::Shutdown => self.schedule_immediate(),
                    ClosedReason::AuthExpiring => {
                        self.reject_next = self.stream_token.clone();
                        self.schedule_immediate();
                    }
                    ClosedReason::Stalled | ClosedReason::Unknown => self.schedule_backoff(),
                }
            }
            _ => {} // read_frame handled every other frame
        }
    }

    /// Reads one frame and delivers what needs no connection decision
    /// (messages, typing, convo state, turn done, server errors, pings).
    /// Returns `ready` and `closed` frames, which the caller decides on:
    /// the streaming tab reconnects, a follower only reports them. Frames
    /// reach handlers as the server sent them (read for their head only).
    fn read_frame(&mut self, event: &str, data: String) -> Option<FrameHead> {
        // Read ahead with the rest of its chunk (see `read_ahead`).
        let values = match self.heads.pop() {
            Some(values) => values,
            None => crate::json::read_n(&data, FRAME_PATHS),
        };
        let frame = match crate::wire::read_frame(event, data, values, &self.cfg.convo_id) {
            Ok(Some(Frame::Message(message))) => {
                self.on_live_message(message);
                return None;
            }
            Ok(Some(Frame::Other(f))) => f,
            Ok(None) => {
                self.log(crate::cat!("skipping unknown frame type `", event, "`"));
                return None;
            }
            Err(e) => {
                self.emit_error(ClientError::new(ErrorCode::Protocol, e.message()), Stage::Stream);
                return None;
            }
        };
        match frame.kind {
            FrameKind::Typing => self.emit(EventName::Typing, frame.text),
            FrameKind::ConvoState => {
                // The same state told again (a leader to a tab that joined): once.
                if self.last_convo_state.as_ref() == Some(&frame.text) {
                    return None;
                }
                self.last_convo_state = Some(frame.text.clone());
                self.emit(EventName::ConvoState, frame.text)
            }
            FrameKind::TurnDone => self.emit(EventName::TurnDone, frame.text),
            // The server's report, handed over as the frame itself (as the
            // JS SDK does): apps tell it from an SDK failure by `"reason" in evt`.
            FrameKind::Error => {
                self.log("the server reported a temporary failure".into());
                self.emit(EventName::Error, frame.text)
            }
            // Handed over as sent; held, ordered and relayed as every frame,
            // never counted as a message (the completed `message` is).
            FrameKind::MessageDelta => self.emit(EventName::Delta, frame.text),
            FrameKind::Ping | FrameKind::Message => {}
            FrameKind::Ready | FrameKind::Closed => return Some(frame),
        }
        None
    }

    /// Hands `items` to `f` in order, until it returns false, with the heads
    /// of their `message` frames read ahead in batches (`read_ahead`).
    fn each_item(&mut self, mut items: Vec<SseItem>, mut f: impl FnMut(&mut Self, SseItem) -> bool) {
        let mut read_to = 0;
        for i in 0..items.len() {
            if i >= read_to {
                read_to = i + self.read_ahead(items.get(i..).unwrap_or_default());
            }
            let item = core::mem::replace(&mut items[i], SseItem::Retry(0));
            if !f(self, item) {
                break;
            }
        }
        self.heads.clear();
    }

    /// Reads the values of the frames at the start of `items`, up to
    /// [`READ_BATCH_BYTES`] of them (at least one), in one call to the
    /// reader (a crossing per frame costs the browser more than the
    /// parse); each is taken by `read_frame` (or dropped by `on_relayed`),
    /// in order. Returns how many items that covers. The batches bound what
    /// a huge chunk costs at once.
    fn read_ahead(&mut self, items: &[SseItem]) -> usize {
        let mut texts = Vec::new();
        let mut bytes = 0;
        let mut covered = items.len();
        for (i, item) in items.iter().enumerate() {
            if bytes >= READ_BATCH_BYTES {
                covered = i;
                break;
            }
            if let SseItem::Event(ev) = item {
                texts.push(ev.data.as_str());
                bytes += ev.data.len();
            }
        }
        self.heads = crate::json::read_each_n(&texts, FRAME_PATHS);
        self.heads.reverse();
        covered
    }

    /// A frame the leading tab received, in a tab that runs no stream: the
    /// same delivery, no connection decisions.
    fn on_relayed(&mut self, event: String, data: String) {
        self.metrics.last_event_at = Some(self.now_ms);
        if event == "status" {
            // Its values were read ahead as a frame's: not one.
            self.heads.pop();
            let status = crate::json::read_n(&data, ["status"]).and_then(|[s]| s.str().and_then(Status::parse));
            if let Some(status) = status {
                self.status = status;
                if status == Status::Connected {
                    self.outbox.release(&mut self.out);
                }
            }
            return self.emit(EventName::Status, data);
        }
        match self.read_frame(&event, data) {
            Some(frame) if frame.kind == FrameKind::Ready => {
                self.emit(EventName::Ready, frame.text);
                // The leader (re)connected: fill any gap here too.
                self.begin_sync();
                self.request_reconcile();
                self.outbox.release(&mut self.out);
            }
            Some(frame) => self.emit(EventName::Closed, frame.text),
            None => {}
        }
    }

    fn on_live_message(&mut self, message: RawMessage) {
        let outcome = self.delivery.on_live(message);
        if outcome.duplicate {
            self.metrics.duplicates_dropped += 1;
            self.log("dropped a duplicate message".into());
            self.observe("duplicate_dropped", "{}".into());
        }
        self.emit_delivered(outcome.deliver);
        if outcome.needs_reconcile {
            self.request_reconcile();
        }
    }

    fn on_timer(&mut self, now_ms: u64, timer: Timer) {
        match timer {
            Timer::Reconnect => {
                if self.conn == Conn::Backoff {
                    self.connect(now_ms);
                }
            }
            Timer::Stall => {
                if let Conn::Connecting(_) | Conn::Live(_) = self.conn {
                    let silent = now_ms.saturating_sub(self.last_activity_ms);
                    if silent >= self.cfg.stall_timeout_ms {
                        self.log(crate::cat!("stream silent for ", silent, " ms: reconnecting"));
                        self.close_stream();
                        self.schedule_backoff();
                    } else {
                        let delay_ms = self.cfg.stall_timeout_ms - silent;
                        self.out.push(Action::SetTimer { timer: Timer::Stall, delay_ms });
                    }
                }
            }
            Timer::Reconcile => {
                if !matches!(self.conn, Conn::Paused | Conn::Closed) {
                    self.request_reconcile();
                }
            }
            Timer::Outbox => self.outbox.on_timer(&mut self.out),
        }
    }

    /// A (re)connect, a new leader or an unheard spell: what comes live is
    /// held until a history asked for from now on answers.
    fn begin_sync(&mut self) {
        self.sync_gen += 1;
        self.delivery.begin_sync();
    }

    fn request_reconcile(&mut self) {
        if self.reconcile_in_flight {
            self.reconcile_again = true;
            return;
        }
        self.out.push(Action::ClearTimer(Timer::Reconcile));
        self.reconcile_req += 1;
        self.reconcile_in_flight = true;
        self.reconcile_sync_gen = self.sync_gen;
        self.out.push(Action::GetToken { purpose: TokenFor::Reconcile(self.reconcile_req), reject: None });
    }

    fn on_reconcile_done(&mut self, req: u64, status: u16, body: String) {
        if req != self.reconcile_req || !self.reconcile_in_flight {
            return;
        }
        self.reconcile_in_flight = false;
        let early = self.take_early(req);
        if early && !(200..=299).contains(&status) {
            return self.early_history_failed();
        }
        match status {
            200..=299 => match RawMessage::parse_history(&body) {
                Ok(history) => {
                    // The body goes once read: a long history is not held twice.
                    drop(body);
                    self.reconcile_backoff.reset();
                    self.reconcile_auth_failures = 0;
                    // A (re)connect (or a new leader) since this request
                    // was sent: a newer history is coming, and only it can
                    // place what the stream brought meanwhile.
                    let delivered = if self.reconcile_again || self.reconcile_sync_gen != self.sync_gen {
                        self.delivery.on_stale_reconcile(history)
                    } else {
                        self.delivery.on_reconcile(history)
                    };
                    if self.history_loaded {
                        let filled = delivered.iter().filter(|d| d.from_reconcile).count() as u64;
                        if filled > 0 {
                            self.metrics.gaps_filled += filled;
                            self.observe("gap_filled", crate::cat!("{\"messages\":", filled, "}"));
                        }
                    }
                    self.history_loaded = true;
                    self.emit_delivered(delivered);
                    // Whatever an earlier page delivered is in that history.
                    self.resumed_until = None;
                    if self.delivery.take_refetch() {
                        // Live messages were dropped for want of room, or
                        // wait behind a gap past this history: fetch again.
                        self.reconcile_again = true;
                    }
                    self.server_reachable(self.now_ms);
                    if core::mem::take(&mut self.reconcile_again) {
                        self.request_reconcile();
                    }
                }
                Err(_) if early => self.early_history_failed(),
                Err(e) => self.reconcile_failed(ClientError::new(ErrorCode::Protocol, e)),
            },
            401 if self.reconcile_auth_failures + 1 < self.cfg.max_auth_failures => {
                self.reconcile_auth_failures += 1;
                self.reconcile_req += 1;
                self.reconcile_in_flight = true;
                let reject = self.reconcile_token.take();
                self.out.push(Action::GetToken { purpose: TokenFor::Reconcile(self.reconcile_req), reject });
            }
            _ => {
                let e = ClientError::from_http(status, retry_after_seconds(None, &body), &body, "reconcile");
                self.reconcile_failed(e);
            }
        }
    }

    fn reconcile_failed(&mut self, error: ClientError) {
        self.emit_error(error, Stage::Reconcile);
        let released = self.delivery.abandon_sync();
        self.emit_delivered(released);
        self.reconcile_again = false;
        let delay_ms = self.reconcile_backoff.next_delay(&mut self.rng);
        self.out.push(Action::SetTimer { timer: Timer::Reconcile, delay_ms });
    }
}
