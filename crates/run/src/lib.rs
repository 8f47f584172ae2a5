//! The life of a training run, written once for `mlm-pretrain` and `qa-finetune`: the command line
//! ([`RunArgs`]), then [`train`]: resolve the configuration and the device, lock and prepare the run
//! directory, build the task, record the manifest, run the loop, write the final model and
//! `eval_results.json`. A binary says what differs through [`Job`].

mod args;

use std::path::{Path, PathBuf};

use anyhow::Result;
use model::train::manifest::Manifest;
use model::train::trainer::format_metrics;
use model::train::{run_dir, Task, TrainConfig, TrainOutcome};
use serde::de::DeserializeOwned;

pub use args::RunArgs;
pub use fsutil::write_json;

/// What a training binary adds to the common run: its configuration type and task.
pub trait Job: DeserializeOwned {
    type Task: Task;
    /// The binary's name, for the manifest and messages.
    const NAME: &'static str;

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
pub fn train<J: Job>(args: &RunArgs, version: &str) -> Result<()> {
    if args.check_device {
        println!("{}", model::device::report(args.device)?);
        return Ok(());
    }
    let (job, resolved): (J, _) = args.config()?;
    let device = args.device.resolve()?;
    let out = job.output_dir().to_owned();
    // Locked and checked before the task reads or builds anything.
    let (_lock, resume_from) = run_dir::prepare(&out, &args.start())?;
    let mut task = job.task(device)?;
    let inputs = job.inputs(&task);
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let cfg = job.train_config();
    Manifest::new(J::NAME, version, cfg.seed, device, resolved, &inputs)?.write(&out)?;
    eprintln!("{}: {}, device {device:?}", J::NAME, job.describe(&task));
    let outcome = model::train::train(&mut task, cfg, device, &out, resume_from.as_deref())?;
    let final_dir = out.join("final");
    job.save_final(&mut task, &outcome, &final_dir)?;
    write_json(&out.join("eval_results.json"), &outcome.last_eval)?;
    println!(
        "trained {} steps; {}",
        outcome.steps,
        format_metrics(&outcome.last_eval)
    );
    if outcome.skipped_nonfinite_steps > 0 {
        println!(
            "skipped {} steps with a non-finite loss or gradient",
            outcome.skipped_nonfinite_steps
        );
    }
    println!("model: {}", final_dir.display());
    Ok(())
}
