//! The layering check both crates run on their `src/` (included by each
//! crate's tests/layers.rs): each module names, with `crate::…`, only
//! modules below it in the given order.

use std::collections::BTreeSet;
use std::path::Path;

/// The modules a source file names with `crate::X` / `$crate::X`, with the
/// line of each (comments left out: a doc link is not an import).
pub fn named(source: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != "prelude" {
                out.push((name, n + 1));
            }
            rest = after;
        }
    }
    out
}

/// Every module of `src` (but `lib`) has a place in `layers`, and none
/// names a module above it (`module_of`: which module a name belongs to,
/// for macros).
pub fn check(src: &Path, layers: &[&str], module_of: fn(&str) -> &str) {
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if stem != "lib" {
            files.insert(stem);
        }
    }
    let layered: BTreeSet<String> = layers.iter().map(|s| s.to_string()).collect();
    assert_eq!(files, layered, "every module of src/ has a place in the layers");
    let mut wrong = Vec::new();
    for (rank, module) in layers.iter().enumerate() {
        let source = std::fs::read_to_string(src.join(format!("{module}.rs"))).unwrap();
        for (name, line) in named(&source) {
            let name = module_of(&name);
            match layers.iter().position(|l| *l == name) {
                Some(r) if r < rank || name == *module => {}
                Some(_) => wrong.push(format!("src/{module}.rs:{line} names `{name}`, which is not below it")),
                None => wrong.push(format!("src/{module}.rs:{line} names `{name}`, which is not a module")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
