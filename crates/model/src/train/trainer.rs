//! The one training loop, shared by MLM pre-training and QA fine-tuning.
//!
//! A `Task` says how to build a batch and which loss to take; the loop does the rest: data order,
//! gradient accumulation, clipping, AdamW with a schedule, skipping non-finite steps, evaluation,
//! logging, and checkpoints that resume exactly.
//!
//! Exact resumption needs no saved random state: before each micro-batch the torch generator is
//! seeded from (seed, micro-batch index), and the data order of each epoch is a permutation drawn
//! from (seed, epoch). A resumed run therefore replays the same dropout masks and batches.
//!
//! Data-parallel (a [`ProcessGroup`] of `W` ranks): optimizer step `s` takes the micro-batches
//! `s·A·W … (s+1)·A·W - 1` of that one data order (`A` = gradient accumulation), rank `r` the ones
//! whose index is `r` modulo `W`, each seeded by its index as above. So the ranks' micro-batches
//! together are the single-process global batch (batch × W × A), dropout differs per micro-batch and
//! so per rank, and a run on `W` ranks computes what one process with accumulation `A·W` does: each
//! micro-batch's loss is divided by `A·W` and the gradients are summed over the ranks. Rank 0 alone
//! evaluates, logs and writes checkpoints; the others wait for it at the next collective.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::cadence::{self, Cadence, Cadences, IntervalStrategy, SaveStrategy};
use super::checkpoint::{self, BackgroundWriter, BestCheckpoint, DataOrderKey, TrainState};
use super::graphs::{Plan, StepGraphs};
use indicatif::ProgressBar;

use super::log::{progress_bar, History, LogRecord, Tensorboard};
use super::loss_scale::LossScale;
use super::optim::{scale_gradients, AdamW, AdamWConfig};
use super::sampling::{self, derive_seed, DataOrder};
use super::schedule::{Plateau, Schedule, ScheduleArgs, ScheduleKind};
use super::tokens_seen::TokensSeen;
use crate::autocast::{AutocastGuard, Precision};
use crate::dist::{ProcessGroup, ReduceOp};

pub use super::task::Task;

