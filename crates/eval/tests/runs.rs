//! `eval runs`: training runs side by side from their records, per run and per group of seeds.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_eval");

/// A run directory as qa-finetune leaves it (the fields `eval runs` reads); `f1` None: stopped before
/// its evaluation, so no eval_results.json or train_results.json.
fn run_dir(root: &Path, name: &str, seed: u64, lr: f64, f1: Option<f64>, loss: f64) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = serde_json::json!({
        "tool": "qa-finetune", "tool_version": "0.1.0", "seed": seed,
        "git_commit": "0123456789abcdef", "config": {"train": {"learning_rate": lr, "seed": seed}},
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    if let Some(f1) = f1 {
        let eval = serde_json::json!({"eval/f1": f1, "eval/exact": f1 - 10.0});
        std::fs::write(dir.join("eval_results.json"), eval.to_string()).unwrap();
        let train = serde_json::json!({"global_step": 100, "epoch": 2.0, "train_loss": loss});
        std::fs::write(dir.join("train_results.json"), train.to_string()).unwrap();
    }
    dir.display().to_string()
}

/// `eval runs RUNS… EXTRA…`.
fn eval_runs(runs: &[String], extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("runs")
        .args(runs)
        .args(extra)
        .output()
        .unwrap()
}

/// The table `eval runs` prints for a call that must succeed.
fn table_of(runs: &[String], extra: &[&str]) -> String {
    let out = eval_runs(runs, extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn runs_are_tabulated_one_by_one_and_by_group() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let runs = [
        run_dir(root, "a1", 1, 3e-5, Some(70.0), 1.0),
        run_dir(root, "a2", 2, 3e-5, Some(74.0), 1.2),
        run_dir(root, "a3", 3, 3e-5, Some(72.0), 1.1),
        run_dir(root, "b1", 1, 5e-5, Some(60.0), 0.9),
        run_dir(root, "b2", 2, 5e-5, None, 0.0),
    ];
    let table = table_of(&runs, &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + runs.len(), "{table}");
    assert!(
        lines[0].contains("eval/exact") && lines[0].contains("eval/f1"),
        "{table}"
    );
    assert!(
        lines[2].contains("| 0123456 |") && lines[2].contains("| 70.0000 |"),
        "{table}"
    );
    assert!(
        lines[6].contains("no evaluation"),
        "the stopped run is a row: {table}"
    );

    let csv = root.join("by-lr.csv");
    let table = table_of(
        &runs,
        &[
            "--group-by",
            "train.learning_rate",
            "--metric",
            "eval/f1",
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(!lines[0].contains("eval/exact"), "{table}");
    // 3e-5: three seeds, F1 70, 74, 72: mean 72, sample sd 2; train loss 1.1 ± 0.1.
    assert!(lines[2].starts_with("| 0.00003 | 3 | 3 |"), "{table}");
    assert!(
        lines[2].ends_with("| 1.1000 | 0.1000 | 72.0000 | 2.0000 |"),
        "{table}"
    );
    // 5e-5: two runs, one evaluated: its F1, no spread.
    assert!(lines[3].starts_with("| 0.00005 | 2 | 1 |"), "{table}");
    assert!(lines[3].ends_with("| 60.0000 |  |"), "{table}");
    let written = std::fs::read_to_string(&csv).unwrap();
    assert!(written.starts_with("train.learning_rate,runs,evaluated,train_loss mean,train_loss sd,eval/f1 mean,eval/f1 sd"), "{written}");

    // --by-recipe: the configurations but for seeds and output: the same two groups, named by their runs.
    let by_recipe = table_of(&runs, &["--by-recipe", "--metric", "eval/f1"]);
    let rows: Vec<&str> = by_recipe.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{by_recipe}");
    assert!(
        rows[0].starts_with(&format!(
            "| {}, {}, {} | 3 | 3 |",
            runs[0], runs[1], runs[2]
        )),
        "{by_recipe}"
    );
    assert!(rows[0].ends_with("| 72.0000 | 2.0000 |"), "{by_recipe}");

    // A directory that is not a run, and a metric no run has, are errors that say so.
    let out = Command::new(BIN)
        .args(["runs", root.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no manifest.json"),
        "{err}"
    );
    let out = eval_runs(&runs, &["--metric", "eval/f2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--metric eval/f2: no run has it"),
        "{err}"
    );
}

#[test]
fn runs_are_compared_by_every_setting_they_used_where_the_manifest_has_it() {
    let tmp = tempfile::tempdir().unwrap();
    // Two seeds of one recipe: one config file left the warm-up out, the other wrote its default.
    let runs: Vec<String> = [(1, serde_json::json!({})), (2, serde_json::json!({"warmup_ratio": 0.0}))]
        .into_iter()
        .map(|(seed, written)| {
            let dir = tmp.path().join(format!("s{seed}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut config = serde_json::json!({"train": {"learning_rate": 3e-5, "seed": seed}});
            for (k, v) in written.as_object().unwrap() {
                config["train"][k] = v.clone();
            }
            let manifest = serde_json::json!({
                "tool": "qa-finetune", "seed": seed, "config": config,
                "effective_config": {"output_dir": dir, "train": {"learning_rate": 3e-5, "seed": seed, "warmup_ratio": 0.0}},
            });
            std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
            dir.display().to_string()
        })
        .collect();
    let by_recipe = table_of(&runs, &["--by-recipe"]);
    let rows: Vec<&str> = by_recipe.lines().skip(2).collect();
    assert_eq!(rows.len(), 1, "one recipe: {by_recipe}");
    // A setting the file left out shows its value, not "-".
    let table = table_of(&runs, &["--group-by", "train.warmup_ratio"]);
    assert!(
        table.lines().nth(2).unwrap().starts_with("| 0.0 | 2 |"),
        "{table}"
    );
}
