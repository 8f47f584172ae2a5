//! `link`: build a linking index from terminologies, and link answers (one text, or a table column)
//! to its concepts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use link::{Index, LinkOptions, TermSource};
use rayon::prelude::*;

/// Link extracted answers to terminologies: normalised exact match, then character n-gram TF-IDF.
#[derive(Parser, Debug)]
#[command(name = "link", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read terminologies and write an index directory (index.bin, index.json with the sources'
    /// SHA-256 and the linker's version and git commit, rejects.jsonl).
    Index {
        /// FILE[:name=…][:id=COL][:term=COL][:lang=COL|:language=xx][:terms=COL@LANGCOL,…]
        /// [:synonyms=COL][:description=COL][:iri=BASE] for .csv/.tsv/.parquet; .nt/.ttl (SKOS
        /// labels) and .obo take name= and iri=. Repeatable.
        #[arg(long = "terms", required = true)]
        terms: Vec<TermSource>,
        /// The index directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Character n-gram length.
        #[arg(long, default_value_t = 3)]
        ngram: usize,
    },
    /// Link one text (--text) or every row of a table column (--input/--column/--out).
    Match {
        /// An index directory (`link index --out DIR`).
        #[arg(long)]
        index: PathBuf,
        /// One text to link; its candidates are printed, one JSON line each.
        #[arg(long, conflicts_with = "input")]
        text: Option<String>,
        /// The text's language (ISO 639-1): labels in it are preferred.
        #[arg(long)]
        lang: Option<String>,
        /// A table (.csv/.tsv/.parquet/.jsonl) whose column --column holds the answers.
        #[arg(long, requires_all = ["column", "out"])]
        input: Option<PathBuf>,
        /// The column of --input that holds the texts to link.
        #[arg(long)]
        column: Option<String>,
        /// A column with each row's language.
        #[arg(long)]
        lang_column: Option<String>,
        /// The linked table: one row per input row and candidate rank (rank 0 and empty concept
        /// columns for a row without candidates).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Candidates kept per text.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Least character n-gram cosine for a candidate that is not an exact match.
        #[arg(long, default_value_t = 0.3)]
        min_score: f64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Index { terms, out, ngram } => build(&terms, &out, ngram),
        Command::Match {
            index,
            text,
            lang,
            input,
            column,
            lang_column,
            out,
            top_k,
            min_score,
        } => {
            let opts = LinkOptions { top_k, min_score };
            if let Some(out) = &out {
                fsutil::check_output_file(out)?;
            }
            let index = Index::load(&index)?;
            for stale in index.stale_sources()? {
                eprintln!("warning: {stale} changed since the index was built (or is gone); rebuild it with `link index`");
            }
            match (text, input) {
                (Some(text), _) => {
                    for c in index.link(&text, lang.as_deref(), &opts) {
                        println!("{}", serde_json::to_string(&c)?);
                    }
                    Ok(())
                }
                (None, Some(input)) => {
                    let column = column.context("--input needs --column")?;
                    let out = out.context("--input needs --out")?;
                    link_table(
                        &index,
                        &input,
                        &column,
                        lang_column.as_deref(),
                        lang.as_deref(),
                        &out,
                        &opts,
                    )
                }
                (None, None) => bail!("give --text or --input"),
            }
        }
    }
}

fn build(sources: &[TermSource], out: &Path, ngram: usize) -> Result<()> {
    if ngram == 0 {
        bail!("--ngram must be at least 1");
    }
    fsutil::check_output_dir(out)?;
    let _held = fsutil::lock::lock_dir(out, "index directory", "index build")?;
    let started = std::time::Instant::now();
    let (index, rejects) = link::build_index(sources, ngram)?;
    if index.concepts.is_empty() {
        bail!(
            "no concept in {} source(s) ({} rejected: see why with --out's rejects.jsonl)",
            sources.len(),
            rejects.len()
        );
    }
    index.save(out, &rejects)?;
    let s = index.summary(rejects.len());
    println!(
        "index: {} concepts, {} labels ({}) from {} source(s) in {:.1} s; {} rejected (rejects.jsonl); {}",
        s.concepts,
        s.labels,
        s.labels_by_language
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        sources.len(),
        started.elapsed().as_secs_f64(),
        s.rejects,
        out.display()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn link_table(
    index: &Index,
    input: &Path,
    column: &str,
    lang_column: Option<&str>,
    lang: Option<&str>,
    out: &Path,
    opts: &LinkOptions,
) -> Result<()> {
    let rows = tables::read_text_column(input, column, lang_column)?;
    let linked: Vec<Vec<link::Candidate>> = rows
        .par_iter()
        .map(|(text, row_lang)| match text {
            Some(t) => index.link(t, row_lang.as_deref().or(lang), opts),
            None => Vec::new(),
        })
        .collect();
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); 10];
    for (i, ((text, row_lang), cands)) in rows.iter().zip(&linked).enumerate() {
        let mut push = |rank: usize, c: Option<&link::Candidate>| {
            let values = [
                i.to_string(),
                text.clone().unwrap_or_default(),
                row_lang
                    .clone()
                    .or(lang.map(str::to_owned))
                    .unwrap_or_default(),
                rank.to_string(),
                c.map(|c| c.concept_id.clone()).unwrap_or_default(),
                c.map(|c| c.iri.clone()).unwrap_or_default(),
                c.map(|c| c.label.clone()).unwrap_or_default(),
                c.map(|c| c.matched.clone()).unwrap_or_default(),
                c.map(|c| format!("{}", c.score)).unwrap_or_default(),
                c.map(|c| c.method.as_str().to_owned()).unwrap_or_default(),
            ];
            for (col, v) in cols.iter_mut().zip(values) {
                col.push(v);
            }
        };
        if cands.is_empty() {
            push(0, None);
        }
        for (rank, c) in cands.iter().enumerate() {
            push(rank + 1, Some(c));
        }
    }
    let names = [
        "row",
        "text",
        "lang",
        "rank",
        "concept_id",
        "concept_iri",
        "concept_label",
        "matched_label",
        "score",
        "method",
    ];
    let mut df = tables::frame(
        names
            .iter()
            .zip(cols)
            .map(|(n, v)| tables::text_column(n, v))
            .collect(),
    )?;
    let format = tables::TableFormat::from_path(out)?;
    fsutil::write_atomic(out, |w| tables::write(&mut df, format, w))?;
    let with = linked.iter().filter(|c| !c.is_empty()).count();
    println!(
        "linked {with} of {} rows ({} without a candidate): {}",
        rows.len(),
        rows.len() - with,
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
