//! Output directories that appear whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// An output directory being built: everything goes into a hidden sibling directory that replaces
/// `out` only once complete, so a failed or killed build never leaves files that look usable, and an
/// earlier output in `out` stays whole until the new one is.
pub struct Staging {
    out: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl Staging {
    /// Prepares to build `out`, which must be absent, empty, or an earlier output of the same kind
    /// (holding `marker`): a directory holding something else is never taken over.
    pub fn new(out: &Path, marker: &str) -> Result<Self> {
        if out.exists() {
            let empty = std::fs::read_dir(out)
                .with_context(|| format!("--out {} is not a readable directory", out.display()))?
                .next()
                .is_none();
            if !empty && !out.join(marker).is_file() {
                bail!(
                    "--out {} holds files but no {marker} (it is not an earlier output of this command, \
                     so there is no corpus or model to replace); choose an empty or new directory",
                    out.display()
                );
            }
        }
        let name = out
            .file_name()
            .with_context(|| format!("--out {} names no directory", out.display()))?
            .to_string_lossy()
            .into_owned();
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .with_context(|| format!("cannot clear {}", tmp.display()))?;
        }
        std::fs::create_dir_all(&tmp).with_context(|| {
            format!(
                "cannot create {} for --out {}",
                tmp.display(),
                out.display()
            )
        })?;
        Ok(Self {
            out: out.to_path_buf(),
            tmp,
            committed: false,
        })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished directory into place.
    pub fn commit(mut self) -> Result<()> {
        let old = self.tmp.with_extension("old");
        if self.out.exists() {
            std::fs::rename(&self.out, &old)
                .with_context(|| format!("cannot move the old {} aside", self.out.display()))?;
        }
        std::fs::rename(&self.tmp, &self.out)
            .with_context(|| format!("cannot move the new output into {}", self.out.display()))?;
        self.committed = true;
        if old.exists() {
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("cannot remove the old output {}", old.display()))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
