//! AdamW on plain tensors, with state that can be saved and restored exactly.
//!
//! tch's optimizers keep their state inside libtorch where it cannot be saved, so a resumed run would
//! restart the moments from zero. This one keeps `exp_avg`/`exp_avg_sq` per named parameter, saves them
//! with safetensors, and updates through libtorch's fused AdamW kernel (`torch.optim.AdamW(fused=True)`;
//! `csrc/fused_adamw.cpp`): one pass over each parameter instead of eight, which matters when the
//! 250k-token embedding is a third of the model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::ffi::{
    medqa_clear_grads, medqa_foreach_clip_grad_norm, medqa_foreach_mul, medqa_fused_adamw,
};
use crate::snapshot::SafetensorsSnapshot;
use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

/// Multiplies the gradients in place by `factor` (an fp32 scalar tensor, on their device or the host),
/// in one foreach launch, without reading it on the host.
pub(crate) fn scale_gradients(grads: &[Tensor], factor: &Tensor) -> Result<()> {
    if grads.is_empty() {
        return Ok(());
    }
    let mut handles: Vec<*mut std::ffi::c_void> = grads
        .iter()
        .map(|g| g.as_ptr() as *mut std::ffi::c_void)
        .collect();
    // SAFETY: the handles point to live at::Tensors owned by `grads`, and `factor` lives, for the whole
    // call; the shim changes the gradients in place and keeps no pointer.
    let rc = unsafe {
        medqa_foreach_mul(
            handles.as_mut_ptr(),
            handles.len() as i32,
            factor.as_ptr() as *mut std::ffi::c_void,
        )
    };
    if rc != 0 {
        bail!("scaling gradients: {}", crate::ffi::last_error());
    }
    Ok(())
}

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
    /// With [`AdamW::with_fp32_master`] and a half-precision parameter: the fp32 weights the update
    /// applies to (the parameter is their rounded copy) and an fp32 buffer for the parameter's gradient.
    master: Option<(Tensor, Tensor)>,
}

impl ParamState {
    /// The tensor the update applies to and the gradient it applies.
    fn target(&self) -> (Tensor, Tensor) {
        match &self.master {
            Some((weights, grad)) => (weights.shallow_clone(), grad.shallow_clone()),
            None => (self.param.shallow_clone(), self.param.grad()),
        }
    }
}

pub struct AdamW {
    config: AdamWConfig,
    params: BTreeMap<String, ParamState>,
    /// Updates applied before the step tensors below existed (0, or what a checkpoint held).
    step: i64,
    /// The applied-update count per device, as a float scalar on that device (torch's
    /// `state["step"]`): it stays there, so a step whose update is skipped on the device's say-so
    /// (`found_inf`) needs no round trip to the host.
    steps: BTreeMap<String, Tensor>,
    /// Whether this step's half-precision gradients are in the fp32 buffers already (clipping casts
    /// them, so that the update does not cast the unclipped ones again).
    grads_cast: bool,
}

impl AdamW {
    /// Optimises the trainable variables given by name (e.g. `VarStore::variables()`).
    pub fn new(variables: HashMap<String, Tensor>, config: AdamWConfig) -> Self {
        Self::build(variables, config, false)
    }

    /// As [`AdamW::new`], for a model whose weights are held in bf16 or fp16 (every activation then
    /// computes in that precision, without autocast's casts around each product): the optimizer keeps
    /// fp32 master weights and fp32 moments, casts each gradient to fp32 before clipping, updates the
    /// master weights and copies them, rounded, into the model's. Small updates then accumulate in fp32
    /// instead of vanishing under bf16's 8-bit mantissa (DeepSpeed's and Megatron's bf16 recipe).
    /// fp32 parameters are optimised as [`AdamW::new`] does.
    pub fn with_fp32_master(variables: HashMap<String, Tensor>, config: AdamWConfig) -> Self {
        Self::build(variables, config, true)
    }

