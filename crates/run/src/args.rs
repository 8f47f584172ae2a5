//! The command-line arguments every training binary takes, and what they resolve to.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use model::device::DeviceChoice;
use model::train::run_dir::Start;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run configuration (TOML, see configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key, e.g. --set train.learning_rate=3e-5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue the run in output_dir from its latest checkpoint, or from the checkpoint given.
    #[arg(long, num_args = 0..=1, value_name = "CHECKPOINT", conflicts_with = "overwrite")]
    pub resume: Option<Option<PathBuf>>,
    /// Replace an existing run in output_dir.
    #[arg(long)]
    pub overwrite: bool,
    /// Continue from output_dir's latest checkpoint when it has one, else start a new run (run_qa.py's
    /// way): one command line for a job that may have been stopped and requeued.
    #[arg(long, conflicts_with_all = ["resume", "overwrite"])]
    pub auto_resume: bool,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Print the libtorch build, CUDA availability and the chosen device, then exit.
    #[arg(long)]
    pub check_device: bool,
    /// Data-parallel runs (torchrun, SLURM): seconds a rank waits for the others at any collective
    /// before it stops with an error, so a rank that died never leaves the rest hanging. Rank 0's
    /// evaluations and checkpoints must fit in it.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub dist_timeout: u64,
}

impl RunArgs {
    /// The typed configuration (after `--set` overrides, with `defaults` where neither sets a key) and
    /// its resolved tree for the manifest.
    pub fn config<T: DeserializeOwned>(
        &self,
        defaults: &[(&str, &str)],
    ) -> Result<(T, serde_json::Value)> {
        let file: &Path = self
            .config
            .as_deref()
            .context("--config is required to train (see configs/)")?;
        model::runconfig::load_with_defaults(Some(file), defaults, &self.overrides)
    }

    pub fn start(&self) -> Start {
        if self.auto_resume {
            return Start::ResumeIfAny;
        }
        match (&self.resume, self.overwrite) {
            (Some(ckpt), _) => Start::Resume(ckpt.clone()),
            (None, true) => Start::Overwrite,
            (None, false) => Start::Fresh,
        }
    }
}
