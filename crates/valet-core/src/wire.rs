//! The Valet v2 wire shapes: REST bodies and SSE frames, as serde types.
//!
//! Decisions:
//! - One definition serves the SDK and the reference server, so the two can
//!   not drift apart. Field names are the wire's (snake_case).
//! - The generated typings are the contract's, exactly (the Valet JS SDK's
//!   exported types): a field the contract always sends is required here
//!   too, and `Unknown` enum values are not in them.
//! - Reading is lenient where it is cheap: unknown fields are ignored, an
//!   unknown enum value decodes to `Unknown`. The SDK itself decodes only
//!   what it decides on (see [`read_frame`], [`RawMessage`]); frames
//!   reach handlers as the server sent them. Writing is exact.
//! - Our extensions (`seq` on messages) are optional and omitted when absent,
//!   so a peer that does not know them sees the contract byte for byte.

#[allow(unused_imports)]
use crate::prelude::*;
use serde::{Deserialize, Serialize};

use crate::json::{self, Val};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Author {
    /// The end user of the embedding app.
    Appuser,
    /// The AI agent.
    AiAgent,
    /// A human agent who took the convo over.
    HumanAgent,
    /// A value this version does not know (read only: never written, and
    /// not in the typings, which are the contract's).
    #[serde(other, skip_serializing)]
    Unknown,
}

/// A participant shown next to a message (agents, humans).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Participant {
    /// Participant id.
    pub id: String,
    /// Participant kind: `"ai_agent"`, `"appuser"` or `"human_agent"`.
    #[cfg_attr(feature = "tsify", tsify(type = "\"ai_agent\" | \"appuser\" | \"human_agent\""))]
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub photo_url: String,
    /// Initial for an avatar placeholder.
    pub initial: String,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct MessageFile {
    /// Where to download it.
    pub url: String,
    /// Original file name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub byte_size: u64,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Message {
    /// Server-assigned id; the dedupe key.
    pub id: String,
    /// Text content.
    pub content: String,
    /// Author kind.
    pub from: Author,
    /// The turn this message belongs to.
    pub turn_number: u64,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// Who wrote it, when known.
    pub participant: Option<Participant>,
    /// Attached files.
    pub files: Vec<MessageFile>,
    /// EXTENSION: the message's position in its convo (1, 2, 3, ...). Absent
    /// from servers that do not implement it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// A message kept as the server's JSON text, with the two fields delivery
/// needs read out. Handing the text through (instead of decoding every field
/// and encoding it again) is what keeps delivery fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The message id.
    pub id: String,
    /// EXTENSION: its position in the convo.
    pub seq: Option<u64>,
    /// The JSON text: see [`RawMessage::framed`].
    pub json: Box<str>,
    /// `true`: `json` is a whole `message` frame (`{"type":"message",…}`),
    /// ready to hand over. `false`: `json` is the message object alone and
    /// needs the frame's envelope around it.
    pub framed: bool,
}

impl RawMessage {
    /// A message needs a non-empty string `id`; `seq` (an extension) is
    /// absent, `null` or a whole number.
    fn checked(id: &Val, seq: &Val, json: Box<str>, framed: bool) -> Result<RawMessage, String> {
        let Some(id) = id.str().filter(|i| !i.is_empty()) else {
            return Err("a message without an id".into());
        };
        let seq = match seq {
            s if s.is_absent() => None,
            s => Some(s.u64().ok_or("a message whose `seq` is not a whole number")?),
        };
        Ok(RawMessage { id: id.into(), seq, json, framed })
    }

    /// The messages of a `GET /api/v2/agent_convos/{convo}` body.
    pub fn parse_history(body: &str) -> Result<Vec<RawMessage>, String> {
        let messages = json::reader().elements(body, "messages", &["id", "seq"]).ok_or("malformed history: no `messages` array")?;
        let mut out = Vec::with_capacity(messages.len());
        for (m, head) in messages {
            let [id, seq]: [Val; 2] = head.try_into().map_err(|_| "malformed message")?;
            out.push(Self::checked(&id, &seq, m.into_boxed_str(), false)?);
        }
        Ok(out)
    }
}

