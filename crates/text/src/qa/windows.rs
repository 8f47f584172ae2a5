//! QA windows: a (question, context) pair encoded into every window that covers the context, as
//! `run_qa.py`'s tokenizer call does (`only_second` truncation with a stride, overflowing windows), with
//! each side tokenizable once and reused.

use anyhow::{anyhow, bail, Result};
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::tokenizer::{preview, Window};

/// Encodes (question, context) pairs into every window that covers the context.
pub struct PairWindows {
    inner: Tokenizer,
    /// No truncation, padding or special tokens: one side of a pair as the pair encoder sees it.
    raw: Tokenizer,
    max_length: usize,
    stride: usize,
    /// Special tokens a pair gets (`<s> q </s></s> c </s>`: 4).
    added: usize,
}

/// One side of a (question, context) pair, tokenized once: many questions on one context (a SQuAD
/// paragraph, a document asked for every concept) share its tokenization.
#[derive(Clone, Debug)]
pub struct Piece(Encoding);

impl Piece {
    /// Tokens, without special tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Character offsets of the tokens in the text.
    pub fn offsets(&self) -> &[(usize, usize)] {
        self.0.get_offsets()
    }
}

impl PairWindows {
    /// A pair encoder over `tokenizer` for windows of at most `max_length` tokens overlapping by `stride`.
    pub fn new(tokenizer: &Tokenizer, max_length: usize, stride: usize) -> Result<Self> {
        let mut inner = tokenizer.clone();
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::OnlySecond,
                stride,
            }))
            .map_err(|e| {
                anyhow!("invalid window settings (max_length {max_length}, stride {stride}): {e}")
            })?;
        if max_length <= stride {
            bail!("doc_stride {stride} must be smaller than max_seq_length {max_length}");
        }
        let mut raw = tokenizer.clone();
        raw.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        let added = inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        Ok(Self {
            inner,
            raw,
            max_length,
            stride,
            added,
        })
    }

    /// Context tokens a window has beside a question of this many tokens.
    fn room(&self, question_tokens: usize) -> usize {
        self.max_length.saturating_sub(question_tokens + self.added)
    }

    /// tokenizers panics, rather than failing, when a context must be cut but the question leaves it
    /// no more room than the stride (run_qa.py dies there too); here that is an error naming the sizes.
    fn check_room(&self, question_tokens: usize, context_tokens: usize) -> Result<()> {
        let room = self.room(question_tokens);
        if question_tokens + context_tokens + self.added > self.max_length && room <= self.stride {
            bail!(
                "a {question_tokens}-token question leaves {room} tokens for the context in windows \
                 of {} with doc_stride {}: cut questions shorter (max_query_length) or make the \
                 windows longer",
                self.max_length,
                self.stride
            );
        }
        Ok(())
    }

    /// Tokenizes one side of a pair, for `encode_pieces`.
    pub fn piece(&self, text: &str) -> Result<Piece> {
        self.raw
            .encode_char_offsets(text, false)
            .map(Piece)
            .map_err(|e| anyhow!("tokenizing {:?}: {e}", preview(text)))
    }

    /// The same windows as `encode(question, context)`, from sides tokenized once: `encode` tokenizes
    /// each side and hands both to the same truncation and post-processing.
    pub fn encode_pieces(&self, question: &Piece, context: &Piece) -> Result<Vec<Window>> {
        self.check_room(question.len(), context.len())?;
        let e = self
            .inner
            .post_process(question.0.clone(), Some(context.0.clone()), true)
            .map_err(|e| {
                anyhow!(
                    "cannot window a {}-token question (max_length {}): {e}",
                    question.len(),
                    self.max_length
                )
            })?;
        Ok(split_windows(e))
    }

    /// `<s> question </s></s> context-part </s>` for each part of the context, in order: the pair
    /// tokenized whole (what `encode_pieces` is tested against).
    pub fn encode(&self, question: &str, context: &str) -> Result<Vec<Window>> {
        let question_tokens = self.piece(question)?.len();
        // Only a question that leaves no more room than the stride needs the context's length.
        if self.room(question_tokens) <= self.stride {
            self.check_room(question_tokens, self.piece(context)?.len())?;
        }
        let e = self
            .inner
            .encode_char_offsets((question, context), true)
            .map_err(|e| {
                anyhow!(
                    "cannot window question {:?} (max_length {}): {e}",
                    preview(question),
                    self.max_length
                )
            })?;
        Ok(split_windows(e))
    }
}

/// The first window and the overflowing ones, in order.
fn split_windows(mut e: Encoding) -> Vec<Window> {
    let overflow = e.take_overflowing();
    let mut windows = Vec::with_capacity(1 + overflow.len());
    windows.push(Window::from_encoding(&e));
    windows.extend(overflow.iter().map(Window::from_encoding));
    windows
}
