/**
 * A framework-agnostic store over a {@link Convo}: the state a chat view
 * renders, as one immutable snapshot, with `subscribe(listener)` /
 * `getState()` (the shape React's `useSyncExternalStore`, Svelte stores,
 * Vue refs and plain DOM code all consume) and the actions `send`, `retry`
 * and `close`.
 *
 * A message you send shows up at once as `pending`. When the server's copy
 * arrives (on the stream, or in the reconcile after a reconnect) it takes the
 * pending bubble's place and `key`, so a view never shows it twice. A
 * pending message's `key` is its send's idempotency key: after a reload, a
 * send the SDK restored (`restored_send`) shows as `pending` again under
 * the same `key`.
 *
 * With `streaming: true`, a reply the agent is still writing (a server that
 * streams replies: `delta` events) shows as a `streaming` message whose
 * text grows; the completed message takes its place and `key` (its id):
 * no flicker, no duplicate. Against a server that does not stream, nothing
 * changes.
 *
 * @module
 */
import type {
  Author,
  Convo,
  ConvoErrorPayload,
  ConvoEventMap,
  MessageEvent,
  MessageDeltaEvent,
  ConvoState,
  ConvoSummary,
  MessageFile,
  Message,
  Participant,
  SendOptions,
  LockoutSnapshot,
  Status,
  TurnDoneReason,
  TypingKind,
} from "./wasm/valet_wasm.js";
import { ValetError, valetError } from "./error.js";

/**
 * An error of the store: a rejection or an SDK `error` event's `error`, or a
 * server `error` frame as a `ValetError` with code `server` (the frame in
 * `body`); all carry `code` and `message`.
 */
export type StoreError = ValetError;

/**
 * Where a message stands: `pending` (sent, no server copy yet), `failed`
 * (the send was refused), `sent` (the server's copy), `streaming` (a reply
 * the agent is still writing; only with the store's `streaming` option).
 */
export type MessageStatus = "pending" | "failed" | "sent" | "streaming";

/** One bubble of the chat, in display order. */
export interface ChatMessage {
  /** Stable across the pending → sent swap: use it as the list key. */
  readonly key: string;
  /** The server's message id (while streaming, the id the reply will have); `null` while pending or failed. */
  readonly id: string | null;
  readonly content: string;
  readonly from: Author;
  /** ISO 8601: the server's time, or the local send time while pending. */
  readonly createdAt: string;
  readonly participant: Participant | null;
  readonly files: readonly MessageFile[];
  readonly status: MessageStatus;
  /** Why a `failed` message was refused (`retry(key)` sends it again). */
  readonly error: StoreError | null;
  /** The server's message as received; `null` while pending or failed. */
  readonly message: Message | null;
}

/** The agent is thinking or typing. */
export interface TypingIndicator {
  readonly kind: TypingKind;
  readonly label: string | null;
}

/**
 * Where the agent's turn is: `idle` (nothing under way), `thinking` or
 * `typing` (its indicator is on), `done` (its `turn_done` came: `reason`
 * says how it ended, `retryAfterSeconds` with `rate_limited`).
 */
export interface TurnState {
  readonly phase: "idle" | "thinking" | "typing" | "done";
  readonly reason: TurnDoneReason | null;
  readonly retryAfterSeconds: number | null;
}

/** Why a message can't be sent now, with text to show. */
export interface CannotSend {
  /**
   * `closed`: the convo is closed (resolved, locked…); `locked_out`: the
   * user is locked out (`startSession`'s `lockout`); `stopped`: the
   * connection stopped on a definite refusal (signed out, 403, 404: see
   * `error`), until `reopen()`.
   */
  readonly reason: "closed" | "locked_out" | "stopped";
  /** The server's ready-to-render text (`closed_user_message`, or the lockout's `user_message`), when it gave one. */
  readonly text: string | null;
  /** With `stopped`: the refusal. */
  readonly error: StoreError | null;
}

