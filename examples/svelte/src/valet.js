import { ValetClient } from "@valet.red/sdk";
import { devBackend } from "../../dev-backend.js";

const { agentId, fetchJwt, baseUrl } = devBackend("svelte-example");

/** One client for the whole app, created outside components. */
export const valet = new ValetClient({ agentId, fetchJwt, baseUrl });

let session;
/** This page's convo: one per page load. */
export function convoOfThisPage() {
  session ??= valet.startSession().then((s) => s.convoId);
  return session;
}
