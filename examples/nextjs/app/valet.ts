import { ValetClient } from "@valet.red/sdk";

/** The reference server's dev agent. */
const agentId = "00000000-0000-4000-8000-00000000a9e1";

let client: { valet: ValetClient; session: Promise<string> } | undefined;

/**
 * The app's client and this page's convo, made on first use in the browser
 * (never during prerendering: there is no `location` there).
 */
export function valetOfThisPage(): { valet: ValetClient; session: Promise<string> } {
  if (client) return client;
  // Where the Valet API is: the reference server of `make demo` unless the
  // page says otherwise (?api=http://127.0.0.1:PORT).
  const api = new URLSearchParams(location.search).get("api") ?? "http://127.0.0.1:8787";
  const user = `nextjs-example-${crypto.randomUUID()}`;
  // In your app, fetchJwt asks *your* backend (a route handler, say), which
  // signs the JWT with the company secret. Here the reference server's dev
  // endpoint stands in for it.
  const fetchJwt = async (): Promise<string> => {
    const res = await fetch(`${api}/dev/jwt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source_key: user }),
    });
    if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
    return (await res.json()).token;
  };
  const valet = new ValetClient({ agentId, fetchJwt, baseUrl: api });
  client = { valet, session: valet.startSession().then((s) => s.convoId) };
  return client;
}
