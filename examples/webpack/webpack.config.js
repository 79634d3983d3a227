// A plain webpack 5 build: nothing SDK-specific is needed. webpack emits the
// SDK's wasm as an asset from its `new URL("valet_wasm_bg.wasm",
// import.meta.url)`; no asyncWebAssembly experiment, no loader. The plugin
// below is the README's startup hint for webpack ("Startup: the first
// message sooner"; tests/types/readme.mjs checks that both hold the same
// class): html-webpack-plugin's page gets a preload of the wasm.
const path = require("node:path");
const HtmlWebpackPlugin = require("html-webpack-plugin");

class ValetPreloadPlugin {
  constructor(apiOrigin) {
    this.apiOrigin = apiOrigin;
  }
  apply(compiler) {
    compiler.hooks.compilation.tap("ValetPreloadPlugin", (compilation) => {
      HtmlWebpackPlugin.getHooks(compilation).alterAssetTagGroups.tap("ValetPreloadPlugin", (data) => {
        const wasm = compilation.getAssets().find((a) => /valet_wasm_bg\.wasm$/.test(a.info.sourceFilename ?? a.name));
        if (wasm) {
          data.headTags.unshift(
            HtmlWebpackPlugin.createHtmlTagObject("link", { rel: "preload", href: data.publicPath + wasm.name, as: "fetch", type: "application/wasm", crossorigin: true }),
            HtmlWebpackPlugin.createHtmlTagObject("link", { rel: "preconnect", href: this.apiOrigin, crossorigin: true }),
          );
        }
        return data;
      });
    });
  }
}

module.exports = {
  entry: "./src/index.js",
  output: {
    path: path.resolve(__dirname, "dist"),
    filename: "main.[contenthash].js",
    clean: true,
  },
  plugins: [
    new HtmlWebpackPlugin({ template: "index.html" }),
    // The API's origin is given at run time here (`?api=`); an app knows its own.
    new ValetPreloadPlugin("http://127.0.0.1:8787"),
  ],
};
