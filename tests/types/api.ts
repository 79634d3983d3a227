// The public surface is typed: events by name, promises, errors. Each
// `@ts-expect-error` fails the build if the typing it guards goes loose.
import { ValetClient, type Convo, type ValetError, type ConvoSummary, type StartSessionResult } from "@valet.red/sdk";
import { createConvoStore, init, type ChatMessage, type ConvoStoreState, type StoreError } from "@valet.red/sdk";
import { useConvo as useReactConvo } from "@valet.red/sdk/react";
import { useConvo as useVueConvo } from "@valet.red/sdk/vue";
import { ref } from "vue";

declare const convo: Convo;
const valet = new ValetClient({ agentId: "a", fetchJwt: () => "jwt", transport: "eventsource", pauseOnHidden: false });

export async function typed() {
  const session: StartSessionResult = await valet.startSession();
  const cid: string = session.convoId;
  const max: number = session.attachmentPolicy.max_files_per_message;
  const convos: ConvoSummary[] = await valet.listConvos();
  const c: Convo = await valet.openConvo({ convoId: cid });
  const off: () => void = c.on("message", (e) => {
    const text: string = e.message.content;
    const fromHistory: true | undefined = e.from_reconcile;
    const seq: number | undefined = e.message.seq;
    void [text, fromHistory, seq];
  });
  off();
  c.on("typing", (e) => { const s: "start" | "stop" = e.state; void s; });
  c.on("turn_done", (e) => { const r: string = e.reason; void r; });
  c.on("convo_state", (e) => { const closedText: string | null = e.closed_user_message; void closedText; });
  c.on("closed", (e) => { const r: "server_cap" | "shutdown" | "auth_expiring" | "stalled" = e.reason; void r; });
  c.on("error", (e) => {
    if ("reason" in e) { const r: "temporary_failure" = e.reason; const at: number = e.at; void [r, at]; return; }
    const { error, phase, stage } = e;
    if (error.code === "rate_limited") { const s: number | undefined = error.retryAfterSeconds; void s; }
    const p: "stream" | "fetch" | "auth" = phase;
    void [p, stage];
  });
  c.on("status", (e) => { const st: string = e.status; void st; });
  c.on("role", (e) => { const r: "leader" | "follower" = e.role; const g: number = e.generation; void [r, g]; });
  c.on("delta", (e) => { const t: "message_delta" = e.type; const id: string = e.message_id; const i: number = e.index; const d: string = e.delta; void [t, id, i, d]; });
  // The durable outbox: sends restored after a reload, and a send's own key.
  c.on("restored_send", (e) => {
    const k: string = e.key, text: string = e.text, at: string = e.created_at;
    const st: "pending" | "sent" | "failed" = e.state;
    const code: string | undefined = e.error?.code;
    void [k, text, at, st, code];
  });
  await c.send("again", { idempotencyKey: "3f1c2b0e-0000-4000-8000-000000000001" });
  // The local history: an option, a flag on cached messages, a way to clear it.
  const local = new ValetClient({ agentId: "a", fetchJwt: () => "jwt", persist: "local" });
  c.on("message", (e) => { const cached: true | undefined = e.from_cache; void cached; });
  const cleared: Promise<void> = local.clearLocalData();
  await cleared;
  // @ts-expect-error: persist is "local" or "none"
  new ValetClient({ agentId: "a", fetchJwt: () => "jwt", persist: "session" });
  const myRole: "leader" | "follower" = c.role;
  void myRole;
  await c.send("hi", { files: [new Blob(["x"])] });
  const status: string = c.status;
  void [max, convos, status];
  try { await c.send("x"); } catch (e) { const v = e as ValetError; const code: string = v.code; void code; }
  // Resilient sends: an AbortSignal, resolve once queued; metrics; onEvent.
  await c.send("bounded", { signal: AbortSignal.timeout(30_000) });
  await c.send("fire and forget", { resolveWhenQueued: true });
  try { await c.send("x"); } catch (e) { const v = e as ValetError; const maybe: boolean | undefined = v.maybeStored; void maybe; }
  const m = c.metrics();
  const counts: number[] = [m.reconnects, m.duplicatesDropped, m.gapsFilled, m.leaderChanges, m.tokenRefreshes, m.queuedSends, m.messagesDelivered];
  const lastEventAt: number | undefined = m.lastEventAt ?? undefined;
  void [counts, lastEventAt];
  new ValetClient({ agentId: "a", fetchJwt: () => "jwt", onEvent: (kind: string, payload: unknown) => void [kind, payload] });
  // @ts-expect-error: signal is an AbortSignal
  await c.send("x", { signal: 5 });
  // @ts-expect-error: unknown event names do not type-check
  c.on("nope", () => {});
  // @ts-expect-error: payloads are typed per event
  c.on("typing", (e) => { const m: string = e.message; void m; });
  // @ts-expect-error: agentId is required
  new ValetClient({ fetchJwt: () => "jwt" });
  // @ts-expect-error: send takes a string
  await convo.send(42);
}

