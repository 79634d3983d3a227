// ESLint for the JavaScript that ships inside the wasm glue
// (crates/valet-wasm/js/): its recommended rules, browser and Node globals.
// Run from the repository root: `make test-types` does.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    files: ["crates/valet-wasm/js/**/*.js"],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      ...js.configs.recommended.rules,
      "no-empty": ["error", { allowEmptyCatch: true }],
      eqeqeq: ["error", "always", { null: "ignore" }],
      "prefer-const": "error",
      "no-var": "error",
    },
  },
];
