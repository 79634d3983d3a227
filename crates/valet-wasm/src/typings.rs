//! The TypeScript declarations of the option and result types that the API
//! reads with `Reflect` or builds in JS (so no Rust code uses them): tsify
//! derives them here. Built only with the `typings` feature, for the
//! `.d.ts` (see the crate docs: tsify links `std`, what ships does not).
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use valet_core::wire::{AttachmentPolicy, LockoutSnapshot};

/// Options of `new ValetClient(...)` (declares the TS type; read with
/// `Reflect`, so each wrong option gets its own error).
#[allow(dead_code)]
#[derive(Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ValetClientOptions {
    /// The agent's id.
    pub agent_id: String,
    /// Returns a JWT minted by your backend (a string, or a Promise of one).
    #[tsify(type = "() => Promise<string> | string")]
    pub fetch_jwt: (),
    /// API base URL (default `https://api.valet.red`).
    #[tsify(optional)]
    pub base_url: Option<String>,
    /// Log `[valet-sdk]` lines to the console (tokens are never logged).
    #[tsify(optional)]
    pub debug: Option<bool>,
    /// Cap on one `fetchJwt` call (default 10000 ms).
    #[tsify(optional)]
    pub fetch_jwt_timeout_ms: Option<f64>,
    /// Drop streams while the page is hidden (default true).
    #[tsify(optional)]
    pub pause_on_hidden: Option<bool>,
    /// `"fetch"` (default) or `"eventsource"`.
    #[tsify(optional, type = "\"fetch\" | \"eventsource\"")]
    pub transport: Option<String>,
    /// A stream silent this long is replaced (default 45000 ms).
    #[tsify(optional)]
    pub stall_timeout_ms: Option<f64>,
    /// `"local"`: keep each convo's history in IndexedDB, under the user's
    /// identity, and show it on the next page before the network answers
    /// (`from_cache: true`). Default `"none"`: chat text is personal data
    /// on shared computers. `clearLocalData()` removes it.
    #[tsify(optional, type = "\"local\" | \"none\"")]
    pub persist: Option<String>,
    /// For observability tools: called with what happens under the API
    /// (`status`, `error`, `role`, `reconnect`, `duplicate_dropped`,
    /// `gap_filled`, `token_refresh`, `send_queued`, `send_settled`,
    /// `storage_error`). What it throws is caught and never breaks delivery.
    #[tsify(optional, type = "(kind: string, payload: unknown) => void")]
    pub on_event: (),
}

/// Options of `openConvo`.
#[allow(dead_code)]
#[derive(Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct OpenConvoOptions {
    /// The convo to open (from `startSession` or `listConvos`).
    pub convo_id: String,
}

/// What `startSession` resolves to (built in JS from the answer: this
/// declares its type).
#[allow(dead_code)]
#[derive(Serialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct StartSessionResult {
    /// The new convo.
    pub convo_id: String,
    /// What may be attached (every field filled in, defaults when the server
    /// sent none).
    #[tsify(type = "Required<AttachmentPolicy>")]
    pub attachment_policy: AttachmentPolicy,
    /// Whether the user is locked out (every field filled in).
    #[tsify(type = "Required<LockoutSnapshot>")]
    pub lockout: LockoutSnapshot,
}

/// Options of `convo.send` (read with `Reflect`, so a wrong value gets a
/// precise error).
#[allow(dead_code)]
#[derive(Default, Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SendOptions {
    /// Files to upload first; they become part of the message.
    #[serde(default)]
    #[tsify(type = "Blob[]", optional)]
    pub files: (),
    /// Aborts the send while it is queued (it rejects with `aborted`). Once
    /// on the wire, that attempt decides: stored, the send resolves.
    #[serde(default)]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: (),
    /// A draft made by `uploadFiles()`: its files go with this text.
    #[serde(default)]
    #[tsify(optional)]
    pub message_id: Option<String>,
    /// Resolve as soon as the message is queued; a final failure is then an
    /// `error` event with stage `send` (default: resolve once stored).
    #[serde(default)]
    #[tsify(optional)]
    pub resolve_when_queued: Option<bool>,
    /// The send's idempotency key, the same on every attempt and on the
    /// page after a reload (default: a new UUID v4). Give one to know the
    /// send again (the store uses its message `key`). 1 to 200 printable
    /// ASCII characters, unique within the convo.
    #[serde(default)]
    #[tsify(optional)]
    pub idempotency_key: Option<String>,
}
