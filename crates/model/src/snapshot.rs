//! Files captured as host bytes at one moment and written later: a model directory, an optimizer's
//! state. Capturing copies the tensors off the device (the only part that must happen between two
//! training steps); writing — serializing, fsync, rename — needs no tensor and no device, so a
//! checkpoint can be written by a background thread while training goes on (`train::checkpoint`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use tch::{Device, Kind, Tensor};

/// One tensor's host copy.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The contents of a safetensors file: named tensors copied to the host.
#[derive(Default)]
pub struct SafetensorsSnapshot {
    tensors: BTreeMap<String, HostTensor>,
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        other => bail!("no safetensors type for {other:?}"),
    })
}

impl SafetensorsSnapshot {
    /// Copies `tensor` to the host as `name`, converted to `kind` (its own kind when `None`). The copy
    /// is the host's: later updates of `tensor` do not reach it.
    pub fn insert(&mut self, name: String, tensor: &Tensor, kind: Option<Kind>) -> Result<()> {
        let kind = kind.unwrap_or(tensor.kind());
        let dtype = dtype_of(kind).with_context(|| format!("cannot save '{name}'"))?;
        let host = tensor
            .detach()
            .to_device(Device::Cpu)
            .to_kind(kind)
            .contiguous();
        let numel = host.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        host.f_copy_data_u8(&mut bytes, numel)
            .with_context(|| format!("cannot copy out '{name}'"))?;
        let shape = host.size().iter().map(|&d| d as usize).collect();
        self.tensors.insert(
            name,
            HostTensor {
                dtype,
                shape,
                bytes,
            },
        );
        Ok(())
    }

    /// Bytes held (what a capture costs in host memory).
    pub fn len_bytes(&self) -> usize {
        self.tensors.values().map(|t| t.bytes.len()).sum()
    }

    /// Writes the file atomically and durably: streamed from the host copies (not assembled in
    /// memory first) into a staging file beside it, synced, then renamed into place, so `file` never
    /// names a file whose bytes are not yet on disk. (safetensors' own `serialize_to_file` renames
    /// its temporary file before any sync, and makes it 0600.)
    pub fn write(&self, file: &Path) -> Result<()> {
        let views: Vec<(&str, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                Ok((
                    name.as_str(),
                    TensorView::new(t.dtype, t.shape.clone(), &t.bytes)?,
                ))
            })
            .collect::<Result<_>>()?;
        let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let previous = std::fs::metadata(file).ok().map(|m| m.permissions());
        // Removed on any error (a kill leaves a hidden `.partial`, never a short `file`).
        let staged = tempfile::Builder::new()
            .prefix(".")
            .suffix(".safetensors.partial")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?
            .into_temp_path();
        safetensors::serialize_to_file(views, Some(metadata), &staged)
            .with_context(|| format!("cannot write {}", file.display()))?;
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", file.display()))?;
        // A model the rest of a group (or a server running as another user) can read.
        fsutil::give_created_permissions(&staged, previous)?;
        staged
            .persist(file)
            .with_context(|| format!("cannot move the new {} into place", file.display()))?;
        if let Ok(dir) = std::fs::File::open(dir) {
            // The rename is durable only once the directory entry is.
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

enum Content {
    Bytes(Vec<u8>),
    Safetensors(SafetensorsSnapshot),
}

/// A directory's files captured in memory (`config.json`, `model.safetensors`, `tokenizer.json`, …),
/// written by [`DirSnapshot::write_into`].
#[derive(Default)]
pub struct DirSnapshot {
    files: Vec<(String, Content)>,
}

impl DirSnapshot {
    pub fn add_bytes(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.push((name.to_owned(), Content::Bytes(bytes)));
    }

    /// `value` as pretty JSON with a final newline, as `fsutil::write_json` writes it.
    pub fn add_json<T: serde::Serialize>(&mut self, name: &str, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value)? + "\n";
        self.add_bytes(name, text.into_bytes());
        Ok(())
    }

    /// The file at `src` as it is now.
    pub fn add_copy_of(&mut self, name: &str, src: &Path) -> Result<()> {
        let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
        self.add_bytes(name, bytes);
        Ok(())
    }

    pub fn add_safetensors(&mut self, name: &str, tensors: SafetensorsSnapshot) {
        self.files
            .push((name.to_owned(), Content::Safetensors(tensors)));
    }

    /// Writes every file into `dir` (created if absent), each atomically and synced.
    pub fn write_into(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, content) in &self.files {
            let path = dir.join(name);
            match content {
                Content::Bytes(bytes) => {
                    crate::fsutil::write_atomic(&path, |w| w.write_all(bytes))?
                }
                Content::Safetensors(tensors) => tensors.write(&path)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_values_of_its_capture() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut t = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]);
        let mut snap = SafetensorsSnapshot::default();
        snap.insert("w".into(), &t, None)?;
        snap.insert("w16".into(), &t, Some(Kind::BFloat16))?;
        snap.insert("step".into(), &Tensor::from(7i64), None)?;
        let _ = t.fill_(-1.0);
        let file = dir.path().join("x.safetensors");
        snap.write(&file)?;
        let read: HashMap<String, Tensor> = Tensor::read_safetensors(&file)?.into_iter().collect();
        let expected = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]);
        assert!(read["w"].equal(&expected));
        assert_eq!(read["w16"].kind(), Kind::BFloat16);
        assert!(read["w16"].to_kind(Kind::Float).equal(&expected));
        assert_eq!(read["step"].int64_value(&[]), 7);
        assert_eq!(snap.len_bytes(), 6 * 4 + 6 * 2 + 8);
        // Readable as a file `File::create` made would be (not safetensors' temporary 0600).
        use std::os::unix::fs::PermissionsExt;
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain)?;
        let mode =
            |p: &Path| -> Result<u32> { Ok(std::fs::metadata(p)?.permissions().mode() & 0o777) };
        assert_eq!(mode(&file)?, mode(&plain)?);
        // Rewritten in place of the old one: nothing staged is left beside it.
        snap.write(&file)?;
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        names.sort();
        assert_eq!(names, ["plain", "x.safetensors"]);
        Ok(())
    }

    #[test]
    fn a_kind_safetensors_cannot_hold_is_refused_by_name() {
        let t = Tensor::from_slice(&[true, false]);
        let err = SafetensorsSnapshot::default()
            .insert("mask".into(), &t, None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("'mask'"), "{err:#}");
    }
}
