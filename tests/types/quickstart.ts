// The seed quickstart, verbatim apart from the import path and baseUrl.
import { ValetClient } from "@valet.red/sdk";

declare const agentId: string;
declare function fetchJwt(): Promise<string>;
declare function render(message: { id: string; content: string }): void;
const baseUrl = "http://127.0.0.1:8787";
const debug = false;
const fetchJwtTimeoutMs = 10_000;

export async function main() {
const valet = new ValetClient({ agentId, fetchJwt, baseUrl, debug, fetchJwtTimeoutMs })
const { convoId } = await valet.startSession()
const convo = await valet.openConvo({ convoId })
convo.on("message", ({ message }) => render(message))   // returns unsubscribe
await convo.send("Hi, I need help with my order")
convo.close()
}
