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
//!
//! What ships is `no_std` (with `alloc`): no `std` panic and formatting
//! machinery in the wasm, and a panic is a trap. The `std` feature links
//! `std` (the wasm-bindgen tests, and the typings build: see `typings`).
#![cfg_attr(all(target_arch = "wasm32", not(test), not(feature = "std")), no_std)]
#![deny(missing_docs)]

extern crate alloc;

/// What `std`'s prelude would bring: the `alloc` types every module uses.
#[allow(unused_imports)]
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    // Not in the shipped build: text is joined with `valet_core::cat!`.
    #[cfg(any(test, feature = "std"))]
    pub(crate) use alloc::format;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec;
    pub(crate) use alloc::vec::Vec;
}
#[allow(unused_imports)]
use prelude::*;

mod client;
mod convo;
mod emitter;
mod error;
mod http;
mod json;
mod log;
mod rt;
mod shared;
mod stream;
mod tabs;
mod tokens;
#[cfg(feature = "typings")]
mod typings;

pub use client::ValetClient;
pub use convo::Convo;

use wasm_bindgen::prelude::*;

/// The SDK version, from Cargo.
#[wasm_bindgen(js_name = sdkVersion)]
pub fn sdk_version() -> js_sys::JsString {
    env!("CARGO_PKG_VERSION").into()
}

#[wasm_bindgen(typescript_custom_section)]
const EVENT_TYPES: &'static str = r#"
/** `ready`: the stream is (re)connected. */
export type ReadyEvent = Extract<ServerFrame, { type: "ready" }>;
/** `message`: each message once, in server order; `from_reconcile: true` only on history (reconcile output), `from_cache: true` only on the local history of `persist: "local"`. */
export type MessageEvent = Extract<ServerFrame, { type: "message" }> & { from_reconcile?: true; from_cache?: true };
/** `typing`: an indicator started or stopped. */
export type TypingEvent = Extract<ServerFrame, { type: "typing" }>;
/** `convo_state`: the convo changed state (`closed_user_message` is text to show, `null` while open). */
export type ConvoStateEvent = Extract<ServerFrame, { type: "convo_state" }>;
/** `turn_done`: the agent's turn ended. */
export type TurnDoneEvent = Extract<ServerFrame, { type: "turn_done" }>;
/** A server `error` frame (not an SDK failure): handed to `error` handlers as is. */
export type ServerErrorEvent = Extract<ServerFrame, { type: "error" }>;
/** A heartbeat (not emitted to handlers). */
export type PingEvent = Extract<ServerFrame, { type: "ping" }>;
/** `closed`: the server closed the stream (the SDK reconnects as the reason requires). */
export type ClosedEvent = Extract<ServerFrame, { type: "closed" }>;
/** Why the server closed the stream. */
export type CloseReason = ClosedReason;
/** Every frame the server sends. */
export type AnyServerEvent = ReadyEvent | MessageEvent | TypingEvent | ConvoStateEvent | TurnDoneEvent | ServerErrorEvent | PingEvent | ClosedEvent;
/** An SDK failure (`{ error, phase }`, `error` a `ValetError`) or a server `error` frame: tell them apart with `"reason" in evt`. */
export type ConvoErrorPayload = ConvoErrorEvent | ServerErrorEvent;

/** The Valet JS SDK's events and their payloads. */
export interface ClientEventMap {
  message: MessageEvent;
  typing: TypingEvent;
  convo_state: ConvoStateEvent;
  turn_done: TurnDoneEvent;
  ready: ReadyEvent;
  closed: ClosedEvent;
  error: ConvoErrorPayload;
}
/** The Valet JS SDK's event names. */
export type ClientEventName = keyof ClientEventMap;

/** Every event of a convo and its payload: the JS SDK's, plus `status`, `role`, `delta` and `restored_send`. */
export interface ConvoEventMap extends ClientEventMap {
  status: ConvoStatusEvent;
  role: ConvoRoleEvent;
  /** A piece of a reply the agent is still writing (a server that streams replies; none otherwise). */
  delta: MessageDeltaEvent;
  /** A send an earlier page of this tab left unsent, queued again here (`pending`), then `sent` or `failed`. */
  restored_send: RestoredSendEvent;
}

