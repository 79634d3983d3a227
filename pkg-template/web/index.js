// The no-bundler entry: loads the wasm next to this file (found relative to
// the module, no bundler plugin needed) and re-exports the SDK.
//   <script type="module">
//     import { ValetClient } from "/node_modules/@valet.red/sdk/web/index.js";
//   </script>
import init from "./valet_wasm.js";

await init({ module_or_path: new URL("./valet_wasm_bg.wasm", import.meta.url) });

export * from "./valet_wasm.js";
