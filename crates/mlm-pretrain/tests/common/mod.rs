//! What the mlm-pretrain tests share: a small multilingual corpus as shards, a tiny run's
//! configuration, and a run's logged losses.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use model::shards::{ShardInfo, ShardManifest, ShardWriter, FORMAT};
use model::train::log::read_history;
use model::XlmrTokenizer;
use test_support::fixtures;

const SENTENCES: &[&str] = &[
    "The patient was admitted with acute ischemic stroke and left-sided hemiparesis.",
    "NIHSS score on admission was 14; onset-to-door time 95 minutes.",
    "El paciente ingresó por un ictus isquémico agudo con hemiparesia izquierda.",
    "Pacientul a fost internat cu accident vascular cerebral ischemic acut.",
    "Pacjent został przyjęty z powodu ostrego udaru niedokrwiennego mózgu.",
    "Pacient byl přijat pro akutní ischemickou cévní mozkovou příhodu.",
    "Пациентът е приет с остър исхемичен мозъчен инсулт и лявостранна хемипареза.",
    "Ο ασθενής εισήχθη με οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο.",
];

/// The MLM task of a tiny model (hidden 64, 2 layers) on [`make_shards`]' corpus, made in `dir`,
/// with `data` merged into the config's `data` table.
pub fn task(dir: &Path, data: serde_json::Value) -> anyhow::Result<mlm_pretrain::MlmTask> {
    let shards = dir.join("corpus");
    if !shards.exists() {
        make_shards(&shards);
    }
    let mut table = serde_json::json!({ "shards": shards, "max_seq_length": 32 });
    for (k, v) in data.as_object().expect("a table") {
        table[k] = v.clone();
    }
    let cfg: mlm_pretrain::MlmConfig = serde_json::from_value(serde_json::json!({
        "output_dir": dir.join("run"),
        "data": table,
        "model": { "shape": { "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "intermediate_size": 128 } },
        "train": { "seed": 3, "per_device_train_batch_size": 8 },
    }))?;
    let inputs = cfg.open_inputs()?;
    let model = cfg.build_model(&inputs.tokenizer, tch::Device::Cpu)?;
    mlm_pretrain::MlmTask::new(&cfg, model, inputs, tch::Device::Cpu)
}

/// Shards of the sentences (many times over, shuffled in pairs) with the fixture tokenizer.
pub fn make_shards(dir: &Path) {
    write_shards(dir, &[(None, (0..SENTENCES.len()).collect())]);
}

/// As [`make_shards`], with validation shards of the given languages (`None`: none recorded), each
/// holding one document per listed sentence (the sentence twice).
pub fn write_shards(dir: &Path, validation: &[(Option<&str>, Vec<usize>)]) {
    let tok_file = fixtures().join("tokenizer/tokenizer.json");
    let tok = XlmrTokenizer::from_file(&tok_file).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(&tok_file, dir.join("tokenizer.json")).unwrap();
    let encode = |a: usize, b: usize| {
        let text = format!("{} {}", SENTENCES[a], SENTENCES[b]);
        tok.encode_plain(&text).unwrap().input_ids
    };
    let mut w = ShardWriter::create(dir, "train-00000", "train").unwrap();
    for c in 0..12 {
        for i in 0..SENTENCES.len() {
            w.push(&encode(i, (i + c) % SENTENCES.len())).unwrap();
        }
    }
    let mut shards: Vec<ShardInfo> = vec![w.finish().unwrap()];
    for (language, sentences) in validation {
        let name = match language {
            Some(l) => format!("validation-{l}-00000"),
            None => "validation-00000".to_owned(),
        };
        let mut w = ShardWriter::create_in(dir, &name, "validation", *language).unwrap();
        for &s in sentences {
            w.push(&encode(s, s)).unwrap();
        }
        shards.push(w.finish().unwrap());
    }
    let m = ShardManifest {
        format: FORMAT.into(),
        vocab_size: tok.vocab_size() as u64,
        tokenizer_sha256: model::shards::sha256_file(&dir.join("tokenizer.json")).unwrap(),
        tokenizer_build: Some("as written".into()),
        shards,
        extra: serde_json::Value::Null,
    };
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
}

pub fn write_config(dir: &Path, shards: &Path, out: &Path, steps: u64) -> PathBuf {
    let cfg = format!(
        r#"output_dir = "{out}"
[data]
shards = "{shards}"
max_seq_length = 32
[model.shape]
hidden_size = 64
num_hidden_layers = 2
num_attention_heads = 4
intermediate_size = 128
[train]
seed = 3
learning_rate = 2e-3
max_steps = {steps}
per_device_train_batch_size = 8
gradient_accumulation_steps = 2
warmup_steps = 4
weight_decay = 0.01
logging_steps = 5
eval_steps = 10
save_steps = 4
save_total_limit = 2
include_num_input_tokens_seen = "all"
"#,
        out = out.display(),
        shards = shards.display()
    );
    let file = dir.join("mlm.toml");
    std::fs::write(&file, cfg).unwrap();
    file
}

pub fn losses(run_dir: &Path) -> Vec<(u64, u64)> {
    read_history(&run_dir.join("train_log.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| r.values.get("train/loss").map(|l| (r.step, l.to_bits())))
        .collect()
}

/// `num_input_tokens_seen` of each step's record.
pub fn tokens_seen(run_dir: &Path) -> Vec<(u64, u64)> {
    read_history(&run_dir.join("train_log.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| {
            let seen = r.values.get("num_input_tokens_seen")?;
            Some((r.step, *seen as u64))
        })
        .collect()
}
