//! `model.safetensors` (or a sharded checkpoint's shards) ⇄ `VarStore`, under `transformers`' key names.
//!
//! Loading accepts what `transformers` itself accepts for XLM-R: keys with or without the `roberta.`
//! prefix (a bare encoder into a head model and back), with or without a pooler, with the tied
//! `lm_head.decoder.*` entries present or absent, in fp32, fp16, bf16 or fp64. Keys the model does not
//! have and variables the file does not have are reported the way `transformers` reports them; a shape
//! that differs is an error.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;

pub use text::weight_files::WeightFiles;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tch::{nn::VarStore, Kind, Tensor};

use crate::snapshot::SafetensorsSnapshot;

/// What a load matched, in the terms of `transformers`' load report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model variables the file does not hold; they keep their fresh initialisation.
    pub missing: Vec<String>,
    /// File entries the model has no variable for; they are not used.
    pub unexpected: Vec<String>,
    /// File entries taken from another name (prefix added or dropped, legacy alias).
    pub renamed: usize,
}

impl LoadReport {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_exact() {
            return write!(f, "all weights matched");
        }
        if !self.unexpected.is_empty() {
            writeln!(
                f,
                "{} weight(s) of the checkpoint were not used (unexpected): {}",
                self.unexpected.len(),
                self.unexpected.join(", ")
            )?;
        }
        if !self.missing.is_empty() {
            write!(
                f,
                "{} weight(s) were not in the checkpoint and are newly initialized (missing): {}; \
                 train this model before using it for predictions",
                self.missing.len(),
                self.missing.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Entries of a saved model that are not parameters and that `transformers` ignores too.
fn is_ignored_buffer(key: &str) -> bool {
    key.ends_with("embeddings.position_ids") || key.ends_with("embeddings.token_type_ids")
}

/// The file keys that can fill variable `name`, best first.
fn candidate_keys(name: &str) -> Vec<String> {
    let mut keys = vec![name.to_owned()];
    match name.strip_prefix("roberta.") {
        Some(bare) => keys.push(bare.to_owned()),
        None => keys.push(format!("roberta.{name}")),
    }
    // transformers ties lm_head.decoder.bias to lm_head.bias; old checkpoints may hold only the former.
    if name == "lm_head.bias" {
        keys.push("lm_head.decoder.bias".to_owned());
    }
    keys
}

fn kind_of(dtype: Dtype, key: &str, file: &Path) -> Result<Kind> {
    Ok(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        other => bail!(
            "{}: tensor '{key}' has dtype {other:?}; expected a floating-point dtype",
            file.display()
        ),
    })
}

fn to_tensor(view: &TensorView<'_>, key: &str, file: &Path) -> Result<Tensor> {
    let kind = kind_of(view.dtype(), key, file)?;
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(view.data(), &shape, kind)
        .with_context(|| format!("{}: cannot read tensor '{key}'", file.display()))
}

/// Copies the tensors of `file` into the variables of `vs`, converting dtypes to the store's.
pub fn load_safetensors(vs: &mut VarStore, file: &Path) -> Result<LoadReport> {
    load_weight_files(
        vs,
        &WeightFiles {
            index: None,
            files: vec![file.to_path_buf()],
            weight_map: Default::default(),
        },
    )
}

/// Copies the tensors of a model directory's weight files (one file, or the shards of a sharded
/// checkpoint) into the variables of `vs`, converting dtypes to the store's. A tensor in two shards,
/// or not in the shard the index names, is an error naming both.
pub fn load_weight_files(vs: &mut VarStore, weights: &WeightFiles) -> Result<LoadReport> {
    let mut maps = Vec::new();
    for file in &weights.files {
        let handle = File::open(file)
            .with_context(|| format!("cannot open checkpoint {}", file.display()))?;
        // SAFETY: the map is read-only and lives only while we copy out of it; a checkpoint being
        // rewritten underneath a running load is outside what any loader can guard against.
        let mmap = unsafe { memmap2::Mmap::map(&handle) }
            .with_context(|| format!("cannot map checkpoint {}", file.display()))?;
        maps.push((file, mmap));
    }
    let mut parsed = Vec::new();
    for (file, mmap) in &maps {
        let tensors = SafeTensors::deserialize(mmap)
            .with_context(|| format!("{} is not a valid safetensors file", file.display()))?;
        parsed.push((*file, tensors));
    }
    // Each tensor with the file it comes from.
    let mut available: HashMap<String, TensorView<'_>> = HashMap::new();
    let mut source: HashMap<String, &Path> = HashMap::new();
    for (file, tensors) in &parsed {
        for (key, view) in tensors.tensors() {
            if let Some(other) = source.insert(key.clone(), file.as_path()) {
                bail!(
                    "tensor '{key}' is in both {} and {}",
                    other.display(),
                    file.display()
                );
            }
            available.insert(key, view);
        }
    }
    if let Some(index) = &weights.index {
        for (key, shard) in &weights.weight_map {
            let found = source.get(key).and_then(|f| f.file_name());
            if found != Some(std::ffi::OsStr::new(shard)) {
                bail!(
                    "{}: '{key}' should be in {shard}, but {}",
                    index.display(),
                    source
                        .get(key)
                        .map_or("no shard holds it".to_owned(), |f| format!(
                            "it is in {}",
                            f.display()
                        ))
                );
            }
        }
    }
    let file_of = |key: &str| source[key];
    let mut report = LoadReport::default();
    let mut used = std::collections::HashSet::new();
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in variables {
        let Some(key) = candidate_keys(&name)
            .into_iter()
            .find(|k| available.contains_key(k))
        else {
            report.missing.push(name);
            continue;
        };
        let view = &available[&key];
        let file = file_of(&key);
        let src = to_tensor(view, &key, file)?;
        if src.size() != var.size() {
            bail!(
                "{}: '{key}' has shape {:?} but the model's '{name}' is {:?} (does config.json match the weights?)",
                file.display(),
                src.size(),
                var.size()
            );
        }
        tch::no_grad(|| var.copy_(&src.to_kind(var.kind())));
        if key != name {
            report.renamed += 1;
        }
        used.insert(key);
    }
    let tied = ["lm_head.decoder.weight", "lm_head.decoder.bias"];
    let mut unexpected: Vec<String> = available
        .keys()
        .filter(|k| !used.contains(*k) && !is_ignored_buffer(k))
        // The decoder is the word-embedding matrix (and its bias lm_head.bias) when the model has a LM head.
        .filter(|k| !(tied.contains(&k.as_str()) && vs.variables().contains_key("lm_head.bias")))
        .cloned()
        .collect();
    unexpected.sort();
    report.unexpected = unexpected;
    Ok(report)
}

/// The dtype weights are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SaveDtype {
    #[default]
    F32,
    F16,
    BF16,
}

impl SaveDtype {
    fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::F16 => Kind::Half,
            Self::BF16 => Kind::BFloat16,
        }
    }
}

/// Every variable of `vs` under its own (i.e. `transformers`') name, copied to the host in `dtype`.
pub fn snapshot_safetensors(vs: &VarStore, dtype: SaveDtype) -> Result<SafetensorsSnapshot> {
    let mut snapshot = SafetensorsSnapshot::default();
    for (name, var) in vs.variables() {
        snapshot.insert(name, &var, Some(dtype.kind()))?;
    }
    Ok(snapshot)
}

/// Writes every variable of `vs` under its own (i.e. `transformers`') name, atomically.
pub fn save_safetensors(vs: &VarStore, file: &Path, dtype: SaveDtype) -> Result<()> {
    snapshot_safetensors(vs, dtype)?.write(file)
}
