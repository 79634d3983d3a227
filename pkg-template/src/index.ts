/**
 * `@valet.red/sdk`: a chat with a Valet AI agent.
 *
 * ```js
 * const valet = new ValetClient({ agentId, fetchJwt, baseUrl, debug, fetchJwtTimeoutMs })
 * const { convoId } = await valet.startSession()
 * const convo = await valet.openConvo({ convoId })
 * convo.on("message", ({ message }) => render(message))   // returns unsubscribe
 * await convo.send("Hi, I need help with my order")
 * convo.close()
 * ```
 *
 * The SDK is WebAssembly. Importing this module touches no browser API and
 * loads nothing (so it is safe to import during server-side rendering); the
 * wasm is fetched and compiled the first time a client is used, from the
 * file next to the glue module (`new URL("valet_wasm_bg.wasm",
 * import.meta.url)`), which bundlers (Vite, webpack 5, Next.js) emit as an
 * asset and a static server serves as is.
 *
 * @module
 */
import initWasm, { ValetClient as WasmClient, setErrorClass, type InitInput } from "./wasm/valet_wasm.js";
import type { ConvoEvent, ConvoEventsOptions, ConvoSummary, OpenConvoOptions, StartSessionResult, ValetClientOptions } from "./wasm/valet_wasm.js";
import { ValetError } from "./error.js";
import { CONVO_EVENTS } from "./store.js";
import { prefetchOpening, prefetchPlan, type PrefetchPlan } from "./prefetch.js";
import { Convo as WasmConvo, type Convo } from "./wasm/valet_wasm.js";

export type * from "./wasm/valet_wasm.js";
export { Convo } from "./wasm/valet_wasm.js";
export { ValetError } from "./error.js";
export { convoStateOf, createConvoStore, type ChatMessage, type ConvoStore, type ConvoStoreOptions, type ConvoStoreState, type MessageStatus, type StoreError, type TypingIndicator, type TurnState, type CannotSend } from "./store.js";

