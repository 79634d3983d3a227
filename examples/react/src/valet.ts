import { ValetClient } from "@valet.red/sdk";
import { devBackend } from "../../dev-backend.js";

const { agentId, fetchJwt, baseUrl } = devBackend("react-example");

/** One client for the whole app, created outside React. */
export const valet = new ValetClient({ agentId, fetchJwt, baseUrl });

let session: Promise<string> | undefined;
/** This page's convo: one per page load (Strict Mode's double effects reuse it). */
export function convoOfThisPage(): Promise<string> {
  session ??= valet.startSession().then((s) => s.convoId);
  return session;
}
