/**
 * `@valet.red/sdk/testing`: the real SDK against a scripted, in-memory Valet
 * API, for app tests (Vitest, Jest, `node:test`) and Storybook.
 *
 * ```js
 * import { createMockValet } from "@valet.red/sdk/testing";
 * import { createConvoStore } from "@valet.red/sdk";
 *
 * const mock = createMockValet();                       // mock.client is a real ValetClient
 * const { convoId } = await mock.client.startSession();
 * const store = createConvoStore(mock.client.openConvo({ convoId }));
 * await store.send("Where is my order?");               // the agent echoes it (or script it yourself)
 * mock.convo(convoId).reply("It ships today.", { typing: true });
 * mock.convo(convoId).disconnect();                      // the SDK reconnects and reconciles, as in production
 * mock.close();
 * ```
 *
 * What runs is the SDK itself (the wasm's stream parsing, dedupe, ordering,
 * reconnects, tabs and tokens, and the store): only the network is replaced.
 * The mock answers requests to its own base URL (`https://mock-N.valet.test`,
 * unique per mock) by routing the global `fetch` for that origin only;
 * every other request goes to the real `fetch`. Streams use the SDK's
 * `fetch` transport.
 *
 * Time: the mock uses `setTimeout` only (the agent's `replyDelayMs`, 0 by
 * default) and the SDK its own timers and `Date.now()`, so a runner's fake
 * timers control both, provided they fake `Date` too (`vi.useFakeTimers()`
 * and `jest.useFakeTimers()` do; `node:test`: `mock.timers.enable({ apis:
 * ["setTimeout", "Date"] })`). Advance them with the async variants
 * (`vi.advanceTimersByTimeAsync`): the SDK's work between timers is
 * promises.
 *
 * @module
 */
import { ValetClient } from "./index.js";
import type {
  ConvoState,
  Message,
  MessageFile,
  Participant,
  TurnDoneReason,
  TypingKind,
  ValetClientOptions,
} from "./wasm/valet_wasm.js";

/** The routes of the Valet v2 API, as {@link MockValet.fail} and {@link MockValet.requests} name them. */
export type MockRoute = "sessions" | "list_convos" | "history" | "events" | "stream_message" | "upload_file";

/** A request the SDK made to the mock. */
export interface MockRequest {
  readonly route: MockRoute;
  readonly convoId: string | null;
  /** `stream_message`'s JSON body; `null` for the others. */
  readonly body: unknown;
}

/** Options of {@link createMockValet}. */
export interface MockValetOptions {
  /** The agent's id (a UUID); a fixed one by default. */
  agentId?: string;
  /** The user the mock's tokens speak for (`source_key`). Default `"test-user"`. */
  sourceKey?: string;
  /**
   * How the agent answers each message the user sends. Default: after
   * `replyDelayMs`, `typing` start, a reply `You said: "…"`, `typing` stop,
   * `turn_done` `ok`. A function scripts it (the convo is yours to drive);
   * `false`: the agent stays silent.
   */
  agent?: false | ((message: Message, convo: MockConvo) => void | Promise<void>);
  /** The default agent's pause before it answers (ms, `setTimeout`). Default 0. */
  replyDelayMs?: number;
  /** More options for the client (`debug`, `onEvent`, `pauseOnHidden`…). */
  clientOptions?: Partial<ValetClientOptions>;
}

/** A convo of the mock: its stored messages, and the server's side to script. */
export interface MockConvo {
  readonly id: string;
  /** Every stored message, in order. */
  readonly messages: readonly Message[];
  readonly state: ConvoState;
  /** Streams the SDK holds open on this convo now. */
  readonly streams: number;
  /** Stores a message from the agent (or a human agent) and sends it on every stream; with `typing`, a typing start before it and stop after. */
  reply(text: string, options?: { from?: "ai_agent" | "human_agent"; typing?: boolean; files?: MessageFile[] }): Message;
  /** Streams a reply piece by piece (`message_delta` frames; the pieces default to its words), then stores and sends it. */
  streamReply(text: string, options?: { pieces?: string[]; gapMs?: number }): Promise<Message>;
  typing(state: "start" | "stop", kind?: TypingKind, label?: string): void;
  turnDone(reason?: TurnDoneReason, retryAfterSeconds?: number): void;
  /** Changes the convo's state (`closed_user_message` defaults to a text for every state but `open`). */
  setState(state: ConvoState, closedUserMessage?: string | null): void;
  /** A server `error` frame (the agent's temporary failure). */
  error(): void;
  /** Ends every live stream: with a `closed` frame of that reason, or `"drop"` (cut, no frame). */
  disconnect(how?: "server_cap" | "shutdown" | "auth_expiring" | "stalled" | "drop"): void;
}

