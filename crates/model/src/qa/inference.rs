//! QA inference on a fine-tuned model directory: windows, batched forward passes without gradients,
//! and `utils_qa.py`'s post-processing, with the window settings and no-answer threshold saved at
//! training time (`medqa.json`, see `settings`). Used by qa-finetune's `predict`, concept extraction
//! and the service.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::autocast::{AutocastGuard, Precision};
use crate::qa::features::{FeatureMaker, QaFeature};
use crate::qa::postprocess::{postprocess, Predictions};
use crate::qa::squad::QaExample;
use crate::{Pretrained, XlmRobertaForQuestionAnswering, XlmrTokenizer};

pub use crate::qa::settings::{
    QaSettings, ResolvedSettings, SettingsArgs, SettingsOrigin, SETTINGS_FILE,
};

/// Right-pads windows to the longest, rounded up to [`pad_multiple`]: `(input_ids on device,
/// attention_mask on the host)`. The encoder reads from the host mask whether the batch has padding
/// without waiting for the device.
pub fn pad(features: &[&QaFeature], pad_id: u32, device: Device) -> (Tensor, Tensor) {
    pad_to_multiple(features, pad_id, pad_multiple(device), device)
}

/// What batch lengths are rounded up to: 8 on CPU, 64 on CUDA, where every new shape costs a one-time
/// kernel selection of about 0.3 s (measured with PyTorch on an H100), so fewer shapes win.
pub fn pad_multiple(device: Device) -> usize {
    if device.is_cuda() {
        64
    } else {
        8
    }
}

/// [`pad`] with the rounding given: `max_seq_length` pads every batch to it, as run_qa.py does.
pub fn pad_to_multiple(
    features: &[&QaFeature],
    pad_id: u32,
    multiple: usize,
    device: Device,
) -> (Tensor, Tensor) {
    let seqs: Vec<Vec<u32>> = features.iter().map(|f| f.input_ids.clone()).collect();
    let (ids, mask) = crate::batch::pad_batch(&seqs, pad_id, multiple);
    (crate::device::upload(&ids, device), mask)
}

/// Start and end logits of every feature, in batches, without gradients.
///
/// Windows are batched longest first, so each batch pads to a length close to its own windows'
/// (run_qa.py pads every window to `max_seq_length`); the logits come back in feature order. `bar`
/// advances by each batch's windows (`ProgressBar::hidden()` for none).
pub fn infer(
    model: &XlmRobertaForQuestionAnswering,
    features: &[QaFeature],
    pad_id: u32,
    batch_size: usize,
    device: Device,
    bar: &indicatif::ProgressBar,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let _guard = tch::no_grad_guard();
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(features[i].input_ids.len()));
    let mut out = vec![(Vec::new(), Vec::new()); features.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let refs: Vec<&QaFeature> = chunk.iter().map(|&i| &features[i]).collect();
        let (ids, mask) = pad(&refs, pad_id, device);
        let (s, e) = model.forward_t(&ids, &mask, None, false);
        let (s, e) = (
            s.to_kind(Kind::Float).to_device(Device::Cpu),
            e.to_kind(Kind::Float).to_device(Device::Cpu),
        );
        for (row, &i) in chunk.iter().enumerate() {
            let n = features[i].input_ids.len() as i64;
            let take = |t: &Tensor| {
                Vec::<f32>::try_from(t.get(row as i64).narrow(0, 0, n)).unwrap_or_default()
            };
            out[i] = (take(&s), take(&e));
        }
        bar.inc(chunk.len() as u64);
    }
    out
}

/// Everything a prediction computed.
pub struct Prediction {
    pub features: Vec<QaFeature>,
    /// (start, end) logits per feature.
    pub logits: Vec<(Vec<f32>, Vec<f32>)>,
    pub predictions: Predictions,
    pub seconds: Seconds,
}

/// Where prediction's time went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seconds {
    pub features: f64,
    pub forward: f64,
    pub postprocess: f64,
}

/// A fine-tuned QA model ready to answer: weights, tokenizer and settings.
pub struct QaModel {
    pub model: Pretrained<XlmRobertaForQuestionAnswering>,
    pub tokenizer: XlmrTokenizer,
    /// The settings, from `medqa.json` or run_qa.py's defaults, with the command line's over them.
    pub resolved: ResolvedSettings,
    pub device: Device,
}

