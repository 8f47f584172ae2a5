//! Domain-adaptive masked-language-model training of XLM-RoBERTa (training itself: issue #5).

use anyhow::{bail, Result};
use clap::Parser;
use model::device::DeviceChoice;

/// Continue pre-training XLM-RoBERTa on in-domain text with the masked-language-model objective.
///
/// Training is not implemented yet (issue #5); `--check-device` reports what libtorch sees.
#[derive(Parser, Debug)]
#[command(name = "mlm-pretrain", version)]
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
    bail!("MLM training is not implemented yet (issue #5); only --help and --check-device work")
}
