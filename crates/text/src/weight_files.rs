//! Which files of a Hugging Face model directory hold its weights: `model.safetensors`, or the shards
//! that `model.safetensors.index.json` names, as `save_pretrained` writes a checkpoint larger than its
//! `max_shard_size` (5 GB in transformers 4, 50 GB in 5: XLM-R XL and XXL checkpoints, and others saved
//! with a small one). Torch-free, so that eval can hash a model it does not load.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The single weights file.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A model directory's weight files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightFiles {
    /// The index, for a sharded checkpoint.
    pub index: Option<PathBuf>,
    /// The files holding the tensors: the single file, or the shards in name order.
    pub files: Vec<PathBuf>,
    /// For a sharded checkpoint, each tensor's shard file name as the index gives it.
    pub weight_map: BTreeMap<String, String>,
}

impl WeightFiles {
    /// The weight files of `dir`; a directory with neither file, an index that is not transformers'
    /// format, or one naming a missing shard or a path outside `dir` is an error naming it.
    pub fn of_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(WEIGHTS_FILE);
        if single.is_file() {
            return Ok(Self {
                index: None,
                files: vec![single],
                weight_map: BTreeMap::new(),
            });
        }
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::sharded(dir, index);
        }
        if dir.join("pytorch_model.bin").is_file() {
            bail!(
                "{} holds only pytorch_model.bin; convert it once with transformers \
                 (from_pretrained(...).save_pretrained(dir, safe_serialization=True))",
                dir.display()
            );
        }
        bail!("{} has no {WEIGHTS_FILE} (nor {INDEX_FILE})", dir.display())
    }

    fn sharded(dir: &Path, index: PathBuf) -> Result<Self> {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = json["weight_map"].as_object().with_context(|| {
            format!(
                "{}: no \"weight_map\" object (tensor name → shard file)",
                index.display()
            )
        })?;
        let mut weight_map = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().with_context(|| {
                format!(
                    "{}: the shard of '{tensor}' is not a file name",
                    index.display()
                )
            })?;
            // A shard is a file beside the index, never a path that leads elsewhere.
            let mut parts = Path::new(shard).components();
            if !matches!(
                (parts.next(), parts.next()),
                (Some(Component::Normal(_)), None)
            ) {
                bail!(
                    "{}: the shard of '{tensor}' is {shard:?}, not a file name in {}",
                    index.display(),
                    dir.display()
                );
            }
            weight_map.insert(tensor.clone(), shard.to_owned());
        }
        if weight_map.is_empty() {
            bail!("{}: the weight_map names no tensor", index.display());
        }
        let names: std::collections::BTreeSet<&String> = weight_map.values().collect();
        let mut files = Vec::new();
        for name in names {
            let file = dir.join(name);
            if !file.is_file() {
                bail!(
                    "{} names shard {name}, which is not in {}",
                    index.display(),
                    dir.display()
                );
            }
            files.push(file);
        }
        Ok(Self {
            index: Some(index),
            files,
            weight_map,
        })
    }

    /// Every file that decides the weights: the index (if any), then the tensor files. What a record
    /// of the inputs hashes.
    pub fn hashed(&self) -> Vec<PathBuf> {
        self.index.iter().chain(&self.files).cloned().collect()
    }

    /// One SHA-256 for the weights: the single file's (as `sha256sum` prints it), or that of the
    /// shards' bytes one after the other in name order (`cat model-*.safetensors | sha256sum`).
    pub fn digest(&self) -> Result<String> {
        fsutil::sha256_concatenated(&self.files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(dir: &Path, map: serde_json::Value) {
        std::fs::write(
            dir.join(INDEX_FILE),
            serde_json::json!({"metadata": {"total_size": 8}, "weight_map": map}).to_string(),
        )
        .unwrap();
    }

    #[test]
    fn a_single_file_or_the_shards_an_index_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = WeightFiles::of_dir(d).unwrap_err();
        assert!(
            format!("{err:#}").contains("has no model.safetensors"),
            "{err:#}"
        );

        index(
            d,
            serde_json::json!({"b.weight": "model-00002-of-00002.safetensors",
                                    "a.weight": "model-00001-of-00002.safetensors",
                                    "a.bias": "model-00001-of-00002.safetensors"}),
        );
        let err = WeightFiles::of_dir(d).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("names shard model-00001-of-00002.safetensors, which is not in"),
            "{err:#}"
        );
        std::fs::write(d.join("model-00001-of-00002.safetensors"), b"one").unwrap();
        std::fs::write(d.join("model-00002-of-00002.safetensors"), b"two").unwrap();
        let w = WeightFiles::of_dir(d).unwrap();
        assert_eq!(
            w.files,
            [
                d.join("model-00001-of-00002.safetensors"),
                d.join("model-00002-of-00002.safetensors")
            ]
        );
        assert_eq!(w.hashed()[0], d.join(INDEX_FILE));
        assert_eq!(w.weight_map["a.bias"], "model-00001-of-00002.safetensors");
        // The shards' bytes in order: the digest of one file holding "onetwo".
        std::fs::write(d.join("both"), b"onetwo").unwrap();
        assert_eq!(
            w.digest().unwrap(),
            fsutil::sha256_file(&d.join("both")).unwrap()
        );

        // A single file wins over an index.
        std::fs::write(d.join(WEIGHTS_FILE), b"single").unwrap();
        let w = WeightFiles::of_dir(d).unwrap();
        assert_eq!((w.index, w.files), (None, vec![d.join(WEIGHTS_FILE)]));
    }

    #[test]
    fn an_index_pointing_outside_its_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        index(
            dir.path(),
            serde_json::json!({"a.weight": "../elsewhere.safetensors"}),
        );
        let err = WeightFiles::of_dir(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("not a file name in"), "{err:#}");
        index(dir.path(), serde_json::json!({}));
        assert!(
            format!("{:#}", WeightFiles::of_dir(dir.path()).unwrap_err())
                .contains("names no tensor")
        );
    }
}
