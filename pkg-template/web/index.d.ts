// Types of the no-bundler entry: the SDK's generated typings, initialized.
export * from "./valet_wasm.js";
