import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Nothing SDK-specific: Vite finds the wasm by itself, in `vite build` and
// in `vite dev` (where it rewrites the URL in pre-bundled dependencies).
export default defineConfig({
  plugins: [react()],
});
