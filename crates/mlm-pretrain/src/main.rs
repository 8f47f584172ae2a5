//! `mlm-pretrain`: continue pre-training XLM-RoBERTa on in-domain text (masked-language modelling).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use mlm_pretrain::{fill_mask::fill_mask, final_dir, write_json, MlmConfig, MlmTask};
use model::device::DeviceChoice;
use model::train::cli::RunArgs;
use model::train::manifest::Manifest;
use model::train::run_dir;
use model::train::trainer::format_metrics;

/// Domain-adaptive masked-language-model training of XLM-RoBERTa on data-prep's token shards.
///
/// Writes a run directory: manifest.json, train_log.jsonl, tb/ (TensorBoard), checkpoints/step-N/,
/// final/ (a Hugging Face model directory) and eval_results.json.
#[derive(Parser, Debug)]
#[command(name = "mlm-pretrain", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Most probable fillers of each <mask> in a text.
    FillMask {
        /// A Hugging Face model directory with tokenizer.json (e.g. RUN/final).
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Text containing <mask>.
        text: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::FillMask {
            model,
            top_k,
            device,
            text,
        }) => {
            let fillers = fill_mask(&model, &text, top_k, device.resolve()?)?;
            for (i, list) in fillers.iter().enumerate() {
                println!("<mask> #{}:", i + 1);
                for f in list {
                    println!("  {:>7.4}  {}", f.probability, f.token);
                }
            }
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
    let (cfg, resolved): (MlmConfig, _) = args.config()?;
    let device = args.device.resolve()?;
    let inputs = cfg.open_inputs()?;
    let (_lock, resume_from) = run_dir::prepare(&cfg.output_dir, &args.start())?;
    let model = cfg.build_model(&inputs.tokenizer, device)?;
    let mut hashed = vec![
        cfg.data.shards.join(model::shards::MANIFEST),
        inputs.tokenizer_path.clone(),
    ];
    hashed.extend(
        cfg.model
            .init_from
            .as_ref()
            .map(|d| d.join(model::pretrained::WEIGHTS_FILE)),
    );
    let hashed: Vec<&std::path::Path> = hashed.iter().map(PathBuf::as_path).collect();
    let manifest = Manifest::new(
        "mlm-pretrain",
        env!("CARGO_PKG_VERSION"),
        cfg.train.seed,
        device,
        resolved,
        &hashed,
    )?;
    manifest.write(&cfg.output_dir)?;
    eprintln!(
        "mlm-pretrain: {} parameters, {} train sequences, {} validation sequences, device {device:?}",
        model.num_parameters(),
        inputs.train.len(),
        inputs.eval.as_ref().map_or(0, |e| e.len()),
    );
    let mut task = MlmTask::new(&cfg, model, inputs, device)?;
    let outcome = model::train::train(
        &mut task,
        &cfg.train,
        device,
        &cfg.output_dir,
        resume_from.as_deref(),
    )?;
    let out = final_dir(&cfg.output_dir);
    model::train::Task::save_model(&task, &out)?;
    write_json(
        &cfg.output_dir.join("eval_results.json"),
        &outcome.last_eval,
    )?;
    println!(
        "trained {} steps; {}",
        outcome.steps,
        format_metrics(&outcome.last_eval)
    );
    if outcome.skipped_nonfinite_steps > 0 {
        println!(
            "skipped {} steps with a non-finite loss or gradient",
            outcome.skipped_nonfinite_steps
        );
    }
    println!("model: {}", out.display());
    Ok(())
}