/** See {@link createMockValet}. */
export interface MockValet {
  /** A real `ValetClient`, served by this mock. */
  readonly client: ValetClient;
  readonly baseUrl: string;
  readonly agentId: string;
  /** Every request the SDK made, in order. */
  readonly requests: readonly MockRequest[];
  /** A new convo of the user (as if started elsewhere), with messages already in it. */
  createConvo(init?: { state?: ConvoState; messages?: Array<{ content: string; from?: Message["from"] }> }): MockConvo;
  /** The convo with this id (started with `client.startSession()` or {@link createConvo}). */
  convo(convoId: string): MockConvo;
  /** The next `count` requests to `route` fail with `status` (a 429 carries `retryAfterSeconds`). */
  fail(route: MockRoute, status: number, options?: { count?: number; retryAfterSeconds?: number }): void;
  /** Ends every stream and stops answering; the client's convos should be closed first. */
  close(): void;
}

const DEFAULT_AGENT = "00000000-0000-4000-8000-0000000000aa";
const CLOSED_TEXT: Partial<Record<ConvoState, string>> = {
  escalated: "A teammate is taking it from here.",
  resolved: "This conversation has been resolved.",
};

/** The mocks answering now, by base URL; the global `fetch` routes to them while any lives. */
const mocks = new Map<string, (request: Request) => Promise<Response>>();
let realFetch: typeof fetch | null = null;
let counter = 0;

function route(add: boolean, base: string, handler?: (request: Request) => Promise<Response>): void {
  if (add && handler) mocks.set(base, handler);
  else mocks.delete(base);
  if (mocks.size > 0 && realFetch === null) {
    realFetch = globalThis.fetch;
    const original = realFetch;
    globalThis.fetch = function mockRouter(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      for (const [b, h] of mocks) {
        if (url.startsWith(b + "/")) return h(input instanceof Request && init === undefined ? input : new Request(input, init));
      }
      return original(input, init);
    } as typeof fetch;
  } else if (mocks.size === 0 && realFetch !== null) {
    globalThis.fetch = realFetch;
    realFetch = null;
  }
}

const b64url = (s: string): string => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", date: new Date().toUTCString(), ...headers } });

/**
 * A mock Valet API and a real client of it. The user's messages are stored
 * and answered by the agent script; `mock.convo(id)` drives the server's
 * side: replies, typing, turn ends, state changes, errors, disconnects.
 */