    fn build(variables: HashMap<String, Tensor>, config: AdamWConfig, master: bool) -> Self {
        let params = variables
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, param)| {
                let master = (master && param.kind() != Kind::Float).then(|| {
                    let weights = tch::no_grad(|| param.to_kind(Kind::Float));
                    let grad = weights.zeros_like();
                    (weights, grad)
                });
                let like = master.as_ref().map_or(&param, |(w, _)| w);
                let state = ParamState {
                    decay: decays(&name),
                    exp_avg: like.zeros_like(),
                    exp_avg_sq: like.zeros_like(),
                    param,
                    master,
                };
                (name, state)
            })
            .collect();
        Self {
            config,
            params,
            step: 0,
            steps: BTreeMap::new(),
            grads_cast: false,
        }
    }

    /// Copies this step's half-precision gradients into their fp32 buffers (once per step).
    fn cast_grads(&mut self) {
        if self.grads_cast {
            return;
        }
        tch::no_grad(|| {
            // Parameters without a master copy are skipped before asking for their gradient (an FFI
            // call each, every step).
            for s in self.params.values_mut() {
                if let Some((_, buffer)) = &mut s.master {
                    let grad = s.param.grad();
                    if grad.defined() {
                        buffer.copy_(&grad);
                    }
                }
            }
        });
        self.grads_cast = true;
    }

    /// Updates applied so far (skipped steps do not count). On CUDA this waits for the device.
    pub fn step_count(&self) -> i64 {
        self.steps
            .values()
            .next()
            .map_or(self.step, |t| t.double_value(&[]) as i64)
    }

    /// The trainable parameters' gradients in name order, for summing over ranks; every one must be
    /// there (ranks must send the same buffers, so a parameter that got no gradient is an error).
    /// The gradients this step gave (parameters it did not reach have none).
    pub fn present_gradients(&self) -> Vec<Tensor> {
        self.params
            .values()
            .map(|s| s.param.grad())
            .filter(Tensor::defined)
            .collect()
    }

    pub fn gradients(&self) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(name, s)| {
                let grad = s.param.grad();
                if !grad.defined() {
                    bail!(
                        "parameter '{name}' got no gradient in this step; data-parallel training needs \
                         every trainable parameter to take part (freeze it with train.freeze)"
                    );
                }
                Ok(grad)
            })
            .collect()
    }

    /// Drops all gradients (`zero_grad(set_to_none=True)`): the next backward allocates them afresh.
    pub fn zero_grad(&mut self) {
        self.grads_cast = false;
        let mut handles: Vec<*mut std::ffi::c_void> = self
            .params
            .values()
            .map(|s| s.param.as_ptr() as *mut std::ffi::c_void)
            .collect();
        // SAFETY: the handles point to the parameters this optimizer owns shallow clones of.
        unsafe { medqa_clear_grads(handles.as_mut_ptr(), handles.len() as i32) };
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_` does; returns the norm before clipping, a float scalar on the
    /// gradients' device (reading it is left to the caller, so the device need not be waited for).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        self.cast_grads();
        let grads: Vec<Tensor> = self
            .params
            .values()
            .filter(|s| s.param.grad().defined())
            .map(|s| s.target().1)
            .collect();
        if grads.is_empty() {
            return Tensor::from(0f32);
        }
        let device = grads[0].device();
        if device.is_cuda() && grads.iter().all(|g| g.device() == device) {
            let mut handles: Vec<*mut std::ffi::c_void> = grads
                .iter()
                .map(|g| g.as_ptr() as *mut std::ffi::c_void)
                .collect();
            let mut total: *mut torch_sys::C_tensor = std::ptr::null_mut();
            // SAFETY: the handles point to live at::Tensors owned by `grads` for the whole call; on
            // success the shim hands over a new at::Tensor, which `from_ptr` takes ownership of.
            let rc = unsafe {
                medqa_foreach_clip_grad_norm(
                    handles.as_mut_ptr(),
                    handles.len() as i32,
                    max_norm,
                    &mut total,
                )
            };
            if rc == 0 && !total.is_null() {
                // SAFETY: see above.
                return unsafe { Tensor::from_ptr(total) };
            }
            // Only an exotic gradient layout gets here; the per-tensor path below handles it.
            eprintln!(
                "warning: foreach gradient clipping failed ({}); clipping tensor by tensor",
                crate::ffi::last_error()
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
        total
    }

    /// One AdamW update at learning rate `lr`. With `found_inf` (a float scalar, 1 or 0), the device
    /// itself skips the update where it is 1 — parameters, moments and the step count stay as they
    /// were — as `torch.optim.AdamW(fused=True)` does under a gradient scaler.
    pub fn step(&mut self, lr: f64, found_inf: Option<&Tensor>) -> Result<()> {
        self.update(lr, None, found_inf)
    }

    /// [`AdamW::step`] at the learning rate held by `lr`, a float scalar on the parameters' device that
    /// the kernel reads when it runs: a captured CUDA graph of the step then follows the schedule when
    /// `lr` is refilled before each replay.
    pub fn step_at(&mut self, lr: &Tensor, found_inf: Option<&Tensor>) -> Result<()> {
        self.update(f64::NAN, Some(lr), found_inf)
    }

    fn update(
        &mut self,
        lr: f64,
        lr_tensor: Option<&Tensor>,
        found_inf: Option<&Tensor>,
    ) -> Result<()> {
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        self.cast_grads();
        // The kernel wants all tensors of one call on one device; decay and no-decay are two calls.
        type Entry = (Tensor, Tensor, Tensor, Tensor);
        let mut groups: BTreeMap<(String, bool), Vec<Entry>> = BTreeMap::new();
        for s in self.params.values() {
            if s.param.grad().defined() {
                let (weights, grad) = s.target();
                groups
                    .entry((format!("{:?}", s.param.device()), s.decay))
                    .or_default()
                    .push((
                        weights,
                        grad,
                        s.exp_avg.shallow_clone(),
                        s.exp_avg_sq.shallow_clone(),
                    ));
            }
        }
        let mut skips: BTreeMap<String, Option<Tensor>> = BTreeMap::new();
        for ((key, _), entries) in &groups {
            if skips.contains_key(key) {
                continue;
            }
            let device = entries[0].0.device();
            let skip = found_inf.map(|f| f.to_device(device).to_kind(Kind::Float));
            let base = self.step as f32;
            let step = self
                .steps
                .entry(key.clone())
                .or_insert_with(|| Tensor::from(base).to_device(device));
            tch::no_grad(|| {
                let _ = step.g_add_scalar_(1.0);
            });
            skips.insert(key.clone(), skip);
        }
        for ((key, decay), entries) in &groups {
            let wd = if *decay { weight_decay } else { 0.0 };
            let step = &self.steps[key];
            let skip = skips[key].as_ref();
            let mut handles: [Vec<*mut std::ffi::c_void>; 5] = Default::default();
            for (p, g, m, v) in entries {
                for (list, t) in handles.iter_mut().zip([p, g, m, v, step]) {
                    list.push(t.as_ptr() as *mut std::ffi::c_void);
                }
            }
            let [hp, hg, hm, hv, hs] = &mut handles;
            let found_inf = skip.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut _);
            let lr_tensor = lr_tensor.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut _);
            // SAFETY: every handle points to a live at::Tensor owned by `entries`, `self.steps`,
            // `skips` or the caller (`lr_tensor`) for the whole call; the kernel updates params and moments in place under a
            // no-grad guard.
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
                    found_inf,
                    lr_tensor,
                )
            };
            if rc != 0 {
                bail!("fused AdamW failed: {}", crate::ffi::last_error());
            }
        }
        for (key, skip) in &skips {
            if let Some(skip) = skip {
                let mut step = self.steps[key].shallow_clone();
                tch::no_grad(|| {
                    let _ = step.g_sub_(skip);
                });
            }
        }
        // The model's weights follow their master copies (a skipped update left those as they were).
        tch::no_grad(|| {
            for s in self.params.values_mut() {
                if let Some((weights, _)) = &s.master {
                    if s.param.grad().defined() {
                        s.param.copy_(weights);
                    }
                }
            }
        });
        self.grads_cast = false;
        Ok(())
    }

    /// Writes the moments, the fp32 master weights (if any) and the step count to a safetensors
    /// file, atomically.
    pub fn save(&self, file: &Path) -> Result<()> {
        self.snapshot()?.write(file)
    }

    /// What `save` writes, copied to the host now.
    pub fn snapshot(&self) -> Result<SafetensorsSnapshot> {
        let mut tensors = SafetensorsSnapshot::default();
        for (name, s) in &self.params {
            tensors.insert(format!("{name}.exp_avg"), &s.exp_avg, None)?;
            tensors.insert(format!("{name}.exp_avg_sq"), &s.exp_avg_sq, None)?;
            if let Some((weights, _)) = &s.master {
                tensors.insert(format!("{name}.master"), weights, None)?;
            }
        }
        tensors.insert("step".to_owned(), &Tensor::from(self.step_count()), None)?;
        Ok(tensors)
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
            let mut slots = vec![
                ("exp_avg", s.exp_avg.shallow_clone()),
                ("exp_avg_sq", s.exp_avg_sq.shallow_clone()),
            ];
            if let Some((weights, _)) = &s.master {
                slots.push(("master", weights.shallow_clone()));
            }
            for (suffix, mut dst) in slots {
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
            if let Some((weights, _)) = &s.master {
                tch::no_grad(|| s.param.copy_(weights));
            }
        }
        if let Some(extra) = saved.keys().next() {
            bail!(
                "{}: state for '{extra}', which this model does not have",
                file.display()
            );
        }
        self.step = step.to_kind(Kind::Int64).int64_value(&[]);
        self.steps.clear();
        Ok(())
    }
}
