//! `config.json` of XLM-RoBERTa / RoBERTa as Hugging Face `transformers` writes it.
//!
//! Every field that changes the computation is read; values this implementation cannot compute
//! are rejected when loading rather than silently computed differently.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Activation functions that `transformers`' `ACT2FN` names and we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU, `x * Φ(x)` with the error function (XLM-R's choice).
    Gelu,
    /// The tanh approximation of GELU.
    GeluNew,
    GeluPytorchTanh,
    Relu,
    Silu,
    Swish,
}

/// The fields of a Hugging Face XLM-R `config.json` that matter here; unknown fields are kept in
/// `extra` so that a config we load and save again loses nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct XlmRobertaConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: i64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_pad")]
    pub pad_token_id: i64,
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_decoder: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_cross_attention: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_model_type() -> String {
    "xlm-roberta".to_owned()
}
fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_positions() -> i64 {
    514
}
fn default_type_vocab() -> i64 {
    1
}
fn default_eps() -> f64 {
    1e-5
}
fn default_pad() -> i64 {
    1
}
fn default_init_range() -> f64 {
    0.02
}

impl XlmRobertaConfig {
    /// The shape of `xlm-roberta-base` (with its 250,002-token vocabulary).
    pub fn xlm_roberta_base() -> Self {
        Self::new(250_002, 768, 12, 12, 3072)
    }

    /// The shape of `xlm-roberta-large`.
    pub fn xlm_roberta_large() -> Self {
        Self::new(250_002, 1024, 24, 16, 4096)
    }

    /// A config with XLM-R's defaults for everything but the shape.
    pub fn new(vocab_size: i64, hidden: i64, layers: i64, heads: i64, intermediate: i64) -> Self {
        Self {
            model_type: default_model_type(),
            architectures: Vec::new(),
            vocab_size,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            hidden_act: default_act(),
            hidden_dropout_prob: default_dropout(),
            attention_probs_dropout_prob: default_dropout(),
            max_position_embeddings: default_max_positions(),
            type_vocab_size: default_type_vocab(),
            layer_norm_eps: default_eps(),
            pad_token_id: default_pad(),
            bos_token_id: Some(0),
            eos_token_id: Some(2),
            initializer_range: default_init_range(),
            position_embedding_type: None,
            is_decoder: None,
            add_cross_attention: None,
            tie_word_embeddings: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Reads and validates `config.json` (a file, or a model directory holding one).
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read model config {}", file.display()))?;
        let cfg: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid XLM-R config.json", file.display()))?;
        cfg.validate()
            .with_context(|| format!("unsupported model config {}", file.display()))?;
        Ok(cfg)
    }

    /// Writes `config.json` with the given `architectures` entry, as `save_pretrained` does.
    pub fn to_json(&self, architecture: &str) -> Result<String> {
        let mut cfg = self.clone();
        cfg.architectures = vec![architecture.to_owned()];
        Ok(serde_json::to_string_pretty(&cfg)? + "\n")
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.model_type.as_str(), "xlm-roberta" | "roberta") {
            bail!(
                "model_type '{}' is not xlm-roberta or roberta",
                self.model_type
            );
        }
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if value <= 0 {
                bail!("{name} must be positive, got {value}");
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if !(0..self.vocab_size).contains(&self.pad_token_id) {
            bail!(
                "pad_token_id {} is outside the vocabulary of {}",
                self.pad_token_id,
                self.vocab_size
            );
        }
        if self.max_position_embeddings <= self.pad_token_id + 1 {
            bail!(
                "max_position_embeddings {} leaves no positions after the padding offset {}",
                self.max_position_embeddings,
                self.pad_token_id + 1
            );
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                bail!("{name} must be in [0, 1), got {p}");
            }
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            bail!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            );
        }
        match self.position_embedding_type.as_deref() {
            None | Some("absolute") => {}
            Some(other) => bail!(
                "position_embedding_type '{other}' is not supported (only 'absolute', XLM-R's own)"
            ),
        }
        if self.is_decoder == Some(true) || self.add_cross_attention == Some(true) {
            bail!("decoder configurations (is_decoder / add_cross_attention) are not supported");
        }
        if self.tie_word_embeddings == Some(false) {
            bail!("tie_word_embeddings = false is not supported: the MLM decoder shares the word embeddings");
        }
        Ok(())
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// The largest sequence length the position table allows (514 positions → 512 tokens).
    pub fn max_sequence_length(&self) -> i64 {
        self.max_position_embeddings - self.pad_token_id - 1
    }
}
