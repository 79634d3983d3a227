import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { valetPreload } from "./valet-preload.mjs";

// Nothing SDK-specific is needed: Vite finds the wasm by itself, in `vite
// build` and in `vite dev` (where it rewrites the URL in pre-bundled
// dependencies). valetPreload is the README's startup hint: the wasm's
// download starts with the page's script. Two pages: the hook (index.html)
// and the <valet-chat> element (element.html).
export default defineConfig({
  // The API's origin is given at run time here (`?api=`); an app knows its own.
  plugins: [react(), valetPreload("http://127.0.0.1:8787")],
  build: { rollupOptions: { input: { main: "index.html", element: "element.html" } } },
});