/** A snapshot: replaced as a whole on every change, never mutated. */
export interface ConvoStoreState {
  /** `null` until the convo is open. */
  readonly convoId: string | null;
  /** Every message once, in the server's order, then your pending ones. */
  readonly messages: readonly ChatMessage[];
  readonly typing: TypingIndicator | null;
  /** From the last `convo_state` event (or `options.convoState`); `null` if unknown. */
  readonly convoState: ConvoState | null;
  /** The server's text for the convo's state (`closed_user_message`: e.g. "A teammate is taking it from here."); `null` while open or unknown. */
  readonly convoStateText: string | null;
  /** The agent's turn. */
  readonly turn: TurnState;
  /** Whether a message can be sent now: `false` while the convo is closed, the user locked out, or the connection stopped (see `cannotSend`). */
  readonly canSend: boolean;
  /** Why not, when `canSend` is `false`. */
  readonly cannotSend: CannotSend | null;
  /**
   * The connection: `connecting` until the convo is open, then the convo's
   * status. `reconnecting` while a failure that may pass is retried (the
   * opening included: offline, the API or `fetchJwt` unreachable);
   * `stopped` after a definite refusal, until `reopen()`.
   */
  readonly status: Status;
  /** This tab's role once open: `leader` holds the stream, `follower` gets its events. */
  readonly role: "leader" | "follower" | null;
  /**
   * The last error. A connection or send error (stream, auth, network, a
   * refused send) is cleared when the stream (re)connects or a send
   * succeeds; the agent's own failure report (code `server`) stays until the
   * agent completes a turn (`turn_done` `ok`), a later turn (one sent after
   * the report) ends however it ends, the convo closes, or another error
   * replaces it.
   */
  readonly error: StoreError | null;
  /** Reconnections so far (the stream came back after a drop). */
  readonly reconnects: number;
}

/** Options of {@link createConvoStore}. */
export interface ConvoStoreOptions {
  /**
   * The convo's state when known up front (e.g. from `listConvos()`), or the
   * promise of it; a `convo_state` event overrides it.
   */
  convoState?: ConvoState | null | PromiseLike<ConvoState | null>;
  /** The user's lockout, from `startSession()` (`{ lockout }`): while locked out, `canSend` is `false`. */
  lockout?: LockoutSnapshot | null;
  /**
   * Show replies as the agent writes them (`delta` events from a server
   * that streams): a `streaming` message whose text grows, replaced in
   * place by the completed one. Default `false`.
   */
  streaming?: boolean;
}

/** See the module documentation. */
export interface ConvoStore {
  /** The current snapshot (the same object until something changes). */
  getState(): ConvoStoreState;
  /**
   * Calls `listener` with the snapshot at once and after every change
   * (Svelte's store contract, so `$store` works; React's
   * `useSyncExternalStore` and Vue ignore the argument); returns the
   * unsubscribe function.
   */
  subscribe(listener: (state: ConvoStoreState) => void): () => void;
  /**
   * Sends a message: it appears at once as `pending`. Resolves when the
   * server stored it; on a refusal the bubble turns `failed` and the promise
   * rejects with the `ValetError`. Before the convo is open the send waits
   * for it. The rejection is already handled: a UI may ignore the promise
   * (`onClick={() => send(text)}`) without an unhandled rejection, since
   * the bubble shows the failure.
   */
  send(text: string, options?: SendOptions): Promise<void>;
  /** Sends a `failed` message again (its rejection handled, as `send`'s). */
  retry(key: string): Promise<void>;
  /**
   * Tries again after a stop (`status` `stopped`: signed out, 403, 404),
   * without a new store: the messages shown stay, and the convo is opened
   * again with the store's opener (`createConvoStore(() => ...)`; the
   * bindings' stores have one), or resumed when the store was given a
   * convo. Resolves once open again; rejects (handled) as the opening
   * does. Does nothing unless stopped.
   */
  reopen(): Promise<void>;
  /** Closes the convo (the stream ends) and stops updating. */
  close(): void;
  /** The convo once open, else `null`. */
  readonly convo: Convo | null;
  /**
   * Subscribes to the convo's events (as `convo.on`), before or after it
   * opened: what the app does on an event besides rendering (a sound, a
   * notification, analytics). Returns the unsubscribe function.
   */
  on<E extends keyof ConvoEventMap>(event: E, handler: (payload: ConvoEventMap[E]) => void): () => void;
}

const INITIAL: ConvoStoreState = Object.freeze({
  convoId: null,
  messages: Object.freeze([]) as readonly ChatMessage[],
  typing: null,
  convoState: null,
  convoStateText: null,
  turn: Object.freeze({ phase: "idle", reason: null, retryAfterSeconds: null }) as TurnState,
  canSend: true,
  cannotSend: null,
  status: "connecting" as Status,
  role: null,
  error: null,
  reconnects: 0,
});

