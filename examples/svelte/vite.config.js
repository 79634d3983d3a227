import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Nothing SDK-specific: Vite finds the wasm by itself.
export default defineConfig({
  plugins: [svelte()],
});
