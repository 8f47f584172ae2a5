//! What an `mlm-pretrain` run is given: the shards and tokenizer, the model to start from or the
//! shape of a new one, masking and the loop's settings; and the inputs and model they open.

use std::path::PathBuf;

use anyhow::{bail, Result};
use model::mlm::{MaskingConfig, Sequences};
use model::shards::{Corpus, ShardManifest};
use model::train::TrainConfig;
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM, XlmrTokenizer};
use serde::{Deserialize, Serialize};
use tch::Device;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlmConfig {
    pub output_dir: PathBuf,
    pub data: DataConfig,
    #[serde(default)]
    pub masking: MaskingConfig,
    pub model: ModelSource,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A data-prep corpus directory (token shards + manifest.json).
    pub shards: PathBuf,
    /// The tokenizer the shards were made with; default `<shards>/tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    #[serde(default = "default_seq")]
    pub max_seq_length: usize,
    #[serde(default)]
    pub line_by_line: bool,
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Cap on validation sequences scored at each evaluation; with validation shards per language, it
    /// is shared out evenly among the languages (one with fewer sequences leaves its rest to others).
    #[serde(default)]
    pub max_eval_sequences: Option<usize>,
    /// Train on the first N training sequences only, for quick runs and debugging (run_mlm.py's
    /// `max_train_samples`: counted after grouping into sequences, as there).
    #[serde(default)]
    pub max_train_sequences: Option<usize>,
}

fn default_seq() -> usize {
    128
}
fn default_eval_batch() -> usize {
    16
}

/// Start from a Hugging Face checkpoint directory, or from a shape for a randomly initialised model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    #[serde(default)]
    pub shape: Option<ModelShape>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    /// Default: `max_seq_length + 2`, as XLM-R's 514 for 512.
    #[serde(default)]
    pub max_position_embeddings: Option<i64>,
    #[serde(default)]
    pub hidden_dropout_prob: Option<f64>,
    #[serde(default)]
    pub attention_probs_dropout_prob: Option<f64>,
}

/// The validated inputs of a run, everything read and checked before any compute.
pub struct Inputs {
    pub tokenizer: XlmrTokenizer,
    pub tokenizer_path: PathBuf,
    pub train: Sequences,
    /// The validation split, one set per language where its shards record languages; empty when the
    /// split has no tokens.
    pub eval: Vec<EvalSet>,
}

/// The validation sequences of one language (`None`: shards that record no language).
pub struct EvalSet {
    pub language: Option<String>,
    pub sequences: Sequences,
}

impl MlmConfig {
    pub fn tokenizer_path(&self) -> PathBuf {
        self.data
            .tokenizer
            .clone()
            .unwrap_or_else(|| self.data.shards.join("tokenizer.json"))
    }

    pub fn open_inputs(&self) -> Result<Inputs> {
        self.train.validate()?;
        let tokenizer_path = self.tokenizer_path();
        let tokenizer = XlmrTokenizer::from_file(&tokenizer_path)?;
        let manifest = ShardManifest::load(&self.data.shards)?;
        if manifest.vocab_size != tokenizer.vocab_size() as u64 {
            bail!(
                "the shards in {} were made with a {}-token vocabulary, but {} has {}",
                self.data.shards.display(),
                manifest.vocab_size,
                tokenizer_path.display(),
                tokenizer.vocab_size()
            );
        }
        let sha = model::shards::sha256_file(&tokenizer_path)?;
        if sha != manifest.tokenizer_sha256 {
            bail!(
                "{} is not the tokenizer the shards in {} were made with (SHA-256 differs)",
                tokenizer_path.display(),
                self.data.shards.display()
            );
        }
        if let Some(built) = &manifest.tokenizer_build {
            if *built != tokenizer.build().to_string() {
                bail!(
                    "the shards in {} were tokenized with {} built {built}, but here it is built {} \
                     (its {} differs from the shards')",
                    self.data.shards.display(),
                    tokenizer_path.display(),
                    tokenizer.build(),
                    text::tokenizer_config::FILE
                );
            }
        }
        let seq = self.data.max_seq_length;
        let train = Sequences::new(
            Corpus::open(&self.data.shards, "train")?,
            seq,
            self.data.line_by_line,
            &tokenizer,
        )?;
        if train.is_empty() {
            bail!(
                "{}: the train split has no tokens",
                self.data.shards.display()
            );
        }
        // Each language's validation documents are grouped into sequences on their own, so that
        // every sequence is scored under one language.
        let mut eval = Vec::new();
        for language in Corpus::languages(&self.data.shards, "validation")? {
            let sequences = Sequences::new(
                Corpus::open_language(&self.data.shards, "validation", language.as_deref())?,
                seq,
                self.data.line_by_line,
                &tokenizer,
            )?;
            if !sequences.is_empty() {
                eval.push(EvalSet {
                    language,
                    sequences,
                });
            }
        }
        Ok(Inputs {
            tokenizer,
            tokenizer_path,
            train,
            eval,
        })
    }

    /// The model to train: loaded (its vocabulary must be the tokenizer's) or freshly initialised.
    pub fn build_model(
        &self,
        tok: &XlmrTokenizer,
        device: Device,
    ) -> Result<Pretrained<XlmRobertaForMaskedLM>> {
        // Weights drawn fresh (a new model, or an LM head the checkpoint lacks) come from torch's
        // generator, which libtorch seeds at random in every process: seed it, so a run repeats.
        tch::manual_seed(self.train.seed as i64);
        let model = match (&self.model.init_from, &self.model.shape) {
            (Some(dir), None) => {
                let m = Pretrained::<XlmRobertaForMaskedLM>::load(dir, device)?;
                if let Some(r) = &m.report {
                    if !r.is_exact() {
                        eprintln!("loading {}: {r}", dir.display());
                    }
                }
                m
            }
            (None, Some(shape)) => {
                let mut cfg = XlmRobertaConfig::new(
                    tok.vocab_size() as i64,
                    shape.hidden_size,
                    shape.num_hidden_layers,
                    shape.num_attention_heads,
                    shape.intermediate_size,
                );
                cfg.pad_token_id = tok.pad_id as i64;
                cfg.bos_token_id = Some(tok.bos_id as i64);
                cfg.eos_token_id = Some(tok.eos_id as i64);
                cfg.max_position_embeddings =
                    shape.max_position_embeddings.unwrap_or(self.data.max_seq_length as i64 + cfg.pad_token_id + 1);
                if let Some(p) = shape.hidden_dropout_prob {
                    cfg.hidden_dropout_prob = p;
                }
                if let Some(p) = shape.attention_probs_dropout_prob {
                    cfg.attention_probs_dropout_prob = p;
                }
                Pretrained::init(cfg, device)?
            }
            _ => bail!("[model] needs exactly one of init_from (a checkpoint directory) or shape (a new model)"),
        };
        // More embedding rows than pieces is fine (multilingual-e5-small pads 250,002 to 250,037, as
        // transformers allows); fewer would index past the embeddings.
        if model.config.vocab_size < tok.vocab_size() as i64 {
            bail!(
                "the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                model.config.vocab_size,
                tok.vocab_size()
            );
        }
        if model.config.max_sequence_length() < self.data.max_seq_length as i64 {
            bail!(
                "max_seq_length {} exceeds the model's {} positions",
                self.data.max_seq_length,
                model.config.max_sequence_length()
            );
        }
        Ok(model)
    }
}
