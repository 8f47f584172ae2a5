//! Corpus tokenization throughput: the cleaned documents of a corpus config, tokenized as
//! `data-prep corpus` does (`tokenize_all`), timed. Also writes the documents as JSONL (one JSON
//! string a line) so that scripts/bench/bench_tokenize.py encodes exactly the same texts.
//!
//!     bench_tokenize --config configs/corpus-*.toml --tokenizer tokenizer.json --dump docs.jsonl [--repeat 3]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use data_prep::corpus::{for_each_document, tokenize_all, CorpusConfig};

fn main() -> Result<()> {
    let args = text::flags::flag_pairs();
    let get = |k: &str| args.get(k).with_context(|| format!("--{k} is required"));
    let repeat: usize = args.get("repeat").map_or(Ok(3), |v| v.parse())?;
    let (cfg, _): (CorpusConfig, _) = text::runconfig::load(
        Some(Path::new(get("config")?)),
        &["tokenizer=\"-\"".to_owned()],
    )?;
    let tok = text::XlmrTokenizer::from_file(Path::new(get("tokenizer")?))?;
    let mut texts = Vec::new();
    for_each_document(
        &cfg,
        &PathBuf::new(),
        |_, docs| {
            texts.extend(docs.into_iter().map(|(_, t)| t).filter(|t| !t.is_empty()));
            Ok(())
        },
        |_| {},
    )?;
    let dump = PathBuf::from(get("dump")?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&dump)?);
    for t in &texts {
        writeln!(out, "{}", serde_json::to_string(t)?)?;
    }
    out.flush()?;
    let mut best = f64::INFINITY;
    let mut tokens = 0;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let ids = tokenize_all(&tok, texts.iter().map(String::as_str))?;
        best = best.min(start.elapsed().as_secs_f64());
        tokens = ids.iter().map(Vec::len).sum::<usize>();
    }
    // The shortcut must give the full pipeline's ids on every document.
    let ids = tokenize_all(&tok, texts.iter().map(String::as_str))?;
    for (t, got) in texts.iter().zip(&ids) {
        let full = tok.encode_plain(t)?.input_ids;
        anyhow::ensure!(*got == full, "ids differ from the full pipeline on {t:?}");
    }
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{}",
        serde_json::json!({
            "impl": "medqa", "documents": texts.len(), "tokens": tokens, "seconds": best,
            "tokens_per_sec": tokens as f64 / best, "mb_per_sec": bytes as f64 / 1e6 / best,
        })
    );
    Ok(())
}
