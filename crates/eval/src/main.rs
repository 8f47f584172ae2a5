//! `eval`: score extractive-QA predictions as the official scripts do, in many languages.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use eval::data::{load_dataset, load_na_probs, load_predictions};
use eval::report::{evaluate, markdown, Options, Version};

/// Score extractive-QA predictions (SQuAD v1.1 / v2.0 semantics, multilingual normalisation), BioASQ
/// factoid answers, and run nightly evaluation suites with a history.
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
    Score(ScoreArgs),
    /// BioASQ factoid strict/lenient accuracy and MRR (top 5) from an n-best prediction file.
    Bioasq {
        /// SQuAD-format BioASQ set; golden answers from `all_golden_answers` (or the answers).
        #[arg(long)]
        data: PathBuf,
        /// nbest_predictions.json: snippet id → [{text, probability, …}].
        #[arg(long)]
        nbest: PathBuf,
    },
    /// Every model of a suite on every evaluation set: a dated report directory (results.json,
    /// report.md, predictions, F1-over-time PNGs), the Parquet history, deltas against the previous run
    /// and the best so far. Exits with status 2 when an F1 dropped by more than the tolerance.
    Nightly {
        /// The suite (TOML: models, evaluation sets, history and report locations, tolerance; see
        /// configs/nightly.toml).
        #[arg(long)]
        config: PathBuf,
        /// The `qa-finetune` binary that predicts (default: MEDQA_QA_FINETUNE, else beside this one).
        #[arg(long)]
        predictor: Option<PathBuf>,
        /// The run's time stamp instead of now (UTC, `YYYY-MM-DDTHH:MM:SSZ`), to re-run or backfill a night.
        #[arg(long)]
        run: Option<String>,
        /// Wait for a nightly run that still holds the report directory (or the history's) to end,
        /// instead of refusing to start (for a scheduler that may start a night before the previous
        /// one has ended).
        #[arg(long)]
        wait: bool,
        /// With --wait, how long at most (e.g. `6h`, `90m`): past it the night fails, naming the
        /// other run's pid, instead of queueing behind a night that hangs.
        #[arg(long, requires = "wait", value_parser = humantime::parse_duration)]
        wait_limit: Option<std::time::Duration>,
    },
    /// Training runs side by side from their records (manifest.json, train_results.json,
    /// eval_results.json): a Markdown table on stdout, a row per run, or with --group-by a row per
    /// group of runs (e.g. a recipe's seeds) with each metric's mean and standard deviation.
    Runs {
        /// Run directories, as mlm-pretrain and qa-finetune write them.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Only these metrics of eval_results.json (repeat); default: every one.
        #[arg(long)]
        metric: Vec<String>,
        /// Group by these settings of the runs' configurations, dotted (repeat; e.g.
        /// train.learning_rate): a row per group, with the mean and the sample standard deviation.
        #[arg(long, conflicts_with = "by_recipe")]
        group_by: Vec<String>,
        /// Group the runs whose configurations are the same but for their seeds (train.seed,
        /// train.data_seed) and output_dir: a recipe's repeats, with mean and standard deviation.
        #[arg(long)]
        by_recipe: bool,
        /// Also write the table here (.csv, .tsv, .parquet, .jsonl).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Training curves (steps × metrics) from train_log.jsonl files, as a PNG.
    Curves {
        /// A run's train_log.jsonl (repeat for several runs).
        #[arg(long, required = true)]
        log: Vec<PathBuf>,
        /// Metrics to draw (repeat).
        #[arg(long, default_values_t = ["train/loss".to_string(), "eval/loss".to_string()])]
        metric: Vec<String>,
        /// The chart's title.
        #[arg(long, default_value = "Training curves")]
        title: String,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `eval score`'s arguments.
#[derive(clap::Args, Debug)]
struct ScoreArgs {
    /// The gold set: SQuAD JSON (v1.1, v2.0) or `datasets`' flat records.
    #[arg(long)]
    data: PathBuf,
    /// predictions.json: question id → answer text ("" for no answer), as run_qa.py and
    /// `qa-finetune predict` write it.
    #[arg(long)]
    predictions: PathBuf,
    /// Normalise every answer with this language's rules (default: each question's or article's
    /// `lang` field; without any, the official SQuAD rules).
    #[arg(long)]
    lang: Option<String>,
    /// `na_prob.json` (SQuAD v2.0): adds best_exact/best_f1 and their thresholds.
    #[arg(long)]
    na_probs: Option<PathBuf>,
    /// With --na-probs: answer "" where the no-answer probability exceeds this, as the official
    /// v2.0 script's --na-prob-thresh.
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
}

fn parse_run(run: Option<String>) -> Result<String> {
    let t = match run {
        Some(r) => chrono::DateTime::parse_from_rfc3339(&r)
            .map_err(|e| anyhow::anyhow!("--run {r}: not an RFC 3339 time ({e})"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Nightly {
            config,
            predictor,
            run,
            wait,
            wait_limit,
        } => nightly(&config, predictor, run, wait.then_some(wait_limit)),
        Command::Curves {
            log,
            metric,
            title,
            out,
        } => {
            let n = eval::curves::draw(&log, &metric, &title, &out)?;
            println!("{n} curve(s) in {}", out.display());
            Ok(())
        }
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
            Ok(())
        }
        Command::Score(args) => score(args),
        Command::Runs {
            runs,
            metric,
            group_by,
            by_recipe,
            out,
        } => {
            let grouping = if by_recipe {
                Some(eval::runs::Grouping::Recipe)
            } else {
                (!group_by.is_empty()).then_some(eval::runs::Grouping::Settings(&group_by))
            };
            compare_runs(&runs, &metric, grouping, out.as_deref())
        }
    }
}

fn compare_runs(
    runs: &[PathBuf],
    metric: &[String],
    grouping: Option<eval::runs::Grouping>,
    out: Option<&Path>,
) -> Result<()> {
    if let Some(path) = out {
        fsutil::check_output_file(path)?;
    }
    let records = runs
        .iter()
        .map(|dir| eval::runs::RunRecord::read(dir))
        .collect::<Result<Vec<_>>>()?;
    let mut df = match grouping {
        None => eval::runs::table(&records, metric, &[])?,
        Some(grouping) => eval::runs::grouped(&records, metric, grouping)?,
    };
    print!("{}", tables::markdown(&df, 4));
    if let Some(path) = out {
        let format = tables::TableFormat::from_path(path)?;
        fsutil::write_atomic(path, |w| tables::write(&mut df, format, w))?;
        eprintln!("table in {}", path.display());
    }
    Ok(())
}

/// `eval nightly`; exits with status 2 when an F1 fell by more than the tolerance.
fn nightly(
    config: &Path,
    predictor: Option<PathBuf>,
    run: Option<String>,
    wait: Option<Option<std::time::Duration>>,
) -> Result<()> {
    let cfg = eval::nightly::NightlyConfig::load(config)?;
    let predictor = eval::nightly::find_predictor(predictor.as_deref())?;
    let if_held = wait.map_or(fsutil::lock::IfHeld::Refuse, fsutil::lock::IfHeld::Wait);
    let outcome = eval::nightly::run(&cfg, &predictor, &parse_run(run)?, if_held)?;
    print!("{}", eval::nightly::summary(&outcome));
    println!(
        "report: {} (report.md, results.json, predictions/, f1-*.png); history: {}",
        outcome.dir.display(),
        cfg.history_path().display()
    );
    let regressed = outcome.regressions().count();
    if !outcome.failures.is_empty() {
        anyhow::bail!(
            "{} model × set pair(s) failed (see above)",
            outcome.failures.len()
        );
    }
    if regressed > 0 {
        eprintln!(
            "REGRESSION: {regressed} result(s) lost more than {} F1 since the previous run",
            cfg.tolerance_f1
        );
        std::process::exit(2);
    }
    Ok(())
}

/// `eval score`: outputs checked first; warnings for missing and unknown predictions; the table on
/// stderr, the JSON report on stdout.
fn score(args: ScoreArgs) -> Result<()> {
    let ScoreArgs {
        data,
        predictions,
        lang,
        na_probs,
        na_prob_thresh,
        version,
        name,
        markdown: md,
        per_question,
    } = args;
    for path in md.iter().chain(&per_question) {
        fsutil::check_output_file(path)?;
    }
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
    warn_about(&report);
    let name = name.unwrap_or_else(|| {
        data.file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string()
    });
    let table = markdown(&name, &report)?;
    eprint!("{table}");
    if let Some(path) = md {
        fsutil::write_atomic(&path, |w| w.write_all(table.as_bytes()))?;
    }
    if let Some(path) = per_question {
        let mut text = String::new();
        for q in &report.per_question {
            text.push_str(&serde_json::to_string(q)?);
            text.push('\n');
        }
        fsutil::write_atomic(&path, |w| w.write_all(text.as_bytes()))?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn warn_about(report: &eval::report::Report) {
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
        eprintln!(
            "warning: no normalisation rules for language '{l}'; language-neutral rules used"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
