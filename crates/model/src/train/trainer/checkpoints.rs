//! Checkpoints during a run: rank 0 captures and writes them (in the background with
//! `async_checkpoints`), and with a group every rank learns whether the write succeeded.

use std::time::Instant;

use anyhow::{bail, Result};

use super::{settle, Task, Trainer};
use crate::train::checkpoint::{self, BestCheckpoint};
use crate::train::loss_scale::LossScale;

impl<T: Task> Trainer<'_, T> {
    /// Rank 0 captures the checkpoint (weights and moments copied to the host) and writes it — on the
    /// background writer with `async_checkpoints`, which first finishes the previous write. With a
    /// group, every rank then learns whether rank 0's write succeeded (a run stopped after this step
    /// can resume from it): at once for a write in the foreground, at the next checkpoint or at the
    /// end for one in the background, so that all ranks make the same collective calls in order.
    pub(super) fn save(&mut self) -> Result<()> {
        self.save_with_optimizer(!self.cfg.save_only_model)
    }

    /// As [`Self::save`], with the optimizer's state or without.
    pub(super) fn save_with_optimizer(&mut self, with_optimizer: bool) -> Result<()> {
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
    pub(super) fn finish_checkpoint(&mut self) -> Result<()> {
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