// Added to the generated `Convo` here, in JS (typed in the wasm's custom
// TypeScript section): async iteration over its events, and `using` /
// `await using`, which close it (the generated `[Symbol.dispose]` would
// only free the handle, leaving the stream open until collected).
{
  type Proto = Record<string | symbol, unknown> & { close(): void };
  const proto = WasmConvo.prototype as unknown as Proto;
  const enders = new WeakMap<object, Set<(drop: boolean) => void>>();
  const endAll = (convo: object) => {
    for (const end of [...(enders.get(convo) ?? [])]) end(false);
  };
  const close = proto.close;
  proto.close = function (this: Proto) {
    close.call(this);
    endAll(this);
  };
  proto.events = function (this: Convo, options?: ConvoEventsOptions) {
    const all = CONVO_EVENTS;
    const names = options?.events ?? all;
    for (const n of names) {
      if (!all.includes(n)) {
        const error = new ValetError(`unknown event ${JSON.stringify(n)}; events: ${all.join(", ")}`);
        error.code = "invalid_argument";
        throw error;
      }
    }
    const signal = options?.signal;
    let queue: (ConvoEvent | undefined)[] = [];
    let head = 0;
    let wake: (() => void) | null = null;
    let done = false;
    const poke = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const on = this.on.bind(this) as (type: string, handler: (payload: unknown) => void) => () => void;
    const offs = names.map((type) =>
      on(type, (payload) => {
        queue.push({ type, payload } as ConvoEvent);
        poke();
        // The SDK closed the convo itself: what is queued, then the end.
        if (type === "status" && (payload as { status: string }).status === "closed") end(false);
      }),
    );
    const end = (drop: boolean) => {
      if (drop) {
        queue = [];
        head = 0;
      }
      if (!done) {
        done = true;
        for (const off of offs) off();
        enders.get(this)?.delete(end);
        signal?.removeEventListener("abort", abort);
      }
      poke();
    };
    const abort = () => end(true);
    if (!enders.has(this)) enders.set(this, new Set());
    enders.get(this)!.add(end);
    if (signal?.aborted) end(true);
    else signal?.addEventListener("abort", abort);
    if (this.status === "closed") end(false);
    const iterator: AsyncIterableIterator<ConvoEvent> = {
      async next() {
        while (head === queue.length && !done) await new Promise<void>((r) => (wake = r));
        if (head === queue.length) return { value: undefined, done: true };
        const value = queue[head]!;
        queue[head++] = undefined;
        if (head > 1024 && head * 2 > queue.length) {
          queue = queue.slice(head);
          head = 0;
        }
        return { value, done: false };
      },
      async return() {
        end(true);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  };
  const dispose = function (this: Proto) {
    this.close();
  };
  if (typeof Symbol.dispose === "symbol") proto[Symbol.dispose] = dispose;
  if (typeof Symbol.asyncDispose === "symbol") {
    proto[Symbol.asyncDispose] = async function (this: Proto) {
      this.close();
    };
  }
}

let loaded = false;
let loading: Promise<void> | undefined;

/**
 * How long a token fetched while the wasm loaded stays the answer to the
 * client's first `fetchJwt()` call (the wasm loads in seconds; an older
 * one is dropped and `fetchJwt` called again).
 */
const EARLY_TOKEN_MS = 30_000;

/**
 * Loads the SDK's WebAssembly; every client method awaits it, so calling it
 * is optional. Call it yourself to start the download early, to load the
 * wasm from somewhere else (`init(new URL("/assets/valet.wasm", location.href))`,
 * a `Response`, bytes or a compiled `WebAssembly.Module`), or to have
 * `new ValetClient(...)` validate its options synchronously.
 *
 * Rejects with a `ValetError` of code `network` when the file can't be
 * fetched or compiled; a later call tries again.
 */
export function init(source?: InitInput | Promise<InitInput>): Promise<void> {
  if (loaded) return Promise.resolve();
  if (!loading) {
    // Node's fetch can not read a `file:` URL: read the file next to the glue.
    if (source === undefined && isNode()) source = readWasmInNode();
    loading = initWasm(source === undefined ? undefined : { module_or_path: source }).then(
      () => {
        setErrorClass(ValetError);
        loaded = true;
      },
      (cause: unknown) => {
        loading = undefined;
        throw loadError(cause);
      },
    );
  }
  return loading;
}

/**
 * Node (and Bun, which says it is Node), with or without a DOM (jsdom and
 * happy-dom in a test runner): a `process` with a Node version, and this
 * module loaded from a file, which Node's `fetch` can not read.
 */
function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: unknown } } };
  return typeof g.process?.versions?.node === "string" && import.meta.url.startsWith("file:");
}

/** The wasm beside this module, read with `node:fs`. */
async function readWasmInNode(): Promise<Uint8Array> {
  // A specifier in a variable, with the bundlers' ignore comments: browser
  // builds neither resolve nor bundle it (this runs only in Node).
  const fs = "node:fs/promises";
  const { readFile } = (await import(/* webpackIgnore: true */ /* @vite-ignore */ fs)) as {
    readFile(url: URL): Promise<Uint8Array>;
  };
  // The same literal URL as the glue's, so bundlers see one asset.
  return readFile(new URL("./wasm/valet_wasm_bg.wasm", import.meta.url));
}

/** Whether the WebAssembly is loaded (`init()` resolved). */
export function isLoaded(): boolean {
  return loaded;
}

function loadError(cause: unknown): ValetError {
  const why = cause instanceof Error ? cause.message : String(cause);
  const error = new ValetError(`could not load the SDK's WebAssembly (valet_wasm_bg.wasm): ${why}`, { cause });
  error.code = "network";
  return error;
}

/**
 * The entry point: `new ValetClient({ agentId, fetchJwt, baseUrl, debug,
 * fetchJwtTimeoutMs })`.
 *
 * Once the wasm is loaded (`await init()`), the constructor validates the
 * options and throws a `ValetError` with code `invalid_argument`; before
 * that, the first method call rejects with it instead.
 */
