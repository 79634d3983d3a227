/**
 * The opening's requests asked for while the wasm loads: a guess, as a
 * `<link rel="preload">` is, each taken only if the SDK then makes that
 * very request.
 *
 * What a phone waits for after the wasm arrives is the round trips of the
 * stream and of the history. `openConvo` called before the wasm is ready
 * knows the convo, and the first token is on its way: this module sends
 * the stream's request and the history's with that token at once
 * (`prefetchOpening`), and the glue (`crates/valet-wasm/js/http.js`,
 * `takePrefetched`) uses a response when the convo machine makes the same
 * request: the same URL, token and `Last-Event-ID`. Every decision stays
 * the machine's: whether this tab streams (the election), which token,
 * where to resume, which history. A guess the machine does not make is
 * aborted when `openConvo` settles (or after {@link PREFETCH_MS}): it cost
 * the server a short-lived stream or a history read.
 *
 * Guessed only where it is likely right: the fetch transport, Web Locks
 * present and no other tab holding the convo's election lock (that tab
 * streams; this one will follow), and a readable resume point if this
 * tab has one.
 *
 * @module
 * @internal
 */

/** Where the glue finds what was asked for ahead (one registry per page, whatever copy of the package). */
const REGISTRY = Symbol.for("valet-sdk:prefetched");

/**
 * A request made ahead: the parts the glue matches, and its answer; or,
 * `response` null, one about to be made once the token is in. The glue
 * deletes such an entry when the convo makes that request first: the
 * guess is then not made.
 */
interface Prefetched {
  token: string;
  lastEventId: string | null;
  response: Promise<Response> | null;
  ctrl: AbortController;
}

/** An unclaimed prefetch is aborted after this long. */
export const PREFETCH_MS = 15_000;

function registry(): Map<string, Prefetched> {
  const g = globalThis as unknown as Record<symbol, Map<string, Prefetched> | undefined>;
  return (g[REGISTRY] ??= new Map());
}

/** What the guess needs from the client's options. */
export interface PrefetchPlan {
  /** The API's base URL as the client reads it (trimmed of trailing `/`). */
  base: string;
  agentId: string;
}

/** The client's options as the plan, or `null` when no guess is made (EventSource transport, bad options). */
export function prefetchPlan(options: { agentId?: unknown; baseUrl?: unknown; transport?: unknown } | undefined): PrefetchPlan | null {
  if (!options || typeof options.agentId !== "string" || (options.transport !== undefined && options.transport !== "fetch")) return null;
  const base = (typeof options.baseUrl === "string" ? options.baseUrl : "https://api.valet.red").trim().replace(/\/+$/, "");
  return /^https?:\/\//.test(base) ? { base, agentId: options.agentId } : null;
}

/**
 * A path segment as the client encodes it (RFC 3986's unreserved bytes
 * kept, the rest `%XX`): `encodeURIComponent` keeps five more.
 */
const segment = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The convo's history URL (the first read: the whole history), as the client builds it. */
export function historyUrl(plan: PrefetchPlan, convoId: string): string {
  return `${plan.base}/api/v2/agent_convos/${segment(convoId)}`;
}

/**
 * Sends the stream's and the history's requests for `convoId` once `token`
 * resolves, unless the convo has made them by then (the wasm was ready
 * first and its machine asked itself) or the guess is unlikely right.
 * Returns the function that aborts what is still unclaimed.
 */
export function prefetchOpening(plan: PrefetchPlan, convoId: string, token: Promise<unknown>): () => void {
  let history: string;
  try {
    history = historyUrl(plan, convoId);
  } catch {
    return () => {}; // not well-formed UTF-16: no guess
  }
  const url = `${history}/events`;
  const map = registry();
  // Another client of this page guesses already.
  if (map.has(url)) return () => {};
  // Registered now, made later: the glue deletes an entry the convo asks for first.
  const entries = new Map<string, Prefetched>();
  for (const at of [url, history]) {
    if (map.has(at)) continue;
    const entry: Prefetched = { token: "", lastEventId: null, response: null, ctrl: new AbortController() };
    entries.set(at, entry);
    map.set(at, entry);
  }
  let dropped = false;
  const drop = () => {
    dropped = true;
    for (const [at, entry] of entries) {
      if (map.get(at) !== entry) continue;
      map.delete(at);
      entry.ctrl.abort("valet-sdk: not used");
    }
  };
  void (async () => {
    if (typeof navigator === "undefined" || !navigator.locks?.query || typeof sessionStorage === "undefined") return drop();
    // Another tab leads this convo: it streams, and this tab will follow.
    const { held } = await navigator.locks.query();
    if (held?.some((l) => l.name === `valet:${plan.agentId}:${convoId}`)) return drop();
    // Where this tab's last page was (a reload resumes after its last event).
    let lastEventId: string | null = null;
    const resume = sessionStorage.getItem(`valet-sdk:resume:${plan.agentId}:${convoId}`);
    if (resume !== null) {
      const point: unknown = JSON.parse(resume);
      const id = (point as { event_id?: unknown } | null)?.event_id;
      if (typeof id === "string") lastEventId = id;
      else if (id != null) return drop();
    }
    const raw = await token;
    if (typeof raw !== "string" || dropped) return drop();
    const jwt = raw.trim();
    for (const [at, entry] of entries) {
      // Gone: the convo asked for it first.
      if (map.get(at) !== entry) continue;
      const headers: Record<string, string> = { authorization: `Bearer ${jwt}` };
      if (at === url) {
        headers.accept = "text/event-stream";
        if (lastEventId !== null) headers["last-event-id"] = entry.lastEventId = lastEventId;
      }
      entry.token = jwt;
      entry.response = fetch(at, { method: "GET", mode: "cors", headers, signal: entry.ctrl.signal });
      entry.response.catch(() => {}); // the request that takes it reports it
    }
    setTimeout(drop, PREFETCH_MS);
  })().catch(drop); // a guess that failed to be made is no guess
  return drop;
}
