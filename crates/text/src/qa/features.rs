//! `run_qa.py`'s features: each (question, context) pair becomes windows of at most `max_seq_length`
//! tokens overlapping by `doc_stride`, with `only_second` truncation; training windows get start/end
//! labels, evaluation windows keep the character offsets of their context tokens.

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::qa::squad::QaExample;
use crate::qa::windows::{PairWindows, Piece};
use crate::tokenizer::XlmrTokenizer;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QaFeature {
    /// Index of the example this window comes from.
    pub example: usize,
    pub input_ids: Vec<u32>,
    /// Character offsets of context tokens in the context; `None` for question and special tokens.
    pub context_offsets: Vec<Option<(usize, usize)>>,
    /// Token labels; `(0, 0)` (`<s>`) when the answer is not wholly inside the window or there is none.
    pub start_position: usize,
    pub end_position: usize,
}

pub struct FeatureMaker {
    windows: PairWindows,
    max_query_length: usize,
}

impl FeatureMaker {
    pub fn new(
        tok: &XlmrTokenizer,
        max_seq_length: usize,
        doc_stride: usize,
        max_query_length: usize,
    ) -> Result<Self> {
        if max_query_length == 0 {
            anyhow::bail!("max_query_length must be at least 1");
        }
        Ok(Self {
            windows: tok.pair_windows(max_seq_length, doc_stride)?,
            max_query_length,
        })
    }

    /// The question as `run_qa.py` feeds it (left-stripped), cut to `max_query_length` tokens.
    fn question(&self, q: &str) -> Result<Piece> {
        let q = q.trim_start();
        let piece = self.windows.piece(q)?;
        if piece.len() <= self.max_query_length {
            return Ok(piece);
        }
        let end = piece.offsets()[self.max_query_length - 1].1;
        let byte_end = q.char_indices().nth(end).map_or(q.len(), |(b, _)| b);
        self.windows.piece(&q[..byte_end])
    }

    /// Windows of one example, labelled from its first answer (as `run_qa.py`).
    pub fn features(&self, index: usize, ex: &QaExample) -> Result<Vec<QaFeature>> {
        let context = self.context(ex)?;
        self.features_on(index, ex, &context)
    }

    fn context(&self, ex: &QaExample) -> Result<Piece> {
        self.windows
            .piece(&ex.context)
            .with_context(|| format!("context of question '{}'", ex.id))
    }

    /// `features` with the example's context already tokenized.
    fn features_on(&self, index: usize, ex: &QaExample, context: &Piece) -> Result<Vec<QaFeature>> {
        let windows = self
            .question(&ex.question)
            .and_then(|question| self.windows.encode_pieces(&question, context))
            .with_context(|| format!("question '{}'", ex.id))?;
        let answer = ex
            .answers
            .first()
            .map(|a| (a.answer_start, a.answer_start + a.text.chars().count()));
        Ok(windows
            .into_iter()
            .map(|w| {
                let context_offsets: Vec<Option<(usize, usize)>> = w
                    .offsets
                    .iter()
                    .zip(&w.sequence_ids)
                    .map(|(o, s)| (*s == Some(1)).then_some(*o))
                    .collect();
                let (start_position, end_position) =
                    answer.map_or((0, 0), |(s, e)| label(&context_offsets, s, e));
                QaFeature {
                    example: index,
                    input_ids: w.input_ids,
                    context_offsets,
                    start_position,
                    end_position,
                }
            })
            .collect())
    }

    /// Windows of every example, in example order. Each distinct context is tokenized once, for all
    /// its questions; contexts are handled in parallel.
    pub fn all(&self, examples: &[QaExample]) -> Result<Vec<QaFeature>> {
        use rayon::prelude::*;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_context: HashMap<&str, usize> = HashMap::new();
        for (i, ex) in examples.iter().enumerate() {
            let group = *by_context.entry(&ex.context).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(i);
        }
        let per_group: Vec<Vec<(usize, Vec<QaFeature>)>> = groups
            .par_iter()
            .map(|members| {
                let context = self.context(&examples[members[0]])?;
                members
                    .iter()
                    .map(|&i| Ok((i, self.features_on(i, &examples[i], &context)?)))
                    .collect()
            })
            .collect::<Result<_>>()?;
        let mut per_example: Vec<Vec<QaFeature>> = vec![Vec::new(); examples.len()];
        for (i, features) in per_group.into_iter().flatten() {
            per_example[i] = features;
        }
        Ok(per_example.into_iter().flatten().collect())
    }
}

/// Token span of the characters `[start_char, end_char)`, or `(0, 0)` if the window does not hold all of it.
///
/// `run_qa.py` moves the start index forward "while offsets[i][0] <= start_char" without stopping at the
/// end of the context, so an answer starting at a window's last context token gets a start label on a
/// special or padding token; here the walk stops at the context's end.
fn label(offsets: &[Option<(usize, usize)>], start_char: usize, end_char: usize) -> (usize, usize) {
    let Some(first) = offsets.iter().position(Option::is_some) else {
        return (0, 0);
    };
    let last = offsets
        .iter()
        .rposition(Option::is_some)
        .expect("a first implies a last");
    let (o_first, o_last) = (
        offsets[first].expect("context"),
        offsets[last].expect("context"),
    );
    if !(o_first.0 <= start_char && o_last.1 >= end_char) {
        return (0, 0);
    }
    let mut s = first;
    while s <= last && offsets[s].is_some_and(|o| o.0 <= start_char) {
        s += 1;
    }
    let mut e = last;
    while e >= first && offsets[e].is_some_and(|o| o.1 >= end_char) {
        if e == 0 {
            break;
        }
        e -= 1;
    }
    (s - 1, e + 1)
}