/// Loop settings, with `transformers`' `TrainingArguments` names where one exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub seed: u64,
    pub learning_rate: f64,
    pub num_train_epochs: f64,
    /// Overrides `num_train_epochs` when set.
    pub max_steps: Option<u64>,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub lr_scheduler_type: ScheduleKind,
    /// The schedule's own settings (`num_cycles`, `power`, `lr_end`, `min_lr`, `num_decay_steps`, …),
    /// as `transformers`' `lr_scheduler_kwargs`; each must be one the schedule takes.
    pub lr_scheduler_kwargs: ScheduleArgs,
    pub warmup_ratio: f64,
    /// Overrides `warmup_ratio` when set. As `transformers` 5: a whole number of steps, or a fraction
    /// in [0, 1) of the run's steps (rounded up).
    pub warmup_steps: Option<f64>,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Gradients are scaled to this norm at most; 0: not clipped (as `transformers`).
    pub max_grad_norm: f64,
    /// When the loop logs (`transformers`' `logging_strategy`): every `logging_steps`, at the end of
    /// each epoch, or only at the end ("steps", "epoch", "no"). The run's last step always logs,
    /// evaluates and saves, whatever the strategies.
    pub logging_strategy: IntervalStrategy,
    /// With "steps": a whole number of steps, or a fraction in (0, 1) of the run's steps (rounded
    /// up), as `transformers`; 0: only at the end.
    pub logging_steps: f64,
    /// Also log the first step (`transformers`' `logging_first_step`).
    pub logging_first_step: bool,
    pub eval_strategy: IntervalStrategy,
    /// As `logging_steps`; 0: evaluate only at the end.
    pub eval_steps: f64,
    /// No evaluation before this many steps (with "epoch": epochs) have passed, but at the end
    /// (`transformers`' `eval_delay`).
    pub eval_delay: f64,
    /// Evaluate the starting model before the first step of a fresh run (`transformers`'
    /// `eval_on_start`): a baseline in the history, not a candidate for the best checkpoint.
    pub eval_on_start: bool,
    /// As `logging_strategy`, or "best": a checkpoint after each evaluation that improved
    /// `metric_for_best_model`.
    pub save_strategy: SaveStrategy,
    /// As `logging_steps`; 0: checkpoint only at the end.
    pub save_steps: f64,
    /// Checkpoints kept besides the best one.
    pub save_total_limit: usize,
    /// Checkpoints hold the model and the loop state but not the optimizer's moments (twice the
    /// model's size): for evaluation or `load_best_model_at_end`, not to resume (`transformers`'
    /// `save_only_model`). A run stopped by a signal still writes a full checkpoint.
    pub save_only_model: bool,
    /// Write checkpoints on a background thread: the step copies the weights and moments to the host
    /// and training goes on while they are serialized and synced (a base-size model with its AdamW
    /// moments is 3.3 GB). A write's error stops the run at the next checkpoint or at the end.
    pub async_checkpoints: bool,
    /// The evaluation metric that picks the best checkpoint, and whether larger is better.
    pub metric_for_best_model: String,
    pub greater_is_better: bool,
    /// `final/` (and `eval_results.json`) from the best checkpoint by `metric_for_best_model` rather
    /// than the last step. As `transformers`: needs `save_steps` a multiple of `eval_steps`, so that
    /// every checkpoint was evaluated.
    pub load_best_model_at_end: bool,
    /// Stop after this many evaluations in a row that did not improve `metric_for_best_model` by more
    /// than `early_stopping_threshold` on the best so far (`transformers`' `EarlyStoppingCallback`); 0:
    /// never. Needs `load_best_model_at_end`, so that `final/` is the best model, not the last.
    pub early_stopping_patience: u64,
    pub early_stopping_threshold: f64,
    /// Stop when this many optimizer steps in a row had a non-finite loss or gradient.
    pub max_nonfinite_steps_in_a_row: u64,
    /// `bf16`: forward passes under autocast to bf16 (for CUDA; works on CPU too); `fp16`: autocast to
    /// fp16 with a dynamic loss scale (`loss_scale`), for GPUs without bf16.
    pub precision: Precision,
    /// Batches of similar lengths (less padding), as `transformers`' `group_by_length`.
    pub group_by_length: bool,
    /// Leave out each epoch's last micro-batch when it is short (`transformers`'
    /// `dataloader_drop_last`): every batch has the same size (one CUDA graph, steady memory).
    pub dataloader_drop_last: bool,
    /// Seeds the data order (each epoch's permutation, weighted sources' samples) apart from `seed`,
    /// which keeps the initialisation of new weights, dropout and MLM masks (`transformers`'
    /// `data_seed`): seeds that vary one and hold the other. Unset: `seed`.
    pub data_seed: Option<u64>,
    /// Parameters left as they are: glob patterns over `transformers`' names (`*` matches dots too),
    /// e.g. `["*word_embeddings*"]` to keep a 250k-row vocabulary fixed while the encoder learns. Each
    /// pattern must match something; frozen parameters get no gradient and no optimizer state, and a
    /// resume must freeze the same ones (the optimizer file holds the others only).
    pub freeze: Vec<String>,
    /// On CUDA, capture the training step as a CUDA graph per batch shape and replay it (one launch
    /// instead of ~1,000 kernels). Used where it applies: one process, no gradient accumulation, a task
    /// whose batches have fixed shapes (MLM on grouped text); elsewhere, and on the CPU, steps stay
    /// eager. Off by default until measured on a GPU against the eager step.
    pub cuda_graphs: bool,
    /// Keep no encoder layer's activations for the backward, which recomputes them (`transformers`'
    /// `gradient_checkpointing`): a larger batch or longer sequences fit in memory, for about one more
    /// forward per step. The same numbers as without: dropout replays its masks. Steps run eagerly.
    pub gradient_checkpointing: bool,
    /// libtorch's deterministic kernels (`transformers`' `full_determinism`): the same numbers on every
    /// run on CUDA too, where atomics otherwise sum in varying order; some speed is lost. The CPU loop
    /// has no atomics (for bitwise repeats there, one thread: see `model::determinism`).
    pub full_determinism: bool,
    /// Count the input tokens trained on — "all" positions, "non_padding" ones, or "no" (`true`/`false`
    /// as "all"/"no") — over every process and resume, as `num_input_tokens_seen` in each history record
    /// and in `train_results.json` (`transformers`' `include_num_input_tokens_seen`).
    pub include_num_input_tokens_seen: TokensSeen,
    /// For a loss that is a mean over tokens (MLM's labelled positions): divide every process's share
    /// by the step's tokens over all processes, so that the step is the mean over all of them, as one
    /// process with the whole batch (`transformers`' `average_tokens_across_devices`, on by default
    /// there too). Off: each process takes the mean over its own tokens and the processes' gradients
    /// are averaged. Over a process's micro-batches (gradient accumulation) the mean is always over
    /// all their tokens.
    pub average_tokens_across_devices: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            learning_rate: 5e-5,
            num_train_epochs: 3.0,
            max_steps: None,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            lr_scheduler_type: ScheduleKind::Linear,
            lr_scheduler_kwargs: ScheduleArgs::default(),
            warmup_ratio: 0.0,
            warmup_steps: None,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            logging_strategy: IntervalStrategy::Steps,
            logging_steps: 10.0,
            logging_first_step: false,
            eval_strategy: IntervalStrategy::Steps,
            eval_steps: 0.0,
            eval_delay: 0.0,
            eval_on_start: false,
            save_strategy: SaveStrategy::Steps,
            save_steps: 0.0,
            save_total_limit: 2,
            save_only_model: false,
            async_checkpoints: true,
            metric_for_best_model: "eval/loss".to_owned(),
            greater_is_better: false,
            load_best_model_at_end: false,
            early_stopping_patience: 0,
            early_stopping_threshold: 0.0,
            max_nonfinite_steps_in_a_row: 10,
            precision: Precision::Fp32,
            group_by_length: false,
            dataloader_drop_last: false,
            data_seed: None,
            freeze: Vec::new(),
            cuda_graphs: false,
            gradient_checkpointing: false,
            full_determinism: false,
            include_num_input_tokens_seen: TokensSeen::No,
            average_tokens_across_devices: true,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.per_device_train_batch_size == 0 || self.gradient_accumulation_steps == 0 {
            bail!("per_device_train_batch_size and gradient_accumulation_steps must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            bail!(
                "learning_rate must be a positive number, got {}",
                self.learning_rate
            );
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            bail!("warmup_ratio must be in [0, 1], got {}", self.warmup_ratio);
        }
        if self.max_grad_norm.is_nan() {
            bail!("max_grad_norm must be a number (0: no clipping), got NaN");
        }
        if let Some(w) = self.warmup_steps {
            if !(w >= 0.0 && w.is_finite()) {
                bail!("warmup_steps must be a number of steps or a fraction in [0, 1), got {w}");
            }
        }
        self.lr_scheduler_kwargs
            .validate(self.lr_scheduler_type, self.learning_rate)?;
        for (strategy, name, value) in [
            (self.logging_strategy, "logging_steps", self.logging_steps),
            (self.eval_strategy, "eval_steps", self.eval_steps),
            (self.save_strategy.interval(), "save_steps", self.save_steps),
        ] {
            if strategy == IntervalStrategy::Steps {
                cadence::check_steps(name, value)?;
            }
        }
        if !(self.eval_delay >= 0.0 && self.eval_delay.is_finite()) {
            bail!(
                "eval_delay must be a number of steps (epochs with eval_strategy = \"epoch\") ≥ 0, got {}",
                self.eval_delay
            );
        }
        if self.lr_scheduler_type.follows_evaluations() && !self.evaluates_during_training() {
            bail!(
                "lr_scheduler_type = \"reduce_lr_on_plateau\" follows the evaluations of \
                 metric_for_best_model: set eval_steps, or eval_strategy = \"epoch\""
            );
        }
        if self.max_steps.is_none()
            && (self.num_train_epochs.is_nan() || self.num_train_epochs <= 0.0)
        {
            bail!("num_train_epochs must be positive when max_steps is not set");
        }
        if self.save_strategy == SaveStrategy::Best && !self.evaluates_during_training() {
            bail!(
                "save_strategy = \"best\" saves after evaluations that improve metric_for_best_model: \
                 set eval_steps, or eval_strategy = \"epoch\""
            );
        }
        if self.load_best_model_at_end {
            self.check_every_checkpoint_is_evaluated()?;
        }
        if self.early_stopping_patience > 0 && !self.load_best_model_at_end {
            bail!(
                "early_stopping_patience needs load_best_model_at_end = true (a stopped run's final \
                 model is its best checkpoint, as with transformers' EarlyStoppingCallback)"
            );
        }
        if !(self.early_stopping_threshold >= 0.0 && self.early_stopping_threshold.is_finite()) {
            bail!(
                "early_stopping_threshold must be a number ≥ 0, got {}",
                self.early_stopping_threshold
            );
        }
        Ok(())
    }

    /// Whether evaluations happen before the run's end.
    fn evaluates_during_training(&self) -> bool {
        match self.eval_strategy {
            IntervalStrategy::No => false,
            IntervalStrategy::Steps => self.eval_steps > 0.0,
            IntervalStrategy::Epoch => true,
        }
    }

    /// `load_best_model_at_end`'s rule, as `transformers`: the same strategy for evaluations and
    /// checkpoints, and with "steps", checkpoints at a multiple of the evaluations' interval. Fractions
    /// are checked again once resolved (`Trainer::new`).
    fn check_every_checkpoint_is_evaluated(&self) -> Result<()> {
        if self.save_strategy == SaveStrategy::Best {
            return Ok(());
        }
        let (eval, save) = (self.eval_strategy, self.save_strategy.interval());
        if eval != save {
            bail!(
                "load_best_model_at_end needs the same eval_strategy and save_strategy (so that every \
                 checkpoint is evaluated); got eval_strategy = \"{}\", save_strategy = \"{}\"",
                eval.name(),
                save.name()
            );
        }
        let ok = match eval {
            IntervalStrategy::No => false,
            IntervalStrategy::Epoch => true,
            IntervalStrategy::Steps if self.eval_steps <= 0.0 || self.save_steps <= 0.0 => false,
            IntervalStrategy::Steps => {
                match (
                    cadence::is_fraction(self.eval_steps),
                    cadence::is_fraction(self.save_steps),
                ) {
                    (false, false) => {
                        (self.save_steps as u64).is_multiple_of(self.eval_steps as u64)
                    }
                    (true, true) => true,
                    _ => false,
                }
            }
        };
        if !ok {
            bail!(
                "load_best_model_at_end needs evaluations and checkpoints during training, every \
                 checkpoint evaluated: eval_strategy = save_strategy = \"epoch\", or eval_steps and \
                 save_steps set (both whole numbers or both fractions), save_steps a multiple of \
                 eval_steps; got eval_strategy = \"{}\", eval_steps = {}, save_steps = {}",
                eval.name(),
                self.eval_steps,
                self.save_steps
            );
        }
        Ok(())
    }

    /// When this run of `total_steps` logs, evaluates and saves, with `micro_batches_per_step` and
    /// an epoch of `examples`.
    pub fn cadences(
        &self,
        total_steps: u64,
        micro_batches_per_step: u64,
        examples: usize,
    ) -> Result<Cadences> {
        let per_epoch = self.batches_per_epoch(examples);
        let resolve = |strategy, steps| {
            Cadence::resolve(
                strategy,
                steps,
                total_steps,
                micro_batches_per_step,
                per_epoch,
            )
        };
        let cadences = Cadences {
            log: resolve(self.logging_strategy, self.logging_steps),
            eval: resolve(self.eval_strategy, self.eval_steps),
            save: resolve(self.save_strategy.interval(), self.save_steps),
            eval_delay: self.eval_delay,
        };
        if self.load_best_model_at_end {
            if let (Cadence::Every(eval), Cadence::Every(save)) = (cadences.eval, cadences.save) {
                if !save.is_multiple_of(eval) {
                    bail!(
                        "load_best_model_at_end: over {total_steps} steps, eval_steps = {} is every {eval} \
                         steps and save_steps = {} every {save}, not a multiple of it (so not every \
                         checkpoint would be evaluated); choose fractions that round to multiples, or \
                         whole numbers",
                        self.eval_steps,
                        self.save_steps
                    );
                }
            }
        }
        Ok(cadences)
    }

    fn batches_per_epoch(&self, examples: usize) -> u64 {
        sampling::batches_per_epoch(
            examples,
            self.per_device_train_batch_size,
            self.dataloader_drop_last,
        )
    }

    /// What the data order follows: a resume must keep it, or the run would go on in another order.
    pub fn data_order(&self) -> DataOrderKey {
        DataOrderKey {
            per_device_train_batch_size: self.per_device_train_batch_size as u64,
            data_seed: self.data_seed.unwrap_or(self.seed),
            dataloader_drop_last: self.dataloader_drop_last,
            group_by_length: self.group_by_length,
        }
    }

    /// Optimizer steps of the whole run.
    pub fn total_steps(&self, examples: usize) -> u64 {
        self.total_steps_on(examples, 1)
    }

    /// Optimizer steps of the whole run on `world` data-parallel processes.
    pub fn total_steps_on(&self, examples: usize, world: usize) -> u64 {
        if let Some(steps) = self.max_steps {
            return steps;
        }
        let micro = (self.batches_per_epoch(examples) as f64 * self.num_train_epochs).ceil() as u64;
        micro.div_ceil(self.micro_batches_per_step(world)).max(1)
    }

    /// Micro-batches that make one optimizer step over `world` processes.
    pub fn micro_batches_per_step(&self, world: usize) -> u64 {
        (self.gradient_accumulation_steps * world.max(1)) as u64
    }

    /// Warm-up steps of a run of `total_steps`, as `TrainingArguments.get_warmup_steps`.
    pub fn warmup_steps_of(&self, total_steps: u64) -> u64 {
        match self.warmup_steps {
            Some(w) if w >= 1.0 => w as u64,
            Some(fraction) => (fraction * total_steps as f64).ceil() as u64,
            None => (self.warmup_ratio * total_steps as f64).ceil() as u64,
        }
    }

    /// The run's learning-rate schedule, checked against its length.
    pub fn schedule(&self, total_steps: u64) -> Result<Schedule> {
        let schedule = Schedule {
            args: self.lr_scheduler_kwargs.clone(),
            ..Schedule::new(
                self.lr_scheduler_type,
                self.learning_rate,
                self.warmup_steps_of(total_steps),
                total_steps,
            )
        };
        schedule.validate()?;
        Ok(schedule)
    }

    fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_epsilon,
            weight_decay: self.weight_decay,
        }
    }
}

