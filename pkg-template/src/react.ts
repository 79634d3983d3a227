/**
 * `@valet.red/sdk/react`: a convo as React state.
 *
 * ```tsx
 * const valet = new ValetClient({ agentId, fetchJwt });   // once, outside the component
 * function Chat({ convoId }: { convoId: string }) {
 *   const { messages, typing, status, send } = useConvo({ client: valet, convoId });
 *   return <>{messages.map((m) => <p key={m.key}>{m.content}</p>)}</>;
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
 * included. `onMessage`, `onTurnDone`, `onError` (and `onEvent` for any
 * event) are called with the events, the latest ones passed in: no need to
 * memoize them.
 *
 * @module
 */
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import type { ConvoErrorPayload, ConvoEvent, LockoutSnapshot, MessageEvent, SendOptions, TurnDoneEvent } from "./wasm/valet_wasm.js";
import {
  CONVO_EVENTS,
  initialConvoState,
  notOpen,
  resolveConvoSpec,
  retainConvoStore,
  type ConvoOpener,
  type ConvoSpec,
  type ConvoStore,
  type ConvoStoreState,
  type SessionStarter,
} from "./store.js";
import type { ValetError } from "./error.js";

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
  /** Sends a message (shown at once as `pending`). */
  send(text: string, options?: SendOptions): Promise<void>;
  /** Sends a `failed` message again. */
  retry(key: string): Promise<void>;
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
  const [resolved, setResolved] = useState<{ convoId: string; lockout?: LockoutSnapshot | null } | null>(null);
  const [resolveError, setResolveError] = useState<ValetError | null>(null);
  // The latest callbacks, read when an event comes (no re-subscription).
  const callbacks = useRef(options);
  callbacks.current = options;
  // "new" or a function: resolved once per mount; Strict Mode's second
  // effect finds the first one's promise here and reuses it.
  const kind = typeof convoId === "function" ? "function" : convoId === "new" ? "new" : null;
  const pending = useRef<{ client: unknown; kind: string; promise: ReturnType<typeof resolveConvoSpec> } | null>(null);

  useEffect(() => {
    if (!kind || !client || convoId == null) return;
    if (!pending.current || pending.current.client !== client || pending.current.kind !== kind) {
      pending.current = { client, kind, promise: resolveConvoSpec(client, convoId) };
    }
    let live = true;
    pending.current.promise.then(
      (r) => live && setResolved(r),
      (e: ValetError) => live && setResolveError(e),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- a function is called once per mount, whatever its identity
  }, [client, kind]);

  const id = kind ? (resolved?.convoId ?? null) : (convoId as string | null | undefined);
  const openLockout = kind ? (resolved?.lockout ?? lockout) : lockout;

  useEffect(() => {
    if (!client || !id) {
      setStore(null);
      return;
    }
    const { store: held, release } = retainConvoStore(client, id, openLockout, { streaming });
    setStore(held);
    return release;
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the lockout is read when the convo opens
  }, [client, id]);

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
  const close = useCallback(() => store?.close(), [store]);
  const shown = !store && resolveError ? { ...state, status: "stopped" as const, error: resolveError } : state;
  return { ...shown, send, retry, close, store, resolvedConvoId: kind ? (resolved?.convoId ?? null) : null };
}
