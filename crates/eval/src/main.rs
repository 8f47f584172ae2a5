//! EM/F1 scoring with official-script parity and nightly evaluation (issue #3).

use anyhow::{bail, Result};
use clap::Parser;

/// Score extractive-QA predictions (SQuAD v1.1/v2.0, BioASQ) and run nightly evaluations.
///
/// Not implemented yet (issue #3).
#[derive(Parser, Debug)]
#[command(name = "eval", version)]
struct Args {}

fn main() -> Result<()> {
    let _args = Args::parse();
    bail!("evaluation is not implemented yet (issue #3); only --help works")
}
