//! `mlm-pretrain`: continue pre-training XLM-RoBERTa on in-domain text (masked-language modelling).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mlm_pretrain::{fill_mask::fill_mask, final_dir, write_json, MlmConfig, MlmTask};
use model::device::DeviceChoice;
use model::train::manifest::Manifest;
use model::train::run_dir::{self, Start};
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
    train: TrainArgs,
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Run configuration (TOML, see configs/mlm-*.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a configuration key, e.g. --set train.learning_rate=1e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run in output_dir from its latest checkpoint, or from the checkpoint given.
    #[arg(long, num_args = 0..=1, value_name = "CHECKPOINT", conflicts_with = "overwrite")]
    resume: Option<Option<PathBuf>>,
    /// Replace an existing run in output_dir.
    #[arg(long)]
    overwrite: bool,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Print the libtorch build, CUDA availability and the chosen device, then exit.
    #[arg(long)]
    check_device: bool,
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

fn train(args: TrainArgs) -> Result<()> {
    if args.check_device {
        println!("{}", model::device::report(args.device)?);
        return Ok(());
    }
    let config_file = args
        .config
        .as_deref()
        .context("--config is required to train (see configs/)")?;
    let (cfg, resolved): (MlmConfig, _) =
        model::runconfig::load(Some(config_file), &args.overrides)?;
    let device = args.device.resolve()?;
    let inputs = cfg.open_inputs()?;
    let start = match (args.resume, args.overwrite) {
        (Some(ckpt), _) => Start::Resume(ckpt),
        (None, true) => Start::Overwrite,
        (None, false) => Start::Fresh,
    };
    let resume_from = run_dir::prepare(&cfg.output_dir, &start)?;
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
