//! docs/ARCHITECTURE.md names every module of the model and text crates and every C++ source of the
//! shim: a file added or renamed without the doc fails here.

use std::path::Path;
use test_support::root;

/// The modules a `lib.rs`/`mod.rs` declares (`mod x;`, `pub mod x;`), as file names under `prefix`.
fn modules(file: &Path, prefix: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(format!("{prefix}{name}"))
        })
        .collect()
}

#[test]
fn every_module_and_shim_source_is_in_the_architecture_doc() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut expected = Vec::new();
    for (file, prefix) in [
        ("crates/model/src/lib.rs", ""),
        ("crates/model/src/train/mod.rs", "train/"),
        ("crates/model/src/qa/mod.rs", "qa/"),
        ("crates/text/src/lib.rs", "text/"),
        ("crates/text/src/qa/mod.rs", "text/qa/"),
    ] {
        for m in modules(&root.join(file), prefix) {
            // A module that is a directory (`qa`, `train`) is described file by file.
            let dir = root
                .join(file)
                .parent()
                .unwrap()
                .join(m.rsplit('/').next().unwrap());
            if !dir.is_dir() {
                expected.push(format!("`{m}.rs`"));
            }
        }
    }
    let csrc = root.join("crates/model/csrc");
    for entry in std::fs::read_dir(&csrc).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        expected.push(format!("`csrc/{name}`"));
    }
    assert!(expected.len() > 30, "{expected:?}");
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !doc.contains(e.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md does not name {missing:?}"
    );
}
