import type { Plugin } from "vite";

/** The README's startup hint: a preload of the SDK's wasm and a preconnect to `apiOrigin`, in the built page. */
export function valetPreload(apiOrigin: string): Plugin;
