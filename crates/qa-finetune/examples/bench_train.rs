//! QA training throughput (features/s) of the shared loop: what scripts/bench/qa.sh compares with
//! transformers, which pads every window to 384.
//!
//!     bench_train --model DIR --data FILE [--steps 30 --batch 16 --threads 2 --group-by-length true
//!                  --device cpu --precision fp32]
//!
//! Prints one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use qa_finetune::{DataConfig, QaConfig, QaFile, QaTask};

fn main() -> Result<()> {
    // As the binaries do: large host blocks freed are kept for reuse (MEDQA_HOST_MEMORY=system: not).
    let host_memory = model::host_memory::keep_freed_blocks();
    let args = text::flags::flag_pairs();
    let get = |k: &str| args.get(k).with_context(|| format!("--{k} is required"));
    let num = |k: &str, d: usize| -> Result<usize> {
        args.get(k)
            .map_or(Ok(d), |v| v.parse().with_context(|| format!("--{k} {v}")))
    };
    let (steps, batch) = (num("steps", 30)?, num("batch", 16)?);
    tch::set_num_threads(num("threads", 2)? as i32);
    let group = args.get("group-by-length").is_none_or(|v| v == "true");
    let device = args
        .get("device")
        .map_or(Ok(model::device::DeviceChoice::Cpu), |d| d.parse())?
        .resolve()?;
    let precision = args
        .get("precision")
        .map_or(Ok(Default::default()), |p| p.parse())?;
    let run = tempfile::tempdir()?;
    let cfg = QaConfig {
        output_dir: run.path().to_owned(),
        init_from: PathBuf::from(get("model")?),
        tokenizer: None,
        data: DataConfig {
            train: vec![QaFile {
                path: PathBuf::from(get("data")?),
                name: None,
                lang: None,
                weight: 1.0,
                max_samples: None,
            }],
            validation: vec![],
            max_seq_length: 384,
            doc_stride: 128,
            max_query_length: 64,
            eval_batch_size: 32,
            // medqa's own batching (padded to the batch's longest) is what the benchmark measures.
            pad_to_max_length: false,
            padding_in_loss: false,
        },
        postprocess: Default::default(),
        train: model::train::TrainConfig {
            max_steps: Some(steps as u64),
            per_device_train_batch_size: batch,
            learning_rate: 3e-5,
            weight_decay: 0.01,
            logging_steps: 1_000_000.0,
            group_by_length: group,
            precision,
            ..Default::default()
        },
    };
    let mut task = QaTask::new(&cfg, device)?;
    let features = task.train_features();
    let start = Instant::now();
    let outcome = model::train::train(&mut task, &cfg.train, device, run.path(), None)?;
    let seconds = start.elapsed().as_secs_f64();
    // The reference loop saves nothing; the trainer always writes a resumable checkpoint at the end
    // (3.3 GB at the xlm-roberta-base shape), so the steps' rate leaves that write out and both are
    // printed.
    let steps_seconds = seconds - outcome.checkpoint_seconds - outcome.eval_seconds;
    let fed = (steps * batch) as f64;
    println!(
        "{}",
        serde_json::json!({
            "impl": "medqa", "host_memory": host_memory.name(), "features": features, "steps": steps, "group_by_length": group,
            "features_per_sec": fed / steps_seconds, "seconds": steps_seconds,
            "checkpoint_seconds": outcome.checkpoint_seconds,
            "features_per_sec_with_checkpoint": fed / seconds,
            "device": model::device::describe(device),
        })
    );
    Ok(())
}
