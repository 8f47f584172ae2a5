//! `final/README.md`: the model card of a trained model, as `transformers`' Trainer writes one — what
//! a reader of a published model needs to repeat it: where it started, the evaluation, the settings,
//! the data (with hashes) and the command, all taken from the run's manifest and outcome, never typed.

use std::fmt::Write as _;

use model::train::manifest::Manifest;
use model::train::{TrainConfig, TrainOutcome};

/// The card of the model in `final/`. `pipeline` is the Hugging Face pipeline tag (`fill-mask`,
/// `question-answering`); `name` the run directory's name.
pub fn model_card(
    name: &str,
    pipeline: &str,
    manifest: &Manifest,
    cfg: &TrainConfig,
    outcome: &TrainOutcome,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "---\nlibrary_name: transformers\npipeline_tag: {pipeline}\ntags:\n- medqa\n- xlm-roberta\n---\n"
    );
    let _ = writeln!(s, "# {name}\n");
    let start = match init_from(&manifest.config) {
        Some(path) => format!("from `{path}`"),
        None => "from a random initialisation".to_owned(),
    };
    let commit = match (&manifest.git_commit, manifest.git_dirty) {
        (Some(c), Some(true)) => format!("commit {c} with local changes"),
        (Some(c), _) => format!("commit {c}"),
        (None, _) => "no git commit".to_owned(),
    };
    let world = manifest.world_size.unwrap_or(1);
    let machine = match (&manifest.host["cpu"], &manifest.host["gpus"]) {
        (_, serde_json::Value::Array(gpus)) if !gpus.is_empty() => {
            let names: Vec<&str> = gpus.iter().filter_map(|g| g.as_str()).collect();
            format!(" ({})", names.join("; "))
        }
        (serde_json::Value::String(cpu), _) => format!(" ({cpu})"),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "Trained {start} by medqa's `{}` {} ({commit}) on {world} process(es), device {}{machine}, for \
         {} optimizer steps{}.\n",
        manifest.tool,
        manifest.tool_version,
        manifest.device,
        outcome.steps,
        if outcome.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    );

    let _ = writeln!(s, "## Evaluation\n");
    if outcome.last_eval.is_empty() {
        let _ = writeln!(s, "No held-out evaluation.\n");
    } else {
        let which = match outcome.final_from_best {
            Some(step) => format!(
                "The best checkpoint's (step {step}, by `{}`), which this model is",
                cfg.metric_for_best_model
            ),
            None => "The last step's".to_owned(),
        };
        let _ = writeln!(
            s,
            "{which} evaluation (`eval_results.json`):\n\n| metric | value |\n|---|---:|"
        );
        for (k, v) in &outcome.last_eval {
            let _ = writeln!(s, "| {k} | {v:.4} |");
        }
        s.push('\n');
    }

    let _ = writeln!(
        s,
        "## Training\n\nAll settings are in the run's `manifest.json`; the main ones:\n\n| setting | value |\n|---|---|"
    );
    let batch =
        cfg.per_device_train_batch_size as u64 * cfg.gradient_accumulation_steps as u64 * world;
    let schedule = if cfg.lr_scheduler_kwargs == Default::default() {
        cfg.lr_scheduler_type.name().to_owned()
    } else {
        format!(
            "{} {}",
            cfg.lr_scheduler_type.name(),
            serde_json::to_string(&cfg.lr_scheduler_kwargs).unwrap_or_default()
        )
    };
    let warmup = match cfg.warmup_steps {
        Some(w) => format!("warmup_steps {w}"),
        None => format!("warmup_ratio {}", cfg.warmup_ratio),
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "learning_rate",
            format!("{} ({schedule}, {warmup})", cfg.learning_rate),
        ),
        (
            "batch",
            format!(
                "{batch} ({} per device × {} accumulation × {world} process(es))",
                cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
            ),
        ),
        (
            "optimizer",
            format!(
                "AdamW (β {}, {}; ε {:e}; weight decay {}), gradients clipped to norm {}",
                cfg.adam_beta1,
                cfg.adam_beta2,
                cfg.adam_epsilon,
                cfg.weight_decay,
                cfg.max_grad_norm
            ),
        ),
        ("precision", format!("{:?}", cfg.precision).to_lowercase()),
        (
            "seed",
            match cfg.data_seed {
                Some(d) => format!("{} (data order: {d})", cfg.seed),
                None => cfg.seed.to_string(),
            },
        ),
        (
            "frozen",
            if cfg.freeze.is_empty() {
                "nothing".to_owned()
            } else {
                cfg.freeze.join(", ")
            },
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }

    let _ = writeln!(
        s,
        "\n## Data\n\n| input | SHA-256 | bytes |\n|---|---|---:|"
    );
    for input in &manifest.inputs {
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} |",
            input.path, input.sha256, input.bytes
        );
    }

    let _ = writeln!(
        s,
        "\n## Reproduce\n\nWith the inputs above, medqa at the commit above and the run's configuration:\n\n```sh\n{}\n```",
        shell_words(&manifest.command_line)
    );
    s
}

/// Where the model started: `init_from` at the top of the configuration (qa-finetune) or under
/// `[model]` (mlm-pretrain).
fn init_from(config: &serde_json::Value) -> Option<String> {
    [&config["init_from"], &config["model"]["init_from"]]
        .into_iter()
        .find_map(|v| v.as_str().map(str::to_owned))
}

/// The command line as a shell would read it back.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_as_a_shell_reads_them() {
        let words = [
            "qa-finetune",
            "--set",
            "train.precision=\"bf16\"",
            "it's",
            "",
        ]
        .map(String::from);
        assert_eq!(
            shell_words(&words),
            "qa-finetune --set 'train.precision=\"bf16\"' 'it'\\''s' ''"
        );
        assert_eq!(
            init_from(&serde_json::json!({"model": {"init_from": "runs/e5"}})),
            Some("runs/e5".to_owned())
        );
        assert_eq!(
            init_from(&serde_json::json!({"model": {"shape": {}}})),
            None
        );
    }
}
