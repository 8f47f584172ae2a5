//! `data-prep`: training inputs from raw text.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use data_prep::corpus::{build, for_each_document, summary, CorpusConfig};
use data_prep::tokenizer_train::train_unigram;

/// Build training inputs: cleaned, deduplicated, tokenized corpus shards, and tokenizers.
#[derive(Parser, Debug)]
#[command(name = "data-prep", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Clean, deduplicate, split and tokenize the sources of a corpus config into token shards.
    Corpus {
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. --set tokenizer=path/tokenizer.json (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        /// Any rejected input is an error instead of a counted skip.
        #[arg(long)]
        strict: bool,
    },
    /// Train a Unigram tokenizer in XLM-R's layout on the (cleaned) documents of a corpus config.
    Tokenizer {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 8000)]
        vocab_size: u32,
        #[arg(long)]
        out: PathBuf,
    },
}

fn load(config: &Path, overrides: &[String]) -> Result<(CorpusConfig, PathBuf)> {
    let (cfg, _): (CorpusConfig, _) = model::runconfig::load(Some(config), overrides)?;
    // Paths in configs are relative to the working directory (the project root in scripts), as in
    // every medqa config.
    Ok((cfg, PathBuf::new()))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Corpus {
            config,
            overrides,
            out,
            strict,
        } => {
            let (cfg, base) = load(&config, &overrides)?;
            let report = build(&cfg, &base, &out, strict)?;
            print!("{}", summary(&report));
            println!("shards: {}", out.display());
        }
        Command::Tokenizer {
            config,
            vocab_size,
            out,
        } => {
            // The tokenizer is what the corpus will be tokenized with, so it is not needed here.
            let (mut cfg, base) = load(&config, &["tokenizer=\"-\"".to_owned()])?;
            cfg.tokenizer = PathBuf::new();
            let mut texts = Vec::new();
            let mut rejects = 0;
            for_each_document(
                &cfg,
                &base,
                |_, docs| {
                    texts.extend(docs.into_iter().map(|(_, t)| t).filter(|t| !t.is_empty()));
                    Ok(())
                },
                |_| rejects += 1,
            )?;
            let size = train_unigram(&texts, vocab_size, &out).context("training the tokenizer")?;
            println!(
                "tokenizer: {} ({size} tokens, from {} documents; {rejects} inputs rejected)",
                out.display(),
                texts.len()
            );
        }
    }
    Ok(())
}
