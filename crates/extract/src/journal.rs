//! The journal of an extraction under way: each chunk of documents' rows is kept in `OUT.journal/` as
//! soon as it is answered, so that a run stopped by a kill, a crash, a full disk or a lost node goes on
//! with `--resume` from the first chunk not yet answered instead of from the first document (a
//! catalogue of 100 concepts over 100,000 notes is hours on a GPU). The journal names what decides
//! the rows (the inputs' hashes and every setting); a resume with anything else is refused, naming
//! it, so resumed tables are the tables an uninterrupted run writes. It is removed once the table is
//! written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use model::fsutil;
use serde_json::{Map, Value};

use crate::Extraction;

/// What the journal was started for, inside its directory.
pub const JOURNAL_FILE: &str = "journal.json";

/// `OUT.journal/`, beside the output (held by the output's lock while a run writes it).
pub fn dir_for(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// A journal being written.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
}

/// An opened journal and the rows of the chunks it already holds, in order.
#[derive(Debug)]
pub struct Opened {
    pub journal: Journal,
    pub chunks: Vec<Vec<Extraction>>,
}

impl Journal {
    /// Starts the journal of `out` for a run that `what` describes. With `resume`, a journal started
    /// for the same `what` gives back its chunks (none where there is no journal, which is said);
    /// one started for anything else is an error naming what differs. Without, an earlier journal is
    /// discarded.
    pub fn open(out: &Path, what: &Map<String, Value>, resume: bool) -> Result<Opened> {
        let dir = dir_for(out);
        let file = dir.join(JOURNAL_FILE);
        if resume && file.is_file() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let theirs: Map<String, Value> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a journal's description", file.display()))?;
            let differ = differences(&theirs, what);
            if !differ.is_empty() {
                bail!(
                    "cannot resume from {}: it was started with other {}; run without --resume to \
                     start over",
                    dir.display(),
                    differ.join(", ")
                );
            }
            let journal = Journal { dir };
            let chunks = journal.read_chunks()?;
            return Ok(Opened { journal, chunks });
        }
        if resume {
            eprintln!(
                "no journal at {}: extracting from the first document",
                dir.display()
            );
        }
        if dir.exists() {
            if !resume {
                eprintln!(
                    "starting over: the journal of an interrupted run at {} is discarded (--resume \
                     would have gone on from it)",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the earlier journal {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        fsutil::write_json(&file, &Value::Object(what.clone()))?;
        Ok(Opened {
            journal: Journal { dir },
            chunks: Vec::new(),
        })
    }

    fn chunk_file(&self, index: usize) -> PathBuf {
        self.dir.join(format!("chunk-{index:06}.bin"))
    }

    /// Chunks 0, 1, … up to the first that is not there (each was written whole, or not at all).
    fn read_chunks(&self) -> Result<Vec<Vec<Extraction>>> {
        let mut chunks = Vec::new();
        loop {
            let file = self.chunk_file(chunks.len());
            if !file.is_file() {
                return Ok(chunks);
            }
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // bincode, not JSON: a row without a span scores -inf, which JSON cannot hold.
            let rows: Vec<Extraction> = bincode::deserialize(&bytes).with_context(|| {
                format!(
                    "{} is damaged; run without --resume to start over",
                    file.display()
                )
            })?;
            chunks.push(rows);
        }
    }

    /// Keeps chunk `index`'s rows.
    pub fn record(&self, index: usize, rows: &[Extraction]) -> Result<()> {
        let bytes = bincode::serialize(rows).context("encoding a chunk's rows")?;
        fsutil::write_atomic(&self.chunk_file(index), |w| w.write_all(&bytes))
    }

    /// The table is written: the journal goes.
    pub fn finish(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("cannot remove the journal {}", self.dir.display()))
    }
}

/// The keys whose values differ between two descriptions, in order.
fn differences(theirs: &Map<String, Value>, ours: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<&String> = theirs.keys().chain(ours.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| theirs.get(*k) != ours.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(doc: &str, score: f64) -> Extraction {
        Extraction {
            doc_id: doc.into(),
            doc_lang: "ro".into(),
            concept: "nihss".into(),
            question_lang: "ro".into(),
            answer: None,
            candidate: String::new(),
            start: None,
            end: None,
            score,
            probability: 0.0,
            null_odds: Some(1.5),
        }
    }

    fn what(docs: &str) -> Map<String, Value> {
        serde_json::json!({"documents_sha256": docs, "batch_size": 16})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn chunks_come_back_in_order_only_for_the_same_run_and_go_with_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out.parquet");
        let opened = Journal::open(&out, &what("d1"), false).unwrap();
        assert!(opened.chunks.is_empty());
        let rows = [vec![row("a", f64::NEG_INFINITY)], vec![row("b", 3.25)]];
        opened.journal.record(0, &rows[0]).unwrap();
        opened.journal.record(1, &rows[1]).unwrap();
        // Chunk 3 without chunk 2 (cannot happen, chunks are written in order): not read.
        opened.journal.record(3, &rows[1]).unwrap();
        let again = Journal::open(&out, &what("d1"), true).unwrap();
        assert_eq!(again.chunks, rows, "every field back, -inf too");
        // Other documents: refused, naming the difference, and the journal kept.
        let err = Journal::open(&out, &what("d2"), true).unwrap_err();
        assert!(
            format!("{err:#}").contains("it was started with other documents_sha256;"),
            "{err:#}"
        );
        assert!(dir_for(&out).join("chunk-000000.bin").is_file());
        // A damaged chunk is named.
        std::fs::write(dir_for(&out).join("chunk-000001.bin"), b"\x05").unwrap();
        let err = Journal::open(&out, &what("d1"), true).unwrap_err();
        assert!(
            format!("{err:#}").contains("chunk-000001.bin is damaged"),
            "{err:#}"
        );
        // Without --resume the earlier journal is discarded.
        let fresh = Journal::open(&out, &what("d1"), false).unwrap();
        assert!(!dir_for(&out).join("chunk-000000.bin").exists());
        fresh.journal.finish().unwrap();
        assert!(!dir_for(&out).exists());
        // --resume with no journal starts from the first chunk.
        let none = Journal::open(&out, &what("d1"), true).unwrap();
        assert!(none.chunks.is_empty());
        assert_eq!(
            dir_for(Path::new("runs/x.csv")),
            PathBuf::from("runs/x.csv.journal")
        );
    }
}
