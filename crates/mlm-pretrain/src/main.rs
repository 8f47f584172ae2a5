//! `mlm-pretrain`: continue pre-training XLM-RoBERTa on in-domain text (masked-language modelling).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use mlm_pretrain::{fill_mask::fill_mask, MlmConfig};
use model::device::DeviceChoice;
use run::RunArgs;

/// Domain-adaptive masked-language-model training of XLM-RoBERTa on data-prep's token shards.
///
/// Writes a run directory: manifest.json, train_log.jsonl, tb/ (TensorBoard), checkpoints/step-N/,
/// final/ (a Hugging Face model directory) and eval_results.json.
#[derive(Parser, Debug)]
#[command(name = "mlm-pretrain", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Most probable fillers of each <mask> in a text.
    FillMask {
        /// A Hugging Face model directory with tokenizer.json (e.g. RUN/final).
        #[arg(long)]
        model: PathBuf,
        /// Fillers shown per <mask>.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Text containing <mask>.
        text: String,
    },
}

fn main() -> std::process::ExitCode {
    run::exit(main_result())
}

fn main_result() -> Result<()> {
    // Before the first tensor: large host blocks freed from here on are kept for reuse.
    model::host_memory::keep_freed_blocks();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::FillMask {
            model,
            top_k,
            device,
            text,
        }) => {
            let fillers = fill_mask(&model, &text, top_k, device.resolve()?)?;
            for (i, list) in fillers.iter().enumerate() {
                println!("<mask> #{}:", i + 1);
                for f in list {
                    println!("  {:>7.4}  {}", f.probability, f.token);
                }
            }
            Ok(())
        }
        None => run::train::<MlmConfig>(&cli.train, env!("CARGO_PKG_VERSION")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
