//! Fixture access shared by the model crate's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::Tensor;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("models"))
        .expect("fixtures/models exists (scripts/make_fixtures.py writes it)")
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 3,
        "expected at least three fixture models, found {dirs:?}"
    );
    dirs
}

pub fn read_tensors(file: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
        .into_iter()
        .collect()
}

/// max |a - b| over all elements; panics on a shape difference.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(tch::Kind::Double) - b.to_kind(tch::Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// The interpreter of the venv that `scripts/setup.sh --test` makes (or `MEDQA_PYTHON`).
pub fn venv_python() -> PathBuf {
    if let Ok(p) = std::env::var("MEDQA_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: run scripts/setup.sh --test (round-trip tests need transformers)",
        python.display()
    );
    python
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs a Python `script` of the venv with `input` as JSON on its standard input; its answer is the
/// last line of its standard output, as JSON (anything printed before it, such as a Trainer's logs, is
/// passed over).
pub fn python_json<T: serde::de::DeserializeOwned>(
    script: &str,
    input: &impl serde::Serialize,
) -> T {
    let mut child = std::process::Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}
