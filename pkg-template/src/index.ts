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
import type { ConvoSummary, OpenConvoOptions, StartSessionResult, ValetClientOptions } from "./wasm/valet_wasm.js";
import { ValetError } from "./error.js";
import type { Convo } from "./wasm/valet_wasm.js";

export type * from "./wasm/valet_wasm.js";
export { Convo } from "./wasm/valet_wasm.js";
export { ValetError } from "./error.js";
export { convoStateOf, createConvoStore, type ChatMessage, type ConvoStore, type ConvoStoreOptions, type ConvoStoreState, type MessageStatus, type StoreError, type TypingIndicator, type TurnState, type CannotSend } from "./store.js";

let loaded = false;
let loading: Promise<void> | undefined;

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
    if (source === undefined && isNode()) source = readBeside("./wasm/valet_wasm_bg.wasm");
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

/** Node (and Bun, which says it is Node): a `process` with a Node version and no DOM. */
function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: unknown } }; document?: unknown };
  return typeof g.process?.versions?.node === "string" && g.document === undefined;
}

/** The bytes of a file beside this module, read with `node:fs`. */
async function readBeside(path: string): Promise<Uint8Array> {
  // A specifier in a variable, with the bundlers' ignore comments: browser
  // builds neither resolve nor bundle it (this runs only in Node).
  const fs = "node:fs/promises";
  const { readFile } = (await import(/* webpackIgnore: true */ /* @vite-ignore */ fs)) as {
    readFile(url: URL): Promise<Uint8Array>;
  };
  return readFile(new URL(path, import.meta.url));
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

  constructor(options: ValetClientOptions) {
    if (loaded) {
      this.#client = new WasmClient(options);
    } else {
      // Read the options now, as the constructor would: later mutation of
      // the caller's object must not change this client.
      const snapshot = options && typeof options === "object" ? { ...options } : options;
      this.#pending = init().then(() => (this.#client = new WasmClient(snapshot)));
      this.#pending.catch(() => {}); // reported by the first method call
    }
  }

  #ready(): Promise<WasmClient> {
    return this.#client ? Promise.resolve(this.#client) : this.#pending!;
  }

  /** Starts a new convo with the agent. */
  async startSession(): Promise<StartSessionResult> {
    return (await this.#ready()).startSession();
  }

  /**
   * Opens a convo: gets a token first (so auth problems reject here), then
   * opens its stream. Resolves once the stream is live (or paused, or
   * retrying after a transient failure); rejects with the error when the
   * stream is refused for good (e.g. `http` 404). Subscribe with
   * `convo.on(...)`; history arrives as `message` events.
   */
  async openConvo(options: OpenConvoOptions): Promise<Convo> {
    return (await this.#ready()).openConvo(options);
  }

  /** The user's convos with the agent, newest first. */
  async listConvos(): Promise<ConvoSummary[]> {
    return (await this.#ready()).listConvos();
  }

  /** Frees the client's wasm memory (open convos keep working). */
  free(): void {
    if (this.#client) this.#client.free();
    else this.#pending?.then((c) => c.free(), () => {});
  }
}
