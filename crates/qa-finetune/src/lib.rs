//! Extractive QA fine-tuning of XLM-RoBERTa (start/end token classification) and prediction.
//!
//! `QaTask` is the QA side of the shared training loop: `run_qa.py`'s windows and labels
//! (`model::qa::features`), batches padded to the longest window (a multiple of 8), loss
//! `(CE(start) + CE(end)) / 2`, and evaluation through `utils_qa.py`'s post-processing and the eval
//! crate's official-script scoring, per language.
//!
//! By role: what a run is given (`config`), the files it reads and their scoring (`data`), the loop's
//! QA side (`task`), answers from a fine-tuned directory (`predict`), and what the binary adds to the
//! common run (`job`).

mod config;
mod data;
mod job;
mod predict;
mod task;

pub use config::{DataConfig, QaConfig, QaFile};
pub use data::{has_gold_answers, load_examples, metrics, score};
pub use model::qa::inference::{
    infer, Prediction, QaSettings, Seconds, SettingsArgs, SETTINGS_FILE,
};
pub use predict::{predict, remove_if_present, write_predictions};
pub use task::{QaBatch, QaTask};
