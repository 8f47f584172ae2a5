//! A SentencePiece-style Unigram tokenizer in XLM-R's layout, for models trained from scratch when the
//! real XLM-R tokenizer is not at hand: `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3, `<mask>` last, NFKC,
//! `▁` word boundaries, and RoBERTa's pair template `<s> A </s></s> B </s>`; trained on a corpus
//! config's documents with its rejects and a record beside the tokenizer.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Model, PreTokenizerWrapper, TokenizerBuilder};

pub const SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// What `data-prep tokenizer` did, written beside the tokenizer as `OUT.run.json`.
#[derive(Debug, serde::Serialize)]
pub struct TokenizerRun {
    pub vocab_size_requested: u32,
    /// Pieces in the tokenizer: at most the request, fewer from a small corpus.
    pub vocab_size: usize,
    /// Documents it learnt from (cleaned, non-empty).
    pub documents: u64,
    pub characters: u64,
    /// Inputs that could not be read, each in `OUT.rejects.jsonl` with its file, line and reason.
    pub rejects: u64,
    pub rejects_by_source: std::collections::BTreeMap<String, u64>,
    pub config: crate::corpus::CorpusConfig,
    /// Version, git commit and the SHA-256 of every source file (`fsutil::provenance::inputs_record`:
    /// no time, so a re-run writes the same bytes, as it does the tokenizer).
    pub provenance: serde_json::Value,
}

/// The files `data-prep tokenizer --out OUT` writes: OUT, `OUT.rejects.jsonl`, `OUT.run.json`.
pub fn outputs(out: &Path) -> [PathBuf; 3] {
    [
        out.to_path_buf(),
        crate::beside(out, ".rejects.jsonl"),
        crate::beside(out, ".run.json"),
    ]
}

/// Trains on the documents of `cfg`'s sources (cleaned as the corpus cleans them) and writes the
/// tokenizer with its rejects and record ([`outputs`]); every location is checked before any document
/// is read. `strict`: a reject is an error.
pub fn train_from_corpus(
    cfg: &crate::corpus::CorpusConfig,
    base: &Path,
    vocab_size: u32,
    out: &Path,
    strict: bool,
) -> Result<TokenizerRun> {
    let [_, rejects_path, run_path] = outputs(out);
    for path in outputs(out) {
        fsutil::check_output_file(&path)?;
    }
    // The tokenizer, its rejects and its record come from one run, not two started at once.
    let _held = fsutil::lock::lock_output_file(out, "tokenizer training")?;
    let files = crate::corpus::validate_sources(cfg, base)?;
    let sources: Vec<&Path> = files.iter().flatten().map(PathBuf::as_path).collect();
    let provenance = fsutil::provenance::inputs_record(
        "data-prep tokenizer",
        env!("CARGO_PKG_VERSION"),
        &sources,
    )?;
    let mut texts = Vec::new();
    let mut rejects = Vec::new();
    crate::corpus::for_each_document(
        cfg,
        base,
        |_, docs| {
            texts.extend(docs.into_iter().map(|(_, t)| t).filter(|t| !t.is_empty()));
            Ok(())
        },
        |r| rejects.push(r),
    )?;
    if strict {
        crate::sources::refuse_rejects(&rejects)?;
    }
    crate::sources::write_rejects(&rejects_path, &rejects)?;
    // The trainer reports no progress of its own: a spinner with the elapsed time says it is working.
    let spinner = text::progress::spinner(format!(
        "training the tokenizer on {} documents",
        texts.len()
    ));
    let vocab = train_unigram(&texts, vocab_size, out).context("training the tokenizer")?;
    spinner.finish_and_clear();
    let run = TokenizerRun {
        vocab_size_requested: vocab_size,
        vocab_size: vocab,
        documents: texts.len() as u64,
        characters: texts.iter().map(|t| t.chars().count() as u64).sum(),
        rejects: rejects.len() as u64,
        rejects_by_source: crate::sources::rejects_by_source(&rejects),
        config: cfg.clone(),
        provenance,
    };
    fsutil::write_json(&run_path, &run)?;
    Ok(run)
}

/// Trains on `texts` and writes `tokenizer.json` to `out` (atomically).
pub fn train_unigram(texts: &[String], vocab_size: u32, out: &Path) -> Result<usize> {
    let err = |e: tokenizers::Error| anyhow!("tokenizer training: {e}");
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::WhitespaceSplit(WhitespaceSplit),
        PreTokenizerWrapper::Metaspace(Metaspace::new('\u{2581}', PrependScheme::Always, true)),
    ]);
    let post = TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .map_err(|e| anyhow!(e))?
        .try_pair("<s> $A </s> </s> $B </s>")
        .map_err(|e| anyhow!(e))?
        .special_tokens(vec![("<s>", 0), ("</s>", 2)])
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(Unigram::default())
        .with_normalizer(Some(NFKC))
        .with_pre_tokenizer(Some(pre))
        .with_post_processor(Some(post))
        .with_decoder(Some(MetaspaceDecoder::new(
            '\u{2581}',
            PrependScheme::Always,
            true,
        )))
        .build()
        .map_err(err)?;
    // The trainer places its special tokens first, in this order; <mask> is added after, so it is last.
    let mut trainer = UnigramTrainer::builder()
        .show_progress(false)
        .vocab_size(vocab_size.saturating_sub(1))
        .special_tokens(
            SPECIALS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .unk_token(Some("<unk>".to_owned()))
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    tokenizer.train(&mut trainer, texts.iter()).map_err(err)?;
    // The trainer sums floats in an order that varies between processes (hash-map iteration, parallel
    // EM), so scores differ in their last bits and ties come out in any order. Rounding scores to 1e-9
    // and sorting makes the same corpus give the same tokenizer.json.
    let trained = tokenizer.get_model().clone();
    let unk_id = trained.token_to_id("<unk>").map(|id| id as usize);
    let mut vocab: Vec<(String, f64)> = trained
        .iter()
        .map(|(piece, score)| (piece.to_owned(), (score * 1e9).round() / 1e9))
        .collect();
    // Pieces of equal score come out in hash order; order them by score, then text (specials stay first).
    vocab[SPECIALS.len()..].sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    // Below every learnt piece the trainer appends the pieces it must keep (required characters, and
    // pieces that fill the vocabulary), their scores stepping down by 1e-4 in hash order, so which piece
    // gets which step changes from run to run. That tail is the longest suffix whose scores step by at
    // most that much (it may hold multi-character pieces); it keeps its scores, given in piece order.
    const TAIL_STEP: f64 = 1.5e-4;
    let mut start = vocab.len() - 1;
    while start > SPECIALS.len() && vocab[start - 1].1 - vocab[start].1 <= TAIL_STEP {
        start -= 1;
    }
    let scores: Vec<f64> = vocab[start..].iter().map(|(_, s)| *s).collect();
    vocab[start..].sort_by(|a, b| a.0.cmp(&b.0));
    for ((_, s), score) in vocab[start..].iter_mut().zip(scores) {
        *s = score;
    }
    let rounded = Unigram::from(vocab, unk_id, false).map_err(err)?;
    tokenizer.with_model(rounded);
    tokenizer.add_special_tokens(&SPECIALS.map(|t| AddedToken::from(t, true)));
    tokenizer.add_special_tokens(&[AddedToken::from("<mask>", true).lstrip(true)]);
    let json = tokenizer.to_string(false).map_err(err)?;
    fsutil::write_atomic(out, |w| w.write_all(json.as_bytes()))?;
    Ok(tokenizer.get_vocab_size(true))
}
