//! The training step as CUDA graphs (`train.cuda_graphs`): which batches replay a captured step, which
//! get one captured, which run eagerly.
//!
//! A batch shape's first steps run eagerly (they warm up cuBLAS, the allocator and the optimizer's
//! state), the next is captured and every later one with that shape replays the capture: its inputs
//! copied into the captured batch's tensors, the learning rate into a device scalar the fused AdamW
//! kernel reads, the generators seeded as an eager step is. A batch the task cannot give fixed shapes
//! (`Task::graph_inputs` is None), a shape past the first few, or everything after a failed capture
//! runs eagerly.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::cuda_graph::{self, CudaGraph};

/// Eager steps of a shape before its step is captured.
const WARMUP_STEPS: u32 = 2;
/// Shapes that get a graph; further shapes run eagerly (each graph pins its inputs and outputs).
const MAX_GRAPHS: usize = 8;

/// The shapes of a batch's graph inputs.
type Key = Vec<Vec<i64>>;

/// What the step does with a batch.
pub(super) enum Plan {
    /// Replay graph `index` with these inputs.
    Replay(usize, Vec<Tensor>),
    /// Capture a step for this shape.
    Capture(Key),
    Eager,
}

struct Captured<B> {
    key: Key,
    graph: CudaGraph,
    /// The batch the graph was captured on: its graph inputs receive each replayed batch's.
    batch: B,
    /// `[loss, gradient norm]` as the captured step leaves them (overwritten by every replay).
    numbers: Tensor,
}

pub(super) struct StepGraphs<B> {
    device: Device,
    /// The learning rate the captured AdamW reads, fp32 on the device.
    lr: Tensor,
    captured: Vec<Captured<B>>,
    eager_steps: Vec<(Key, u32)>,
    off: bool,
}

impl<B> StepGraphs<B> {
    pub(super) fn new(device: Device) -> Self {
        Self {
            device,
            lr: Tensor::zeros([], (Kind::Float, device)),
            captured: Vec::new(),
            eager_steps: Vec::new(),
            off: false,
        }
    }

    /// Decides for a batch whose graph inputs are `inputs`.
    pub(super) fn plan(&mut self, inputs: Option<Vec<Tensor>>) -> Plan {
        let Some(inputs) = inputs.filter(|_| !self.off) else {
            return Plan::Eager;
        };
        let key: Key = inputs.iter().map(Tensor::size).collect();
        if let Some(i) = self.captured.iter().position(|c| c.key == key) {
            return Plan::Replay(i, inputs);
        }
        if self.captured.len() >= MAX_GRAPHS {
            return Plan::Eager;
        }
        let i = match self.eager_steps.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.eager_steps.push((key.clone(), 0));
                self.eager_steps.len() - 1
            }
        };
        if self.eager_steps[i].1 < WARMUP_STEPS {
            self.eager_steps[i].1 += 1;
            Plan::Eager
        } else {
            Plan::Capture(key)
        }
    }

    /// Replays graph `index` on a batch with graph inputs `inputs` at learning rate `lr`, dropout
    /// seeded with `seed`; returns a copy of the step's `[loss, gradient norm]`.
    pub(super) fn replay(
        &mut self,
        index: usize,
        inputs: &[Tensor],
        graph_inputs: impl Fn(&B) -> Option<Vec<Tensor>>,
        lr: f64,
        seed: i64,
    ) -> Result<Tensor> {
        let c = &self.captured[index];
        let targets = graph_inputs(&c.batch)
            .ok_or_else(|| anyhow::anyhow!("the captured batch has no graph inputs"))?;
        tch::no_grad(|| {
            for (dst, src) in targets.iter().zip(inputs) {
                let mut dst = dst.shallow_clone();
                dst.copy_(src);
            }
            let _ = self.lr.shallow_clone().fill_(lr);
        });
        tch::manual_seed(seed);
        c.graph.replay()?;
        Ok(c.numbers.copy())
    }

    /// Captures `body` (the step on `batch`, at the learning rate in the tensor it is given) for the
    /// shape `key`, then replays it once with dropout seeded by `seed`: that replay is this step.
    /// Returns the step's `[loss, gradient norm]`, or, when the capture failed, the reason, after which
    /// every step runs eagerly (`batch` is handed back for that).
    pub(super) fn capture(
        &mut self,
        key: Key,
        batch: B,
        lr: f64,
        seed: i64,
        body: impl FnOnce(&B, &Tensor) -> Result<Tensor>,
    ) -> Result<Result<Tensor, (anyhow::Error, B)>> {
        if self.captured.is_empty() && self.device.is_cuda() {
            // The eager steps' cached blocks would otherwise stay reserved beside the graph's pool.
            cuda_graph::empty_cache()?;
        }
        let _ = tch::no_grad(|| self.lr.shallow_clone().fill_(lr));
        let lr_tensor = self.lr.shallow_clone();
        let share = self.captured.first().map(|c| &c.graph);
        match CudaGraph::capture(self.device, share, || body(&batch, &lr_tensor)) {
            Ok((graph, numbers)) => {
                tch::manual_seed(seed);
                graph.replay()?;
                let out = numbers.copy();
                self.captured.push(Captured {
                    key,
                    graph,
                    batch,
                    numbers,
                });
                Ok(Ok(out))
            }
            Err(e) => {
                self.off = true;
                Ok(Err((e, batch)))
            }
        }
    }

    /// Shapes captured so far.
    pub(super) fn graphs(&self) -> usize {
        self.captured.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(rows: i64) -> Option<Vec<Tensor>> {
        Some(vec![
            Tensor::zeros([rows, 8], (Kind::Int64, Device::Cpu)),
            Tensor::zeros([64], (Kind::Int64, Device::Cpu)),
        ])
    }

    #[test]
    fn a_shape_runs_eagerly_for_its_warm_up_then_is_captured() {
        let mut g = StepGraphs::<()>::new(Device::Cpu);
        for _ in 0..WARMUP_STEPS {
            assert!(matches!(g.plan(inputs(4)), Plan::Eager));
        }
        // Another shape keeps its own count.
        assert!(matches!(g.plan(inputs(2)), Plan::Eager));
        match g.plan(inputs(4)) {
            Plan::Capture(key) => assert_eq!(key, vec![vec![4, 8], vec![64]]),
            _ => panic!("the third batch of a shape must be captured"),
        }
        // A batch without graph inputs always runs eagerly.
        assert!(matches!(g.plan(None), Plan::Eager));
    }

    #[test]
    fn after_a_failed_capture_every_step_is_eager() {
        let mut g = StepGraphs::<()>::new(Device::Cpu);
        for _ in 0..WARMUP_STEPS {
            let _ = g.plan(inputs(4));
        }
        let Plan::Capture(key) = g.plan(inputs(4)) else {
            panic!("expected a capture");
        };
        // On the CPU the capture itself fails (no CUDA device), as any capture error would.
        let failed = g
            .capture(key, (), 1e-4, 7, |_, _| {
                Ok(Tensor::zeros([2], (Kind::Float, Device::Cpu)))
            })
            .unwrap();
        assert!(failed.is_err());
        assert_eq!(g.graphs(), 0);
        assert!(matches!(g.plan(inputs(4)), Plan::Eager));
    }
}
