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
 * `convoId` may also be `"new"` (a convo started with `startSession()`) or
 * a getter returning a promise of an id (e.g. the user's open convo from
 * `listConvos()`, else a new one). `onMessage`, `onTurnDone`, `onError` and
 * `onEvent` are called with the events.
 *
 * Offline at mount, the chat is `reconnecting` and connects by itself once
 * the network is back; sends made meanwhile wait. After a definite refusal
 * (signed out, 403, 404) it is `stopped`, `canSend` is `false`, and
 * `reopen()` tries again without a remount.
 *
 * @module
 */
import { getCurrentInstance, getCurrentScope, onMounted, onScopeDispose, shallowRef, toValue, watch, type MaybeRefOrGetter, type Ref } from "vue";
import type { ConvoErrorPayload, ConvoEvent, ConvoState, LockoutSnapshot, MessageEvent, SendOptions, Status, TurnDoneEvent } from "./wasm/valet_wasm.js";
import {
  CONVO_EVENTS,
  initialConvoState,
  notOpen,
  retainConvoStore,
  specOpener,
  type SessionStarter,
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
  client: ConvoOpener & SessionStarter;
  /**
   * The convo to show (a value, ref or getter): its id, `"new"` to start one
   * (`startSession()`), or a promise of an id; while empty nothing is opened.
   */
  convoId: MaybeRefOrGetter<string | null | undefined | PromiseLike<string>>;
  /** The user's lockout from `startSession()`, read when a convo opens: while locked out, `canSend` is `false`. */
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
  /** After a stop (`status` `stopped`, e.g. signed out): opens the convo again, without a remount. */
  reopen(): Promise<void>;
  /** Closes the convo for every component showing it. */
  close(): void;
}

const FIELDS = ["convoId", "messages", "typing", "convoState", "convoStateText", "turn", "canSend", "cannotSend", "status", "role", "error", "reconnects"] as const;

/** A convo's live state; see the module documentation. */
export function useConvo(options: UseConvoOptions): UseConvoResult {
  const { client, convoId, lockout, streaming } = options;
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

  function open(spec: string | null | undefined | PromiseLike<string>): void {
    stop?.();
    stop = null;
    store = null;
    if (!spec) {
      show(initialConvoState);
      return;
    }
    if (typeof spec !== "string" || spec === "new") {
      // Resolved inside the store's opening (sends wait for it; failures
      // that may pass are tried again): a store of this view's own.
      const given = spec;
      const opener = specOpener(client, typeof given === "string" ? given : () => given, lockout);
      attach(retainConvoStore(client, {}, lockout, { streaming }, opener));
      return;
    }
    attach(retainConvoStore(client, spec, lockout, { streaming }));
  }

  function attach({ store: held, release }: { store: ConvoStore; release: () => void }): void {
    store = held;
    const unsubscribe = held.subscribe(show); // called at once with the snapshot, then on each change
    const offs = [
      held.on("message", (e) => options.onMessage?.(e)),
      held.on("turn_done", (e) => options.onTurnDone?.(e)),
      held.on("error", (e) => options.onError?.(e)),
      ...CONVO_EVENTS.map((type) =>
        held.on(type, (payload) => options.onEvent?.({ type, payload } as ConvoEvent)),
      ),
    ];
    stop = () => {
      for (const off of offs) off();
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
    reopen: () => (store ? store.reopen() : notOpen()),
    close: () => store?.close(),
  };
}