/**
 * `restored_send`: a send that an earlier page of this tab queued and did
 * not see stored (a reload while offline, say), restored from
 * `sessionStorage` once a token of the same user came, and sent again with
 * the same idempotency key (`key`). It has no promise: `pending` when
 * queued again, then `sent` (stored) or `failed` (with `error`, as an
 * `error` event also says). Files are not kept: one whose files were not
 * uploaded yet fails with `closed`.
 */
export interface RestoredSendEvent {
  /** The send's idempotency key (the store's message `key`). */
  key: string;
  text: string;
  /** When it was first sent (ISO 8601). */
  created_at: string;
  state: "pending" | "sent" | "failed";
  /** With `failed`: why. */
  error?: ValetError;
}

/** The options of `new ValetClient(...)`, by the JS SDK's name. */
export type ValetClientConfig = ValetClientOptions;

/** Earlier names (see CHANGELOG.md). */
export type ConvoMessageEvent = MessageEvent;
/** Earlier name of `TypingEvent`. */
export type ConvoTypingEvent = TypingEvent;
/** Earlier name of `TurnDoneEvent`. */
export type ConvoTurnDoneEvent = TurnDoneEvent;
/** Earlier name of `ReadyEvent`. */
export type ConvoReadyEvent = ReadyEvent;
/** Earlier name of `ClosedEvent`. */
export type ConvoClosedEvent = ClosedEvent;
/** Earlier name of `MessageFile`. */
export type FileRef = MessageFile;

/** The `Error` every rejection and SDK `error` event carries: branch on `code`. */
export interface ValetError extends Error {
  code: ErrorCode;
  status?: number;
  retryAfterSeconds?: number;
  body?: unknown;
  /** On a failed send: an earlier attempt got no answer, so the server may have stored it. */
  maybeStored?: boolean;
}

declare global {
  /**
   * The generated classes have `[Symbol.dispose]()` (explicit resource
   * management), a convo `[Symbol.asyncDispose]()` too. Declared here, as
   * TypeScript's `esnext.disposable` lib does, so a consumer's `lib` needs
   * no more than `["es2022", "dom"]` for `using` and `await using`.
   */
  interface SymbolConstructor {
    readonly dispose: unique symbol;
    readonly asyncDispose: unique symbol;
  }
  /** As in `esnext.disposable`: what `using` takes. */
  interface Disposable {
    [Symbol.dispose](): void;
  }
  /** As in `esnext.disposable`: what `await using` takes. */
  interface AsyncDisposable {
    [Symbol.asyncDispose](): PromiseLike<void>;
  }
}

/** What `convo.events()` yields: the event's name and its payload (narrow on `type`). */
export type ConvoEvent<E extends keyof ConvoEventMap = keyof ConvoEventMap> = { [K in E]: { type: K; payload: ConvoEventMap[K] } }[E];

/** The options of `convo.events()`. */
export interface ConvoEventsOptions<E extends keyof ConvoEventMap = keyof ConvoEventMap> {
  /** Ends the iteration (what was not consumed yet is dropped). */
  signal?: AbortSignal;
  /** Only these events (default: all of them). */
  events?: readonly E[];
}

export interface Convo {
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof ConvoEventMap>(event: E, handler: (payload: ConvoEventMap[E]) => void): () => void;
  /**
   * The convo's events as an async iterator: `for await (const ev of
   * convo.events({ signal })) { if (ev.type === "message") ... }`. Each
   * iterator gets every event from the moment it is made (made in the task
   * where `await openConvo(...)` returned, it gets the first `ready`), in
   * order; events wait in it until consumed. It ends after the events
   * before `close()`, at once on `signal`'s abort, and on `break`.
   */
  events<E extends keyof ConvoEventMap = keyof ConvoEventMap>(options?: ConvoEventsOptions<E>): AsyncIterableIterator<ConvoEvent<E>>;
  /** `using convo = ...` closes it at the end of the block. */
  [Symbol.dispose](): void;
  /** `await using convo = await valet.openConvo(...)` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void>;
}
"#;

/// The allocator: talc instead of Rust's default dlmalloc: lighter, delivery
/// as fast or faster, and memory as flat (measured: docs/size.md). Its
/// `disable-realloc-in-place` feature is lighter still but let memory
/// grow: not taken.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// A panic is a bug: the wasm traps (`unreachable`), and the call that
/// reached it throws a `RuntimeError` in JS, as with `std` and
/// `panic = "abort"`; but no message is formatted, and `std`'s panic
/// machinery is not in the wasm.
#[cfg(all(target_arch = "wasm32", not(test), not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
