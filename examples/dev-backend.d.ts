/** `{ agentId, fetchJwt, baseUrl }` for a new anonymous user of the dev agent. */
export declare function devBackend(userPrefix: string): {
  agentId: string;
  fetchJwt: () => Promise<string>;
  baseUrl: string;
};
