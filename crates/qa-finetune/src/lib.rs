//! Extractive QA fine-tuning of XLM-RoBERTa (start/end token classification) and prediction.
//!
//! `QaTask` is the QA side of the shared training loop: `run_qa.py`'s windows and labels
//! (`model::qa::features`), batches padded to the longest window (a multiple of 8), loss
//! `(CE(start) + CE(end)) / 2`, and evaluation through `utils_qa.py`'s post-processing and the eval
//! crate's official-script scoring, per language.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use model::loss::cross_entropy;
use model::qa::features::{FeatureMaker, QaFeature};
use model::qa::postprocess::{postprocess, PostprocessConfig, Predictions};
use model::qa::squad::{self, QaExample};
use model::train::TrainConfig;
use model::weights::{load_safetensors, SaveDtype};
use model::{Pretrained, XlmRobertaForQuestionAnswering, XlmrTokenizer};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

pub use model::qa::inference::{
    infer, Prediction, QaSettings, Seconds, SettingsArgs, SETTINGS_FILE,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaConfig {
    pub output_dir: PathBuf,
    /// A Hugging Face directory (with tokenizer.json): mlm-pretrain's output or any XLM-R checkpoint.
    pub init_from: PathBuf,
    /// Default: `<init_from>/tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    pub data: DataConfig,
    #[serde(default)]
    pub postprocess: PostprocessConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaFile {
    pub path: PathBuf,
    /// With several validation files, each one's EM/F1 is reported as `eval/NAME/exact`, `eval/NAME/f1`
    /// (so `metric_for_best_model` can follow one set); NAME defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Overrides the file's `lang` tags.
    #[serde(default)]
    pub lang: Option<String>,
    /// Mixing weight of a training file: an epoch draws `round(weight × windows)` of its windows
    /// (2 repeats the file, 0.5 takes a new half every epoch). Ignored for validation files.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Only the file's first N questions, for quick runs and debugging (run_qa.py's
    /// `max_train_samples` / `max_eval_samples`, per file; taken before windows are made, as there).
    #[serde(default)]
    pub max_samples: Option<usize>,
}

impl QaFile {
    /// Its name in per-file metrics.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path.file_stem().map_or_else(
                || self.path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        })
    }
}

fn default_weight() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub train: Vec<QaFile>,
    #[serde(default)]
    pub validation: Vec<QaFile>,
    #[serde(default = "default_seq")]
    pub max_seq_length: usize,
    #[serde(default = "default_stride")]
    pub doc_stride: usize,
    #[serde(default = "default_query")]
    pub max_query_length: usize,
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Pad every training window to `max_seq_length` (run_qa.py's `pad_to_max_length`, its default)
    /// instead of to the batch's longest.
    #[serde(default)]
    pub pad_to_max_length: bool,
    /// Keep padding positions in the start/end softmax of the training loss, as transformers' QA head
    /// does (run_qa.py). medqa's default leaves them out, so that the loss does not depend on how far a
    /// batch is padded. With `pad_to_max_length`, training is run_qa.py's exactly.
    #[serde(default)]
    pub padding_in_loss: bool,
}

fn default_seq() -> usize {
    384
}
fn default_stride() -> usize {
    128
}
fn default_query() -> usize {
    64
}
fn default_eval_batch() -> usize {
    32
}

/// The files' questions in order, each file cut to its `max_samples`.
pub fn load_examples(files: &[QaFile]) -> Result<Vec<QaExample>> {
    let mut out = Vec::new();
    for f in files {
        let mut examples = squad::load(&f.path, f.lang.as_deref())?;
        if let Some(n) = f.max_samples {
            if n == 0 {
                bail!("{}: max_samples must be at least 1", f.path.display());
            }
            if n < examples.len() {
                eprintln!(
                    "{}: the first {n} of {} questions (max_samples)",
                    f.path.display(),
                    examples.len()
                );
                examples.truncate(n);
            }
        }
        out.extend(examples);
    }
    Ok(out)
}

/// Each validation file's name and the range of its questions among all of them.
type EvalSets = Vec<(String, std::ops::Range<usize>)>;

/// The validation files' questions, and with several files each one's name and place among them. Names
/// must differ from each other and from the questions' languages (both give `eval/X/f1`).
fn load_validation(files: &[QaFile]) -> Result<(Vec<QaExample>, EvalSets)> {
    let mut examples = Vec::new();
    let mut sets: EvalSets = Vec::new();
    for file in files {
        let start = examples.len();
        examples.extend(load_examples(std::slice::from_ref(file))?);
        let name = file.name();
        if sets.iter().any(|(other, _)| *other == name) {
            bail!(
                "two validation files are named {name:?} (the file's stem unless `name` is set): \
                 give {} a `name`",
                file.path.display()
            );
        }
        sets.push((name, start..examples.len()));
    }
    if sets.len() < 2 {
        return Ok((examples, Vec::new()));
    }
    for (name, _) in &sets {
        if examples
            .iter()
            .any(|e| e.lang.as_deref() == Some(name.as_str()))
        {
            bail!(
                "the validation file named {name:?} has a language's name: its metrics and the \
                 language's would both be eval/{name}/f1; give it another `name`"
            );
        }
    }
    Ok((examples, sets))
}