/// The variables that train: all but those `freeze` names, which stop requiring gradients.
fn trainable(
    mut variables: HashMap<String, Tensor>,
    freeze: &[String],
) -> Result<HashMap<String, Tensor>> {
    if freeze.is_empty() {
        return Ok(variables);
    }
    let patterns = freeze
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("train.freeze: bad pattern {p:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut frozen: Vec<String> = Vec::new();
    for (pattern, text) in patterns.iter().zip(freeze) {
        let hits: Vec<String> = variables
            .keys()
            .filter(|name| pattern.matches(name))
            .cloned()
            .collect();
        if hits.is_empty() {
            let mut names: Vec<&String> = variables.keys().collect();
            names.sort();
            bail!(
                "train.freeze: {text:?} matches no parameter (names look like {:?})",
                &names[..names.len().min(3)]
            );
        }
        frozen.extend(hits);
    }
    let (mut tensors, mut count) = (0, 0);
    for name in &frozen {
        if let Some(t) = variables.remove(name) {
            tensors += 1;
            count += t.numel();
            let _ = t.set_requires_grad(false);
        }
    }
    eprintln!("frozen: {tensors} tensors, {count} parameters");
    Ok(variables)
}

/// Seeds everything random in a micro-batch (dropout, masking) from the run seed and its index.
pub fn micro_batch_seed(seed: u64, index: u64) -> u64 {
    derive_seed(seed, 2, index)
}

/// Seeds the masks of evaluation batch `index`: the same at every evaluation, so numbers compare.
pub fn eval_batch_seed(seed: u64, index: u64) -> u64 {
    derive_seed(seed, 3, index)
}

/// How the run ended.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub steps: u64,
    /// The last evaluation's metrics; with `load_best_model_at_end`, the best checkpoint's.
    pub last_eval: BTreeMap<String, f64>,
    pub best_checkpoint: Option<PathBuf>,
    /// With `load_best_model_at_end`: the step of the checkpoint now in the task's model.
    pub final_from_best: Option<u64>,
    /// Early stopping ended the run before its last step.
    pub stopped_early: bool,
    /// A stop was asked for (`stop`: a signal): the run ended at `steps` with a checkpoint there, to be
    /// resumed; it has no final model.
    pub interrupted: bool,
    /// The mean loss of this run's steps (not those before a resume; none without a finite one), and
    /// the epochs done at its end: `transformers`' `train_loss` and `epoch`.
    pub train_loss: Option<f64>,
    pub epoch: f64,
    /// The steps this run took (after a resume, those since it).
    pub steps_this_run: u64,
    pub skipped_nonfinite_steps: u64,
    /// Wall-clock seconds spent writing checkpoints and evaluating (the device's queued work finished
    /// first, so they hold only their own work): what a throughput figure for the steps leaves out.
    pub checkpoint_seconds: f64,
    pub eval_seconds: f64,
    /// Wall-clock seconds of the loop, from the first step until the device finished the last (so
    /// evaluation and checkpoints included), and the tokens its steps read on every rank together.
    pub train_seconds: f64,
    pub train_tokens: u64,
    /// With `include_num_input_tokens_seen`: the input tokens of every step so far, resumes included.
    pub num_input_tokens_seen: Option<u64>,
}

/// The step's CUDA graphs when `cuda_graphs` applies to this run: CUDA, a build with CUDA graphs, one
/// process, one micro-batch per step. Where it is asked for on CUDA and does not apply, says why.
fn graphs_for<B>(
    cfg: &TrainConfig,
    device: tch::Device,
    grouped: bool,
    main: bool,
) -> Option<StepGraphs<B>> {
    if !cfg.cuda_graphs || !device.is_cuda() {
        return None;
    }
    let why_not = if !crate::cuda_graph::available() {
        Some("this build's libtorch has no CUDA graphs")
    } else if grouped {
        Some("data-parallel runs step eagerly")
    } else if cfg.gradient_accumulation_steps > 1 {
        Some("gradient accumulation steps eagerly")
    } else if cfg.precision == Precision::Fp16 {
        Some("fp16 loss scaling steps eagerly")
    } else if cfg.gradient_checkpointing {
        // The recomputation is a backward inside the backward, and sets the generators' states.
        Some("gradient checkpointing steps eagerly")
    } else {
        None
    };
    match why_not {
        Some(reason) => {
            if main {
                eprintln!("note: cuda_graphs is set, but {reason}; training steps run eagerly");
            }
            None
        }
        None => Some(StepGraphs::new(device)),
    }
}

/// Waits for the device's queued work (CUDA runs asynchronously), so a timer around what follows
/// measures only that.
fn settle(device: tch::Device) {
    if let tch::Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// Trains `task` on `device` in `run_dir` (`tb/`, `checkpoints/`, `train_log.jsonl`); with `resume`,
/// continues from that checkpoint directory.
pub fn train<T: Task>(
    task: &mut T,
    cfg: &TrainConfig,
    device: tch::Device,
    run_dir: &Path,
    resume: Option<&Path>,
) -> Result<TrainOutcome> {
    Trainer::new(task, cfg, device, run_dir, resume, None)?.run()
}

/// As [`train`], as one rank of `group` when given (data-parallel; see the module's notes): every
/// rank calls it with the same task, settings and `run_dir`, and rank 0 alone writes there.
pub fn train_in_group<T: Task>(
    task: &mut T,
    cfg: &TrainConfig,
    device: tch::Device,
    run_dir: &Path,
    resume: Option<&Path>,
    group: Option<&ProcessGroup>,
) -> Result<TrainOutcome> {
    Trainer::new(task, cfg, device, run_dir, resume, group)?.run()
}

/// One run of the loop: what it keeps from step to step.
struct Trainer<'a, T: Task> {
    task: &'a mut T,
    cfg: &'a TrainConfig,
    device: tch::Device,
    run_dir: &'a Path,
    /// The data-parallel group this process trains in, if any.
    group: Option<&'a ProcessGroup>,
    /// This process's rank and the number of processes (0 and 1 without a group).
    rank: u64,
    world: u64,
    total_steps: u64,
    /// When it logs, evaluates and saves.
    cadences: Cadences,
    /// Micro-batches per step and per epoch of the one data order, for the `epoch` logged.
    micro_batches_per_step: u64,
    batches_per_epoch: u64,
    schedule: Schedule,
    optimizer: AdamW,
    state: TrainState,
    data: DataOrder,
    /// Rank 0's alone.
    history: Option<History>,
    tb: Option<Tensorboard>,
    bar: ProgressBar,
    window: LogWindow,
    /// Steps whose numbers are still on the device.
    pending: Vec<PendingStep>,
    last_eval: BTreeMap<String, f64>,
    checkpoint_seconds: f64,
    /// Rank 0's checkpoint in flight (`async_checkpoints`).
    writer: BackgroundWriter,
    /// Tokens this rank's steps read in this run (not counting before a resume).
    tokens_trained: u64,
    /// This rank's input tokens in the current step, as `include_num_input_tokens_seen` counts them.
    step_input_tokens: u64,
    eval_seconds: f64,
    /// The step's CUDA graphs, when `cuda_graphs` applies to this run.
    graphs: Option<StepGraphs<T::Batch>>,
    /// fp16: the dynamic loss scale.
    loss_scale: Option<LossScale>,
}

