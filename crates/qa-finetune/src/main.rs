//! Extractive QA fine-tuning and prediction (training and prediction: issue #6).

use anyhow::{bail, Result};
use clap::Parser;
use model::device::DeviceChoice;

/// Fine-tune XLM-RoBERTa for extractive question answering (start/end token classification).
///
/// Training is not implemented yet (issue #6); `--check-device` reports what libtorch sees.
#[derive(Parser, Debug)]
#[command(name = "qa-finetune", version)]
struct Args {
    /// Run configuration (TOML in configs/).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Print the libtorch build, CUDA availability and the chosen device, then exit.
    #[arg(long)]
    check_device: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.check_device {
        println!("{}", model::device::report(args.device)?);
        return Ok(());
    }
    bail!("QA fine-tuning is not implemented yet (issue #6); only --help and --check-device work")
}
