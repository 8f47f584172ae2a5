//! The life of a training run, written once for `mlm-pretrain` and `qa-finetune`: the command line
//! ([`RunArgs`]), then [`train`]: resolve the configuration and the device, lock and prepare the run
//! directory, build the task, record the manifest, run the loop, write the final model and
//! `eval_results.json`. A binary says what differs through [`Job`].

mod args;
mod model_card;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use model::dist::{ProcessGroup, World};
use model::train::manifest::{hash_path, Manifest};
use model::train::trainer::format_metrics;
use model::train::{run_dir, Task, TrainConfig, TrainOutcome};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use args::RunArgs;
pub use fsutil::write_json;

/// A run that stopped on request (a signal) with a checkpoint at its step, to be resumed.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped as asked (a signal) at step {step}: {} holds it; the same command with --resume goes on",
    checkpoint.display()
)]
pub struct Interrupted {
    pub step: u64,
    pub checkpoint: PathBuf,
}

/// A training binary's exit status: 0, 75 for a run stopped by a signal (`Interrupted`: try again with
/// `--resume`, as a job script may), 1 for any other error; errors are printed as anyhow's `main`
/// prints them.
pub fn exit(result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            if e.is::<Interrupted>() {
                std::process::ExitCode::from(model::train::stop::EXIT_STATUS)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// What a training binary adds to the common run: its configuration type and task.
pub trait Job: DeserializeOwned + Serialize {
    type Task: Task;
    /// The binary's name, for the manifest and messages.
    const NAME: &'static str;
    /// The Hugging Face pipeline its models serve (`fill-mask`, `question-answering`), for the model card.
    const PIPELINE_TAG: &'static str;
    /// Settings (`dotted.key`, TOML value) this binary defaults otherwise than [`TrainConfig`]'s
    /// defaults, applied where the configuration file and `--set` leave them out.
    const DEFAULTS: &'static [(&'static str, &'static str)] = &[];

    fn output_dir(&self) -> &Path;
    fn train_config(&self) -> &TrainConfig;
    /// Builds the task on `device`; the run directory is already locked and prepared.
    fn task(&self, device: tch::Device) -> Result<Self::Task>;
    /// The input files whose SHA-256 the manifest records.
    fn inputs(&self, task: &Self::Task) -> Vec<PathBuf>;
    /// One line on what is about to be trained (parameters, examples).
    fn describe(&self, task: &Self::Task) -> String;
    /// Writes the final model into `dir` once the loop is done.
    fn save_final(&self, task: &mut Self::Task, outcome: &TrainOutcome, dir: &Path) -> Result<()>;
}

/// Trains `J` as `args` say; `version` is the binary's (`env!("CARGO_PKG_VERSION")`).
///
/// Launched by torchrun or SLURM (see `model::dist::World`), this process is one rank of a
/// data-parallel run: every rank builds the task, the ranks check they agree on configuration, model
/// and inputs, and rank 0 alone locks and writes the run directory (which must be on a file system
/// every rank reads, for `--resume`).
pub fn train<J: Job>(args: &RunArgs, version: &str) -> Result<()> {
    if args.check_device {
        println!("{}", model::device::report(args.device)?);
        return Ok(());
    }
    let world = World::from_env()?;
    let (job, resolved): (J, _) = args.config(J::DEFAULTS)?;
    // Settings errors before any data is read or a device is joined (the loop checks them again).
    job.train_config().validate().with_context(|| {
        let file = args.config.as_deref().map(Path::display);
        format!(
            "invalid [train] settings in {} (after overrides)",
            file.map_or("the configuration".into(), |f| f.to_string())
        )
    })?;
    // Before anything runs on the device: cuBLAS reads its workspace setting at its first matmul.
    if job.train_config().full_determinism {
        model::determinism::set_full_determinism(true)?;
    }
    let device = rank_device(&world, args.device.resolve()?)?;
    let group = if world.is_distributed() {
        let timeout = std::time::Duration::from_secs(args.dist_timeout);
        Some(ProcessGroup::join(&world, device, timeout)?)
    } else {
        None
    };
    let out = job.output_dir().to_owned();
    let (_lock, resume_from) = prepare_run_dir(&out, &args.start(), &world, group.as_ref())?;
    let mut task = job.task(device)?;
    let inputs = job
        .inputs(&task)
        .iter()
        .map(|p| hash_path(p))
        .collect::<Result<Vec<_>>>()?;
    let cfg = job.train_config();
    if let Some(group) = &group {
        group.check_same("the configuration", &serde_json::to_vec(&resolved)?)?;
        group.check_same("the model's parameters", &parameter_shapes(&task))?;
        group.check_same("the input files", &serde_json::to_vec(&inputs)?)?;
    }
    let mut manifest = Manifest::with_hashes(
        J::NAME,
        version,
        cfg.seed,
        device,
        resolved,
        inputs,
        world.size as u64,
    )?;
    manifest.effective_config = serde_json::to_value(&job)?;
    if world.is_main() {
        manifest.write(&out)?;
        let ranks = match group {
            None => String::new(),
            Some(_) => format!(", {} process(es) ({:?})", world.size, world.launcher),
        };
        eprintln!(
            "{}: {}, device {device:?}{ranks}",
            J::NAME,
            job.describe(&task)
        );
    }
    let resume = resume_from.as_deref();
    // From here a signal asks for a checkpoint and a clean stop; before, it ends the process at once
    // (nothing would be lost, and Ctrl-C during a long preparation should not wait for a step).
    model::train::stop::install()?;
    let outcome =
        model::train::train_in_group(&mut task, cfg, device, &out, resume, group.as_ref())?;
    if outcome.interrupted {
        if let Some(group) = group {
            group.barrier()?;
            group.shutdown()?;
        }
        return Err(Interrupted {
            step: outcome.steps,
            checkpoint: model::train::checkpoint::dir_for(&out, outcome.steps),
        }
        .into());
    }
    if !world.is_main() {
        // Stay in the group until rank 0 has written the model (the store may be ours to host).
        return group.map_or(Ok(()), |g| {
            g.barrier()?;
            g.shutdown()
        });
    }
    let final_dir = out.join("final");
    let finished = (|| -> Result<()> {
        job.save_final(&mut task, &outcome, &final_dir)?;
        let name = out
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy());
        let card = model_card::model_card(&name, J::PIPELINE_TAG, &manifest, cfg, &outcome);
        fsutil::write_atomic(&final_dir.join("README.md"), |w| {
            w.write_all(card.as_bytes())
        })?;
        write_json(&out.join("eval_results.json"), &outcome.last_eval)?;
        let train_file = out.join("train_results.json");
        // A run resumed at its end trained nothing: its figures stay those of the run that did.
        if outcome.steps_this_run > 0 || !train_file.exists() {
            write_json(&train_file, &train_results(&outcome))?;
        }
        Ok(())
    })();
    if let Some(group) = group {
        group.barrier()?;
        group.shutdown()?;
    }
    finished?;
    report(&outcome, &final_dir);
    Ok(())
}

/// Rank 0 locks and checks the run directory before the task reads or builds anything (the lock is held
/// for the whole run); the other ranks wait for it, then read where to resume from.
fn prepare_run_dir(
    out: &Path,
    start: &run_dir::Start,
    world: &World,
    group: Option<&ProcessGroup>,
) -> Result<(Option<run_dir::RunLock>, Option<PathBuf>)> {
    let prepared = world.is_main().then(|| run_dir::prepare(out, start));
    if let Some(group) = group {
        let ok = prepared.as_ref().is_none_or(|p| p.is_ok());
        if !group.all_ok(ok)? && ok {
            bail!(
                "rank 0 could not prepare the run directory {} (its message says why)",
                out.display()
            );
        }
    }
    Ok(match prepared {
        Some(prepared) => {
            let (lock, resume) = prepared?;
            (Some(lock), resume)
        }
        None => (None, run_dir::resume_point(out, start)?),
    })
}

/// `train_results.json`: the run's figures under the names run_qa.py's `train_results.json` gives them,
/// and medqa's own beside them.
fn train_results(outcome: &TrainOutcome) -> serde_json::Value {
    let seconds = outcome.train_seconds.max(1e-9);
    let mut results = serde_json::json!({
        "epoch": outcome.epoch,
        "global_step": outcome.steps,
        "train_loss": outcome.train_loss,
        "train_runtime": outcome.train_seconds,
        "train_steps_per_second": outcome.steps_this_run as f64 / seconds,
        "train_tokens_per_second": outcome.train_tokens as f64 / seconds,
        "eval_seconds": outcome.eval_seconds,
        "checkpoint_seconds": outcome.checkpoint_seconds,
        "stopped_early": outcome.stopped_early,
        "skipped_nonfinite_steps": outcome.skipped_nonfinite_steps,
    });
    if let Some(seen) = outcome.num_input_tokens_seen {
        results["num_input_tokens_seen"] = seen.into();
    }
    results
}

fn report(outcome: &TrainOutcome, final_dir: &Path) {
    println!(
        "trained {} steps; {}",
        outcome.steps,
        format_metrics(&outcome.last_eval)
    );
    // As transformers' train_runtime: the loop's wall clock, evaluation and checkpoints included.
    println!(
        "train runtime {:.2} s, {:.0} tokens/s (evaluation {:.2} s, checkpoints {:.2} s)",
        outcome.train_seconds,
        outcome.train_tokens as f64 / outcome.train_seconds.max(1e-9),
        outcome.eval_seconds,
        outcome.checkpoint_seconds
    );
    if outcome.stopped_early {
        println!(
            "stopped early at step {} (train.early_stopping_patience)",
            outcome.steps
        );
    }
    if let Some(step) = outcome.final_from_best {
        println!("final model: the best checkpoint, step {step} (train.load_best_model_at_end)");
    }
    if outcome.skipped_nonfinite_steps > 0 {
        println!(
            "skipped {} steps with a non-finite loss or gradient",
            outcome.skipped_nonfinite_steps
        );
    }
    println!("model: {}", final_dir.display());
}

/// The device this rank trains on: on CUDA, the GPU of its local rank.
fn rank_device(world: &World, chosen: tch::Device) -> Result<tch::Device> {
    let device = world.device(chosen);
    if let tch::Device::Cuda(index) = device {
        let count = tch::Cuda::device_count() as usize;
        if index >= count {
            bail!(
                "local rank {} needs CUDA device {index}, but only {count} are visible",
                world.local_rank
            );
        }
    }
    Ok(device)
}

/// Every variable's name, shape and kind, in name order: what must agree between ranks.
fn parameter_shapes<T: Task>(task: &T) -> Vec<u8> {
    let mut shapes: Vec<String> = task
        .variables()
        .iter()
        .map(|(name, t)| format!("{name} {:?} {:?}", t.size(), t.kind()))
        .collect();
    shapes.sort();
    shapes.join("\n").into_bytes()
}
