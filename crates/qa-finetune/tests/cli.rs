//! qa-finetune end to end on a small synthetic clinical QA set: it learns, predicts in the official
//! format, handles unanswerable questions, and what it saves loads in transformers.

use std::path::{Path, PathBuf};
use std::process::Command;
use test_support::{ok, root, run_ok};

const BIN: &str = env!("CARGO_BIN_EXE_qa-finetune");

/// Contexts with three facts each, asked about in English; with `unanswerable`, a fourth question
/// that the context cannot answer.
fn squad(n: usize, prefix: &str, seed: u64, unanswerable: bool) -> serde_json::Value {
    let mut x = seed;
    let mut next = |lo: u64, hi: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (x >> 33) % (hi - lo + 1)
    };
    let mut articles = Vec::new();
    for i in 0..n {
        let (nih, a, b, g) = (next(1, 30), next(100, 200), next(60, 110), next(4, 15));
        let ctx = format!(
            "NIHSS score on admission was {nih}. Blood pressure {a}/{b} mmHg, glucose {g} mmol/L."
        );
        let mut qas = Vec::new();
        let facts = [
            ("What was the NIHSS score?", nih.to_string()),
            ("What was the blood pressure?", format!("{a}/{b} mmHg")),
            ("What was the glucose?", format!("{g} mmol/L")),
        ];
        for (j, (q, ans)) in facts.iter().enumerate() {
            let start = ctx[..ctx.find(ans.as_str()).unwrap()].chars().count();
            qas.push(
                serde_json::json!({"id": format!("{prefix}{i}-{j}"), "question": q,
                "answers": [{"text": ans, "answer_start": start}]}),
            );
        }
        if unanswerable {
            qas.push(serde_json::json!({"id": format!("{prefix}{i}-x"), "question": "What was the heart rate?",
                "answers": [], "is_impossible": true}));
        }
        articles.push(serde_json::json!({"title": i.to_string(), "lang": "en",
            "paragraphs": [{"context": ctx, "qas": qas}]}));
    }
    serde_json::json!({"version": if unanswerable { "v2.0" } else { "1.1" }, "data": articles})
}

fn setup(dir: &Path, unanswerable: bool, epochs: u32) -> PathBuf {
    std::fs::write(
        dir.join("train.json"),
        squad(60, "t", 1, unanswerable).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("dev.json"),
        squad(15, "v", 2, unanswerable).to_string(),
    )
    .unwrap();
    let fixtures = root().join("crates/model/tests/fixtures");
    let cfg = format!(
        r#"output_dir = "{out}"
init_from = "{model}"
tokenizer = "{tok}"
[data]
train = [{{ path = "{d}/train.json" }}]
validation = [{{ path = "{d}/dev.json" }}]
max_seq_length = 64
doc_stride = 16
max_query_length = 16
[train]
seed = 7
learning_rate = 3e-3
num_train_epochs = {epochs}
per_device_train_batch_size = 16
warmup_ratio = 0.1
eval_steps = 1000
logging_steps = 20
"#,
        out = dir.join("run").display(),
        model = fixtures.join("models/tiny-h64-l1").display(),
        tok = fixtures.join("tokenizer/tokenizer.json").display(),
        d = dir.display()
    );
    let file = dir.join("qa.toml");
    std::fs::write(&file, cfg).unwrap();
    file
}

/// `scripts/bench/squad_v1_reference.py` (a SQuAD v1.1 scorer in Python) on `predictions`: exact_match, f1.
fn python_squad_v1(data: &Path, predictions: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(
        Command::new(test_support::python()).args([
            root()
                .join("scripts/bench/squad_v1_reference.py")
                .as_os_str(),
            data.as_os_str(),
            predictions.as_os_str(),
        ]),
    ))
    .unwrap()
}

fn eval_results(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run/eval_results.json")).unwrap())
        .unwrap()
}

