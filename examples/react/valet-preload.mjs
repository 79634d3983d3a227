// The README's startup hint for Vite ("Startup: the first message sooner"):
// a plugin that puts a preload of the SDK's wasm (and a preconnect to the
// API) in the built index.html, so the wasm downloads with the page's
// script. vite.config.ts uses it; tests/types/readme.mjs checks that the
// README shows this file's function.
export function valetPreload(apiOrigin) {
  let base = "/";
  return {
    name: "valet-preload",
    configResolved(config) {
      base = config.base;
    },
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
