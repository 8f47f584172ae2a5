//! Domain-adaptive masked-language-model training of XLM-RoBERTa on data-prep's token shards.
//!
//! `MlmTask` is the MLM side of the shared training loop (`model::train`): it cuts sequences from the
//! shards, masks them, and takes the cross-entropy on the masked positions only — the LM head runs on
//! those positions alone, which with a 250k vocabulary is most of the saving over computing all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use model::batch::pad_batch;
use model::mlm::{
    labelled_positions, masked_loss_parts, pad_positions, position_bound, Masker, MaskingConfig,
    Sequences,
};
use model::shards::{Corpus, ShardManifest};
use model::train::TrainConfig;
use model::weights::{load_safetensors, SaveDtype};
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM, XlmrTokenizer};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

pub mod fill_mask;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlmConfig {
    pub output_dir: PathBuf,
    pub data: DataConfig,
    #[serde(default)]
    pub masking: MaskingConfig,
    pub model: ModelSource,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A data-prep corpus directory (token shards + manifest.json).
    pub shards: PathBuf,
    /// The tokenizer the shards were made with; default `<shards>/tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    #[serde(default = "default_seq")]
    pub max_seq_length: usize,
    #[serde(default)]
    pub line_by_line: bool,
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Cap on validation sequences scored at each evaluation; with validation shards per language, it
    /// is shared out evenly among the languages (one with fewer sequences leaves its rest to others).
    #[serde(default)]
    pub max_eval_sequences: Option<usize>,
    /// Train on the first N training sequences only, for quick runs and debugging (run_mlm.py's
    /// `max_train_samples`: counted after grouping into sequences, as there).
    #[serde(default)]
    pub max_train_sequences: Option<usize>,
}

fn default_seq() -> usize {
    128
}
fn default_eval_batch() -> usize {
    16
}

/// Start from a Hugging Face checkpoint directory, or from a shape for a randomly initialised model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    #[serde(default)]
    pub shape: Option<ModelShape>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    /// Default: `max_seq_length + 2`, as XLM-R's 514 for 512.
    #[serde(default)]
    pub max_position_embeddings: Option<i64>,
    #[serde(default)]
    pub hidden_dropout_prob: Option<f64>,
    #[serde(default)]
    pub attention_probs_dropout_prob: Option<f64>,
}

/// The validated inputs of a run, everything read and checked before any compute.
pub struct Inputs {
    pub tokenizer: XlmrTokenizer,
    pub tokenizer_path: PathBuf,
    pub train: Sequences,
    /// The validation split, one set per language where its shards record languages; empty when the
    /// split has no tokens.
    pub eval: Vec<EvalSet>,
}

/// The validation sequences of one language (`None`: shards that record no language).
pub struct EvalSet {
    pub language: Option<String>,
    pub sequences: Sequences,
}

impl MlmConfig {
    pub fn tokenizer_path(&self) -> PathBuf {
        self.data
            .tokenizer
            .clone()
            .unwrap_or_else(|| self.data.shards.join("tokenizer.json"))
    }

    pub fn open_inputs(&self) -> Result<Inputs> {
        self.train.validate()?;
        let tokenizer_path = self.tokenizer_path();
        let tokenizer = XlmrTokenizer::from_file(&tokenizer_path)?;
        let manifest = ShardManifest::load(&self.data.shards)?;
        if manifest.vocab_size != tokenizer.vocab_size() as u64 {
            bail!(
                "the shards in {} were made with a {}-token vocabulary, but {} has {}",
                self.data.shards.display(),
                manifest.vocab_size,
                tokenizer_path.display(),
                tokenizer.vocab_size()
            );
        }
        let sha = model::shards::sha256_file(&tokenizer_path)?;
        if sha != manifest.tokenizer_sha256 {
            bail!(
                "{} is not the tokenizer the shards in {} were made with (SHA-256 differs)",
                tokenizer_path.display(),
                self.data.shards.display()
            );
        }
        if let Some(built) = &manifest.tokenizer_build {
            if *built != tokenizer.build().to_string() {
                bail!(
                    "the shards in {} were tokenized with {} built {built}, but here it is built {} \
                     (its {} differs from the shards')",
                    self.data.shards.display(),
                    tokenizer_path.display(),
                    tokenizer.build(),
                    text::tokenizer_config::FILE
                );
            }
        }
        let seq = self.data.max_seq_length;
        let train = Sequences::new(
            Corpus::open(&self.data.shards, "train")?,
            seq,
            self.data.line_by_line,
            &tokenizer,
        )?;
        if train.is_empty() {
            bail!(
                "{}: the train split has no tokens",
                self.data.shards.display()
            );
        }
        // Each language's validation documents are grouped into sequences on their own, so that
        // every sequence is scored under one language.
        let mut eval = Vec::new();
        for language in Corpus::languages(&self.data.shards, "validation")? {
            let sequences = Sequences::new(
                Corpus::open_language(&self.data.shards, "validation", language.as_deref())?,
                seq,
                self.data.line_by_line,
                &tokenizer,
            )?;
            if !sequences.is_empty() {
                eval.push(EvalSet {
                    language,
                    sequences,
                });
            }
        }
        Ok(Inputs {
            tokenizer,
            tokenizer_path,
            train,
            eval,
        })
    }

