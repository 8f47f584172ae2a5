//! `qa-finetune`: extractive QA fine-tuning of XLM-RoBERTa, and prediction.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use model::device::DeviceChoice;
use qa_finetune::{predict, remove_if_present, QaConfig};
use run::{write_json, RunArgs};

/// Fine-tune XLM-RoBERTa for extractive question answering (start/end token classification).
///
/// Writes a run directory: manifest.json, train_log.jsonl, tb/, checkpoints/, final/ (a Hugging Face
/// model directory with medqa.json: window settings and the tuned no-answer threshold), eval_results.json.
#[derive(Parser, Debug)]
#[command(name = "qa-finetune", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer the questions of a SQuAD-format file: predictions.json, nbest_predictions.json,
    /// null_odds.json (SQuAD v2), predict_settings.json (the settings used and where they came from),
    /// and when the file has gold answers predict_results.json (EM/F1 as training's evaluation).
    ///
    /// Windows and post-processing repeat training's, from the model's medqa.json; a model fine-tuned
    /// outside medqa (run_qa.py, a hub checkpoint) has none and gets run_qa.py's defaults. The flags
    /// below set either.
    Predict {
        /// A fine-tuned QA model directory (RUN/final, or one transformers wrote).
        #[arg(long)]
        model: PathBuf,
        /// The questions: a SQuAD file (v1.1, v2.0, BioASQ as BioBERT ships it) or `datasets`' flat
        /// layout (`{"data": [records]}`, a JSON list, JSON Lines), as run_qa.py reads.
        #[arg(long)]
        data: PathBuf,
        /// Directory for the outputs (created; files of an earlier prediction there are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Language of the questions, overriding the file's tags.
        #[arg(long)]
        lang: Option<String>,
        /// Answer only the file's first N questions (run_qa.py's max_predict_samples).
        #[arg(long)]
        max_samples: Option<usize>,
        /// Windows per forward pass, whichever questions they come from.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Write every window's example id, input ids, offsets and logits here (JSONL).
        #[arg(long)]
        dump_features: Option<PathBuf>,
        /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// fp32, bf16 (autocast; for CUDA), or fp16 (autocast, for GPUs without bf16).
        #[arg(long, default_value = "fp32")]
        precision: model::autocast::Precision,
        #[command(flatten)]
        settings: qa_finetune::SettingsArgs,
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
        Some(Command::Predict {
            model,
            data,
            out,
            lang,
            max_samples,
            batch_size,
            dump_features,
            device,
            precision,
            settings,
        }) => {
            let device = device.resolve()?;
            // Checked before the model loads and the windows run, not after.
            model::fsutil::check_output_dir(&out)?;
            // Two predictions into one directory would leave one's predictions beside the other's
            // settings and scores.
            let _held = model::fsutil::lock::lock_dir(&out, "output directory", "prediction")?;
            if let Some(path) = &dump_features {
                model::fsutil::check_output_file(path)?;
            }
            let (
                examples,
                qa_finetune::Prediction {
                    features,
                    logits,
                    predictions: preds,
                    seconds,
                },
                record,
            ) = predict(
                &model,
                &qa_finetune::QaFile {
                    path: data,
                    name: None,
                    lang,
                    weight: 1.0,
                    max_samples,
                },
                &settings,
                batch_size,
                device,
                precision,
            )?;
            if !preds.blank_contexts.is_empty() {
                eprintln!(
                    "warning: {} question(s) have an empty or white-space context and are answered \
                     as no-answer: {}",
                    preds.blank_contexts.len(),
                    preds.blank_contexts.join(", ")
                );
            }
            qa_finetune::write_predictions(&out, "", &preds)?;
            write_json(&out.join("predict_settings.json"), &record)?;
            let results = out.join("predict_results.json");
            let scored = if qa_finetune::has_gold_answers(&examples) {
                let runtime = seconds.features + seconds.forward + seconds.postprocess;
                let figures = predict_results(&examples, &preds, runtime);
                write_json(&results, &figures)?;
                Some(figures)
            } else {
                // A test file without answers: nothing to score, and an earlier file's score must go.
                remove_if_present(&results)?;
                None
            };
            if let Some(path) = dump_features {
                let mut text = String::new();
                for (f, (s, e)) in features.iter().zip(&logits) {
                    let row = serde_json::json!({
                        "example_id": examples[f.example].id, "input_ids": f.input_ids,
                        "offsets": f.context_offsets, "start_logits": s, "end_logits": e,
                    });
                    text.push_str(&row.to_string());
                    text.push('\n');
                }
                model::fsutil::write_atomic(&path, |w| w.write_all(text.as_bytes()))?;
            }
            println!(
                "{} questions, {} windows (windows {:.2} s, forward {:.2} s, post-processing {:.2} s); \
                 predictions in {}",
                examples.len(),
                features.len(),
                seconds.features,
                seconds.forward,
                seconds.postprocess,
                out.display()
            );
            match scored {
                Some(figures) => println!(
                    "exact {:.2}, F1 {:.2} against the file's answers (predict_results.json)",
                    figures["predict/exact"], figures["predict/f1"]
                ),
                None => println!("no gold answers in the file: not scored"),
            }
            Ok(())
        }
        None => run::train::<QaConfig>(&cli.train, env!("CARGO_PKG_VERSION")),
    }
}

/// `predict_results.json`: EM/F1 against the file's gold answers as training's evaluation gives them
/// (`predict/exact`, `predict/f1`, per language, SQuAD v2's best threshold), beside run_qa.py's
/// `predict_samples`, `predict_runtime` and `predict_samples_per_second`.
fn predict_results(
    examples: &[model::qa::squad::QaExample],
    preds: &model::qa::postprocess::Predictions,
    runtime: f64,
) -> BTreeMap<String, f64> {
    let mut figures = qa_finetune::metrics(&qa_finetune::score(examples, preds), "predict");
    figures.insert("predict_samples".to_owned(), examples.len() as f64);
    figures.insert("predict_runtime".to_owned(), runtime);
    figures.insert(
        "predict_samples_per_second".to_owned(),
        examples.len() as f64 / runtime.max(1e-9),
    );
    figures
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