impl QaModel {
    /// The files of a QA model directory that decide its answers, those present of: configuration,
    /// weights (one file, or a sharded checkpoint's index and shards), tokenizer and its settings,
    /// `medqa.json`. What a record of a prediction hashes.
    pub fn files(dir: &Path) -> Vec<PathBuf> {
        let weights = crate::weights::WeightFiles::of_dir(dir)
            .map(|w| w.hashed())
            .unwrap_or_default();
        [crate::pretrained::CONFIG_FILE]
            .into_iter()
            .map(|name| dir.join(name))
            .chain(weights)
            .chain(
                [
                    crate::pretrained::TOKENIZER_FILE,
                    "tokenizer_config.json",
                    SETTINGS_FILE,
                ]
                .into_iter()
                .map(|name| dir.join(name)),
            )
            .filter(|file| file.is_file())
            .collect()
    }

    /// The model with its own settings (`medqa.json`, else run_qa.py's defaults, said on stderr).
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        Self::load_with(dir, device, &SettingsArgs::default())
    }

    /// The model with `args` over its settings.
    pub fn load_with(dir: &Path, device: Device, args: &SettingsArgs) -> Result<Self> {
        let resolved = ResolvedSettings::resolve(dir, args)?;
        let tokenizer = XlmrTokenizer::from_file(dir)?;
        let model = Pretrained::<XlmRobertaForQuestionAnswering>::load(dir, device)?;
        if let Some(r) = model.report.as_ref().filter(|r| !r.missing.is_empty()) {
            bail!("{} is not a fine-tuned QA model: {r}", dir.display());
        }
        let positions = model.config.max_sequence_length();
        if resolved.settings.max_seq_length as i64 > positions {
            bail!(
                "max_seq_length {} exceeds the {positions} positions of the model in {}: give a \
                 shorter --max-seq-length",
                resolved.settings.max_seq_length,
                dir.display()
            );
        }
        if let Some(note) = resolved.note(dir) {
            eprintln!("{note}");
        }
        Ok(Self {
            model,
            tokenizer,
            resolved,
            device,
        })
    }

    /// The settings predictions run with.
    pub fn settings(&self) -> &QaSettings {
        &self.resolved.settings
    }

    /// Answers every example: all windows of all examples go through the model in batches of
    /// `batch_size`, whatever example they come from.
    pub fn predict(
        &self,
        examples: &[QaExample],
        batch_size: usize,
        precision: Precision,
    ) -> Result<Prediction> {
        self.predict_with_progress(
            examples,
            batch_size,
            precision,
            &indicatif::ProgressBar::hidden(),
        )
    }

    /// As [`QaModel::predict`], with `bar` set to the number of windows and advanced as they go
    /// through the model (a command line's bar; the service answers without one).
    pub fn predict_with_progress(
        &self,
        examples: &[QaExample],
        batch_size: usize,
        precision: Precision,
        bar: &indicatif::ProgressBar,
    ) -> Result<Prediction> {
        let s = self.settings();
        let maker = FeatureMaker::new(
            &self.tokenizer,
            s.max_seq_length,
            s.doc_stride,
            s.max_query_length,
        )?;
        let clock = std::time::Instant::now();
        let features = maker.all(examples)?;
        let t_features = clock.elapsed().as_secs_f64();
        bar.set_length(features.len() as u64);
        let logits = {
            let _autocast = AutocastGuard::for_precision(precision, self.device)?;
            infer(
                &self.model.model,
                &features,
                self.tokenizer.pad_id,
                batch_size,
                self.device,
                bar,
            )
        };
        let t_forward = clock.elapsed().as_secs_f64();
        let predictions = postprocess(examples, &features, &logits, &s.postprocess);
        let t_post = clock.elapsed().as_secs_f64();
        Ok(Prediction {
            features,
            logits,
            predictions,
            seconds: Seconds {
                features: t_features,
                forward: t_forward - t_features,
                postprocess: t_post - t_forward,
            },
        })
    }
}