    /// The model to train: loaded (its vocabulary must be the tokenizer's) or freshly initialised.
    pub fn build_model(
        &self,
        tok: &XlmrTokenizer,
        device: Device,
    ) -> Result<Pretrained<XlmRobertaForMaskedLM>> {
        // Weights drawn fresh (a new model, or an LM head the checkpoint lacks) come from torch's
        // generator, which libtorch seeds at random in every process: seed it, so a run repeats.
        tch::manual_seed(self.train.seed as i64);
        let model = match (&self.model.init_from, &self.model.shape) {
            (Some(dir), None) => {
                let m = Pretrained::<XlmRobertaForMaskedLM>::load(dir, device)?;
                if let Some(r) = &m.report {
                    if !r.is_exact() {
                        eprintln!("loading {}: {r}", dir.display());
                    }
                }
                m
            }
            (None, Some(shape)) => {
                let mut cfg = XlmRobertaConfig::new(
                    tok.vocab_size() as i64,
                    shape.hidden_size,
                    shape.num_hidden_layers,
                    shape.num_attention_heads,
                    shape.intermediate_size,
                );
                cfg.pad_token_id = tok.pad_id as i64;
                cfg.bos_token_id = Some(tok.bos_id as i64);
                cfg.eos_token_id = Some(tok.eos_id as i64);
                cfg.max_position_embeddings =
                    shape.max_position_embeddings.unwrap_or(self.data.max_seq_length as i64 + cfg.pad_token_id + 1);
                if let Some(p) = shape.hidden_dropout_prob {
                    cfg.hidden_dropout_prob = p;
                }
                if let Some(p) = shape.attention_probs_dropout_prob {
                    cfg.attention_probs_dropout_prob = p;
                }
                Pretrained::init(cfg, device)?
            }
            _ => bail!("[model] needs exactly one of init_from (a checkpoint directory) or shape (a new model)"),
        };
        // More embedding rows than pieces is fine (multilingual-e5-small pads 250,002 to 250,037, as
        // transformers allows); fewer would index past the embeddings.
        if model.config.vocab_size < tok.vocab_size() as i64 {
            bail!(
                "the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                model.config.vocab_size,
                tok.vocab_size()
            );
        }
        if model.config.max_sequence_length() < self.data.max_seq_length as i64 {
            bail!(
                "max_seq_length {} exceeds the model's {} positions",
                self.data.max_seq_length,
                model.config.max_sequence_length()
            );
        }
        Ok(model)
    }
}

/// One masked micro-batch: ids, positions and targets on the device; the attention mask stays on the
/// host, where the encoder reads whether the batch has padding without waiting for the device.
pub struct MlmBatch {
    input_ids: Tensor,
    attention_mask: Tensor,
    positions: Tensor,
    targets: Tensor,
    tokens: usize,
    /// Labelled positions before any padding of `targets`: the items the loss is the mean over.
    labelled: usize,
    /// Shapes set by the batch's size alone and no padding: a captured step may replay it.
    fixed: bool,
}

pub struct MlmTask {
    pub model: Pretrained<XlmRobertaForMaskedLM>,
    inputs: Inputs,
    masker: Masker,
    device: Device,
    seed: u64,
    eval_batch_size: usize,
    max_eval_sequences: Option<usize>,
    /// The training sequences used: all, or the first `data.max_train_sequences`.
    train_len: usize,
    /// Training batches' labelled positions padded to `model::mlm::position_bound` (CUDA graphs).
    static_shapes: bool,
}

impl MlmTask {
    pub fn new(
        cfg: &MlmConfig,
        model: Pretrained<XlmRobertaForMaskedLM>,
        inputs: Inputs,
        device: Device,
    ) -> Result<Self> {
        let masker = Masker::new(&inputs.tokenizer, cfg.masking)?;
        let train_len = match cfg.data.max_train_sequences {
            Some(0) => bail!("data.max_train_sequences must be at least 1"),
            Some(n) => n.min(inputs.train.len()),
            None => inputs.train.len(),
        };
        Ok(Self {
            model,
            inputs,
            masker,
            device,
            seed: cfg.train.seed,
            eval_batch_size: cfg.data.eval_batch_size.max(1),
            max_eval_sequences: cfg.data.max_eval_sequences,
            train_len,
            static_shapes: false,
        })
    }

