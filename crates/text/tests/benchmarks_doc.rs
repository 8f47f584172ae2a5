//! docs/BENCHMARKS.md is what `scripts/tools/benchmarks_md.py` makes of the kept benchmark logs: a figure
//! typed into it, or a log kept without rewriting it, fails here.

use std::process::Command;
use test_support::root;

#[test]
fn the_benchmarks_doc_is_generated_from_the_logs() {
    let out = Command::new("python3")
        .arg(root().join("scripts/tools/benchmarks_md.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = std::fs::read_to_string(root().join("docs/BENCHMARKS.md")).unwrap();
    assert!(
        doc.contains("## mlm_gpu") && doc.contains("| date |"),
        "{doc}"
    );
}
