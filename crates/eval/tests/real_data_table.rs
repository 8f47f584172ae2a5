//! `scripts/tools/real_data_table.py`: the block of docs/EXPERIMENTS.md that
//! scripts/experiment-real-data.sh writes from its run directory. A synthetic run with known files: every
//! figure of the block must come from them (parameters from the safetensors header, tokens from the corpus
//! manifest, steps and scores from the runs), the block is named after device, precision and steps, and a
//! rerun replaces its block and leaves the rest of the document as it was.

use std::path::Path;
use std::process::Command;
use test_support::{python, root, run_ok, write_file as write};

/// A safetensors file of two F32 tensors, 3 × 4 and 5: 17 parameters.
fn safetensors() -> Vec<u8> {
    let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},"b":{"dtype":"F32","shape":[5],"data_offsets":[48,68]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 68));
    bytes
}

fn score(model: &str, set: &str, lang: &str, exact: f64, f1: f64, total: usize) -> String {
    serde_json::json!({"model": model, "set": set, "lang": lang, "exact": exact, "f1": f1, "total": total})
        .to_string()
}

fn run_dir(dir: &Path, mlm_steps: u64) {
    write(
        &dir.join("run.json"),
        r#"{"command": "MLM_STEPS=600 scripts/experiment-real-data.sh", "precision": "fp32",
            "machine": "2 CPU cores (test)", "commit": "abc1234", "date": "2026-12-06", "elapsed": 754, "block": ""}"#,
    );
    write(
        &dir.join("mlm/manifest.json"),
        r#"{"device": "Cpu", "config": {"train": {"per_device_train_batch_size": 64}, "data": {"max_seq_length": 256}}}"#,
    );
    write(
        &dir.join("mlm/train_results.json"),
        format!(r#"{{"global_step": {mlm_steps}, "train_runtime": 1612.4}}"#),
    );
    write(
        &dir.join("mlm/eval_results.json"),
        r#"{"eval/perplexity": 412.345, "eval/masked_tokens": 4764, "eval/ro/perplexity": 300.5,
            "eval/ro/masked_tokens": 342, "eval/es/perplexity": 250.25, "eval/es/masked_tokens": 2386}"#,
    );
    write(
        &dir.join("mlm/final/config.json"),
        r#"{"hidden_size": 256, "num_hidden_layers": 4, "vocab_size": 16000}"#,
    );
    write(&dir.join("mlm/final/model.safetensors"), safetensors());
    write(
        &dir.join("corpus/manifest.json"),
        r#"{"shards": [{"split": "train", "tokens": 1000000}, {"split": "train", "tokens": 521756},
                       {"split": "validation", "language": "ro", "tokens": 2440}]}"#,
    );
    write(
        &dir.join("qa-ro-en/train_results.json"),
        r#"{"global_step": 320}"#,
    );
    write(
        &dir.join("qa-ro/train_results.json"),
        r#"{"global_step": 108}"#,
    );
    let rows = [
        score("qa-before", "ro-dev", "ro", 0.0, 17.05, 180),
        score("qa-before", "squad-es", "es", 0.08, 6.11, 6583),
        score("qa-ro-en", "ro-dev", "ro", 37.2222, 49.95, 180),
        score("qa-ro-en", "squad-es", "es", 0.84, 5.43, 6583),
        score("qa-ro", "ro-dev", "ro", 28.33, 44.894, 180),
        score("qa-ro", "squad-es", "es", 0.88, 6.23, 6583),
    ];
    write(&dir.join("results.jsonl"), rows.join("\n") + "\n");
    write(
        &dir.join("pred/qa-before/squad-es/predict.log"),
        "warning: squad-es.json: 4080 answer(s) are marked answer_start -1 (scored, not trained on)\n\
         6583 questions, 6700 windows\n",
    );
}

fn table(dir: &Path, doc: &Path) -> String {
    run_ok(
        Command::new(python())
            .arg(root().join("scripts/tools/real_data_table.py"))
            .args(["--out", dir.to_str().unwrap()])
            .args(["--doc", doc.to_str().unwrap()]),
    );
    std::fs::read_to_string(doc).unwrap()
}

#[test]
fn every_figure_comes_from_the_run_and_a_rerun_replaces_its_block() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, doc) = (tmp.path().join("run"), tmp.path().join("EXPERIMENTS.md"));
    write(&doc, "# Experiments\n\nprose before\n");
    run_dir(&run, 600);
    let first = table(&run, &doc);
    let text = table(&run, &doc);
    assert_eq!(first, text, "a rerun on the same files changes nothing");

    let block = "<!-- experiment-real-data cpu-fp32-mlm600-qa320:begin -->";
    assert_eq!(text.matches(block).count(), 1, "{text}");
    assert!(
        text.starts_with("# Experiments\n\nprose before\n"),
        "{text}"
    );
    assert!(text.contains("### `MLM_STEPS=600 scripts/experiment-real-data.sh`"));
    assert!(
        text.contains("Run on 2026-12-06, 2 CPU cores (test), commit abc1234, 12 min 34 s"),
        "{text}"
    );
    assert!(
        text.contains("hidden 256, 4 layers, 0.00 M parameters, a 16,000-piece tokenizer"),
        "{text}"
    );
    assert!(
        text.contains(
            "600 steps of 64 × 256 tokens (fp32, cpu) on 1,521,756 training tokens, 1612 s."
        ),
        "{text}"
    );
    assert!(text.contains("320 steps on ro+en, 108 on ro only."));
    assert!(text.contains("perplexity after pre-training: 412.35 (4764 masked validation tokens)."));
    assert!(text.contains("| es | 2386 | 250.25 |") && text.contains("| ro | 342 | 300.50 |"));
    assert!(
        text.contains("| ro-dev | ro | 180 | 0.00 / 17.05 | 37.22 / 49.95 | 28.33 / 44.89 |"),
        "{text}"
    );
    assert!(text.contains("| squad-es | es | 6583 | 0.08 / 6.11 | 0.84 / 5.43 | 0.88 / 6.23 |"));
    assert!(text.contains(
        "- squad-es.json: 4080 answer(s) are marked answer_start -1 (scored, not trained on)"
    ));
    assert!(!text.contains("6700 windows"), "only warnings are notes");

    // Another step count is another block beside the first.
    let other = tmp.path().join("other");
    run_dir(&other, 6000);
    let text = table(&other, &doc);
    assert!(text.contains(block));
    assert!(text.contains("<!-- experiment-real-data cpu-fp32-mlm6000-qa320:begin -->"));
}

#[test]
fn the_parameter_count_is_the_safetensors_headers() {
    // 17 parameters would print as 0.00 M above; a model of known size checks the arithmetic.
    let tmp = tempfile::tempdir().unwrap();
    let (run, doc) = (tmp.path().join("run"), tmp.path().join("EXPERIMENTS.md"));
    run_dir(&run, 600);
    let header = r#"{"w":{"dtype":"F32","shape":[16000,256],"data_offsets":[0,16384000]},"b":{"dtype":"F32","shape":[2500,1000],"data_offsets":[16384000,26384000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    // The header is all the reader needs; the data is left out.
    write(&run.join("mlm/final/model.safetensors"), bytes);
    let text = table(&run, &doc);
    assert!(text.contains("6.60 M parameters"), "{text}");
}
