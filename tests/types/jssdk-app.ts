// An app written for the Valet JS SDK 0.3.0, unchanged: it imports the JS
// SDK's exported type names from the package root, types its config and
// handlers with them and calls every method of the contract. It must
// compile against our typings with `tsc --strict`, `skipLibCheck: false`
// and `lib: ["es2022", "dom"]` (tsconfig.json beside it).
//
// `JsSdk` below restates the JS SDK's own declarations (as
// ../../../shared/valet-wire-contract.md lists them): handlers typed with
// them must be accepted by our `on()`, which holds only if what we hand a
// handler is assignable to them (no optional field, no wider union).
import {
  ValetClient,
  ValetError,
  type AnyServerEvent,
  type AttachmentPolicy,
  type ClientEventMap,
  type ClientEventName,
  type ClosedEvent,
  type CloseReason,
  type ConvoState,
  type ConvoStateEvent,
  type LockoutSnapshot,
  type Message,
  type MessageEvent,
  type MessageFile,
  type OpenConvoOptions,
  type Participant,
  type PingEvent,
  type ReadyEvent,
  type ServerErrorEvent,
  type StartSessionResult,
  type TurnDoneEvent,
  type TypingEvent,
  type ValetClientConfig,
} from "@valet.red/sdk";

declare namespace JsSdk {
  interface Participant { id: string; kind: "ai_agent" | "appuser" | "human_agent"; name: string; photo_url: string; initial: string }
  interface MessageFile { url: string; filename: string; content_type: string; byte_size: number }
  interface Message {
    id: string; content: string; from: "appuser" | "ai_agent" | "human_agent"; turn_number: number; created_at: string;
    participant: Participant | null; files: MessageFile[];
  }
  type ConvoState = "open" | "escalated" | "resolved" | "auto_resolved" | "assumed_resolved" | "rage_locked" | "attempted_hack" | "pending_feedback";
  type CloseReason = "server_cap" | "shutdown" | "auth_expiring" | "stalled";
  interface ReadyEvent { type: "ready"; conn_id: string }
  interface MessageEvent { type: "message"; action: "create"; agent_id: string; convo_id: string; message: Message; from_reconcile?: true }
  interface TypingEvent { type: "typing"; kind: "thinking" | "typing"; state: "start" | "stop"; label: string; convo_id: string }
  interface ConvoStateEvent { type: "convo_state"; agent_id: string; convo_id: string; state: ConvoState; prev_state: ConvoState; closed_user_message: string | null }
  interface TurnDoneEvent {
    type: "turn_done"; convo_id: string; reason: "ok" | "blocked" | "rate_limited" | "closed" | "unavailable" | "temporary_failure"; at: number;
    retry_after_seconds?: number;
  }
  interface ServerErrorEvent { type: "error"; convo_id: string; reason: "temporary_failure"; at: number }
  interface PingEvent { type: "ping" }
  interface ClosedEvent { type: "closed"; reason: CloseReason }
  type AnyServerEvent = ReadyEvent | MessageEvent | TypingEvent | ConvoStateEvent | TurnDoneEvent | ServerErrorEvent | PingEvent | ClosedEvent;
  type ClientEventName = "message" | "typing" | "convo_state" | "turn_done" | "ready" | "closed" | "error";
  interface ClientEventMap {
    message: MessageEvent; typing: TypingEvent; convo_state: ConvoStateEvent; turn_done: TurnDoneEvent; ready: ReadyEvent; closed: ClosedEvent;
    error: { error: Error; phase: "stream" | "fetch" | "auth" } | ServerErrorEvent;
  }
  interface AttachmentPolicy { max_files_per_message: number; max_files_per_convo: number; max_file_size_bytes: number; allowed_mime_types: string[] }
  interface LockoutSnapshot { locked_out: boolean; expires_at: string | null; permanent: boolean; reason: "permanent" | "rage" | "hack" | null; user_message: string | null }
  interface ValetClientConfig { agentId: string; fetchJwt: () => Promise<string> | string; baseUrl?: string; debug?: boolean; fetchJwtTimeoutMs?: number; pauseOnHidden?: boolean }
  interface OpenConvoOptions { convoId: string }
  interface StartSessionResult { convoId: string; attachmentPolicy: AttachmentPolicy; lockout: LockoutSnapshot }
}

/** `A` and `B` are the same type, both ways (`true`), else `false`. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** `A` can be handed to code typed with `B`. */
type Fits<A, B> = [A] extends [B] ? true : false;
const ok = <T extends true>(): T => true as T;

