//! `MlmTask`: the MLM side of the shared training loop, and its per-language evaluation.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Result};
use model::batch::pad_batch;
use model::mlm::{labelled_positions, masked_loss_parts, pad_positions, position_bound, Masker};
use model::train::task::ProgressBar;
use model::weights::{load_safetensors, SaveDtype};
use model::{Pretrained, XlmRobertaForMaskedLM};
use tch::{Device, Kind, Tensor};

use crate::config::{Inputs, MlmConfig};

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
    pub(crate) inputs: Inputs,
    masker: Masker,
    device: Device,
    seed: u64,
    eval_batch_size: usize,
    max_eval_sequences: Option<usize>,
    /// The training sequences used: all, or the first `data.max_train_sequences`.
    pub(crate) train_len: usize,
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
    const EVAL_UNIT: &'static str = "sequences";

    fn evaluate(&mut self, progress: &ProgressBar) -> Result<BTreeMap<String, f64>> {
        let sets = &self.inputs.eval;
        if sets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let lens: Vec<usize> = sets.iter().map(|s| s.sequences.len()).collect();
        let shares = eval_shares(&lens, self.max_eval_sequences);
        progress.set_length(shares.iter().sum::<usize>() as u64);
        let mut metrics = BTreeMap::new();
        let mut all = EvalSums::default();
        // One batch counter over all sets: every batch gets its own masks, the same at each evaluation.
        let mut j = 0u64;
        for (set, n) in sets.iter().zip(shares) {
            // Summed on the device and read once per set: a read per batch would make the host wait
            // for each batch before masking the next. The same additions in the same order as on the
            // host, so the same figures.
            let mut loss = Tensor::zeros([], (Kind::Double, self.device));
            let mut correct = Tensor::zeros([], (Kind::Int64, self.device));
            let mut count = 0;
            for start in (0..n).step_by(self.eval_batch_size) {
                let seqs: Vec<Vec<u32>> = (start..(start + self.eval_batch_size).min(n))
                    .map(|i| set.sequences.get(i))
                    .collect();
                tch::manual_seed(model::train::trainer::eval_batch_seed(self.seed, j) as i64);
                j += 1;
                let b = self.masked_batch(&seqs, false)?;
                let (l, c, k) = masked_loss_parts(&self.logits(&b, false), &b.targets);
                loss += l.to_kind(Kind::Double);
                correct += c;
                count += k;
                progress.inc(seqs.len() as u64);
            }
            let sums = EvalSums {
                loss: loss.double_value(&[]),
                correct: correct.int64_value(&[]),
                count,
            };
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