export function createMockValet(options: MockValetOptions = {}): MockValet {
  const n = ++counter;
  const baseUrl = `https://mock-${n}.valet.test`;
  const agentId = options.agentId ?? DEFAULT_AGENT;
  const sourceKey = options.sourceKey ?? "test-user";
  const requests: MockRequest[] = [];
  const faults = new Map<MockRoute, { status: number; count: number; retryAfterSeconds?: number }>();
  const convos = new Map<string, ConvoRecord>();
  const drafts = new Map<string, { convoId: string; files: MessageFile[] }>();
  let closed = false;
  let ids = 0;
  const newId = (): string => `${n.toString(16).padStart(8, "0")}-0000-4000-8000-${(++ids).toString(16).padStart(12, "0")}`;

  interface Stream {
    controller: ReadableStreamDefaultController<Uint8Array>;
    ping: ReturnType<typeof setInterval>;
    ended: boolean;
  }
  interface ConvoRecord {
    handle: MockConvo;
    messages: Message[];
    state: ConvoState;
    createdAt: string;
    streams: Set<Stream>;
    turn: number;
  }
  const encoder = new TextEncoder();
  const participant = (from: Message["from"]): Participant | null =>
    from === "appuser" ? null : from === "ai_agent"
      ? { id: agentId, kind: "ai_agent", name: "Mock Agent", photo_url: "", initial: "M" }
      : { id: "mock-human", kind: "human_agent", name: "Sam (mock)", photo_url: "", initial: "S" };

  function send(c: ConvoRecord, event: string, frame: Record<string, unknown>): void {
    const bytes = encoder.encode(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...frame })}\n\n`);
    for (const s of c.streams) if (!s.ended) s.controller.enqueue(bytes);
  }

  /** Takes a stream off its convo (once), stops its pings, and `finish`es its body as the reader is to see it. */
  function detach(c: ConvoRecord, s: Stream, finish?: (body: ReadableStreamDefaultController<Uint8Array>) => void): void {
    if (s.ended) return;
    s.ended = true;
    clearInterval(s.ping);
    c.streams.delete(s);
    try {
      finish?.(s.controller);
    } catch {
      /* already closed by the reader */
    }
  }

  /** The server ends a stream: a `closed` frame with `how` as its reason, or cut (`"drop"`). */
  function end(c: ConvoRecord, s: Stream, how: string): void {
    if (s.ended) return;
    if (how !== "drop") s.controller.enqueue(encoder.encode(`event: closed\ndata: ${JSON.stringify({ type: "closed", reason: how })}\n\n`));
    detach(c, s, how === "drop" ? (body) => body.error(new TypeError("network error (mock: stream dropped)")) : (body) => body.close());
  }

  function store(c: ConvoRecord, content: string, from: Message["from"], files: MessageFile[] = [], id = newId()): Message {
    if (from === "appuser") c.turn += 1;
    const message = {
      id, content, from, turn_number: c.turn, created_at: new Date().toISOString(), participant: participant(from), files, seq: c.messages.length + 1,
    } as Message;
    c.messages.push(message);
    send(c, "message", { action: "create", agent_id: agentId, convo_id: c.handle.id, message });
    return message;
  }

  function convo(id: string, state: ConvoState = "open"): ConvoRecord {
    const c: ConvoRecord = { handle: null as unknown as MockConvo, messages: [], state, createdAt: new Date().toISOString(), streams: new Set(), turn: 0 };
    c.handle = {
      id,
      get messages() { return c.messages.slice(); },
      get state() { return c.state; },
      get streams() { return c.streams.size; },
      reply(text, o = {}) {
        if (o.typing) this.typing("start");
        const m = store(c, text, o.from ?? "ai_agent", o.files ?? []);
        if (o.typing) this.typing("stop");
        return m;
      },
      async streamReply(text, o = {}) {
        const pieces = o.pieces ?? (text.match(/\S+\s*|\s+/g) ?? [text]);
        const messageId = newId();
        for (const [index, delta] of pieces.entries()) {
          send(c, "message_delta", { agent_id: agentId, convo_id: id, message_id: messageId, index, delta });
          if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
        }
        return store(c, pieces.join(""), "ai_agent", [], messageId);
      },
      typing(s, kind = "thinking", label = "") {
        send(c, "typing", { kind, state: s, label, convo_id: id });
      },
      turnDone(reason = "ok", retryAfterSeconds) {
        send(c, "turn_done", { convo_id: id, reason, at: Date.now(), ...(retryAfterSeconds === undefined ? {} : { retry_after_seconds: retryAfterSeconds }) });
      },
      setState(next, text) {
        const prev = c.state;
        c.state = next;
        const closedText = text !== undefined ? text : next === "open" ? null : (CLOSED_TEXT[next] ?? "This conversation is closed.");
        send(c, "convo_state", { agent_id: agentId, convo_id: id, state: next, prev_state: prev, closed_user_message: closedText });
      },
      error() {
        send(c, "error", { convo_id: id, reason: "temporary_failure", at: Date.now() });
      },
      disconnect(how = "drop") {
        for (const s of [...c.streams]) end(c, s, how);
      },
    };
    convos.set(id, c);
    return c;
  }

  async function defaultAgent(message: Message, c: MockConvo): Promise<void> {
    await new Promise((r) => setTimeout(r, options.replyDelayMs ?? 0));
    if (closed) return;
    c.typing("start");
    c.reply(`You said: "${message.content.trim()}"`);
    c.typing("stop");
    c.turnDone("ok");
  }
  const agent = options.agent === undefined ? defaultAgent : options.agent;

  function fault(r: MockRoute, convoId: string | null): Response | null {
    const f = faults.get(r);
    if (!f || f.count <= 0) return null;
    f.count -= 1;
    if (f.status === 429) {
      const retry = f.retryAfterSeconds ?? 1;
      const state = convoId ? (convos.get(convoId)?.state ?? "open") : "open";
      return json(429, { status: "rate_limited", convo_id: convoId, state, retry_after_seconds: retry }, { "retry-after": String(retry) });
    }
    return json(f.status, { code: "mock_fault", message: `mock: ${r} answers ${f.status}` });
  }

  async function handle(request: Request): Promise<Response> {
    if (closed) throw new TypeError("network error (mock closed)");
    const path = new URL(request.url).pathname;
    const m = path.match(/^\/api\/v2\/(sessions|agent_convos)(?:\/([^/]+))?(?:\/(events|stream_message|upload_file))?$/);
    if (!m) return json(404, { code: "not_found", message: `mock: no route ${request.method} ${path}` });
    const convoId = m[2] ? decodeURIComponent(m[2]) : null;
    const r: MockRoute = m[1] === "sessions" ? "sessions" : !convoId ? "list_convos" : ((m[3] as MockRoute | undefined) ?? "history");
    let body: unknown = null;
    if (r === "stream_message") body = await request.json().catch(() => null);
    requests.push(Object.freeze({ route: r, convoId, body }));
    const refused = fault(r, convoId);
    if (refused) return refused;
    if (r === "sessions") {
      const id = newId();
      convo(id);
      return json(200, {
        convo_id: id,
        attachment_policy: { max_files_per_message: 3, max_file_bytes: 10_000_000, allowed_content_types: ["image/png", "image/jpeg", "application/pdf", "text/plain"] },
        lockout: { locked_out: false, expires_at: null, permanent: false, reason: null, user_message: null },
      });
    }
    if (r === "list_convos") {
      const list = [...convos].reverse().map(([id, c]) => ({
        id, state: c.state, closed: !["open", "escalated"].includes(c.state), last_message_at: c.messages.at(-1)?.created_at ?? null, created_at: c.createdAt,
      }));
      return json(200, { agent_convos: list });
    }
    const c = convoId ? convos.get(convoId) : undefined;
    if (!c) return json(404, { code: "convo_not_found", message: "mock: no such convo" });
    if (r === "history") return json(200, { messages: c.messages });
    if (r === "events") {
      let stream: Stream;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          const ping = setInterval(() => controller.enqueue(encoder.encode("event: ping\ndata: {}\n\n")), 15_000);
          (ping as { unref?: () => void }).unref?.();
          stream = { controller, ping, ended: false };
          c.streams.add(stream);
          controller.enqueue(encoder.encode(`event: ready\ndata: ${JSON.stringify({ type: "ready", conn_id: newId() })}\n\n`));
        },
        cancel() {
          detach(c, stream);
        },
      });
      request.signal?.addEventListener("abort", () => detach(c, stream, (body) => body.error(new DOMException("aborted", "AbortError"))));
      return new Response(body, { status: 200, headers: { "content-type": "text/event-stream", date: new Date().toUTCString() } });
    }
    if (r === "upload_file") {
      const form = await request.formData();
      const files: MessageFile[] = [];
      for (const f of form.getAll("files[]")) {
        if (typeof f === "string") continue;
        files.push({ url: `${baseUrl}/files/${encodeURIComponent(f.name)}`, filename: f.name, content_type: f.type || "application/octet-stream", byte_size: f.size } as MessageFile);
      }
      const id = newId();
      drafts.set(id, { convoId: c.handle.id, files });
      return json(200, { message_id: id });
    }
    // stream_message
    const { text = "", message_id: draft } = (body ?? {}) as { text?: string; message_id?: string };
    const files = draft ? (drafts.get(draft)?.files ?? []) : [];
    if (draft) drafts.delete(draft);
    const message = store(c, text, "appuser", files, draft ?? newId());
    if (agent) void Promise.resolve().then(() => agent(message, c.handle)).catch(() => {});
    return json(200, { status: "accepted", message_id: message.id, seq: message.seq, duplicate: false });
  }

  route(true, baseUrl, handle);

  const fetchJwt = async (): Promise<string> => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const claims = { iss: "mock", agent_uuid: agentId, source_key: sourceKey, iat: exp - 3600, exp };
    return `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}.mock`;
  };
  const client = new ValetClient({ pauseOnHidden: false, ...options.clientOptions, agentId, fetchJwt, baseUrl, transport: "fetch" });

  return {
    client,
    baseUrl,
    agentId,
    get requests() { return requests.slice(); },
    createConvo(init = {}) {
      const c = convo(newId(), init.state ?? "open");
      for (const m of init.messages ?? []) store(c, m.content, m.from ?? "ai_agent");
      return c.handle;
    },
    convo(convoId) {
      const c = convos.get(convoId);
      if (!c) throw new Error(`mock: no convo ${convoId}`);
      return c.handle;
    },
    fail(r, status, o = {}) {
      faults.set(r, { status, count: o.count ?? 1, retryAfterSeconds: o.retryAfterSeconds });
    },
    close() {
      if (closed) return;
      closed = true;
      for (const c of convos.values()) c.handle.disconnect("shutdown");
      route(false, baseUrl);
    },
  };
}
