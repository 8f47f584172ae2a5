//! `qa-finetune predict`: answers from a fine-tuned model directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use model::qa::inference::{Prediction, QaModel, SettingsArgs};
use model::qa::postprocess::Predictions;
use model::qa::squad::QaExample;
use tch::Device;

use crate::config::QaFile;
use crate::data::load_to_predict;

/// `predict`: answers for a SQuAD-format file (its first `data.max_samples` questions, if set) with
/// a fine-tuned model directory, its settings (`medqa.json`, else run_qa.py's) under `settings`; also
/// what it ran with, for `predict_settings.json`: the settings and where they came from, and the
/// provenance a training run's manifest records (command line, git commit, versions, machine, and the
/// SHA-256 of the data file and of the model's files), so that a published score can be repeated.
pub fn predict(
    model_dir: &Path,
    data: &QaFile,
    settings: &SettingsArgs,
    batch_size: usize,
    device: Device,
    precision: model::autocast::Precision,
) -> Result<(Vec<QaExample>, Prediction, serde_json::Value)> {
    let qa = QaModel::load_with(model_dir, device, settings)?;
    let examples = load_to_predict(data)?;
    let bar = model::train::log::progress_bar(0, 0, "windows");
    let prediction = qa.predict_with_progress(&examples, batch_size, precision, &bar)?;
    bar.finish_and_clear();
    let record = serde_json::json!({
        "model": model_dir,
        "data": data.path,
        "questions": examples.len(),
        "settings_from": qa.resolved.origin,
        "set_on_the_command_line": qa.resolved.overridden,
        "settings": qa.resolved.settings,
        "precision": precision,
        "device": model::device::describe(device),
        "provenance": provenance(model_dir, &data.path, device)?,
    });
    Ok((examples, prediction, record))
}

/// The data file and the model directory's files that decide the answers.
fn provenance(model_dir: &Path, data: &Path, device: Device) -> Result<serde_json::Value> {
    let model_files = QaModel::files(model_dir);
    let inputs: Vec<&Path> = std::iter::once(data)
        .chain(model_files.iter().map(PathBuf::as_path))
        .collect();
    model::train::manifest::provenance(
        "qa-finetune predict",
        env!("CARGO_PKG_VERSION"),
        device,
        &inputs,
    )
}

/// `PREFIXpredictions.json`, `PREFIXnbest_predictions.json` and, for SQuAD v2, `PREFIXnull_odds.json`
/// in `out`, as run_qa.py names them (`predict` writes no prefix, training's last evaluation `eval_`);
/// an earlier v2 run's odds are removed when these answers have none.
pub fn write_predictions(out: &Path, prefix: &str, preds: &Predictions) -> Result<()> {
    run::write_json(
        &out.join(format!("{prefix}predictions.json")),
        &preds.answers,
    )?;
    run::write_json(
        &out.join(format!("{prefix}nbest_predictions.json")),
        &preds.nbest,
    )?;
    let null_odds = out.join(format!("{prefix}null_odds.json"));
    if preds.null_odds.is_empty() {
        remove_if_present(&null_odds)
    } else {
        run::write_json(&null_odds, &preds.null_odds)
    }
}

/// Removes `path`; its absence is not an error.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(e).context(format!("cannot remove {}", path.display())))
        }
        _ => Ok(()),
    }
}
