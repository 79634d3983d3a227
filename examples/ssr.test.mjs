// Server-side rendering: the package, installed from its tarball, imported
// and rendered in Node (no window, no fetch of the wasm). Nothing may throw,
// and nothing may be opened: the SDK only touches browser APIs when used.
import assert from "node:assert/strict";
import { test } from "node:test";

/** A client whose use during SSR would be a bug. */
const untouchable = {
  openConvo() {
    throw new Error("openConvo called during server-side rendering");
  },
  listConvos() {
    throw new Error("listConvos called during server-side rendering");
  },
};

test("every entry point imports in Node, without window", async () => {
  assert.equal(typeof globalThis.window, "undefined");
  const sdk = await import("@valet.red/sdk");
  const store = await import("@valet.red/sdk/store");
  const react = await import("@valet.red/sdk/react");
  const vue = await import("@valet.red/sdk/vue");
  // The element's module defines nothing where there is no DOM, and throws nothing.
  const element = await import("@valet.red/sdk/element");
  assert.equal(typeof element.ValetChatElement, "function");
  assert.equal(typeof globalThis.customElements, "undefined");
  assert.equal(typeof sdk.ValetClient, "function");
  assert.equal(typeof sdk.createConvoStore, "function");
  assert.equal(typeof store.retainConvoStore, "function");
  assert.equal(typeof react.useConvo, "function");
  assert.equal(typeof vue.useConvo, "function");
  // A client made at module scope of a server-rendered page is fine, and
  // loads nothing until a method is called.
  new sdk.ValetClient({ agentId: "a", fetchJwt: async () => "jwt" });
  assert.equal(sdk.isLoaded(), false);
});

test("React: renderToString of a component using useConvo shows the initial state", async () => {
  const { createElement } = await import("react");
  const { renderToString } = await import("react-dom/server");
  const { useConvo } = await import("@valet.red/sdk/react");
  function Chat() {
    const { status, messages } = useConvo({ client: untouchable, convoId: "c1" });
    return createElement("p", null, `${status}: ${messages.length} messages`);
  }
  assert.equal(renderToString(createElement(Chat)), "<p>connecting: 0 messages</p>");
});

test("Vue: renderToString of a component using useConvo shows the initial state", async () => {
  const { createSSRApp, h } = await import("vue");
  const { renderToString } = await import("vue/server-renderer");
  const { useConvo } = await import("@valet.red/sdk/vue");
  const app = createSSRApp({
    setup() {
      const { status, messages } = useConvo({ client: untouchable, convoId: "c1" });
      return () => h("p", `${status.value}: ${messages.value.length} messages`);
    },
  });
  assert.equal(await renderToString(app), "<p>connecting: 0 messages</p>");
});
