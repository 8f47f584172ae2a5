//! `QaTask`: the QA side of the shared training loop.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use model::loss::cross_entropy;
use model::qa::features::{FeatureMaker, QaFeature};
use model::qa::inference::{infer, QaSettings, SETTINGS_FILE};
use model::qa::postprocess::{postprocess, Predictions};
use model::qa::squad::QaExample;
use model::train::task::ProgressBar;
use model::weights::{load_safetensors, SaveDtype};
use model::{Pretrained, XlmRobertaForQuestionAnswering, XlmrTokenizer};
use tch::{Device, Tensor};

use crate::config::QaConfig;
use crate::data::{load_examples, load_validation, metrics, score, EvalSets};

pub struct QaBatch {
    ids: Tensor,
    /// On the host, for the encoder's padding check (see `model::qa::inference::pad`).
    host_mask: Tensor,
    /// On the device, for the loss.
    mask: Tensor,
    starts: Tensor,
    ends: Tensor,
    tokens: usize,
}

pub struct QaTask {
    pub model: Pretrained<XlmRobertaForQuestionAnswering>,
    pub tokenizer: XlmrTokenizer,
    tokenizer_path: PathBuf,
    train: Vec<QaFeature>,
    /// The training files' windows, in `train`'s order, with their mixing weights.
    sources: Vec<model::train::Source>,
    eval_examples: Vec<QaExample>,
    /// With several validation files: each one's name and its questions in `eval_examples`.
    eval_sets: EvalSets,
    eval_features: Vec<QaFeature>,
    pub settings: QaSettings,
    eval_batch_size: usize,
    pad_to_max_length: bool,
    padding_in_loss: bool,
    device: Device,
    /// The last evaluation's post-processed predictions, of the model as it is: a checkpoint loaded
    /// since (`load_model`) clears them.
    pub last_predictions: Option<Predictions>,
}

impl QaTask {
    pub fn new(cfg: &QaConfig, device: Device) -> Result<Self> {
        cfg.train.validate()?;
        let tokenizer_path = cfg
            .tokenizer
            .clone()
            .unwrap_or_else(|| cfg.init_from.join(model::pretrained::TOKENIZER_FILE));
        let tokenizer = XlmrTokenizer::from_file(&tokenizer_path)?;
        // A head the checkpoint lacks is drawn from torch's generator, which libtorch seeds at random in
        // every process: seed it first, as run_qa.py's set_seed does, so that a run can be repeated.
        tch::manual_seed(cfg.train.seed as i64);
        let model = Pretrained::<XlmRobertaForQuestionAnswering>::load(&cfg.init_from, device)?;
        if let Some(r) = model.report.as_ref().filter(|r| !r.is_exact()) {
            eprintln!("loading {}: {r}", cfg.init_from.display());
        }
        // More embedding rows than pieces is fine (multilingual-e5-small pads 250,002 to 250,037, as
        // transformers allows); fewer would index past the embeddings.
        if model.config.vocab_size < tokenizer.vocab_size() as i64 {
            bail!(
                "the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                model.config.vocab_size,
                tokenizer.vocab_size()
            );
        }
        let d = &cfg.data;
        if d.max_seq_length as i64 > model.config.max_sequence_length() {
            bail!(
                "max_seq_length {} exceeds the model's {} positions",
                d.max_seq_length,
                model.config.max_sequence_length()
            );
        }
        let maker = FeatureMaker::new(
            &tokenizer,
            d.max_seq_length,
            d.doc_stride,
            d.max_query_length,
        )?;
        let mut train = Vec::new();
        let mut sources = Vec::new();
        let mut any_unanswerable = false;
        for file in &d.train {
            let mut examples = load_examples(std::slice::from_ref(file))?;
            let before = examples.len();
            examples.retain(|e| !e.lacks_positions());
            if examples.len() < before {
                eprintln!(
                    "{}: {} question(s) left out of training: no answer occurs in the context",
                    file.path.display(),
                    before - examples.len()
                );
            }
            any_unanswerable |= examples.iter().any(|e| e.answers.is_empty());
            let features = maker.all(&examples)?;
            sources.push(model::train::Source {
                name: file.path.display().to_string(),
                examples: features.len(),
                weight: file.weight,
            });
            train.extend(features);
        }
        if train.is_empty() {
            bail!(
                "no training questions in {:?}",
                d.train.iter().map(|f| &f.path).collect::<Vec<_>>()
            );
        }
        let (eval_examples, eval_sets) = load_validation(&d.validation)?;
        let eval_features = maker.all(&eval_examples)?;
        let mut postprocess = cfg.postprocess;
        postprocess.version_2_with_negative |= any_unanswerable;
        Ok(Self {
            model,
            tokenizer,
            tokenizer_path,
            train,
            sources,
            eval_examples,
            eval_sets,
            eval_features,
            settings: QaSettings {
                max_seq_length: d.max_seq_length,
                doc_stride: d.doc_stride,
                max_query_length: d.max_query_length,
                postprocess,
            },
            eval_batch_size: d.eval_batch_size,
            pad_to_max_length: d.pad_to_max_length,
            padding_in_loss: d.padding_in_loss,
            device,
            last_predictions: None,
        })
    }