#[test]
fn learns_predicts_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 12);
    // Zero steps: the untrained model's score, for comparison.
    ok(Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--device",
            "cpu",
            "--set",
            "train.max_steps=1",
            "--set",
            "train.learning_rate=1e-9",
        ])
        .output()
        .unwrap());
    let before = eval_results(tmp.path())["eval/f1"].as_f64().unwrap();
    ok(Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--device",
            "cpu",
            "--overwrite",
            "--set",
            "train.include_num_input_tokens_seen=non_padding",
        ])
        .output()
        .unwrap());
    let after = eval_results(tmp.path())["eval/f1"].as_f64().unwrap();
    println!("validation F1 before {before:.1}, after {after:.1}");
    assert!(
        after > 90.0 && after > before + 50.0,
        "F1 {before} -> {after}"
    );
    // The model card: the pipeline, the evaluation as eval_results.json has it, the settings, the data's
    // hashes and the command, from the manifest.
    let card = std::fs::read_to_string(tmp.path().join("run/final/README.md")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(card.starts_with("---\nlibrary_name: transformers\npipeline_tag: question-answering\n"));
    assert!(
        card.contains(&format!("| eval/f1 | {after:.4} |")),
        "{card}"
    );
    for input in manifest["inputs"].as_array().unwrap() {
        assert!(card.contains(input["sha256"].as_str().unwrap()), "{card}");
    }
    assert!(
        card.contains(&format!("| seed | {} |", manifest["seed"])),
        "{card}"
    );
    assert!(
        card.contains("--overwrite --set train.include_num_input_tokens_seen=non_padding\n```"),
        "the command line: {card}"
    );
    // train_results.json: run_qa.py's names; the loss is the mean of the logged steps'.
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/train_results.json")).unwrap(),
    )
    .unwrap();
    let logged: Vec<f64> = model::train::log::read_history(&tmp.path().join("run/train_log.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| r.values.get("train/loss").copied())
        .collect();
    assert_eq!(results["global_step"].as_u64(), Some(logged.len() as u64));
    let mean = logged.iter().sum::<f64>() / logged.len() as f64;
    let train_loss = results["train_loss"].as_f64().unwrap();
    assert!((train_loss - mean).abs() < 1e-9, "{train_loss} vs {mean}");
    assert!(results["train_runtime"].as_f64().unwrap() > 0.0);
    assert!(results["epoch"].as_f64().unwrap() > 0.0);
    // The real tokens seen: every window once per epoch (12), the count tokens/s is taken over.
    let seen = results["num_input_tokens_seen"].as_u64().unwrap();
    assert_eq!(seen % 12, 0, "{seen}");
    let rate = results["train_tokens_per_second"].as_f64().unwrap();
    let counted = rate * results["train_runtime"].as_f64().unwrap();
    assert!(
        (counted - seen as f64).abs() < 1e-6 * seen as f64,
        "{counted} vs {seen}"
    );

    let model = tmp.path().join("run/final");
    let out = tmp.path().join("pred");
    let dump = tmp.path().join("features.jsonl");
    ok(Command::new(BIN)
        .args([
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--data",
            tmp.path().join("dev.json").to_str().unwrap(),
        ])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--dump-features",
            dump.to_str().unwrap(),
            "--device",
            "cpu",
        ])
        .output()
        .unwrap());
    let preds: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(preds.len(), 45);
    let nbest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("nbest_predictions.json")).unwrap())
            .unwrap();
    let first = &nbest["v0-1"][0];
    assert!(
        first["probability"].as_f64().unwrap() > 0.0 && first["offsets"].is_array(),
        "{first}"
    );
    assert!(
        !out.join("null_odds.json").exists(),
        "no null odds for SQuAD v1"
    );
    // Training left run_qa.py's eval_predictions.json beside eval_results.json: the final model's
    // answers to the same file, which predict gives again.
    let eval_preds: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/eval_predictions.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(eval_preds, preds);
    assert!(tmp.path().join("run/eval_nbest_predictions.json").is_file());
    assert!(!tmp.path().join("run/eval_null_odds.json").exists());
    // predict_results.json: EM/F1 against dev.json's answers, as training's last evaluation of the same
    // model on the same file gave them, and as a SQuAD v1.1 scorer in Python gives them for
    // predictions.json.
    let results = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("predict_results.json")).unwrap())
            .unwrap()
    };
    let scored = results(&out);
    assert_eq!(scored["predict_samples"].as_f64(), Some(45.0), "{scored}");
    assert_eq!(scored["predict/f1"].as_f64(), Some(after), "{scored}");
    let reference = python_squad_v1(&tmp.path().join("dev.json"), &out.join("predictions.json"));
    for (ours, theirs) in [("predict/exact", "exact_match"), ("predict/f1", "f1")] {
        let (a, b) = (
            scored[ours].as_f64().unwrap(),
            reference[theirs].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() < 1e-9,
            "{ours} {a} vs the reference's {theirs} {b}"
        );
    }
    // predict_settings.json's provenance: the data's and the model's hashes (checked with Python's
    // hashlib), the tool, and no seed or configuration, which prediction does not have.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("predict_settings.json")).unwrap())
            .unwrap();
    let provenance = &record["provenance"];
    assert_eq!(provenance["tool"], "qa-finetune predict", "{provenance}");
    assert!(provenance.get("seed").is_none() && provenance.get("config").is_none());
    let hashed = test_support::recorded_hashes(&provenance["inputs"]);
    let files: Vec<PathBuf> = [
        tmp.path().join("dev.json"),
        model.join("config.json"),
        model.join("model.safetensors"),
        model.join("tokenizer.json"),
        model.join("tokenizer_config.json"),
        model.join("medqa.json"),
    ]
    .into();
    let expected: Vec<(String, String)> = files
        .iter()
        .map(|f| f.display().to_string())
        .zip(test_support::python_sha256(&files))
        .collect();
    assert_eq!(hashed, expected);
    // A file of new questions, without gold answers (here a v1.1 file whose questions have no
    // `answers` at all, as a test set comes), is answered and not scored, and the earlier file's
    // score does not stay.
    let mut unlabelled = squad(15, "v", 2, false);
    assert_eq!(unlabelled["version"], "1.1");
    for article in unlabelled["data"].as_array_mut().unwrap() {
        for qa in article["paragraphs"][0]["qas"].as_array_mut().unwrap() {
            qa.as_object_mut().unwrap().remove("answers");
        }
    }
    let unlabelled_file = tmp.path().join("unlabelled.json");
    std::fs::write(&unlabelled_file, unlabelled.to_string()).unwrap();
    let said = run_ok(Command::new(BIN).args([
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        unlabelled_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]));
    assert!(said.contains("not scored"), "{said}");
    assert!(
        !out.join("predict_results.json").exists(),
        "dev.json's score stayed beside the unlabelled file's predictions"
    );
    let rows = std::fs::read_to_string(&dump).unwrap();
    let row: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["input_ids"].as_array().unwrap().len(),
        row["start_logits"].as_array().unwrap().len()
    );

    // transformers loads the model and gives the same logits.
    let script = r#"
