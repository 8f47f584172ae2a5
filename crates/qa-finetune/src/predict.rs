//! `qa-finetune predict`: answers from a fine-tuned model directory.

use std::path::Path;

use anyhow::Result;
use model::qa::inference::{Prediction, SettingsArgs};
use model::qa::squad::QaExample;
use tch::Device;

use crate::config::QaFile;
use crate::data::load_examples;

/// `predict`: answers for a SQuAD-format file (its first `data.max_samples` questions, if set) with
/// a fine-tuned model directory, its settings (`medqa.json`, else run_qa.py's) under `settings`; also
/// what it ran with, for `predict_settings.json`.
pub fn predict(
    model_dir: &Path,
    data: &QaFile,
    settings: &SettingsArgs,
    batch_size: usize,
    device: Device,
    precision: model::autocast::Precision,
) -> Result<(Vec<QaExample>, Prediction, serde_json::Value)> {
    let qa = model::qa::inference::QaModel::load_with(model_dir, device, settings)?;
    let examples = load_examples(std::slice::from_ref(data))?;
    let prediction = qa.predict(&examples, batch_size, precision)?;
    let record = serde_json::json!({
        "model": model_dir,
        "data": data.path,
        "questions": examples.len(),
        "settings_from": qa.resolved.origin,
        "set_on_the_command_line": qa.resolved.overridden,
        "settings": qa.resolved.settings,
        "precision": precision,
        "device": model::device::describe(device),
    });
    Ok((examples, prediction, record))
}
