//! `eval`: score extractive-QA predictions as the official scripts do, in many languages.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use eval::data::{load_dataset, load_na_probs, load_predictions};
use eval::report::{evaluate, markdown, Options, Version};

/// Score extractive-QA predictions (SQuAD v1.1 / v2.0 semantics, multilingual normalisation).
///
/// Nightly evaluation (issue #3) is not implemented yet.
#[derive(Parser, Debug)]
#[command(name = "eval", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum VersionArg {
    Auto,
    V1,
    V2,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// EM/F1 of a predictions file against a SQuAD-format data set; JSON result on stdout.
    Score {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        predictions: PathBuf,
        /// Normalise every answer with this language's rules (default: each question's or article's
        /// `lang` field; without any, the official SQuAD rules).
        #[arg(long)]
        lang: Option<String>,
        /// `na_prob.json` (SQuAD v2.0): adds best_exact/best_f1 and their thresholds.
        #[arg(long)]
        na_probs: Option<PathBuf>,
        #[arg(long, default_value_t = 1.0)]
        na_prob_thresh: f64,
        /// v1 (missing predictions score 0) or v2 (missing predictions are left out); auto picks v2
        /// for data with a 2.x version or unanswerable questions.
        #[arg(long, value_enum, default_value = "auto")]
        version: VersionArg,
        /// Name of the data set in the table.
        #[arg(long)]
        name: Option<String>,
        /// Write the Markdown table here too.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write each question's EM/F1 here (JSONL).
        #[arg(long)]
        per_question: Option<PathBuf>,
    },
    /// BioASQ factoid strict/lenient accuracy and MRR (top 5) from an n-best prediction file.
    Bioasq {
        /// SQuAD-format BioASQ set; golden answers from `all_golden_answers` (or the answers).
        #[arg(long)]
        data: PathBuf,
        /// nbest_predictions.json: snippet id → [{text, probability, …}].
        #[arg(long)]
        nbest: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bioasq { data, nbest } => {
            let golden = eval::bioasq::load_golden(&data)?;
            let scores = eval::bioasq::score(&golden, &eval::bioasq::load_nbest(&nbest)?)?;
            if scores.questions_without_prediction > 0 {
                eprintln!(
                    "warning: {} question(s) have no prediction (scored 0)",
                    scores.questions_without_prediction
                );
            }
            println!("{}", serde_json::to_string_pretty(&scores)?);
        }
        Command::Score {
            data,
            predictions,
            lang,
            na_probs,
            na_prob_thresh,
            version,
            name,
            markdown: md,
            per_question,
        } => {
            let dataset = load_dataset(&data)?;
            let preds = load_predictions(&predictions)?;
            let na = na_probs.as_deref().map(load_na_probs).transpose()?;
            let version = match version {
                VersionArg::Auto => None,
                VersionArg::V1 => Some(Version::V1),
                VersionArg::V2 => Some(Version::V2),
            };
            let opts = Options {
                version,
                lang: lang.as_deref(),
                na_probs: na,
                na_prob_thresh,
            };
            let report = evaluate(&dataset, &preds, &opts);
            if report.missing_predictions > 0 {
                eprintln!(
                    "warning: {} question(s) have no prediction ({})",
                    report.missing_predictions,
                    if report.version == "1.1" {
                        "scored 0, as evaluate-v1.1.py does"
                    } else {
                        "left out, as evaluate-v2.0.py does"
                    }
                );
            }
            if report.unknown_prediction_ids > 0 {
                eprintln!(
                    "warning: {} prediction(s) for ids not in the data set were ignored",
                    report.unknown_prediction_ids
                );
            }
            for l in &report.unknown_languages {
                eprintln!("warning: no normalisation rules for language '{l}'; language-neutral rules used");
            }
            let name = name.unwrap_or_else(|| {
                data.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string()
            });
            let table = markdown(&name, &report);
            eprint!("{table}");
            if let Some(path) = md {
                std::fs::write(&path, &table)?;
            }
            if let Some(path) = per_question {
                let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                for q in &report.per_question {
                    writeln!(f, "{}", serde_json::to_string(q)?)?;
                }
                f.flush()?;
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