/// The learning rate of an update: a value, or a device scalar a captured step reads at each replay.
enum Rate<'t> {
    Value(f64),
    Tensor(&'t Tensor),
}

impl<'a, T: Task> Trainer<'a, T> {
    /// Checks the settings, builds the optimizer and data order, and with `resume` restores the state.
    fn new(
        task: &'a mut T,
        cfg: &'a TrainConfig,
        device: tch::Device,
        run_dir: &'a Path,
        resume: Option<&Path>,
        group: Option<&'a ProcessGroup>,
    ) -> Result<Self> {
        cfg.validate()?;
        let sampling = task.sampling();
        sampling.validate()?;
        if cfg.group_by_length && sampling.lengths.is_none() {
            bail!("group_by_length: this task does not report example lengths");
        }
        if cfg.dataloader_drop_last && sampling.epoch_len() < cfg.per_device_train_batch_size {
            bail!(
                "dataloader_drop_last: an epoch of {} examples holds no full batch of {}",
                sampling.epoch_len(),
                cfg.per_device_train_batch_size
            );
        }
        let (rank, world) = group.map_or((0, 1), |g| (g.world().rank, g.world().size));
        let main = rank == 0;
        let total_steps = cfg.total_steps_on(sampling.epoch_len(), world);
        let micro_batches_per_step = cfg.micro_batches_per_step(world);
        let batches_per_epoch = cfg.batches_per_epoch(sampling.epoch_len());
        let cadences = cfg.cadences(total_steps, micro_batches_per_step, sampling.epoch_len())?;
        let fractional = [cfg.logging_steps, cfg.eval_steps, cfg.save_steps]
            .into_iter()
            .any(cadence::is_fraction);
        let by_epoch = [
            cfg.logging_strategy,
            cfg.eval_strategy,
            cfg.save_strategy.interval(),
        ]
        .contains(&IntervalStrategy::Epoch);
        if main && (fractional || by_epoch) {
            eprintln!(
                "{total_steps} steps, {} micro-batches an epoch: {}",
                batches_per_epoch,
                cadences.describe()
            );
        }
        let mut optimizer = AdamW::new(trainable(task.variables(), &cfg.freeze)?, cfg.adamw());
        let mut state = TrainState::new(cfg.seed);
        if let Some(dir) = resume {
            state = checkpoint::load(dir, task, &mut optimizer)
                .with_context(|| format!("cannot resume from {}", dir.display()))?;
            if state.seed != cfg.seed {
                bail!(
                    "{}: saved with seed {}, but this run has seed {}",
                    dir.display(),
                    state.seed,
                    cfg.seed
                );
            }
            check_resumable(dir, &state, cfg, world)?;
            if main {
                eprintln!("resuming from {} at step {}", dir.display(), state.step);
            }
        }
        state.data_order = Some(cfg.data_order());
        state.world_size = Some(world as u64);
        state.micro_batches_per_step = Some(cfg.micro_batches_per_step(world));
        if let Some(group) = group {
            broadcast_weights(&*task, group)?;
        }
        let schedule = cfg.schedule(total_steps)?;
        if main && !cfg.lr_scheduler_type.warms_up() && schedule.warmup_steps > 0 {
            eprintln!(
                "note: lr_scheduler_type = \"{}\" has no warm-up (as in transformers); the {} warm-up \
                 steps asked for are ignored",
                cfg.lr_scheduler_type.name(),
                schedule.warmup_steps
            );
        }
        // A resumed run goes on at its plateau's rate; a run resumed with another schedule drops it.
        if !cfg.lr_scheduler_type.follows_evaluations() {
            state.plateau = None;
        } else if state.plateau.is_none() {
            state.plateau = Some(Plateau::start(&schedule));
        }
        if cfg.full_determinism {
            // The binaries set it before anything runs on the device; here for the library's callers.
            crate::determinism::set_full_determinism(true)?;
        }
        task.set_gradient_checkpointing(cfg.gradient_checkpointing)?;
        let loss_scale = (cfg.precision == Precision::Fp16).then(|| match state.loss_scale {
            Some(saved) => LossScale::from_saved(saved, device),
            None => LossScale::new(device),
        });
        let graphs = graphs_for(cfg, device, group.is_some(), main);
        if graphs.is_some() {
            task.use_static_shapes();
        }
        Ok(Self {
            history: if main {
                Some(History::open(&run_dir.join("train_log.jsonl"), state.step)?)
            } else {
                None
            },
            tb: main.then(|| Tensorboard::new(&run_dir.join("tb"))),
            bar: if main {
                progress_bar(total_steps, state.step, "steps")
            } else {
                ProgressBar::hidden()
            },
            data: DataOrder::new(
                cfg.data_seed.unwrap_or(cfg.seed),
                cfg.per_device_train_batch_size,
                sampling,
                cfg.group_by_length,
            )
            .dropping_last(cfg.dataloader_drop_last),
            schedule,
            task,
            cfg,
            device,
            run_dir,
            group,
            rank: rank as u64,
            world: world as u64,
            total_steps,
            cadences,
            micro_batches_per_step,
            batches_per_epoch,
            optimizer,
            state,
            window: LogWindow::default(),
            pending: Vec::new(),
            last_eval: BTreeMap::new(),
            checkpoint_seconds: 0.0,
            writer: BackgroundWriter::default(),
            tokens_trained: 0,
            step_input_tokens: 0,
            eval_seconds: 0.0,
            graphs,
            loss_scale,
        })
    }

    fn run(mut self) -> Result<TrainOutcome> {
        let cfg = self.cfg;
        let started = Instant::now();
        if cfg.eval_on_start && self.state.step == 0 && self.rank == 0 {
            self.measure()?;
        }
        let mut interrupted = false;
        let first_step = self.state.step;
        while self.state.step < self.total_steps && !self.state.stopped_early {
            let lr = match &self.state.plateau {
                Some(plateau) => plateau.learning_rate,
                None => self.schedule.learning_rate_at(self.state.step),
            };
            self.step(lr)?;
            let step = self.state.step;
            let at_end = step == self.total_steps;
            let logging =
                self.cadences.log.due(step) || (cfg.logging_first_step && step == 1) || at_end;
            let evaluating = self.cadences.evaluates(step) || at_end;
            let mut saving = self.cadences.save.due(step) || at_end;
            let overdue = self.pending.len() >= cfg.max_nonfinite_steps_in_a_row.max(1) as usize;
            let sync = logging || evaluating || saving || overdue;
            if sync {
                self.record_pending()?;
            }
            if logging {
                self.log(lr);
            }
            self.bar.set_position(step);
            if evaluating && self.rank == 0 {
                self.evaluate()?;
            }
            if evaluating {
                self.share_plateau_rate()?;
                if cfg.save_strategy == SaveStrategy::Best {
                    saving |= self.evaluation_was_best()?;
                }
            }
            if saving {
                self.save()?;
            }
            if evaluating && cfg.early_stopping_patience > 0 && self.stop_early()? {
                break;
            }
            if !at_end && self.stop_asked(sync)? {
                if !sync {
                    self.record_pending()?;
                }
                if !saving || cfg.save_only_model {
                    // A checkpoint to go on from, whatever save_only_model says.
                    self.save_with_optimizer(true)?;
                }
                if self.rank == 0 {
                    self.bar.println(format!(
                        "step {step}: stopping as asked (a signal); checkpoint {} written, \
                         --resume goes on from it",
                        checkpoint::dir_for(self.run_dir, step).display()
                    ));
                }
                interrupted = true;
                break;
            }
        }
        self.bar.finish_and_clear();
        if self.state.step == first_step && !cfg.load_best_model_at_end && self.rank == 0 {
            // Resumed at the end (a finished or early-stopped run): nothing to train, but the final
            // model is written again, and its evaluation with it, not an empty one. The history has
            // that evaluation already.
            eprintln!(
                "nothing left to train at step {} of {}; evaluating the model as it is",
                self.state.step, self.total_steps
            );
            let _autocast = AutocastGuard::for_precision(cfg.precision, self.device)?;
            self.last_eval = tch::no_grad(|| self.task.evaluate())?;
        }
        if let Some(tb) = &mut self.tb {
            tb.flush();
        }
        settle(self.device);
        let waited = Instant::now();
        self.finish_checkpoint()?;
        self.checkpoint_seconds += waited.elapsed().as_secs_f64();
        let final_from_best = if cfg.load_best_model_at_end && self.rank == 0 && !interrupted {
            self.load_best()?
        } else {
            None
        };
        Ok(TrainOutcome {
            final_from_best,
            stopped_early: self.state.stopped_early,
            interrupted,
            train_loss: self.window.run_mean_loss(),
            epoch: self.epoch_at(self.state.step),
            steps_this_run: self.state.step - first_step,
            train_seconds: started.elapsed().as_secs_f64(),
            // The ranks' batches are alike in size, as for the logged rate.
            train_tokens: self.tokens_trained * self.world,
            num_input_tokens_seen: (self.cfg.include_num_input_tokens_seen != TokensSeen::No)
                .then_some(self.state.num_input_tokens_seen),
            steps: self.state.step,
            best_checkpoint: self
                .state
                .best_checkpoint
                .as_ref()
                .map(|b| checkpoint::dir_for(self.run_dir, b.step)),
            skipped_nonfinite_steps: self.state.skipped_nonfinite_steps,
            last_eval: self.last_eval,
            checkpoint_seconds: self.checkpoint_seconds,
            eval_seconds: self.eval_seconds,
        })
    }

