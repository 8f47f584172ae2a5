//! Domain-adaptive masked-language-model training of XLM-RoBERTa on data-prep's token shards.
//!
//! `MlmTask` is the MLM side of the shared training loop (`model::train`): it cuts sequences from the
//! shards, masks them, and takes the cross-entropy on the masked positions only — the LM head runs on
//! those positions alone, which with a 250k vocabulary is most of the saving over computing all.
//!
//! By role: what a run is given and the inputs and model it opens (`config`), the loop's MLM side and
//! its per-language evaluation (`task`), what the binary adds to the common run (`job`), and
//! `fill_mask`'s predictions from a trained directory.

pub mod fill_mask;

mod config;
mod job;
mod task;

pub use config::{DataConfig, EvalSet, Inputs, MlmConfig, ModelShape, ModelSource};
pub use task::{eval_shares, MlmBatch, MlmTask};
