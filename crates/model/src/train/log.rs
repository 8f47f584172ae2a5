//! What a run reports while it trains: a progress bar, TensorBoard scalars and a JSONL history.
//!
//! tensorboard-rs panics on I/O errors (a full disk, a removed directory); a lost curve must not kill a
//! multi-day run, so every call goes through `catch_unwind` and a failure switches TensorBoard off with
//! one warning. The JSONL history (`train_log.jsonl`) is the record tests and resumes rely on.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tensorboard_rs::summary_writer::SummaryWriter;

/// TensorBoard event files under `dir`, or nothing after the first failure.
pub struct Tensorboard {
    writer: Option<SummaryWriter>,
}

impl Tensorboard {
    pub fn new(dir: &Path) -> Self {
        let dir = dir.to_path_buf();
        let writer = match std::fs::create_dir_all(&dir) {
            Ok(()) => catch_unwind(AssertUnwindSafe(|| SummaryWriter::new(&dir))).ok(),
            Err(e) => {
                eprintln!(
                    "warning: TensorBoard logging off: cannot create {}: {e}",
                    dir.display()
                );
                None
            }
        };
        Self { writer }
    }

    pub fn scalar(&mut self, tag: &str, value: f64, step: u64) {
        self.guard(|w| w.add_scalar(tag, value as f32, step as usize));
    }

    pub fn flush(&mut self) {
        self.guard(|w| w.flush());
    }

    fn guard(&mut self, f: impl FnOnce(&mut SummaryWriter)) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        if catch_unwind(AssertUnwindSafe(|| f(w))).is_err() {
            eprintln!("warning: TensorBoard logging failed and is off for the rest of this run");
            self.writer = None;
        }
    }
}

/// One line of `train_log.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub step: u64,
    #[serde(flatten)]
    pub values: std::collections::BTreeMap<String, f64>,
}

/// Appends records to `train_log.jsonl`, one JSON object a line.
pub struct History {
    path: PathBuf,
    file: File,
}

impl History {
    /// Opens the history, dropping records after `keep_through_step` (the steps a crash lost and a
    /// resume will redo), so that the file reads as one uninterrupted run. The records kept are the
    /// file's own lines, byte for byte: parsing and printing a float again could change its last digit.
    pub fn open(path: &Path, keep_through_step: u64) -> Result<Self> {
        #[derive(Deserialize)]
        struct Step {
            step: u64,
        }
        let mut text = String::new();
        for line in read_lines(path)? {
            if serde_json::from_str::<Step>(&line).is_ok_and(|r| r.step <= keep_through_step) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        crate::fsutil::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends a record; non-finite values are left out (JSON has no NaN).
    pub fn append(&mut self, record: &LogRecord) -> Result<()> {
        let mut record = record.clone();
        record.values.retain(|_, v| v.is_finite());
        let line = serde_json::to_string(&record)? + "\n";
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// The complete records of `train_log.jsonl` as the lines they are; a missing file has none.
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut lines = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        // A kill can cut the last line short; everything before it is intact.
        if serde_json::from_str::<serde_json::Value>(&line).is_ok() {
            lines.push(line);
        } else {
            eprintln!(
                "warning: {}:{}: incomplete record ignored",
                path.display(),
                i + 1
            );
        }
    }
    Ok(lines)
}

/// Reads `train_log.jsonl`; a missing file is an empty history.
pub fn read_history(path: &Path) -> Result<Vec<LogRecord>> {
    read_lines(path)?
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .with_context(|| format!("{}: not a history record: {line}", path.display()))
        })
        .collect()
}

pub use text::progress::progress_bar;
