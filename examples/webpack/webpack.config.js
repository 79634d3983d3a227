// A plain webpack 5 build: nothing SDK-specific. webpack emits the SDK's
// wasm as an asset from its `new URL("valet_wasm_bg.wasm", import.meta.url)`;
// no asyncWebAssembly experiment, no loader.
const path = require("node:path");

module.exports = {
  entry: "./src/index.js",
  output: {
    path: path.resolve(__dirname, "dist"),
    filename: "main.[contenthash].js",
    clean: true,
  },
  plugins: [
    {
      // index.html pointing at the hashed bundle (html-webpack-plugin in a
      // real app).
      apply(compiler) {
        compiler.hooks.thisCompilation.tap("html", (compilation) => {
          compilation.hooks.processAssets.tap({ name: "html", stage: 0 }, () => {
            const js = Object.keys(compilation.assets).find((f) => f.endsWith(".js"));
            const html = require("node:fs")
              .readFileSync(path.join(__dirname, "index.html"), "utf8")
              .replace("%MAIN%", js);
            compilation.emitAsset("index.html", new compiler.webpack.sources.RawSource(html));
          });
        });
      },
    },
  ],
};