// Every exported name has the JS SDK's shape: the same both ways where it is
// a closed set, ours assignable to theirs where we may add fields.
ok<Same<ConvoState, JsSdk.ConvoState>>();
ok<Same<CloseReason, JsSdk.CloseReason>>();
ok<Same<ClientEventName, JsSdk.ClientEventName>>();
ok<Same<Participant, JsSdk.Participant>>();
ok<Same<MessageFile, JsSdk.MessageFile>>();
ok<Fits<Message, JsSdk.Message>>();
ok<Fits<JsSdk.Message, Message>>();
ok<Same<ReadyEvent, JsSdk.ReadyEvent>>();
ok<Fits<MessageEvent, JsSdk.MessageEvent>>();
ok<Same<TypingEvent, JsSdk.TypingEvent>>();
ok<Same<ConvoStateEvent, JsSdk.ConvoStateEvent>>();
ok<Same<TurnDoneEvent, JsSdk.TurnDoneEvent>>();
ok<Same<ServerErrorEvent, JsSdk.ServerErrorEvent>>();
ok<Same<PingEvent, JsSdk.PingEvent>>();
ok<Same<ClosedEvent, JsSdk.ClosedEvent>>();
ok<Fits<AnyServerEvent, JsSdk.AnyServerEvent>>();
ok<Same<AttachmentPolicy, JsSdk.AttachmentPolicy>>();
ok<Same<LockoutSnapshot, JsSdk.LockoutSnapshot>>();
ok<Same<OpenConvoOptions, JsSdk.OpenConvoOptions>>();
ok<Fits<StartSessionResult, JsSdk.StartSessionResult>>();
ok<Fits<JsSdk.ValetClientConfig, ValetClientConfig>>();
ok<Fits<ClientEventMap["error"], JsSdk.ClientEventMap["error"]>>();
for (const name of ["message", "typing", "convo_state", "turn_done", "ready", "closed", "error"] as const) {
  const fits: Fits<ClientEventMap[typeof name], JsSdk.ClientEventMap[typeof name]> = true;
  void fits;
}

// The app.
declare function render(m: JsSdk.Message): void;
declare function showNotice(text: string): void;

const config: ValetClientConfig = {
  agentId: "agent-uuid",
  fetchJwt: async () => (await fetch("/valet-token")).text(),
  baseUrl: "https://api.valet.red/",
  debug: false,
  fetchJwtTimeoutMs: 10_000,
  pauseOnHidden: true,
};
const sdkConfig: JsSdk.ValetClientConfig = config;
const valet = new ValetClient(sdkConfig);

export async function app(files: File[]) {
  const session: StartSessionResult = await valet.startSession();
  const { convoId, attachmentPolicy, lockout } = session;
  if (lockout.locked_out) showNotice(lockout.user_message ?? "You can't chat right now.");
  const canAttach: boolean = attachmentPolicy.max_files_per_message > 0 && attachmentPolicy.allowed_mime_types.length > 0;

  const convos = await valet.listConvos();
  for (const c of convos) {
    const row: { id: string; state: JsSdk.ConvoState; closed: boolean; last_message_at: string | null; created_at: string } = c;
    void row;
  }

  const options: OpenConvoOptions = { convoId };
  const convo = await valet.openConvo(options);

  // Handlers typed with the JS SDK's own declarations.
  const onMessage = ({ message, from_reconcile }: JsSdk.MessageEvent) => { if (!from_reconcile) render(message); };
  const onTyping = (e: JsSdk.TypingEvent) => showNotice(e.state === "start" ? e.label : "");
  const onState = (e: JsSdk.ConvoStateEvent) => { if (e.closed_user_message !== null) showNotice(e.closed_user_message); };
  const onTurn = (e: JsSdk.TurnDoneEvent) => { if (e.reason === "rate_limited") showNotice(`wait ${e.retry_after_seconds ?? 30} s`); };
  const onReady = (e: JsSdk.ReadyEvent) => showNotice(`connected ${e.conn_id}`);
  const onClosed = (e: JsSdk.ClosedEvent) => showNotice(e.reason);
  const onError = (evt: JsSdk.ClientEventMap["error"]) => {
    if ("reason" in evt) showNotice(`the agent failed at ${new Date(evt.at).toISOString()}`);
    else showNotice(`${evt.phase}: ${evt.error.message}`);
  };
  const offs: Array<() => void> = [
    convo.on("message", onMessage),
    convo.on("typing", onTyping),
    convo.on("convo_state", onState),
    convo.on("turn_done", onTurn),
    convo.on("ready", onReady),
    convo.on("closed", onClosed),
    convo.on("error", onError),
  ];
  // And with ours, by the same names.
  convo.on("error", (evt) => {
    if ("reason" in evt) { const frame: ServerErrorEvent = evt; void frame; return; }
    if (evt.error instanceof ValetError && evt.error.code === "rate_limited") showNotice(`retry in ${evt.error.retryAfterSeconds ?? 1} s`);
  });
  const generic = <K extends ClientEventName>(name: K, h: (p: ClientEventMap[K]) => void) => convo.on(name, h);
  generic("message", (e: MessageEvent) => render(e.message));

  await convo.send("Hi, I need help with my order");
  if (canAttach) await convo.send("see attached", { files });
  const draft: string = await convo.uploadFiles(files);
  await convo.send("these too", { messageId: draft });
  convo.pause();
  convo.resume();
  try {
    await convo.send("x");
  } catch (e) {
    if (e instanceof ValetError) showNotice(`${e.code} ${e.status ?? ""}`);
  }
  for (const off of offs) off();
  convo.close();
}
