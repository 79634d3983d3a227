//! The payloads the SDK hands to `convo.on(...)` handlers.
//!
//! Decisions:
//! - A payload is built once in Rust and crosses to JS as one JSON string
//!   (then one `JSON.parse`): one boundary crossing per event, not one per
//!   field, which is what makes delivery fast.
//! - Server frames keep their wire shape (`type` and snake_case fields), as
//!   the Valet JS SDK hands them over; `message` adds `from_reconcile`, and
//!   carries the server's message object as sent (see `convo.rs`).

#[allow(unused_imports)]
use crate::prelude::*;
use serde::Serialize;

use crate::json::Obj;

use crate::error::ClientError;

/// The events a convo emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    /// A message, once, in order.
    Message,
    /// Typing indicator.
    Typing,
    /// Convo state change.
    ConvoState,
    /// The agent's turn ended.
    TurnDone,
    /// The stream is (re)connected.
    Ready,
    /// The server closed the stream.
    Closed,
    /// An SDK error or a server `error` frame.
    Error,
    /// Connection status changed (EXTENSION to the JS SDK's events).
    Status,
    /// This tab's role changed: `leader` holds the stream, `follower` gets
    /// events from it (EXTENSION).
    Role,
    /// A piece of a reply the agent is still writing (EXTENSION: a
    /// `message_delta` frame, from a server that streams replies).
    Delta,
    /// A send an earlier page of this tab queued, queued again here, and
    /// how it ends (EXTENSION: the durable outbox).
    RestoredSend,
}

impl EventName {
    /// Every event, for validation of `on(name)`.
    pub const ALL: [EventName; 11] = [
        EventName::Message,
        EventName::Typing,
        EventName::ConvoState,
        EventName::TurnDone,
        EventName::Ready,
        EventName::Closed,
        EventName::Error,
        EventName::Status,
        EventName::Role,
        EventName::Delta,
        EventName::RestoredSend,
    ];

    /// Every event's name, for error messages: [`EventName::ALL`], joined
    /// (a unit test keeps the two together).
    pub const LIST: &'static str = "message, typing, convo_state, turn_done, ready, closed, error, status, role, delta, restored_send";

    /// The name handlers subscribe with.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Message => "message",
            EventName::Typing => "typing",
            EventName::ConvoState => "convo_state",
            EventName::TurnDone => "turn_done",
            EventName::Ready => "ready",
            EventName::Closed => "closed",
            EventName::Error => "error",
            EventName::Status => "status",
            EventName::Role => "role",
            EventName::Delta => "delta",
            EventName::RestoredSend => "restored_send",
        }
    }

    /// Parses a subscription name.
    pub fn parse(s: &str) -> Option<EventName> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Where an error happened, as the Valet JS SDK names it: `stream` (opening
/// or reading the stream), `fetch` (a REST call: the reconcile, a send) or
/// `auth` (getting or using a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Getting or using a token.
    Auth,
    /// Opening or reading the stream.
    Stream,
    /// A REST call (the reconcile, a send).
    Fetch,
}

/// Where an error happened, finer than [`Phase`] (EXTENSION).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Getting or using a token.
    Auth,
    /// Opening the stream.
    Connect,
    /// Reading the stream.
    Stream,
    /// The reconcile fetch.
    Reconcile,
    /// A send made with `resolveWhenQueued` that finally failed.
    Send,
}

impl Phase {
    /// The phase's name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Stream => "stream",
            Phase::Fetch => "fetch",
        }
    }
}

impl Stage {
    /// The stage's name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Auth => "auth",
            Stage::Connect => "connect",
            Stage::Stream => "stream",
            Stage::Reconcile => "reconcile",
            Stage::Send => "send",
        }
    }

    /// The JS SDK's coarser phase.
    pub fn phase(self) -> Phase {
        match self {
            Stage::Auth => Phase::Auth,
            Stage::Connect | Stage::Stream => Phase::Stream,
            Stage::Reconcile | Stage::Send => Phase::Fetch,
        }
    }
}

/// `error` payload of an SDK failure: `{ error, phase, stage }` (in JS,
/// `error` is a `ValetError`). A server `error` frame reaches `error`
/// handlers as the frame itself (`{ type: "error", convo_id, reason, at }`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ConvoErrorEvent {
    /// The error.
    #[cfg_attr(feature = "tsify", tsify(type = "ValetError"))]
    pub error: ClientError,
    /// Where, as the JS SDK names it.
    pub phase: Phase,
    /// Where, finer (EXTENSION).
    pub stage: Stage,
}

impl ConvoErrorEvent {
    /// The payload for an error at `stage`.
    pub fn new(error: ClientError, stage: Stage) -> Self {
        ConvoErrorEvent { error, phase: stage.phase(), stage }
    }

    /// The payload's JSON (the same as serde's, without its code in the wasm).
    pub fn to_json(&self) -> String {
        Obj::new().raw("error", &self.error.to_json()).str("phase", self.phase.as_str()).str("stage", self.stage.as_str()).finish()
    }
}

/// Connection status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// First connection in progress.
    Connecting,
    /// The stream is live (after `ready`).
    Connected,
    /// Waiting to reconnect (see `retry_in_ms`) or reconnecting.
    Reconnecting,
    /// Paused (`pause()` or hidden page).
    Paused,
    /// Stopped on an error that retrying will not fix (see the `error` event);
    /// `resume()` tries again.
    Stopped,
    /// `close()` was called.
    Closed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 6] =
        [Status::Connecting, Status::Connected, Status::Reconnecting, Status::Paused, Status::Stopped, Status::Closed];

    /// The name in payloads and `convo.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Reconnecting => "reconnecting",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Closed => "closed",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// `role` payload.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ConvoRoleEvent {
    /// `"leader"` or `"follower"`.
    #[cfg_attr(feature = "tsify", tsify(type = "\"leader\" | \"follower\""))]
    pub role: &'static str,
    /// The leader generation in force.
    pub generation: u64,
}

/// `status` payload.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ConvoStatusEvent {
    /// The status.
    pub status: Status,
    /// Connection attempts so far.
    pub attempt: u64,
    /// With `reconnecting`: the delay before the next attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

impl ConvoRoleEvent {
    /// The payload's JSON (the same as serde's, without its code in the wasm).
    pub fn to_json(&self) -> String {
        Obj::new().str("role", self.role).u64("generation", self.generation).finish()
    }
}

impl ConvoStatusEvent {
    /// The payload's JSON (the same as serde's, without its code in the wasm).
    pub fn to_json(&self) -> String {
        Obj::new().str("status", self.status.as_str()).u64("attempt", self.attempt).opt_u64("retry_in_ms", self.retry_in_ms).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_every_event() {
        assert_eq!(EventName::LIST, EventName::ALL.map(EventName::as_str).join(", "));
        for e in EventName::ALL {
            assert_eq!(EventName::parse(e.as_str()), Some(e));
        }
    }

    #[test]
    fn hand_written_payloads_are_what_serde_writes() {
        for retry_in_ms in [None, Some(1500)] {
            let e = ConvoStatusEvent { status: Status::Reconnecting, attempt: 3, retry_in_ms };
            assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
        }
        let r = ConvoRoleEvent { role: "follower", generation: 1_700_000_000_000 };
        assert_eq!(r.to_json(), serde_json::to_string(&r).unwrap());
    }

    #[test]
    fn status_names_match_their_serde_names() {
        for st in Status::ALL {
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
            assert_eq!(Status::parse(st.as_str()), Some(st));
        }
        assert_eq!(Status::parse("nope"), None);
    }
}
