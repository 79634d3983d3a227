/**
 * `<valet-chat>`: a whole chat with a Valet agent as a standard custom
 * element, for any framework or none.
 *
 * ```html
 * <script type="module" src="https://…/@valet.red/sdk/element.js"></script>
 * <valet-chat agent-id="…" jwt-url="/api/valet-token"></valet-chat>
 * ```
 *
 * It renders the store ({@link createConvoStore}): the messages (a pending
 * bubble becomes the sent one in place, a reply grows as the agent writes
 * it, a refused send shows Retry), typing, the connection, the convo's
 * closed, escalated and locked-out states with the server's text, files,
 * and a send box (Enter sends, Shift+Enter starts a new line). Message text
 * is always text, never HTML; only `http(s)` links become links.
 *
 * Attributes: `agent-id`, `base-url`, `jwt-url` (GET; answers the token as
 * text or as `{ "token": … }`; 401 or 403 means signed out), `base-url`
 * (the Valet API; resolved as a link is, so `"/"` is the page's origin),
 * `convo-id` (a
 * convo id; absent or `"new"`: the user's open convo, else a new one, so a
 * user finds the same chat after a reload), `greeting`, `persist`
 * (`"local"`: see `ValetClient`). Properties: `client` (share a
 * `ValetClient`), `fetchJwt` (instead of `jwt-url`), `strings` (every text
 * shown, to translate), `greeting`, `convoId` (the convo shown), `store`.
 * Events (`CustomEvent`s that bubble out of the shadow root): `message`,
 * `turn_done` and `error` (the convo's events as `detail`), and
 * `statechange` (the store's snapshot).
 *
 * Styling: CSS custom properties (`--valet-accent`, `--valet-bg`,
 * `--valet-fg`, `--valet-muted`, `--valet-bubble`, `--valet-border`,
 * `--valet-danger`, `--valet-radius`, `--valet-font`) and `::part()`
 * (`header`, `status`, `log`, `message`, `bubble`, `text`, `meta`,
 * `file`, `retry`, `typing`, `notice`, `error`, `composer`, `input`,
 * `attach`, `send`, `new-convo`). Light and dark follow
 * `prefers-color-scheme`; its size is the host's (`height` on
 * `valet-chat`).
 *
 * Importing this module defines the element in a browser and does nothing
 * elsewhere (server rendering, Node).
 *
 * @module
 */
import { ValetClient } from "./index.js";
import { ValetError } from "./error.js";
import { convoStateOf, retainConvoStore, type ChatMessage, type ConvoOpening, type ConvoStore, type ConvoStoreState, type StoreError } from "./store.js";
import type { AttachmentPolicy, ConvoState, LockoutSnapshot, MessageFile } from "./wasm/valet_wasm.js";

/** Every text the element shows; `{n}` is replaced where a number goes. */
export interface ValetChatStrings {
  /** The conversation's accessible name. */
  conversation: string;
  you: string;
  agent: string;
  placeholder: string;
  send: string;
  attach: string;
  /** `{name}`: the file's name. */
  removeFile: string;
  retry: string;
  sending: string;
  notSent: string;
  writing: string;
  typing: string;
  thinking: string;
  connecting: string;
  reconnecting: string;
  paused: string;
  stopped: string;
  tryAgain: string;
  empty: string;
  closed: string;
  lockedOut: string;
  newConversation: string;
  /** `{n}`: seconds. */
  rateLimited: string;
  rateLimitedNoTime: string;
  blocked: string;
  unavailable: string;
  errorNetwork: string;
  errorTimeout: string;
  errorSignedOut: string;
  errorForbidden: string;
  errorNotFound: string;
  errorServer: string;
  errorAgent: string;
  errorOther: string;
  /** `{name}`: the file's name. */
  fileTooLarge: string;
  fileType: string;
  /** `{n}`: how many files a message may have. */
  tooManyFiles: string;
  notConfigured: string;
}

