//! One process at a time in an output directory. Training runs, `qa-finetune predict`, `eval
//! nightly` and the link index each write several files into one directory (nightly also reads,
//! extends and rewrites a history there); two processes in the same directory would leave files of
//! both, or one's history rows lost. The lock is advisory and the OS drops it when its process ends,
//! however it ends, so a crash never leaves a stale lock; the file stays (removing it on release
//! would let a waiting process lock a file that a third one has already replaced).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The lock file inside a locked directory; it holds the pid of the process that has the lock and
/// what that process is ("1234 nightly run").
/// Directory hashes (`provenance::hash_path`) leave it out: its contents change with every run.
pub const LOCK_FILE: &str = ".medqa.lock";

/// The exclusive hold on a directory; dropping it (or the process ending, however) releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// What to do when another process holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfHeld {
    /// Fail, naming the holder's pid.
    Refuse,
    /// Say so on stderr, then wait until the holder ends (`eval nightly --wait`: a night that starts
    /// while the previous one still runs goes next, not never).
    Wait,
}

/// Creates `dir` if needed and takes its lock, or fails naming the pid that holds it. `what` names
/// the directory in messages ("run directory", "report directory"), `holder` what else could be
/// using it ("run", "nightly run").
pub fn lock_dir(dir: &Path, what: &str, holder: &str) -> Result<DirLock> {
    lock_dir_or(dir, what, holder, IfHeld::Refuse)
}

/// [`lock_dir`], or, with [`IfHeld::Wait`], waiting for a holder to end.
pub fn lock_dir_or(dir: &Path, what: &str, holder: &str, if_held: IfHeld) -> Result<DirLock> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {what} {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("{what} {} is not writable", dir.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            // The holder wrote its pid and what it is (a training run may hold a directory that a
            // prediction was pointed at).
            let mut recorded = String::new();
            let _ = file.read_to_string(&mut recorded);
            let (pid, theirs) = recorded
                .trim()
                .split_once(' ')
                .unwrap_or((recorded.trim(), holder));
            if if_held == IfHeld::Refuse {
                bail!(
                    "{what} {} is in use by another {theirs} (pid {pid}); wait for it to end or stop it \
                     (the lock goes with its process)",
                    dir.display(),
                );
            }
            eprintln!(
                "{what} {} is in use by another {theirs} (pid {pid}); waiting for it to end",
                dir.display(),
            );
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{} {holder}", std::process::id())?;
    file.sync_all()?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_is_refused_with_the_holders_pid_and_allowed_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reports");
        let held = lock_dir(&out, "report directory", "nightly run").unwrap();
        // A second open file description conflicts with the first even in one process (flock
        // semantics), which is what another process would get.
        let err = lock_dir(&out, "report directory", "nightly run").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!(
                "report directory {} is in use by another nightly run (pid {})",
                out.display(),
                std::process::id()
            )),
            "{msg}"
        );
        // Another kind of process is named as what it is.
        let err = lock_dir(&out, "output directory", "prediction").unwrap_err();
        assert!(
            format!("{err:#}").contains("is in use by another nightly run (pid"),
            "{err:#}"
        );
        drop(held);
        let again = lock_dir(&out, "report directory", "nightly run");
        assert!(again.is_ok(), "{again:?}");
    }

    #[test]
    fn a_waiting_hold_takes_the_lock_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path(), "report directory", "nightly run").unwrap();
        let (sender, taken) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let lock = lock_dir_or(&path, "report directory", "nightly run", IfHeld::Wait);
            sender.send(()).unwrap();
            lock
        });
        // Still held: the waiter has not got it.
        assert!(taken
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(held);
        taken.recv().unwrap();
        let lock = waiter.join().unwrap();
        assert!(lock.is_ok(), "{lock:?}");
        // And it holds it now: a refusing attempt fails.
        assert!(lock_dir(dir.path(), "report directory", "nightly run").is_err());
    }

    #[test]
    fn a_directory_below_a_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let err =
            lock_dir(&dir.path().join("f/out"), "output directory", "prediction").unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot create output directory"),
            "{err:#}"
        );
    }
}
