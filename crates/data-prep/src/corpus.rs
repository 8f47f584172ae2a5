//! `data-prep corpus`: sources → cleaned, deduplicated, split, tokenized shards with a manifest.
//!
//! Sources are read file by file in a fixed order and processed in chunks (cleaning and tokenization in
//! parallel, decisions in order), so the output is byte-identical for the same inputs and memory stays
//! bounded by the chunk size plus 16 bytes per kept document for deduplication.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use text::shards::{ShardInfo, ShardManifest, ShardWriter, FORMAT, MANIFEST};
use text::XlmrTokenizer;

use crate::clean::{clean, dedup_key, split_bucket};
use crate::near_dup::{signature, NearDupConfig, NearDupIndex};
use crate::sources::{refuse_rejects, rejects_by_source, write_rejects, Record, Reject, Source};
use crate::staging::Staging;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// The `tokenizer.json` to tokenize with.
    pub tokenizer: PathBuf,
    pub sources: Vec<Source>,
    #[serde(default = "default_min_chars")]
    pub min_chars: usize,
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    /// Documents per thousand that go to the validation split (by hash of the text).
    #[serde(default = "default_validation")]
    pub validation_permille: u32,
    #[serde(default)]
    pub split_salt: u64,
    /// Tokens per shard before a new one starts.
    #[serde(default = "default_shard_tokens")]
    pub shard_tokens: u64,
    /// Language balancing of the training split as in XLM-R: language l gets the share
    /// q_l ∝ p_l^α of its share p_l (by characters, after source weights); α = 1 keeps the natural
    /// mix, α → 0 evens it out. Unset: no balancing.
    #[serde(default)]
    pub language_alpha: Option<f64>,
    /// Language identification: a source with `language = "auto"` keeps a document only when the
    /// detected language's confidence (0–1) reaches this; for declared languages, detections this
    /// confident that disagree are counted in the report (the declared language is kept).
    #[serde(default = "default_language_confidence")]
    pub language_min_confidence: f64,
    /// Near-duplicate removal (MinHash/LSH over word shingles); unset: exact duplicates only.
    #[serde(default)]
    pub near_duplicates: Option<NearDupConfig>,
}

fn default_language_confidence() -> f64 {
    0.5
}

fn default_min_chars() -> usize {
    20
}
fn default_max_chars() -> usize {
    1_000_000
}
fn default_validation() -> u32 {
    50
}
fn default_shard_tokens() -> u64 {
    64 << 20
}

/// Counts per (language, source) and split.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub documents: u64,
    pub characters: u64,
    pub tokens: u64,
}

/// How often one language × source is written to the training split.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Sampling {
    /// Share of the language before and after balancing (by weighted characters).
    pub natural_share: f64,
    pub balanced_share: f64,
    /// Copies per document: whole copies, plus one more for this fraction of documents (by hash).
    pub rate: f64,
    pub tokens_written: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// "language/source/split" → counts.
    pub kept: BTreeMap<String, Counts>,
    /// "language/source" → sampling of the training split (present with weights or balancing).
    #[serde(default)]
    pub sampling: BTreeMap<String, Sampling>,
    /// "source: declared→detected" → documents whose confident detection disagrees.
    #[serde(default)]
    pub language_mismatches: BTreeMap<String, u64>,
    /// reason → documents dropped.
    pub dropped: BTreeMap<String, u64>,
    /// "source/reason" → documents dropped.
    #[serde(default)]
    pub dropped_by_source: BTreeMap<String, u64>,
    pub rejects: u64,
    /// source → inputs rejected (see `rejects.jsonl`).
    #[serde(default)]
    pub rejects_by_source: BTreeMap<String, u64>,
}