    /// Pads and masks on the host (see `model::mlm`), then copies what the step reads to the device.
    /// With `bounded`, the labelled positions are padded to their bound where they fit under it
    /// (`static` then says so): the batch's shapes then depend on its size only.
    fn masked_batch(&self, seqs: &[Vec<u32>], bounded: bool) -> Result<MlmBatch> {
        let (ids, attention_mask) = pad_batch(seqs, self.inputs.tokenizer.pad_id, 8);
        let (input_ids, labels) = self.masker.mask(&ids, &attention_mask)?;
        let (mut positions, mut targets) = labelled_positions(&labels);
        let labelled = positions.size()[0] as usize;
        let mut fixed = false;
        if bounded {
            let bound = position_bound(ids.numel() as i64, self.masker.probability());
            if let Some((p, t)) = pad_positions(&positions, &targets, bound) {
                (positions, targets, fixed) = (p, t, true);
            }
        }
        // A captured step freezes the encoder's padding decision: only unpadded batches replay.
        let fixed = fixed && attention_mask.eq(0).any().int64_value(&[]) == 0;
        let upload = |t: &Tensor| model::device::upload(t, self.device);
        Ok(MlmBatch {
            input_ids: upload(&input_ids),
            attention_mask,
            positions: upload(&positions),
            targets: upload(&targets),
            tokens: seqs.iter().map(Vec::len).sum(),
            labelled,
            fixed,
        })
    }

    fn logits(&self, b: &MlmBatch, train: bool) -> Tensor {
        self.model
            .model
            .loss_logits_at(&b.input_ids, &b.attention_mask, None, &b.positions, train)
    }
}

impl model::train::Task for MlmTask {
    type Batch = MlmBatch;

    fn set_gradient_checkpointing(&mut self, on: bool) -> Result<()> {
        self.model.model.roberta.set_gradient_checkpointing(on);
        Ok(())
    }

    fn train_len(&self) -> usize {
        self.train_len
    }

    fn sampling(&self) -> model::train::Sampling {
        let train = &self.inputs.train;
        model::train::Sampling {
            lengths: Some((0..self.train_len).map(|i| train.seq_len(i)).collect()),
            ..model::train::Sampling::uniform(self.train_len)
        }
    }

    fn batch(&self, indices: &[usize]) -> Result<MlmBatch> {
        let seqs: Vec<Vec<u32>> = indices.iter().map(|&i| self.inputs.train.get(i)).collect();
        self.masked_batch(&seqs, self.static_shapes)
    }

    fn use_static_shapes(&mut self) {
        self.static_shapes = true;
    }

    fn graph_inputs(&self, b: &MlmBatch) -> Option<Vec<Tensor>> {
        b.fixed.then(|| {
            vec![
                b.input_ids.shallow_clone(),
                b.positions.shallow_clone(),
                b.targets.shallow_clone(),
            ]
        })
    }

    fn tokens(&self, batch: &MlmBatch) -> usize {
        batch.tokens
    }

    fn padded_tokens(&self, batch: &MlmBatch) -> usize {
        batch.input_ids.numel()
    }

    fn loss(&self, batch: &MlmBatch, train: bool) -> Tensor {
        model::loss::cross_entropy(&self.logits(batch, train), &batch.targets)
    }

    fn loss_items(&self, batch: &MlmBatch) -> Option<usize> {
        Some(batch.labelled)
    }

    /// Loss, perplexity and accuracy on the validation split with the same masks every time: over all
    /// of it (`eval/loss`, …) and, where its shards record languages, per language (`eval/es/loss`, …).
    fn evaluate(&mut self) -> Result<BTreeMap<String, f64>> {
        let sets = &self.inputs.eval;
        if sets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let lens: Vec<usize> = sets.iter().map(|s| s.sequences.len()).collect();
        let shares = eval_shares(&lens, self.max_eval_sequences);
        let mut metrics = BTreeMap::new();
        let mut all = EvalSums::default();
        // One batch counter over all sets: every batch gets its own masks, the same at each evaluation.
        let mut j = 0u64;
        for (set, n) in sets.iter().zip(shares) {
            let mut sums = EvalSums::default();
            for start in (0..n).step_by(self.eval_batch_size) {
                let seqs: Vec<Vec<u32>> = (start..(start + self.eval_batch_size).min(n))
                    .map(|i| set.sequences.get(i))
                    .collect();
                tch::manual_seed(model::train::trainer::eval_batch_seed(self.seed, j) as i64);
                j += 1;
                let b = self.masked_batch(&seqs, false)?;
                let (l, c, k) = masked_loss_parts(&self.logits(&b, false), &b.targets);
                sums.loss += l.to_kind(Kind::Double).double_value(&[]);
                sums.correct += c.int64_value(&[]);
                sums.count += k;
            }
            if let Some(language) = &set.language {
                sums.report(&format!("eval/{language}/"), &mut metrics);
            }
            all.add(&sums);
        }
        all.report("eval/", &mut metrics);
        Ok(metrics)
    }

