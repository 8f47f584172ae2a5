//! Comparing our outputs with reference outputs that `transformers` computed for the same checkpoint.
//!
//! A reference directory is a model directory plus `expected.safetensors` holding the inputs
//! (`input_ids`, `attention_mask`, `token_type_ids`) and any of `last_hidden_state`, `pooler_output`,
//! `mlm_logits`, `start_logits`, `end_logits` (scripts/make_fixtures.py writes them). Used by the
//! parity tests and by `examples/parity_report.rs`, which also runs it on CUDA.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::{Pretrained, XlmRobertaForMaskedLM, XlmRobertaForQuestionAnswering, XlmRobertaModel};

/// The largest absolute difference of one output.
#[derive(Clone, Debug)]
pub struct OutputDiff {
    pub output: String,
    pub max_abs_diff: f64,
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.size() != b.size() {
        anyhow::bail!("shapes differ: {:?} vs {:?}", a.size(), b.size());
    }
    let d = (a.to_device(Device::Cpu).to_kind(Kind::Double)
        - b.to_device(Device::Cpu).to_kind(Kind::Double))
    .abs();
    Ok(d.max().double_value(&[]))
}

fn read(file: &Path, device: Device) -> Result<HashMap<String, Tensor>> {
    let tensors = Tensor::read_safetensors(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    Ok(tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_device(device)))
        .collect())
}

/// Runs every model class that the references call for and returns one difference per output.
pub fn compare_reference_dir(dir: &Path, device: Device) -> Result<Vec<OutputDiff>> {
    let exp = read(&dir.join("expected.safetensors"), device)?;
    let get = |k: &str| {
        exp.get(k)
            .with_context(|| format!("{}: expected.safetensors lacks {k}", dir.display()))
    };
    let (ids, mask, tt) = (
        get("input_ids")?,
        get("attention_mask")?,
        get("token_type_ids")?,
    );
    let mut diffs = Vec::new();
    let mut push = |name: &str, ours: &Tensor| -> Result<()> {
        let theirs = get(name)?;
        let d = max_abs_diff(ours, theirs).with_context(|| format!("{}: {name}", dir.display()))?;
        diffs.push(OutputDiff {
            output: name.to_owned(),
            max_abs_diff: d,
        });
        Ok(())
    };
    let _guard = tch::no_grad_guard();
    if exp.contains_key("pooler_output") {
        let base = Pretrained::<XlmRobertaModel>::load(dir, device)?;
        let hidden = base.model.forward_t(ids, mask, Some(tt), false);
        push("last_hidden_state", &hidden)?;
        let pooled = base
            .model
            .pool(&hidden)
            .context("the bare model has no pooler")?;
        push("pooler_output", &pooled)?;
        return Ok(diffs);
    }
    if exp.contains_key("mlm_logits") {
        let mlm = Pretrained::<XlmRobertaForMaskedLM>::load(dir, device)?;
        let hidden = mlm.model.roberta.forward_t(ids, mask, Some(tt), false);
        push("last_hidden_state", &hidden)?;
        push("mlm_logits", &mlm.model.lm_head.forward(&hidden))?;
    }
    if exp.contains_key("start_logits") {
        let qa = Pretrained::<XlmRobertaForQuestionAnswering>::load(dir, device)?;
        let (start, end) = qa.model.forward_t(ids, mask, Some(tt), false);
        push("start_logits", &start)?;
        push("end_logits", &end)?;
    }
    Ok(diffs)
}
