import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// Nothing SDK-specific: Vite finds the wasm by itself, in `vite build` and
// in `vite dev` (where it rewrites the URL in pre-bundled dependencies).
export default defineConfig({
  plugins: [vue()],
});
