//! The model behind the service: loaded once on a thread of its own, fed by a bounded request queue.
//! Whatever requests are waiting when the model is free go through it together — the questions of
//! all waiting `/qa` requests in one prediction, the documents of all waiting extractions in one
//! extraction — the same batched inference the command-line tools run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use anyhow::{Context, Result};
use extract::concepts::{Catalogue, QuestionLanguage};
use extract::documents::Document;
use extract::Extraction;
use model::autocast::Precision;
use model::qa::inference::{QaModel, SettingsArgs, SettingsOrigin};
use model::qa::squad::QaExample;
use tokio::sync::oneshot;

/// One answer to one question.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Answer {
    /// "" when the model answers that the context does not say.
    pub text: String,
    /// Character offsets into the context; absent for no answer.
    pub start: Option<usize>,
    pub end: Option<usize>,
    pub score: Option<f64>,
    pub probability: Option<f64>,
}

enum Job {
    Qa {
        examples: Vec<QaExample>,
        reply: oneshot::Sender<Result<Vec<Answer>, String>>,
    },
    Extract {
        docs: Vec<Document>,
        reply: oneshot::Sender<Result<Vec<Extraction>, String>>,
    },
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub model: PathBuf,
    pub device: tch::Device,
    pub precision: Precision,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Requests that may wait; more are refused (503) rather than queued without bound.
    pub queue: usize,
    /// Questions (QA) or documents (extraction) taken into one prediction at most.
    pub max_batch_items: usize,
    pub catalogue: Option<Catalogue>,
    /// Over the model's medqa.json (or run_qa.py's defaults).
    pub settings: SettingsArgs,
}

/// What the loaded model is, for `/model`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelInfo {
    pub path: String,
    pub device: String,
    pub hidden_size: i64,
    pub layers: i64,
    pub vocab_size: i64,
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub version_2_with_negative: bool,
    /// `medqa_json`, or `run_qa_defaults` for a model fine-tuned outside medqa.
    pub settings_from: SettingsOrigin,
    pub settings_set_on_the_command_line: Vec<&'static str>,
    /// SHA-256 of `model.safetensors` (of a sharded checkpoint's shards one after the other, as
    /// `cat model-*.safetensors | sha256sum`): which weights answer (its first 12 digits are in Label
    /// Studio's `model_version`, so predictions from other weights are told apart).
    pub weights_sha256: String,
    /// Where the service came from (`model::train::manifest::provenance`): the code's commit, the
    /// versions, the machine, the SHA-256 of every model file, the start time.
    pub provenance: serde_json::Value,
}

/// Why a request got no result.
#[derive(Debug)]
pub enum EngineError {
    /// The queue is full (HTTP 503).
    Busy,
    /// The model thread is gone (shut down).
    Stopped,
    /// The prediction failed (HTTP 500), with the message.
    Failed(String),
}

/// A handle to the model thread; cheap to clone, one per request handler.
#[derive(Clone)]
pub struct Engine {
    tx: SyncSender<Job>,
}

impl Engine {
    /// Loads the model on its thread and returns once it is ready (or failed to load); the thread
    /// ends when every handle is dropped.
    pub fn start(cfg: EngineConfig) -> Result<(Self, ModelInfo, std::thread::JoinHandle<()>)> {
        let (tx, rx) = sync_channel::<Job>(cfg.queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<ModelInfo>>();
        let handle = std::thread::Builder::new()
            .name("medqa-model".into())
            .spawn(move || {
                let loaded = QaModel::load_with(&cfg.model, cfg.device, &cfg.settings)
                    .with_context(|| format!("loading the QA model {}", cfg.model.display()))
                    .and_then(|qa| Ok((info(&cfg, &qa)?, qa)));
                match loaded {
                    Ok((info, qa)) => {
                        let _ = ready_tx.send(Ok(info));
                        serve(&qa, &cfg, rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .context("cannot start the model thread")?;
        let info = ready_rx
            .recv()
            .context("the model thread stopped while loading")??;
        Ok((Self { tx }, info, handle))
    }

    fn submit(&self, job: Job) -> Result<(), EngineError> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => EngineError::Busy,
            TrySendError::Disconnected(_) => EngineError::Stopped,
        })
    }

    /// Answers every example (in order).
    pub async fn qa(&self, examples: Vec<QaExample>) -> Result<Vec<Answer>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Qa { examples, reply })?;
        rx.await
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::Failed)
    }

    /// Every concept of the catalogue from every document (rows in document, then catalogue order).
    pub async fn extract(&self, docs: Vec<Document>) -> Result<Vec<Extraction>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Extract { docs, reply })?;
        rx.await
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::Failed)
    }
}