import json, sys, torch
from transformers import XLMRobertaForQuestionAnswering
m = XLMRobertaForQuestionAnswering.from_pretrained(sys.argv[1]).eval()
row = json.loads(sys.argv[2])
with torch.no_grad():
    o = m(input_ids=torch.tensor([row["input_ids"]]))
d = max((o.start_logits[0] - torch.tensor(row["start_logits"])).abs().max().item(),
        (o.end_logits[0] - torch.tensor(row["end_logits"])).abs().max().item())
print(d)
sys.exit(0 if d < 1e-4 else 1)
"#;
    let python = std::env::var("MEDQA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"));
    let py = Command::new(python)
        .args([
            "-c",
            script,
            model.to_str().unwrap(),
            rows.lines().next().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
}

#[test]
fn squad_v2_tunes_and_stores_the_no_answer_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), true, 4);
    ok(Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "--device", "cpu"])
        .output()
        .unwrap());
    let r = eval_results(tmp.path());
    assert!(r.get("eval/best_f1_thresh").is_some(), "{r}");
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/final/medqa.json")).unwrap(),
    )
    .unwrap();
    let pp = &settings["postprocess"];
    assert_eq!(pp["version_2_with_negative"], true);
    assert_eq!(
        pp["null_score_diff_threshold"].as_f64(),
        r["eval/best_f1_thresh"].as_f64()
    );
    let out = tmp.path().join("pred");
    let predict = |extra: &[&str]| {
        ok(Command::new(BIN)
            .arg("predict")
            .args(["--model", tmp.path().join("run/final").to_str().unwrap()])
            .args(["--data", tmp.path().join("dev.json").to_str().unwrap()])
            .args(["--out", out.to_str().unwrap(), "--device", "cpu"])
            .args(extra)
            .output()
            .unwrap())
    };
    predict(&[]);
    let odds: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("null_odds.json")).unwrap())
            .unwrap();
    assert_eq!(odds.len(), 60);
    // The same directory answered again as SQuAD v1: the earlier odds do not stay beside the answers.
    predict(&["--version-2-with-negative=false"]);
    assert!(
        !out.join("null_odds.json").exists(),
        "a v1 prediction left the earlier v2 null_odds.json in place"
    );
}