    /// One optimizer step at learning rate `lr`: forward and backward of every micro-batch, clipping,
    /// AdamW — eagerly, or by a captured CUDA graph. Its losses and gradient norm stay on the device,
    /// in `pending`.
    fn step(&mut self, lr: f64) -> Result<()> {
        let numbers = match self.graphs.take() {
            Some(mut graphs) => {
                let numbers = self.graph_step(&mut graphs, lr);
                self.graphs = Some(graphs);
                numbers?
            }
            None => self.eager_step(lr, None)?,
        };
        let input_tokens = self.take_step_input_tokens()?;
        self.state.step += 1;
        self.pending.push(PendingStep {
            step: self.state.step,
            lr,
            numbers,
            input_tokens,
        });
        Ok(())
    }

    /// The input tokens of the step just taken, over every rank (`include_num_input_tokens_seen`): with
    /// a group, a device sum read with the step's other numbers, so the host does not wait for it.
    fn take_step_input_tokens(&mut self) -> Result<Option<InputTokens>> {
        let mine = std::mem::take(&mut self.step_input_tokens);
        if self.cfg.include_num_input_tokens_seen == TokensSeen::No {
            return Ok(None);
        }
        let Some(group) = self.group else {
            return Ok(Some(InputTokens::Counted(mine)));
        };
        let sum = crate::device::upload(&Tensor::from_slice(&[mine as i64]), self.device);
        group.all_reduce(&sum, ReduceOp::Sum)?;
        Ok(Some(InputTokens::Summing(sum)))
    }

    /// The step run op by op; `first` is its first micro-batch when already drawn.
    fn eager_step(&mut self, lr: f64, first: Option<T::Batch>) -> Result<Tensor> {
        let accum = self.cfg.gradient_accumulation_steps as u64;
        let micro_batches = accum * self.world;
        self.optimizer.zero_grad();
        let mut first = first;
        let mut losses = Vec::with_capacity(accum as usize);
        // A loss over tokens, in a step of several micro-batches: the items of each (`Task::loss_items`).
        let mut items: Option<StepItems> = None;
        for micro in 0..accum {
            let batch = match first.take() {
                Some(batch) => batch,
                None => self.micro_batch(micro)?,
            };
            let n = self.task.loss_items(&batch).filter(|_| micro_batches > 1);
            if n == Some(0) {
                // Its loss is a mean over nothing (not a number); the task must not make such batches.
                bail!(
                    "step {}: micro-batch {micro} has no items to take its loss over",
                    self.state.step + 1
                );
            }
            match (micro, n, items.as_mut()) {
                (0, Some(n), _) => items = Some(StepItems { counts: vec![n] }),
                (_, Some(n), Some(items)) => items.counts.push(n),
                (_, None, None) => {}
                _ => bail!("the task reported the items of its loss for some batches only"),
            }
            let weight = n.zip(items.as_ref()).map(|(n, i)| n as f64 / i.unit());
            losses.push(self.forward_backward(&batch, weight, micro_batches)?);
        }
        self.update(Tensor::stack(&losses, 0), items.as_ref(), Rate::Value(lr))
    }

    /// The step as a CUDA graph where one applies (one process, one micro-batch per step).
    fn graph_step(&mut self, graphs: &mut StepGraphs<T::Batch>, lr: f64) -> Result<Tensor> {
        // The seed an eager step draws its one micro-batch with.
        let seed = micro_batch_seed(self.cfg.seed, self.micro_index(0)) as i64;
        let batch = self.micro_batch(0)?;
        match graphs.plan(self.task.graph_inputs(&batch)) {
            Plan::Eager => self.eager_step(lr, Some(batch)),
            Plan::Replay(index, inputs) => {
                let task = &*self.task;
                graphs.replay(index, &inputs, |b| task.graph_inputs(b), lr, seed)
            }
            Plan::Capture(key) => {
                let shapes = format!("{key:?}");
                // Frees the eager steps' gradients before the allocator's cache is emptied.
                self.optimizer.zero_grad();
                let captured = graphs.capture(key, batch, lr, seed, |batch, lr| {
                    self.optimizer.zero_grad();
                    let loss = self.forward_backward(batch, None, 1)?;
                    self.update(loss.reshape([1]), None, Rate::Tensor(lr))
                })?;
                match captured {
                    Ok(numbers) => {
                        if self.rank == 0 {
                            self.bar.println(format!(
                                "step {}: training step captured as CUDA graph {} (inputs {shapes})",
                                self.state.step + 1,
                                graphs.graphs(),
                            ));
                        }
                        Ok(numbers)
                    }
                    Err((e, batch)) => {
                        self.bar.println(format!(
                            "warning: the training step could not be captured as a CUDA graph; \
                             training goes on eagerly: {e:#}"
                        ));
                        tch::manual_seed(seed);
                        self.eager_step(lr, Some(batch))
                    }
                }
            }
        }
    }

    /// Draws micro-batch `micro` of this step, with torch's generators seeded by its index (so masks and
    /// dropout are the single process's), and counts its tokens.
    fn micro_batch(&mut self, micro: u64) -> Result<T::Batch> {
        let index = self.micro_index(micro);
        tch::manual_seed(micro_batch_seed(self.cfg.seed, index) as i64);
        let batch = self.task.batch(&self.data.micro_batch(index))?;
        let tokens = self.task.tokens(&batch) as u64;
        self.window.tokens += tokens;
        self.tokens_trained += tokens;
        self.step_input_tokens += match self.cfg.include_num_input_tokens_seen {
            TokensSeen::No => 0,
            TokensSeen::NonPadding => tokens,
            TokensSeen::All => self.task.padded_tokens(&batch) as u64,
        };
        Ok(batch)
    }

    /// The index in the one data order of this rank's micro-batch `micro` of the current step.
    fn micro_index(&self, micro: u64) -> u64 {
        let accum = self.cfg.gradient_accumulation_steps as u64;
        (self.state.step * accum + micro) * self.world + self.rank
    }

    /// Forward and backward of one micro-batch, its loss (times `weight`, its items in the step's unit,
    /// when the step weighs micro-batches by them) divided by the step's micro-batch count; returns the
    /// loss, detached.
    fn forward_backward(
        &self,
        batch: &T::Batch,
        weight: Option<f64>,
        micro_batches: u64,
    ) -> Result<Tensor> {
        let loss = {
            let _autocast = AutocastGuard::for_precision(self.cfg.precision, self.device)?;
            self.task.loss(batch, true).to_kind(Kind::Float)
        };
        let differentiated = match &self.loss_scale {
            Some(scale) => scale.scale(&loss),
            None => loss.shallow_clone(),
        };
        // Times the items: the sum over them (in `StepItems::unit`s). `update` divides the step's
        // gradient by all its items once they are known, which the micro-batches drawn one by one do not
        // tell before the last.
        let differentiated = match weight {
            Some(w) => differentiated * w,
            None => differentiated,
        };
        (&differentiated / micro_batches as f64).backward();
        Ok(loss.detach())
    }