fn info(cfg: &EngineConfig, qa: &QaModel) -> Result<ModelInfo> {
    let c = &qa.model.config;
    let provenance = model::train::manifest::provenance(
        "medqa-serve",
        env!("CARGO_PKG_VERSION"),
        cfg.device,
        &QaModel::files(&cfg.model)
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>(),
    )?;
    let weights = model::weights::WeightFiles::of_dir(&cfg.model)?;
    let weights_sha256 = match weights.files.as_slice() {
        // One file: its hash, as the provenance has it already.
        [single] => provenance["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["path"].as_str() == Some(&single.display().to_string()))
            .and_then(|i| i["sha256"].as_str())
            .with_context(|| format!("{} was not hashed", single.display()))?
            .to_owned(),
        // Shards: one hash over them all, in order.
        _ => weights.digest()?,
    };
    Ok(ModelInfo {
        path: cfg.model.display().to_string(),
        device: model::device::describe(cfg.device),
        hidden_size: c.hidden_size,
        layers: c.num_hidden_layers,
        vocab_size: c.vocab_size,
        max_seq_length: qa.settings().max_seq_length,
        doc_stride: qa.settings().doc_stride,
        version_2_with_negative: qa.settings().postprocess.version_2_with_negative,
        settings_from: qa.resolved.origin,
        settings_set_on_the_command_line: qa.resolved.overridden.clone(),
        weights_sha256,
        provenance,
    })
}

/// The model thread: waits for a request, takes whatever else is waiting (up to the batch limit), and
/// answers QA and extraction requests each in one prediction. A panic inside libtorch fails the
/// batch's requests (500) instead of ending the thread.
fn serve(qa: &QaModel, cfg: &EngineConfig, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut qa_jobs = Vec::new();
        let mut extract_jobs = Vec::new();
        let mut items = 0;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Qa { examples, reply } => {
                    items += examples.len();
                    qa_jobs.push((examples, reply));
                }
                Job::Extract { docs, reply } => {
                    items += docs.len();
                    extract_jobs.push((docs, reply));
                }
            }
            if items < cfg.max_batch_items {
                next = rx.try_recv().ok();
            }
        }
        if !qa_jobs.is_empty() {
            answer_all(qa, cfg, qa_jobs);
        }
        if !extract_jobs.is_empty() {
            extract_all(qa, cfg, extract_jobs);
        }
    }
}

type QaJob = (Vec<QaExample>, oneshot::Sender<Result<Vec<Answer>, String>>);
type ExtractJob = (
    Vec<Document>,
    oneshot::Sender<Result<Vec<Extraction>, String>>,
);

fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the model failed".into())),
    }
}

fn answer_all(qa: &QaModel, cfg: &EngineConfig, jobs: Vec<QaJob>) {
    // Ids say which request and which question: `job/question`.
    let mut all = Vec::new();
    for (j, (examples, _)) in jobs.iter().enumerate() {
        for (i, e) in examples.iter().enumerate() {
            all.push(QaExample {
                id: format!("{j}/{i}"),
                ..e.clone()
            });
        }
    }
    let result = guarded(|| qa.predict(&all, cfg.batch_size, cfg.precision));
    for (j, (examples, reply)) in jobs.into_iter().enumerate() {
        let answers = result.as_ref().map_err(Clone::clone).map(|pred| {
            let p = &pred.predictions;
            (0..examples.len())
                .map(|i| {
                    let id = format!("{j}/{i}");
                    let text = p.answers.get(&id).cloned().unwrap_or_default();
                    let best = p
                        .nbest
                        .get(&id)
                        .and_then(|n| n.iter().find(|e| e.offsets.is_some() && e.text == text));
                    match best.filter(|_| !text.is_empty()) {
                        Some(e) => Answer {
                            text,
                            start: e.offsets.map(|o| o.0),
                            end: e.offsets.map(|o| o.1),
                            score: Some(e.start_logit + e.end_logit),
                            probability: Some(e.probability),
                        },
                        None => Answer {
                            text: String::new(),
                            start: None,
                            end: None,
                            score: None,
                            probability: None,
                        },
                    }
                })
                .collect()
        });
        let _ = reply.send(answers);
    }
}

fn extract_all(qa: &QaModel, cfg: &EngineConfig, jobs: Vec<ExtractJob>) {
    let Some(catalogue) = &cfg.catalogue else {
        for (_, reply) in jobs {
            let _ = reply.send(Err(
                "this service has no concept catalogue (--concepts)".into()
            ));
        }
        return;
    };
    let docs: Vec<Document> = jobs.iter().flat_map(|(d, _)| d.iter().cloned()).collect();
    let opts = extract::Options {
        question_lang: QuestionLanguage::Document,
        batch_size: cfg.batch_size,
        precision: cfg.precision,
        docs_per_chunk: docs.len().max(1),
    };
    let result = guarded(|| extract::extract(qa, catalogue, &docs, &opts, |_| {}));
    let per_doc = catalogue.concepts.len();
    let mut at = 0;
    for (docs, reply) in jobs {
        let n = docs.len() * per_doc;
        let rows = result
            .as_ref()
            .map_err(Clone::clone)
            .map(|rows| rows[at..at + n].to_vec());
        at += n;
        let _ = reply.send(rows);
    }
}