/// Steps of one epoch over train.json (weight `w`) and dev.json (weight 0), grouped by length.
fn steps_of_one_epoch(dir: &Path, cfg: &Path, w: f64) -> u64 {
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        r#"train = [{ path = ""#,
        &format!(
            r#"train = [{{ path = "{}/dev.json", weight = 0 }}, {{ weight = {w}, path = ""#,
            dir.display()
        ),
    );
    let weighted = dir.join(format!("weighted-{w}.toml"));
    std::fs::write(&weighted, text).unwrap();
    let out = ok(Command::new(BIN)
        .args([
            "--config",
            weighted.to_str().unwrap(),
            "--device",
            "cpu",
            "--overwrite",
        ])
        .args([
            "--set",
            "train.num_train_epochs=1",
            "--set",
            "train.group_by_length=true",
        ])
        .output()
        .unwrap());
    let line = out
        .lines()
        .find(|l| l.starts_with("trained "))
        .unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn mixing_weights_scale_each_files_share_of_an_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let full = steps_of_one_epoch(tmp.path(), &cfg, 1.0);
    let half = steps_of_one_epoch(tmp.path(), &cfg, 0.5);
    let double = steps_of_one_epoch(tmp.path(), &cfg, 2.0);
    assert!(full >= 4, "{full}");
    assert!(half.abs_diff(full.div_ceil(2)) <= 1, "{full} vs {half}");
    assert!(double.abs_diff(2 * full) <= 1, "{full} vs {double}");
}