    fn variables(&self) -> HashMap<String, Tensor> {
        self.model.vs.variables()
    }

    fn model_snapshot(&self) -> Result<model::snapshot::DirSnapshot> {
        self.model
            .snapshot(SaveDtype::F32, Some(&self.inputs.tokenizer_path))
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

/// Sums over the masked tokens of an evaluation.
#[derive(Default)]
struct EvalSums {
    loss: f64,
    correct: i64,
    count: i64,
}

impl EvalSums {
    fn add(&mut self, other: &Self) {
        self.loss += other.loss;
        self.correct += other.correct;
        self.count += other.count;
    }

    fn report(&self, prefix: &str, out: &mut BTreeMap<String, f64>) {
        let loss = self.loss / self.count.max(1) as f64;
        out.insert(format!("{prefix}loss"), loss);
        out.insert(format!("{prefix}perplexity"), loss.exp());
        let accuracy = self.correct as f64 / self.count.max(1) as f64;
        out.insert(format!("{prefix}accuracy"), accuracy);
        out.insert(format!("{prefix}masked_tokens"), self.count as f64);
    }
}

/// How many sequences of each set an evaluation scores: all, or `cap` shared out evenly, a set with
/// fewer than its share leaving the rest to the others (earlier sets take the remainder's extra one).
pub fn eval_shares(lens: &[usize], cap: Option<usize>) -> Vec<usize> {
    let Some(cap) = cap else {
        return lens.to_vec();
    };
    let mut shares = vec![0; lens.len()];
    let mut left = cap.min(lens.iter().sum());
    while left > 0 {
        let open: Vec<usize> = (0..lens.len()).filter(|&i| shares[i] < lens[i]).collect();
        // Each open set gets an equal part of what is left (at least one, to the earliest first).
        let part = (left / open.len()).max(1);
        for i in open {
            let take = part.min(lens[i] - shares[i]).min(left);
            shares[i] += take;
            left -= take;
        }
    }
    shares
}

/// What `mlm-pretrain` adds to the common run (`run::train`).
impl run::Job for MlmConfig {
    type Task = MlmTask;
    const NAME: &'static str = "mlm-pretrain";
    const PIPELINE_TAG: &'static str = "fill-mask";

    fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    fn task(&self, device: Device) -> Result<MlmTask> {
        let inputs = self.open_inputs()?;
        let model = self.build_model(&inputs.tokenizer, device)?;
        MlmTask::new(self, model, inputs, device)
    }

    fn inputs(&self, _task: &MlmTask) -> Vec<PathBuf> {
        let mut files = vec![
            self.data.shards.join(model::shards::MANIFEST),
            self.tokenizer_path(),
        ];
        files.extend(
            self.model
                .init_from
                .as_ref()
                .map(|d| d.join(model::pretrained::WEIGHTS_FILE)),
        );
        files
    }

    fn describe(&self, task: &MlmTask) -> String {
        let all = task.inputs.train.len();
        let used = match task.train_len {
            n if n < all => format!("the first {n} of {all}"),
            n => n.to_string(),
        };
        format!(
            "{} parameters, {used} train sequences, {} validation sequences",
            task.model.num_parameters(),
            task.inputs
                .eval
                .iter()
                .map(|e| e.sequences.len())
                .sum::<usize>(),
        )
    }

    fn save_final(
        &self,
        task: &mut MlmTask,
        _: &model::train::TrainOutcome,
        dir: &Path,
    ) -> Result<()> {
        model::train::Task::save_model(task, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::eval_shares;

    #[test]
    fn the_evaluation_cap_is_shared_out_evenly_among_languages() {
        assert_eq!(eval_shares(&[5, 9], None), vec![5, 9]);
        assert_eq!(eval_shares(&[50, 90, 70], Some(30)), vec![10, 10, 10]);
        // A small language leaves its rest to the others; the remainder goes to the earliest.
        assert_eq!(eval_shares(&[2, 90, 70], Some(31)), vec![2, 15, 14]);
        assert_eq!(eval_shares(&[3, 4], Some(100)), vec![3, 4]);
        assert_eq!(eval_shares(&[10, 10, 10], Some(2)), vec![1, 1, 0]);
        assert_eq!(eval_shares(&[7], Some(0)), vec![0]);
    }
}
