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

mod checkpoints;
mod evaluation;
mod records;
mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use tch::Tensor;

use super::cadence::{self, Cadences, IntervalStrategy, SaveStrategy};
use super::checkpoint::{self, BackgroundWriter, TrainState};
use super::config::TrainConfig;
use super::freeze::trainable;
use super::graphs::StepGraphs;
use super::log::{progress_bar, History, Tensorboard};
use super::loss_scale::LossScale;
use super::optim::AdamW;
use super::sampling::{derive_seed, DataOrder};
use super::schedule::{Plateau, Schedule};
use super::tokens_seen::TokensSeen;
use crate::autocast::{AutocastGuard, Precision};
use crate::dist::ProcessGroup;
use records::{LogWindow, PendingStep};

pub use super::task::Task;
pub use records::format_metrics;

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
    /// The steps' bar, in `bars` so that an evaluation's bar can show beneath it.
    bar: ProgressBar,
    bars: MultiProgress,
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
        let bars = if main {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Ok(Self {
            history: if main {
                Some(History::open(&run_dir.join("train_log.jsonl"), state.step)?)
            } else {
                None
            },
            tb: main.then(|| Tensorboard::new(&run_dir.join("tb"))),
            bar: if main {
                bars.add(progress_bar(total_steps, state.step, "steps"))
            } else {
                ProgressBar::hidden()
            },
            bars,
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
            let progress = self.eval_bar();
            self.last_eval = tch::no_grad(|| self.task.evaluate(&progress))?;
            progress.finish_and_clear();
            self.bars.remove(&progress);
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

    /// Epochs done after `step` steps.
    fn epoch_at(&self, step: u64) -> f64 {
        cadence::epoch_at(step, self.micro_batches_per_step, self.batches_per_epoch)
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
