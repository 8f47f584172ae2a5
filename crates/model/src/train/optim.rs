//! AdamW on plain tensors, with state that can be saved and restored exactly.
//!
//! tch's optimizers keep their state inside libtorch where it cannot be saved, so a resumed run would
//! restart the moments from zero. This one keeps `exp_avg`/`exp_avg_sq` per named parameter, saves them
//! with safetensors, and updates through libtorch's fused AdamW kernel (`torch.optim.AdamW(fused=True)`;
//! `csrc/fused_adamw.cpp`): one pass over each parameter instead of eight, which matters when the
//! 250k-token embedding is a third of the model.

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

extern "C" {
    fn medqa_clear_grads(params: *mut *mut std::ffi::c_void, n: i32);
    fn medqa_last_error() -> *const std::os::raw::c_char;
    fn medqa_foreach_clip_grad_norm(
        grads: *mut *mut std::ffi::c_void,
        n: i32,
        max_norm: f64,
        total_norm: *mut f64,
    ) -> i32;
    #[allow(clippy::too_many_arguments)]
    fn medqa_fused_adamw(
        params: *mut *mut std::ffi::c_void,
        grads: *mut *mut std::ffi::c_void,
        exp_avgs: *mut *mut std::ffi::c_void,
        exp_avg_sqs: *mut *mut std::ffi::c_void,
        steps: *mut *mut std::ffi::c_void,
        n: i32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> i32;
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

    /// Drops all gradients (`zero_grad(set_to_none=True)`): the next backward allocates them afresh.
    pub fn zero_grad(&mut self) {
        let mut handles: Vec<*mut std::ffi::c_void> = self
            .params
            .values()
            .map(|s| s.param.as_ptr() as *mut std::ffi::c_void)
            .collect();
        // SAFETY: the handles point to the parameters this optimizer owns shallow clones of.
        unsafe { medqa_clear_grads(handles.as_mut_ptr(), handles.len() as i32) };
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
        let device = grads[0].device();
        if device.is_cuda() && grads.iter().all(|g| g.device() == device) {
            let mut handles: Vec<*mut std::ffi::c_void> = grads
                .iter()
                .map(|g| g.as_ptr() as *mut std::ffi::c_void)
                .collect();
            let mut total = f64::NAN;
            // SAFETY: the handles point to live at::Tensors owned by `grads` for the whole call.
            let rc = unsafe {
                medqa_foreach_clip_grad_norm(
                    handles.as_mut_ptr(),
                    handles.len() as i32,
                    max_norm,
                    &mut total,
                )
            };
            if rc == 0 {
                return total;
            }
            // Only an exotic gradient layout gets here; the per-tensor path below handles it.
            // SAFETY: the shim returns a NUL-terminated thread-local string.
            let msg = unsafe { std::ffi::CStr::from_ptr(medqa_last_error()) };
            eprintln!(
                "warning: foreach gradient clipping failed ({}); clipping tensor by tensor",
                msg.to_string_lossy()
            );
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

    /// One AdamW update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        for decay in [true, false] {
            let wd = if decay { weight_decay } else { 0.0 };
            let mut group: Vec<(Tensor, Tensor, Tensor, Tensor)> = Vec::new();
            for s in self.params.values().filter(|s| s.decay == decay) {
                let grad = s.param.grad();
                if grad.defined() {
                    group.push((
                        s.param.shallow_clone(),
                        grad,
                        s.exp_avg.shallow_clone(),
                        s.exp_avg_sq.shallow_clone(),
                    ));
                }
            }
            // The kernel wants all tensors of one call on one device.
            let mut by_device: BTreeMap<String, Vec<(Tensor, Tensor, Tensor, Tensor)>> =
                BTreeMap::new();
            for entry in group {
                by_device
                    .entry(format!("{:?}", entry.0.device()))
                    .or_default()
                    .push(entry);
            }
            for (_, entries) in by_device {
                let device = entries[0].0.device();
                // The step count as the kernel reads it: a float scalar, as torch keeps `state["step"]`.
                let step = Tensor::from(self.step as f32).to_device(device);
                let mut handles: [Vec<*mut std::ffi::c_void>; 5] = Default::default();
                for (p, g, m, v) in &entries {
                    for (list, t) in handles.iter_mut().zip([p, g, m, v, &step]) {
                        list.push(t.as_ptr() as *mut std::ffi::c_void);
                    }
                }
                let [hp, hg, hm, hv, hs] = &mut handles;
                // SAFETY: every handle points to a live at::Tensor owned by `entries` or `step` for the
                // whole call; the kernel updates params and moments in place under a no-grad guard.
                let rc = unsafe {
                    medqa_fused_adamw(
                        hp.as_mut_ptr(),
                        hg.as_mut_ptr(),
                        hm.as_mut_ptr(),
                        hv.as_mut_ptr(),
                        hs.as_mut_ptr(),
                        entries.len() as i32,
                        lr,
                        beta1,
                        beta2,
                        wd,
                        eps,
                    )
                };
                if rc != 0 {
                    // SAFETY: the shim returns a NUL-terminated thread-local string.
                    let msg = unsafe { std::ffi::CStr::from_ptr(medqa_last_error()) }
                        .to_string_lossy()
                        .into_owned();
                    bail!("fused AdamW failed: {msg}");
                }
            }
        }
        Ok(())
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
