//! Outputs of our XLM-R against `transformers` on the fixtures of scripts/make_fixtures.py.

mod common;

use common::{fixtures, max_abs_diff, model_dirs, read_tensors};
use model::weights::LoadReport;
use model::{Pretrained, XlmRobertaForMaskedLM, XlmRobertaForQuestionAnswering, XlmRobertaModel};
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-5;

fn check(name: &str, what: &str, ours: &Tensor, theirs: &Tensor) -> f64 {
    let d = max_abs_diff(ours, theirs);
    println!("{name:>22} {what:<18} max |diff| = {d:.3e}");
    assert!(
        d <= TOL,
        "{name}: {what} differs from transformers by {d:e} (> {TOL:e})"
    );
    d
}

fn inputs(exp: &std::collections::HashMap<String, Tensor>) -> (Tensor, Tensor, Tensor) {
    (
        exp["input_ids"].shallow_clone(),
        exp["attention_mask"].shallow_clone(),
        exp["token_type_ids"].shallow_clone(),
    )
}

fn names(keys: &[String], prefix: &str) -> bool {
    !keys.is_empty() && keys.iter().all(|k| k.starts_with(prefix))
}

fn check_dir(dir: &std::path::Path) -> f64 {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let diffs = model::parity::compare_reference_dir(dir, Device::Cpu).unwrap();
    assert!(!diffs.is_empty(), "{name}: no outputs compared");
    let mut worst: f64 = 0.0;
    for d in diffs {
        println!(
            "{name:>22} {:<18} max |diff| = {:.3e}",
            d.output, d.max_abs_diff
        );
        assert!(
            d.max_abs_diff <= TOL,
            "{name}: {} differs by {:e} (> {TOL:e})",
            d.output,
            d.max_abs_diff
        );
        worst = worst.max(d.max_abs_diff);
    }
    worst
}

#[test]
fn mlm_and_qa_outputs_match_transformers() {
    let worst = model_dirs()
        .iter()
        .map(|d| check_dir(d))
        .fold(0.0, f64::max);
    println!("worst max |diff| over all fixture models and outputs: {worst:.3e}");
}

#[test]
fn load_reports_name_the_other_head_as_unexpected() {
    for dir in model_dirs() {
        let mlm = Pretrained::<XlmRobertaForMaskedLM>::load(&dir, Device::Cpu).unwrap();
        let report = mlm.report.unwrap();
        assert!(
            report.missing.is_empty() && names(&report.unexpected, "qa_outputs."),
            "{report}"
        );
        let qa = Pretrained::<XlmRobertaForQuestionAnswering>::load(&dir, Device::Cpu).unwrap();
        let report = qa.report.unwrap();
        assert!(
            report.missing.is_empty() && names(&report.unexpected, "lm_head."),
            "{report}"
        );
    }
}

#[test]
fn mlm_head_on_selected_positions_equals_full_head() {
    let dir = &model_dirs()[1];
    let exp = read_tensors(&dir.join("expected.safetensors"));
    let (ids, mask, tt) = inputs(&exp);
    let mlm = Pretrained::<XlmRobertaForMaskedLM>::load(dir, Device::Cpu).unwrap();
    let vocab = mlm.config.vocab_size;
    let positions = Tensor::from_slice(&[0i64, 3, 7, 12, 14, 20, 30]);
    let at = tch::no_grad(|| {
        mlm.model
            .forward_at(&ids, &mask, Some(&tt), &positions, false)
    });
    let full = exp["mlm_logits"]
        .reshape([-1, vocab])
        .index_select(0, &positions);
    assert_eq!(at.size(), vec![7, vocab]);
    check("selected positions", "mlm_logits", &at, &full);
}

