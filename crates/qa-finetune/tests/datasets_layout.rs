//! The QA files a `transformers` user already has: `datasets` writes a SQuAD set one record per question
//! (`Dataset.to_json`: JSON Lines) and `run_qa.py` reads `{"data": [records]}` (`load_dataset("json",
//! field="data")`). Both, written and read back by `datasets` itself, give `qa-finetune predict` the same
//! questions and so byte for byte the same answers as the nested SQuAD file they came from.

use std::path::{Path, PathBuf};
use std::process::Command;
use test_support::{ok_all as ok, root};

const BIN: &str = env!("CARGO_BIN_EXE_qa-finetune");

/// `nested` in the two flat layouts, by `datasets` (records as its `squad` loader yields them); the
/// run_qa.py file is read back with run_qa.py's call, which must see every question. Returns the JSON
/// Lines file and the run_qa.py file.
fn flat_files(nested: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (lines, run_qa) = (dir.join("records.jsonl"), dir.join("run_qa.json"));
    let script = r#"
import json, sys
from datasets import Dataset, load_dataset
nested, lines, run_qa = sys.argv[1:4]
records = [
    {"id": qa["id"], "title": article.get("title", ""), "context": p["context"], "question": qa["question"],
     "answers": {"text": [a["text"] for a in qa["answers"]],
                 "answer_start": [a["answer_start"] for a in qa["answers"]]}}
    for article in json.load(open(nested, encoding="utf-8"))["data"]
    for p in article["paragraphs"] for qa in p["qas"]
]
Dataset.from_list(records).to_json(lines, force_ascii=False)
json.dump({"version": "1.1", "data": records}, open(run_qa, "w", encoding="utf-8"), ensure_ascii=False)
read = load_dataset("json", data_files={"validation": run_qa}, field="data")["validation"]
assert read.num_rows == len(records), (read.num_rows, len(records))
print(len(records))
"#;
    let count = test_support::run_datasets_script(script, &[nested, &lines, &run_qa], dir);
    eprintln!("{}: {} records", nested.display(), count.trim());
    (lines, run_qa)
}

/// `qa-finetune predict` on `data` (the first `max` questions) with the fixture model; its answers.
fn predict(model: &Path, data: &Path, out: &Path, max: Option<usize>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("predict")
        .args(["--model", model.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--device", "cpu"]);
    if let Some(max) = max {
        cmd.args(["--max-samples", &max.to_string()]);
    }
    ok(cmd.output().unwrap());
    std::fs::read_to_string(out.join("predictions.json")).unwrap()
}

fn same_answers_from_every_layout(nested: &Path, max: Option<usize>) {
    let tmp = tempfile::tempdir().unwrap();
    let settings = serde_json::json!({"max_seq_length": 64, "doc_stride": 24, "max_query_length": 16,
        "postprocess": {"n_best_size": 10, "max_answer_length": 12, "version_2_with_negative": false,
                        "null_score_diff_threshold": 0.0}});
    let model = test_support::fixture_qa_model(tmp.path(), "tiny-h40-l3", &settings.to_string());
    let (lines, run_qa) = flat_files(nested, tmp.path());
    let want = predict(&model, nested, &tmp.path().join("nested"), max);
    let answers: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&want).unwrap();
    assert!(answers.len() >= 10, "{} answers", answers.len());
    for (name, data) in [("jsonl", &lines), ("run_qa", &run_qa)] {
        let got = predict(&model, data, &tmp.path().join(name), max);
        assert!(
            got == want,
            "{name}: other answers than from the nested file"
        );
    }
    let nulls = |d: &str| std::fs::read(tmp.path().join(d).join("null_odds.json")).ok();
    assert_eq!(nulls("jsonl"), nulls("nested"));
}

#[test]
fn datasets_json_lines_and_run_qa_files_answer_as_the_nested_file() {
    same_answers_from_every_layout(&root().join("data/sample/qa/dev.json"), None);
}

/// SQuAD 2.0 in Spanish: questions without an answer are records with empty `answers` columns.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn a_squad_v2_set_in_datasets_layout_answers_as_nested() {
    let set = root().join("../shared/data/qa/squad-es-v2.0-dev-small.es.json");
    same_answers_from_every_layout(&set, Some(400));
}
