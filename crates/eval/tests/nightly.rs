//! `eval nightly` end to end with the real predictor (`qa-finetune predict`, built beside this crate's
//! binary by `cargo test --workspace`): dated reports, the Parquet history across runs, deltas, plots,
//! and the regression exit status.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_eval");

fn predictor() -> PathBuf {
    let p = Path::new(BIN).with_file_name("qa-finetune");
    assert!(
        p.is_file(),
        "{} is missing: run the workspace's tests (cargo test --workspace) or build qa-finetune first",
        p.display()
    );
    p
}

/// A QA model directory from the tiny fixture checkpoint (random weights, a QA head) with the window
/// settings prediction needs.
fn model_dir(dir: &Path) -> PathBuf {
    test_support::fixture_qa_model(
        dir,
        "tiny-h64-l1",
        r#"{"max_seq_length": 64, "doc_stride": 16, "max_query_length": 16,
            "postprocess": {"n_best_size": 20, "max_answer_length": 10,
                            "version_2_with_negative": false, "null_score_diff_threshold": 0.0}}"#,
    )
}

const CONTEXTS: [(&str, &str, &str); 4] = [
    (
        "en",
        "NIHSS score on admission was 12. Blood pressure 178/96 mmHg.",
        "What was the NIHSS score?",
    ),
    (
        "en",
        "Glucose was 7.9 mmol/L and the heart rate 104 bpm.",
        "What was the glucose?",
    ),
    (
        "ro",
        "Scorul NIHSS la internare a fost 13. Tensiunea arterială 176/98 mmHg.",
        "Care a fost scorul NIHSS?",
    ),
    (
        "ro",
        "Glicemia a fost 152 mg/dl, frecvența cardiacă 102 bătăi pe minut.",
        "Care a fost glicemia?",
    ),
];

/// The set with each question's gold answer chosen by `gold(i, context)`.
fn write_set(path: &Path, gold: impl Fn(usize, &str) -> String) {
    let data: Vec<serde_json::Value> = CONTEXTS
        .iter()
        .enumerate()
        .map(|(i, (lang, ctx, q))| {
            let a = gold(i, ctx);
            let start = ctx.find(&a).map_or(0, |b| ctx[..b].chars().count());
            serde_json::json!({"title": i.to_string(), "lang": lang, "paragraphs": [{"context": ctx,
                "qas": [{"id": format!("q{i}"), "question": q, "answers": [{"text": a, "answer_start": start}]}]}]})
        })
        .collect();
    std::fs::write(
        path,
        serde_json::json!({"version": "1.1", "data": data}).to_string(),
    )
    .unwrap();
}

fn nightly(cfg: &Path, run: &str) -> std::process::Output {
    nightly_with(cfg, run, &predictor())
}

