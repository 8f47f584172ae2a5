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
        /// columns for a row without candidates; `row` is the input row's number from 0). Beside it
        /// OUT.rejects.jsonl (CSV/TSV rows whose fields do not match the header, with their line) and
        /// OUT.run.json (settings, counts, the SHA-256 of the input and the index, git commit).
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
            index: index_dir,
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
            // The table (its format too) and its two companions are checked, and the table locked,
            // before any work.
            let _held = match &out {
                Some(out) => {
                    tables::TableFormat::from_path(out)?;
                    for path in [
                        out.clone(),
                        out.with_extension("rejects.jsonl"),
                        out.with_extension("run.json"),
                    ] {
                        fsutil::check_output_file(&path)?;
                    }
                    Some(fsutil::lock::lock_output_file(out, "link match")?)
                }
                None => None,
            };
            let index = Index::load(&index_dir)?;
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
                        &index_dir,
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

/// `link match --input`: every row of a table column linked; ragged rows rejected with their line;
/// the table, `OUT.rejects.jsonl` and `OUT.run.json` (settings, counts, provenance) written.
#[allow(clippy::too_many_arguments)]
fn link_table(
    index: &Index,
    index_dir: &Path,
    input: &Path,
    column: &str,
    lang_column: Option<&str>,
    lang: Option<&str>,
    out: &Path,
    opts: &LinkOptions,
) -> Result<()> {
    let (rejects_path, record_path) = (
        out.with_extension("rejects.jsonl"),
        out.with_extension("run.json"),
    );
    let inputs = fsutil::provenance::hash_paths(&[input, index_dir])?;
    let wanted: Vec<&str> = std::iter::once(column).chain(lang_column).collect();
    let read = tables::read_text_rows(input, &wanted)?;
    let rows = numbered_rows(read, input);
    let linked: Vec<Vec<link::Candidate>> = rows
        .kept
        .par_iter()
        .map(|r| match &r.text {
            Some(t) => index.link(t, r.lang.as_deref().or(lang), opts),
            None => Vec::new(),
        })
        .collect();
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); 10];
    for (row, cands) in rows.kept.iter().zip(&linked) {
        let mut push = |rank: usize, c: Option<&link::Candidate>| {
            let values = [
                row.number.to_string(),
                row.text.clone().unwrap_or_default(),
                row.lang
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
    for r in &rows.rejects {
        eprintln!("rejected {} line {}: {}", r.file, r.place, r.reason);
    }
    let format = tables::TableFormat::from_path(out)?;
    fsutil::write_atomic(out, |w| tables::write(&mut df, format, w))?;
    fsutil::write_json_lines(&rejects_path, &rows.rejects)?;
    let with = linked.iter().filter(|c| !c.is_empty()).count();
    let provenance =
        fsutil::provenance::record_hashed("medqa-link match", env!("CARGO_PKG_VERSION"), inputs)?;
    fsutil::write_json(
        &record_path,
        &serde_json::json!({
            "column": column, "lang_column": lang_column, "lang": lang,
            "top_k": opts.top_k, "min_score": opts.min_score,
            "rows": rows.kept.len(), "linked": with, "without_candidate": rows.kept.len() - with,
            "rejects": rows.rejects.len(),
            "provenance": provenance,
        }),
    )?;
    println!(
        "linked {with} of {} rows ({} without a candidate); {} rejected: {}; table: {}",
        rows.kept.len(),
        rows.kept.len() - with,
        rows.rejects.len(),
        rejects_path.display(),
        out.display()
    );
    Ok(())
}

/// A row of the input table to link.
#[derive(Debug, PartialEq)]
struct InputRow {
    /// The row's number among the table's data rows, from 0, counting the rejected ones: rows keep the
    /// number they have in the file when one before them is rejected.
    number: usize,
    text: Option<String>,
    lang: Option<String>,
}

#[derive(Debug)]
struct NumberedRows {
    kept: Vec<InputRow>,
    rejects: Vec<link::terms::Reject>,
}

/// The rows read and the rows rejected, each numbered by its place in the file: both lists are in
/// file order (by the line each starts on), so merging them gives every data row its number.
fn numbered_rows(read: tables::TextRows, input: &Path) -> NumberedRows {
    let mut columns = read.columns.into_iter();
    let texts = columns.next().unwrap_or_default();
    let langs = columns.next().unwrap_or_else(|| vec![None; texts.len()]);
    let mut bad = read.bad.into_iter().peekable();
    let mut out = NumberedRows {
        kept: Vec::with_capacity(texts.len()),
        rejects: Vec::new(),
    };
    let reject = |(place, reason): (usize, String), out: &mut NumberedRows| {
        out.rejects.push(link::terms::Reject {
            file: input.display().to_string(),
            place,
            reason,
        });
    };
    for ((text, lang), place) in texts.into_iter().zip(langs).zip(read.places) {
        while let Some(b) = bad.next_if(|(line, _)| *line < place) {
            reject(b, &mut out);
        }
        out.kept.push(InputRow {
            number: out.kept.len() + out.rejects.len(),
            text,
            lang,
        });
    }
    for b in bad {
        reject(b, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_numbers_around_rejected_ones() {
        let text = |t: &str| Some(t.to_owned());
        let read = tables::TextRows {
            columns: vec![
                vec![text("a"), None, text("d")],
                vec![text("en"), text("bg"), None],
            ],
            places: vec![2, 4, 8],
            bad: vec![
                (3, "ragged".into()),
                (5, "ragged".into()),
                (9, "last".into()),
            ],
        };
        let rows = numbered_rows(read, Path::new("in.csv"));
        let got: Vec<(usize, Option<String>, Option<String>)> = rows
            .kept
            .into_iter()
            .map(|r| (r.number, r.text, r.lang))
            .collect();
        assert_eq!(
            got,
            [
                (0, text("a"), text("en")),
                (2, None, text("bg")),
                (4, text("d"), None)
            ]
        );
        let rejected: Vec<(usize, &str)> = rows
            .rejects
            .iter()
            .map(|r| (r.place, r.reason.as_str()))
            .collect();
        assert_eq!(rejected, [(3, "ragged"), (5, "ragged"), (9, "last")]);
        assert!(rows.rejects.iter().all(|r| r.file == "in.csv"));
    }

    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
