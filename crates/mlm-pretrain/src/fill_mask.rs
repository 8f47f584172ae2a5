//! `fill-mask`: the top-k fillers of each `<mask>` in a text, the quick probe after domain adaptation.

use std::path::Path;

use anyhow::{bail, Result};
use model::{Pretrained, XlmRobertaForMaskedLM, XlmrTokenizer};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Filler {
    pub token: String,
    pub id: u32,
    pub probability: f64,
}

/// For each `<mask>` in `text`, in order, the `top_k` most probable tokens.
pub fn fill_mask(
    model_dir: &Path,
    text: &str,
    top_k: usize,
    device: Device,
) -> Result<Vec<Vec<Filler>>> {
    let tok = XlmrTokenizer::from_file(model_dir)?;
    let model = Pretrained::<XlmRobertaForMaskedLM>::load(model_dir, device)?;
    if let Some(r) = model.report.as_ref().filter(|r| !r.missing.is_empty()) {
        bail!("{} is not a trained MLM model: {r}", model_dir.display());
    }
    let enc = tok.encode(text)?;
    let positions: Vec<i64> = enc
        .input_ids
        .iter()
        .enumerate()
        .filter(|(_, &id)| id == tok.mask_id)
        .map(|(i, _)| i as i64)
        .collect();
    if positions.is_empty() {
        bail!("the text has no <mask> token");
    }
    if enc.input_ids.len() as i64 > model.config.max_sequence_length() {
        bail!(
            "the text has {} tokens; the model takes {}",
            enc.input_ids.len(),
            model.config.max_sequence_length()
        );
    }
    let ids: Vec<i64> = enc.input_ids.iter().map(|&i| i as i64).collect();
    let ids = Tensor::from_slice(&ids).unsqueeze(0).to_device(device);
    let mask = ids.ones_like();
    let at = Tensor::from_slice(&positions).to_device(device);
    let probs = tch::no_grad(|| model.model.forward_at(&ids, &mask, None, &at, false))
        .softmax(-1, Kind::Float);
    let k = top_k.clamp(1, tok.vocab_size());
    let (values, indices) = probs.topk(k as i64, -1, true, true);
    let mut out = Vec::new();
    for row in 0..positions.len() as i64 {
        let mut fillers = Vec::with_capacity(k);
        for j in 0..k as i64 {
            let id = indices.int64_value(&[row, j]) as u32;
            fillers.push(Filler {
                token: tok.id_to_token(id).unwrap_or_default(),
                id,
                probability: values.double_value(&[row, j]),
            });
        }
        out.push(fillers);
    }
    Ok(out)
}
