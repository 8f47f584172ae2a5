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

/// The fixture tokenizer with its JSON changed by `edit`, in a directory of its own, with `config` as its
/// tokenizer_config.json if given.
fn edited_tokenizer(
    root: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
    config: Option<serde_json::Value>,
) -> std::path::PathBuf {
    let src = common::fixtures().join("tokenizer/tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    edit(&mut json);
    std::fs::create_dir_all(root).unwrap();
    let file = root.join("tokenizer.json");
    std::fs::write(&file, json.to_string()).unwrap();
    if let Some(c) = config {
        std::fs::write(root.join(text::tokenizer_config::FILE), c.to_string()).unwrap();
    }
    file
}

/// transformers 5 rebuilds an XLM-R tokenizer in code unless the directory's tokenizer_config.json says
/// otherwise: what medqa saves must make transformers build the tokenizer medqa used — a tokenizer read as
/// written keeps its NFKC normalizer, and one named XLMRobertaTokenizer (as real checkpoints name it) is
/// rebuilt alike on both sides (no trailing `▁` for a text ending in white space, offsets without the space
/// before a word).
#[test]
fn saved_tokenizers_are_built_in_transformers_as_medqa_built_them() {
    use text::tokenizer_config::{self, Build};
    let tmp = tempfile::tempdir().unwrap();
    let texts = [
        "\u{fb01}brila\u{21b}ie atrial\u{103}, TA \u{ff11}\u{ff15}\u{ff10}/85 mmHg\n",
        "Pacientul a fost internat cu accident vascular cerebral.  ",
        "  Пациентът е приет с инсулт.\n",
    ];
    let nfkc = edited_tokenizer(
        &tmp.path().join("nfkc"),
        |j| j["normalizer"] = serde_json::json!({"type": "NFKC"}),
        None,
    );
    let bare_metaspace = |j: &mut serde_json::Value| {
        j["pre_tokenizer"] = serde_json::json!({"type": "Metaspace", "replacement": "\u{2581}",
            "prepend_scheme": "always", "split": true});
    };
    let as_written = edited_tokenizer(&tmp.path().join("metaspace"), bare_metaspace, None);
    let xlmr = edited_tokenizer(
        &tmp.path().join("xlmr"),
        bare_metaspace,
        Some(tokenizer_config::xlm_roberta(128)),
    );

    // The rebuild is what changes the ids: XLM-R's bare Metaspace gives a trailing `▁` token and offsets
    // that start at the space before a word; the rebuilt pipeline does not.
    let (plain, rebuilt) = (
        XlmrTokenizer::from_file(&as_written).unwrap(),
        XlmrTokenizer::from_file(&xlmr).unwrap(),
    );
    assert_eq!(plain.build(), Build::AsWritten);
    assert_eq!(
        rebuilt.build(),
        Build::XlmRoberta {
            add_prefix_space: true
        }
    );
    let chars: Vec<char> = texts[1].chars().collect();
    let on_space = |w: &text::tokenizer::Window| {
        w.offsets
            .iter()
            .filter(|(s, e)| s < e && chars[*s].is_whitespace())
            .count()
    };
    let (a, b) = (
        plain.encode(texts[1]).unwrap(),
        rebuilt.encode(texts[1]).unwrap(),
    );
    // The text ends in two spaces: a `▁` token for each, as written.
    assert_eq!(a.len(), b.len() + 2, "{a:?}\n{b:?}");
    assert!(on_space(&a) >= 6, "{a:?}");
    assert_eq!(on_space(&b), 0, "{b:?}");

    for (name, tok_file) in [("nfkc", &nfkc), ("xlmr", &xlmr)] {
        let tok = XlmrTokenizer::from_file(tok_file).unwrap();
        let mut cfg = XlmRobertaConfig::new(tok.vocab_size() as i64, 32, 2, 2, 64);
        cfg.max_position_embeddings = 130;
        let (ids, mask) = batch(&tok, &texts);
        let cases = serde_json::Value::Array(
            texts
                .iter()
                .map(|t| {
                    let w = tok.encode(t).unwrap();
                    serde_json::json!({"text": t, "input_ids": w.input_ids, "offsets": w.offsets})
                })
                .collect(),
        );
        tch::manual_seed(12);
        let mlm = perturbed::<XlmRobertaForMaskedLM>(&cfg);
        let dir = tmp.path().join(format!("saved-{name}"));
        mlm.save(&dir, SaveDtype::F32, Some(tok_file)).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(tokenizer_config::FILE)).unwrap())
                .unwrap();
        let class = if name == "nfkc" {
            "PreTrainedTokenizerFast"
        } else {
            "XLMRobertaTokenizer"
        };
        assert_eq!(written["tokenizer_class"], class);
        assert_eq!(written["model_max_length"], 128);
        let logits = tch::no_grad(|| mlm.model.forward_t(&ids, &mask, None, false));
        python_check(
            &dir,
            vec![
                ("input_ids", ids),
                ("attention_mask", mask),
                ("mlm_logits", logits),
            ],
            &cases,
        );
    }
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