    /// The step's update after its backward passes: gradients summed over the ranks (and divided by
    /// the step's loss items, when it has them), clipping, AdamW (skipped on the device when anything
    /// is non-finite). Returns `[losses…, items…, gradient norm]`, the items 1 each for a loss that is
    /// a mean over examples.
    fn update(&mut self, losses: Tensor, items: Option<&StepItems>, lr: Rate) -> Result<Tensor> {
        let cfg = self.cfg;
        let (accum, micro_batches) = (
            cfg.gradient_accumulation_steps as u64,
            cfg.gradient_accumulation_steps as u64 * self.world,
        );
        let device = losses.device();
        let mut losses = losses;
        let mut counts = match items {
            Some(items) => {
                let counts: Vec<f32> = items.counts.iter().map(|&n| n as f32).collect();
                crate::device::upload(&Tensor::from_slice(&counts), device)
            }
            None => Tensor::ones([losses.size()[0]], (Kind::Float, device)),
        };
        // The gradients hold the sum over the items in this process's unit, over `micro_batches`
        // (`forward_backward`).
        let unit = items.map_or(1.0, StepItems::unit);
        let per_process = items.is_some() && !cfg.average_tokens_across_devices && self.world > 1;
        if per_process {
            // This process's mean over its items; the sum over processes below then averages them.
            let factor = (counts.sum(Kind::Double).reciprocal() * (accum as f64 * unit))
                .to_kind(Kind::Float);
            scale_gradients(&self.optimizer.present_gradients(), &factor)?;
        } else if self.group.is_some() && unit != 1.0 {
            // The ranks' units differ: back to plain sums before they are added (exactly: a power of 2).
            let unit = Tensor::from(unit as f32).to_device(device);
            scale_gradients(&self.optimizer.present_gradients(), &unit)?;
        }
        if let Some(group) = self.group {
            group.sum_gradients(&self.optimizer.gradients()?)?;
            // Every rank gets every micro-batch's loss and items in the single process's order (slot
            // m·W + r; the sum adds only exact zeros to each), so the step's loss is computed as there,
            // and is non-finite on every rank if it is on one: all ranks make the same skip decision
            // (the gradients, and so their norm, are already the same).
            let all = Tensor::zeros([2, micro_batches as i64], (Kind::Float, device));
            all.view([2, accum as i64, self.world as i64])
                .select(2, self.rank as i64)
                .copy_(&Tensor::stack(&[losses, counts], 0));
            group.all_reduce(&all, ReduceOp::Sum)?;
            (losses, counts) = (all.get(0), all.get(1));
        }
        if items.is_some() && !per_process {
            // The mean over the step's items, on every process (one process: from its unit).
            let unit = if self.group.is_some() { 1.0 } else { unit };
            let factor = (counts.sum(Kind::Double).reciprocal() * (micro_batches as f64 * unit))
                .to_kind(Kind::Float);
            scale_gradients(&self.optimizer.present_gradients(), &factor)?;
        }
        if let Some(scale) = &self.loss_scale {
            scale.unscale(&self.optimizer.present_gradients())?;
        }
        // As transformers: 0 (or less) turns clipping off. The norm is still taken: the step is
        // skipped when it is not finite. An infinite bound scales by exactly 1.
        let max_norm = if cfg.max_grad_norm > 0.0 {
            cfg.max_grad_norm
        } else {
            f64::INFINITY
        };
        let grad_norm = self
            .optimizer
            .clip_grad_norm(max_norm)
            .to_kind(Kind::Float)
            .to_device(losses.device());
        // Decided on the device: reading the loss and the norm here would make the host wait for every
        // step. A non-finite step consumes its data and moves the schedule on, as a skipped fp16 step
        // does in transformers; `record_steps` counts it when the numbers are read.
        let found_inf = losses
            .isfinite()
            .all()
            .logical_and(&grad_norm.isfinite())
            .logical_not()
            .to_kind(Kind::Float);
        match lr {
            Rate::Value(lr) => self.optimizer.step(lr, Some(&found_inf))?,
            Rate::Tensor(lr) => self.optimizer.step_at(lr, Some(&found_inf))?,
        }
        if let Some(scale) = &mut self.loss_scale {
            scale.update(&found_inf);
        }
        Ok(Tensor::cat(&[losses, counts, grad_norm.reshape([1])], 0))
    }

    /// Reads the pending steps' numbers and records them (`record_steps`).
    fn record_pending(&mut self) -> Result<()> {
        record_steps(
            &mut self.pending,
            &mut self.state,
            self.cfg,
            (self.micro_batches_per_step, self.batches_per_epoch),
            self.history.as_mut(),
            &mut self.window,
        )
    }

    /// Epochs done after `step` steps.
    fn epoch_at(&self, step: u64) -> f64 {
        cadence::epoch_at(step, self.micro_batches_per_step, self.batches_per_epoch)
    }

    fn log(&mut self, lr: f64) {
        let step = self.state.step;
        let epoch = self.epoch_at(step);
        let (loss, norm, tokens_per_sec) = self.window.take();
        let Some(tb) = &mut self.tb else { return };
        tb.scalar("epoch", epoch, step);
        // Tokens of this rank times the ranks: the run's rate, as the ranks' batches are alike.
        let tokens_per_sec = tokens_per_sec * self.world as f64;
        tb.scalar("train/loss", loss, step);
        tb.scalar("lr", lr, step);
        tb.scalar("grad_norm", norm, step);
        tb.scalar("tokens_per_sec", tokens_per_sec, step);
        if self.cfg.include_num_input_tokens_seen != TokensSeen::No {
            let seen = self.state.num_input_tokens_seen as f64;
            tb.scalar("num_input_tokens_seen", seen, step);
        }
        tb.flush();
        self.bar.set_message(format!(
            "loss {loss:.4} lr {lr:.2e} {tokens_per_sec:.0} tok/s"
        ));
    }

