// The stand-in for *your* backend, shared by the examples. In your app,
// fetchJwt asks your server, which signs the JWT with the company secret;
// here the reference server's dev endpoint (POST /dev/jwt) does it.
//
// Call it in the browser only (it reads the page's URL): the Valet API is
// the `make demo` server unless the page says ?api=http://127.0.0.1:PORT.

/** `{ agentId, fetchJwt, baseUrl }` for a new anonymous user of the dev agent. */
export function devBackend(userPrefix) {
  const baseUrl = new URLSearchParams(location.search).get("api") ?? "http://127.0.0.1:8787";
  const user = `${userPrefix}-${crypto.randomUUID()}`;
  async function fetchJwt() {
    const res = await fetch(`${baseUrl}/dev/jwt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source_key: user }),
    });
    if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
    return (await res.json()).token;
  }
  // The reference server's dev agent.
  return { agentId: "00000000-0000-4000-8000-00000000a9e1", fetchJwt, baseUrl };
}
