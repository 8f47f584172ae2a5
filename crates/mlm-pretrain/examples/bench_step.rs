//! One MLM training step, timed: what scripts/bench/mlm.sh compares with transformers.
//!
//!     bench_step [--hidden 256 --layers 4 --heads 4 --intermediate 1024 --vocab 250002
//!                 --batch 16 --seq 128 --threads 2 --warmup 1 --steps 3 --device cpu
//!                 --precision fp32|bf16 --weights fp32|bf16|bf16-master --masking host|device --loss native|fp32
//!                 --phases false --graphs off|on --gradient-checkpointing off|on --profile TRACE.json]
//!
//! Prints one JSON line: tokens/s and peak resident memory. `--profile` writes libtorch's profile of the
//! timed steps (a Chrome trace; `scripts/tools/profile_summary.py` reads it). `--masking host` (the
//! default) masks as the MLM task does: on the host, the next batch drawn and copied before the host
//! waits for the current step; `device` masks on the device, where choosing the positions makes the host
//! wait inside the step (the behaviour before masking moved to the host, kept to measure the difference).
//! `--loss native` (the default) is the MLM task's `model::loss::cross_entropy` on the logits as they
//! come (under bf16 autocast libtorch's bf16 kernels, as transformers computes it; in fp32 medqa's own,
//! `csrc/cross_entropy.cpp`); `fp32` casts the logits to fp32 first, so that bf16 runs measure medqa's
//! fp32 loss (one [rows × classes] fp32 tensor through the backward) against libtorch's bf16 one.
//! `--graphs on` (CUDA) captures the step as a CUDA graph after the warm-up steps and replays it for the
//! timed ones, as `train.cuda_graphs` does: the labelled positions padded to their bound
//! (`model::mlm::position_bound`), each batch copied into the captured one, the learning rate read from
//! a device scalar. Every step of the run then pads its positions, the warm-up's included.
//! `--weights bf16` holds the model's weights in bf16 and runs without autocast, so that every
//! activation (the residual stream, LayerNorm, dropout, the casts autocast adds around each product) is
//! bf16 too; AdamW updates the bf16 weights directly. It bounds what a bf16-activations mode could gain
//! on a GPU. `--weights bf16-master` is that mode as a real run would have it: the same bf16 model, with
//! AdamW keeping fp32 master weights (`AdamW::with_fp32_master`), one gradient cast and one weight copy
//! more per step (a few hundred MB each way at the base shape).
//! `--gradient-checkpointing on` is `train.gradient_checkpointing`: each layer recomputed in the backward
//! instead of its activations kept (peak memory against the extra forward).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use model::cuda_graph::CudaGraph;
use model::device::DeviceChoice;
use model::mlm::{labelled_positions, pad_positions, position_bound, IGNORE};
use model::train::{AdamW, AdamWConfig};
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM};
use tch::{Device, Kind, Tensor};

