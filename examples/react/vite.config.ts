import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

// Nothing SDK-specific is needed: Vite finds the wasm by itself, in `vite
// build` and in `vite dev` (where it rewrites the URL in pre-bundled
// dependencies). The plugin below is the README's startup hint ("Startup:
// the first message sooner"; tests/types/readme.mjs checks that both hold
// the same function): the wasm's download starts with the page's script.
function valetPreload(apiOrigin: string): Plugin {
  let base = "/";
  return {
    name: "valet-preload",
    configResolved(config) { base = config.base; },
    transformIndexHtml: {
      order: "post",
      handler(html, ctx) {
        const wasm = Object.keys(ctx.bundle ?? {}).find((f) => /valet_wasm_bg.*\.wasm$/.test(f));
        if (!wasm) return html;
        return [
          { tag: "link", attrs: { rel: "preload", href: base + wasm, as: "fetch", type: "application/wasm", crossorigin: "" }, injectTo: "head-prepend" },
          { tag: "link", attrs: { rel: "preconnect", href: apiOrigin, crossorigin: "" }, injectTo: "head-prepend" },
        ];
      },
    },
  };
}

export default defineConfig({
  // The API's origin is given at run time here (`?api=`); an app knows its own.
  plugins: [react(), valetPreload("http://127.0.0.1:8787")],
});