/// Convo states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum ConvoState {
    /// Open, the AI agent answers.
    Open,
    /// Handed to a human.
    Escalated,
    /// Resolved by an agent.
    Resolved,
    /// Resolved automatically.
    AutoResolved,
    /// Assumed resolved after inactivity.
    AssumedResolved,
    /// Locked for abusive language.
    RageLocked,
    /// Locked for an attempted prompt attack.
    AttemptedHack,
    /// Waiting for the user's feedback.
    PendingFeedback,
    /// A value this version does not know (read only: never written, and
    /// not in the typings, which are the contract's).
    #[serde(other, skip_serializing)]
    Unknown,
}

impl ConvoState {
    /// Every known state, in contract order.
    pub const ALL: [ConvoState; 8] = [
        ConvoState::Open,
        ConvoState::Escalated,
        ConvoState::Resolved,
        ConvoState::AutoResolved,
        ConvoState::AssumedResolved,
        ConvoState::RageLocked,
        ConvoState::AttemptedHack,
        ConvoState::PendingFeedback,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConvoState::Open => "open",
            ConvoState::Escalated => "escalated",
            ConvoState::Resolved => "resolved",
            ConvoState::AutoResolved => "auto_resolved",
            ConvoState::AssumedResolved => "assumed_resolved",
            ConvoState::RageLocked => "rage_locked",
            ConvoState::AttemptedHack => "attempted_hack",
            ConvoState::PendingFeedback => "pending_feedback",
            ConvoState::Unknown => "unknown",
        }
    }

    /// Parses a wire name; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether a convo in this state no longer takes turns with the agent.
    pub fn is_closed(self) -> bool {
        !matches!(self, ConvoState::Open | ConvoState::Escalated | ConvoState::PendingFeedback)
    }
}

/// Whether the user is locked out of the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LockoutSnapshot {
    /// Locked out now.
    pub locked_out: bool,
    /// When the lockout ends (ISO-8601), if it does.
    pub expires_at: Option<String>,
    /// A permanent lockout.
    pub permanent: bool,
    /// `"permanent" | "rage" | "hack"`.
    #[cfg_attr(feature = "tsify", tsify(type = "\"permanent\" | \"rage\" | \"hack\" | null"))]
    pub reason: Option<String>,
    /// Text to show the user.
    pub user_message: Option<String>,
}

/// What may be attached to messages in a convo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct AttachmentPolicy {
    /// Files per message (0: attachments disabled).
    pub max_files_per_message: u32,
    /// Files per convo.
    pub max_files_per_convo: u32,
    /// Largest file, in bytes.
    pub max_file_size_bytes: u64,
    /// Accepted MIME types.
    pub allowed_mime_types: Vec<String>,
}

/// `POST /api/v2/sessions` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResponse {
    /// The new convo.
    pub convo_id: String,
    /// Attachment rules (default when absent).
    #[serde(default)]
    pub attachment_policy: Option<AttachmentPolicy>,
    /// Lockout status (default when absent).
    #[serde(default)]
    pub lockout: Option<LockoutSnapshot>,
}

/// One entry of `GET /api/v2/agent_convos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ConvoSummary {
    /// Convo id.
    pub id: String,
    /// Current state.
    pub state: ConvoState,
    /// Whether it is closed.
    pub closed: bool,
    /// Time of the newest message, if any.
    pub last_message_at: Option<String>,
    /// Creation time.
    pub created_at: String,
}

/// `GET /api/v2/agent_convos` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvoList {
    /// The appuser's convos with this agent, newest first.
    pub agent_convos: Vec<ConvoSummary>,
}

/// `GET /api/v2/agent_convos/{convo}` response (the reconcile fetch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvoHistory {
    /// Messages in convo order.
    pub messages: Vec<Message>,
}

/// `POST .../stream_message` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// The user's text.
    pub text: String,
    /// A draft created by `upload_file`, finalized by this send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// EXTENSION: a retried send with the same key is stored once. In the
    /// body (not a header) so that a strict CORS policy can not refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl SendRequest {
    /// The body's JSON (the same as serde's, without its code in the wasm).
    pub fn to_json(&self) -> String {
        crate::json::Obj::new()
            .str("text", &self.text)
            .opt_str("message_id", self.message_id.as_deref())
            .opt_str("idempotency_key", self.idempotency_key.as_deref())
            .finish()
    }
}

