import { ValetClient } from "@valet.red/sdk";
import { devBackend } from "../../dev-backend.js";

let client: { valet: ValetClient; session: Promise<string> } | undefined;

/**
 * The app's client and this page's convo, made on first use in the browser
 * (not while the page is prerendered: the dev backend reads `location`).
 */
export function valetOfThisPage(): { valet: ValetClient; session: Promise<string> } {
  if (client) return client;
  const { agentId, fetchJwt, baseUrl } = devBackend("nextjs-example");
  const valet = new ValetClient({ agentId, fetchJwt, baseUrl });
  client = { valet, session: valet.startSession().then((s) => s.convoId) };
  return client;
}
