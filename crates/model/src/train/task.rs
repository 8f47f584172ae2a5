//! What the one training loop needs from a task (MLM, QA): its examples, batches and loss, held-out
//! metrics, and its model's variables and files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;
use tch::Tensor;

/// The bar `Task::evaluate` advances (re-exported so that tasks need no indicatif of their own).
pub use indicatif::ProgressBar;

use super::sampling::Sampling;
use crate::snapshot::DirSnapshot;

/// What a training run needs from its task (MLM, QA).
pub trait Task {
    type Batch;

    /// Number of training examples (sequences, QA features).
    fn train_len(&self) -> usize;
    /// Sources with mixing weights and example lengths; by default one source, weight 1, no lengths.
    fn sampling(&self) -> Sampling {
        Sampling::uniform(self.train_len())
    }
    /// The examples at `indices`, on the training device.
    fn batch(&self, indices: &[usize]) -> Result<Self::Batch>;
    /// CUDA graphs (`train.cuda_graphs`): asks for training batches whose shapes depend on their size
    /// only (MLM: the labelled positions padded to a fixed bound), so that one captured step replays
    /// every batch of a size. Called once, before the first batch, when the loop will capture steps.
    fn use_static_shapes(&mut self) {}
    /// Gradient checkpointing (`train.gradient_checkpointing`): the model's training forwards keep no
    /// layer's activations, which its backward recomputes. Called once, before the first batch.
    fn set_gradient_checkpointing(&mut self, on: bool) -> Result<()> {
        if on {
            anyhow::bail!("gradient_checkpointing: this task's model does not support it");
        }
        Ok(())
    }
    /// CUDA graphs: the device tensors a training step on `batch` reads, when a captured step may replay
    /// it — shapes fixed by the batch's size and nothing in the forward decided on the host from its
    /// values; a replay copies the new batch's tensors into the captured batch's, in this order. `None`
    /// (the default) runs the step eagerly.
    fn graph_inputs(&self, _batch: &Self::Batch) -> Option<Vec<Tensor>> {
        None
    }
    /// Tokens in a batch that count towards tokens/s: the real ones, padding left out.
    fn tokens(&self, batch: &Self::Batch) -> usize;
    /// Positions of a batch's input ids, padding included (`include_num_input_tokens_seen = "all"`);
    /// by default the real tokens (a task whose batches have no padding).
    fn padded_tokens(&self, batch: &Self::Batch) -> usize {
        self.tokens(batch)
    }
    /// The scalar loss of a batch: the mean over its examples, or over the items of `loss_items`.
    fn loss(&self, batch: &Self::Batch, train: bool) -> Tensor;
    /// The number of items a batch's loss is the mean over, where the loss is one over tokens (MLM:
    /// its labelled positions). A step of several micro-batches (accumulation, processes) then weighs
    /// each by its items, so that the step's loss and gradient are the mean over all its items, as one
    /// batch holding them all (`transformers`' `num_items_in_batch`); a batch with none (a mean over
    /// nothing) is then an error. `None`, the default: the loss is a mean over examples and
    /// micro-batches weigh alike (in `transformers`, a batch without `labels`, as QA's).
    fn loss_items(&self, _batch: &Self::Batch) -> Option<usize> {
        None
    }
    /// Held-out metrics (`eval/loss`, `eval/f1`, …), computed without gradients. `progress` is
    /// the evaluation's own bar: the task sets its length and advances it in [`Task::EVAL_UNIT`]s
    /// (a held-out set can take minutes, during which the steps' bar stands still).
    fn evaluate(&mut self, progress: &ProgressBar) -> Result<BTreeMap<String, f64>>;
    /// What the evaluation's bar counts.
    const EVAL_UNIT: &'static str = "batches";
    /// The trainable variables under their checkpoint names.
    fn variables(&self) -> HashMap<String, Tensor>;
    /// The model's Hugging Face directory, captured now (weights copied to the host): a checkpoint
    /// written in the background holds the weights of its step, not of a later one.
    fn model_snapshot(&self) -> Result<DirSnapshot>;
    /// Writes the model as a Hugging Face directory.
    fn save_model(&self, dir: &Path) -> Result<()> {
        self.model_snapshot()?.write_into(dir)
    }
    /// Reads back what `save_model` wrote, into the same variables (in place).
    fn load_model(&mut self, dir: &Path) -> Result<()>;
}
