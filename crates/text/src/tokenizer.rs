//! `tokenizer.json` through the `tokenizers` crate, encoding as `transformers`' fast tokenizer does.
//!
//! Offsets are *character* offsets into the original strings (Python's convention), not the byte
//! offsets that `Tokenizer::encode` gives. Question/context pairs are cut into overlapping windows
//! with `only_second` truncation, as `run_qa.py` asks of the fast tokenizer. Which pipeline a file gets
//! is [`tokenizer_config`]'s choice, as `AutoTokenizer.from_pretrained(dir)` makes it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::{Encoding, Tokenizer};

use crate::tokenizer_config::{self, Build};

pub use crate::qa::windows::{PairWindows, Piece};

type WordIds = std::collections::HashMap<String, Vec<u32>>;

thread_local! {
    /// Word → ids, per thread, for `encode_ids`, with the tokenizer they belong to: a thread that
    /// switches tokenizers starts the cache over, so two vocabularies never mix.
    static WORD_IDS: std::cell::RefCell<(u64, WordIds)> = std::cell::RefCell::new((u64::MAX, WordIds::new()));
}

static NEXT_CACHE_OWNER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Words kept per thread before the cache starts over (bounds memory on huge vocabularies of words).
const WORD_CACHE_LIMIT: usize = 1 << 20;

/// One encoded sequence: ids, character offsets (`(0, 0)` for special tokens) and, for pairs,
/// which input each token came from (`None` for special tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub input_ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
    pub sequence_ids: Vec<Option<usize>>,
}

impl Window {
    pub(crate) fn from_encoding(e: &Encoding) -> Self {
        Self {
            input_ids: e.get_ids().to_vec(),
            offsets: e.get_offsets().to_vec(),
            sequence_ids: e.get_sequence_ids(),
        }
    }

    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// An XLM-R tokenizer with the ids of its special tokens looked up once.
#[derive(Clone)]
pub struct XlmrTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    /// How the file became this tokenizer (its `tokenizer_config.json`).
    build: Build,
    pub bos_id: u32,
    pub pad_id: u32,
    pub eos_id: u32,
    pub unk_id: u32,
    pub mask_id: u32,
    /// Which `WORD_IDS` entries are this tokenizer's (clones share it: same vocabulary).
    cache_owner: u64,
}

impl XlmrTokenizer {
    /// Loads `tokenizer.json` (a file, or a model directory holding one), built as `transformers` builds
    /// it from the `tokenizer_config.json` beside it ([`tokenizer_config`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            let dir = file.parent().unwrap_or(Path::new("."));
            // Checkpoints saved with the slow tokenizer only (older fine-tuned XLM-R models) carry the
            // SentencePiece model; transformers converts it, which needs Python packages medqa has not.
            if dir.join("sentencepiece.bpe.model").is_file() {
                bail!(
                    "{} is missing; {} has only the SentencePiece model (sentencepiece.bpe.model). \
                     Write tokenizer.json once with transformers (pip install sentencepiece protobuf): \
                     python -c \"from transformers import AutoTokenizer as T; \
                     T.from_pretrained('{dir}').save_pretrained('{dir}')\"",
                    file.display(),
                    dir.display(),
                    dir = dir.display()
                );
            }
            bail!("tokenizer {} does not exist", file.display());
        }
        let build = tokenizer_config::build_for(&file)?;
        let mut inner = match build {
            Build::AsWritten => Tokenizer::from_file(&file)
                .map_err(|e| anyhow!("cannot load tokenizer {}: {e}", file.display()))?,
            Build::XlmRoberta { .. } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let mut json: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", file.display()))?;
                tokenizer_config::apply(&mut json, build, &file)?;
                Tokenizer::from_str(&json.to_string())
                    .map_err(|e| anyhow!("cannot load tokenizer {}: {e}", file.display()))?
            }
        };
        // Padding and truncation are decided per call; a tokenizer.json may carry either.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| anyhow!("{}: cannot reset truncation: {e}", file.display()))?;
        let id = |token: &str| {
            inner.token_to_id(token).with_context(|| {
                format!(
                    "{}: special token {token} is not in the vocabulary",
                    file.display()
                )
            })
        };
        Ok(Self {
            bos_id: id("<s>")?,
            pad_id: id("<pad>")?,
            eos_id: id("</s>")?,
            unk_id: id("<unk>")?,
            mask_id: id("<mask>")?,
            inner,
            path: file,
            build,
            cache_owner: NEXT_CACHE_OWNER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn build(&self) -> Build {
        self.build
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// `<s> text </s>`, untruncated.
    pub fn encode(&self, text: &str) -> Result<Window> {
        let e = self
            .inner
            .encode_char_offsets(text, true)
            .map_err(|e| anyhow!("tokenizing {:?}: {e}", preview(text)))?;
        Ok(Window::from_encoding(&e))
    }

    /// Text without special tokens, for corpus tokenization.
    pub fn encode_plain(&self, text: &str) -> Result<Window> {
        let e = self
            .inner
            .encode_char_offsets(text, false)
            .map_err(|e| anyhow!("tokenizing {:?}: {e}", preview(text)))?;
        Ok(Window::from_encoding(&e))
    }

    /// Token ids of text without special tokens: what corpus shards need. The tokenizer's own
    /// normalizer, pre-tokenizer and model, but no `Encoding` (offsets, token strings, masks) is
    /// built, and each thread remembers the ids of the words it has seen — corpus text repeats its
    /// words, so most words cost one hash lookup. Text that may hold a special token (`<…>`) takes
    /// the full pipeline, which matches those first.
    pub fn encode_ids(&self, text: &str) -> Result<Vec<u32>> {
        use tokenizers::{Model, Normalizer, OffsetReferential, OffsetType, PreTokenizer};
        let fail = |e: tokenizers::Error| anyhow!("tokenizing {:?}: {e}", preview(text));
        if text.contains('<') {
            return self
                .inner
                .encode_fast(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(fail);
        }
        let mut normalized = tokenizers::NormalizedString::from(text);
        if let Some(n) = self.inner.get_normalizer() {
            n.normalize(&mut normalized).map_err(fail)?;
        }
        let mut words = tokenizers::PreTokenizedString::from(normalized);
        if let Some(p) = self.inner.get_pre_tokenizer() {
            p.pre_tokenize(&mut words).map_err(fail)?;
        }
        let model = self.inner.get_model();
        WORD_IDS.with_borrow_mut(|(owner, cache)| {
            if *owner != self.cache_owner || cache.len() > WORD_CACHE_LIMIT {
                cache.clear();
                *owner = self.cache_owner;
            }
            let mut ids = Vec::new();
            for (word, _, _) in words.get_splits(OffsetReferential::Original, OffsetType::None) {
                if let Some(known) = cache.get(word) {
                    ids.extend_from_slice(known);
                    continue;
                }
                let word_ids: Vec<u32> = model
                    .tokenize(word)
                    .map_err(fail)?
                    .iter()
                    .map(|t| t.id)
                    .collect();
                ids.extend_from_slice(&word_ids);
                cache.insert(word.to_owned(), word_ids);
            }
            Ok(ids)
        })
    }

    /// A pair encoder for windows of at most `max_length` tokens overlapping by `stride` tokens
    /// ([`PairWindows`]).
    pub fn pair_windows(&self, max_length: usize, stride: usize) -> Result<PairWindows> {
        PairWindows::new(&self.inner, max_length, stride)
    }
}

pub(crate) fn preview(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        s.push('…');
    }
    s
}
