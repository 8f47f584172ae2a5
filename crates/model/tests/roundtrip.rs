//! What we save loads in Python `transformers` with no missing or unexpected keys and gives the same
//! outputs; the saved tokenizer gives the same ids there.

mod common;

use std::path::Path;
use std::process::Command;

use model::pretrained::FromConfig;
use model::weights::SaveDtype;
use model::{
    Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM, XlmRobertaForQuestionAnswering,
    XlmrTokenizer,
};
use tch::{Device, Kind, Tensor};

fn perturbed<M: FromConfig>(cfg: &XlmRobertaConfig) -> Pretrained<M> {
    let model = Pretrained::<M>::init(cfg.clone(), Device::Cpu).unwrap();
    // Fresh biases are zero and LayerNorms (1, 0): perturb all so a misplaced one cannot hide.
    tch::no_grad(|| {
        for (_, mut v) in model.vs.variables() {
            let noise = v.randn_like() * 0.05;
            let _ = v.g_add_(&noise);
        }
    });
    model
}

fn batch(tok: &XlmrTokenizer, texts: &[&str]) -> (Tensor, Tensor) {
    let encoded: Vec<Vec<i64>> = texts
        .iter()
        .map(|t| {
            tok.encode(t)
                .unwrap()
                .input_ids
                .iter()
                .map(|&i| i as i64)
                .collect()
        })
        .collect();
    let len = encoded.iter().map(Vec::len).max().unwrap();
    let ids: Vec<Tensor> = encoded
        .iter()
        .map(|e| {
            let mut row = e.clone();
            row.resize(len, tok.pad_id as i64);
            Tensor::from_slice(&row)
        })
        .collect();
    let ids = Tensor::stack(&ids, 0);
    let mask = ids.ne(tok.pad_id as i64).to_kind(Kind::Int64);
    (ids, mask)
}

fn python_check(dir: &Path, outputs: Vec<(&str, Tensor)>, texts: &serde_json::Value) {
    let out_file = dir.join("medqa_outputs.safetensors");
    Tensor::write_safetensors(&outputs, &out_file).unwrap();
    let texts_file = dir.join("texts.json");
    std::fs::write(&texts_file, texts.to_string()).unwrap();
    let result = Command::new(common::venv_python())
        .arg(common::workspace_root().join("scripts/check_roundtrip.py"))
        .arg(dir)
        .arg(&out_file)
        .arg(&texts_file)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&result.stdout);
    println!("{stdout}");
    assert!(
        result.status.success(),
        "transformers disagrees with what medqa saved:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn saved_models_load_in_transformers_with_identical_outputs() {
    let tok_file = common::fixtures().join("tokenizer/tokenizer.json");
    let tok = XlmrTokenizer::from_file(&tok_file).unwrap();
    let mut cfg = XlmRobertaConfig::new(tok.vocab_size() as i64, 48, 2, 4, 96);
    cfg.max_position_embeddings = 130;
    cfg.layer_norm_eps = 1e-6;
    let texts = [
        "Пациентът е приет с остър исхемичен мозъчен инсулт.",
        "Ο ασθενής εισήχθη με οξύ ισχαιμικό επεισόδιο.",
        "Pacientul a fost internat; tensiunea arterială 150/85 mmHg.",
    ];
    let (ids, mask) = batch(&tok, &texts);
    let text_cases = serde_json::Value::Array(
        texts
            .iter()
            .map(|t| serde_json::json!({"text": t, "input_ids": tok.encode(t).unwrap().input_ids}))
            .collect(),
    );
    tch::manual_seed(11);

    let mlm = perturbed::<XlmRobertaForMaskedLM>(&cfg);
    let dir = tempfile::tempdir().unwrap();
    mlm.save(dir.path(), SaveDtype::F32, Some(&tok_file))
        .unwrap();
    let logits = tch::no_grad(|| mlm.model.forward_t(&ids, &mask, None, false));
    python_check(
        dir.path(),
        vec![
            ("input_ids", ids.shallow_clone()),
            ("attention_mask", mask.shallow_clone()),
            ("mlm_logits", logits),
        ],
        &text_cases,
    );
    // And it loads back here unchanged.
    let again = Pretrained::<XlmRobertaForMaskedLM>::load(dir.path(), Device::Cpu).unwrap();
    assert!(again.report.as_ref().unwrap().is_exact());
    assert_eq!(again.config.vocab_size, cfg.vocab_size);

    let qa = perturbed::<XlmRobertaForQuestionAnswering>(&cfg);
    let dir = tempfile::tempdir().unwrap();
    qa.save(dir.path(), SaveDtype::F32, Some(&tok_file))
        .unwrap();
    let (start, end) = tch::no_grad(|| qa.model.forward_t(&ids, &mask, None, false));
    python_check(
        dir.path(),
        vec![
            ("input_ids", ids),
            ("attention_mask", mask),
            ("start_logits", start),
            ("end_logits", end),
        ],
        &text_cases,
    );
}

#[test]
fn half_precision_save_round_trips() {
    let dir = &common::model_dirs()[0];
    let mlm = Pretrained::<XlmRobertaForMaskedLM>::load(dir, Device::Cpu).unwrap();
    for dtype in [SaveDtype::F16, SaveDtype::BF16] {
        let out = tempfile::tempdir().unwrap();
        mlm.save(out.path(), dtype, None).unwrap();
        let back = Pretrained::<XlmRobertaForMaskedLM>::load(out.path(), Device::Cpu).unwrap();
        let a = &mlm.vs.variables()["roberta.encoder.layer.0.attention.self.query.weight"];
        let b = &back.vs.variables()["roberta.encoder.layer.0.attention.self.query.weight"];
        let d = common::max_abs_diff(a, b);
        assert!(d > 0.0 && d < 1e-2, "{dtype:?}: rounding error {d}");
    }
}