/** The English texts ({@link ValetChatStrings}). */
export const DEFAULT_STRINGS: Readonly<ValetChatStrings> = Object.freeze({
  conversation: "Conversation",
  you: "You",
  agent: "Agent",
  placeholder: "Message",
  send: "Send",
  attach: "Attach files",
  removeFile: "Remove {name}",
  retry: "Retry",
  sending: "Sending…",
  notSent: "Not sent",
  writing: "Writing…",
  typing: "Typing…",
  thinking: "Thinking…",
  connecting: "Connecting…",
  reconnecting: "Connection lost. Reconnecting…",
  paused: "Paused while this tab is hidden.",
  stopped: "Disconnected.",
  tryAgain: "Try again",
  empty: "Send a message to start the conversation.",
  closed: "This conversation is closed.",
  lockedOut: "You can't send messages right now.",
  newConversation: "Start a new conversation",
  rateLimited: "Please wait {n} s before your next message.",
  rateLimitedNoTime: "Please wait a moment before your next message.",
  blocked: "The agent can't help with that message.",
  unavailable: "The agent is unavailable right now. Try again later.",
  errorNetwork: "Can't reach the chat. What you send goes once the connection is back.",
  errorTimeout: "The chat is slow to answer. Trying again…",
  errorSignedOut: "You are signed out of the chat.",
  errorForbidden: "That isn't allowed for you right now.",
  errorNotFound: "This conversation no longer exists.",
  errorServer: "The chat had a problem. Trying again…",
  errorAgent: "The agent couldn't answer just now. Send your message again.",
  errorOther: "Something went wrong. Try again.",
  fileTooLarge: "{name} is too large to send.",
  fileType: "{name} is not a kind of file this chat takes.",
  tooManyFiles: "At most {n} files per message.",
  notConfigured: "This chat is not set up: it needs agent-id and jwt-url (or a client).",
});

/** What a person reads for an error: never a raw "TypeError: Failed to fetch". */
export function describeError(error: StoreError, s: ValetChatStrings = DEFAULT_STRINGS): string {
  switch (error.code) {
    case "network":
      return s.errorNetwork;
    case "timeout":
      return s.errorTimeout;
    case "auth":
      return error.status === 403 ? s.errorForbidden : s.errorSignedOut;
    case "rate_limited":
      return error.retryAfterSeconds ? fill(s.rateLimited, error.retryAfterSeconds) : s.rateLimitedNoTime;
    case "server":
      return s.errorAgent;
    case "closed":
      return s.closed;
    case "http":
      if (error.status === 403) return s.errorForbidden;
      if (error.status === 404) return s.errorNotFound;
      if ((error.status ?? 0) >= 500) return s.errorServer;
      return s.errorOther;
    default:
      return s.errorOther;
  }
}

const fill = (text: string, n: number | string, name = "") => text.replaceAll("{n}", String(n)).replaceAll("{name}", name);

/**
 * A `fetchJwt` for a backend that answers GET `url` with the token (as text,
 * or JSON `{ "token": … }`), knowing its user by the page's cookies (sent
 * to the page's own origin). 401 and 403 mean signed out: a `ValetError` of
 * code `auth`, which stops the chat instead of retrying.
 */
export function jwtFromUrl(url: string): () => Promise<string> {
  return async () => {
    const res = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json, text/plain" } });
    if (res.status === 401 || res.status === 403) throw new ValetError(`the token endpoint answered ${res.status}`, { code: "auth" });
    if (!res.ok) throw new Error(`the token endpoint answered ${res.status}`);
    const text = (await res.text()).trim();
    if (!text.startsWith("{")) return text;
    const token: unknown = (JSON.parse(text) as { token?: unknown }).token;
    if (typeof token !== "string") throw new Error("the token endpoint's JSON has no `token` string");
    return token;
  };
}

/** A convo to show, with what was learned finding it. */
interface Target {
  convoId: string;
  lockout: LockoutSnapshot | null;
  /** Known when the element started the session. */
  policy: AttachmentPolicy | null;
  convoState: ConvoState | null;
}

/** The convo a user comes back to: their open (or escalated) one, else a new one. */
async function usersConvo(client: ValetClient): Promise<Target> {
  const current = (await client.listConvos()).find((c) => c.state === "open" || c.state === "escalated");
  if (current) return { convoId: current.id, lockout: null, policy: null, convoState: current.state };
  return newConvo(client);
}

async function newConvo(client: ValetClient): Promise<Target> {
  const { convoId, lockout, attachmentPolicy } = await client.startSession();
  return { convoId, lockout, policy: attachmentPolicy, convoState: "open" };
}

