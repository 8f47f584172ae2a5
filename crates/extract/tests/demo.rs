//! `scripts/demo.sh --quick`, the README's main job as a smoke run, on the binaries this workspace's
//! test build made (`cargo test --release --workspace` builds every crate's binaries): every step
//! runs, leaves its outputs and gives the published quick-run EM/F1. (`scripts/test.sh` first runs the
//! same demo with its own build step, as on a fresh clone.)

use std::path::Path;
use std::process::Command;
use test_support::root;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "the demo runs release binaries: cargo test --release --workspace"
)]
fn quick_demo_runs_every_step() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_extract"))
        .parent()
        .unwrap()
        .to_path_buf();
    let root = root();
    // The script runs target/release/*: only a release test build has them all.
    assert_eq!(
        bin_dir,
        root.join("target/release"),
        "not a release test build"
    );
    for b in [
        "data-prep",
        "mlm-pretrain",
        "qa-finetune",
        "eval",
        "extract",
        "examples/parity_report",
    ] {
        assert!(
            bin_dir.join(b).is_file(),
            "{b} is not built: run cargo test --release --workspace"
        );
    }
    let out = Command::new("bash")
        .arg("scripts/demo.sh")
        .arg("--quick")
        .current_dir(&root)
        .env("MEDQA_DEMO_NO_BUILD", "1")
        .env("DEVICE", "cpu")
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let run = root.join("runs/demo-quick");
    for f in [
        "tokenizer.json",
        "corpus/statistics.parquet",
        "qa-data/train.json",
        "mlm/final/model.safetensors",
        "qa/final/medqa.json",
        "eval.md",
        "extraction-wide.csv",
        "extraction.nt",
        "nightly/history.parquet",
        "curves-mlm.png",
        "curves-qa-loss.png",
        "curves-qa-f1.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing\n{log}");
    }
    let table = tables::read(&run.join("extraction.parquet")).unwrap();
    assert_eq!(table.height(), 42 * 34, "42 held-out notes × 34 concepts");
    let md = std::fs::read_to_string(run.join("eval.md")).unwrap();
    for lang in ["bg", "cs", "el", "en", "es", "pl", "ro", "all"] {
        assert!(md.contains(&format!("| sample-dev | {lang} |")), "{md}");
    }
    // The quick demo's held-out scores, as the README's quick-run figures: every step is seeded, so
    // on this machine kind (2 x86-64 cores, libtorch's CPU kernels) they repeat exactly. A change of
    // code that moves them must come with the new figures.
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let (em, f1) = (
        eval["overall"]["exact"].as_f64().unwrap(),
        eval["overall"]["f1"].as_f64().unwrap(),
    );
    assert_eq!(
        (
            format!("{em:.2}"),
            format!("{f1:.2}"),
            eval["overall"]["total"].as_u64()
        ),
        ("0.49".to_owned(), "1.26".to_owned(), Some(1428)),
        "quick demo EM/F1 moved\n{log}"
    );
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        summary.contains("| sample-dev | all | 1428 | **0.49** | **1.26** |"),
        "{summary}"
    );
}
