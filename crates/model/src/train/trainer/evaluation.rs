//! Evaluations during a run: the metrics recorded, the best so far by `metric_for_best_model`,
//! `reduce_lr_on_plateau`'s rate, early stopping, and `load_best_model_at_end`.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use tch::Tensor;

use super::{format_metrics, settle, Task, Trainer};
use crate::autocast::AutocastGuard;
use crate::train::cadence::SaveStrategy;
use crate::train::checkpoint;
use crate::train::log::LogRecord;

impl<T: Task> Trainer<'_, T> {
    /// Held-out metrics of the model as it is, recorded in TensorBoard, the history (with the
    /// epoch) and on the terminal.
    pub(super) fn measure(&mut self) -> Result<()> {
        settle(self.device);
        let started = Instant::now();
        let step = self.state.step;
        // The bar stands still while the held-out set goes through the model: it says why.
        let message = self.bar.message();
        self.bar.set_message(format!("evaluating at step {step}…"));
        let progress = self.eval_bar();
        self.last_eval = {
            let _autocast = AutocastGuard::for_precision(self.cfg.precision, self.device)?;
            tch::no_grad(|| self.task.evaluate(&progress))?
        };
        progress.finish_and_clear();
        self.bars.remove(&progress);
        self.bar.set_message(message);
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

    /// The bar an evaluation advances, beneath the steps' bar (hidden where the steps' bar is).
    pub(super) fn eval_bar(&self) -> ProgressBar {
        if self.bar.is_hidden() {
            ProgressBar::hidden()
        } else {
            self.bars
                .add(crate::train::log::progress_bar(0, 0, T::EVAL_UNIT))
        }
    }

    /// An evaluation during the run: measured, then the best step so far by `metric_for_best_model`,
    /// the plateau's rate and early stopping's count follow it.
    pub(super) fn evaluate(&mut self) -> Result<()> {
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
    pub(super) fn share_plateau_rate(&mut self) -> Result<()> {
        let (Some(group), Some(plateau)) = (self.group, &mut self.state.plateau) else {
            return Ok(());
        };
        let rate = Tensor::from(plateau.learning_rate).to_device(self.device);
        group.broadcast(&rate, 0)?;
        plateau.learning_rate = rate.double_value(&[]);
        Ok(())
    }

    /// Whether this step's evaluation set a new best (`save_strategy = "best"`): rank 0 evaluated;
    /// with a group every rank learns it, so that all take part in the checkpoint.
    pub(super) fn evaluation_was_best(&self) -> Result<bool> {
        let best = self.rank == 0 && self.state.best_step == Some(self.state.step);
        match self.group {
            Some(group) => Ok(!group.all_ok(!best)?),
            None => Ok(best),
        }
    }

    /// Whether early stopping ends the run after this evaluation: rank 0 evaluated and decided; with
    /// a group every rank learns it here, so that all stop at the same step.
    pub(super) fn stop_early(&mut self) -> Result<bool> {
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
    pub(super) fn load_best(&mut self) -> Result<Option<u64>> {
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
}
