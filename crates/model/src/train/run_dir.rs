//! The run directory: refuse to mix two runs in one, unless asked to resume or overwrite.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::checkpoint;

/// What to do with an existing run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Fresh,
    /// From this checkpoint, or the latest when `None`.
    Resume(Option<PathBuf>),
    Overwrite,
}

/// Checks and prepares `dir` before any compute; returns the checkpoint to resume from, if any.
pub fn prepare(dir: &Path, start: &Start) -> Result<Option<PathBuf>> {
    let occupied = dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some();
    match start {
        Start::Fresh if occupied => bail!(
            "run directory {} already holds a run; pass --resume to continue it or --overwrite to replace it",
            dir.display()
        ),
        Start::Overwrite if occupied => {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        Start::Resume(explicit) => {
            let ckpt = match explicit {
                Some(p) => p.clone(),
                None => checkpoint::latest(dir)?
                    .with_context(|| format!("--resume: {} has no complete checkpoint", dir.display()))?,
            };
            return Ok(Some(ckpt));
        }
        _ => {}
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create run directory {}", dir.display()))?;
    // Fail now, not after hours of training, if nothing can be written here.
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("run directory {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(None)
}
