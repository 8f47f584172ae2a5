//! AdamW, gradient clipping and schedules against `torch.optim.AdamW`, `clip_grad_norm_` and
//! `transformers`' schedules (fixtures/train, written by scripts/make_fixtures.py).

mod common;

use std::collections::HashMap;

use model::train::{AdamW, AdamWConfig, Schedule, ScheduleKind};
use tch::{Kind, Tensor};

const NAMES: [&str; 4] = [
    "dense.weight",
    "dense.bias",
    "LayerNorm.weight",
    "LayerNorm.bias",
];

struct Fixture {
    t: HashMap<String, Tensor>,
    steps: i64,
}

impl Fixture {
    fn load() -> Self {
        let t = common::read_tensors(&common::fixtures().join("train/adamw.safetensors"));
        let steps = t["lr"].size()[0];
        Self { t, steps }
    }

    fn params(&self) -> HashMap<String, Tensor> {
        NAMES
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    self.t[&format!("init.{n}")].copy().set_requires_grad(true),
                )
            })
            .collect()
    }

    /// Gives every parameter torch's gradient of step `step`.
    fn set_grads(&self, params: &HashMap<String, Tensor>, step: i64) {
        for n in NAMES {
            let mut g = params[n].grad();
            let src = self.t[&format!("grad.{n}")].get(step);
            if g.defined() {
                tch::no_grad(|| g.copy_(&src));
            } else {
                // First step: give the leaf a gradient through a backward pass of <p, src>.
                (&params[n] * &src).sum(Kind::Float).backward();
            }
        }
    }

    /// Runs steps `from..to`, checking lr and pre-clipping norm against torch on the way.
    fn run(
        &self,
        opt: &mut AdamW,
        params: &HashMap<String, Tensor>,
        schedule: &Schedule,
        from: i64,
        to: i64,
    ) {
        for step in from..to {
            self.set_grads(params, step);
            let norm = opt.clip_grad_norm(1.0).double_value(&[]);
            let torch_norm = self.t["grad_norm"].double_value(&[step]);
            assert!(
                (norm - torch_norm).abs() <= 1e-6 * torch_norm.max(1.0),
                "step {step}: norm {norm} vs {torch_norm}"
            );
            let lr = schedule.learning_rate_at(step as u64);
            let torch_lr = self.t["lr"].double_value(&[step]);
            assert!(
                (lr - torch_lr).abs() < 1e-15,
                "step {step}: lr {lr} vs {torch_lr}"
            );
            opt.step(lr, None).unwrap();
        }
    }
}

fn share(m: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    m.iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect()
}

fn config() -> AdamWConfig {
    AdamWConfig {
        weight_decay: 0.01,
        ..Default::default()
    }
}

fn schedule(steps: i64) -> Schedule {
    Schedule::new(ScheduleKind::Linear, 3e-3, 10, steps as u64)
}

#[test]
fn adamw_matches_torch_over_100_steps() {
    let fx = Fixture::load();
    let params = fx.params();
    let mut opt = AdamW::new(share(&params), config());
    fx.run(&mut opt, &params, &schedule(fx.steps), 0, fx.steps);
    assert_eq!(opt.step_count(), fx.steps);
    for n in NAMES {
        let d = common::max_abs_diff(&params[n], &fx.t[&format!("final.{n}")]);
        println!(
            "{n:<18} max |ours - torch| after {} steps = {d:.3e}",
            fx.steps
        );
        assert!(d <= 1e-6, "{n}: {d:e}");
    }
}

#[test]
fn saved_state_resumes_bitwise() {
    let fx = Fixture::load();
    let straight = fx.params();
    let mut opt = AdamW::new(share(&straight), config());
    fx.run(&mut opt, &straight, &schedule(fx.steps), 0, fx.steps);

    let resumed = fx.params();
    let mut first = AdamW::new(share(&resumed), config());
    fx.run(&mut first, &resumed, &schedule(fx.steps), 0, 37);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("optimizer.safetensors");
    first.save(&file).unwrap();
    drop(first);
    let mut second = AdamW::new(share(&resumed), config());
    second.load(&file).unwrap();
    assert_eq!(second.step_count(), 37);
    fx.run(&mut second, &resumed, &schedule(fx.steps), 37, fx.steps);
    for n in NAMES {
        assert_eq!(
            common::max_abs_diff(&straight[n], &resumed[n]),
            0.0,
            "{n} differs after resume"
        );
    }
}

