//! What the loop records of its steps: their numbers, read from the device in one transfer when
//! the loop syncs (`PendingStep`, `record_steps`), the history and TensorBoard, and the averages
//! between logging points (`LogWindow`).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{Task, Trainer};
use crate::autocast::Precision;
use crate::train::cadence;
use crate::train::checkpoint::TrainState;
use crate::train::config::TrainConfig;
use crate::train::log::{History, LogRecord};
use crate::train::tokens_seen::TokensSeen;

impl<T: Task> Trainer<'_, T> {
    /// Reads the pending steps' numbers and records them (`record_steps`).
    pub(super) fn record_pending(&mut self) -> Result<()> {
        record_steps(
            &mut self.pending,
            &mut self.state,
            self.cfg,
            (self.micro_batches_per_step, self.batches_per_epoch),
            self.history.as_mut(),
            &mut self.window,
        )
    }

    pub(super) fn log(&mut self, lr: f64) {
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
}

/// A step whose losses (one per micro-batch) and gradient norm are still on the device.
pub(super) struct PendingStep {
    pub(super) step: u64,
    pub(super) lr: f64,
    /// `[loss of each micro-batch…, its loss items…, gradient norm]`, fp32 (`Trainer::update`).
    pub(super) numbers: Tensor,
    /// With `include_num_input_tokens_seen`: the step's input tokens over all ranks.
    pub(super) input_tokens: Option<InputTokens>,
}

/// A step's input tokens: counted on the host (one process), or being summed over the ranks.
pub(super) enum InputTokens {
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
pub(super) struct LogWindow {
    loss: f64,
    norm: f64,
    steps: u64,
    pub(super) tokens: u64,
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
    pub(super) fn run_mean_loss(&self) -> Option<f64> {
        (self.run_steps > 0).then(|| self.run_loss / self.run_steps as f64)
    }
}
