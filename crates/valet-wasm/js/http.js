// @ts-check
// HTTP: REST calls and the two stream transports (fetch streaming, and
// EventSource with a single-use ticket), reported to the glue by callback.
// Imported by src/http.rs (`#[wasm_bindgen(module = "/js/http.js")]`).

import { nextTask } from "./rt.js";

/**
 * A failure's description (never a token: none is in an error of fetch).
 * @param {unknown} e
 * @param {string} or
 * @returns {string}
 */
const described = (e, or) => e instanceof Error ? e.name + ": " + e.message : typeof e === "string" ? e : or;

/**
 * `fetch` with the SDK's headers (`sse`: the stream's, resuming after
 * `lastEventId` if any), or the answer the package's entry asked for
 * ahead when it is this very GET (`takePrefetched`); a failure throws its
 * description.
 * @param {string} method
 * @param {string} url
 * @param {string | null | undefined} token
 * @param {string | null | undefined} json
 * @param {FormData | null | undefined} form
 * @param {AbortSignal | null | undefined} signal
 * @param {boolean} [sse]
 * @param {string | null} [lastEventId]
 * @returns {Promise<Response>}
 */
async function request(method, url, token, json, form, signal, sse, lastEventId) {
  const ahead = method === "GET" && token != null ? takePrefetched(url, token, lastEventId) : null;
  if (ahead) {
    if (signal?.aborted) ahead.ctrl.abort("valet-sdk: aborted");
    else signal?.addEventListener("abort", () => ahead.ctrl.abort("valet-sdk: aborted"));
    try { return await ahead.response; }
    catch (e) { throw described(e, "network error"); }
  }
  /** @type {Record<string, string>} */
  const headers = {};
  if (token != null) headers.authorization = "Bearer " + token;
  if (json != null) headers["content-type"] = "application/json";
  if (sse) headers.accept = "text/event-stream";
  if (lastEventId != null) headers["last-event-id"] = lastEventId;
  try { return await fetch(url, { method, mode: "cors", headers, body: json ?? form, signal }); }
  catch (e) { throw described(e, "network error"); }
}

/**
 * A REST call: `[status, Retry-After, Date, body]` (with `drainOk`, a 2xx
 * answer's body is drained in the background, not read: no body).
 * @param {string} method
 * @param {string} url
 * @param {string | undefined} token
 * @param {string | undefined} json
 * @param {FormData | undefined} form
 * @param {AbortSignal | undefined} signal
 * @param {boolean} drainOk
 * @returns {Promise<(number | string | undefined)[]>}
 */
export async function httpSend(method, url, token, json, form, signal, drainOk) {
  const r = await request(method, url, token, json, form, signal);
  /** @type {(number | string | undefined)[]} */
  const reply = [r.status, r.headers.get("retry-after") ?? undefined, r.headers.get("date") ?? undefined];
  if (drainOk && r.ok) r.arrayBuffer().catch(() => {});
  else reply.push(await r.text().catch(() => ""));
  return reply;
}

/**
 * The most stream text one crossing into the wasm carries: a larger chunk
 * (a backlog the network delivered at once) goes in slices, so the wasm's
 * memory holds a slice and what is made of it, never a whole burst.
 */
const SLICE = 131072;

/**
 * `text` in slices of at most `SLICE` code units, each cut after a line
 * end where there is one (else before `SLICE`, never inside a surrogate
 * pair), for `feed`; returns whether any feed asked to yield.
 * @param {string} text
 * @param {(slice: string) => boolean | void} feed
 * @returns {boolean}
 */
export function sliced(text, feed) {
  let held = false;
  for (let at = 0; at < text.length;) {
    let end = at + SLICE;
    if (end < text.length) {
      const line = text.lastIndexOf("\n", end - 1);
      if (line >= at) end = line + 1;
      else if (/[\uD800-\uDBFF]/.test(text[end - 1])) end--;
    }
    held = !!feed(text.slice(at, end)) || held;
    at = end;
  }
  return held;
}

/**
 * A request the package's entry made while the wasm loaded (the stream,
 * the history: `pkg-template/src/prefetch.ts`), if it is this very
 * request: taken (it is no longer aborted as unused), else `null`. One
 * the entry has yet to make (its token not in) is called off: the convo
 * asks itself.
 * @param {string} url
 * @param {string} token
 * @param {string | null | undefined} lastEventId
 * @returns {{ response: Promise<Response>, ctrl: AbortController } | null}
 */
