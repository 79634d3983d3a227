import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// Nothing SDK-specific: Vite finds the wasm by itself, in `vite build` and
// in `vite dev` (where it rewrites the URL in pre-bundled dependencies).
// Two pages: the composable (index.html) and the <valet-chat> element
// (element.html; templates would need `isCustomElement` for its tag).
export default defineConfig({
  plugins: [vue({ template: { compilerOptions: { isCustomElement: (tag) => tag === "valet-chat" } } })],
  build: { rollupOptions: { input: { main: "index.html", element: "element.html" } } },
});
