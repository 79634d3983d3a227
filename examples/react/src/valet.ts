import { ValetClient } from "@valet.red/sdk";
import { devBackend } from "../../dev-backend.js";

const { agentId, fetchJwt, baseUrl } = devBackend("react-example");

/** One client for the whole app, created outside React. */
export const valet = new ValetClient({ agentId, fetchJwt, baseUrl });

const KEY = "valet-react-example-convo";
/**
 * This tab's convo, kept across reloads (sessionStorage), else a new one.
 * `useConvo({ convoId: convoOfThisTab })` calls it once per mount, so
 * Strict Mode's double mount starts one convo, not two.
 */
export async function convoOfThisTab(): Promise<string> {
  const saved = sessionStorage.getItem(KEY);
  if (saved) return saved;
  const { convoId } = await valet.startSession();
  sessionStorage.setItem(KEY, convoId);
  return convoId;
}
