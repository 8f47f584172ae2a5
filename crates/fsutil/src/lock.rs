//! One process at a time in an output directory, or at an output file with siblings. Training runs,
//! `qa-finetune predict`, `eval nightly` and the link index each write several files into one
//! directory (nightly also reads, extends and rewrites a history there); `extract` and `data-prep`
//! write a table with a record, rejects or skipped-documents file beside it. Two processes at the same
//! place would leave files of both, or one's history rows lost. The lock is advisory and the OS drops
//! it when its process ends, however it ends, so a crash never leaves a stale lock; the file stays
//! (removing it on release would let a waiting process lock a file that a third one has already
//! replaced).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The lock file inside a locked directory; it holds the pid of the process that has the lock and
/// what that process is ("1234 nightly run"). An output file's lock is `.NAME.medqa.lock` beside it.
/// Directory hashes (`provenance::hash_path`) leave them out: their contents change with every run.
pub const LOCK_FILE: &str = ".medqa.lock";

/// Whether a file name is one of medqa's lock files (a directory's or an output file's).
pub fn is_lock_file(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n == LOCK_FILE || (n.starts_with('.') && n.ends_with(LOCK_FILE)))
}

/// The exclusive hold on a directory or output file; dropping it (or the process ending, however)
/// releases it.
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
    /// while the previous one still runs goes next, not never); with a limit, fail once it has passed
    /// (a night stuck on a hung device would otherwise queue every later one behind it).
    Wait(Option<Duration>),
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
    lock_at(
        &dir.join(LOCK_FILE),
        &format!("{what} {}", dir.display()),
        holder,
        if_held,
    )
}

/// The lock of an output file whose siblings belong with it (`out.parquet` with `out.run.json`):
/// `.out.parquet.medqa.lock` beside it, so that two runs writing other files in the same directory
/// do not wait for each other. The directory must exist (outputs are checked before this).
pub fn lock_output_file(file: &Path, holder: &str) -> Result<DirLock> {
    let name = file
        .file_name()
        .with_context(|| format!("output {} names no file", file.display()))?;
    let mut lock_name = std::ffi::OsString::from(".");
    lock_name.push(name);
    lock_name.push(LOCK_FILE);
    let path: PathBuf = file.with_file_name(lock_name);
    lock_at(
        &path,
        &format!("output {}", file.display()),
        holder,
        IfHeld::Refuse,
    )
}

fn lock_at(path: &Path, described: &str, holder: &str, if_held: IfHeld) -> Result<DirLock> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| {
            format!(
                "{described} is not writable (cannot open {})",
                path.display()
            )
        })?;
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
            let in_use = format!("{described} is in use by another {theirs} (pid {pid})");
            match if_held {
                IfHeld::Refuse => bail!(
                    "{in_use}; wait for it to end or stop it (the lock goes with its process)"
                ),
                IfHeld::Wait(None) => {
                    eprintln!("{in_use}; waiting for it to end");
                    file.lock()
                        .with_context(|| format!("cannot lock {}", path.display()))?;
                }
                IfHeld::Wait(Some(limit)) => {
                    eprintln!(
                        "{in_use}; waiting at most {} for it to end",
                        humantime::format_duration(limit)
                    );
                    wait_for(&file, path, limit).with_context(|| {
                        format!(
                            "{in_use} and still was after {}",
                            humantime::format_duration(limit)
                        )
                    })?;
                }
            }
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

/// Takes the lock once its holder lets go, trying every quarter second (the OS has no blocking lock
/// with a time limit), or fails once `limit` has passed.
fn wait_for(file: &File, path: &Path, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("gave up waiting");
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(250)));
    }
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
            let lock = lock_dir_or(&path, "report directory", "nightly run", IfHeld::Wait(None));
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
    fn a_bounded_wait_gives_up_after_its_limit_or_takes_a_lock_let_go_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path(), "report directory", "nightly run").unwrap();
        let limit = Duration::from_millis(600);
        let clock = Instant::now();
        let err = lock_dir_or(
            dir.path(),
            "report directory",
            "nightly run",
            IfHeld::Wait(Some(limit)),
        )
        .unwrap_err();
        assert!(clock.elapsed() >= limit, "{:?}", clock.elapsed());
        assert!(
            format!("{err:#}").contains(&format!(
                "is in use by another nightly run (pid {}) and still was after 600ms",
                std::process::id()
            )),
            "{err:#}"
        );
        // Released while the other waits (limit far off): it gets the lock then, not at the limit.
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let clock = Instant::now();
            let lock = lock_dir_or(
                &path,
                "report directory",
                "nightly run",
                IfHeld::Wait(Some(Duration::from_secs(60))),
            );
            (lock, clock.elapsed())
        });
        std::thread::sleep(Duration::from_millis(400));
        drop(held);
        let (lock, took) = waiter.join().unwrap();
        assert!(lock.is_ok(), "{lock:?}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(30),
            "{took:?}"
        );
    }

    #[test]
    fn an_output_file_is_locked_beside_it_and_apart_from_its_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("extractions.parquet");
        let held = lock_output_file(&out, "extraction").unwrap();
        let lock = dir.path().join(".extractions.parquet.medqa.lock");
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            format!("{} extraction", std::process::id())
        );
        assert!(is_lock_file(lock.file_name().unwrap()));
        assert!(!is_lock_file(std::ffi::OsStr::new("extractions.parquet")));
        let err = lock_output_file(&out, "extraction").unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!(
                "output {} is in use by another extraction (pid {})",
                out.display(),
                std::process::id()
            )),
            "{err:#}"
        );
        // Another output in the same directory is another lock.
        let other = lock_output_file(&dir.path().join("other.csv"), "extraction");
        assert!(other.is_ok(), "{other:?}");
        drop(held);
        assert!(lock_output_file(&out, "extraction").is_ok());
        // The output itself was never created by locking it.
        assert!(!out.exists());
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
