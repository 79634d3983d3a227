/** @type {import("next").NextConfig} */
const nextConfig = {
  // A static export (out/), so the example runs from any static server.
  // Nothing SDK-specific is needed: the wasm is an asset Next finds itself.
  output: "export",
};

export default nextConfig;