export class ValetClient {
  #client: WasmClient | undefined;
  #pending: Promise<WasmClient> | undefined;
  /** Starts the first token's fetch while the wasm loads (see `#ready`). */
  #fetchEarly: (() => void) | undefined;
  /** That token, while it is the answer to the client's first `fetchJwt()` call. */
  #early: { token: Promise<unknown>; at: number } | undefined;
  /** What a stream asked for while the wasm loads needs (see `prefetch.ts`). */
  #plan: PrefetchPlan | null = null;

  constructor(options: ValetClientOptions) {
    if (loaded) {
      this.#client = new WasmClient(options);
    } else {
      // Read the options now, as the constructor would: later mutation of
      // the caller's object must not change this client.
      const snapshot = options && typeof options === "object" ? { ...options } : options;
      const fetchJwt: unknown = snapshot?.fetchJwt;
      if (typeof fetchJwt === "function") {
        // The token a first method call fetched while the wasm loaded is
        // the client's first `fetchJwt()` answer, if asked for in time.
        this.#fetchEarly = () => {
          this.#fetchEarly = undefined;
          // Called now, not in a microtask: the request goes out before
          // the rest of the opening's synchronous work.
          const token = (async () => fetchJwt())();
          token.catch(() => {}); // the client's call reports it
          this.#early = { token, at: Date.now() };
        };
        snapshot.fetchJwt = () => {
          const e = this.#early;
          this.#early = undefined;
          this.#fetchEarly = undefined;
          return e && Date.now() - e.at < EARLY_TOKEN_MS ? e.token : fetchJwt();
        };
        this.#plan = prefetchPlan(snapshot);
      }
      this.#pending = init().then(() => (this.#client = new WasmClient(snapshot)));
      this.#pending.catch(() => {}); // reported by the first method call
    }
  }

  /**
   * The client, once the wasm is loaded. Every method needs a token, so the
   * first call made while the wasm loads calls `fetchJwt` at once: the
   * token's round trip overlaps the wasm's download and compile.
   */
  #ready(): Promise<WasmClient> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#fetchEarly?.();
    return this.#pending!;
  }

  /** Starts a new convo with the agent. */
  async startSession(): Promise<StartSessionResult> {
    return (await this.#ready()).startSession();
  }

  /**
   * Opens a convo: gets a token, then opens its stream. Resolves once the
   * stream is live, paused, or retrying after a failure that may pass
   * (offline; a network error or timeout of the API or of `fetchJwt`;
   * 408, 429, 5xx): `status` is then `reconnecting`, and the convo connects
   * by itself (sends wait meanwhile). Rejects only on a definite refusal:
   * `fetchJwt` rejecting with a `ValetError` of code `auth` (the user is
   * signed out), the API's 403 or 404, or three 401s in a row. Subscribe
   * with `convo.on(...)`; history arrives as `message` events.
   */
  async openConvo(options: OpenConvoOptions): Promise<Convo> {
    const client = this.#ready();
    // While the wasm loads, the stream and the history are asked for with
    // the early token (a guess the convo takes if it makes those requests).
    const convoId: unknown = options?.convoId;
    const early = this.#early;
    const drop = this.#plan && early && typeof convoId === "string" ? prefetchOpening(this.#plan, convoId, early.token) : undefined;
    try {
      return await (await client).openConvo(options);
    } finally {
      drop?.();
    }
  }

  /** The user's convos with the agent, newest first. */
  async listConvos(): Promise<ConvoSummary[]> {
    return (await this.#ready()).listConvos();
  }

  /**
   * Deletes everything the SDK stored for this origin, for every user: the
   * local history of `persist: "local"` (IndexedDB), and the outboxes and
   * resume points of this tab and of the origin's other open tabs
   * (`sessionStorage`). Convos open now keep nothing more. Call it at
   * sign-out, after closing the convos; resolves once the database is
   * deleted.
   */
  async clearLocalData(): Promise<void> {
    return (this.#client ?? (await this.#pending!)).clearLocalData();
  }

  /** Frees the client's wasm memory (open convos keep working). */
  free(): void {
    if (this.#client) this.#client.free();
    else this.#pending?.then((c) => c.free(), () => {});
  }
}
