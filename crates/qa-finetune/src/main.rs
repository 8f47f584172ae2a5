//! `qa-finetune`: extractive QA fine-tuning of XLM-RoBERTa, and prediction.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use model::device::DeviceChoice;
use model::train::cli::RunArgs;
use model::train::manifest::Manifest;
use model::train::run_dir;
use model::train::trainer::format_metrics;
use qa_finetune::{predict, QaConfig, QaTask};

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
    /// null_odds.json (SQuAD v2).
    Predict {
        /// A fine-tuned model directory (RUN/final).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Language of the questions, overriding the file's tags.
        #[arg(long)]
        lang: Option<String>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Write every window's example id, input ids, offsets and logits here (JSONL).
        #[arg(long)]
        dump_features: Option<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// fp32, or bf16 (autocast; for CUDA).
        #[arg(long, default_value = "fp32")]
        precision: model::autocast::Precision,
    },
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    model::fsutil::write_atomic(path, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Predict {
            model,
            data,
            out,
            lang,
            batch_size,
            dump_features,
            device,
            precision,
        }) => {
            let device = device.resolve()?;
            // Checked before the model loads and the windows run, not after.
            model::fsutil::check_output_dir(&out)?;
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
            ) = predict(
                &model,
                &data,
                lang.as_deref(),
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
            write_json(&out.join("predictions.json"), &preds.answers)?;
            write_json(&out.join("nbest_predictions.json"), &preds.nbest)?;
            if !preds.null_odds.is_empty() {
                write_json(&out.join("null_odds.json"), &preds.null_odds)?;
            }
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
            Ok(())
        }
        None => train(cli.train),
    }
}

fn train(args: RunArgs) -> Result<()> {
    if args.check_device {
        println!("{}", model::device::report(args.device)?);
        return Ok(());
    }
    let (cfg, resolved): (QaConfig, _) = args.config()?;
    let device = args.device.resolve()?;
    // The run directory is locked and checked before the windows are built.
    let (_lock, resume_from) = run_dir::prepare(&cfg.output_dir, &args.start())?;
    let mut task = QaTask::new(&cfg, device)?;
    let mut inputs: Vec<PathBuf> = cfg
        .data
        .train
        .iter()
        .chain(&cfg.data.validation)
        .map(|f| f.path.clone())
        .collect();
    inputs.push(cfg.init_from.join(model::pretrained::WEIGHTS_FILE));
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    Manifest::new(
        "qa-finetune",
        env!("CARGO_PKG_VERSION"),
        cfg.train.seed,
        device,
        resolved,
        &inputs,
    )?
    .write(&cfg.output_dir)?;
    eprintln!(
        "qa-finetune: {} parameters, {} training windows, {} validation questions, device {device:?}",
        task.model.num_parameters(),
        task.train_features(),
        task.eval_examples().len()
    );
    let outcome = model::train::train(
        &mut task,
        &cfg.train,
        device,
        &cfg.output_dir,
        resume_from.as_deref(),
    )?;
    // SQuAD v2: the no-answer threshold that maximised validation F1 goes with the model.
    if task.settings.postprocess.version_2_with_negative {
        if let Some(t) = outcome.last_eval.get("eval/best_f1_thresh") {
            task.settings.postprocess.null_score_diff_threshold = *t;
        }
    }
    let out = cfg.output_dir.join("final");
    task.save_final(&out)?;
    write_json(
        &cfg.output_dir.join("eval_results.json"),
        &outcome.last_eval,
    )?;
    println!(
        "trained {} steps; {}",
        outcome.steps,
        format_metrics(&outcome.last_eval)
    );
    println!("model: {}", out.display());
    Ok(())
}
