//! The loop's settings (`TrainConfig`), with `transformers`' `TrainingArguments` names where one
//! exists: checked before a run, and resolved into its steps, cadences, schedule and optimizer.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::cadence::{self, Cadence, Cadences, IntervalStrategy, SaveStrategy};
use super::checkpoint::DataOrderKey;
use super::optim::AdamWConfig;
use super::sampling;
use super::schedule::{Schedule, ScheduleArgs, ScheduleKind};
use super::tokens_seen::TokensSeen;
use crate::autocast::Precision;

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

    pub(super) fn batches_per_epoch(&self, examples: usize) -> u64 {
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

    pub(super) fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_epsilon,
            weight_decay: self.weight_decay,
        }
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
