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
 * @module
 */
import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import type { LockoutSnapshot, SendOptions } from "./wasm/valet_wasm.js";
import { initialConvoState, notOpen, retainConvoStore, type ConvoOpener, type ConvoStore, type ConvoStoreState } from "./store.js";

export type { CannotSend, ChatMessage, ConvoStore, ConvoStoreState, MessageStatus, StoreError, TurnState, TypingIndicator } from "./store.js";

/** Options of {@link useConvo}. */
export interface UseConvoOptions {
  /** The `ValetClient` (create it once, outside render). */
  client: ConvoOpener;
  /** The convo to show; while `null`/`undefined` nothing is opened. */
  convoId: string | null | undefined;
  /** The user's lockout from `startSession()`, read when the convo opens: while locked out, `canSend` is `false`. */
  lockout?: LockoutSnapshot | null;
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
}

const noSubscribe = () => () => {};
const initial = () => initialConvoState;

/** A convo's live state; see the module documentation. */
export function useConvo({ client, convoId, lockout }: UseConvoOptions): UseConvoResult {
  const [store, setStore] = useState<ConvoStore | null>(null);

  useEffect(() => {
    if (!client || !convoId) {
      setStore(null);
      return;
    }
    const { store: held, release } = retainConvoStore(client, convoId, lockout);
    setStore(held);
    return release;
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the lockout is read when the convo opens
  }, [client, convoId]);

  const state = useSyncExternalStore(store ? store.subscribe : noSubscribe, store ? store.getState : initial, initial);
  const send = useCallback((text: string, options?: SendOptions) => (store ? store.send(text, options) : notOpen()), [store]);
  const retry = useCallback((key: string) => (store ? store.retry(key) : notOpen()), [store]);
  const close = useCallback(() => store?.close(), [store]);
  return { ...state, send, retry, close, store };
}
