//! Corpus sources: where the text is, in which format, and which language it is.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain UTF-8 text; see `unit`.
    Text,
    /// One JSON object a line; the text is in `field`.
    Jsonl,
}

/// How plain text divides into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    #[default]
    Line,
    /// Blocks separated by blank lines.
    Paragraph,
    File,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// A file, a directory (all files below it) or a glob pattern, relative to the working directory.
    pub path: String,
    pub format: Format,
    #[serde(default)]
    pub unit: Unit,
    /// JSONL field holding the text.
    #[serde(default)]
    pub field: Option<String>,
    /// ISO 639-1 code of the text.
    pub language: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
}

/// One document as read, before cleaning.
pub struct Record {
    pub text: String,
    pub file: PathBuf,
    /// 1-based line where the document starts.
    pub line: usize,
}

/// An input that could not be used, with where and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reject {
    pub source: String,
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl Source {
    /// The files of this source in a stable order.
    pub fn files(&self, base: &Path) -> Result<Vec<PathBuf>> {
        let full = base.join(&self.path);
        let mut files = Vec::new();
        if full.is_dir() {
            walk(&full, &mut files)?;
        } else if full.is_file() {
            files.push(full.clone());
        } else {
            let pattern = full.to_string_lossy().to_string();
            for entry in glob::glob(&pattern)
                .with_context(|| format!("source '{}': bad path pattern {pattern}", self.name))?
            {
                let p = entry?;
                if p.is_file() {
                    files.push(p);
                }
            }
        }
        if files.is_empty() {
            bail!(
                "source '{}': nothing found at {}",
                self.name,
                full.display()
            );
        }
        files.sort();
        Ok(files)
    }

    /// Reads one file, calling `emit` per document and `reject` per unusable piece.
    pub fn read(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        let rej = |line: usize, reason: String| Reject {
            source: self.name.clone(),
            file: file.display().to_string(),
            line,
            reason,
        };
        let f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) => {
                reject(rej(0, format!("unreadable: {e}")));
                return Ok(());
            }
        };
        let mut reader = BufReader::new(f);
        let mut buf = Vec::new();
        let mut lineno = 0;
        let mut block = String::new();
        let mut block_start = 1;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("reading {}", file.display()))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            let line = match std::str::from_utf8(&buf) {
                Ok(s) => s.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    reject(rej(
                        lineno,
                        format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                    ));
                    continue;
                }
            };
            match (self.format, self.unit) {
                (Format::Jsonl, _) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let field = self.field.as_deref().unwrap_or("text");
                    match serde_json::from_str::<serde_json::Value>(line) {
                        Ok(v) => match v.get(field).and_then(|t| t.as_str()) {
                            Some(t) => emit(Record {
                                text: t.to_owned(),
                                file: file.to_path_buf(),
                                line: lineno,
                            }),
                            None => reject(rej(lineno, format!("no string field '{field}'"))),
                        },
                        Err(e) => reject(rej(lineno, format!("malformed JSON: {e}"))),
                    }
                }
                (Format::Text, Unit::Line) => emit(Record {
                    text: line.to_owned(),
                    file: file.to_path_buf(),
                    line: lineno,
                }),
                (Format::Text, Unit::Paragraph) => {
                    if line.trim().is_empty() {
                        if !block.is_empty() {
                            emit(Record {
                                text: std::mem::take(&mut block),
                                file: file.to_path_buf(),
                                line: block_start,
                            });
                        }
                    } else {
                        if block.is_empty() {
                            block_start = lineno;
                        } else {
                            block.push('\n');
                        }
                        block.push_str(line);
                    }
                }
                (Format::Text, Unit::File) => {
                    if !block.is_empty() {
                        block.push('\n');
                    }
                    block.push_str(line);
                }
            }
        }
        if !block.is_empty() {
            emit(Record {
                text: block,
                file: file.to_path_buf(),
                line: block_start,
            });
        }
        Ok(())
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
    Ok(())
}
