//! AdamW on plain tensors, with state that can be saved and restored exactly.
//!
//! tch's optimizers keep their state inside libtorch where it cannot be saved, so a resumed run would
//! restart the moments from zero. This one follows `torch.optim.AdamW`'s single-tensor update op for
//! op, keeps `exp_avg`/`exp_avg_sq` per named parameter, and saves them with safetensors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

/// Hyper-parameters as `transformers`' `TrainingArguments` names them.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// `transformers`' rule: no weight decay for biases and LayerNorm weights.
pub fn decays(name: &str) -> bool {
    !(name.contains("bias") || name.contains("LayerNorm.") || name.contains("layer_norm."))
}

struct ParamState {
    param: Tensor,
    decay: bool,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

pub struct AdamW {
    config: AdamWConfig,
    params: BTreeMap<String, ParamState>,
    step: i64,
}

impl AdamW {
    /// Optimises the trainable variables given by name (e.g. `VarStore::variables()`).
    pub fn new(variables: HashMap<String, Tensor>, config: AdamWConfig) -> Self {
        let params = variables
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, param)| {
                let state = ParamState {
                    decay: decays(&name),
                    exp_avg: param.zeros_like(),
                    exp_avg_sq: param.zeros_like(),
                    param,
                };
                (name, state)
            })
            .collect();
        Self {
            config,
            params,
            step: 0,
        }
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> i64 {
        self.step
    }

    pub fn zero_grad(&mut self) {
        for s in self.params.values_mut() {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_` does; returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .values()
            .map(|s| s.param.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        // `max_norm / tensor` is `reciprocal() * max_norm` in PyTorch; the same ops give the same bits.
        let coef = (&total + 1e-6).reciprocal() * max_norm;
        let coef = coef.clamp_max(1.0);
        tch::no_grad(|| {
            for mut g in grads {
                let _ = g.g_mul_(&coef);
            }
        });
        total.double_value(&[])
    }

    /// True when every gradient is finite (mixed precision and bad batches can break that).
    pub fn grads_finite(&self) -> bool {
        self.params.values().all(|s| {
            let g = s.param.grad();
            !g.defined() || g.isfinite().all().int64_value(&[]) == 1
        })
    }

    /// One AdamW update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let bias_correction1 = 1.0 - beta1.powi(self.step as i32);
        let bias_correction2_sqrt = (1.0 - beta2.powi(self.step as i32)).sqrt();
        let step_size = lr / bias_correction1;
        tch::no_grad(|| {
            for s in self.params.values_mut() {
                let grad = s.param.grad();
                if !grad.defined() {
                    continue;
                }
                if s.decay && weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = s.exp_avg.lerp_(&grad, 1.0 - beta1);
                let _ = s.exp_avg_sq.g_mul_scalar_(beta2);
                let _ = s.exp_avg_sq.addcmul_(&(&grad * (1.0 - beta2)), &grad);
                let denom = (s.exp_avg_sq.sqrt() / bias_correction2_sqrt) + eps;
                let _ = s.param.addcdiv_(&(&s.exp_avg * -step_size), &denom);
            }
        });
    }

    /// Writes the moments and the step count to a safetensors file, atomically.
    pub fn save(&self, file: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.params.len() + 1);
        for (name, s) in &self.params {
            tensors.push((
                format!("{name}.exp_avg"),
                s.exp_avg.to_device(tch::Device::Cpu),
            ));
            tensors.push((
                format!("{name}.exp_avg_sq"),
                s.exp_avg_sq.to_device(tch::Device::Cpu),
            ));
        }
        tensors.push(("step".to_owned(), Tensor::from(self.step)));
        let tmp = file.with_extension("safetensors.tmp");
        Tensor::write_safetensors(&tensors, &tmp)
            .with_context(|| format!("cannot write optimizer state {}", tmp.display()))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all())?;
        std::fs::rename(&tmp, file)
            .with_context(|| format!("cannot move optimizer state to {}", file.display()))
    }

    /// Restores what `save` wrote; the parameters must be the same (names and shapes).
    pub fn load(&mut self, file: &Path) -> Result<()> {
        let mut saved: HashMap<String, Tensor> = Tensor::read_safetensors(file)
            .with_context(|| format!("cannot read optimizer state {}", file.display()))?
            .into_iter()
            .collect();
        let step = saved
            .remove("step")
            .with_context(|| format!("{}: no step count", file.display()))?;
        for (name, s) in self.params.iter_mut() {
            for (suffix, dst) in [
                ("exp_avg", &mut s.exp_avg),
                ("exp_avg_sq", &mut s.exp_avg_sq),
            ] {
                let key = format!("{name}.{suffix}");
                let src = saved.remove(&key).with_context(|| {
                    format!("{}: no state for parameter '{name}'", file.display())
                })?;
                if src.size() != dst.size() {
                    bail!(
                        "{}: '{key}' has shape {:?}, the parameter {:?}",
                        file.display(),
                        src.size(),
                        dst.size()
                    );
                }
                tch::no_grad(|| dst.copy_(&src.to_kind(dst.kind())));
            }
        }
        if let Some(extra) = saved.keys().next() {
            bail!(
                "{}: state for '{extra}', which this model does not have",
                file.display()
            );
        }
        self.step = step.to_kind(Kind::Int64).int64_value(&[]);
        Ok(())
    }
}
