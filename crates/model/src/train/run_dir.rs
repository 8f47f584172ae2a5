//! The run directory: one run at a time holds it (an advisory lock the OS releases when the process
//! dies, so a crash never leaves a stale lock), and two runs are never mixed in it unless asked to
//! resume or overwrite.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::checkpoint;

/// The lock file inside a run directory; it holds the pid of the run that has the lock.
pub use fsutil::lock::LOCK_FILE;

/// What to do with an existing run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Fresh,
    /// From this checkpoint, or the latest when `None`.
    Resume(Option<PathBuf>),
    /// From the latest checkpoint if there is one, else as `Fresh` (`--auto-resume`).
    ResumeIfAny,
    Overwrite,
}

/// The exclusive hold on a run directory; dropping it (or the process ending, however) releases it.
pub type RunLock = fsutil::lock::DirLock;

/// Takes `dir`'s lock, or fails naming the pid of the run that holds it.
pub fn lock(dir: &Path) -> Result<RunLock> {
    fsutil::lock::lock_dir(dir, "run directory", "run")
}

/// Locks `dir`, then checks and prepares it before any compute; returns the lock (hold it for the
/// whole run) and the checkpoint to resume from, if any.
pub fn prepare(dir: &Path, start: &Start) -> Result<(RunLock, Option<PathBuf>)> {
    let held = lock(dir)?;
    // Everything but the lock file counts as a run.
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n != LOCK_FILE) {
            entries.push(path);
        }
    }
    if *start == Start::ResumeIfAny {
        checkpoint::clear_unfinished(dir)?;
        if let Some(latest) = checkpoint::latest(dir)? {
            return Ok((held, Some(latest)));
        }
    }
    match start {
        Start::ResumeIfAny if !entries.is_empty() => bail!(
            "run directory {} holds a run without a complete checkpoint to continue from; pass \
             --overwrite to replace it",
            dir.display()
        ),
        Start::Fresh if !entries.is_empty() => bail!(
            "run directory {} already holds a run; pass --resume to continue it or --overwrite to replace it",
            dir.display()
        ),
        Start::Overwrite => {
            for path in entries {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.with_context(|| format!("cannot clear {}", path.display()))?;
            }
        }
        Start::Resume(_) => {
            checkpoint::clear_unfinished(dir)?;
            return Ok((held, resume_point(dir, start)?));
        }
        Start::Fresh | Start::ResumeIfAny => {}
    }
    // Fail now, not after hours of training, if nothing can be written here.
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("run directory {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok((held, None))
}

/// The checkpoint `start` continues from, without locking or changing anything: what the other ranks
/// of a data-parallel run read once rank 0 has prepared the directory.
pub fn resume_point(dir: &Path, start: &Start) -> Result<Option<PathBuf>> {
    match start {
        Start::Resume(Some(explicit)) => Ok(Some(explicit.clone())),
        Start::Resume(None) => Ok(Some(checkpoint::latest(dir)?.with_context(|| {
            format!("--resume: {} has no complete checkpoint", dir.display())
        })?)),
        Start::ResumeIfAny => checkpoint::latest(dir),
        Start::Fresh | Start::Overwrite => Ok(None),
    }
}
