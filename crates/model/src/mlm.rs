//! Masked-language-model data: sequences cut from token shards, and dynamic masking.
//!
//! Sequences follow `run_mlm.py`: every document becomes `<s> ids </s>`; either the documents are
//! concatenated and cut into `max_seq_length` blocks (the tail block kept, unlike `run_mlm.py`), or each
//! document is one sequence (`line_by_line`, truncated). Masking follows
//! `DataCollatorForLanguageModeling` (15%, then 80% `<mask>` / 10% random / 10% kept), except that random
//! replacements are drawn from ordinary tokens only and a batch always has at least one masked token.
//! All randomness comes from torch's CPU generator, which the training loop seeds per micro-batch.
//!
//! Masking runs on the host, whatever the training device: choosing positions reads values (the
//! all-ignored check, the `nonzero` of the labelled positions), which on a GPU would make the host wait
//! for the device inside every step. On the host it costs well under a millisecond per batch, and a run
//! draws the same masks on CPU and CUDA.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::shards::Corpus;
use crate::tokenizer::XlmrTokenizer;

/// Label of positions that do not count in the loss (as `transformers`' -100).
pub const IGNORE: i64 = -100;

/// The sequences of one split.
pub struct Sequences {
    corpus: Corpus,
    max_len: usize,
    bos: u32,
    eos: u32,
    layout: Layout,
}

enum Layout {
    /// Start of each document in the virtual stream `<s> d0 </s> <s> d1 </s> …`, plus the total.
    Grouped { starts: Vec<u64>, total: u64 },
    /// Documents with at least one token.
    LineByLine { docs: Vec<usize> },
}

impl Sequences {
    pub fn new(
        corpus: Corpus,
        max_len: usize,
        line_by_line: bool,
        tok: &XlmrTokenizer,
    ) -> Result<Self> {
        if max_len < 3 {
            bail!("max_seq_length {max_len} leaves no room for text between <s> and </s>");
        }
        let layout = if line_by_line {
            Layout::LineByLine {
                docs: (0..corpus.documents())
                    .filter(|&d| corpus.document_len(d) > 0)
                    .collect(),
            }
        } else {
            let mut starts = Vec::with_capacity(corpus.documents());
            let mut total = 0u64;
            for d in 0..corpus.documents() {
                starts.push(total);
                total += corpus.document_len(d) as u64 + 2;
            }
            Layout::Grouped { starts, total }
        };
        Ok(Self {
            corpus,
            max_len,
            bos: tok.bos_id,
            eos: tok.eos_id,
            layout,
        })
    }

