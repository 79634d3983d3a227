// @ts-check
// Tokens: a JWT's claims (unverified), the app's `fetchJwt` under its
// timeout, and the tabs' token channel.
// Imported by src/tokens.rs (`#[wasm_bindgen(module = "/js/tokens.js")]`).

/**
 * The JWT's `[exp, identity]` (unverified: the client only schedules
 * refreshes by them, and shares tokens between tabs of one identity), or
 * why they can't be read (a string).
 * @param {string} jwt
 * @returns {[number | undefined, string] | string}
 */
export function jwtClaims(jwt) {
  const parts = jwt.split(".");
  if (parts.length !== 3) return "not a JWT (three dot-separated parts)";
  let b = parts[1].replace(/-/g, "+").replace(/_/g, "/");
  while (b.length % 4) b += "=";
  let c;
  try { c = JSON.parse(atob(b)); } catch { return "the payload is not base64url JSON"; }
  if (!c || typeof c !== "object" || Array.isArray(c)) return "the payload is not a JSON object of claims";
  /** @param {unknown} v */
  const s = (v) => (typeof v === "string" ? v : null);
  return [typeof c.exp === "number" && Number.isFinite(c.exp) ? c.exp : undefined,
    JSON.stringify([s(c.iss), s(c.agent_uuid), s(c.source_key), s(c.sub)])];
}

/**
 * Calls the app's `fetchJwt`, for at most `ms`: resolves to the token, or
 * rejects with 0 (no answer in time), 1 (not a string), `[message]` (a
 * `ValetError` of code `auth`: the user is signed out), or why it threw or
 * rejected, as a string (an `Error`'s message, a string as it is, anything
 * else "rejected": a number it throws is not one of ours).
 * @param {() => unknown} fetchJwt
 * @param {number} ms
 * @returns {Promise<string>}
 */
export async function callFetchJwt(fetchJwt, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const late = {}, notString = {};
  const timeout = new Promise((_, no) => { timer = setTimeout(() => no(late), ms); });
  try {
    const jwt = await Promise.race([fetchJwt(), timeout]);
    if (typeof jwt !== "string") throw notString;
    return jwt;
  } catch (e) {
    // A ValetError of code `auth` (of any copy of the package): signed out.
    if (e instanceof Error && e.name === "ValetError" && /** @type {{ code?: unknown }} */ (e).code === "auth") throw [e.message];
    throw e === late ? 0 : e === notString ? 1 : e instanceof Error ? e.message : typeof e === "string" ? e : "rejected";
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The tabs' token channel, where BroadcastChannel exists (in Node
 * `unref`'d: an open channel must not keep the process alive).
 * @param {string} name
 * @returns {BroadcastChannel | undefined}
 */
export function tokenChannel(name) {
  if (typeof BroadcastChannel !== "function") return undefined;
  const ch = new BroadcastChannel(name);
  /** @type {{ unref?: () => void }} */ (ch).unref?.();
  return ch;
}
