//! valet-core reads bottom-up, without circles: each module names (with
//! `crate::…`, in code and in its own tests) only modules below it in
//! [`LAYERS`]. Read from the source text, so a new import above a module's
//! layer fails here, with the line that names it.

#[path = "support/layering.rs"]
mod layering;

use std::path::Path;

/// Bottom first: text and JSON helpers, then what the wire and the errors
/// are, then the parts of a convo, then the machines that use them.
const LAYERS: &[&str] = &[
    "text", "json", "error", "events", "wire", "backoff", "sse", "send", "delivery", "action", "cache", "outbox", "election", "token", "token_source", "convo", "session", "client",
];

/// `crate::cat!` is text's macro.
fn module_of(name: &str) -> &str {
    if name == "cat" {
        "text"
    } else {
        name
    }
}

#[test]
fn no_module_names_one_above_it() {
    layering::check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), LAYERS, module_of);
}

#[test]
fn the_check_sees_an_import_above() {
    let named = layering::named("use crate::convo::Action; // crate::wire in a comment\nlet x = $crate::text::String::new();\n");
    assert_eq!(named, [("convo".to_owned(), 1), ("text".to_owned(), 2)]);
}