export async function bindings() {
  await init();
  const store = createConvoStore(valet.openConvo({ convoId: "c" }));
  const state: ConvoStoreState = store.getState();
  const first: ChatMessage | undefined = state.messages[0];
  const status: "pending" | "failed" | "sent" | "streaming" | undefined = first?.status;
  const streamed = createConvoStore(valet.openConvo({ convoId: "c" }), { streaming: true });
  streamed.close();
  const key: string | undefined = first?.key;
  const off: () => void = store.subscribe(() => {});
  // Svelte's store contract: the listener gets the snapshot.
  const offSvelte: () => void = store.subscribe((snapshot: ConvoStoreState) => { const e: StoreError | null = snapshot.error; void e; });
  offSvelte();
  await store.send("hi");
  void [status, key, off, state.typing?.label, state.convoState, state.role, state.error?.code];
  // @ts-expect-error: the snapshot is read-only
  state.status = "closed";
  // @ts-expect-error: send takes a string
  await store.send(1);

  const r = useReactConvo({ client: valet, convoId: "c", lockout: (await valet.startSession()).lockout });
  const rs: string = r.status;
  const turnPhase: "idle" | "thinking" | "typing" | "done" = r.turn.phase;
  const why: "closed" | "locked_out" | "stopped" | undefined = r.cannotSend?.reason;
  const reopened: Promise<void> = r.reopen();
  const may: boolean = r.canSend;
  void [turnPhase, why, may, r.convoStateText, reopened];
  const rm: readonly ChatMessage[] = r.messages;
  await r.send("hi");
  void [rs, rm];
  // @ts-expect-error: a client is required
  useReactConvo({ convoId: "c" });

  const id = ref<string | null>("c");
  const v = useVueConvo({ client: valet, convoId: id });
  const vs: string = v.status.value;
  const vCan: boolean = v.canSend.value;
  const vTurn: string | null = v.turn.value.reason;
  void [vCan, vTurn];
  const vm: readonly ChatMessage[] = v.messages.value;
  void useVueConvo({ client: valet, convoId: () => id.value });
  void [vs, vm];
  // @ts-expect-error: the refs are read-only
  v.status.value = "closed";
}

// Async iteration narrows on `type`; a filter narrows what is yielded.
export async function iterate(valet: ValetClient, signal: AbortSignal) {
  const convo = await valet.openConvo({ convoId: "c" });
  for await (const ev of convo.events({ signal })) {
    if (ev.type === "message") {
      const text: string = ev.payload.message.content;
      void text;
    } else if (ev.type === "status") {
      const st: string = ev.payload.status;
      void st;
    }
  }
  for await (const ev of convo.events({ events: ["turn_done"] })) {
    const reason: "ok" | "blocked" | "rate_limited" | "closed" | "unavailable" | "temporary_failure" = ev.payload.reason;
    void reason;
  }
  // @ts-expect-error: not an event of a convo
  convo.events({ events: ["nope"] });
  const dispose: () => Promise<void> = () => convo[Symbol.asyncDispose]();
  void dispose;
}

// Getting the convo in the hooks, and their callbacks.
export function hooks(valet: ValetClient) {
  const r = useReactConvo({
    client: valet,
    convoId: "new",
    onMessage: (e) => void e.message.content,
    onTurnDone: (e) => void e.reason,
    onError: (e) => void ("reason" in e ? e.reason : e.error.code),
    onEvent: (e) => void (e.type === "status" ? e.payload.status : e.type),
  });
  const resolved: string | null = r.resolvedConvoId;
  void resolved;
  useReactConvo({ client: valet, convoId: async () => (await valet.startSession()).convoId });
  useReactConvo({ client: valet, convoId: () => "c" });
  // @ts-expect-error: an id, "new" or a function
  useReactConvo({ client: valet, convoId: 42 });
  useVueConvo({ client: valet, convoId: "new", onTurnDone: (e) => void e.reason });
  useVueConvo({ client: valet, convoId: () => valet.startSession().then((s) => s.convoId) });
  const store = createConvoStore(valet.openConvo({ convoId: "c" }));
  const off: () => void = store.on("turn_done", (e) => void e.reason);
  off();
}