/** The snapshot of a store that doesn't exist yet (e.g. during server-side rendering). */
export const initialConvoState: ConvoStoreState = INITIAL;

/**
 * A new message `key`: a UUID v4, which is also the send's idempotency key
 * (so a send restored after a reload keeps its key). From
 * `crypto.getRandomValues`, which pages served over plain HTTP have too.
 */
function newKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Convo states in which the agent no longer takes turns. */
const CLOSED_STATES: readonly ConvoState[] = ["resolved", "auto_resolved", "assumed_resolved", "rage_locked", "attempted_hack"];

function turnState(phase: TurnState["phase"], reason: TurnDoneReason | null, retryAfterSeconds: number | null): TurnState {
  return Object.freeze({ phase, reason, retryAfterSeconds });
}

/** Why nothing can be sent, or `null`. A dated lockout ends at `expires_at`. */
function sendBlock(s: ConvoStoreState, lockout: LockoutSnapshot | null | undefined): CannotSend | null {
  if (lockout?.locked_out && (lockout.expires_at === null || Date.parse(lockout.expires_at) > Date.now())) {
    return Object.freeze({ reason: "locked_out" as const, text: lockout.user_message, error: null });
  }
  if (s.convoState !== null && CLOSED_STATES.includes(s.convoState)) {
    return Object.freeze({ reason: "closed" as const, text: s.convoStateText, error: null });
  }
  if (s.status === "stopped") return Object.freeze({ reason: "stopped" as const, text: null, error: s.error });
  return null;
}

function sameBlock(a: CannotSend | null, b: CannotSend | null): boolean {
  return a === b || (a !== null && b !== null && a.reason === b.reason && a.text === b.text && a.error === b.error);
}

/**
 * Whether a failure may pass, so that trying again later can succeed: a
 * network error or timeout (of the API or of `fetchJwt`), a token endpoint
 * that answered junk, 408, 429 and 5xx, and any error that is not a
 * `ValetError` (an app's own lookup that failed to fetch). A definite
 * refusal does not: `auth` (signed out, or the API refused the token), 403,
 * 404 and the other 4xx, `invalid_argument`, `closed`, `aborted`.
 */
export function mayPass(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (!(error instanceof Error) || typeof code !== "string") return true;
  if (code === "http") {
    const status = (error as ValetError).status ?? 0;
    return status === 408 || status >= 500;
  }
  return code === "network" || code === "timeout" || code === "rate_limited" || code === "protocol" || code === "server";
}

/** A promise whose rejection is handled (still seen by whoever awaits it). */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/**
 * What an opener of {@link createConvoStore} resolves to: the convo, or the
 * convo with what the opener learned on the way (the lockout of the
 * session it started, the convo's state).
 */
export type ConvoOpening =
  | Convo
  | { convo: Convo; lockout?: LockoutSnapshot | null; convoState?: ConvoState | null | PromiseLike<ConvoState | null> };

/** The first retry of a failed opening, and the longest wait, in ms. */
const OPEN_RETRY_MS = 1_000;
const OPEN_RETRY_CAP_MS = 30_000;

interface Outgoing {
  key: string;
  text: string;
  options: SendOptions | undefined;
  createdAt: string;
  status: "pending" | "failed";
  error: StoreError | null;
}

/**
 * Creates a store over a convo: an opener (`createConvoStore(() =>
 * valet.openConvo({ convoId }))`, which `reopen()` calls again), the promise
 * of a convo, or an open one. Until it is open the store is `connecting`.
 * An opening that fails in a way that may pass ({@link mayPass}: e.g. an
 * opener that starts a session while the device is offline) is tried
 * again with backoff, cut short by the browser's `online` event, while the
 * store is `reconnecting` with the error (a promise can't be tried again);
 * a definite refusal leaves it `stopped` with the error, until `reopen()`.
 */