/// `max_samples` keeps a file's first N questions (run_qa.py's max_train/eval_samples), before windows
/// are made; the run says so, and the resolved config records it.
#[test]
fn max_samples_takes_each_files_first_questions() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("train.json\" }", "train.json\", max_samples = 20 }")
        .replace("dev.json\" }", "dev.json\", max_samples = 5 }");
    assert!(text.contains("max_samples = 5"), "{text}");
    let capped = tmp.path().join("capped.toml");
    std::fs::write(&capped, text).unwrap();
    let out = test_support::ok_all(
        Command::new(BIN)
            .args(["--config", capped.to_str().unwrap(), "--device", "cpu"])
            .args(["--set", "train.max_steps=1"])
            .output()
            .unwrap(),
    );
    // 20 questions, 24 windows: at 64 tokens some of the first seven contexts take two.
    assert!(
        out.contains("24 training windows, 5 validation questions"),
        "{out}"
    );
    assert!(
        out.contains("the first 20 of 180 questions (max_samples)"),
        "{out}"
    );
    assert!(
        out.contains("the first 5 of 45 questions (max_samples)"),
        "{out}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/manifest.json")).unwrap(),
    )
    .unwrap();
    let data = &manifest["config"]["data"];
    assert_eq!(data["train"][0]["max_samples"], 20, "{data}");
    assert_eq!(data["validation"][0]["max_samples"], 5, "{data}");

    // predict --max-samples: the first 7 questions of dev.json answered, and only they.
    let pred = tmp.path().join("pred");
    let out = test_support::ok(
        Command::new(BIN)
            .args([
                "predict",
                "--device",
                "cpu",
                "--max-samples",
                "7",
                "--model",
            ])
            .arg(tmp.path().join("run/final"))
            .arg("--data")
            .arg(tmp.path().join("dev.json"))
            .arg("--out")
            .arg(&pred)
            .output()
            .unwrap(),
    );
    assert!(out.starts_with("7 questions"), "{out}");
    let preds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pred.join("predictions.json")).unwrap())
            .unwrap();
    let ids: std::collections::BTreeSet<&str> = preds
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let first: std::collections::BTreeSet<&str> =
        ["v0-0", "v0-1", "v0-2", "v1-0", "v1-1", "v1-2", "v2-0"].into();
    assert_eq!(ids, first);

    let zero = tmp.path().join("zero.toml");
    let text = std::fs::read_to_string(&capped)
        .unwrap()
        .replace("max_samples = 5", "max_samples = 0");
    std::fs::write(&zero, text).unwrap();
    let out = Command::new(BIN)
        .args([
            "--config",
            zero.to_str().unwrap(),
            "--device",
            "cpu",
            "--overwrite",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dev.json: max_samples must be at least 1"),
        "{err}"
    );
}

/// Same seed, same data: the same numbers, in two processes. The checkpoint (an MLM model: the fixture
/// without its QA head) has no QA head, so the head is drawn fresh — from the seed, not from libtorch's
/// default generator, which each process seeds at random. A third run with gradient checkpointing (each
/// layer recomputed in the backward, dropout replayed) gives them too, and so does one with libtorch's
/// deterministic kernels.
#[test]
fn two_runs_with_one_seed_give_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let fixture = root().join("crates/model/tests/fixtures/models/tiny-h64-l1");
    let headless = tmp.path().join("mlm-model");
    std::fs::create_dir(&headless).unwrap();
    std::fs::copy(fixture.join("config.json"), headless.join("config.json")).unwrap();
    let weights: Vec<(String, tch::Tensor)> =
        tch::Tensor::read_safetensors(fixture.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("qa_outputs."))
            .collect();
    tch::Tensor::write_safetensors(&weights, headless.join("model.safetensors")).unwrap();
    let run = |name: &str, checkpointing: bool, precision: &str, deterministic: bool| {
        let out = tmp.path().join(name);
        let output = Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap(), "--device", "cpu"])
            .args([
                "--set",
                &format!("train.gradient_checkpointing={checkpointing}"),
                "--set",
                &format!("train.precision=\"{precision}\""),
                "--set",
                &format!("train.full_determinism={deterministic}"),
            ])
            .args(["--set", &format!("init_from={}", headless.display())])
            .args(["--set", &format!("output_dir={}", out.display())])
            .args(["--set", "train.max_steps=3", "--set", "data.validation=[]"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("qa_outputs.weight"),
            "the head should be reported as newly initialised"
        );
        ok(output);
        let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
        let weights = std::fs::read(out.join("final/model.safetensors")).unwrap();
        (log, weights)
    };
    let (log_a, weights_a) = run("a", false, "fp32", false);
    let (log_b, weights_b) = run("b", false, "fp32", false);
    assert!(log_a.contains("train/loss"), "{log_a}");
    assert_eq!(log_a, log_b);
    assert!(weights_a == weights_b, "the trained weights differ");
    let (log_c, weights_c) = run("c", true, "fp32", false);
    assert_eq!(log_a, log_c, "gradient checkpointing changed the log");
    assert!(
        weights_a == weights_c,
        "gradient checkpointing changed the weights"
    );
    // Under bf16 autocast the backward's recomputation re-enters the forward's autocast (the loop's
    // backward runs outside it): the same numbers as without checkpointing, unlike fp32's.
    let (log_d, weights_d) = run("d", false, "bf16", false);
    let (log_e, weights_e) = run("e", true, "bf16", false);
    assert_ne!(log_a, log_d, "bf16 should round differently from fp32");
    assert_eq!(log_d, log_e, "gradient checkpointing changed the bf16 log");
    assert!(
        weights_d == weights_e,
        "gradient checkpointing changed the bf16 weights"
    );
    // libtorch's deterministic kernels (train.full_determinism): every op of a QA run has one, and on
    // the CPU they compute what the default ones do.
    let (log_f, weights_f) = run("f", false, "fp32", true);
    assert_eq!(log_a, log_f, "full_determinism changed the log");
    assert!(
        weights_a == weights_f,
        "full_determinism changed the weights"
    );
}