#[test]
fn state_of_another_model_is_rejected() {
    let fx = Fixture::load();
    let params = fx.params();
    let opt = AdamW::new(share(&params), config());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("optimizer.safetensors");
    opt.save(&file).unwrap();
    let mut fewer = share(&params);
    fewer.remove("dense.bias");
    let err = AdamW::new(fewer, config()).load(&file).unwrap_err();
    assert!(format!("{err:#}").contains("dense.bias"), "{err:#}");
}

#[test]
fn no_decay_for_biases_and_layer_norms() {
    use model::train::optim::decays;
    assert!(decays(
        "roberta.encoder.layer.0.attention.self.query.weight"
    ));
    assert!(!decays("roberta.encoder.layer.0.attention.self.query.bias"));
    assert!(!decays("roberta.embeddings.LayerNorm.weight"));
    assert!(!decays("lm_head.layer_norm.weight"));
    assert!(!decays("lm_head.bias"));
    assert!(decays("roberta.embeddings.word_embeddings.weight"));
}

#[test]
fn schedules_match_transformers() {
    let text = std::fs::read_to_string(common::fixtures().join("train/schedules.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (steps, warmup) = (v["steps"].as_u64().unwrap(), v["warmup"].as_u64().unwrap());
    for (key, kind) in [
        ("linear", ScheduleKind::Linear),
        ("cosine", ScheduleKind::Cosine),
        // make_fixtures.py's "constant" is get_constant_schedule_with_warmup.
        ("constant", ScheduleKind::ConstantWithWarmup),
    ] {
        let s = Schedule::new(kind, 1.0, warmup, steps);
        for (i, expected) in v[key].as_array().unwrap().iter().enumerate() {
            let expected = expected.as_f64().unwrap();
            let ours = s.multiplier(i as u64);
            assert!(
                (ours - expected).abs() < 1e-12,
                "{key} step {i}: {ours} vs {expected}"
            );
        }
    }
}

/// A step the device marks as non-finite (`found_inf` = 1) changes nothing: parameters, moments and
/// the step count; with `found_inf` = 0 the update is the one without it, bit for bit.
#[test]
fn found_inf_skips_the_update_on_the_device() {
    let fx = Fixture::load();
    let with = fx.params();
    let without = fx.params();
    let mut opt_with = AdamW::new(share(&with), config());
    let mut opt_without = AdamW::new(share(&without), config());
    fx.run(&mut opt_with, &with, &schedule(fx.steps), 0, 5);
    fx.run(&mut opt_without, &without, &schedule(fx.steps), 0, 5);
    let before: HashMap<String, Tensor> = with.iter().map(|(k, v)| (k.clone(), v.copy())).collect();
    let dir = tempfile::tempdir().unwrap();
    opt_with
        .save(&dir.path().join("before.safetensors"))
        .unwrap();

    opt_with.step(1e-2, Some(&Tensor::from(1f32))).unwrap();
    assert_eq!(opt_with.step_count(), 5);
    for n in NAMES {
        assert_eq!(common::max_abs_diff(&with[n], &before[n]), 0.0, "{n} moved");
    }
    opt_with
        .save(&dir.path().join("after.safetensors"))
        .unwrap();
    let read = |f: &str| -> HashMap<String, Tensor> {
        Tensor::read_safetensors(dir.path().join(f))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (a, b) = (read("before.safetensors"), read("after.safetensors"));
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        assert_eq!(
            common::max_abs_diff(t, &b[k]),
            0.0,
            "optimizer state {k} moved"
        );
    }

    opt_with.step(1e-2, Some(&Tensor::from(0f32))).unwrap();
    opt_without.step(1e-2, None).unwrap();
    assert_eq!(opt_with.step_count(), 6);
    for n in NAMES {
        assert_eq!(common::max_abs_diff(&with[n], &without[n]), 0.0, "{n}");
        assert!(
            common::max_abs_diff(&with[n], &before[n]) > 0.0,
            "{n} did not move"
        );
    }
}

/// The learning rate held in a tensor (what a captured CUDA graph of the step reads at each replay),
/// refilled before every step, gives the updates the learning rate given by value gives, bit for bit.
/// The tensor is fp32, as CUDA's kernel reads it, so the by-value side gets the same rounded rate.
#[test]
fn learning_rate_in_a_tensor_updates_as_by_value() {
    let fx = Fixture::load();
    let (by_value, in_tensor) = (fx.params(), fx.params());
    let mut opt_value = AdamW::new(share(&by_value), config());
    let mut opt_tensor = AdamW::new(share(&in_tensor), config());
    let sched = schedule(fx.steps);
    let lr_tensor = Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
    for step in 0..fx.steps {
        for (params, opt) in [(&by_value, &mut opt_value), (&in_tensor, &mut opt_tensor)] {
            fx.set_grads(params, step);
            let _ = opt.clip_grad_norm(1.0);
        }
        let lr = (3e-3 * sched.multiplier(step as u64)) as f32 as f64;
        opt_value.step(lr, None).unwrap();
        let _ = tch::no_grad(|| lr_tensor.shallow_clone().fill_(lr));
        opt_tensor.step_at(&lr_tensor, None).unwrap();
    }
    assert_eq!(opt_tensor.step_count(), fx.steps);
    for n in NAMES {
        let d = common::max_abs_diff(&by_value[n], &in_tensor[n]);
        assert_eq!(d, 0.0, "{n}: {d:e} after {} steps", fx.steps);
    }
}

/// Gives a leaf `param` the gradient `src` (a backward pass of <param, src> on its first step).
fn set_grad(param: &Tensor, src: &Tensor) {
    let mut g = param.grad();
    if g.defined() {
        tch::no_grad(|| g.copy_(src));
    } else {
        (param * src).sum(Kind::Float).backward();
    }
}

/// The fixture's parameters rounded to bf16, as a model held in bf16 has them.
fn bf16_params(fx: &Fixture) -> HashMap<String, Tensor> {
    fx.params()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.detach().to_kind(Kind::BFloat16).set_requires_grad(true),
            )
        })
        .collect()
}

