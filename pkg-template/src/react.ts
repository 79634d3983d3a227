/**
 * `@valet.red/sdk/react`: a convo as React state.
 *
 * ```tsx
 * const valet = new ValetClient({ agentId, fetchJwt, baseUrl });   // once, outside the component
 * function Chat({ convoId }: { convoId: string }) {
 *   const { messages, status, canSend, send } = useConvo({ client: valet, convoId });
 *   return (
 *     <>
 *       <p>{status}</p>
 *       {messages.map((m) => <p key={m.key}>{m.content}</p>)}
 *       <button disabled={!canSend} onClick={() => send("Hi")}>Say hi</button>
 *     </>
 *   );
 * }
 * ```
 *
 * Built on `useSyncExternalStore`. Components showing the same convo of the
 * same client share one store and one stream; it closes when the last of
 * them unmounts. Strict Mode's double mount opens one stream, not two.
 * Nothing runs during server-side rendering: the snapshot there is the
 * initial `connecting` state.
 *
 * `convoId` may also be `"new"` (a convo started with `startSession()`) or a
 * function that finds or starts one (e.g. the user's open convo from
 * `listConvos()`): either runs once per mount, Strict Mode's double mount
 * included, and again when a failure that may pass is retried or on
 * `reopen()`. `onMessage`, `onTurnDone`, `onError` (and `onEvent` for any
 * event) are called with the events, the latest ones passed in: no need to
 * memoize them.
 *
 * Offline at mount, the chat is `reconnecting` and connects by itself once
 * the network is back; sends made meanwhile wait. After a definite refusal
 * (`fetchJwt` rejecting with a `ValetError` of code `auth`: signed out; the
 * API's 403 or 404) it is `stopped`, `canSend` is `false`, and `reopen()`
 * tries again without a remount.
 *
 * @module
 */
// The type import first: the module's doc comment stays with it in react.d.ts.
import type { ConvoErrorPayload, ConvoEvent, LockoutSnapshot, MessageEvent, SendOptions, TurnDoneEvent } from "./wasm/valet_wasm.js";
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import {
  CONVO_EVENTS,
  initialConvoState,
  notOpen,
  retainConvoStore,
  specOpener,
  type ConvoOpener,
  type ConvoSpec,
  type ConvoStore,
  type ConvoStoreState,
  type SessionStarter,
} from "./store.js";

export type { CannotSend, ChatMessage, ConvoSpec, ConvoStore, ConvoStoreState, MessageStatus, StoreError, TurnState, TypingIndicator } from "./store.js";

/** Options of {@link useConvo}. */
export interface UseConvoOptions {
  /** The `ValetClient` (create it once, outside render). */
  client: ConvoOpener & SessionStarter;
  /**
   * The convo to show: its id; `"new"` to start one (`startSession()`, once
   * per mount); or a function returning (a promise of) an id, called once
   * per mount. While `null`/`undefined` nothing is opened.
   */
  convoId: ConvoSpec;
  /** The user's lockout from `startSession()`, read when the convo opens: while locked out, `canSend` is `false`. */
  lockout?: LockoutSnapshot | null;
  /**
   * Show replies as the agent writes them (a server that streams replies):
   * a `streaming` message whose text grows, replaced in place by the
   * completed one. Read when the convo opens. Default `false`.
   */
  streaming?: boolean;
  /** Each message, once, in order (history included: `from_reconcile`). */
  onMessage?: (event: MessageEvent) => void;
  /** The agent's turn ended. */
  onTurnDone?: (event: TurnDoneEvent) => void;
  /** An SDK failure or a server `error` frame (`"reason" in event`). */
  onError?: (event: ConvoErrorPayload) => void;
  /** Every event, as `convo.events()` yields them. */
  onEvent?: (event: ConvoEvent) => void;
}

/** What {@link useConvo} returns: the store's state and its actions. */
export interface UseConvoResult extends ConvoStoreState {
  /**
   * Sends a message (shown at once as `pending`). Its rejection is handled:
   * `onClick={() => send(text)}` is safe (a refused message turns `failed`).
   */
  send(text: string, options?: SendOptions): Promise<void>;
  /** Sends a `failed` message again. */
  retry(key: string): Promise<void>;
  /**
   * After a stop (`status` `stopped`, e.g. the user was signed out): opens
   * the convo again, without a remount (`"new"` or a function resolves
   * again).
   */
  reopen(): Promise<void>;
  /** Closes the convo for every component showing it. */
  close(): void;
  /** The underlying store, `null` before the first effect. */
  store: ConvoStore | null;
  /** `"new"` or a function: the convo it resolved to, once known. */
  resolvedConvoId: string | null;
}

const noSubscribe = () => () => {};
const initial = () => initialConvoState;

/** A convo's live state; see the module documentation. */
export function useConvo(options: UseConvoOptions): UseConvoResult {
  const { client, convoId, lockout, streaming } = options;
  const [store, setStore] = useState<ConvoStore | null>(null);
  // The latest callbacks, read when an event comes (no re-subscription).
  const callbacks = useRef(options);
  callbacks.current = options;
  // "new" or a function: resolved once per mount, inside the store's
  // opening (so sends wait for it, and failures that may pass are tried
  // again). This object names the mount's store: Strict Mode's second
  // effect finds the first one's store by it.
  const kind = typeof convoId === "function" ? "function" : convoId === "new" ? "new" : null;
  const mount = useRef<object>({});
  const key = kind ? kind : convoId || null;

  useEffect(() => {
    if (!client || !key || convoId == null) {
      setStore(null);
      return;
    }
    const { store: held, release } = kind
      ? retainConvoStore(client, mount.current, lockout, { streaming }, specOpener(client, convoId, lockout))
      : retainConvoStore(client, convoId as string, lockout, { streaming });
    setStore(held);
    return release;
    // eslint-disable-next-line react-hooks/exhaustive-deps -- a function is called once per mount, whatever its identity; the lockout is read when the convo opens
  }, [client, key]);

  useEffect(() => {
    if (!store) return;
    const cb = callbacks;
    const offs = [
      store.on("message", (e) => cb.current.onMessage?.(e)),
      store.on("turn_done", (e) => cb.current.onTurnDone?.(e)),
      store.on("error", (e) => cb.current.onError?.(e)),
      ...CONVO_EVENTS.map((type) =>
        store.on(type, (payload) => cb.current.onEvent?.({ type, payload } as ConvoEvent)),
      ),
    ];
    return () => {
      for (const off of offs) off();
    };
  }, [store]);

  const state = useSyncExternalStore(store ? store.subscribe : noSubscribe, store ? store.getState : initial, initial);
  const send = useCallback((text: string, options?: SendOptions) => (store ? store.send(text, options) : notOpen()), [store]);
  const retry = useCallback((key: string) => (store ? store.retry(key) : notOpen()), [store]);
  const reopen = useCallback(() => (store ? store.reopen() : notOpen()), [store]);
  const close = useCallback(() => store?.close(), [store]);
  return { ...state, send, retry, reopen, close, store, resolvedConvoId: kind ? state.convoId : null };
}