    pub fn len(&self) -> usize {
        match &self.layout {
            Layout::Grouped { total, .. } => total.div_ceil(self.max_len as u64) as usize,
            Layout::LineByLine { docs } => docs.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length of sequence `i` in tokens, special tokens included (what `get(i).len()` gives).
    pub fn seq_len(&self, i: usize) -> usize {
        match &self.layout {
            Layout::LineByLine { docs } => {
                self.corpus.document_len(docs[i]).min(self.max_len - 2) + 2
            }
            Layout::Grouped { total, .. } => {
                let from = i as u64 * self.max_len as u64;
                ((from + self.max_len as u64).min(*total) - from) as usize
            }
        }
    }

    /// The token ids of sequence `i`, special tokens included.
    pub fn get(&self, i: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.max_len);
        match &self.layout {
            Layout::LineByLine { docs } => {
                let d = docs[i];
                let n = self.corpus.document_len(d).min(self.max_len - 2);
                out.push(self.bos);
                self.corpus.read(d, 0..n, &mut out);
                out.push(self.eos);
            }
            Layout::Grouped { starts, total } => {
                let (from, to) = (
                    i as u64 * self.max_len as u64,
                    ((i + 1) as u64 * self.max_len as u64).min(*total),
                );
                let mut doc = starts.partition_point(|&s| s <= from) - 1;
                let mut pos = from;
                while pos < to {
                    let span = self.corpus.document_len(doc) as u64 + 2;
                    let (local, end) = (pos - starts[doc], (to - starts[doc]).min(span));
                    let mut p = local;
                    if p == 0 {
                        out.push(self.bos);
                        p = 1;
                    }
                    let text_end = end.min(span - 1);
                    if p < text_end {
                        self.corpus
                            .read(doc, (p - 1) as usize..(text_end - 1) as usize, &mut out);
                        p = text_end;
                    }
                    if p < end {
                        out.push(self.eos);
                    }
                    pos = starts[doc] + end;
                    doc += 1;
                }
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskingConfig {
    pub mlm_probability: f64,
    /// Of the chosen tokens: this share becomes `<mask>`, half the rest random tokens, the rest unchanged.
    pub mask_replace_prob: f64,
    pub random_replace_prob: f64,
    pub whole_word_mask: bool,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            mlm_probability: 0.15,
            mask_replace_prob: 0.8,
            random_replace_prob: 0.1,
            whole_word_mask: false,
        }
    }
}

/// Chooses and replaces tokens for MLM, on host tensors.
pub struct Masker {
    cfg: MaskingConfig,
    mask_id: i64,
    /// Per vocabulary id: may be masked (not `<s>`, `<pad>`, `</s>`, `<unk>`, `<mask>`).
    maskable: Tensor,
    /// Per vocabulary id: begins a word (SentencePiece `▁`), for whole-word masking.
    word_start: Tensor,
    /// The ids random replacements are drawn from.
    ordinary: Tensor,
}

impl Masker {
    pub fn new(tok: &XlmrTokenizer, cfg: MaskingConfig) -> Result<Self> {
        let p = [
            cfg.mlm_probability,
            cfg.mask_replace_prob,
            cfg.random_replace_prob,
        ];
        if p.iter().any(|x| !(0.0..=1.0).contains(x))
            || cfg.mask_replace_prob + cfg.random_replace_prob > 1.0
        {
            bail!(
                "masking probabilities must be in [0, 1], and <mask> + random at most 1: {cfg:?}"
            );
        }
        let vocab = tok.vocab_size();
        let specials = [tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.mask_id];
        let mut maskable = vec![true; vocab];
        let mut word_start = vec![false; vocab];
        for (id, start) in word_start.iter_mut().enumerate() {
            *start = tok
                .id_to_token(id as u32)
                .is_some_and(|t| t.starts_with('\u{2581}'));
        }
        for s in specials {
            maskable[s as usize] = false;
            word_start[s as usize] = true;
        }
        let ordinary: Vec<i64> = (0..vocab as i64)
            .filter(|&i| maskable[i as usize])
            .collect();
        if ordinary.is_empty() {
            bail!("the tokenizer has no ordinary tokens to mask");
        }
        Ok(Self {
            cfg,
            mask_id: tok.mask_id as i64,
            maskable: Tensor::from_slice(&maskable),
            word_start: Tensor::from_slice(&word_start),
            ordinary: Tensor::from_slice(&ordinary),
        })
    }

    /// The share of maskable tokens chosen (`mlm_probability`).
    pub fn probability(&self) -> f64 {
        self.cfg.mlm_probability
    }

    /// `(masked input ids, labels)`; labels are `IGNORE` except at the chosen positions. `ids` and
    /// `attention_mask` are host tensors; so are the results.
    pub fn mask(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<(Tensor, Tensor)> {
        if ids.device() != Device::Cpu || attention_mask.device() != Device::Cpu {
            bail!("MLM masking runs on host tensors (got {:?})", ids.device());
        }
        let maskable = self
            .maskable
            .index_select(0, &ids.flatten(0, -1))
            .view_as(ids)
            .logical_and(&attention_mask.ne(0));
        let draw = ids.rand_like_f64();
        let draw = if self.cfg.whole_word_mask {
            self.per_word(ids, &draw)
        } else {
            draw
        };
        let mut chosen = draw.lt(self.cfg.mlm_probability).logical_and(&maskable);
        if chosen.sum(Kind::Int64).int64_value(&[]) == 0 {
            // An all-ignored batch has no loss: take the lowest draw instead (its whole word, with
            // whole-word masking, since a word shares one draw).
            let score = draw.masked_fill(&maskable.logical_not(), 2.0);
            let lowest = score.min();
            if lowest.double_value(&[]) < 2.0 {
                chosen = score.le_tensor(&lowest).logical_and(&maskable);
            }
        }
        let labels = ids.masked_fill(&chosen.logical_not(), IGNORE);
        let roll = ids.rand_like_f64();
        let to_mask = chosen.logical_and(&roll.lt(self.cfg.mask_replace_prob));
        let to_random = chosen
            .logical_and(&roll.ge(self.cfg.mask_replace_prob))
            .logical_and(&roll.lt(self.cfg.mask_replace_prob + self.cfg.random_replace_prob));
        let random_ids = self
            .ordinary
            .index_select(
                0,
                &Tensor::randint(
                    self.ordinary.size()[0],
                    ids.size(),
                    (Kind::Int64, ids.device()),
                )
                .flatten(0, -1),
            )
            .view_as(ids);
        let inputs = ids
            .masked_fill(&to_mask, self.mask_id)
            .where_self(&to_random.logical_not(), &random_ids);
        Ok((inputs, labels))
    }

    /// Gives every token the draw of the first token of its word.
    fn per_word(&self, ids: &Tensor, draw: &Tensor) -> Tensor {
        let starts = self
            .word_start
            .index_select(0, &ids.flatten(0, -1))
            .view_as(ids);
        // A token after a special token starts a word even without `▁`.
        let after_special = self
            .maskable
            .index_select(0, &ids.flatten(0, -1))
            .view_as(ids)
            .logical_not()
            .roll([1], [1]);
        let _ = after_special.narrow(1, 0, 1).fill_(1i64);
        let starts = starts.logical_or(&after_special);
        let seq = ids.size()[1];
        let positions = Tensor::arange(seq, (Kind::Int64, ids.device())).expand_as(ids);
        let first = (positions * starts.to_kind(Kind::Int64)).cummax(1).0;
        draw.gather(1, &first, false)
    }
}

trait RandLike {
    fn rand_like_f64(&self) -> Tensor;
}

impl RandLike for Tensor {
    fn rand_like_f64(&self) -> Tensor {
        Tensor::rand(self.size(), (Kind::Float, self.device()))
    }
}

/// Cross-entropy summed over the labelled positions, and how many were right: `(loss_sum, correct, count)`.
pub fn masked_loss_parts(logits_at: &Tensor, labels_at: &Tensor) -> (Tensor, Tensor, i64) {
    let loss = logits_at
        .log_softmax(-1, Kind::Float)
        .nll_loss_nd::<Tensor>(labels_at, None, tch::Reduction::Sum, IGNORE);
    let correct = logits_at
        .argmax(-1, false)
        .eq_tensor(labels_at)
        .sum(Kind::Int64);
    (loss, correct, labels_at.size()[0])
}

/// Flat positions of the labelled tokens and their labels.
pub fn labelled_positions(labels: &Tensor) -> (Tensor, Tensor) {
    let flat = labels.flatten(0, -1);
    let positions = flat.ne(IGNORE).nonzero().squeeze_dim(1);
    let targets = flat.index_select(0, &positions);
    (positions, targets)
}

/// How many labelled positions a `tokens`-token batch masked with `probability` gets at most, with
/// all but a vanishing share of batches below it: the mean plus six standard deviations of the binomial
/// count, rounded up to a multiple of 64. What [`pad_positions`] pads to, so that a batch's shapes depend
/// on its size only and one captured CUDA graph replays every batch of that size.
pub fn position_bound(tokens: i64, probability: f64) -> i64 {
    let n = tokens as f64;
    let mean = n * probability;
    let sd = (n * probability * (1.0 - probability)).sqrt();
    let bound = ((mean + 6.0 * sd).ceil() as i64).max(1);
    ((bound + 63) / 64 * 64).min(tokens.max(1))
}

/// `(positions, targets)` of [`labelled_positions`], host tensors, padded to `bound` entries: the extra
/// entries point at position 0 and carry the `IGNORE` label, so they add nothing to the loss (whose mean
/// counts the labelled entries only) or its gradient. None when the batch has more than `bound`.
pub fn pad_positions(positions: &Tensor, targets: &Tensor, bound: i64) -> Option<(Tensor, Tensor)> {
    let n = positions.size()[0];
    if n > bound {
        return None;
    }
    let pad = |t: &Tensor, value: i64| {
        let out = Tensor::full([bound], value, (t.kind(), t.device()));
        out.narrow(0, 0, n).copy_(t);
        out
    };
    Some((pad(positions, 0), pad(targets, IGNORE)))
}
