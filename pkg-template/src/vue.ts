/**
 * `@valet.red/sdk/vue`: a convo as Vue refs.
 *
 * ```vue
 * <script setup lang="ts">
 * import { useConvo } from "@valet.red/sdk/vue";
 * const props = defineProps<{ convoId: string }>();
 * const { messages, typing, status, send } = useConvo({ client: valet, convoId: () => props.convoId });
 * </script>
 * ```
 *
 * The refs are read-only and replaced (not mutated) on each change. The
 * convo opens when the component mounts (never during server-side
 * rendering), follows `convoId` when it is a ref or a getter, and closes
 * when the component unmounts (shared with other components showing the
 * same convo of the same client).
 *
 * @module
 */
import { getCurrentInstance, getCurrentScope, onMounted, onScopeDispose, shallowRef, toValue, watch, type MaybeRefOrGetter, type Ref } from "vue";
import type { ConvoState, LockoutSnapshot, SendOptions, Status } from "./wasm/valet_wasm.js";
import {
  initialConvoState,
  notOpen,
  retainConvoStore,
  type ChatMessage,
  type ConvoOpener,
  type ConvoStore,
  type ConvoStoreState,
  type StoreError,
  type TypingIndicator,
  type TurnState,
  type CannotSend,
} from "./store.js";

export type { CannotSend, ChatMessage, ConvoStore, ConvoStoreState, MessageStatus, StoreError, TurnState, TypingIndicator } from "./store.js";

/** Options of {@link useConvo}. */
export interface UseConvoOptions {
  /** The `ValetClient` (create it once, outside components). */
  client: ConvoOpener;
  /** The convo to show (a value, ref or getter); while empty nothing is opened. */
  convoId: MaybeRefOrGetter<string | null | undefined>;
  /** The user's lockout from `startSession()`, read when a convo opens: while locked out, `canSend` is `false`. */
  lockout?: LockoutSnapshot | null;
}

/** What {@link useConvo} returns: one read-only ref per state field, and the actions. */
export interface UseConvoResult {
  convoId: Readonly<Ref<string | null>>;
  messages: Readonly<Ref<readonly ChatMessage[]>>;
  typing: Readonly<Ref<TypingIndicator | null>>;
  convoState: Readonly<Ref<ConvoState | null>>;
  convoStateText: Readonly<Ref<string | null>>;
  turn: Readonly<Ref<TurnState>>;
  canSend: Readonly<Ref<boolean>>;
  cannotSend: Readonly<Ref<CannotSend | null>>;
  status: Readonly<Ref<Status>>;
  role: Readonly<Ref<"leader" | "follower" | null>>;
  error: Readonly<Ref<StoreError | null>>;
  reconnects: Readonly<Ref<number>>;
  /** The whole snapshot. */
  state: Readonly<Ref<ConvoStoreState>>;
  /** Sends a message (shown at once as `pending`). */
  send(text: string, options?: SendOptions): Promise<void>;
  /** Sends a `failed` message again. */
  retry(key: string): Promise<void>;
  /** Closes the convo for every component showing it. */
  close(): void;
}

const FIELDS = ["convoId", "messages", "typing", "convoState", "convoStateText", "turn", "canSend", "cannotSend", "status", "role", "error", "reconnects"] as const;

/** A convo's live state; see the module documentation. */
export function useConvo({ client, convoId, lockout }: UseConvoOptions): UseConvoResult {
  const state = shallowRef<ConvoStoreState>(initialConvoState);
  const refs = Object.fromEntries(FIELDS.map((f) => [f, shallowRef(initialConvoState[f])])) as {
    [K in (typeof FIELDS)[number]]: Ref<ConvoStoreState[K]>;
  };
  let store: ConvoStore | null = null;
  let stop: (() => void) | null = null;

  function show(next: ConvoStoreState): void {
    state.value = next;
    for (const f of FIELDS) {
      // Only changed fields trigger their watchers.
      if (refs[f].value !== next[f]) (refs[f] as Ref<unknown>).value = next[f];
    }
  }

  function open(id: string | null | undefined): void {
    stop?.();
    stop = null;
    store = null;
    if (!id) {
      show(initialConvoState);
      return;
    }
    const { store: held, release } = retainConvoStore(client, id, lockout);
    store = held;
    const unsubscribe = held.subscribe(show); // called at once with the snapshot, then on each change
    stop = () => {
      unsubscribe();
      release();
    };
  }

  const start = () => {
    open(toValue(convoId));
    watch(() => toValue(convoId), open);
  };
  // In a component: open once mounted (so never during SSR). Outside one
  // (a bare effect scope, a store module): open now.
  if (getCurrentInstance()) onMounted(start);
  else if (typeof window !== "undefined") start();
  if (getCurrentScope()) {
    onScopeDispose(() => {
      stop?.();
      stop = null;
    });
  }

  return {
    ...refs,
    state,
    send: (text, options) => (store ? store.send(text, options) : notOpen()),
    retry: (key) => (store ? store.retry(key) : notOpen()),
    close: () => store?.close(),
  };
}