#[test]
fn bad_questions_are_errors_or_reported_and_outputs_are_checked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let train = tmp.path().join("train.json");
    let good_train = std::fs::read_to_string(&train).unwrap();
    // A v1.1 training question without "answers" is an error naming it, before any training.
    let mut broken: serde_json::Value = serde_json::from_str(&good_train).unwrap();
    broken["data"][0]["paragraphs"][0]["qas"][1]
        .as_object_mut()
        .unwrap()
        .remove("answers");
    std::fs::write(&train, broken.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "--device", "cpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("'t0-1'") && err.contains("train.json"),
        "{err}"
    );
    assert!(!tmp.path().join("run/checkpoints").exists());

    // A model to predict with.
    std::fs::write(&train, good_train).unwrap();
    ok(Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--device",
            "cpu",
            "--overwrite",
        ])
        .args(["--set", "train.max_steps=1"])
        .output()
        .unwrap());
    let model = tmp.path().join("run/final");
    // Questions on an empty or blank context: answered as no-answer and listed.
    let data = tmp.path().join("blank.json");
    std::fs::write(
        &data,
        r#"{"version": "v2.0", "data": [{"paragraphs": [
            {"context": "", "qas": [{"id": "empty-ctx", "question": "What was the NIHSS score?"}]},
            {"context": "  \n ", "qas": [{"id": "blank-ctx", "question": "What was the glucose?"}]},
            {"context": "NIHSS score on admission was 12.", "qas": [{"id": "fine", "question": "What was the NIHSS score?",
             "answers": [{"text": "12", "answer_start": 29}]}]}]}]}"#,
    )
    .unwrap();
    let pred_dir = tmp.path().join("pred");
    let predict = |out_dir: &Path| {
        Command::new(BIN)
            .args(["predict", "--model", model.to_str().unwrap(), "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out_dir)
            .args(["--device", "cpu"])
            .output()
            .unwrap()
    };
    let out = predict(&pred_dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("2 question(s) have an empty or white-space context"),
        "{err}"
    );
    assert!(
        err.contains("empty-ctx") && err.contains("blank-ctx"),
        "{err}"
    );
    let preds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pred_dir.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(
        (preds["empty-ctx"].as_str(), preds["blank-ctx"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(
        preds.as_object().unwrap().len(),
        3,
        "every question answered: {preds}"
    );

    // The output directory is checked before the model loads.
    std::fs::write(tmp.path().join("blocker"), "a file").unwrap();
    let out = predict(&tmp.path().join("blocker/pred"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is a file"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("questions"));

    // A directory another prediction is writing (here this test process holds it) is refused before
    // the model loads, and what is there stays as it was.
    let before = std::fs::read(pred_dir.join("predictions.json")).unwrap();
    let held = fsutil::lock::lock_dir(&pred_dir, "output directory", "prediction").unwrap();
    let out = predict(&pred_dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!(
                "output directory {} is in use by another prediction (pid {})",
                pred_dir.display(),
                std::process::id()
            )),
        "{err}"
    );
    assert_eq!(
        std::fs::read(pred_dir.join("predictions.json")).unwrap(),
        before
    );
    drop(held);
    ok(predict(&pred_dir));
}

/// Data-parallel QA (issue 17): 2 ranks under torchrun (Gloo, CPU) with one micro-batch of 8 each
/// compute bitwise what one process computes with 2 micro-batches of 8 at the same thread count (one,
/// as torchrun gives each rank): the same windows in length-grouped order, the same dropout, the
/// gradients summed in the same order, the same evaluation.
#[test]
fn two_ranks_train_as_one_process_over_the_same_global_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let run = |name: &str, accum: &str| -> Vec<String> {
        [
            "--config",
            cfg.to_str().unwrap(),
            "--device",
            "cpu",
            "--set",
            &format!("output_dir={}", tmp.path().join(name).display()),
            "--set",
            "train.max_steps=6",
            "--set",
            "train.per_device_train_batch_size=8",
            "--set",
            &format!("train.gradient_accumulation_steps={accum}"),
            "--set",
            "train.group_by_length=true",
        ]
        .map(String::from)
        .to_vec()
    };
    let (_, log) = one_process_and_two_ranks(tmp.path(), run);
    assert_eq!(log.matches("train/loss").count(), 6, "{log}");
    assert!(log.contains("eval/f1"), "{log}");
}

/// Trains `run("one", "2")` as one process (one thread, as torchrun gives each rank) and
/// `run("two", "1")` as 2 ranks under torchrun (Gloo), each in `dir/<name>`; both must write bitwise the
/// same training log, final model and evaluation. Returns the one process's stdout and training log.
fn one_process_and_two_ranks(
    dir: &Path,
    run: impl Fn(&str, &str) -> Vec<String>,
) -> (String, String) {
    let one = Command::new(BIN)
        .args(run("one", "2"))
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&one.stdout).into_owned();
    ok(one);
    let two = run("two", "1");
    let two: Vec<&str> = two.iter().map(String::as_str).collect();
    ok(test_support::torchrun(2, BIN, &two).output().unwrap());
    let read = |name: &str, file: &str| std::fs::read(dir.join(name).join(file)).unwrap();
    for file in [
        "train_log.jsonl",
        "final/model.safetensors",
        "eval_results.json",
        "eval_predictions.json",
        "eval_nbest_predictions.json",
    ] {
        assert!(
            read("one", file) == read("two", file),
            "{file}: not bitwise the same"
        );
    }
    let log = String::from_utf8(read("one", "train_log.jsonl")).unwrap();
    (stdout, log)
}

/// Early stopping on 2 ranks: rank 0 evaluates and decides, and both ranks stop at the step one process
/// stops at, with the same final model (the best checkpoint) and evaluation. The configuration leaves
/// metric_for_best_model out: qa-finetune's default is eval/f1 (a QA evaluation has no loss).
#[test]
fn two_ranks_stop_early_together_at_the_step_one_process_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let run = |name: &str, accum: &str| -> Vec<String> {
        let mut args = vec![
            "--config".to_owned(),
            cfg.to_str().unwrap().to_owned(),
            "--device".to_owned(),
            "cpu".to_owned(),
            "--set".to_owned(),
            format!("output_dir={}", tmp.path().join(name).display()),
        ];
        // No later evaluation improves on the first by 1,000 points: the second one stops the run.
        for set in [
            "train.max_steps=10".to_owned(),
            "train.per_device_train_batch_size=8".to_owned(),
            format!("train.gradient_accumulation_steps={accum}"),
            "train.eval_steps=2".to_owned(),
            "train.save_steps=2".to_owned(),
            "train.load_best_model_at_end=true".to_owned(),
            "train.early_stopping_patience=1".to_owned(),
            "train.early_stopping_threshold=1000".to_owned(),
        ] {
            args.extend(["--set".to_owned(), set]);
        }
        args
    };
    let (stdout, log) = one_process_and_two_ranks(tmp.path(), run);
    assert!(stdout.contains("stopped early at step 4"), "{stdout}");
    assert_eq!(log.matches("train/loss").count(), 4, "{log}");
}

/// With `load_best_model_at_end`, the final model is a checkpoint loaded after the last evaluation:
/// `eval_predictions.json` holds that model's answers (one more pass), which score what
/// `eval_results.json` says it scored, not the last evaluated model's. The best here is the lowest F1
/// (`greater_is_better = false`), an early checkpoint, far from the trained model's.
#[test]
fn the_answers_written_are_those_of_the_best_checkpoint_when_it_is_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 12);
    let sets = [
        "train.eval_steps=4",
        "train.save_steps=4",
        "train.load_best_model_at_end=true",
        "train.greater_is_better=false",
    ];
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", cfg.to_str().unwrap(), "--device", "cpu"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    ok(cmd.output().unwrap());
    let log = std::fs::read_to_string(tmp.path().join("run/train_log.jsonl")).unwrap();
    let last_f1 = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| r["eval/f1"].as_f64())
        .next_back()
        .unwrap();
    let best_f1 = eval_results(tmp.path())["eval/f1"].as_f64().unwrap();
    assert!(best_f1 + 20.0 < last_f1, "best {best_f1}, last {last_f1}");
    let theirs = python_squad_v1(
        &tmp.path().join("dev.json"),
        &tmp.path().join("run/eval_predictions.json"),
    )["f1"]
        .as_f64()
        .unwrap();
    assert!(
        (best_f1 - theirs).abs() < 1e-9,
        "the best checkpoint's eval/f1 {best_f1} vs its answers' {theirs}"
    );
}

