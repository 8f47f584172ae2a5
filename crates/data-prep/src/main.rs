//! Corpus assembly, tokenizer training and QA-set repair (issue #4).

use anyhow::{bail, Result};
use clap::Parser;

/// Build training inputs: cleaned, deduplicated, tokenized corpus shards; tokenizers; merged QA sets.
///
/// Not implemented yet (issue #4).
#[derive(Parser, Debug)]
#[command(name = "data-prep", version)]
struct Args {}

fn main() -> Result<()> {
    let _args = Args::parse();
    bail!("data preparation is not implemented yet (issue #4); only --help works")
}
