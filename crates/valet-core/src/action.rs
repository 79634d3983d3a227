//! What the convo machine and its outbox ask the glue to do ([`Action`]),
//! the timers they set ([`Timer`]) and what they ask tokens for
//! ([`TokenFor`]): below both, so that neither imports the other.

use crate::error::ClientError;
use crate::events::EventName;
#[allow(unused_imports)]
use crate::prelude::*;

/// The machine's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Time to reconnect.
    Reconnect,
    /// Time to check the stream for silence.
    Stall,
    /// Time to retry a failed reconcile.
    Reconcile,
    /// Time to retry the oldest queued send.
    Outbox,
}

/// What a requested token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFor {
    /// The opening of a session: a signed-out user is refused before the
    /// convo starts (see [`crate::session`]).
    Open,
    /// Opening stream attempt N.
    Stream(u64),
    /// Reconcile request N.
    Reconcile(u64),
    /// Send N (see [`crate::convo::Input::Send`]).
    Send(u64),
}

/// Actions, for the glue to carry out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Get a token (from cache or `fetchJwt`), then feed `Input::Token` or
    /// `Input::TokenFailed` with the same purpose. With `reject`, that token
    /// was refused by the server and must not be returned.
    GetToken {
        /// What for.
        purpose: TokenFor,
        /// A token the server refused.
        reject: Option<String>,
    },
    /// Open the event stream.
    OpenStream {
        /// The attempt (tag every stream input with it).
        attempt: u64,
        /// Bearer token.
        token: String,
        /// `Last-Event-ID` header to send, if any.
        last_event_id: Option<String>,
    },
    /// Abort the stream of this attempt.
    CloseStream {
        /// The attempt.
        attempt: u64,
    },
    /// `GET /api/v2/agent_convos/{convo}` (with `?after=` when given).
    Reconcile {
        /// The request (tag the answer with it).
        req: u64,
        /// Bearer token.
        token: String,
        /// EXTENSION: only messages after this id.
        after: Option<String>,
    },
    /// (Re)arm a timer to fire after `delay_ms`, replacing any pending one.
    SetTimer {
        /// Which.
        timer: Timer,
        /// Delay from now.
        delay_ms: u64,
    },
    /// Cancel a timer.
    ClearTimer(Timer),
    /// Call the handlers of `event` with `JSON.parse(payload)`.
    Emit {
        /// The event.
        event: EventName,
        /// The payload as JSON.
        payload: String,
    },
    /// Call the handlers of `event` once per element of the JSON array, in
    /// order (a burst of messages crosses to JS as one string).
    EmitMany {
        /// The event.
        event: EventName,
        /// `[payload, payload, ...]`.
        json_array: String,
        /// How many payloads.
        count: usize,
    },
    /// A debug log line (never contains a token).
    Log(String),
    /// While relaying: the frames received in one input (one chunk of the
    /// stream), to post to the other tabs in one message, as received (and
    /// event `"status"` with this tab's status payload). SSE text, see
    /// [`crate::sse::encode`].
    Relay {
        /// The frames, as SSE events.
        sse: String,
    },
    /// Upload send `id`'s files (`POST .../upload_file`), then feed
    /// [`Input::Posted`](crate::convo::Input::Posted).
    Upload {
        /// The send.
        id: u64,
        /// Bearer token.
        token: String,
    },
    /// `POST .../stream_message` with this body, then feed [`Input::Posted`](crate::convo::Input::Posted).
    Post {
        /// The send.
        id: u64,
        /// Bearer token.
        token: String,
        /// The JSON body (text, draft id, idempotency key).
        json: String,
    },
    /// Send `id` is settled: resolve or reject its promise.
    SendSettled {
        /// The send.
        id: u64,
        /// How: with `upload_only`, the draft's `message_id`.
        result: Result<Option<String>, ClientError>,
    },
    /// With `observe`: something an observability hook may want
    /// (`kind`, and a JSON payload).
    Observe {
        /// What happened.
        kind: &'static str,
        /// Details, as JSON.
        payload: String,
    },
    /// Remember this [`ResumePoint`](crate::convo::ResumePoint) (JSON) for the next page of this tab.
    Persist(String),
    /// Read the outbox an earlier page stored under `scope` (an identity's
    /// hash: the storage key names the API, agent and convo too), then feed
    /// `Input::OutboxLoaded`.
    LoadOutbox {
        /// The identity's hash.
        scope: String,
    },
    /// Store the outbox under `scope` (`None`: nothing is left to send, so
    /// remove it), and `scope` as the one this tab stored under last (the
    /// next page's `ConvoConfig::stored_outbox`); feed
    /// `Input::OutboxNotSaved` if that fails.
    SaveOutbox {
        /// The identity's hash.
        scope: String,
        /// What to store ([`Outbox::to_json`](crate::outbox::Outbox::to_json)).
        json: Option<String>,
    },
    /// Read the local history kept under `scope` (an identity's hash; the
    /// storage key names the API, agent and convo too), then feed
    /// `Input::CacheLoaded` with its frames in row order.
    LoadCache {
        /// The identity's hash.
        scope: String,
    },
    /// Write `frames` as the local history's rows from row `at` on (rows
    /// already there are replaced), `bytes` being the size of all its rows
    /// now (for the eviction of whole convos); feed `Input::CacheNotSaved`
    /// if that fails.
    CacheAppend {
        /// The identity's hash.
        scope: String,
        /// The first row written.
        at: usize,
        /// `message` frames, as delivered.
        frames: Vec<String>,
        /// The bytes of every row kept for this convo.
        bytes: usize,
    },
    /// Remove the local history kept under `scope` (it was unreadable).
    DropCache {
        /// The identity's hash.
        scope: String,
    },
    /// Keep send `id`'s files (the glue holds them) under its `key`, for a
    /// later page: `persist: "local"` (see [`crate::outbox`]).
    KeepFiles {
        /// The send.
        id: u64,
        /// Its idempotency key.
        key: String,
    },
    /// The files kept under `key` are not needed any more.
    DropFiles {
        /// The send's idempotency key.
        key: String,
    },
    /// Restored send `id` had files: find those kept under `key`, hold them
    /// for it, and feed `Input::FilesLoaded`.
    LoadFiles {
        /// The restored send.
        id: u64,
        /// Its idempotency key.
        key: String,
    },
    /// Sent once: how the first connection went. `Ok` when the stream is
    /// live, paused, or retrying after a transient failure; `Err` when the
    /// convo stopped on an error retrying will not fix (404, 403, 401s).
    /// `openConvo` resolves or rejects with it.
    Opened(Result<(), ClientError>),
}
