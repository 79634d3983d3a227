// Jest + jsdom: ESM (`NODE_OPTIONS=--experimental-vm-modules`, no
// transform) in `jest-fixed-jsdom`, the jsdom environment that keeps Node's
// fetch, streams and TextDecoder (Jest's own jsdom environment removes them,
// and the SDK needs them).
import { expect, test } from "@jest/globals";
import { createConvoStore } from "@valet.red/sdk";
import { createMockValet } from "@valet.red/sdk/testing";
import { chatView } from "./chat.js";

const until = async (what, pred) => {
  for (const end = Date.now() + 10_000; Date.now() < end; ) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
};

test("a conversation in a DOM under Jest: my message and the agent's echo, once each", async () => {
  expect(typeof document).toBe("object"); // jsdom is there
  const mock = createMockValet();
  const { convoId } = await mock.client.startSession();
  const store = createConvoStore(() => mock.client.openConvo({ convoId }));
  await until("connected", () => store.getState().status === "connected");
  await store.send("Where is my order?");
  await until("the agent's turn", () => store.getState().turn.phase === "done");
  expect(chatView(store.getState())).toEqual(["me: Where is my order?", 'agent: You said: "Where is my order?"']);
  store.close();
  mock.close();
});