/** `http(s)` URLs in text (a trailing full stop or bracket is not part of one). */
const URLS = /\bhttps?:\/\/[^\s<>"'`]+/gi;

/** `url` if it is an absolute `http(s)` URL, else `null`. */
function safeUrl(url: string, base?: string): string | null {
  try {
    const u = new URL(url, base);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Text as text nodes, its `http(s)` URLs as links that open apart. */
function linkify(text: string): Node[] {
  const nodes: Node[] = [];
  let at = 0;
  for (const m of text.matchAll(URLS)) {
    let url = m[0];
    const trail = /[.,;:!?)\]}]+$/.exec(url);
    if (trail) url = url.slice(0, -trail[0].length);
    const href = safeUrl(url);
    if (!href) continue;
    const index = m.index ?? 0;
    if (index > at) nodes.push(document.createTextNode(text.slice(at, index)));
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = url;
    nodes.push(a);
    at = index + url.length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

const STYLE = `
:host {
  --valet-accent: #1d4ed8; --valet-accent-fg: #fff; --valet-bg: #fff; --valet-fg: #111827;
  --valet-muted: #4b5563; --valet-bubble: #f3f4f6; --valet-border: #d1d5db; --valet-danger: #b91c1c;
  --valet-radius: 1rem; --valet-font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  display: block; height: 32rem; min-width: 0; box-sizing: border-box;
  font: 15px/1.45 var(--valet-font); color: var(--valet-fg); background: var(--valet-bg);
  border: 1px solid var(--valet-border); border-radius: var(--valet-radius); overflow: hidden;
}
@media (prefers-color-scheme: dark) {
  :host {
    --valet-accent: #2563eb; --valet-bg: #111827; --valet-fg: #f9fafb; --valet-muted: #d1d5db;
    --valet-bubble: #1f2937; --valet-border: #4b5563; --valet-danger: #fca5a5;
  }
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.chat { display: flex; flex-direction: column; height: 100%; }
.status { margin: 0; padding: .5rem .75rem; background: var(--valet-bubble); border-block-end: 1px solid var(--valet-border); }
.scroller { flex: 1; overflow-y: auto; padding: .75rem; overscroll-behavior: contain; }
.greeting, .empty { margin: 0 0 .75rem; color: var(--valet-muted); }
.greeting { color: var(--valet-fg); background: var(--valet-bubble); border-radius: var(--valet-radius); padding: .5rem .75rem; max-width: 85%; }
ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .5rem; }
li { display: flex; flex-direction: column; align-items: flex-start; max-width: 85%; }
li.appuser { align-self: end; align-items: flex-end; }
.bubble { background: var(--valet-bubble); border-radius: var(--valet-radius); padding: .5rem .75rem; overflow-wrap: anywhere; }
li.appuser .bubble { background: var(--valet-accent); color: var(--valet-accent-fg); }
li.appuser .bubble a { color: inherit; }
li[data-status="failed"] .bubble { outline: 2px dashed var(--valet-danger); outline-offset: 1px; }
.text { margin: 0; white-space: pre-wrap; }
.meta { font-size: .8rem; color: var(--valet-muted); margin: .15rem .25rem 0; }
li[data-status="failed"] .meta { color: var(--valet-danger); }
.files { display: flex; flex-wrap: wrap; gap: .25rem; margin: .25rem 0 0; padding: 0; list-style: none; }
.files img { display: block; max-width: 12rem; max-height: 12rem; border-radius: calc(var(--valet-radius) / 2); }
a { color: var(--valet-accent); }
@media (prefers-color-scheme: dark) { a { color: #93c5fd; } }
.typing, .notice, .error { margin: 0; padding: .25rem .75rem; }
.typing { color: var(--valet-muted); }
.typing::after { content: "…"; display: inline-block; animation: valet-dots 1.2s steps(4) infinite; overflow: hidden; vertical-align: bottom; width: 0; }
@keyframes valet-dots { to { width: 1.2em; } }
.error { color: var(--valet-danger); }
.composer { display: flex; flex-wrap: wrap; gap: .5rem; align-items: flex-end; padding: .5rem .75rem .75rem; border-block-start: 1px solid var(--valet-border); }
.chosen { flex-basis: 100%; display: flex; flex-wrap: wrap; gap: .25rem; margin: 0; padding: 0; list-style: none; }
.chosen li { flex-direction: row; align-items: center; gap: .25rem; max-width: 100%; background: var(--valet-bubble); border-radius: .5rem; padding: 0 0 0 .5rem; }
textarea { flex: 1; min-width: 0; resize: none; font: inherit; color: inherit; background: var(--valet-bg); border: 1px solid var(--valet-border); border-radius: calc(var(--valet-radius) / 1.5); padding: .45rem .6rem; max-height: 8rem; }
textarea:disabled { opacity: .6; }
button { font: inherit; color: var(--valet-accent-fg); background: var(--valet-accent); border: 0; border-radius: calc(var(--valet-radius) / 1.5); padding: .45rem .9rem; cursor: pointer; min-height: 2.25rem; }
button:disabled { opacity: .5; cursor: default; }
button.quiet { color: var(--valet-fg); background: transparent; border: 1px solid var(--valet-border); }
.chosen button { min-height: 0; padding: .1rem .5rem; }
:focus-visible { outline: 2px solid var(--valet-accent); outline-offset: 2px; }
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip-path: inset(50%); white-space: nowrap; border: 0; }
[hidden] { display: none !important; }
@media (prefers-reduced-motion: reduce) { .typing::after { animation: none; width: auto; } }
@media (prefers-reduced-motion: no-preference) { .scroller { scroll-behavior: smooth; } }
`;

const HTML = `
<div class="chat" part="chat">
  <p class="status" part="status" role="status" hidden></p>
  <div class="scroller" part="scroller">
    <p class="greeting" part="greeting" hidden></p>
    <p class="empty" part="empty" hidden></p>
    <div class="log" part="log" role="log" aria-live="off"><ol></ol></div>
  </div>
  <p class="typing" part="typing" hidden></p>
  <p class="notice" part="notice" role="status" hidden></p>
  <p class="error" part="error" role="alert" hidden></p>
  <form class="composer" part="composer">
    <ul class="chosen" hidden></ul>
    <input class="files-input" type="file" multiple hidden tabindex="-1">
    <button class="attach quiet" part="attach" type="button"></button>
    <textarea part="input" rows="1" autocomplete="off"></textarea>
    <button class="send" part="send" type="submit"></button>
    <button class="new-convo" part="new-convo" type="button" hidden></button>
  </form>
  <div class="sr-only announcer" aria-live="polite"></div>
</div>`;

/** A failed start or a missing setting: shown, and tried again on a change. */
type Setup = { client: ValetClient } | { error: string };

/**
 * The element (see the module documentation). Defined as `valet-chat` when
 * this module loads in a browser.
 */
export class ValetChatElement extends (globalThis.HTMLElement ?? (class {} as typeof HTMLElement)) {
  static observedAttributes = ["agent-id", "base-url", "jwt-url", "convo-id", "greeting", "persist"];

  #root: ShadowRoot;
  #client: ValetClient | null = null;
  #clientOwned = false;
  #fetchJwt: (() => string | Promise<string>) | null = null;
  #strings: ValetChatStrings = { ...DEFAULT_STRINGS };
  #greeting: string | null = null;
  #store: ConvoStore | null = null;
  #release: (() => void) | null = null;
  #offs: (() => void)[] = [];
  #bubbles = new Map<string, HTMLLIElement>();
  #last: ConvoStoreState | null = null;
  #convoId: string | null = null;
  #policy: AttachmentPolicy | null = null;
  #chosen: File[] = [];
  /** Why picked files were left out, while it is shown. */
  #fileProblem: string | null = null;
  #fresh = false;
  /** The agent's name as its last message gave it (a reply being written has none yet). */
  #agentName: string | null = null;
  /** The latest start asked for (an older one's microtask does nothing). */
  #startTask = 0;
  #el: Record<string, HTMLElement>;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = STYLE;
    const tpl = document.createElement("template");
    tpl.innerHTML = HTML;
    this.#root.append(style, tpl.content);
    const q = <T extends HTMLElement>(sel: string) => this.#root.querySelector(sel) as T;
    this.#el = {
      status: q(".status"),
      scroller: q(".scroller"),
      greeting: q(".greeting"),
      empty: q(".empty"),
      log: q(".log ol"),
      logRegion: q(".log"),
      typing: q(".typing"),
      notice: q(".notice"),
      error: q(".error"),
      form: q(".composer"),
      chosen: q(".chosen"),
      files: q(".files-input"),
      attach: q(".attach"),
      input: q("textarea"),
      send: q(".send"),
      newConvo: q(".new-convo"),
      announcer: q(".announcer"),
    };
    this.#wire();
    this.#applyStrings();
  }

  /** The `ValetClient` the element uses (set it to share one; else it makes its own from the attributes). */
  get client(): ValetClient | null {
    return this.#client;
  }
  set client(client: ValetClient | null) {
    if (client === this.#client) return;
    this.#client = client;
    this.#clientOwned = false;
    this.#scheduleStart(true);
  }

  /** Gets a token for the user (instead of `jwt-url`); see `ValetClient`'s `fetchJwt`. */
  get fetchJwt(): (() => string | Promise<string>) | null {
    return this.#fetchJwt;
  }
  set fetchJwt(fetchJwt: (() => string | Promise<string>) | null) {
    this.#fetchJwt = fetchJwt;
    if (this.#clientOwned || !this.#client) this.#scheduleStart(true);
  }

  /** The texts shown: set some or all of them ({@link ValetChatStrings}). */
  get strings(): ValetChatStrings {
    return { ...this.#strings };
  }
  set strings(strings: Partial<ValetChatStrings>) {
    this.#strings = { ...DEFAULT_STRINGS, ...strings };
    this.#applyStrings();
  }

  /** A first line from the agent shown above the conversation (the `greeting` attribute). */
  get greeting(): string | null {
    return this.#greeting ?? this.getAttribute("greeting");
  }
  set greeting(text: string | null) {
    this.#greeting = text;
    this.#renderGreeting();
  }

  /** The convo shown (`null` until known). Set it (or `convo-id`) to show another. */
  get convoId(): string | null {
    return this.#convoId;
  }
  set convoId(id: string | null) {
    if (id === null) this.removeAttribute("convo-id");
    else this.setAttribute("convo-id", id);
  }

  /** The store the element renders (`null` before it starts). */
  get store(): ConvoStore | null {
    return this.#store;
  }

  /** Sends a message as the send box does (it shows at once; resolves once stored). */
  send(text: string, files?: File[]): Promise<void> {
    if (!this.#store) return Promise.reject(new ValetError("the chat is not open", { code: "closed" }));
    return this.#store.send(text, files?.length ? { files } : undefined);
  }

  /**
   * Leaves the convo shown and starts a new one with the agent. A refusal
   * is shown in the element (the convo shown stays) and rejects.
   */
  startNew(): Promise<void> {
    const client = this.#setup();
    if ("error" in client) return Promise.reject(new ValetError(client.error, { code: "invalid_argument" }));
    return newConvo(client.client).then(
      (target) => this.#open(client.client, target),
      (e: unknown) => {
        this.#showError(e instanceof ValetError ? describeError(e, this.#strings) : this.#strings.errorOther);
        throw e;
      },
    );
  }

  connectedCallback(): void {
    // Properties a page set before this module defined the element are
    // the instance's own: take them through the setters.
    for (const name of ["client", "fetchJwt", "strings", "greeting"] as const) {
      if (Object.prototype.hasOwnProperty.call(this, name)) {
        const value: unknown = this[name];
        delete (this as Record<string, unknown>)[name];
        (this as Record<string, unknown>)[name] = value;
      }
    }
    // A move in the DOM (or a framework's remount in the same task) keeps
    // the chat: the store is released a task later, and retained again.
    if (this.#release && this.#store) return;
    this.#scheduleStart(false);
  }

  disconnectedCallback(): void {
    this.#startTask++;
    queueMicrotask(() => {
      if (this.isConnected) return;
      this.#stop();
    });
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (old === value) return;
    if (name === "greeting") return this.#renderGreeting();
    if (name === "convo-id") {
      // Setting it to the convo shown (`el.convoId = el.convoId`) changes nothing.
      if (value === null || value !== this.#convoId) this.#scheduleStart(false);
      return;
    }
    // The client's settings: a client of the element's own is made again.
    if (this.#clientOwned || !this.#client) this.#scheduleStart(true);
  }

  /** Starts in a microtask, so that the attributes and properties set with the element apply. */
  #scheduleStart(newClient: boolean): void {
    if (newClient && this.#clientOwned) {
      this.#client = null;
      this.#clientOwned = false;
    }
    const task = ++this.#startTask;
    queueMicrotask(() => {
      if (task === this.#startTask && this.isConnected) this.#start();
    });
  }

  #setup(): Setup {
    if (this.#client) return { client: this.#client };
    const agentId = this.getAttribute("agent-id");
    const jwtUrl = this.getAttribute("jwt-url");
    const fetchJwt = this.#fetchJwt ?? (jwtUrl ? jwtFromUrl(jwtUrl) : null);
    if (!agentId || !fetchJwt) return { error: this.#strings.notConfigured };
    const persist = this.getAttribute("persist") === "local" ? "local" : undefined;
    try {
      this.#client = new ValetClient({ agentId, fetchJwt, baseUrl: this.#baseUrl(), ...(persist ? { persist } : {}) });
    } catch (e) {
      return { error: e instanceof Error ? e.message : String(e) };
    }
    this.#clientOwned = true;
    return { client: this.#client };
  }

  /** `base-url`, resolved as a link is (`base-url="/"`: the page's own origin). */
  #baseUrl(): string | undefined {
    const attr = this.getAttribute("base-url");
    return attr === null ? undefined : new URL(attr, document.baseURI).href.replace(/\/+$/, "");
  }

  #start(): void {
    const setup = this.#setup();
    if ("error" in setup) {
      this.#stop();
      this.#showError(setup.error);
      return;
    }
    const spec = this.getAttribute("convo-id");
    const client = setup.client;
    if (spec && spec !== "new") this.#open(client, { convoId: spec, lockout: null, policy: null, convoState: null });
    else this.#open(client, null, () => usersConvo(client));
  }

  /** Shows a convo: `known`, or the one `find` resolves (each time the store opens). */
  #open(client: ValetClient, known: Target | null, find?: () => Promise<Target>): void {
    this.#stop();
    this.#fresh = true;
    const opener = async (): Promise<ConvoOpening> => {
      const target = known ?? (await find!());
      this.#convoId = target.convoId;
      this.#policy = target.policy;
      const convo = await client.openConvo({ convoId: target.convoId });
      const convoState = target.convoState ?? convoStateOf(client, target.convoId);
      return { convo, lockout: target.lockout, convoState };
    };
    const { store, release } = retainConvoStore(client, known ? `element:${known.convoId}` : {}, known?.lockout, { streaming: true }, opener);
    this.#store = store;
    this.#release = release;
    this.#offs.push(
      store.subscribe((state) => this.#render(state)),
      store.on("message", (e) => {
        const m = e.message;
        if (!e.from_reconcile && m.from !== "appuser") this.#announce(`${m.participant?.name ?? this.#strings.agent}: ${m.content}`);
        this.#emit("message", e);
      }),
      store.on("turn_done", (e) => this.#emit("turn_done", e)),
      store.on("error", (e) => this.#emit("error", e)),
    );
  }

  #stop(): void {
    for (const off of this.#offs.splice(0)) off();
    this.#release?.();
    this.#release = null;
    this.#store = null;
    this.#last = null;
    this.#bubbles.clear();
    this.#el.log.replaceChildren();
    this.#el.announcer.replaceChildren();
  }

  #emit(type: string, detail: unknown): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** Tells a screen reader a new message, once (never the pieces of one being written). */
  #announce(text: string): void {
    const p = document.createElement("p");
    p.textContent = text;
    const a = this.#el.announcer;
    a.append(p);
    while (a.childElementCount > 3) a.firstElementChild!.remove();
  }

  #wire(): void {
    const { form, input, files, attach, newConvo, chosen } = this.#el as {
      form: HTMLFormElement;
      input: HTMLTextAreaElement;
      files: HTMLInputElement;
      attach: HTMLButtonElement;
      newConvo: HTMLButtonElement;
      chosen: HTMLUListElement;
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#submit();
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.#submit();
      }
    });
    input.addEventListener("input", () => this.#fit());
    attach.addEventListener("click", () => files.click());
    files.addEventListener("change", () => {
      this.#choose(Array.from(files.files ?? []));
      files.value = "";
    });
    chosen.addEventListener("click", (e) => {
      const i = (e.target as HTMLElement).closest("button")?.dataset.index;
      if (i === undefined) return;
      this.#chosen.splice(Number(i), 1);
      this.#renderChosen();
      input.focus();
    });
    newConvo.addEventListener("click", () => {
      this.startNew().then(() => input.focus(), () => {});
    });
    this.#el.status.addEventListener("click", (e) => {
      if ((e.target as HTMLElement).closest("button")) void this.#store?.reopen().catch(() => {});
    });
    this.#el.log.addEventListener("click", (e) => {
      const key = (e.target as HTMLElement).closest("button.retry")?.closest("li")?.dataset.key;
      if (key) void this.#store?.retry(key).catch(() => {});
    });
  }

  #fit(): void {
    const input = this.#el.input as HTMLTextAreaElement;
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight + 2}px`;
  }

  #submit(): void {
    const input = this.#el.input as HTMLTextAreaElement;
    const text = input.value.trim();
    if ((!text && this.#chosen.length === 0) || !this.#store || !this.#last?.canSend) return;
    const files = this.#chosen.splice(0);
    if (this.#fileProblem) this.#showError(null);
    input.value = "";
    this.#fit();
    this.#renderChosen();
    // Shown at once as pending; a refusal turns it failed, with Retry.
    this.#store.send(text, files.length ? { files } : undefined).catch(() => {});
  }

  /** Files picked for the next message, within the convo's attachment policy when known. */
  #choose(picked: File[]): void {
    const p = this.#policy;
    const s = this.#strings;
    const problems: string[] = [];
    for (const f of picked) {
      if (p && p.max_file_size_bytes > 0 && f.size > p.max_file_size_bytes) problems.push(fill(s.fileTooLarge, 0, f.name));
      else if (p && p.allowed_mime_types.length > 0 && !p.allowed_mime_types.includes(f.type)) problems.push(fill(s.fileType, 0, f.name));
      else this.#chosen.push(f);
    }
    const max = p ? p.max_files_per_message : Infinity;
    if (this.#chosen.length > max) {
      this.#chosen.length = max;
      problems.push(fill(s.tooManyFiles, max));
    }
    this.#showError(problems.join(" ") || null);
    this.#fileProblem = problems.length ? this.#el.error.textContent : null;
    this.#renderChosen();
  }

  #renderChosen(): void {
    const list = this.#el.chosen;
    list.replaceChildren(
      ...this.#chosen.map((f, i) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.textContent = f.name;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "quiet";
        remove.dataset.index = String(i);
        remove.textContent = "×";
        remove.setAttribute("aria-label", fill(this.#strings.removeFile, 0, f.name));
        li.append(name, remove);
        return li;
      }),
    );
    list.hidden = this.#chosen.length === 0;
  }

  #showError(text: string | null): void {
    this.#fileProblem = null;
    this.#el.error.hidden = !text;
    this.#el.error.textContent = text ?? "";
  }

  #applyStrings(): void {
    const s = this.#strings;
    const el = this.#el;
    el.logRegion.setAttribute("aria-label", s.conversation);
    el.input.setAttribute("aria-label", s.placeholder);
    (el.input as HTMLTextAreaElement).placeholder = s.placeholder;
    el.send.textContent = s.send;
    el.attach.textContent = "+";
    el.attach.setAttribute("aria-label", s.attach);
    el.attach.title = s.attach;
    el.newConvo.textContent = s.newConversation;
    this.#renderGreeting();
    if (this.#last) {
      const state = this.#last;
      this.#last = null;
      for (const li of this.#bubbles.values()) li.remove();
      this.#bubbles.clear();
      this.#render(state);
    }
  }

  #renderGreeting(): void {
    const text = this.greeting;
    this.#el.greeting.hidden = !text;
    this.#el.greeting.textContent = text ?? "";
  }

  #render(state: ConvoStoreState): void {
    const prev = this.#last;
    this.#last = state;
    const s = this.#strings;
    const el = this.#el;
    if (state.convoId) this.#convoId = state.convoId;
    // The connection, when it is not live.
    const note =
      state.status === "connecting" ? s.connecting
      : state.status === "reconnecting" ? s.reconnecting
      : state.status === "paused" ? s.paused
      : state.status === "stopped" ? s.stopped
      : "";
    if (note !== (prev ? el.status.dataset.note : undefined)) {
      el.status.dataset.note = note;
      el.status.replaceChildren(note);
      if (state.status === "stopped") {
        const again = document.createElement("button");
        again.type = "button";
        again.className = "quiet";
        again.textContent = s.tryAgain;
        el.status.append(" ", again);
      }
    }
    el.status.hidden = !note;
    this.dataset.status = state.status;
    // The messages, each once, in order; a bubble keeps its element.
    if (!prev || prev.messages !== state.messages) this.#renderMessages(state.messages, prev);
    el.empty.hidden = !(state.convoId && state.messages.length === 0 && state.status === "connected" && state.canSend && !this.greeting);
    el.empty.textContent = s.empty;
    el.typing.hidden = !state.typing;
    el.typing.textContent = state.typing ? (state.typing.label ?? (state.typing.kind === "thinking" ? s.thinking : s.typing)) : "";
    // A closed convo says so (the server's words), and takes no input.
    const closed = state.cannotSend?.reason === "closed" || state.cannotSend?.reason === "locked_out";
    const notice = closed
      ? (state.cannotSend!.text ?? (state.cannotSend!.reason === "closed" ? s.closed : s.lockedOut))
      : (state.convoStateText ?? this.#turnNote(state));
    el.notice.hidden = !notice;
    el.notice.textContent = notice ?? "";
    el.notice.dataset.state = state.convoState ?? "";
    if (state.error && !(closed && state.error.code === "server")) this.#showError(describeError(state.error, s));
    else if (prev?.error && !state.error) this.#showError(null);
    else if (closed) this.#showError(null);
    const open = !!state.convoId && state.canSend && state.status !== "closed";
    (el.input as HTMLTextAreaElement).disabled = !open;
    (el.send as HTMLButtonElement).disabled = !open;
    const policy = this.#policy;
    el.attach.hidden = !!policy && policy.max_files_per_message === 0;
    (el.attach as HTMLButtonElement).disabled = !open;
    el.newConvo.hidden = !(state.cannotSend?.reason === "closed" || state.status === "closed");
    this.#emit("statechange", state);
  }

  #turnNote(state: ConvoStoreState): string | null {
    const t = state.turn;
    if (t.phase !== "done") return null;
    const s = this.#strings;
    if (t.reason === "rate_limited") return t.retryAfterSeconds ? fill(s.rateLimited, t.retryAfterSeconds) : s.rateLimitedNoTime;
    if (t.reason === "blocked") return s.blocked;
    if (t.reason === "unavailable") return s.unavailable;
    return null;
  }

  #renderMessages(messages: readonly ChatMessage[], prev: ConvoStoreState | null): void {
    const list = this.#el.log;
    const scroller = this.#el.scroller;
    const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    const keys = new Set(messages.map((m) => m.key));
    for (const [key, li] of this.#bubbles) {
      if (!keys.has(key)) {
        li.remove();
        this.#bubbles.delete(key);
      }
    }
    const before = new Map(prev?.messages.map((m) => [m.key, m]));
    messages.forEach((m, i) => {
      const li = before.get(m.key) === m && this.#bubbles.has(m.key) ? this.#bubbles.get(m.key)! : this.#bubble(m);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
    });
    const mine = messages.at(-1)?.from === "appuser" && messages.length > (prev?.messages.length ?? 0);
    if (this.#fresh || atEnd || mine) {
      if (messages.length) this.#fresh = false;
      scroller.scrollTop = scroller.scrollHeight;
    }
  }

  #bubble(m: ChatMessage): HTMLLIElement {
    const s = this.#strings;
    let li = this.#bubbles.get(m.key);
    if (!li) {
      li = document.createElement("li");
      li.dataset.key = m.key;
      li.innerHTML = `<div class="bubble" part="bubble"><p class="text" part="text" dir="auto"></p></div><span class="meta" part="meta"></span>`;
      this.#bubbles.set(m.key, li);
    }
    li.className = m.from;
    li.setAttribute("part", `message message-${m.from} message-${m.status}`);
    li.dataset.status = m.status;
    li.dataset.from = m.from;
    li.querySelector(".text")!.replaceChildren(...linkify(m.content));
    if (m.from === "ai_agent" && m.participant?.name) this.#agentName = m.participant.name;
    const who = m.from === "appuser" ? s.you : (m.participant?.name ?? (m.from === "ai_agent" ? this.#agentName : null) ?? s.agent);
    const when =
      m.status === "pending" ? s.sending
      : m.status === "failed" ? `${s.notSent}: ${m.error ? describeError(m.error, s) : s.errorOther}`
      : m.status === "streaming" ? s.writing
      : new Date(m.createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    li.querySelector(".meta")!.textContent = `${who} · ${when}`;
    const bubble = li.querySelector(".bubble")!;
    bubble.querySelector(".files")?.remove();
    if (m.files.length) bubble.append(this.#files(m.files));
    let retry = li.querySelector<HTMLButtonElement>("button.retry");
    if (m.status === "failed" && !retry) {
      retry = document.createElement("button");
      retry.type = "button";
      retry.className = "retry quiet";
      retry.setAttribute("part", "retry");
      li.append(retry);
    } else if (m.status !== "failed") {
      retry?.remove();
    }
    if (retry) retry.textContent = s.retry;
    return li;
  }

  #files(files: readonly MessageFile[]): HTMLUListElement {
    const ul = document.createElement("ul");
    ul.className = "files";
    const base = this.#baseUrl() ?? location.href;
    for (const f of files) {
      const href = safeUrl(f.url, base);
      const li = document.createElement("li");
      li.setAttribute("part", "file");
      if (!href) {
        li.textContent = f.filename;
      } else {
        const a = document.createElement("a");
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        if (f.content_type.startsWith("image/")) {
          const img = document.createElement("img");
          img.src = href;
          img.alt = f.filename;
          img.loading = "lazy";
          a.append(img);
        } else {
          a.textContent = f.filename;
        }
        li.append(a);
      }
      ul.append(li);
    }
    return ul;
  }
}

if (typeof customElements !== "undefined" && !customElements.get("valet-chat")) {
  customElements.define("valet-chat", ValetChatElement);
}

declare global {
  interface HTMLElementTagNameMap {
    "valet-chat": ValetChatElement;
  }
}
