//! The glue reads bottom-up, without circles, as valet-core does (its
//! tests/layers.rs): each module names (with `crate::…`) only modules
//! below it in [`LAYERS`]. Read from the source text, so a new import
//! above a module's layer fails here, with the line that names it.

#![cfg(not(target_family = "wasm"))]

#[path = "../../valet-core/tests/support/layering.rs"]
mod layering;

use std::path::Path;

/// Bottom first: the runtime helpers, JSON, logging and the emitter, then
/// the handles (tabs, tokens, HTTP, the stream: a stream is handed a sink,
/// it knows no convo), what a client's convos share, the convo, the
/// client; the typings stand apart.
const LAYERS: &[&str] =
    &["rt", "json", "log", "emitter", "error", "tabs", "tokens", "http", "stream", "shared", "convo", "client", "typings"];

fn module_of(name: &str) -> &str {
    name
}

#[test]
fn no_module_names_one_above_it() {
    layering::check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), LAYERS, module_of);
}
