//! Hugging Face model directories: `config.json` + `model.safetensors` (+ `tokenizer.json` and
//! `tokenizer_config.json`).

use std::path::Path;

use anyhow::{Context, Result};
use tch::nn::{self, VarStore};
use tch::Device;

use crate::config::XlmRobertaConfig;
use crate::snapshot::DirSnapshot;
use crate::weights::{load_weight_files, snapshot_safetensors, LoadReport, SaveDtype, WeightFiles};
use crate::xlm_roberta::{
    Architecture, XlmRobertaForMaskedLM, XlmRobertaForQuestionAnswering, XlmRobertaModel,
};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A model with the variables that hold its weights.
pub struct Pretrained<M> {
    pub model: M,
    pub vs: VarStore,
    pub config: XlmRobertaConfig,
    /// What the checkpoint held and lacked; `None` for a freshly initialised model.
    pub report: Option<LoadReport>,
}

/// The architectures that can be built from a config and a `VarStore` root.
pub trait FromConfig: Sized {
    const ARCHITECTURE: Architecture;
    fn build(root: &nn::Path, cfg: &XlmRobertaConfig) -> Self;
}

impl FromConfig for XlmRobertaForMaskedLM {
    const ARCHITECTURE: Architecture = Architecture::MaskedLM;
    fn build(root: &nn::Path, cfg: &XlmRobertaConfig) -> Self {
        Self::new(root, cfg)
    }
}

impl FromConfig for XlmRobertaForQuestionAnswering {
    const ARCHITECTURE: Architecture = Architecture::QuestionAnswering;
    fn build(root: &nn::Path, cfg: &XlmRobertaConfig) -> Self {
        Self::new(root, cfg)
    }
}

/// The bare encoder; `XLMRobertaModel` has a pooler by default, as in `transformers`.
impl FromConfig for XlmRobertaModel {
    const ARCHITECTURE: Architecture = Architecture::Base;
    fn build(root: &nn::Path, cfg: &XlmRobertaConfig) -> Self {
        Self::new(root.clone(), cfg, true)
    }
}

impl<M: FromConfig> Pretrained<M> {
    /// A new model with `transformers`' random initialisation (seed with `tch::manual_seed` first).
    pub fn init(config: XlmRobertaConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let vs = VarStore::new(device);
        let model = M::build(&vs.root(), &config);
        Ok(Self {
            model,
            vs,
            config,
            report: None,
        })
    }

    /// Loads a Hugging Face directory; heads the checkpoint lacks are freshly initialised and listed
    /// in `report.missing`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config = XlmRobertaConfig::load(dir)?;
        let mut me = Self::init(config, device)?;
        let weights = WeightFiles::of_dir(dir)?;
        let report = load_weight_files(&mut me.vs, &weights)?;
        me.report = Some(report);
        Ok(me)
    }

    /// Writes `config.json` (with `architectures`) and `model.safetensors`, and copies the tokenizer
    /// (with its `tokenizer_config.json`, or one that reads it as written) if given, so that
    /// `transformers`' `from_pretrained(dir)` loads the result and builds the tokenizer medqa used.
    pub fn save(&self, dir: &Path, dtype: SaveDtype, tokenizer: Option<&Path>) -> Result<()> {
        self.snapshot(dtype, tokenizer)?.write_into(dir)
    }

    /// What `save` writes, captured now (weights copied to the host) to be written later.
    pub fn snapshot(&self, dtype: SaveDtype, tokenizer: Option<&Path>) -> Result<DirSnapshot> {
        let mut files = DirSnapshot::default();
        let json = self.config.to_json(M::ARCHITECTURE.class_name())?;
        files.add_bytes(CONFIG_FILE, json.into_bytes());
        files.add_safetensors(WEIGHTS_FILE, snapshot_safetensors(&self.vs, dtype)?);
        if let Some(src) = tokenizer {
            files
                .add_copy_of(TOKENIZER_FILE, src)
                .context("cannot copy the tokenizer")?;
            // transformers 5 rebuilds an XLM-R tokenizer of a directory without one; with it, transformers
            // builds the tokenizer medqa used.
            let max_length = self.config.max_position_embeddings - self.config.pad_token_id - 1;
            files.add_bytes(
                text::tokenizer_config::FILE,
                text::tokenizer_config::for_copy(src, max_length.max(0) as usize)?,
            );
        }
        Ok(files)
    }

    /// The number of parameters, the tied decoder counted once (as `model.parameters()` does).
    pub fn num_parameters(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }
}