export function createConvoStore(
  convo: Convo | PromiseLike<ConvoOpening> | (() => ConvoOpening | PromiseLike<ConvoOpening>),
  options: ConvoStoreOptions = {},
): ConvoStore {
  let lockout = options.lockout;
  const blocked = sendBlock(INITIAL, lockout);
  let state: ConvoStoreState = blocked ? Object.freeze({ ...INITIAL, canSend: false, cannotSend: blocked }) : INITIAL;
  const opener = typeof convo === "function" ? convo : null;
  let current: Convo | null = null;
  let closed = false;
  let stateEvent = false;
  let everConnected = false;
  // Since the agent's last failure report: a send was made; a turn ended.
  let sentSinceReport = false;
  let reportTurnEnded = false;
  const listeners = new Set<(state: ConvoStoreState) => void>();
  // The app's own event handlers (`store.on`), by event.
  const taps = new Map<string, Set<(payload: never) => void>>();
  const tap = (event: string, payload: unknown): void => {
    for (const h of [...(taps.get(event) ?? [])]) {
      try {
        (h as (p: unknown) => void)(payload);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  };
  const unsubscribes: Array<() => void> = [];
  // Server messages in delivery order (the SDK delivers each once, in order).
  const received: ChatMessage[] = [];
  const seen = new Set<string>();
  // Sent from here, no server copy yet: shown after every received message.
  let outgoing: Outgoing[] = [];
  // Replies being written (`streaming`), by the id they will have: their
  // pieces by index. At most a turn's worth: dropped at `turn_done`.
  const writing = new Map<string, { createdAt: string; participant: Participant | null; pieces: (string | undefined)[] }>();
  let opened: Promise<Convo>;
  // The opening under way: a newer one (reopen) or close() ends it.
  let generation = 0;

  function publish(patch: Partial<ConvoStoreState>, messagesChanged = false): void {
    const next = { ...state, ...patch, ...(messagesChanged ? { messages: view() } : {}) };
    const cannotSend = sendBlock(next, lockout);
    if (!sameBlock(cannotSend, state.cannotSend)) Object.assign(next, { canSend: cannotSend === null, cannotSend });
    state = Object.freeze(next);
    for (const listener of [...listeners]) {
      try {
        listener(state);
      } catch (err) {
        // One broken view must not starve the others.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }

  function view(): readonly ChatMessage[] {
    const streaming = [...writing].map(
      ([id, w]): ChatMessage => ({
        key: id,
        id,
        content: written(w.pieces),
        from: "ai_agent",
        createdAt: w.createdAt,
        participant: w.participant,
        files: [],
        status: "streaming",
        error: null,
        message: null,
      }),
    );
    const pending = outgoing.map(
      (o): ChatMessage => ({
        key: o.key,
        id: null,
        content: o.text,
        from: "appuser",
        createdAt: o.createdAt,
        participant: null,
        files: [],
        status: o.status,
        error: o.error,
        message: null,
      }),
    );
    return Object.freeze(received.concat(streaming, pending));
  }

  /** The text the pieces make, up to the first one missing. */
  function written(pieces: (string | undefined)[]): string {
    let text = "";
    for (const p of pieces) {
      if (p === undefined) break;
      text += p;
    }
    return text;
  }

  function onDelta(e: MessageDeltaEvent): void {
    if (seen.has(e.message_id)) return; // completed already
    let w = writing.get(e.message_id);
    if (!w) {
      w = { createdAt: new Date().toISOString(), participant: null, pieces: [] };
      writing.set(e.message_id, w);
    }
    if (w.pieces[e.index] !== undefined) return; // a piece told twice
    w.pieces[e.index] = e.delta;
    // The text is showing: no thinking indicator over it.
    publish({ typing: null }, true);
  }

  function onMessage({ message }: MessageEvent): void {
    if (seen.has(message.id)) return;
    seen.add(message.id);
    // A streamed reply, completed: it takes its own place (same key).
    writing.delete(message.id);
    let key = message.id;
    if (message.from === "appuser") {
      // The server's copy of a message sent from here: it takes the pending
      // bubble's place (oldest first, so two equal texts pair up in order).
      const i = outgoing.findIndex((o) => o.text === message.content);
      if (i >= 0) {
        key = outgoing[i].key;
        outgoing = outgoing.filter((_, j) => j !== i);
      }
    }
    received.push(
      Object.freeze({
        key,
        id: message.id,
        content: message.content,
        from: message.from,
        createdAt: message.created_at,
        participant: message.participant ?? null,
        files: message.files ?? [],
        status: "sent" as const,
        error: null,
        message,
      }),
    );
    // Any message ends a typing indicator.
    publish({ typing: null }, true);
  }

  function attach(c: Convo): void {
    current = c;
    everConnected = false;
    unsubscribes.push(
      c.on("message", onMessage),
      c.on("typing", (e) =>
        publish(e.state === "start"
          ? { typing: { kind: e.kind, label: e.label || null }, turn: turnState(e.kind, null, null) }
          : { typing: null })),
      ...(options.streaming ? [c.on("delta", onDelta)] : []),
      c.on("turn_done", (e) => {
        // A reply that was being written and never completed (the turn
        // failed) goes; a stored one comes back with the next reconcile.
        const dropped = writing.size > 0;
        writing.clear();
        if (dropped) publish({}, true);
        const turn = turnState("done", e.reason, e.retry_after_seconds ?? null);
        // The agent's failure report ends with a turn it completed, or with
        // the end of a later turn than its own (the first to end after it)
        // that the user started after the report.
        const later = reportTurnEnded && sentSinceReport;
        reportTurnEnded = true;
        const past = state.error?.code === "server" && (e.reason === "ok" || later);
        publish(past ? { typing: null, turn, error: null } : { typing: null, turn });
      }),
      c.on("convo_state", (e) => {
        stateEvent = true;
        // A closed convo shows its closed state, not its last turn's failure.
        const stale = CLOSED_STATES.includes(e.state) && state.error?.code === "server";
        publish({ convoState: e.state, convoStateText: e.closed_user_message, typing: null, ...(stale ? { error: null } : {}) });
      }),
      c.on("error", (e: ConvoErrorPayload) => {
        if (!("reason" in e)) return publish({ error: e.error });
        sentSinceReport = false;
        reportTurnEnded = false;
        publish({ typing: null, error: valetError("server", "the agent reported a temporary failure; try again", { body: e }) });
      }),
      c.on("status", ({ status }) => {
        if (status === state.status) return;
        const patch: { -readonly [K in keyof ConvoStoreState]?: ConvoStoreState[K] } = { status };
        if (status === "connected") {
          // Back after a loss. Not from `connecting`: that is the first
          // connection, which the opening's events replay after attach.
          if (everConnected && state.status !== "connecting") patch.reconnects = state.reconnects + 1;
          everConnected = true;
          if (state.error?.code !== "server") patch.error = null;
        }
        publish(patch);
      }),
      c.on("role", ({ role }) => publish({ role })),
      c.on("restored_send", (e) => {
        const o = outgoing.find((m) => m.key === e.key);
        if (e.state === "pending") {
          if (o || received.some((m) => m.key === e.key)) return;
          outgoing = [...outgoing, { key: e.key, text: e.text, options: undefined, createdAt: e.created_at, status: "pending", error: null }];
          publish({}, true);
        } else if (e.state === "failed" && o) {
          o.status = "failed";
          o.error = e.error ?? null;
          outgoing = [...outgoing];
          publish({ error: o.error }, true);
        }
      }),
      // After the store's own handlers: the app's see the state they produced.
      ...CONVO_EVENTS.map((event) => c.on(event, (payload: unknown) => tap(event, payload))),
    );
    const status = c.status;
    if (status === "connected") everConnected = true;
    publish({ convoId: c.convoId, status, role: c.role });
  }

  async function deliver(o: Outgoing): Promise<void> {
    try {
      if (state.status === "stopped") throw state.error ?? closedError("the connection stopped");
      const c = current ?? (await opened);
      await c.send(o.text, { ...o.options, idempotencyKey: o.key });
      // A send that went through ends a connection or send error, not the
      // agent's failure report (its turn is still to come).
      if (state.error && state.error.code !== "server") publish({ error: null });
    } catch (err) {
      const error = err as ValetError;
      if (outgoing.includes(o)) {
        o.status = "failed";
        o.error = error;
        outgoing = [...outgoing];
        publish({ error }, true);
      }
      throw error;
    }
  }

  function followConvoState(convoState: ConvoStoreOptions["convoState"]): void {
    if (convoState == null) return;
    Promise.resolve(convoState).then(
      (known) => {
        if (!closed && !stateEvent && known != null) publish({ convoState: known });
      },
      () => {}, // unknown: stays null
    );
  }
  followConvoState(options.convoState);

  /** Waits `ms`, or until the browser is back online. */
  function pause(ms: number): Promise<void> {
    const page = typeof window === "object" && typeof window?.addEventListener === "function" ? window : null;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        page?.removeEventListener("online", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      page?.addEventListener("online", done);
    });
  }

  /** Opens (again): the opener's result, tried again while failures may pass. */
  function open(): Promise<Convo> {
    const mine = ++generation;
    const ended = (): boolean => closed || mine !== generation;
    const attempt = async (failures: number): Promise<Convo> => {
      let opening: ConvoOpening;
      try {
        opening = await (opener ? opener() : (convo as Convo | PromiseLike<ConvoOpening>));
      } catch (err) {
        if (ended()) throw err;
        if (!opener || !mayPass(err)) {
          publish({ status: "stopped", error: err as ValetError });
          throw err;
        }
        publish({ status: "reconnecting", error: err as ValetError });
        // Jittered, doubling from a second to half a minute.
        const ms = Math.min(OPEN_RETRY_CAP_MS, OPEN_RETRY_MS * 2 ** Math.min(failures, 5)) * (0.5 + Math.random() / 2);
        await pause(ms);
        if (ended()) throw closedError();
        return attempt(failures + 1);
      }
      const c = "convo" in opening ? opening.convo : opening;
      if (ended()) {
        c.close();
        throw closedError();
      }
      if ("convo" in opening) {
        if (opening.lockout !== undefined) lockout = opening.lockout;
        followConvoState(opening.convoState);
      }
      attach(c);
      return c;
    };
    return handled(attempt(0)); // reported through the state and by send()
  }
  opened = open();

  const store: ConvoStore = {
    getState: () => state,
    subscribe(listener) {
      listeners.add(listener);
      listener(state);
      return () => {
        listeners.delete(listener);
      };
    },
    send(text, sendOptions) {
      if (closed) return handled(Promise.reject(closedError()));
      const o: Outgoing = {
        key: sendOptions?.idempotencyKey ?? newKey(),
        text,
        options: sendOptions,
        createdAt: new Date().toISOString(),
        status: "pending",
        error: null,
      };
      outgoing = [...outgoing, o];
      sentSinceReport = true;
      publish({ turn: INITIAL.turn }, true); // a new turn starts
      return handled(deliver(o));
    },
    retry(key) {
      if (closed) return handled(Promise.reject(closedError()));
      const o = outgoing.find((m) => m.key === key && m.status === "failed");
      if (!o) return Promise.resolve();
      o.status = "pending";
      o.error = null;
      outgoing = [...outgoing];
      publish({}, true);
      return handled(deliver(o));
    },
    reopen() {
      if (closed) return handled(Promise.reject(closedError()));
      if (state.status !== "stopped") return Promise.resolve();
      if (!opener && current) {
        // A convo given as it is: it restarts itself.
        current.resume();
        return Promise.resolve();
      }
      if (!opener) {
        return handled(Promise.reject(valetError("invalid_argument", "reopen() needs a store made with an opener: createConvoStore(() => valet.openConvo({ convoId }))")));
      }
      for (const off of unsubscribes.splice(0)) off();
      current?.close();
      current = null;
      publish({ status: "connecting", error: null, typing: null });
      opened = open();
      return handled(opened.then(() => undefined));
    },
    close() {
      if (closed) return;
      closed = true;
      generation++;
      for (const off of unsubscribes.splice(0)) off();
      current?.close();
      publish({ status: "closed", typing: null });
      listeners.clear();
    },
    get convo() {
      return current;
    },
    on(event, handler) {
      let set = taps.get(event);
      if (!set) taps.set(event, (set = new Set()));
      const entry = handler as (payload: never) => void;
      set.add(entry);
      return () => {
        set.delete(entry);
      };
    },
  };
  return store;
}

/** Every event of a convo (what `store.on` forwards; checked complete against `ConvoEventMap`). */
export const CONVO_EVENTS = Object.freeze(
  Object.keys({ message: 0, typing: 0, convo_state: 0, turn_done: 0, ready: 0, closed: 0, error: 0, status: 0, role: 0, delta: 0, restored_send: 0 } satisfies Record<keyof ConvoEventMap, 0>),
) as readonly (keyof ConvoEventMap)[];

/** How a binding is told which convo to show. */
export type ConvoSpec =
  | string
  | "new"
  | (() => string | { convoId: string; lockout?: LockoutSnapshot | null } | PromiseLike<string | { convoId: string; lockout?: LockoutSnapshot | null }>)
  | null
  | undefined;

/** What a binding needs of the client to start a convo (`convoId: "new"`). */
export interface SessionStarter {
  startSession?(): Promise<{ convoId: string; lockout?: LockoutSnapshot | null }>;
}

/**
 * Resolves `"new"` (a session started with `startSession()`, its lockout
 * kept) or a function (called, awaited) to a convo id; a string is itself.
 *
 * @internal
 */
export async function resolveConvoSpec(
  client: ConvoOpener & SessionStarter,
  spec: Exclude<ConvoSpec, null | undefined>,
): Promise<{ convoId: string; lockout?: LockoutSnapshot | null }> {
  if (typeof spec === "function") {
    const r = await spec();
    return typeof r === "string" ? { convoId: r } : r;
  }
  if (spec === "new") {
    if (!client.startSession) throw valetError("invalid_argument", 'convoId "new" needs a client with startSession()');
    const { convoId, lockout } = await client.startSession();
    return { convoId, lockout };
  }
  return { convoId: spec };
}

/**
 * The rejection of an action of a framework binding with no convo open.
 *
 * @internal
 */
export function notOpen(): Promise<never> {
  return handled(Promise.reject(closedError("no convo is open (convoId is empty, or the component is not mounted)")));
}

function closedError(message = "the convo store is closed"): ValetError {
  return valetError("closed", message);
}

/** What {@link retainConvoStore} opens convos with: a `ValetClient`. */
export interface ConvoOpener {
  openConvo(options: { convoId: string }): Promise<Convo>;
  listConvos?(): Promise<ConvoSummary[]>;
}

/**
 * A convo's state from `listConvos()`, for `createConvoStore`'s
 * `convoState` option (`null` if the client can't list convos).
 */
export function convoStateOf(client: ConvoOpener, convoId: string): Promise<ConvoState | null> | null {
  return client.listConvos ? client.listConvos().then((list) => list.find((c) => c.id === convoId)?.state ?? null) : null;
}

interface Shared {
  store: ConvoStore;
  refs: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const shared = new WeakMap<ConvoOpener, Map<unknown, Shared>>();

/**
 * The opener of a convo given as `"new"` or a function: resolves it (see
 * {@link ConvoSpec}), then opens the convo, with the session's lockout and
 * the convo's state. Each call resolves again: a store tries it again
 * while failures may pass, and `reopen()` calls it.
 *
 * @internal
 */
export function specOpener(
  client: ConvoOpener & SessionStarter,
  spec: Exclude<ConvoSpec, null | undefined>,
  lockout?: LockoutSnapshot | null,
): () => Promise<ConvoOpening> {
  return async () => {
    const r = await resolveConvoSpec(client, spec);
    const convo = await client.openConvo({ convoId: r.convoId });
    return { convo, lockout: r.lockout ?? lockout, convoState: convoStateOf(client, r.convoId) };
  };
}

/**
 * One store per (client, convo) for every view that shows it: the first
 * `retainConvoStore` opens the convo, and the store closes once every
 * holder has called `release()` and none came back within the same task.
 * That is what makes React Strict Mode's mount → unmount → mount open one
 * stream, not two. Used by `@valet.red/sdk/react` and `/vue`.
 *
 * With `opener`, `key` is any value that names the store (a view's own
 * object, for a convo it opens with `"new"` or a function) and the store
 * opens with `opener`; without, `key` is the convo id.
 */
export function retainConvoStore(
  client: ConvoOpener,
  key: string | object,
  lockout?: LockoutSnapshot | null,
  options: Pick<ConvoStoreOptions, "streaming"> = {},
  opener?: () => Promise<ConvoOpening>,
): { store: ConvoStore; release: () => void } {
  let byId = shared.get(client);
  if (!byId) shared.set(client, (byId = new Map()));
  const convoId = key;
  let entry = byId.get(key);
  if (!entry || entry.store.getState().status === "closed") {
    let store: ConvoStore;
    if (opener) {
      store = createConvoStore(opener, { lockout, streaming: options.streaming });
    } else {
      const id = String(key);
      store = createConvoStore(() => client.openConvo({ convoId: id }), { convoState: convoStateOf(client, id), lockout, streaming: options.streaming });
    }
    entry = { store, refs: 0, timer: undefined };
    byId.set(key, entry);
  }
  const held = entry;
  const map = byId;
  held.refs += 1;
  clearTimeout(held.timer);
  held.timer = undefined;
  let released = false;
  return {
    store: held.store,
    release() {
      if (released) return;
      released = true;
      held.refs -= 1;
      if (held.refs > 0) return;
      held.timer = setTimeout(() => {
        if (held.refs > 0) return;
        held.store.close();
        if (map.get(convoId) === held) map.delete(convoId);
      }, 0);
    },
  };
}
