// Vitest + jsdom: the SDK loads its wasm in Node though a DOM is there, and
// the README's fake-timer pattern works (start the call, advance with the
// async variant, then await it).
import { afterEach, expect, test, vi } from "vitest";
import { createConvoStore } from "@valet.red/sdk";
import { createMockValet } from "@valet.red/sdk/testing";
import { chatView } from "./chat.js";

afterEach(() => {
  vi.useRealTimers();
});

test("a conversation in a DOM: my message and the agent's echo, once each", async () => {
  expect(typeof document).toBe("object"); // jsdom is there
  const mock = createMockValet();
  const { convoId } = await mock.client.startSession();
  const store = createConvoStore(() => mock.client.openConvo({ convoId }));
  await vi.waitFor(() => expect(store.getState().status).toBe("connected"));
  await store.send("Where is my order?");
  await vi.waitFor(() => expect(store.getState().turn.phase).toBe("done"));
  expect(chatView(store.getState())).toEqual(["me: Where is my order?", 'agent: You said: "Where is my order?"']);
  store.close();
  mock.close();
});

test("fake timers: start the call, advance with the async variant, then await it", async () => {
  vi.useFakeTimers();
  const mock = createMockValet({ replyDelayMs: 5_000 });
  const starting = mock.client.startSession(); // start the call...
  await vi.advanceTimersByTimeAsync(0); // ...let the SDK's timers run...
  const { convoId } = await starting; // ...then await it
  const store = createConvoStore(() => mock.client.openConvo({ convoId }));
  await vi.advanceTimersByTimeAsync(1_000);
  expect(store.getState().status).toBe("connected");
  const sent = store.send("Hi");
  await vi.advanceTimersByTimeAsync(0);
  await sent;
  await vi.advanceTimersByTimeAsync(1_000);
  expect(chatView(store.getState())).toEqual(["me: Hi"]); // the agent takes 5 s
  await vi.advanceTimersByTimeAsync(5_000); // the agent's reply delay, in no time
  expect(chatView(store.getState())).toEqual(["me: Hi", 'agent: You said: "Hi"']);
  store.close();
  mock.close();
});
