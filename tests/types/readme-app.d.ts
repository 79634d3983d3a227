// What the README's snippets leave to the app: its backend, its view.
import type { ValetClient } from "@valet.red/sdk";

declare global {
  /** The agent the app chats with. */
  const agentId: string;
  /** The Valet API. */
  const baseUrl: string;
  const debug: boolean;
  const fetchJwtTimeoutMs: number;
  /** Asks the app's backend for a JWT. */
  function fetchJwt(): Promise<string>;
  /** The backend minting a JWT (in a script). */
  function mintJwt(): Promise<string>;
  /** The app's client and convo, where a snippet continues an earlier one. */
  const valet: ValetClient;
  const convoId: string;
  /** The app's view and analytics. */
  function render(what: unknown): void;
  function notify(what: unknown): void;
  function track(...what: unknown[]): void;
  function report(what: unknown): void;
  /** Vitest's fake timers, as a test file has them. */
  const vi: { useFakeTimers(): void; advanceTimersByTimeAsync(ms: number): Promise<void> };
}
