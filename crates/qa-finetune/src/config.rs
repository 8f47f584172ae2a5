//! What a `qa-finetune` run is given: the model to start from, the data files and their windows,
//! post-processing and the loop's settings.

use std::path::PathBuf;

use model::qa::postprocess::PostprocessConfig;
use model::train::TrainConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaConfig {
    pub output_dir: PathBuf,
    /// A Hugging Face directory (with tokenizer.json): mlm-pretrain's output or any XLM-R checkpoint.
    pub init_from: PathBuf,
    /// Default: `<init_from>/tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    pub data: DataConfig,
    #[serde(default)]
    pub postprocess: PostprocessConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaFile {
    pub path: PathBuf,
    /// With several validation files, each one's EM/F1 is reported as `eval/NAME/exact`, `eval/NAME/f1`
    /// (so `metric_for_best_model` can follow one set); NAME defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Overrides the file's `lang` tags.
    #[serde(default)]
    pub lang: Option<String>,
    /// Mixing weight of a training file: an epoch draws `round(weight × windows)` of its windows
    /// (2 repeats the file, 0.5 takes a new half every epoch). Ignored for validation files.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Only the file's first N questions, for quick runs and debugging (run_qa.py's
    /// `max_train_samples` / `max_eval_samples`, per file; taken before windows are made, as there).
    #[serde(default)]
    pub max_samples: Option<usize>,
}

impl QaFile {
    /// Its name in per-file metrics.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path.file_stem().map_or_else(
                || self.path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        })
    }
}

fn default_weight() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub train: Vec<QaFile>,
    #[serde(default)]
    pub validation: Vec<QaFile>,
    #[serde(default = "default_seq")]
    pub max_seq_length: usize,
    #[serde(default = "default_stride")]
    pub doc_stride: usize,
    #[serde(default = "default_query")]
    pub max_query_length: usize,
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Pad every training window to `max_seq_length` (run_qa.py's `pad_to_max_length`, its default)
    /// instead of to the batch's longest.
    #[serde(default)]
    pub pad_to_max_length: bool,
    /// Keep padding positions in the start/end softmax of the training loss, as transformers' QA head
    /// does (run_qa.py). medqa's default leaves them out, so that the loss does not depend on how far a
    /// batch is padded. With `pad_to_max_length`, training is run_qa.py's exactly.
    #[serde(default)]
    pub padding_in_loss: bool,
}

fn default_seq() -> usize {
    384
}
fn default_stride() -> usize {
    128
}
fn default_query() -> usize {
    64
}
fn default_eval_batch() -> usize {
    32
}
