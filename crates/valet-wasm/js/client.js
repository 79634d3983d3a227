// @ts-check
// The client's JS: API answers shaped, the client's options and
// `openConvo`'s convo id read, in one crossing each.
// Imported by src/client.rs (`#[wasm_bindgen(module = "/js/client.js")]`).

/**
 * An answer read and shaped: with `session`, `POST /sessions`' as
 * `StartSessionResult` (defaults filled in), else `GET /agent_convos`'
 * list; or why it can't be (a string).
 * @param {boolean} session
 * @param {string} text
 * @returns {unknown}
 */
export function shapeAnswer(session, text) {
  /** @type {any} */
  let v;
  try { v = JSON.parse(text); } catch { return "not JSON"; }
  if (!session) return v && Array.isArray(v.agent_convos) ? v.agent_convos : "no `agent_convos` list";
  if (!v || typeof v.convo_id !== "string") return "no `convo_id`";
  const p = v.attachment_policy || {}, l = v.lockout || {};
  return {
    convoId: v.convo_id,
    attachmentPolicy: {
      max_files_per_message: p.max_files_per_message ?? 0, max_files_per_convo: p.max_files_per_convo ?? 0,
      max_file_size_bytes: p.max_file_size_bytes ?? 0, allowed_mime_types: p.allowed_mime_types ?? [],
    },
    lockout: {
      locked_out: l.locked_out ?? false, expires_at: l.expires_at ?? null, permanent: l.permanent ?? false,
      reason: l.reason ?? null, user_message: l.user_message ?? null,
    },
  };
}

/**
 * `new ValetClient(options)`'s options, type-checked and read in one
 * crossing: `[onEvent, agentId, baseUrl, fetchJwtTimeoutMs, debug,
 * pauseOnHidden, transport, stallTimeoutMs, persist, fetchJwt]` (absent ones
 * undefined), or the message of the `invalid_argument` error.
 * @param {unknown} o
 * @returns {unknown[] | string}
 */
export function clientArgs(o) {
  if (typeof o !== "object" || o === null) return "new ValetClient(options): options must be an object";
  const options = /** @type {Record<string, unknown>} */ (o);
  const out = [];
  for (const [k, t] of [["onEvent", "function"], ["agentId", "string"], ["baseUrl", "string"], ["fetchJwtTimeoutMs", "number"],
    ["debug", "boolean"], ["pauseOnHidden", "boolean"], ["transport", "string"], ["stallTimeoutMs", "number"], ["persist", "string"]]) {
    const v = options[k] ?? undefined;
    if (v !== undefined && typeof v !== t) return "`" + k + "` must be a " + t;
    out.push(v);
  }
  out.push(options.fetchJwt);
  return out;
}

/**
 * `openConvo(options)`'s `convoId`, if it is a string with more than white
 * space.
 * @param {unknown} o
 * @returns {string | undefined}
 */
export function convoIdOf(o) {
  const id = typeof o === "object" && o !== null ? /** @type {{ convoId?: unknown }} */ (o).convoId : undefined;
  return typeof id === "string" && id.trim() ? id : undefined;
}