/// EXTENSION: `POST .../stream_ticket` response, for transports that can not
/// send an `Authorization` header (`EventSource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTicket {
    /// Single-use ticket for `GET .../events?ticket=`.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in_seconds: u64,
}

/// `POST .../upload_file` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// The draft message holding the files.
    pub message_id: String,
}

/// The body of a `429` from `stream_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitedBody {
    /// Always `"rate_limited"`.
    pub status: String,
    /// The convo.
    pub convo_id: String,
    /// The convo's state.
    pub state: ConvoState,
    /// Seconds to wait; wins over the `Retry-After` header.
    pub retry_after_seconds: u64,
}

/// The JSON error body of the reference server (and a shape the SDK reads
/// from any server when present): a stable `code` and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `"token_expired"`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `typing.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum TypingKind {
    /// The agent is thinking.
    Thinking,
    /// The agent is typing.
    Typing,
    /// A value this version does not know (read only: never written, and
    /// not in the typings, which are the contract's).
    #[serde(other, skip_serializing)]
    Unknown,
}

/// `typing.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum TypingState {
    /// Indicator on.
    Start,
    /// Indicator off.
    Stop,
    /// A value this version does not know (read only: never written, and
    /// not in the typings, which are the contract's).
    #[serde(other, skip_serializing)]
    Unknown,
}

/// `turn_done.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum TurnDoneReason {
    /// The agent answered.
    Ok,
    /// The message was blocked.
    Blocked,
    /// Too many messages.
    RateLimited,
    /// The convo is closed.
    Closed,
    /// The agent is unavailable.
    Unavailable,
    /// A transient failure; retry later.
    TemporaryFailure,
    /// A value this version does not know (read only: never written, and
    /// not in the typings, which are the contract's).
    #[serde(other, skip_serializing)]
    Unknown,
}

/// `closed.reason`: why the server is ending the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum ClosedReason {
    /// The stream reached its maximum age.
    ServerCap,
    /// The server is shutting down.
    Shutdown,
    /// The token that opened the stream expires soon.
    AuthExpiring,
    /// The stream stalled (the consumer fell behind).
    Stalled,
    /// A value this version does not know (read only: never written, and
    /// not in the typings, which are the contract's).
    #[serde(other, skip_serializing)]
    Unknown,
}

impl ClosedReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedReason::ServerCap => "server_cap",
            ClosedReason::Shutdown => "shutdown",
            ClosedReason::AuthExpiring => "auth_expiring",
            ClosedReason::Stalled => "stalled",
            ClosedReason::Unknown => "unknown",
        }
    }
}

/// One SSE frame of `GET .../events`. On the wire the frame's `event:` name
/// equals `type`; a frame whose JSON lacks `type` takes the event name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // frames are short-lived values; boxing buys nothing
pub enum ServerFrame {
    /// The stream is open.
    Ready {
        /// Server-side id of this connection.
        conn_id: String,
    },
    /// A new message in the convo.
    Message {
        /// Always `"create"` in v2.
        #[cfg_attr(feature = "tsify", tsify(type = "\"create\""))]
        action: String,
        /// The agent.
        agent_id: String,
        /// The convo.
        convo_id: String,
        /// The message.
        message: Message,
    },
    /// A typing indicator change.
    Typing {
        /// Thinking or typing.
        kind: TypingKind,
        /// Start or stop.
        state: TypingState,
        /// The label to show (empty when the server sends none).
        label: String,
        /// The convo.
        convo_id: String,
    },
    /// The convo changed state.
    ConvoState {
        /// The agent.
        agent_id: String,
        /// The convo.
        convo_id: String,
        /// New state.
        state: ConvoState,
        /// Previous state.
        #[cfg_attr(feature = "tsify", tsify(type = "ConvoState"))]
        prev_state: Option<ConvoState>,
        /// Text for the user once closed; null while open.
        closed_user_message: Option<String>,
    },
    /// The agent's turn ended.
    TurnDone {
        /// The convo.
        convo_id: String,
        /// Why it ended.
        reason: TurnDoneReason,
        /// When: Unix epoch milliseconds (a number; kept as sent).
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        at: serde_json::Value,
        /// With `rate_limited`: seconds to wait.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
    /// A server-side failure report (not an SDK error).
    Error {
        /// The convo.
        convo_id: String,
        /// Always `"temporary_failure"` in v2.
        #[cfg_attr(feature = "tsify", tsify(type = "\"temporary_failure\""))]
        reason: String,
        /// When: Unix epoch milliseconds (a number; kept as sent).
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        at: serde_json::Value,
    },
    /// Heartbeat.
    Ping {},
    /// The server ends the stream after this frame.
    Closed {
        /// Why.
        reason: ClosedReason,
    },
}

impl ServerFrame {
    /// The SSE event name for this frame.
    pub fn event_name(&self) -> &'static str {
        match self {
            ServerFrame::Ready { .. } => "ready",
            ServerFrame::Message { .. } => "message",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::ConvoState { .. } => "convo_state",
            ServerFrame::TurnDone { .. } => "turn_done",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Ping {} => "ping",
            ServerFrame::Closed { .. } => "closed",
        }
    }
}

