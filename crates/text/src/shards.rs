//! Token shards: the corpus as data-prep writes it and MLM training reads it.
//!
//! A shard directory holds `manifest.json` and, per shard, `NAME.bin` (token ids, little-endian `u32`,
//! documents back to back, no special tokens) and `NAME.idx` (little-endian `u64` document boundaries:
//! `documents + 1` offsets into the ids, starting at 0). Both are read through a memory map, so a corpus
//! larger than RAM trains without being loaded.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "medqa-token-shards/1";
pub const MANIFEST: &str = "manifest.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub name: String,
    /// `train` or `validation`.
    pub split: String,
    /// The language of every document in the shard, where the writer kept one language per shard
    /// (data-prep's validation shards, so that MLM evaluation reports each language); absent in
    /// mixed shards and in shards written before languages were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub documents: u64,
    pub tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub format: String,
    pub vocab_size: u64,
    /// SHA-256 of the `tokenizer.json` the ids come from.
    pub tokenizer_sha256: String,
    /// How that file was built into a tokenizer (`tokenizer_config::Build`'s name): the same file gives
    /// other ids under another build. Absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_build: Option<String>,
    pub shards: Vec<ShardInfo>,
    /// Anything the writer wants to record (sources, statistics, config).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl ShardManifest {
    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read shard manifest {}", file.display()))?;
        let m: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a shard manifest", file.display()))?;
        if m.format != FORMAT {
            bail!("{}: format '{}' is not {FORMAT}", file.display(), m.format);
        }
        Ok(m)
    }
}

/// Writes documents into one shard.
pub struct ShardWriter {
    bin: BufWriter<File>,
    idx: BufWriter<File>,
    paths: [PathBuf; 2],
    info: ShardInfo,
}

impl ShardWriter {
    pub fn create(dir: &Path, name: &str, split: &str) -> Result<Self> {
        Self::create_in(dir, name, split, None)
    }

    /// A shard whose documents are all in `language` (recorded in its manifest entry).
    pub fn create_in(dir: &Path, name: &str, split: &str, language: Option<&str>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let bin_path = dir.join(format!("{name}.bin"));
        let idx_path = dir.join(format!("{name}.idx"));
        let open =
            |p: &Path| File::create(p).with_context(|| format!("cannot create {}", p.display()));
        let mut idx = BufWriter::new(open(&idx_path)?);
        idx.write_all(&0u64.to_le_bytes())?;
        Ok(Self {
            bin: BufWriter::new(open(&bin_path)?),
            idx,
            paths: [bin_path, idx_path],
            info: ShardInfo {
                name: name.to_owned(),
                split: split.to_owned(),
                language: language.map(str::to_owned),
                documents: 0,
                tokens: 0,
            },
        })
    }

    pub fn push(&mut self, ids: &[u32]) -> Result<()> {
        for id in ids {
            self.bin.write_all(&id.to_le_bytes())?;
        }
        self.info.tokens += ids.len() as u64;
        self.info.documents += 1;
        self.idx.write_all(&self.info.tokens.to_le_bytes())?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<ShardInfo> {
        self.bin.flush()?;
        self.idx.flush()?;
        for (w, p) in [
            (self.bin.get_ref(), &self.paths[0]),
            (self.idx.get_ref(), &self.paths[1]),
        ] {
            w.sync_all()
                .with_context(|| format!("cannot sync {}", p.display()))?;
        }
        Ok(self.info)
    }
}

/// One memory-mapped shard.
pub struct Shard {
    ids: memmap2::Mmap,
    offsets: memmap2::Mmap,
    documents: usize,
}

fn map(path: &Path) -> Result<memmap2::Mmap> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: shards are written once and never modified in place; the map is read-only.
    unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("cannot map {}", path.display()))
}

impl Shard {
    pub fn open(dir: &Path, info: &ShardInfo) -> Result<Self> {
        let bin = dir.join(format!("{}.bin", info.name));
        let idx = dir.join(format!("{}.idx", info.name));
        let (ids, offsets) = (map(&bin)?, map(&idx)?);
        if ids.len() as u64 != info.tokens * 4 || offsets.len() as u64 != (info.documents + 1) * 8 {
            bail!(
                "shard {} does not match its manifest ({} documents, {} tokens): truncated or rewritten",
                bin.display(),
                info.documents,
                info.tokens
            );
        }
        Ok(Self {
            ids,
            offsets,
            documents: info.documents as usize,
        })
    }

    pub fn documents(&self) -> usize {
        self.documents
    }

    fn offset(&self, i: usize) -> usize {
        let b = &self.offsets[i * 8..i * 8 + 8];
        u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize
    }

    pub fn document_len(&self, doc: usize) -> usize {
        self.offset(doc + 1) - self.offset(doc)
    }

    /// Tokens `range` of document `doc`, appended to `out`.
    pub fn read(&self, doc: usize, range: std::ops::Range<usize>, out: &mut Vec<u32>) {
        let start = self.offset(doc) + range.start;
        let bytes = &self.ids[start * 4..(start + range.len()) * 4];
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
    }
}

/// All shards of one split, addressed by a global document number.
pub struct Corpus {
    shards: Vec<Shard>,
    /// First global document number of each shard.
    starts: Vec<usize>,
    documents: usize,
}

impl Corpus {
    pub fn open(dir: &Path, split: &str) -> Result<Self> {
        Self::open_where(dir, |s| s.split == split)
    }

    /// The shards of `split` in `language` (as their manifest entries record it; `None`: the shards
    /// that record none).
    pub fn open_language(dir: &Path, split: &str, language: Option<&str>) -> Result<Self> {
        Self::open_where(dir, |s| {
            s.split == split && s.language.as_deref() == language
        })
    }

    /// The languages the shards of `split` record, sorted, with `None` for shards that record none.
    pub fn languages(dir: &Path, split: &str) -> Result<Vec<Option<String>>> {
        let mut langs: Vec<Option<String>> = ShardManifest::load(dir)?
            .shards
            .into_iter()
            .filter(|s| s.split == split)
            .map(|s| s.language)
            .collect();
        langs.sort();
        langs.dedup();
        Ok(langs)
    }

    fn open_where(dir: &Path, keep: impl Fn(&ShardInfo) -> bool) -> Result<Self> {
        let manifest = ShardManifest::load(dir)?;
        let mut shards = Vec::new();
        let mut starts = Vec::new();
        let mut documents = 0;
        for info in manifest.shards.iter().filter(|s| keep(s)) {
            let shard = Shard::open(dir, info)?;
            starts.push(documents);
            documents += shard.documents();
            shards.push(shard);
        }
        Ok(Self {
            shards,
            starts,
            documents,
        })
    }

    pub fn documents(&self) -> usize {
        self.documents
    }

    fn locate(&self, doc: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&start| start <= doc) - 1;
        (s, doc - self.starts[s])
    }

    pub fn document_len(&self, doc: usize) -> usize {
        let (s, d) = self.locate(doc);
        self.shards[s].document_len(d)
    }

    pub fn read(&self, doc: usize, range: std::ops::Range<usize>, out: &mut Vec<u32>) {
        let (s, d) = self.locate(doc);
        self.shards[s].read(d, range, out)
    }
}

/// SHA-256 of a file as lower-case hex.
pub use fsutil::sha256_file;
