//! `valet-wasm`: the Valet browser SDK, as thin wasm-bindgen glue over
//! `valet-core`. Public API (the Valet JS SDK's):
//!
//! ```js
//! const valet = new ValetClient({ agentId, fetchJwt, baseUrl, debug, fetchJwtTimeoutMs })
//! const { convoId } = await valet.startSession()
//! const convo = await valet.openConvo({ convoId })
//! convo.on("message", ({ message }) => render(message))   // returns unsubscribe
//! await convo.send("Hi, I need help with my order")
//! convo.close()
//! ```
#![deny(missing_docs)]

mod client;
mod convo;
mod emitter;
mod error;
mod http;
mod log;
mod stream;
mod tabs;
mod tokens;

pub use client::ValetClient;
pub use convo::Convo;

use wasm_bindgen::prelude::*;

/// The SDK version, from Cargo.
#[wasm_bindgen(js_name = sdkVersion)]
pub fn sdk_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[wasm_bindgen(typescript_custom_section)]
const EVENT_TYPES: &'static str = r#"
/** `message`: each message once, in server order. */
export type ConvoMessageEvent = Extract<ServerFrame, { type: "message" }> & { from_reconcile: boolean };
/** `typing`: an indicator started or stopped. */
export type ConvoTypingEvent = Extract<ServerFrame, { type: "typing" }>;
/** `convo_state`: the convo changed state. */
export type ConvoStateEvent = Extract<ServerFrame, { type: "convo_state" }>;
/** `turn_done`: the agent's turn ended. */
export type ConvoTurnDoneEvent = Extract<ServerFrame, { type: "turn_done" }>;
/** `ready`: the stream is (re)connected. */
export type ConvoReadyEvent = Extract<ServerFrame, { type: "ready" }>;
/** `closed`: the server closed the stream (the SDK reconnects as the reason requires). */
export type ConvoClosedEvent = Extract<ServerFrame, { type: "closed" }>;

/** Every event of a convo and its payload. */
export interface ConvoEventMap {
  message: ConvoMessageEvent;
  typing: ConvoTypingEvent;
  convo_state: ConvoStateEvent;
  turn_done: ConvoTurnDoneEvent;
  ready: ConvoReadyEvent;
  closed: ConvoClosedEvent;
  error: ConvoErrorEvent;
  status: ConvoStatusEvent;
  role: ConvoRoleEvent;
}

/** The `Error` every rejection and `error` event carries: branch on `code`. */
export interface ValetError extends Error {
  name: "ValetError";
  code: ErrorCode;
  status?: number;
  retryAfterSeconds?: number;
  body?: unknown;
  /** On a failed send: an earlier attempt got no answer, so the server may have stored it. */
  maybeStored?: boolean;
}

export interface Convo {
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof ConvoEventMap>(event: E, handler: (payload: ConvoEventMap[E]) => void): () => void;
}
"#;