/// Several validation files: each one's EM/F1 beside the whole set's (which is their question-weighted
/// mean), so that `metric_for_best_model` can follow one; a name shared by two files is refused.
#[test]
fn each_validation_file_is_scored_on_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), false, 1);
    let dir = tmp.path();
    std::fs::create_dir(dir.join("other")).unwrap();
    std::fs::write(
        dir.join("other/dev.json"),
        squad(9, "w", 3, false).to_string(),
    )
    .unwrap();
    let validation = |second: &str| {
        format!(
            "data.validation=[{{path=\"{}\"}}, {}]",
            dir.join("dev.json").display(),
            second
        )
    };
    let run = |set: &str| {
        Command::new(BIN)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "--device",
                "cpu",
                "--overwrite",
            ])
            .args(["--set", "train.max_steps=60", "--set", set])
            .output()
            .unwrap()
    };
    let out = run(&validation(&format!(
        "{{path=\"{}\"}}",
        dir.join("other/dev.json").display()
    )));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("two validation files are named \"dev\""),
        "{err}"
    );

    ok(run(&validation(&format!(
        "{{path=\"{}\", name=\"other\"}}",
        dir.join("other/dev.json").display()
    ))));
    let r = eval_results(dir);
    let (f1, dev, other) = (
        r["eval/f1"].as_f64().unwrap(),
        r["eval/dev/f1"].as_f64().unwrap(),
        r["eval/other/f1"].as_f64().unwrap(),
    );
    // 15 and 9 contexts of 3 questions.
    let weighted = (45.0 * dev + 27.0 * other) / 72.0;
    assert!((f1 - weighted).abs() < 1e-9, "{f1} vs {weighted} ({r})");
    assert!(
        dev > 0.0 && other > 0.0 && dev != other,
        "too little learned to tell: {r}"
    );
    assert!(r.get("eval/other/exact").is_some(), "{r}");
}
