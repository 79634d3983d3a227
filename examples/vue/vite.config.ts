import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// Nothing SDK-specific: the wasm is an asset Vite finds by itself.
export default defineConfig({
  plugins: [vue()],
  // `vite dev` pre-bundles dependencies into .vite/deps, where the SDK's
  // wasm file (next to its glue) would not be: serve the SDK as it is.
  optimizeDeps: { exclude: ["@valet.red/sdk"] },
});