function takePrefetched(url, token, lastEventId) {
  /** @type {Map<string, { token: string, lastEventId: string | null, response: Promise<Response> | null, ctrl: AbortController }> | undefined} */
  const registry = /** @type {any} */ (globalThis)[Symbol.for("valet-sdk:prefetched")];
  const ahead = registry?.get(url);
  if (!ahead) return null;
  if (!ahead.response) {
    registry?.delete(url);
    return null;
  }
  if (ahead.token !== token || ahead.lastEventId !== (lastEventId ?? null)) return null;
  registry?.delete(url);
  return { response: ahead.response, ctrl: ahead.ctrl };
}

/**
 * Opens the event stream, reporting to `cb(kind, …)`: 0 open; 1 text (a
 * chunk, or what EventSource dispatched, as SSE text, in slices; returns
 * whether to yield a macrotask); 2 ended; 3 failed (why); 4 refused (body, status,
 * Retry-After); 5 an answer's `Date`. Returns the function that stops it.
 * @param {boolean} eventSource use a native EventSource with a ticket
 * @param {string} url
 * @param {string} ticketUrl
 * @param {string} token
 * @param {string | undefined} lastEventId
 * @param {string} types the frame types an EventSource listens to, ","-separated
 * @param {(kind: number, text?: string, status?: number, retryAfter?: string) => boolean | void} cb
 * @returns {() => void}
 */
export function openStream(eventSource, url, ticketUrl, token, lastEventId, types, cb) {
  let stopped = false;
  /** @type {EventSource | null} */
  let es = null;
  /** @type {MessageChannel | null} */
  let port = null;
  const ctrl = new AbortController();
  /** @type {(kind: number, text?: string, status?: number, retryAfter?: string) => boolean | void} */
  const call = (kind, text, status, retryAfter) => !stopped && cb(kind, text, status, retryAfter);
  /** @param {Response} r */
  const dated = (r) => {
    const date = r.headers.get("date");
    if (date) call(5, date);
    return r;
  };
  /** @param {Response} r */
  const refused = async (r) => call(4, await r.text().catch(() => ""), r.status, r.headers.get("retry-after") ?? undefined);
  const fetchStream = async () => {
    const r = dated(await request("GET", url, token, null, null, ctrl.signal, true, lastEventId));
    if (r.status !== 200 || !/^text\/event-stream/i.test(r.headers.get("content-type") ?? "")) return refused(r);
    call(0);
    if (!r.body) return call(2);
    const reader = r.body.getReader(), decoder = new TextDecoder();
    for (;;) {
      let chunk;
      try { chunk = await reader.read(); } catch (e) { return call(3, typeof e === "string" ? e : "stream read failed"); }
      if (chunk.done) return call(2);
      // The convo holds its events (`openConvo` pending): a macrotask per chunk lets it release them.
      if (sliced(decoder.decode(chunk.value, { stream: true }), (t) => call(1, t))) await nextTask();
    }
  };
  // EventSource's events as SSE text, one crossing per batch: the events one
  // network chunk dispatched come in one task; the flush is the next task,
  // through a MessageChannel. `open` and a failure flush what came before.
  const eventSourceStream = async () => {
    const r = dated(await request("POST", ticketUrl, token, null, null, ctrl.signal));
    if (r.status < 200 || r.status > 299) return refused(r);
    let ticket;
    try { ticket = JSON.parse(await r.text()).ticket; } catch {}
    if (typeof ticket !== "string") return call(3, "malformed stream ticket");
    if (stopped) return;
    /** @type {EventSource} */
    let source;
    try { source = es = new EventSource(url + encodeURIComponent(ticket)); } catch { return call(3, "EventSource refused the URL"); }
    let text = "";
    const channel = port = new MessageChannel();
    const flush = () => { if (text) { const t = text; text = ""; sliced(t, (t) => call(1, t)); } };
    channel.port1.onmessage = flush;
    source.addEventListener("open", () => { flush(); call(0); });
    /** @param {Event} e */
    const onEvent = (e) => {
      // `error` is both a frame name and the failure event: a frame is a MessageEvent.
      if (!(e instanceof MessageEvent)) { flush(); call(3, "EventSource error"); return; }
      if (!text) channel.port2.postMessage(0);
      text += "event: " + e.type + "\ndata: " + String(e.data).split("\n").join("\ndata: ") + "\nid: " + e.lastEventId + "\n\n";
    };
    for (const t of types.split(",")) source.addEventListener(t, onEvent);
  };
  (eventSource ? eventSourceStream() : fetchStream()).catch((e) => call(3, described(e, "stream failed")));
  return () => {
    stopped = true;
    ctrl.abort("valet-sdk: aborted");
    es?.close();
    if (port) { port.port1.onmessage = null; port.port1.close(); }
  };
}