fn nightly_with(cfg: &Path, run: &str, predictor: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["nightly", "--config", cfg.to_str().unwrap(), "--run", run])
        .arg("--predictor")
        .arg(predictor)
        .output()
        .unwrap()
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A suite in `d` with the `[[models]]` entries `models` (TOML; `{model}` stands for the tiny QA
/// model it makes) and one set (`sample-dev`, golds the whole contexts): (model, set, report
/// directory, config).
fn suite(d: &Path, models: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let model = model_dir(d);
    let set = d.join("dev.json");
    write_set(&set, |_, ctx| ctx.to_owned());
    let reports = d.join("nightly");
    let cfg = d.join("nightly.toml");
    std::fs::write(
        &cfg,
        format!(
            "report_dir = \"{}\"\ntolerance_f1 = 1.0\n[predict]\ndevice = \"cpu\"\nbatch_size = 4\n\
             {}\n[[sets]]\nname = \"sample-dev\"\npath = \"{}\"\n",
            reports.display(),
            models.replace("{model}", &model.display().to_string()),
            set.display()
        ),
    )
    .unwrap();
    (model, set, reports, cfg)
}

/// [`suite`] with the one model `tiny`.
fn one_model_suite(d: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    suite(d, "[[models]]\nname = \"tiny\"\npath = \"{model}\"")
}

#[test]
fn history_deltas_plots_and_the_regression_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (model, set, reports, cfg) = one_model_suite(d);
    // The golds are first what this model answers, so that the first nights score 100.
    let pred = d.join("first");
    let status = Command::new(predictor())
        .args(["predict", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&set)
        .arg("--out")
        .arg(&pred)
        .status()
        .unwrap();
    assert!(status.success());
    let answers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(pred.join("predictions.json")).unwrap())
            .unwrap();
    let answer = |i: usize| answers[&format!("q{i}")].as_str().unwrap().to_owned();
    assert!((0..4).all(|i| !answer(i).trim().is_empty()), "{answers:?}");
    write_set(&set, |i, _| answer(i));

    let first = nightly(&cfg, "2026-11-01T03:00:00Z");
    assert!(first.status.success(), "{}", text(&first));
    let out = text(&first);
    assert!(out.contains("new"), "{out}");
    let run1 = reports.join("2026-11-01T030000Z");
    for f in [
        "report.md",
        "results.json",
        "f1-sample-dev.png",
        "predictions/tiny/sample-dev/predictions.json",
    ] {
        assert!(run1.join(f).is_file(), "{f} missing in {}", run1.display());
    }
    let md = std::fs::read_to_string(run1.join("report.md")).unwrap();
    assert!(
        md.contains("| tiny | sample-dev | all | 4 | 100.00 | 100.00 |"),
        "{md}"
    );
    assert!(
        md.contains("| tiny | sample-dev | ro | 2 | 100.00 | 100.00 |"),
        "{md}"
    );

    // Same model, same set: no change.
    let second = nightly(&cfg, "2026-11-02T03:00:00Z");
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("+0.00"), "{}", text(&second));
    // A time stamp cannot be used twice.
    assert!(!nightly(&cfg, "2026-11-02T03:00:00Z").status.success());

    // A night that starts while another still runs (here this test process holds the report
    // directory) is refused before it predicts or touches the history.
    let history_before = std::fs::read(reports.join("history.parquet")).unwrap();
    let refused = |cfg: &Path, what: &str| {
        let out = nightly(cfg, "2026-11-02T04:00:00Z");
        assert!(!out.status.success());
        assert!(
            text(&out).contains(&format!(
                "{what} is in use by another nightly run (pid {})",
                std::process::id()
            )),
            "{}",
            text(&out)
        );
        assert!(!reports.join("2026-11-02T040000Z").exists());
        assert_eq!(
            std::fs::read(reports.join("history.parquet")).unwrap(),
            history_before
        );
    };
    {
        let _held = fsutil::lock::lock_dir(&reports, "report directory", "nightly run").unwrap();
        refused(&cfg, &format!("report directory {}", reports.display()));
    }
    // A history kept elsewhere is held too.
    let shared = d.join("shared");
    let elsewhere = d.join("nightly-elsewhere.toml");
    std::fs::write(
        &elsewhere,
        std::fs::read_to_string(&cfg).unwrap().replacen(
            "tolerance_f1",
            &format!(
                "history = \"{}\"\ntolerance_f1",
                shared.join("history.parquet").display()
            ),
            1,
        ),
    )
    .unwrap();
    {
        let _held = fsutil::lock::lock_dir(&shared, "history directory", "nightly run").unwrap();
        refused(
            &elsewhere,
            &format!("history directory {}", shared.display()),
        );
    }

    // The answers no longer match: every F1 falls, status 2, and the report says so.
    write_set(&set, |i, ctx| {
        let a = answer(i);
        ctx.split_whitespace()
            .find(|w| !a.contains(w))
            .unwrap()
            .to_owned()
    });
    let third = nightly(&cfg, "2026-11-03T03:00:00Z");
    assert_eq!(third.status.code(), Some(2), "{}", text(&third));
    assert!(text(&third).contains("REGRESSED"), "{}", text(&third));
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("2026-11-03T030000Z/results.json")).unwrap(),
    )
    .unwrap();
    let comparisons = results["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 3, "all, en, ro");
    // What ran the suite: eval, from this checkout.
    let provenance = &results["provenance"];
    assert_eq!(provenance["tool"], "eval nightly");
    assert_eq!(
        provenance["git_commit"].as_str(),
        test_support::git(&test_support::root(), &["rev-parse", "HEAD"]).as_deref(),
        "{provenance}"
    );
    assert!(provenance["command_line"][1] == "nightly", "{provenance}");
    assert!(comparisons
        .iter()
        .all(|c| c["regression"] == true && c["best_f1"] == 100.0));
    // The weights and the predictor are those of the night before: the set's file is what changed.
    assert!(
        comparisons
            .iter()
            .all(|c| c["changed"] == serde_json::json!(["set"])),
        "{comparisons:?}"
    );
    let md = std::fs::read_to_string(reports.join("2026-11-03T030000Z/report.md")).unwrap();
    assert!(
        md.contains("changed since previous") && md.contains("| yes | set |"),
        "{md}"
    );

    let history = eval::history::read(&reports.join("history.parquet")).unwrap();
    assert_eq!(history.len(), 9, "3 runs × (all, en, ro)");
    // What the predictor answered with: the model's windows and post-processing, in fp32.
    assert!(
        history
            .iter()
            .all(|r| r.predict_settings.as_deref().is_some_and(|s| {
                s.contains(r#""precision":"fp32""#) && s.contains(r#""max_seq_length":64"#)
            })),
        "{history:?}"
    );
    // The weights' hash is the one the predictor recorded; the set's, the file of that night.
    let weights_sha = &test_support::python_sha256(&[model.join("model.safetensors")])[0];
    assert!(history.iter().all(|r| &r.model_sha256 == weights_sha));
    let set_sha = &test_support::python_sha256(std::slice::from_ref(&set))[0];
    assert!(history
        .iter()
        .filter(|r| r.run == "2026-11-03T03:00:00Z")
        .all(|r| &r.set_sha256 == set_sha));
    let runs: std::collections::BTreeSet<&str> = history.iter().map(|r| r.run.as_str()).collect();
    assert_eq!(runs.len(), 3);
    // Each row names the predictor's code: the commit of the checkout it was built in.
    match test_support::git(&test_support::root(), &["rev-parse", "HEAD"]) {
        Some(head) => assert!(
            history.iter().all(|r| r
                .code_commit
                .as_deref()
                .is_some_and(|c| c.starts_with(&head))),
            "{history:?}"
        ),
        None => assert!(history.iter().all(|r| r.code_commit.is_none())),
    }

    // No predictor: a clear message, not a result.
    let missing = Command::new(BIN)
        .args([
            "nightly",
            "--config",
            cfg.to_str().unwrap(),
            "--predictor",
            "/nonexistent/qa-finetune",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("qa-finetune predict"),
        "{}",
        text(&missing)
    );
}

#[test]
fn a_model_entry_s_settings_reach_the_prediction_of_a_model_without_medqa_json() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let foreign = d.join("foreign");
    let entries = format!(
        "[[models]]\nname = \"own\"\npath = \"{{model}}\"\n\
         [[models]]\nname = \"foreign\"\npath = \"{foreign}\"\n\
         settings = {{ max_seq_length = 64, doc_stride = 16, max_query_length = 16, max_answer_length = 10 }}\n\
         [[models]]\nname = \"bare\"\npath = \"{foreign}\"",
        foreign = foreign.display()
    );
    let (model, _set, reports, cfg) = suite(d, &entries);
    test_support::without_medqa_json(&model, &foreign);
    let out = nightly(&cfg, "2026-11-01T03:00:00Z");
    let log = text(&out);
    let run = reports.join("2026-11-01T030000Z");
    let read = |name: &str| {
        std::fs::read(run.join(format!("predictions/{name}/sample-dev/predictions.json"))).unwrap()
    };
    // medqa.json's settings given in the entry: the model's own answers.
    assert_eq!(read("own"), read("foreign"), "{log}");
    let settings: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("predictions/foreign/sample-dev/predict_settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(settings["settings_from"], "run_qa_defaults");
    // Without them, run_qa.py's 384-token windows: more than the fixture's positions, a failure the
    // report names (and the run's status says).
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("bare on sample-dev: prediction failed"),
        "{log}"
    );
    assert!(log.contains("max_seq_length 384 exceeds"), "{log}");
}

/// The weights' hash comes from the predictor's record, or, from a predictor that records none, from
/// hashing here; a set whose file changes between the suite's start and its prediction is not scored;
/// with `--wait` a night waits for the one holding the report directory, and with `--wait-limit` only
/// so long.
#[test]
fn hashes_without_a_predictor_record_a_set_changed_during_the_run_and_waiting_for_a_held_night() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (model, set, reports, cfg) = one_model_suite(d);
    let real = predictor();

    // A predictor that leaves no predict_settings.json (as one older than that file).
    let unrecorded = script(
        &d.join("unrecorded.sh"),
        &format!(
            "\"{}\" \"$@\" || exit $?\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && rm \"$2/predict_settings.json\"; shift; done\n",
            real.display()
        ),
    );
    let first = nightly_with(&cfg, "2026-11-01T03:00:00Z", &unrecorded);
    assert!(first.status.success(), "{}", text(&first));
    assert!(!reports
        .join("2026-11-01T030000Z/predictions/tiny/dev/predict_settings.json")
        .exists());
    let history = eval::history::read(&reports.join("history.parquet")).unwrap();
    let weights_sha = &test_support::python_sha256(&[model.join("model.safetensors")])[0];
    assert!(!history.is_empty());
    assert!(
        history
            .iter()
            .all(|r| &r.model_sha256 == weights_sha && r.code_commit.is_none()),
        "{history:?}"
    );

    // A predictor that runs while the set's file is rewritten (a space appended: valid JSON still).
    let changing = script(
        &d.join("changing.sh"),
        &format!(
            "printf ' ' >> \"{}\"\nexec \"{}\" \"$@\"\n",
            set.display(),
            real.display()
        ),
    );
    let second = nightly_with(&cfg, "2026-11-02T03:00:00Z", &changing);
    assert!(!second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains(&format!(
            "model tiny on set sample-dev: {} changed while the suite ran",
            set.display()
        )),
        "{}",
        text(&second)
    );
    let history = eval::history::read(&reports.join("history.parquet")).unwrap();
    assert!(
        history.iter().all(|r| r.run == "2026-11-01T03:00:00Z"),
        "no row scored against a set that changed: {history:?}"
    );

    // `--wait`: a night that starts while another holds the report directory (this test process)
    // waits for it instead of failing, and runs once it is released.
    let held = fsutil::lock::lock_dir(&reports, "report directory", "nightly run").unwrap();
    // With a limit, the night gives up once it has passed, naming the holder, and writes nothing.
    let clock = std::time::Instant::now();
    let bounded = Command::new(BIN)
        .args(["nightly", "--wait", "--wait-limit", "1s", "--config"])
        .arg(&cfg)
        .args(["--run", "2026-11-03T03:00:00Z", "--predictor"])
        .arg(&real)
        .output()
        .unwrap();
    assert!(!bounded.status.success(), "{}", text(&bounded));
    assert!(clock.elapsed() >= std::time::Duration::from_secs(1));
    assert!(
        text(&bounded).contains(&format!(
            "report directory {} is in use by another nightly run (pid {}) and still was after 1s",
            reports.display(),
            std::process::id()
        )),
        "{}",
        text(&bounded)
    );
    assert!(!reports.join("2026-11-03T030000Z").exists());
    let mut waiting = Command::new(BIN)
        .args(["nightly", "--wait", "--config", cfg.to_str().unwrap()])
        .args(["--run", "2026-11-03T03:00:00Z", "--predictor"])
        .arg(&real)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(waiting.try_wait().unwrap().is_none(), "it did not wait");
    assert!(!reports.join("2026-11-03T030000Z").exists());
    drop(held);
    let waited = waiting.wait_with_output().unwrap();
    assert!(waited.status.success(), "{}", text(&waited));
    assert!(
        text(&waited).contains("in use by another nightly run")
            && text(&waited).contains("waiting for it to end"),
        "{}",
        text(&waited)
    );
    assert!(reports.join("2026-11-03T030000Z/report.md").is_file());
}

/// A model transformers saved in shards: predicted as one file is, and its history rows carry one
/// hash over the shards' bytes in order (`cat model-*.safetensors | sha256sum`).
#[test]
fn a_sharded_model_is_hashed_over_its_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (model, _set, reports, cfg) = one_model_suite(d);
    let sharded = d.join("sharded");
    let shards = test_support::sharded_copy(&model, &sharded, "20KB");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace(
            &format!("{}\"", model.display()),
            &format!("{}\"", sharded.display()),
        ),
    )
    .unwrap();
    let out = nightly(&cfg, "2026-11-01T03:00:00Z");
    assert!(out.status.success(), "{}", text(&out));
    let digest = test_support::python_sha256_concatenated(&shards);
    let history = eval::history::read(&reports.join("history.parquet")).unwrap();
    assert!(!history.is_empty());
    assert!(
        history.iter().all(|r| r.model_sha256 == digest),
        "{history:?} vs {digest}"
    );
}