/// EXTENSION: a piece of a reply the agent is still writing, sent on the
/// convo stream as a `message_delta` frame before the `message` that
/// completes it (a server that does not stream never sends one). The
/// pieces in `index` order make the message's text; the message has id
/// `message_id`. Not stored: a reconcile brings only the completed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct MessageDeltaEvent {
    /// Always `"message_delta"`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "tsify", tsify(type = "\"message_delta\""))]
    pub kind: String,
    /// The agent.
    pub agent_id: String,
    /// The convo.
    pub convo_id: String,
    /// The id the completed message will have.
    pub message_id: String,
    /// This piece's place: 0, 1, 2…
    pub index: u64,
    /// The text to append.
    pub delta: String,
}

/// The paths a frame is read at, for [`read_frame`]: its type, its
/// message and the message's id and `seq` (a `message` frame), `closed`'s
/// reason, and what a `message` frame must have to reach handlers typed as
/// `Message`: its convo, the message's author and time.
pub const FRAME_PATHS: [&str; 8] =
    ["type", "message", "message.id", "message.seq", "reason", "convo_id", "message.from", "message.created_at"];

/// The values of a frame at [`FRAME_PATHS`].
pub type FrameValues = [Val; 8];

/// The frame types this version understands.
pub const KNOWN_FRAME_TYPES: [&str; 8] = ["ready", "message", "typing", "convo_state", "turn_done", "error", "ping", "closed"];

/// Why an SSE event could not become a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The event name.
    pub event: String,
    /// What was wrong.
    pub detail: String,
}

impl FrameError {
    /// What a caller is told: "malformed `{event}` frame: {detail}".
    pub fn message(&self) -> String {
        crate::cat!("malformed `", self.event, "` frame: ", self.detail)
    }
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message())
    }
}

impl core::error::Error for FrameError {}

/// Decodes one SSE event into a frame. `Ok(None)` for a frame type this
/// version does not know (skipped, per the contract); `Err` for JSON that is
/// not a valid frame of a known type.
pub fn decode_frame(event: &str, data: &str) -> Result<Option<ServerFrame>, FrameError> {
    let err = |detail: String| FrameError { event: event.to_owned(), detail };
    // Read only `type` first (other fields skipped unparsed); then decode the
    // frame once, straight from the text: no intermediate `Value`.
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type", default)]
        ty: Option<String>,
    }
    let head: TypeOnly = serde_json::from_str(data).map_err(|e| err(e.to_string()))?;
    let has_type = head.ty.is_some();
    let ty = head.ty.unwrap_or_else(|| event.to_owned());
    if !KNOWN_FRAME_TYPES.contains(&ty.as_str()) {
        return Ok(None);
    }
    let frame = if has_type {
        serde_json::from_str::<ServerFrame>(data)
    } else {
        // `{...}` without `type`: splice the event name in as the type.
        // `&str` patterns, not `char`s: no UTF-8 encoder in the wasm (see `sse`).
        let body = data.trim_ascii_start().strip_prefix("{").unwrap_or("}");
        let sep = if body.trim_ascii_start().starts_with("}") { "" } else { "," };
        serde_json::from_str::<ServerFrame>(&crate::cat!("{\"type\":", crate::json::string(&ty), sep, body))
    };
    frame.map(Some).map_err(|e| err(e.to_string()))
}