    /// Held-out metrics of the model as it is, recorded in TensorBoard, the history (with the
    /// epoch) and on the terminal.
    fn measure(&mut self) -> Result<()> {
        settle(self.device);
        let started = Instant::now();
        let step = self.state.step;
        self.last_eval = {
            let _autocast = AutocastGuard::for_precision(self.cfg.precision, self.device)?;
            tch::no_grad(|| self.task.evaluate())?
        };
        if let Some(tb) = &mut self.tb {
            for (k, v) in &self.last_eval {
                tb.scalar(k, *v, step);
            }
            tb.flush();
        }
        let epoch = self.epoch_at(step);
        if let Some(history) = &mut self.history {
            let mut values = self.last_eval.clone();
            values.insert("epoch".to_owned(), epoch);
            history.append(&LogRecord { step, values })?;
        }
        self.bar
            .println(format!("step {step}: {}", format_metrics(&self.last_eval)));
        self.eval_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// An evaluation during the run: measured, then the best step so far by `metric_for_best_model`,
    /// the plateau's rate and early stopping's count follow it.
    fn evaluate(&mut self) -> Result<()> {
        self.measure()?;
        let step = self.state.step;
        // Early stopping is only allowed with load_best_model_at_end (`TrainConfig::validate`).
        let metric = self.last_eval.get(&self.cfg.metric_for_best_model).copied();
        if let Some(plateau) = &mut self.state.plateau {
            let Some(value) = metric else {
                bail!(
                    "metric_for_best_model = {:?} is not among the evaluation's metrics ({}); \
                     reduce_lr_on_plateau follows it",
                    self.cfg.metric_for_best_model,
                    self.last_eval
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let before = plateau.learning_rate;
            plateau.observe(&self.schedule, value, self.cfg.greater_is_better);
            if plateau.learning_rate != before {
                self.bar.println(format!(
                    "step {step}: reduce_lr_on_plateau: learning rate {before:e} -> {:e}",
                    plateau.learning_rate
                ));
            }
        }
        match metric {
            Some(value) => self.track_best(step, value),
            None if self.cfg.load_best_model_at_end
                || self.cfg.save_strategy == SaveStrategy::Best =>
            {
                bail!(
                    "metric_for_best_model = {:?} is not among the evaluation's metrics ({}); \
                 load_best_model_at_end, early stopping and save_strategy = \"best\" need it",
                    self.cfg.metric_for_best_model,
                    self.last_eval
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            None => {}
        }
        Ok(())
    }

    /// The best evaluation so far, and early stopping's count of evaluations without an improvement:
    /// tested against the best before this one, as `transformers`' `EarlyStoppingCallback` (which runs
    /// before the Trainer records a new best). A NaN never counts as better.
    fn track_best(&mut self, step: u64, value: f64) {
        let cfg = self.cfg;
        let better = |a: f64, b: f64| {
            if cfg.greater_is_better {
                a > b
            } else {
                a < b
            }
        };
        let state = &mut self.state;
        let improved = !value.is_nan()
            && state.best_metric.is_none_or(|best| {
                better(value, best) && (value - best).abs() > cfg.early_stopping_threshold
            });
        state.evals_without_improvement = if improved {
            0
        } else {
            state.evals_without_improvement + 1
        };
        if !value.is_nan() && state.best_metric.is_none_or(|best| better(value, best)) {
            state.best_metric = Some(value);
            state.best_step = Some(step);
        }
        if cfg.early_stopping_patience > 0
            && state.evals_without_improvement >= cfg.early_stopping_patience
        {
            state.stopped_early = true;
        }
    }

    /// `reduce_lr_on_plateau` in a data-parallel run: rank 0 evaluated and moved the rate; every rank
    /// takes it.
    fn share_plateau_rate(&mut self) -> Result<()> {
        let (Some(group), Some(plateau)) = (self.group, &mut self.state.plateau) else {
            return Ok(());
        };
        let rate = Tensor::from(plateau.learning_rate).to_device(self.device);
        group.broadcast(&rate, 0)?;
        plateau.learning_rate = rate.double_value(&[]);
        Ok(())
    }

    /// Whether a stop was asked for (`stop`). With a group, the ranks decide together at steps where
    /// the loop reads its numbers anyway (at least every `max_nonfinite_steps_in_a_row` steps), so
    /// that all stop at the same step without a wait on every step; one process looks at every step.
    fn stop_asked(&self, sync: bool) -> Result<bool> {
        match self.group {
            None => Ok(super::stop::requested()),
            Some(group) if sync => Ok(!group.all_ok(!super::stop::requested())?),
            Some(_) => Ok(false),
        }
    }

    /// Whether this step's evaluation set a new best (`save_strategy = "best"`): rank 0 evaluated;
    /// with a group every rank learns it, so that all take part in the checkpoint.
    fn evaluation_was_best(&self) -> Result<bool> {
        let best = self.rank == 0 && self.state.best_step == Some(self.state.step);
        match self.group {
            Some(group) => Ok(!group.all_ok(!best)?),
            None => Ok(best),
        }
    }

    /// Whether early stopping ends the run after this evaluation: rank 0 evaluated and decided; with
    /// a group every rank learns it here, so that all stop at the same step.
    fn stop_early(&mut self) -> Result<bool> {
        if let Some(group) = self.group {
            if !group.all_ok(!self.state.stopped_early)? {
                self.state.stopped_early = true;
            }
        }
        if self.state.stopped_early && self.rank == 0 {
            self.bar.println(format!(
                "step {}: early stopping: {} evaluations in a row did not improve {} on {} \
                 (early_stopping_threshold {})",
                self.state.step,
                self.state.evals_without_improvement,
                self.cfg.metric_for_best_model,
                self.state.best_metric.unwrap_or(f64::NAN),
                self.cfg.early_stopping_threshold
            ));
        }
        Ok(self.state.stopped_early)
    }

    /// `load_best_model_at_end`: the best checkpoint's model into the task (nothing to load when it is
    /// the last step's), its evaluation as the run's. Returns its step.
    fn load_best(&mut self) -> Result<Option<u64>> {
        let Some(best) = self.state.best_checkpoint.clone() else {
            return Ok(None);
        };
        if best.step != self.state.step {
            let dir = checkpoint::dir_for(self.run_dir, best.step);
            self.task
                .load_model(&dir)
                .with_context(|| format!("cannot load the best checkpoint {}", dir.display()))?;
        }
        self.last_eval = best.metrics;
        Ok(Some(best.step))
    }

    /// Rank 0 captures the checkpoint (weights and moments copied to the host) and writes it — on the
    /// background writer with `async_checkpoints`, which first finishes the previous write. With a
    /// group, every rank then learns whether rank 0's write succeeded (a run stopped after this step
    /// can resume from it): at once for a write in the foreground, at the next checkpoint or at the
    /// end for one in the background, so that all ranks make the same collective calls in order.
    fn save(&mut self) -> Result<()> {
        self.save_with_optimizer(!self.cfg.save_only_model)
    }

    /// As [`Self::save`], with the optimizer's state or without.
    fn save_with_optimizer(&mut self, with_optimizer: bool) -> Result<()> {
        settle(self.device);
        let started = Instant::now();
        self.finish_checkpoint()?;
        // This step's evaluation was the best so far: its checkpoint is the best one.
        if self.rank == 0 && self.state.best_step == Some(self.state.step) {
            self.state.best_checkpoint = Some(BestCheckpoint {
                step: self.state.step,
                metrics: self.last_eval.clone(),
            });
        }
        self.state.loss_scale = self.loss_scale.as_ref().map(LossScale::saved);
        let saved = if self.rank == 0 {
            let optimizer = with_optimizer.then_some(&self.optimizer);
            match checkpoint::capture(&*self.task, optimizer, &self.state) {
                Ok(captured) if self.cfg.async_checkpoints => {
                    self.writer
                        .start(captured, self.run_dir, self.cfg.save_total_limit)
                }
                Ok(captured) => captured.write(self.run_dir, self.cfg.save_total_limit),
                Err(e) => Err(e),
            }
        } else {
            Ok(())
        };
        self.agree_on_checkpoint(saved)?;
        self.checkpoint_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Waits for rank 0's checkpoint write in flight; with a group every rank learns its outcome.
    fn finish_checkpoint(&mut self) -> Result<()> {
        if !self.cfg.async_checkpoints {
            return Ok(());
        }
        let written = if self.rank == 0 {
            self.writer.finish()
        } else {
            Ok(())
        };
        self.agree_on_checkpoint(written)
    }

    /// Rank 0's outcome of a checkpoint write, on every rank of a group.
    fn agree_on_checkpoint(&self, outcome: Result<()>) -> Result<()> {
        if let Some(group) = self.group {
            if !group.all_ok(outcome.is_ok())? && outcome.is_ok() {
                bail!(
                    "rank 0 could not write a checkpoint (at step {})",
                    self.state.step
                );
            }
        }
        outcome
    }
}

/// Every rank starts from rank 0's weights (a fresh head's random init included).
fn broadcast_weights<T: Task>(task: &T, group: &ProcessGroup) -> Result<()> {
    let mut variables: Vec<(String, Tensor)> = task.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors: Vec<Tensor> = variables.into_iter().map(|(_, t)| t).collect();
    group.broadcast_from_main(&tensors)
}

/// A checkpoint continues only with the same micro-batches per step (world size × accumulation): the
/// data position and every random draw follow from the micro-batch index. So 2 ranks × 4 may resume
/// as 4 ranks × 2 or 1 × 8, exactly; anything else is refused.
fn check_resumable(dir: &Path, state: &TrainState, cfg: &TrainConfig, world: usize) -> Result<()> {
    let now = cfg.micro_batches_per_step(world);
    let saved = state
        .micro_batches_per_step
        .unwrap_or(cfg.gradient_accumulation_steps as u64);
    if let Some(saved) = state.data_order {
        let now = cfg.data_order();
        let changed: Vec<String> = [
            (
                "per_device_train_batch_size",
                saved.per_device_train_batch_size.to_string(),
                now.per_device_train_batch_size.to_string(),
            ),
            (
                "data_seed (or seed)",
                saved.data_seed.to_string(),
                now.data_seed.to_string(),
            ),
            (
                "dataloader_drop_last",
                saved.dataloader_drop_last.to_string(),
                now.dataloader_drop_last.to_string(),
            ),
            (
                "group_by_length",
                saved.group_by_length.to_string(),
                now.group_by_length.to_string(),
            ),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| format!("{name} was {a}, now {b}"))
        .collect();
        if !changed.is_empty() {
            bail!(
                "{}: the data order would change ({}); resume with the checkpoint's settings",
                dir.display(),
                changed.join("; ")
            );
        }
    }
    if saved != now {
        bail!(
            "{}: trained with {saved} micro-batches per step ({} process(es) × accumulation), but this \
             run has {now} ({world} × {}); set train.gradient_accumulation_steps so that processes × \
             accumulation = {saved} to resume exactly",
            dir.display(),
            state.world_size.unwrap_or(1),
            cfg.gradient_accumulation_steps
        );
    }
    Ok(())
}

/// The loss items of a process's micro-batches in a step (`Task::loss_items`), in order.
struct StepItems {
    counts: Vec<usize>,
}

impl StepItems {
    /// The power of 2 at or below the first micro-batch's count: each micro-batch's loss is multiplied
    /// by its items in this unit, which keeps the gradient near a mean's size (fp16's loss scale was
    /// chosen for means: a plain sum over ~1,000 masked tokens overflows it) and, being a power of 2,
    /// changes no bit of the result when `update` scales it back.
    fn unit(&self) -> f64 {
        (1u64 << self.counts[0].max(1).ilog2()) as f64
    }
}

/// A step whose losses (one per micro-batch) and gradient norm are still on the device.
struct PendingStep {
    step: u64,
    lr: f64,
    /// `[loss of each micro-batch…, its loss items…, gradient norm]`, fp32 (`Trainer::update`).
    numbers: Tensor,
    /// With `include_num_input_tokens_seen`: the step's input tokens over all ranks.
    input_tokens: Option<InputTokens>,
}

/// A step's input tokens: counted on the host (one process), or being summed over the ranks.
enum InputTokens {
    Counted(u64),
    Summing(Tensor),
}

/// Reads the pending steps' numbers in one transfer and does the host's part for each, in order:
/// the history record, the count of non-finite (skipped) steps, which stops a run of them, and the
/// logging window.
fn record_steps(
    pending: &mut Vec<PendingStep>,
    state: &mut TrainState,
    cfg: &TrainConfig,
    (micro_batches_per_step, batches_per_epoch): (u64, u64),
    mut history: Option<&mut History>,
    window: &mut LogWindow,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    // The losses of every micro-batch of the step (all ranks'), their items, then the gradient norm.
    let width = pending[0].numbers.size()[0] as usize;
    let micro_batches = (width - 1) / 2;
    let rows: Vec<Tensor> = pending.iter().map(|p| p.numbers.shallow_clone()).collect();
    let numbers = Vec::<f64>::try_from(
        Tensor::stack(&rows, 0)
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )?;
    for (p, row) in pending.drain(..).zip(numbers.chunks(width)) {
        let (losses, items, grad_norm) = (
            &row[..micro_batches],
            &row[micro_batches..2 * micro_batches],
            row[width - 1],
        );
        let epoch = cadence::epoch_at(p.step, micro_batches_per_step, batches_per_epoch);
        let mut values = BTreeMap::from([("lr".to_owned(), p.lr), ("epoch".to_owned(), epoch)]);
        if let Some(tokens) = p.input_tokens {
            state.num_input_tokens_seen += match tokens {
                InputTokens::Counted(n) => n,
                InputTokens::Summing(sum) => sum.int64_value(&[0]) as u64,
            };
            let seen = state.num_input_tokens_seen as f64;
            values.insert("num_input_tokens_seen".to_owned(), seen);
        }
        if losses.iter().all(|v| v.is_finite()) && grad_norm.is_finite() {
            let step_loss = step_loss(losses, items, processes_averaged(cfg, micro_batches));
            state.nonfinite_in_a_row = 0;
            values.insert("train/loss".to_owned(), step_loss);
            values.insert("grad_norm".to_owned(), grad_norm);
            window.add(step_loss, grad_norm);
        } else if cfg.precision == Precision::Fp16
            && losses.iter().all(|v| v.is_finite())
            && !grad_norm.is_finite()
        {
            // fp16's scaled gradients overflowed: GradScaler's normal course (the scale halves and the
            // step is skipped), not a sign of a broken run; not counted against the limit.
            state.skipped_overflow_steps += 1;
            if history.is_some() {
                eprintln!(
                    "note: step {}: fp16 gradients overflowed; update skipped, loss scale halved",
                    p.step
                );
            }
            values.insert("skipped_overflow".to_owned(), 1.0);
        } else {
            state.nonfinite_in_a_row += 1;
            state.skipped_nonfinite_steps += 1;
            if history.is_some() {
                eprintln!(
                    "warning: step {}: non-finite loss or gradient, update skipped",
                    p.step
                );
            }
            if state.nonfinite_in_a_row >= cfg.max_nonfinite_steps_in_a_row {
                bail!(
                    "{} steps in a row had a non-finite loss or gradient; stopping",
                    state.nonfinite_in_a_row
                );
            }
            values.insert("skipped_nonfinite".to_owned(), 1.0);
        }
        if let Some(history) = history.as_deref_mut() {
            history.append(&LogRecord {
                step: p.step,
                values,
            })?;
        }
    }
    Ok(())
}

/// How many processes' own means a step's loss averages: 1 when it is the mean over all its items.
fn processes_averaged(cfg: &TrainConfig, micro_batches: usize) -> usize {
    if cfg.average_tokens_across_devices {
        1
    } else {
        micro_batches / cfg.gradient_accumulation_steps
    }
}

/// A step's loss from its micro-batches' (slot `m·W + r` for micro-batch `m` of rank `r`): the mean
/// over their items, each weighted by its count; or, over `processes` > 1, the mean of each process's
/// mean (as its gradient is). Micro-batches of a loss over examples count 1 each: the plain mean.
fn step_loss(losses: &[f64], items: &[f64], processes: usize) -> f64 {
    (0..processes)
        .map(|r| {
            let (sum, count) = (r..losses.len())
                .step_by(processes)
                .fold((0.0, 0.0), |(s, c), i| {
                    (s + losses[i] * items[i], c + items[i])
                });
            sum / count
        })
        .sum::<f64>()
        / processes as f64
}

pub fn format_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Averages between two logging points, and the token rate; and the loss of all steps of this run.
struct LogWindow {
    loss: f64,
    norm: f64,
    steps: u64,
    tokens: u64,
    since: Instant,
    /// Every finite step of this run (not reset at logging points): `train_loss`.
    run_loss: f64,
    run_steps: u64,
}

impl Default for LogWindow {
    fn default() -> Self {
        Self {
            loss: 0.0,
            norm: 0.0,
            steps: 0,
            tokens: 0,
            since: Instant::now(),
            run_loss: 0.0,
            run_steps: 0,
        }
    }
}

impl LogWindow {
    fn add(&mut self, loss: f64, norm: f64) {
        if loss.is_finite() && norm.is_finite() {
            self.loss += loss;
            self.norm += norm;
            self.steps += 1;
            self.run_loss += loss;
            self.run_steps += 1;
        }
    }

    fn take(&mut self) -> (f64, f64, f64) {
        let n = self.steps.max(1) as f64;
        let rate = self.tokens as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
        let out = (self.loss / n, self.norm / n, rate);
        *self = Self {
            run_loss: self.run_loss,
            run_steps: self.run_steps,
            ..Self::default()
        };
        out
    }

    /// The mean loss of this run's finite steps.
    fn run_mean_loss(&self) -> Option<f64> {
        (self.run_steps > 0).then(|| self.run_loss / self.run_steps as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_steps_follow_epochs_and_accumulation() {
        let cfg = TrainConfig {
            per_device_train_batch_size: 4,
            gradient_accumulation_steps: 2,
            num_train_epochs: 2.0,
            ..Default::default()
        };
        assert_eq!(cfg.total_steps(10), 3); // 3 micro-batches an epoch, 6 in all, 2 per step
        assert_eq!(
            TrainConfig {
                max_steps: Some(17),
                ..cfg.clone()
            }
            .total_steps(10),
            17
        );
        let s = TrainConfig {
            warmup_ratio: 0.1,
            ..cfg
        }
        .schedule(95)
        .unwrap();
        assert_eq!(s.warmup_steps, 10);
    }

    #[test]
    fn strategies_are_checked_before_the_run() {
        let refused = |keys: &str, says: &str| {
            let cfg: TrainConfig = toml::from_str(keys).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(says), "{keys:?}: {err}");
        };
        refused("eval_steps = 2.5", "eval_steps must be a whole number");
        refused("logging_steps = -1", "logging_steps must be a number");
        refused(
            "load_best_model_at_end = true\neval_strategy = \"epoch\"\nsave_steps = 10",
            "the same eval_strategy and save_strategy",
        );
        refused(
            "load_best_model_at_end = true\neval_steps = 0.1\nsave_steps = 20",
            "both whole numbers or both fractions",
        );
        refused(
            "load_best_model_at_end = true\neval_strategy = \"no\"\nsave_strategy = \"no\"",
            "evaluations and checkpoints during training",
        );
        refused(
            "save_strategy = \"best\"\neval_strategy = \"no\"",
            "save_strategy = \"best\" saves after evaluations",
        );
        refused(
            "lr_scheduler_type = \"reduce_lr_on_plateau\"\neval_strategy = \"no\"\neval_steps = 5",
            "eval_strategy = \"epoch\"",
        );
        let cfg: TrainConfig = toml::from_str(
            "load_best_model_at_end = true\nsave_strategy = \"best\"\neval_strategy = \"epoch\"",
        )
        .unwrap();
        cfg.validate().unwrap();
        // A "steps" setting is not read under another strategy, as in transformers.
        let cfg: TrainConfig =
            toml::from_str("eval_strategy = \"epoch\"\neval_steps = 2.5").unwrap();
        cfg.validate().unwrap();
        // Fractions that are multiples may still round to steps that are not.
        let cfg: TrainConfig =
            toml::from_str("load_best_model_at_end = true\neval_steps = 0.1\nsave_steps = 0.2")
                .unwrap();
        cfg.validate().unwrap();
        assert!(cfg.cadences(100, 1, 800).is_ok());
        let err = cfg.cadences(25, 1, 200).unwrap_err().to_string();
        assert!(err.contains("every 3 steps"), "{err}");
    }
}