fn master_weights(opt: &AdamW, dir: &std::path::Path) -> HashMap<String, Tensor> {
    let file = dir.join("state.safetensors");
    opt.save(&file).unwrap();
    Tensor::read_safetensors(&file)
        .unwrap()
        .into_iter()
        .filter_map(|(k, t)| k.strip_suffix(".master").map(|n| (n.to_owned(), t)))
        .collect()
}

/// bf16 weights with fp32 masters: clipping and the update are fp32 AdamW's on the gradients cast
/// to fp32, bit for bit, and the model's weights are the masters rounded to bf16.
#[test]
fn fp32_master_weights_update_as_fp32_adamw_does() {
    let fx = Fixture::load();
    let half = bf16_params(&fx);
    let reference: HashMap<String, Tensor> = half
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.detach().to_kind(Kind::Float).set_requires_grad(true),
            )
        })
        .collect();
    let mut opt_half = AdamW::with_fp32_master(share(&half), config());
    let mut opt_ref = AdamW::new(share(&reference), config());
    let sched = schedule(fx.steps);
    for step in 0..fx.steps {
        for n in NAMES {
            let src = fx.t[&format!("grad.{n}")].get(step).to_kind(Kind::BFloat16);
            set_grad(&half[n], &src);
            set_grad(&reference[n], &src.to_kind(Kind::Float));
        }
        let norm_half = opt_half.clip_grad_norm(1.0);
        let norm_ref = opt_ref.clip_grad_norm(1.0);
        assert_eq!(norm_half.kind(), Kind::Float);
        assert_eq!(
            common::max_abs_diff(&norm_half, &norm_ref),
            0.0,
            "step {step}"
        );
        let lr = 3e-3 * sched.multiplier(step as u64);
        opt_half.step(lr, None).unwrap();
        opt_ref.step(lr, None).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let masters = master_weights(&opt_half, dir.path());
    assert_eq!(masters.len(), NAMES.len());
    for n in NAMES {
        assert_eq!(masters[n].kind(), Kind::Float, "{n}");
        assert_eq!(common::max_abs_diff(&masters[n], &reference[n]), 0.0, "{n}");
        assert_eq!(half[n].kind(), Kind::BFloat16, "{n}");
        let rounded = reference[n].to_kind(Kind::BFloat16);
        assert_eq!(common::max_abs_diff(&half[n], &rounded), 0.0, "{n}");
    }
}