/// The kinds of frame the SDK tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `ready`.
    Ready,
    /// `message`.
    Message,
    /// `typing`.
    Typing,
    /// `convo_state`.
    ConvoState,
    /// `turn_done`.
    TurnDone,
    /// `error` (a server frame).
    Error,
    /// `ping`.
    Ping,
    /// `closed`.
    Closed,
    /// `message_delta` (EXTENSION: [`MessageDeltaEvent`]).
    MessageDelta,
}

/// The event names a browser's `EventSource` is told to listen to (it
/// drops the others): every frame type the SDK reads, the contract's and
/// the `message_delta` extension, comma-separated.
pub const STREAM_EVENT_NAMES: &str = "ready,message,typing,convo_state,turn_done,error,ping,closed,message_delta";

impl FrameKind {
    fn parse(s: &str) -> Option<FrameKind> {
        Some(match s {
            "ready" => FrameKind::Ready,
            "message" => FrameKind::Message,
            "typing" => FrameKind::Typing,
            "convo_state" => FrameKind::ConvoState,
            "turn_done" => FrameKind::TurnDone,
            "error" => FrameKind::Error,
            "ping" => FrameKind::Ping,
            "closed" => FrameKind::Closed,
            "message_delta" => FrameKind::MessageDelta,
            _ => return None,
        })
    }
}

/// What the SDK needs of a frame to decide: its kind and, for `closed`,
/// the reason. The frame's text goes to handlers as the server sent it
/// (with `"type"` spliced in when the JSON has none): it is never decoded
/// into a typed value and encoded again.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameHead {
    /// The frame's type (its JSON `type`, else the event name).
    pub kind: FrameKind,
    /// `closed`'s reason.
    pub reason: Option<ClosedReason>,
    /// The frame's JSON, with `type`.
    pub text: String,
}

/// A frame, read for what the SDK decides on.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A `message` frame: its message, with the frame's text.
    Message(RawMessage),
    /// Any other frame.
    Other(FrameHead),
}

/// Reads a frame: the `data` of an SSE event named `event`, with its
/// values at [`FRAME_PATHS`] (`None`: not JSON), which the caller reads for
/// a whole chunk of frames at once (one call to the JSON reader). Other
/// fields are never parsed. `Ok(None)` for a frame type this version does
/// not know (skipped, per the contract); `Err` for data that is not a
/// frame, and for a `message` frame without a valid message: one of convo
/// `convo_id`, with an id, a `seq` that is absent or a whole number, and
/// `from` and `created_at` strings (what handlers typed as `Message` read).
pub fn read_frame(event: &str, data: String, values: Option<FrameValues>, convo_id: &str) -> Result<Option<Frame>, FrameError> {
    let err = |event: &str, detail: &str| FrameError { event: event.to_owned(), detail: detail.into() };
    if !data.trim_ascii_start().starts_with("{") {
        return Err(err(event, "a frame's data must be a JSON object"));
    }
    // By reference: an early return drops the one array (see `election::parse_envelope`).
    let values = values.ok_or_else(|| err(event, "not JSON"))?;
    let [ty, message, id, seq, reason, convo, from, created_at] = &values;
    let has_type = match ty {
        Val::Str(_) => true,
        t if t.is_absent() => false,
        _ => return Err(err(event, "`type` is not a string")),
    };
    let Some(kind) = FrameKind::parse(ty.str().unwrap_or(event)) else { return Ok(None) };
    let text = if has_type {
        data
    } else {
        // `{...}` without `type`: the event name is the type.
        let body = data.trim_ascii_start().strip_prefix("{").unwrap_or("}");
        let sep = if body.trim_ascii_start().starts_with("}") { "" } else { "," };
        crate::cat!("{\"type\":\"", event, "\"", sep, body)
    };
    if kind == FrameKind::Message {
        if *message != Val::Other {
            return Err(err("message", "no `message`"));
        }
        match convo.str() {
            Some(c) if c == convo_id => {}
            Some(_) => return Err(err("message", "a message of another convo")),
            None => return Err(err("message", "no `convo_id`")),
        }
        if from.str().is_none() {
            return Err(err("message", "a message without `from`"));
        }
        if created_at.str().is_none() {
            return Err(err("message", "a message without `created_at`"));
        }
        return RawMessage::checked(id, seq, text.into_boxed_str(), true).map(|m| Some(Frame::Message(m))).map_err(|d| err("message", &d));
    }
    let reason = match kind {
        FrameKind::Closed => Some(match reason.str() {
            Some("server_cap") => ClosedReason::ServerCap,
            Some("shutdown") => ClosedReason::Shutdown,
            Some("auth_expiring") => ClosedReason::AuthExpiring,
            Some("stalled") => ClosedReason::Stalled,
            _ => ClosedReason::Unknown,
        }),
        _ => None,
    };
    Ok(Some(Frame::Other(FrameHead { kind, reason, text })))
}

