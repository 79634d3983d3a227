import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Nothing SDK-specific: Vite finds the wasm by itself. Two pages: the store
// (index.html) and the <valet-chat> element (element.html).
export default defineConfig({
  plugins: [svelte()],
  build: { rollupOptions: { input: { main: "index.html", element: "element.html" } } },
});