    pub fn train_features(&self) -> usize {
        self.train.len()
    }

    pub fn eval_examples(&self) -> &[QaExample] {
        &self.eval_examples
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Writes the model directory with tokenizer and `medqa.json`.
    pub fn save_final(&self, dir: &Path) -> Result<()> {
        self.snapshot()?.write_into(dir)
    }

    /// The model directory `save_final` writes (weights, tokenizer, QA settings), captured now.
    fn snapshot(&self) -> Result<model::snapshot::DirSnapshot> {
        let mut files = self
            .model
            .snapshot(SaveDtype::F32, Some(&self.tokenizer_path))?;
        files.add_json(SETTINGS_FILE, &self.settings)?;
        Ok(files)
    }
}

impl model::train::Task for QaTask {
    type Batch = QaBatch;

    fn set_gradient_checkpointing(&mut self, on: bool) -> Result<()> {
        self.model.model.roberta.set_gradient_checkpointing(on);
        Ok(())
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn sampling(&self) -> model::train::Sampling {
        model::train::Sampling {
            sources: self.sources.clone(),
            lengths: Some(self.train.iter().map(|f| f.input_ids.len()).collect()),
        }
    }

    fn batch(&self, indices: &[usize]) -> Result<QaBatch> {
        let feats: Vec<&QaFeature> = indices.iter().map(|&i| &self.train[i]).collect();
        let multiple = if self.pad_to_max_length {
            self.settings.max_seq_length
        } else {
            model::qa::inference::pad_multiple(self.device)
        };
        let (ids, host_mask) = model::qa::inference::pad_to_multiple(
            &feats,
            self.tokenizer.pad_id,
            multiple,
            self.device,
        );
        let label = |f: fn(&QaFeature) -> usize| {
            let host = Tensor::from_slice(&feats.iter().map(|x| f(x) as i64).collect::<Vec<_>>());
            model::device::upload(&host, self.device)
        };
        Ok(QaBatch {
            ids,
            mask: model::device::upload(&host_mask, self.device),
            host_mask,
            starts: label(|f| f.start_position),
            ends: label(|f| f.end_position),
            tokens: feats.iter().map(|f| f.input_ids.len()).sum(),
        })
    }

    fn tokens(&self, batch: &QaBatch) -> usize {
        batch.tokens
    }

    fn padded_tokens(&self, batch: &QaBatch) -> usize {
        batch.ids.numel()
    }

    fn loss(&self, b: &QaBatch, train: bool) -> Tensor {
        let (s, e) = self
            .model
            .model
            .forward_t(&b.ids, &b.host_mask, None, train);
        // Batches are padded to their longest window, so padding varies from batch to batch; masking it
        // out of the softmax keeps the loss independent of it. (run_qa.py pads every window to 384 and
        // leaves padding in the softmax, where the model learns to give it no weight.)
        let (s, e) = if self.padding_in_loss {
            (s, e)
        } else {
            let pad = b.mask.eq(0);
            (
                s.masked_fill(&pad, f64::NEG_INFINITY),
                e.masked_fill(&pad, f64::NEG_INFINITY),
            )
        };
        (cross_entropy(&s, &b.starts) + cross_entropy(&e, &b.ends)) / 2.0
    }

    const EVAL_UNIT: &'static str = "windows";

    fn evaluate(&mut self, progress: &ProgressBar) -> Result<BTreeMap<String, f64>> {
        if self.eval_examples.is_empty() {
            return Ok(BTreeMap::new());
        }
        progress.set_length(self.eval_features.len() as u64);
        let logits = infer(
            &self.model.model,
            &self.eval_features,
            self.tokenizer.pad_id,
            self.eval_batch_size,
            self.device,
            progress,
        );
        let preds = postprocess(
            &self.eval_examples,
            &self.eval_features,
            &logits,
            &self.settings.postprocess,
        );
        let mut m = metrics(&score(&self.eval_examples, &preds), "eval");
        for (name, range) in &self.eval_sets {
            let set = score(&self.eval_examples[range.clone()], &preds);
            m.insert(format!("eval/{name}/f1"), set.overall.f1);
            m.insert(format!("eval/{name}/exact"), set.overall.exact);
        }
        self.last_predictions = Some(preds);
        Ok(m)
    }

    fn variables(&self) -> HashMap<String, Tensor> {
        self.model.vs.variables()
    }

    fn model_snapshot(&self) -> Result<model::snapshot::DirSnapshot> {
        self.snapshot()
    }

    fn load_model(&mut self, dir: &Path) -> Result<()> {
        self.last_predictions = None;
        let file = dir.join(model::pretrained::WEIGHTS_FILE);
        let report = load_safetensors(&mut self.model.vs, &file)?;
        if !report.is_exact() {
            bail!("{} does not fit this model: {report}", file.display());
        }
        Ok(())
    }
}
