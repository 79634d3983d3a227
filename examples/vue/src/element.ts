// <valet-chat> in a Vue 3 app: a plain element (templates are told it is
// one, in vite.config.ts). Vue sets `client` as a property, since the
// element has one.
import { createApp, h, ref } from "vue";
import "@valet.red/sdk/element";
import { valet } from "./valet";

const App = {
  setup() {
    const shown = ref(true);
    return () => [
      h("button", { onClick: () => (shown.value = !shown.value) }, shown.value ? "Hide chat" : "Show chat"),
      shown.value ? h("valet-chat", { client: valet, greeting: "Hi from a Vue app!", style: { height: "30rem" } }) : null,
    ];
  },
};

createApp(App).mount("#app");