fn arg(args: &HashMap<String, String>, key: &str, default: i64) -> Result<i64> {
    args.get(key).map_or(Ok(default), |v| {
        v.parse().with_context(|| format!("--{key} {v}"))
    })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> Result<()> {
    // As the binaries do: large host blocks freed are kept for reuse (MEDQA_HOST_MEMORY=system: not).
    let host_memory = model::host_memory::keep_freed_blocks();
    let args = text::flags::flag_pairs();
    let (hidden, layers, heads, inter, vocab) = (
        arg(&args, "hidden", 256)?,
        arg(&args, "layers", 4)?,
        arg(&args, "heads", 4)?,
        arg(&args, "intermediate", 1024)?,
        arg(&args, "vocab", 250_002)?,
    );
    let (batch, seq, warmup, steps) = (
        arg(&args, "batch", 16)?,
        arg(&args, "seq", 128)?,
        arg(&args, "warmup", 1)?,
        arg(&args, "steps", 3)?,
    );
    tch::set_num_threads(arg(&args, "threads", 2)? as i32);
    let device = args
        .get("device")
        .map_or(Ok(DeviceChoice::Cpu), |d| d.parse())?
        .resolve()?;
    let weights = args.get("weights").map_or("fp32", String::as_str);
    let (bf16_weights, fp32_master) = match weights {
        "fp32" => (false, false),
        "bf16" => (true, false),
        "bf16-master" => (true, true),
        other => anyhow::bail!("--weights {other}: expected fp32, bf16 or bf16-master"),
    };
    // bf16 weights compute in bf16 throughout: autocast would cast LayerNorm and the loss to fp32.
    let precision = match args.get("precision").map(String::as_str) {
        Some("bf16") if !bf16_weights => model::autocast::Precision::Bf16,
        _ => model::autocast::Precision::Fp32,
    };

    let mut cfg = XlmRobertaConfig::new(vocab, hidden, layers, heads, inter);
    cfg.max_position_embeddings = seq + 2;
    tch::manual_seed(0);
    let mut m = Pretrained::<XlmRobertaForMaskedLM>::init(cfg, device)?;
    if bf16_weights {
        // In place: the model's tensors share the store's, so the model computes in bf16 from here.
        m.vs.bfloat16();
    }
    let adamw = AdamWConfig {
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = if fp32_master {
        AdamW::with_fp32_master(m.vs.variables(), adamw)
    } else {
        AdamW::new(m.vs.variables(), adamw)
    };
    let host_masking = match args.get("masking").map(String::as_str) {
        None | Some("host") => true,
        Some("device") => false,
        Some(other) => anyhow::bail!("--masking {other}: expected host or device"),
    };
    let fp32_loss = match args.get("loss").map(String::as_str) {
        None | Some("native") => false,
        Some("fp32") => true,
        Some(other) => anyhow::bail!("--loss {other}: expected native or fp32"),
    };
    let graphs = match args.get("graphs").map(String::as_str) {
        None | Some("off") => false,
        // The warm-up's eager steps create what a capture cannot (the optimizer's step counters).
        Some("on") if device.is_cuda() && warmup >= 1 => true,
        Some("on") if device.is_cuda() => anyhow::bail!("--graphs on needs --warmup 1 or more"),
        Some("on") => anyhow::bail!("--graphs on needs a CUDA device"),
        Some(other) => anyhow::bail!("--graphs {other}: expected off or on"),
    };
    let checkpointing = match args.get("gradient-checkpointing").map(String::as_str) {
        None | Some("off") => false,
        Some("on") if !graphs => true,
        Some("on") => {
            anyhow::bail!("--gradient-checkpointing on steps eagerly: not with --graphs on")
        }
        Some(other) => anyhow::bail!("--gradient-checkpointing {other}: expected off or on"),
    };
    m.model.roberta.set_gradient_checkpointing(checkpointing);
    let bound = position_bound(batch * seq, 0.15);
    let ids = Tensor::randint_low(4, vocab - 1, [batch, seq], (Kind::Int64, Device::Cpu));
    let host_mask = ids.ones_like();
    let (device_ids, device_mask) = (ids.to_device(device), host_mask.to_device(device));
    // 15% of positions, as the collator chooses them (the 80/10/10 split does not change the cost).
    let next_batch = || {
        if host_masking {
            let chosen = Tensor::rand([batch, seq], (Kind::Float, Device::Cpu)).lt(0.15);
            let labels = ids.masked_fill(&chosen.logical_not(), IGNORE);
            let inputs = ids.masked_fill(&chosen, vocab - 1);
            let (positions, targets) = labelled_positions(&labels);
            let up = |t: &Tensor| model::device::upload(t, device);
            (
                up(&inputs),
                host_mask.shallow_clone(),
                up(&positions),
                up(&targets),
            )
        } else {
            let chosen = Tensor::rand([batch, seq], (Kind::Float, device)).lt(0.15);
            let labels = device_ids.masked_fill(&chosen.logical_not(), IGNORE);
            let inputs = device_ids.masked_fill(&chosen, vocab - 1);
            let (positions, targets) = labelled_positions(&labels);
            (inputs, device_mask.shallow_clone(), positions, targets)
        }
    };

    // With graphs, every batch's positions are padded to the bound, so that all have one shape.
    let next_batch = || {
        let (inputs, mask, positions, targets) = next_batch();
        if !graphs {
            return Ok((inputs, mask, positions, targets));
        }
        let (positions, targets) =
            pad_positions(&positions, &targets, bound).with_context(|| {
                format!(
                    "{} masked positions exceed the bound {bound}",
                    positions.size()[0]
                )
            })?;
        anyhow::Ok((inputs, mask, positions, targets))
    };
    let lr = Tensor::from(1e-4f32).to_device(device);
    let mut captured: Option<(CudaGraph, [Tensor; 3], Tensor)> = None;

    // By default the host waits for the device once per step, as the reference does (`loss.item()`);
    // `--phases true` waits after each phase too, to time them apart. `host_seconds` is how long the host
    // took to queue a step's work: near `seconds_per_step`, the device waits for the host.
    let phased = args.get("phases").is_some_and(|v| v == "true");
    let profile_path = args.get("profile").map(std::path::PathBuf::from);
    let mut profile = None;
    let (mut timed, mut host) = (0.0, 0.0);
    let mut phases = [0.0f64; 3];
    let mut prepared = None;
    let mut last_loss = f64::NAN;
    for step in 0..warmup + steps {
        if step == warmup && profile_path.is_some() {
            profile = Some(model::profiler::Profile::start(device.is_cuda())?);
        }
        let mut start = Instant::now();
        let (inputs, mask, positions, targets) = match prepared.take() {
            Some(b) => b,
            None => next_batch()?,
        };
        if graphs && step == warmup && captured.is_none() {
            // The step captured on this batch; its tensors become the ones every replay reads.
            let (graph, loss) = CudaGraph::capture(device, None, || {
                opt.zero_grad();
                let loss = {
                    let _ac = model::autocast::AutocastGuard::for_precision(precision, device)?;
                    model::loss::cross_entropy(
                        &m.model
                            .loss_logits_at(&inputs, &mask, None, &positions, true),
                        &targets,
                    )
                };
                loss.backward();
                let _ = opt.clip_grad_norm(1.0);
                opt.step_at(&lr, None)?;
                Ok(loss)
            })?;
            captured = Some((
                graph,
                [
                    inputs.shallow_clone(),
                    positions.shallow_clone(),
                    targets.shallow_clone(),
                ],
                loss,
            ));
            // The capture is set-up, not a step: the step's time starts at its replay.
            start = Instant::now();
        }
        let mut t_clip = None;
        let loss = if let Some((graph, statics, loss)) = &captured {
            tch::no_grad(|| {
                for (dst, src) in statics.iter().zip([&inputs, &positions, &targets]) {
                    let mut dst = dst.shallow_clone();
                    if dst.data_ptr() != src.data_ptr() {
                        dst.copy_(src);
                    }
                }
            });
            graph.replay()?;
            loss.shallow_clone()
        } else {
            opt.zero_grad();
            let loss = {
                let _ac = model::autocast::AutocastGuard::for_precision(precision, device)?;
                let logits = m
                    .model
                    .loss_logits_at(&inputs, &mask, None, &positions, true);
                if fp32_loss {
                    model::loss::cross_entropy(&logits.to_kind(Kind::Float), &targets)
                } else {
                    model::loss::cross_entropy(&logits, &targets)
                }
            };
            loss.backward();
            if phased {
                let _ = loss.double_value(&[]); // waits for the device
            }
            let t_fwd_bwd = start.elapsed().as_secs_f64();
            let norm = opt.clip_grad_norm(1.0);
            if phased {
                let _ = norm.double_value(&[]);
            }
            t_clip = Some((t_fwd_bwd, start.elapsed().as_secs_f64()));
            opt.step(1e-4, None)?;
            loss
        };
        let queued = start.elapsed().as_secs_f64();
        if host_masking {
            prepared = Some(next_batch()?);
        }
        last_loss = loss.double_value(&[]);
        if step >= warmup {
            let total = start.elapsed().as_secs_f64();
            timed += total;
            host += queued;
            if let Some((t_fwd_bwd, t_clip)) = t_clip {
                phases[0] += t_fwd_bwd;
                phases[1] += t_clip - t_fwd_bwd;
                phases[2] += total - t_clip;
            }
        }
    }
    if let (Some(profile), Some(path)) = (profile, &profile_path) {
        profile.save(path)?;
    }
    let tokens = (batch * seq * steps) as f64;
    let per_step = |x: f64| x / steps as f64;
    let mut report = serde_json::json!({
        "impl": "medqa", "host_memory": host_memory.name(), "device": format!("{device:?}"), "precision": format!("{precision:?}"),
        "masking": if host_masking { "host" } else { "device" },
        "loss": if fp32_loss { "fp32" } else { "native" },
        "weights": weights,
        "graphs": graphs,
        "gradient_checkpointing": checkpointing,
        "tokens_per_sec": tokens / timed, "seconds_per_step": per_step(timed),
        "host_seconds": per_step(host), "last_loss": last_loss, "peak_rss_mib": peak_rss_mib(), "params": m.num_parameters(),
    });
    if phased {
        report["seconds_forward_backward"] = per_step(phases[0]).into();
        report["seconds_clip"] = per_step(phases[1]).into();
        report["seconds_optimizer"] = per_step(phases[2]).into();
    }
    println!("{report}");
    Ok(())
}
