//! `valet-wasm`: the browser SDK's glue. It carries out what `valet-core`
//! decides (fetch, streams, timers, tab channels) and owns the handles.
//! The SDK proper (`ValetClient`, `Convo`) lands with issue 3; today this
//! crate only proves the build pipeline (Rust -> wasm32 -> wasm-bindgen).
#![deny(missing_docs)]

use wasm_bindgen::prelude::*;

/// The SDK version, from Cargo.
#[wasm_bindgen(js_name = sdkVersion)]
pub fn sdk_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