/// EM/F1 of predictions with the eval crate, as v2.0 when the set has unanswerable questions.
pub fn score(examples: &[QaExample], preds: &Predictions) -> scoring::report::Report {
    let questions: Vec<scoring::data::Question> = examples
        .iter()
        .map(|e| scoring::data::Question {
            id: e.id.clone(),
            golds: e.gold_texts(),
            lang: e.lang.clone(),
        })
        .collect();
    let is_v2 = examples
        .iter()
        .any(|e| e.answers.is_empty() && e.unlocated.is_empty());
    let dataset = scoring::data::Dataset { questions, is_v2 };
    let na: Vec<(String, f64)> = preds
        .null_odds
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let opts = scoring::report::Options {
        version: None,
        lang: None,
        na_probs: (!na.is_empty()).then_some(na),
        na_prob_thresh: 1.0,
    };
    let answers: HashMap<String, String> = preds
        .answers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    scoring::report::evaluate(&dataset, &answers, &opts)
}

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
    /// The last evaluation's post-processed predictions (for the no-answer threshold).
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

    fn evaluate(&mut self) -> Result<BTreeMap<String, f64>> {
        if self.eval_examples.is_empty() {
            return Ok(BTreeMap::new());
        }
        let logits = infer(
            &self.model.model,
            &self.eval_features,
            self.tokenizer.pad_id,
            self.eval_batch_size,
            self.device,
        );
        let preds = postprocess(
            &self.eval_examples,
            &self.eval_features,
            &logits,
            &self.settings.postprocess,
        );
        let report = score(&self.eval_examples, &preds);
        let mut m = BTreeMap::from([
            ("eval/exact".to_owned(), report.overall.exact),
            ("eval/f1".to_owned(), report.overall.f1),
        ]);
        if let Some(t) = report.overall.best_f1_thresh {
            m.insert("eval/best_f1_thresh".to_owned(), t);
            m.insert(
                "eval/best_f1".to_owned(),
                report.overall.best_f1.unwrap_or(0.0),
            );
        }
        if report.by_language.len() > 1 {
            for (lang, s) in &report.by_language {
                m.insert(format!("eval/{lang}/f1"), s.f1);
                m.insert(format!("eval/{lang}/exact"), s.exact);
            }
        }
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
        let file = dir.join(model::pretrained::WEIGHTS_FILE);
        let report = load_safetensors(&mut self.model.vs, &file)?;
        if !report.is_exact() {
            bail!("{} does not fit this model: {report}", file.display());
        }
        Ok(())
    }
}

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

/// What `qa-finetune` adds to the common run (`run::train`).
impl run::Job for QaConfig {
    type Task = QaTask;
    const NAME: &'static str = "qa-finetune";
    const PIPELINE_TAG: &'static str = "question-answering";
    // A QA evaluation gives EM/F1, no loss (as run_qa.py's): the best checkpoint is the best F1.
    const DEFAULTS: &'static [(&'static str, &'static str)] = &[
        ("train.metric_for_best_model", "\"eval/f1\""),
        ("train.greater_is_better", "true"),
    ];

    fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    fn task(&self, device: Device) -> Result<QaTask> {
        QaTask::new(self, device)
    }

    fn inputs(&self, _task: &QaTask) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (self.data.train.iter().chain(&self.data.validation))
            .map(|f| f.path.clone())
            .collect();
        files.push(self.init_from.join(model::pretrained::WEIGHTS_FILE));
        files
    }

    fn describe(&self, task: &QaTask) -> String {
        format!(
            "{} parameters, {} training windows, {} validation questions",
            task.model.num_parameters(),
            task.train_features(),
            task.eval_examples().len()
        )
    }

    fn save_final(
        &self,
        task: &mut QaTask,
        outcome: &model::train::TrainOutcome,
        dir: &Path,
    ) -> Result<()> {
        // SQuAD v2: the no-answer threshold that maximised validation F1 goes with the model.
        if task.settings.postprocess.version_2_with_negative {
            if let Some(t) = outcome.last_eval.get("eval/best_f1_thresh") {
                task.settings.postprocess.null_score_diff_threshold = *t;
            }
        }
        task.save_final(dir)
    }
}