/// A checkpoint that transformers saves in shards (`model.safetensors.index.json` and its files, as
/// `save_pretrained` writes a model above `max_shard_size`) loads as the same model from one file; an
/// index naming a missing shard, or the wrong one, is an error naming it.
#[test]
fn a_sharded_checkpoint_from_transformers_loads_as_its_single_file() {
    let tok_file = common::fixtures().join("tokenizer/tokenizer.json");
    let tok = XlmrTokenizer::from_file(&tok_file).unwrap();
    let mut cfg = XlmRobertaConfig::new(tok.vocab_size() as i64, 48, 2, 4, 96);
    cfg.max_position_embeddings = 130;
    tch::manual_seed(12);
    let qa = perturbed::<XlmRobertaForQuestionAnswering>(&cfg);
    let tmp = tempfile::tempdir().unwrap();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    qa.save(&single, SaveDtype::F32, Some(&tok_file)).unwrap();
    let written: Vec<String> = common::python_json(
        "import json, os, sys\n\
         from transformers import AutoModelForQuestionAnswering as M\n\
         d = json.load(sys.stdin)\n\
         M.from_pretrained(d['single']).save_pretrained(d['sharded'], max_shard_size='50KB')\n\
         print(json.dumps(sorted(os.listdir(d['sharded']))))",
        &serde_json::json!({"single": single, "sharded": sharded}),
    );
    assert!(
        written.contains(&"model.safetensors.index.json".to_owned()),
        "{written:?}"
    );
    assert!(!sharded.join("model.safetensors").exists());
    let weights = model::weights::WeightFiles::of_dir(&sharded).unwrap();
    assert!(weights.files.len() > 2, "{weights:?}");

    let texts = ["Pacientul a fost internat; tensiunea arterială 150/85 mmHg."];
    let (ids, mask) = batch(&tok, &texts);
    let outputs = |dir: &Path| {
        let m = Pretrained::<XlmRobertaForQuestionAnswering>::load(dir, Device::Cpu).unwrap();
        assert!(m.report.as_ref().unwrap().is_exact(), "{:?}", m.report);
        tch::no_grad(|| m.model.forward_t(&ids, &mask, None, false))
    };
    let (a, b) = (outputs(&single), outputs(&sharded));
    assert!(a.0.equal(&b.0) && a.1.equal(&b.1));
    // What a prediction's record hashes: the index and every shard.
    let files = model::qa::inference::QaModel::files(&sharded);
    for f in weights.hashed() {
        assert!(files.contains(&f), "{f:?} not in {files:?}");
    }

    // The index names a tensor's shard wrongly.
    let index = sharded.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let map = json["weight_map"].as_object_mut().unwrap();
    let (key, first) = map
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .next()
        .unwrap();
    let other = map
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .find(|v| *v != first)
        .unwrap();
    map[&key] = other.clone().into();
    std::fs::write(&index, json.to_string()).unwrap();
    let err = Pretrained::<XlmRobertaForQuestionAnswering>::load(&sharded, Device::Cpu)
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains(&format!("'{key}' should be in {other}, but it is in")),
        "{err:#}"
    );
    // A shard is missing.
    std::fs::write(&index, &text).unwrap();
    std::fs::remove_file(sharded.join(&first)).unwrap();
    let err = Pretrained::<XlmRobertaForQuestionAnswering>::load(&sharded, Device::Cpu)
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains(&format!("names shard {first}, which is not in")),
        "{err:#}"
    );
}
