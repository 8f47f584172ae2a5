//! One optimizer step: its micro-batches drawn and seeded, forward and backward, the gradients summed
//! over the ranks and scaled to the step's mean, clipping and AdamW; eagerly or as a CUDA graph.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::records::{InputTokens, PendingStep};
use super::{micro_batch_seed, Rate, Task, Trainer};
use crate::autocast::AutocastGuard;
use crate::dist::ReduceOp;
use crate::train::graphs::{Plan, StepGraphs};
use crate::train::optim::scale_gradients;
use crate::train::tokens_seen::TokensSeen;

impl<T: Task> Trainer<'_, T> {
    /// One optimizer step at learning rate `lr`: forward and backward of every micro-batch, clipping,
    /// AdamW — eagerly, or by a captured CUDA graph. Its losses and gradient norm stay on the device,
    /// in `pending`.
    pub(super) fn step(&mut self, lr: f64) -> Result<()> {
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