/// [`read_frame`] of each event of a chunk of convo `convo_id`, `(event,
/// data)`, its values read in one call to the JSON reader.
pub fn read_frames<'a>(events: impl IntoIterator<Item = (&'a str, String)>, convo_id: &str) -> Vec<Result<Option<Frame>, FrameError>> {
    let events: Vec<(&str, String)> = events.into_iter().collect();
    let texts: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    let values = json::read_each_n(&texts, FRAME_PATHS);
    events.into_iter().zip(values).map(|((event, data), values)| read_frame(event, data, values, convo_id)).collect()
}

/// Encodes a frame as the JSON `data:` of its SSE event (with `type`).
pub fn encode_frame(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).expect("frames always serialize")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_source_listens_to_every_frame_type_the_sdk_reads() {
        let names: Vec<&str> = STREAM_EVENT_NAMES.split(',').collect();
        assert!(names.iter().all(|n| FrameKind::parse(n).is_some()), "{names:?}");
        assert!(KNOWN_FRAME_TYPES.iter().all(|t| names.contains(t)));
        assert!(names.contains(&"message_delta"));
    }

    use super::*;

    fn msg() -> Message {
        Message {
            id: "m1".into(),
            content: "hi".into(),
            from: Author::AiAgent,
            turn_number: 1,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            participant: None,
            files: vec![],
            seq: None,
        }
    }

    #[test]
    fn message_frame_encodes_contract_fields_and_omits_absent_seq() {
        let f = ServerFrame::Message { action: "create".into(), agent_id: "a".into(), convo_id: "c".into(), message: msg() };
        let v: serde_json::Value = serde_json::from_str(&encode_frame(&f)).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["message"]["from"], "ai_agent");
        assert!(v["message"].get("seq").is_none());
        assert_eq!(v["message"]["participant"], serde_json::Value::Null);
        assert_eq!(decode_frame("message", &encode_frame(&f)).unwrap(), Some(f));
    }

    /// `read_frames` of one event of convo `c`: the head or why not.
    fn read(event: &str, data: &str) -> Result<Option<Frame>, String> {
        read_frames([(event, data.to_owned())], "c").pop().unwrap().map_err(|e| e.message())
    }

    #[test]
    fn frames_are_read_for_what_the_sdk_decides_on_and_handed_over_as_sent() {
        let m = |id: &str, seq, json: &str| Ok(Some(Frame::Message(RawMessage { id: id.into(), seq, json: json.into(), framed: true })));
        let other = |kind, reason, text: &str| Ok(Some(Frame::Other(FrameHead { kind, reason, text: text.into() })));
        let frame = r#"{"type":"message","convo_id":"c","message":{"id":"a","seq":3,"content":"x","from":"ai_agent","created_at":"t"},"extra":1}"#;
        assert_eq!(read("message", frame), m("a", Some(3), frame));
        // Without `type`: the event name is spliced in; `seq` is optional.
        assert_eq!(
            read("message", r#" {"convo_id":"c","message":{"id":"b","from":"appuser","created_at":"t"}}"#),
            m("b", None, r#"{"type":"message","convo_id":"c","message":{"id":"b","from":"appuser","created_at":"t"}}"#)
        );
        // A message frame under another event name is a message.
        let frame = r#"{"type":"message","convo_id":"c","message":{"id":"c","seq":null,"from":"appuser","created_at":"t"}}"#;
        assert_eq!(read("typing", frame), m("c", None, frame));
        assert_eq!(read("typing", "{}"), other(FrameKind::Typing, None, r#"{"type":"typing"}"#));
        assert_eq!(
            read("x", r#"{"type":"closed","reason":"stalled"}"#),
            other(FrameKind::Closed, Some(ClosedReason::Stalled), r#"{"type":"closed","reason":"stalled"}"#)
        );
        assert_eq!(
            read("closed", r#"{"reason":"later"}"#),
            other(FrameKind::Closed, Some(ClosedReason::Unknown), r#"{"type":"closed","reason":"later"}"#)
        );
        assert_eq!(read("message", r#"{"type":"presence"}"#), Ok(None));
        assert_eq!(read("presence", "{}"), Ok(None));
        for (event, data, why) in [
            ("message", "nope", "malformed `message` frame: a frame's data must be a JSON object"),
            ("message", "[1]", "malformed `message` frame: a frame's data must be a JSON object"),
            ("typing", "{nope", "malformed `typing` frame: not JSON"),
            ("message", r#"{"type":5}"#, "malformed `message` frame: `type` is not a string"),
            ("message", r#"{"type":"message"}"#, "malformed `message` frame: no `message`"),
            ("message", r#"{"message":"m"}"#, "malformed `message` frame: no `message`"),
            (
                "message",
                r#"{"convo_id":"c","message":{"id":"","from":"appuser","created_at":"t"}}"#,
                "malformed `message` frame: a message without an id",
            ),
            (
                "typing",
                r#"{"type":"message","convo_id":"c","message":{"id":"a","seq":-1,"from":"appuser","created_at":"t"}}"#,
                "malformed `message` frame: a message whose `seq` is not a whole number",
            ),
            // What handlers typed as `Message` read must be there (a hostile server's frames).
            (
                "message",
                r#"{"type":"message","action":"create","message":{"id":"x","content":"hi"}}"#,
                "malformed `message` frame: no `convo_id`",
            ),
            (
                "message",
                r#"{"type":"message","convo_id":"other","message":{"id":"x","from":"appuser","created_at":"t"}}"#,
                "malformed `message` frame: a message of another convo",
            ),
            ("message", r#"{"convo_id":5,"message":{"id":"x","from":"appuser","created_at":"t"}}"#, "malformed `message` frame: no `convo_id`"),
            ("message", r#"{"convo_id":"c","message":{"id":"x","created_at":"t"}}"#, "malformed `message` frame: a message without `from`"),
            ("message", r#"{"convo_id":"c","message":{"id":"x","from":null,"created_at":"t"}}"#, "malformed `message` frame: a message without `from`"),
            ("message", r#"{"convo_id":"c","message":{"id":"x","from":"appuser"}}"#, "malformed `message` frame: a message without `created_at`"),
        ] {
            assert_eq!(read(event, data), Err(why.to_owned()), "{event} {data}");
        }
    }

    #[test]
    fn missing_type_takes_event_name() {
        let f = decode_frame("closed", r#"{"reason":"auth_expiring"}"#).unwrap();
        assert_eq!(f, Some(ServerFrame::Closed { reason: ClosedReason::AuthExpiring }));
        assert_eq!(decode_frame("ping", "{}").unwrap(), Some(ServerFrame::Ping {}));
    }

    #[test]
    fn unknown_type_is_skipped_unknown_values_tolerated() {
        assert_eq!(decode_frame("presence", r#"{"who":"x"}"#).unwrap(), None);
        let f = decode_frame("closed", r#"{"reason":"maintenance","extra":1}"#).unwrap();
        assert_eq!(f, Some(ServerFrame::Closed { reason: ClosedReason::Unknown }));
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(decode_frame("message", "{not json").is_err());
        assert!(decode_frame("message", "[1]").is_err());
        assert!(decode_frame("message", r#"{"type":"message"}"#).is_err());
        assert!(decode_frame("x", r#"{"type":5}"#).is_err());
    }

    #[test]
    fn a_nested_type_key_does_not_count_as_the_frame_type() {
        let data = r#"{"action":"create","agent_id":"a","convo_id":"c","message":{"id":"m","content":"\"type\"","from":"appuser","turn_number":1,"created_at":"t","participant":{"id":"p","type":"x","kind":"appuser","name":"P","photo_url":"u","initial":"P"},"files":[]}}"#;
        let f = decode_frame("message", data).unwrap().unwrap();
        assert!(matches!(f, ServerFrame::Message { .. }));
        assert_eq!(decode_frame("ping", "{ }").unwrap(), Some(ServerFrame::Ping {}));
    }

    #[test]
    fn convo_state_names_round_trip() {
        for s in ConvoState::ALL {
            assert_eq!(ConvoState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
