// Vitest as a React app's usual setup runs it: a DOM (jsdom) in Node.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { environment: "jsdom", include: ["**/*.vitest.test.js"] },
});