#[test]
fn bare_encoder_with_pooler_matches_transformers() {
    let dir = fixtures().join("variants/base-with-pooler");
    check_dir(&dir);
    let exp = read_tensors(&dir.join("expected.safetensors"));
    let (ids, mask, tt) = inputs(&exp);
    let base = Pretrained::<XlmRobertaModel>::load(&dir, Device::Cpu).unwrap();
    assert_eq!(
        base.report.as_ref().unwrap(),
        &LoadReport::default(),
        "keys without roberta. prefix"
    );

    // A bare encoder checkpoint into a QA model: the encoder loads through the prefix, the head is new
    // and the pooler is not used — transformers' own report for the same load.
    let qa = Pretrained::<XlmRobertaForQuestionAnswering>::load(&dir, Device::Cpu).unwrap();
    let report = qa.report.unwrap();
    assert_eq!(report.missing, vec!["qa_outputs.bias", "qa_outputs.weight"]);
    assert_eq!(
        report.unexpected,
        vec!["pooler.dense.bias", "pooler.dense.weight"]
    );
    let hidden_qa = tch::no_grad(|| qa.model.roberta.forward_t(&ids, &mask, Some(&tt), false));
    check(
        "base into QA",
        "last_hidden_state",
        &hidden_qa,
        &exp["last_hidden_state"],
    );
}

#[test]
fn head_checkpoint_loads_into_bare_encoder() {
    let dir = &model_dirs()[0];
    let exp = read_tensors(&dir.join("expected.safetensors"));
    let (ids, mask, tt) = inputs(&exp);
    let base = Pretrained::<XlmRobertaModel>::load(dir, Device::Cpu).unwrap();
    let report = base.report.unwrap();
    assert_eq!(
        report.missing,
        vec!["pooler.dense.bias", "pooler.dense.weight"]
    );
    assert!(report
        .unexpected
        .iter()
        .all(|k| k.starts_with("lm_head.") || k.starts_with("qa_outputs.")));
    let hidden = tch::no_grad(|| base.model.forward_t(&ids, &mask, Some(&tt), false));
    check(
        "MLM ckpt into base",
        "last_hidden_state",
        &hidden,
        &exp["last_hidden_state"],
    );
}

#[test]
fn half_precision_checkpoints_match_transformers() {
    for variant in ["fp16", "bf16"] {
        let dir = fixtures().join("variants").join(variant);
        check_dir(&dir);
        let mlm = Pretrained::<XlmRobertaForMaskedLM>::load(&dir, Device::Cpu).unwrap();
        assert_eq!(mlm.vs.kind(), Kind::Float, "weights are computed in fp32");
    }
}

#[test]
fn legacy_tied_decoder_keys_are_accepted() {
    // Older checkpoints (e.g. the original xlm-roberta-base) carry lm_head.decoder.weight and
    // lm_head.decoder.bias beside lm_head.bias; some carry only the decoder's bias.
    let dir = &model_dirs()[0];
    let exp = read_tensors(&dir.join("expected.safetensors"));
    let (ids, mask, tt) = inputs(&exp);
    let mut tensors = read_tensors(&dir.join("model.safetensors"));
    let bias = tensors.remove("lm_head.bias").unwrap();
    let emb = tensors["roberta.embeddings.word_embeddings.weight"].shallow_clone();
    tensors.insert("lm_head.decoder.weight".into(), emb);
    tensors.insert("lm_head.decoder.bias".into(), bias);
    tensors.insert(
        "roberta.embeddings.position_ids".into(),
        Tensor::arange(10, (Kind::Int64, Device::Cpu)),
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let list: Vec<(String, Tensor)> = tensors.into_iter().collect();
    Tensor::write_safetensors(&list, tmp.path().join("model.safetensors")).unwrap();

    let mlm = Pretrained::<XlmRobertaForMaskedLM>::load(tmp.path(), Device::Cpu).unwrap();
    let report = mlm.report.as_ref().unwrap();
    assert!(report.missing.is_empty(), "{report}");
    assert!(names(&report.unexpected, "qa_outputs."), "{report}");
    let logits = tch::no_grad(|| mlm.model.forward_t(&ids, &mask, Some(&tt), false));
    check(
        "legacy decoder keys",
        "mlm_logits",
        &logits,
        &exp["mlm_logits"],
    );
}

#[test]
fn wrong_shapes_and_missing_files_are_clear_errors() {
    let dir = &model_dirs()[0];
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["hidden_size"] = serde_json::json!(64);
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let err = Pretrained::<XlmRobertaForMaskedLM>::load(tmp.path(), Device::Cpu)
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("has no model.safetensors"),
        "{err:#}"
    );
    std::fs::copy(
        dir.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let err = Pretrained::<XlmRobertaForMaskedLM>::load(tmp.path(), Device::Cpu)
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("has shape") && msg.contains("model.safetensors"),
        "{msg}"
    );
}