/// Why the masters: updates smaller than half a bf16 step vanish when applied to bf16 weights, and
/// add up in fp32 ones until the rounded weight moves.
#[test]
fn fp32_master_weights_keep_updates_bf16_rounds_away() {
    let opts = (Kind::BFloat16, tch::Device::Cpu);
    let run = |master: bool| {
        let w = Tensor::ones([4], opts).set_requires_grad(true);
        let vars = HashMap::from([("w".to_owned(), w.shallow_clone())]);
        let mut opt = if master {
            AdamW::with_fp32_master(vars, AdamWConfig::default())
        } else {
            AdamW::new(vars, AdamWConfig::default())
        };
        for _ in 0..50 {
            opt.zero_grad();
            set_grad(&w, &Tensor::ones([4], opts));
            opt.step(1e-4, None).unwrap();
        }
        w.to_kind(Kind::Float).max().double_value(&[])
    };
    // 50 updates of ~1e-4 each: 0.995 in fp32, 0.99609375 once rounded to bf16.
    assert_eq!(run(false), 1.0);
    assert_eq!(run(true), 0.99609375);
}

/// A run resumed from the saved state (masters included) continues bit for bit; loading the state
/// also sets the model's bf16 weights from the masters.
#[test]
fn fp32_master_weights_resume_bitwise() {
    let fx = Fixture::load();
    let sched = schedule(fx.steps);
    let run = |opt: &mut AdamW, params: &HashMap<String, Tensor>, from: i64, to: i64| {
        for step in from..to {
            for n in NAMES {
                let src = fx.t[&format!("grad.{n}")].get(step).to_kind(Kind::BFloat16);
                set_grad(&params[n], &src);
            }
            let _ = opt.clip_grad_norm(1.0);
            opt.step(3e-3 * sched.multiplier(step as u64), None)
                .unwrap();
        }
    };
    let straight = bf16_params(&fx);
    let mut opt = AdamW::with_fp32_master(share(&straight), config());
    run(&mut opt, &straight, 0, fx.steps);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("optimizer.safetensors");
    let first_params = bf16_params(&fx);
    let mut first = AdamW::with_fp32_master(share(&first_params), config());
    run(&mut first, &first_params, 0, 37);
    first.save(&file).unwrap();
    let resumed = bf16_params(&fx); // the initial weights: loading the state must replace them
    let mut second = AdamW::with_fp32_master(share(&resumed), config());
    second.load(&file).unwrap();
    assert_eq!(second.step_count(), 37);
    for n in NAMES {
        assert_eq!(
            common::max_abs_diff(&first_params[n], &resumed[n]),
            0.0,
            "{n}"
        );
    }
    run(&mut second, &resumed, 37, fx.steps);
    for n in NAMES {
        assert_eq!(common::max_abs_diff(&straight[n], &resumed[n]), 0.0, "{n}");
    }
    // A plain optimizer on fp32 weights cannot take state that holds masters.
    let err = AdamW::new(fx.params(), config()).load(&file).unwrap_err();
    assert!(format!("{err:#}").contains(".master"), "{err:#}");
}