/// The statistics table written as `statistics.parquet`: one row per language × source × split kept
/// (documents, characters, tokens), and one per source × reason dropped or rejected.
pub fn statistics_table(report: &Report) -> Result<tables::polars::prelude::DataFrame> {
    use tables::polars::prelude::Column;
    let mut kind = Vec::new();
    let (mut lang, mut source, mut split, mut reason) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut docs, mut chars, mut toks) = (Vec::new(), Vec::new(), Vec::new());
    for (key, c) in &report.kept {
        let mut parts = key.splitn(3, '/');
        let (l, rest) = (parts.next().unwrap_or(""), parts.collect::<Vec<_>>());
        let (src, sp) = match rest.as_slice() {
            [src, sp] => (*src, *sp),
            _ => ("", ""),
        };
        kind.push("kept");
        lang.push(Some(l.to_owned()));
        source.push(src.to_owned());
        split.push(Some(sp.to_owned()));
        reason.push(None);
        docs.push(c.documents);
        chars.push(Some(c.characters));
        toks.push(Some(c.tokens));
    }
    let dropped = report
        .dropped_by_source
        .iter()
        .map(|(k, n)| ("dropped", k, *n));
    let rejected = report
        .rejects_by_source
        .iter()
        .map(|(k, n)| ("rejected", k, *n));
    for (what, key, n) in dropped.chain(rejected) {
        let (src, why) = match what {
            "dropped" => key.split_once('/').unwrap_or((key.as_str(), "")),
            _ => (
                key.as_str(),
                "unreadable or malformed input (see rejects.jsonl)",
            ),
        };
        kind.push(what);
        lang.push(None);
        source.push(src.to_owned());
        split.push(None);
        reason.push(Some(why.to_owned()));
        docs.push(n);
        chars.push(None);
        toks.push(None);
    }
    tables::frame(vec![
        Column::new("kind".into(), kind),
        Column::new("language".into(), lang),
        Column::new("source".into(), source),
        Column::new("split".into(), split),
        Column::new("reason".into(), reason),
        Column::new("documents".into(), docs),
        Column::new("characters".into(), chars),
        Column::new("tokens".into(), toks),
    ])
}

struct SplitWriter {
    dir: PathBuf,
    split: &'static str,
    /// The one language of the documents, for per-language splits.
    language: Option<String>,
    max_tokens: u64,
    current: Option<ShardWriter>,
    tokens: u64,
    done: Vec<ShardInfo>,
}

impl SplitWriter {
    fn new(dir: &Path, split: &'static str, language: Option<&str>, max_tokens: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            split,
            language: language.map(str::to_owned),
            max_tokens,
            current: None,
            tokens: 0,
            done: Vec::new(),
        }
    }

    fn push(&mut self, ids: &[u32]) -> Result<()> {
        if self.current.is_none() || self.tokens >= self.max_tokens {
            self.roll()?;
            let name = match &self.language {
                Some(l) => format!("{}-{}-{:05}", self.split, file_safe(l), self.done.len()),
                None => format!("{}-{:05}", self.split, self.done.len()),
            };
            self.current = Some(ShardWriter::create_in(
                &self.dir,
                &name,
                self.split,
                self.language.as_deref(),
            )?);
            self.tokens = 0;
        }
        self.tokens += ids.len() as u64;
        self.current.as_mut().expect("opened above").push(ids)
    }

    fn roll(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            self.done.push(w.finish()?);
        }
        Ok(())
    }
}

