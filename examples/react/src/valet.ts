import { ValetClient } from "@valet.red/sdk";

// Where the Valet API is: the reference server of `make demo` unless the
// page says otherwise (?api=http://127.0.0.1:PORT).
const api = new URLSearchParams(location.search).get("api") ?? "http://127.0.0.1:8787";
const user = `react-example-${crypto.randomUUID()}`;

// In your app, fetchJwt asks *your* backend, which signs the JWT with the
// company secret. Here the reference server's dev endpoint stands in for it.
async function fetchJwt(): Promise<string> {
  const res = await fetch(`${api}/dev/jwt`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ source_key: user }),
  });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  return (await res.json()).token;
}

/** The reference server's dev agent. */
const agentId = "00000000-0000-4000-8000-00000000a9e1";

/** One client for the whole app, created outside React. */
export const valet = new ValetClient({ agentId, fetchJwt, baseUrl: api });

let session: Promise<string> | undefined;
/** This page's convo: one per page load (Strict Mode's double effects reuse it). */
export function convoOfThisPage(): Promise<string> {
  session ??= valet.startSession().then((s) => s.convoId);
  return session;
}
