//! `qa-finetune predict` on a QA model transformers wrote (run_qa.py's output, a hub checkpoint): no
//! `medqa.json` beside it, so prediction takes run_qa.py's settings, says so, lets the command line set
//! what training used, and answers as transformers does with those settings.

use std::path::Path;
use std::process::Command;
use test_support::{fixtures, python, root, run_ok};

const BIN: &str = env!("CARGO_BIN_EXE_qa-finetune");

/// The tiny fixture encoder with a QA head drawn by torch, saved by transformers with the tokenizer.
const SAVE: &str = r#"
import os, shutil, sys, torch
from transformers import XLMRobertaForQuestionAnswering
src, dst, tok = sys.argv[1:4]
torch.manual_seed(0)
XLMRobertaForQuestionAnswering.from_pretrained(src).save_pretrained(dst)
shutil.copy(tok, os.path.join(dst, "tokenizer.json"))
"#;

/// Two notes in two languages, one longer than a 64-token window.
fn questions(path: &Path) {
    // 29 tokens of the fixture's tokenizer: not cut, as run_qa.py cuts none.
    let long_question = "Which drug was started when the pressure fell?";
    let notes = [
        ("Patient admitted with chest pain. Troponin was 0.8 ng/mL and the ECG showed ST elevation. \
          Aspirin 300 mg was given. Later that evening the blood pressure fell to 90/60 mmHg and \
          noradrenaline was started at a low dose, then stopped the next morning.",
         vec!["What was the troponin?", "What did the ECG show?", long_question]),
        ("Paciente con fiebre de 39 grados y tos. La radiografía mostró una neumonía basal derecha.",
         vec!["¿Qué temperatura tenía?", "¿Qué mostró la radiografía?"]),
    ];
    let data: Vec<_> = notes
        .iter()
        .enumerate()
        .map(|(i, (context, qs))| {
            let qas: Vec<_> = qs
                .iter()
                .enumerate()
                .map(|(j, q)| serde_json::json!({"id": format!("q{i}-{j}"), "question": q,
                    "answers": [{"text": context[..5].to_string(), "answer_start": 0}]}))
                .collect();
            serde_json::json!({"title": i.to_string(), "paragraphs": [{"context": context, "qas": qas}]})
        })
        .collect();
    std::fs::write(
        path,
        serde_json::json!({"version": "1.1", "data": data}).to_string(),
    )
    .unwrap();
}

#[test]
fn a_model_transformers_wrote_is_predicted_with_run_qa_settings_as_transformers_predicts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    run_ok(Command::new(python()).args(["-c", SAVE]).args([
        fixtures().join("models/tiny-h32-l2"),
        model.clone(),
        fixtures().join("tokenizer/tokenizer.json"),
    ]));
    assert!(!model.join("medqa.json").exists());
    let data = tmp.path().join("questions.json");
    questions(&data);
    let predict = |out: &str, flags: &[&str]| {
        Command::new(BIN)
            .args(["predict", "--device", "cpu", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join(out))
            .args(flags)
            .output()
            .unwrap()
    };

    // run_qa.py's 384-token windows do not fit the fixture's 64 positions: an error that says so.
    let out = predict("default", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_seq_length 384 exceeds the 64 positions of the model"),
        "{err}"
    );

    // With the windows its training used, as one passes them to run_qa.py.
    let out = predict("pred", &["--max-seq-length", "64", "--doc-stride", "16"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "has no medqa.json (a model fine-tuned outside medqa): predicting with \
             run_qa.py's settings and the command line's max_seq_length, doc_stride: windows of \
             64 tokens with stride 16, questions not cut, 20 candidates, answers of at most 30 \
             tokens, SQuAD v1"
        ),
        "{err}"
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("pred/predict_settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["settings_from"], "run_qa_defaults");
    assert_eq!(
        record["set_on_the_command_line"],
        serde_json::json!(["max_seq_length", "doc_stride"])
    );
    assert_eq!(record["settings"]["max_query_length"], 64);
    assert_eq!(record["questions"], 5);

    // transformers on the same directory, run_qa.py's windows and post-processing.
    run_ok(
        Command::new(python())
            .arg(root().join("scripts/tools/qa_trainer_reference.py"))
            .args(["predict", "--model"])
            .arg(&model)
            .args([
                "--max-seq-length",
                "64",
                "--doc-stride",
                "16",
                "--threads",
                "2",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("reference")),
    );
    let read = |dir: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(dir).join("predictions.json")).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(read("pred"), read("reference"));

    // The same model saved in shards (model.safetensors.index.json and its files, as transformers
    // writes a checkpoint above max_shard_size): the same answers, and the record hashes every shard.
    let sharded = tmp.path().join("sharded");
    let shards = test_support::sharded_copy(&model, &sharded, "20KB");
    run_ok(
        Command::new(BIN)
            .args(["predict", "--device", "cpu", "--model"])
            .arg(&sharded)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("pred-sharded"))
            .args(["--max-seq-length", "64", "--doc-stride", "16"]),
    );
    assert_eq!(read("pred-sharded"), read("pred"));
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("pred-sharded/predict_settings.json")).unwrap(),
    )
    .unwrap();
    let hashed: std::collections::BTreeMap<String, String> =
        test_support::recorded_hashes(&record["provenance"]["inputs"])
            .into_iter()
            .collect();
    let index = sharded.join("model.safetensors.index.json");
    let expected = shards.iter().chain(std::iter::once(&index));
    let sums = test_support::python_sha256(&expected.clone().cloned().collect::<Vec<_>>());
    for (file, sum) in expected.zip(sums) {
        assert_eq!(
            hashed.get(&file.display().to_string()),
            Some(&sum),
            "{file:?} in {hashed:?}"
        );
    }
}