/// A language code as part of a file name: letters, digits and `-` kept, anything else `_`.
fn file_safe(language: &str) -> String {
    language
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Documents handed on at a time: a file is never held whole, so memory is bounded by this many
/// records (plus the dedup keys of kept documents), whatever the size of the input files.
const CHUNK: usize = 4096;

/// Cleaned documents of all sources, with rejects, for tokenizer training and for `build`; the
/// documents come in chunks of at most `CHUNK`, streamed from each file as it is read, with a progress
/// bar over the sources.
pub fn for_each_document(
    cfg: &CorpusConfig,
    base: &Path,
    mut f: impl FnMut(&Source, Vec<(Record, String)>) -> Result<()>,
    mut on_reject: impl FnMut(Reject),
) -> Result<()> {
    let files = validate_sources(cfg, base)?;
    let bar = text::progress::progress_bar(cfg.sources.len() as u64, 0, "sources");
    for (source, files) in cfg.sources.iter().zip(files) {
        bar.set_message(source.name.clone());
        for file in files {
            let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
            let mut failure = None;
            source.read(
                &file,
                &mut |r| {
                    if failure.is_some() {
                        return;
                    }
                    chunk.push(r);
                    if chunk.len() == CHUNK {
                        if let Err(e) = f(source, clean_chunk(&mut chunk)) {
                            failure = Some(e);
                        }
                    }
                },
                &mut on_reject,
            )?;
            if let Some(e) = failure {
                return Err(e);
            }
            if !chunk.is_empty() {
                f(source, clean_chunk(&mut chunk))?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Empties `chunk` into (record, cleaned text) pairs, cleaning in parallel.
fn clean_chunk(chunk: &mut Vec<Record>) -> Vec<(Record, String)> {
    let cleaned: Vec<String> = chunk.par_iter().map(|r| clean(&r.text)).collect();
    chunk.drain(..).zip(cleaned).collect()
}

/// Every source's files, checked before any document is read: a path that matches nothing or a
/// table without its column stops the run at once, naming the source, not after earlier sources
/// have been processed.
pub fn validate_sources(cfg: &CorpusConfig, base: &Path) -> Result<Vec<Vec<PathBuf>>> {
    cfg.sources
        .iter()
        .map(|source| {
            let files = source.files(base)?;
            for file in &files {
                source.check(file)?;
            }
            Ok(files)
        })
        .collect()
}

/// Token ids of every text (no special tokens), in parallel, in order: the corpus's tokenization step.
pub fn tokenize_all<'a>(
    tok: &XlmrTokenizer,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Vec<u32>>> {
    let texts: Vec<&str> = texts.into_iter().collect();
    texts.par_iter().map(|t| tok.encode_ids(t)).collect()
}

/// What decides duplicates: the exact keys and the near-duplicate index of the documents kept so far.
struct Dedup {
    seen: HashSet<[u8; 16]>,
    near: Option<(NearDupConfig, NearDupIndex)>,
}

impl Dedup {
    fn new(cfg: &CorpusConfig) -> Result<Self> {
        if let Some(c) = &cfg.near_duplicates {
            c.validate()?;
        }
        Ok(Self {
            seen: HashSet::new(),
            near: cfg.near_duplicates.map(|c| (c, NearDupIndex::new(c))),
        })
    }

    /// MinHash signatures of a chunk's texts (in parallel), when near-duplicates are removed.
    fn signatures(&self, texts: &[&str]) -> Vec<Option<Vec<u32>>> {
        match &self.near {
            Some((c, _)) => texts.par_iter().map(|t| signature(t, c)).collect(),
            None => vec![None; texts.len()],
        }
    }
}

/// Why a cleaned document is dropped (`None`: kept); kept documents join `dedup`.
fn drop_reason(
    text: &str,
    sig: Option<&[u32]>,
    min_chars: usize,
    max_chars: usize,
    dedup: &mut Dedup,
) -> Option<&'static str> {
    let chars = text.chars().count();
    if chars == 0 {
        Some("empty")
    } else if chars < min_chars {
        Some("too_short")
    } else if chars > max_chars {
        Some("too_long")
    } else if dedup.seen.contains(&dedup_key(text)) {
        Some("duplicate")
    } else if let (Some((_, index)), Some(sig)) = (dedup.near.as_mut(), sig) {
        if index.is_near_duplicate(sig) {
            Some("near_duplicate")
        } else {
            dedup.seen.insert(dedup_key(text));
            None
        }
    } else {
        dedup.seen.insert(dedup_key(text));
        None
    }
}

/// The language of each kept document: the record's or the source's, or for `auto` sources the
/// detected one. Documents of `auto` sources without a confident detection are dropped (counted as
/// `language_uncertain`); confident disagreements with a declared language are counted.
fn resolve_languages(
    keep: Vec<(String, String)>,
    source: &Source,
    threshold: f64,
    report: &mut Report,
) -> Vec<(String, String)> {
    let detected: Vec<Option<(String, f64)>> = keep
        .par_iter()
        .map(|(t, _)| crate::language::detect(t))
        .collect();
    let mut out = Vec::with_capacity(keep.len());
    for ((text, lang), found) in keep.into_iter().zip(detected) {
        let confident = found.filter(|(_, c)| *c >= threshold).map(|(l, _)| l);
        if lang == "auto" {
            match confident {
                Some(l) => out.push((text, l)),
                None => {
                    *report
                        .dropped
                        .entry("language_uncertain".into())
                        .or_default() += 1
                }
            }
            continue;
        }
        if let Some(l) = confident.filter(|l| *l != lang) {
            *report
                .language_mismatches
                .entry(format!("{}: {lang}→{l}", source.name))
                .or_default() += 1;
        }
        out.push((text, lang));
    }
    out
}

/// Copies per document of each "language/source" in the training split: the source's weight times,
/// with `language_alpha`, q_l / p_l. A first pass counts the characters the build will keep.
fn sampling_rates(cfg: &CorpusConfig, base: &Path) -> Result<BTreeMap<String, Sampling>> {
    let weighted = cfg.sources.iter().any(|s| s.weight != 1.0);
    if cfg.language_alpha.is_none() && !weighted {
        return Ok(BTreeMap::new());
    }
    if let Some(a) = cfg.language_alpha {
        if !(a > 0.0 && a <= 1.0) {
            bail!("language_alpha must be in (0, 1], got {a}");
        }
    }
    for s in &cfg.sources {
        if !(s.weight >= 0.0 && s.weight.is_finite()) {
            bail!(
                "source {}: weight must be a finite number ≥ 0, got {}",
                s.name,
                s.weight
            );
        }
    }
    let mut dedup = Dedup::new(cfg)?;
    // "language/source" → (weight, characters in the training split)
    let mut mass: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for_each_document(
        cfg,
        base,
        |source, docs| {
            let min_chars = source.min_chars.unwrap_or(cfg.min_chars);
            let mut keep = Vec::new();
            let sigs = dedup.signatures(&docs.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>());
            for ((record, text), sig) in docs.into_iter().zip(sigs) {
                if drop_reason(&text, sig.as_deref(), min_chars, cfg.max_chars, &mut dedup)
                    .is_some()
                    || split_bucket(&dedup_key(&text), cfg.split_salt) < cfg.validation_permille
                {
                    continue;
                }
                keep.push((text, record.lang.unwrap_or_else(|| source.language.clone())));
            }
            let mut scratch = Report::default();
            for (text, lang) in
                resolve_languages(keep, source, cfg.language_min_confidence, &mut scratch)
            {
                let e = mass
                    .entry(format!("{lang}/{}", source.name))
                    .or_insert((source.weight, 0.0));
                e.1 += text.chars().count() as f64;
            }
            Ok(())
        },
        |_| {},
    )?;
    let mut by_lang: BTreeMap<&str, f64> = BTreeMap::new();
    for (key, (w, chars)) in &mass {
        *by_lang
            .entry(key.split('/').next().unwrap_or_default())
            .or_default() += w * chars;
    }
    let total: f64 = by_lang.values().sum();
    let alpha = cfg.language_alpha.unwrap_or(1.0);
    let norm: f64 = by_lang.values().map(|m| (m / total).powf(alpha)).sum();
    Ok(mass
        .iter()
        .map(|(key, (w, _))| {
            let p = by_lang[key.split('/').next().unwrap_or_default()] / total;
            let q = p.powf(alpha) / norm;
            let rate = if p > 0.0 { w * q / p } else { 0.0 };
            (
                key.clone(),
                Sampling {
                    natural_share: p,
                    balanced_share: q,
                    rate,
                    tokens_written: 0,
                },
            )
        })
        .collect())
}

/// Copies of a training document at `rate`: whole copies, and one more for a hash-chosen fraction.
fn copies(rate: f64, key: &[u8; 16]) -> usize {
    let whole = rate.floor();
    let u = u64::from_le_bytes(key[8..].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
    whole as usize + usize::from(u < rate - whole)
}

/// Builds the corpus of `cfg` into `out` (created, or replaced once the new corpus is complete).
pub fn build(cfg: &CorpusConfig, base: &Path, out: &Path, strict: bool) -> Result<Report> {
    let tok_path = base.join(&cfg.tokenizer);
    let tok = XlmrTokenizer::from_file(&tok_path)?;
    let files = validate_sources(cfg, base)?;
    let staging = Staging::new(out, MANIFEST)?;
    // What the corpus is made from, hashed before it is read: the tokenizer and every source file. No
    // time or command line: a rebuild from the same inputs stays byte-identical.
    let inputs: Vec<&Path> = std::iter::once(tok_path.as_path())
        .chain(files.iter().flatten().map(PathBuf::as_path))
        .collect();
    let provenance =
        fsutil::provenance::inputs_record("data-prep corpus", env!("CARGO_PKG_VERSION"), &inputs)?;
    let report = build_into(
        cfg,
        base,
        staging.path(),
        (&tok, &tok_path),
        &provenance,
        strict,
    )?;
    staging.commit()?;
    Ok(report)
}

fn build_into(
    cfg: &CorpusConfig,
    base: &Path,
    out: &Path,
    (tok, tok_path): (&XlmrTokenizer, &Path),
    provenance: &serde_json::Value,
    strict: bool,
) -> Result<Report> {
    let mut report = Report {
        sampling: sampling_rates(cfg, base)?,
        ..Default::default()
    };
    let mut rejects: Vec<Reject> = Vec::new();
    let mut dedup = Dedup::new(cfg)?;
    let mut splits = Splits {
        train: SplitWriter::new(out, "train", None, cfg.shard_tokens),
        validation: BTreeMap::new(),
        shard_tokens: cfg.shard_tokens,
        out: out.to_path_buf(),
    };
    for_each_document(
        cfg,
        base,
        |source, docs| {
            let keep = filter_documents(cfg, source, docs, &mut dedup, &mut report);
            let ids = tokenize_all(tok, keep.iter().map(|(t, _)| t.as_str()))?;
            splits.write(cfg, source, &keep, &ids, &mut report)
        },
        |r| rejects.push(r),
    )?;
    splits.train.roll()?;
    for w in splits.validation.values_mut() {
        w.roll()?;
    }
    report.rejects = rejects.len() as u64;
    report.rejects_by_source = rejects_by_source(&rejects);
    if strict {
        refuse_rejects(&rejects)?;
    }
    write_outputs(
        cfg,
        out,
        (tok, tok_path),
        provenance,
        (&report, &rejects),
        splits,
    )?;
    Ok(report)
}

/// A chunk of one source's documents without those dropped (too short or long, duplicates), counted
/// by reason, each with its resolved language.
fn filter_documents(
    cfg: &CorpusConfig,
    source: &Source,
    docs: Vec<(Record, String)>,
    dedup: &mut Dedup,
    report: &mut Report,
) -> Vec<(String, String)> {
    let mut keep = Vec::new();
    let min_chars = source.min_chars.unwrap_or(cfg.min_chars);
    let sigs = dedup.signatures(&docs.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>());
    for ((record, text), sig) in docs.into_iter().zip(sigs) {
        match drop_reason(&text, sig.as_deref(), min_chars, cfg.max_chars, dedup) {
            Some(r) => {
                *report.dropped.entry(r.to_owned()).or_default() += 1;
                *report
                    .dropped_by_source
                    .entry(format!("{}/{r}", source.name))
                    .or_default() += 1;
            }
            None => keep.push((text, record.lang.unwrap_or_else(|| source.language.clone()))),
        }
    }
    resolve_languages(keep, source, cfg.language_min_confidence, report)
}

/// The two splits' shard writers. Validation shards hold one language each, so that MLM evaluation
/// can report every language's loss; the training split stays mixed, in the order documents come.
struct Splits {
    train: SplitWriter,
    validation: BTreeMap<String, SplitWriter>,
    shard_tokens: u64,
    out: PathBuf,
}

impl Splits {
    /// Each kept document to its split (by hash), sampled training copies included, counted in the
    /// report.
    fn write(
        &mut self,
        cfg: &CorpusConfig,
        source: &Source,
        keep: &[(String, String)],
        ids: &[Vec<u32>],
        report: &mut Report,
    ) -> Result<()> {
        // Extra copies go after the chunk's first copies, so repeats are not back to back.
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        for (i, ((text, lang), ids)) in keep.iter().zip(ids).enumerate() {
            let key = dedup_key(text);
            let validation_doc = split_bucket(&key, cfg.split_salt) < cfg.validation_permille;
            let (writer, split) = if validation_doc {
                let w = self.validation.entry(lang.clone()).or_insert_with(|| {
                    SplitWriter::new(&self.out, "validation", Some(lang), self.shard_tokens)
                });
                (w, "validation")
            } else {
                (&mut self.train, "train")
            };
            let n = match report.sampling.get_mut(&format!("{lang}/{}", source.name)) {
                Some(s) if !validation_doc => {
                    let n = copies(s.rate, &key);
                    s.tokens_written += (n * ids.len()) as u64;
                    n
                }
                _ => 1,
            };
            if n > 0 {
                writer.push(ids)?;
            }
            if n > 1 {
                repeats.push((i, n - 1));
            }
            let c = report
                .kept
                .entry(format!("{lang}/{}/{split}", source.name))
                .or_default();
            c.documents += 1;
            c.characters += text.chars().count() as u64;
            c.tokens += ids.len() as u64;
        }
        let rounds = repeats.iter().map(|r| r.1).max().unwrap_or(0);
        for round in 0..rounds {
            for &(i, extra) in &repeats {
                if round < extra {
                    self.train.push(&ids[i])?;
                }
            }
        }
        Ok(())
    }
}

/// `rejects.jsonl`, `statistics.parquet`, the tokenizer and the shard manifest (with the config, the
/// report and the provenance: version, git commit, SHA-256 of the tokenizer and every source file), each
/// written atomically.
fn write_outputs(
    cfg: &CorpusConfig,
    out: &Path,
    (tok, tok_path): (&XlmrTokenizer, &Path),
    provenance: &serde_json::Value,
    (report, rejects): (&Report, &[Reject]),
    splits: Splits,
) -> Result<()> {
    write_rejects(&out.join("rejects.jsonl"), rejects)?;
    let mut stats = statistics_table(report)?;
    fsutil::write_atomic(&out.join("statistics.parquet"), |w| {
        tables::write(&mut stats, tables::TableFormat::Parquet, w)
    })?;
    let tok_text = std::fs::read(tok_path)?;
    fsutil::write_atomic(&out.join("tokenizer.json"), |w| w.write_all(&tok_text))?;
    // The shards' tokenizer is built as the original is: its tokenizer_config.json comes along.
    let tok_config = tok_path.with_file_name(text::tokenizer_config::FILE);
    if tok_config.is_file() {
        let bytes = std::fs::read(&tok_config)
            .with_context(|| format!("cannot read {}", tok_config.display()))?;
        fsutil::write_atomic(&out.join(text::tokenizer_config::FILE), |w| {
            w.write_all(&bytes)
        })?;
    }
    let mut shards = splits.train.done;
    // Validation shards grouped by language, in the order of the language codes.
    shards.extend(splits.validation.into_values().flat_map(|w| w.done));
    let manifest = ShardManifest {
        format: FORMAT.to_owned(),
        vocab_size: tok.vocab_size() as u64,
        tokenizer_sha256: text::shards::sha256_file(&out.join("tokenizer.json"))?,
        tokenizer_build: Some(tok.build().to_string()),
        shards,
        extra: serde_json::json!({ "config": cfg, "report": report, "provenance": provenance }),
    };
    fsutil::write_json(&out.join(MANIFEST), &manifest)
}

/// The report as a table for the terminal.
pub fn summary(report: &Report) -> String {
    let mut s = format!(
        "{:<40} {:>9} {:>12} {:>11}\n",
        "language/source/split", "documents", "characters", "tokens"
    );
    for (k, c) in &report.kept {
        s.push_str(&format!(
            "{k:<40} {:>9} {:>12} {:>11}\n",
            c.documents, c.characters, c.tokens
        ));
    }
    if !report.sampling.is_empty() {
        s.push_str(&format!(
            "{:<40} {:>9} {:>12} {:>11}\n",
            "train sampling (language/source)", "lang share", "balanced", "copies"
        ));
        for (k, v) in &report.sampling {
            s.push_str(&format!(
                "{k:<40} {:>8.1}% {:>11.1}% {:>11.3}\n",
                100.0 * v.natural_share,
                100.0 * v.balanced_share,
                v.rate
            ));
        }
    }
    for (reason, n) in &report.dropped {
        s.push_str(&format!("dropped ({reason}): {n}\n"));
    }
    for (what, n) in &report.language_mismatches {
        s.push_str(&format!("language mismatch ({what}): {n} documents\n"));
    }
    s.push_str(&format!(
        "rejected inputs: {} (see rejects.jsonl); table: statistics.parquet\n",
        report.rejects
    ));
    s
}
