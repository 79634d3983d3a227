//! valet-core reads bottom-up, without circles: each module names (with
//! `crate::…`, in code and in its own tests) only modules below it in
//! [`LAYERS`]. Read from the source text, so a new import above a module's
//! layer fails here, with the line that names it.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom first: text and JSON helpers, then what the wire and the errors
/// are, then the parts of a convo, then the machines that use them.
const LAYERS: &[&str] = &[
    "text", "json", "error", "events", "wire", "backoff", "sse", "send", "delivery", "action", "outbox", "election", "token", "token_source", "convo", "session", "client",
];

/// `crate::cat!` is text's macro.
fn module_of(name: &str) -> &str {
    if name == "cat" {
        "text"
    } else {
        name
    }
}

/// The modules a source file names with `crate::X` / `$crate::X`, with the
/// line of each (comments left out: a doc link is not an import).
fn named(source: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != "prelude" {
                out.push((module_of(&name).to_owned(), n + 1));
            }
            rest = after;
        }
    }
    out
}

#[test]
fn no_module_names_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if stem != "lib" {
            files.insert(stem);
        }
    }
    let layered: BTreeSet<String> = LAYERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(files, layered, "every module of src/ has a place in LAYERS");
    let mut wrong = Vec::new();
    for (rank, module) in LAYERS.iter().enumerate() {
        let source = std::fs::read_to_string(src.join(format!("{module}.rs"))).unwrap();
        for (name, line) in named(&source) {
            match LAYERS.iter().position(|l| *l == name) {
                Some(r) if r < rank || name == *module => {}
                Some(_) => wrong.push(format!("src/{module}.rs:{line} names `{name}`, which is not below it")),
                None => wrong.push(format!("src/{module}.rs:{line} names `{name}`, which is not a module")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_an_import_above() {
    let named = named("use crate::convo::Action; // crate::wire in a comment\nlet x = $crate::text::String::new();\n");
    assert_eq!(named, [("convo".to_owned(), 1), ("text".to_owned(), 2)]);
}
