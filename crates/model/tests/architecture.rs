//! Shapes, parameter counts, initialisation, train/eval modes and config validation.

mod common;

use model::{
    Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM, XlmRobertaForQuestionAnswering,
    XlmRobertaModel,
};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

#[derive(Deserialize)]
struct Counts {
    #[serde(rename = "XLMRobertaModel")]
    base: i64,
    #[serde(rename = "XLMRobertaForMaskedLM")]
    mlm: i64,
    #[serde(rename = "XLMRobertaForQuestionAnswering")]
    qa: i64,
}

#[test]
fn parameter_counts_equal_transformers_for_base_and_large() {
    let text = std::fs::read_to_string(common::fixtures().join("param_counts.json")).unwrap();
    let counts: std::collections::HashMap<String, Counts> = serde_json::from_str(&text).unwrap();
    for (name, cfg) in [
        ("xlm-roberta-base", XlmRobertaConfig::xlm_roberta_base()),
        ("xlm-roberta-large", XlmRobertaConfig::xlm_roberta_large()),
    ] {
        let expected = &counts[name];
        let mlm = Pretrained::<XlmRobertaForMaskedLM>::init(cfg.clone(), Device::Cpu)
            .unwrap()
            .num_parameters();
        assert_eq!(mlm, expected.mlm, "{name} with MLM head");
        let qa = Pretrained::<XlmRobertaForQuestionAnswering>::init(cfg.clone(), Device::Cpu)
            .unwrap()
            .num_parameters();
        assert_eq!(qa, expected.qa, "{name} with QA head");
        let base = Pretrained::<XlmRobertaModel>::init(cfg, Device::Cpu)
            .unwrap()
            .num_parameters();
        assert_eq!(base, expected.base, "{name} bare with pooler");
        println!("{name}: MLM {mlm}, QA {qa}, base {base}");
    }
    assert_eq!(counts["xlm-roberta-base"].mlm, 278_295_186);
}

fn tiny() -> XlmRobertaConfig {
    let mut cfg = XlmRobertaConfig::new(120, 32, 2, 4, 64);
    cfg.max_position_embeddings = 40;
    cfg
}

#[test]
fn fresh_heads_are_initialised_as_transformers_does() {
    tch::manual_seed(3);
    let mut cfg = tiny();
    cfg.hidden_size = 256;
    cfg.num_attention_heads = 4;
    let qa = Pretrained::<XlmRobertaForQuestionAnswering>::init(cfg.clone(), Device::Cpu).unwrap();
    let vars = qa.vs.variables();
    let w = &vars["qa_outputs.weight"];
    let std = w.std(true).double_value(&[]);
    assert!(
        (std - cfg.initializer_range).abs() < 0.002,
        "qa_outputs.weight std {std}"
    );
    assert_eq!(
        vars["qa_outputs.bias"]
            .abs()
            .sum(Kind::Double)
            .double_value(&[]),
        0.0
    );
    let ln = &vars["roberta.embeddings.LayerNorm.weight"];
    assert_eq!(ln.eq(1.0).all().int64_value(&[]), 1);
    let pad_row = vars["roberta.embeddings.word_embeddings.weight"].get(cfg.pad_token_id);
    assert_eq!(
        pad_row.abs().sum(Kind::Double).double_value(&[]),
        0.0,
        "padding row is zero"
    );
    let mlm = Pretrained::<XlmRobertaForMaskedLM>::init(cfg, Device::Cpu).unwrap();
    assert_eq!(
        mlm.vs.variables()["lm_head.bias"]
            .abs()
            .sum(Kind::Double)
            .double_value(&[]),
        0.0
    );
    assert!(
        !mlm.vs.variables().contains_key("lm_head.decoder.weight"),
        "the decoder is the embedding"
    );
}

#[test]
fn dropout_only_in_train_mode() {
    tch::manual_seed(5);
    let qa = Pretrained::<XlmRobertaForQuestionAnswering>::init(tiny(), Device::Cpu).unwrap();
    let ids = Tensor::from_slice(&[0i64, 10, 11, 12, 2, 1, 1]).unsqueeze(0);
    let mask = ids.ne(1).to_kind(Kind::Int64);
    let run = |train| tch::no_grad(|| qa.model.forward_t(&ids, &mask, None, train).0);
    assert_eq!(common::max_abs_diff(&run(false), &run(false)), 0.0);
    assert!(common::max_abs_diff(&run(true), &run(true)) > 0.0);
}

#[test]
fn padding_does_not_change_real_tokens() {
    tch::manual_seed(7);
    let m = Pretrained::<XlmRobertaModel>::init(tiny(), Device::Cpu).unwrap();
    let short = Tensor::from_slice(&[0i64, 10, 11, 12, 2]).unsqueeze(0);
    let padded = Tensor::from_slice(&[0i64, 10, 11, 12, 2, 1, 1, 1]).unsqueeze(0);
    let h1 = tch::no_grad(|| m.model.forward_t(&short, &short.ones_like(), None, false));
    let h2 = tch::no_grad(|| m.model.forward_t(&padded, &padded.ne(1), None, false));
    let d = common::max_abs_diff(&h1, &h2.narrow(1, 0, 5));
    assert!(d < 1e-6, "padding changed hidden states by {d}");
}

#[test]
fn position_ids_follow_roberta() {
    let ids = Tensor::from_slice(&[0i64, 5, 6, 2, 1, 1]).unsqueeze(0);
    let pos = model::xlm_roberta::position_ids(&ids, 1);
    assert_eq!(
        Vec::<i64>::try_from(pos.flatten(0, -1)).unwrap(),
        vec![2, 3, 4, 5, 1, 1]
    );
}

#[test]
fn unsupported_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = serde_json::json!({
        "model_type": "xlm-roberta", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 4, "intermediate_size": 64
    });
    let cases = [
        (
            "position_embedding_type",
            serde_json::json!("relative_key"),
            "position_embedding_type",
        ),
        (
            "hidden_act",
            serde_json::json!("gelu_fast"),
            "unknown variant",
        ),
        (
            "num_attention_heads",
            serde_json::json!(5),
            "not a multiple",
        ),
        ("model_type", serde_json::json!("bert"), "model_type"),
        ("is_decoder", serde_json::json!(true), "decoder"),
        (
            "hidden_dropout_prob",
            serde_json::json!(1.5),
            "hidden_dropout_prob",
        ),
    ];
    for (key, value, needle) in cases {
        let mut cfg = base.clone();
        cfg[key] = value;
        let file = dir.path().join("config.json");
        std::fs::write(&file, cfg.to_string()).unwrap();
        let err = format!("{:#}", XlmRobertaConfig::load(&file).unwrap_err());
        assert!(
            err.contains(needle) && err.contains("config.json"),
            "{key}: {err}"
        );
    }
    let file = dir.path().join("config.json");
    std::fs::write(&file, base.to_string()).unwrap();
    let cfg = XlmRobertaConfig::load(&file).unwrap();
    assert_eq!(
        (
            cfg.max_position_embeddings,
            cfg.layer_norm_eps,
            cfg.pad_token_id
        ),
        (514, 1e-5, 1)
    );
}
