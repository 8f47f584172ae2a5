//! Documents to extract from: a folder of `.txt` files, a JSONL file, or a CSV/TSV/Parquet column.
//! Unreadable, empty or non-UTF-8 documents are reported and skipped, never fatal to the rest.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use model::language::{detect, primary_language};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub id: String,
    /// The text as read (after a leading byte-order mark, `text::bom`): answer offsets index into it.
    pub text: String,
    pub lang: String,
    /// Where the language came from: `given` (field, column, file name or --doc-lang) or `detected`.
    pub lang_source: &'static str,
}

/// A document that was skipped, with where and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    /// Line (JSONL, CSV/TSV counting the header as line 1) or row (Parquet); 0 for a whole file.
    pub line: usize,
    pub reason: String,
}

/// Field and column names, and a language for documents that do not say theirs.
#[derive(Clone, Debug)]
pub struct DocOptions {
    pub id_field: String,
    pub text_field: String,
    pub lang_field: String,
    /// Language of every document that does not give its own; detected when `None`.
    pub lang: Option<String>,
}

impl Default for DocOptions {
    fn default() -> Self {
        Self {
            id_field: "id".into(),
            text_field: "text".into(),
            lang_field: "lang".into(),
            lang: None,
        }
    }
}

impl Document {
    /// A document whose language is `lang` when given (any tag: `ro-RO` → `ro`), else detected;
    /// `None` when the text is blank or its language is neither given nor recognisable.
    pub fn new(id: String, text: String, lang: Option<&str>) -> Option<Self> {
        if text.trim().is_empty() {
            return None;
        }
        let (lang, lang_source) = language(lang, &text, &DocOptions::default())?;
        Some(Self {
            id,
            text,
            lang,
            lang_source,
        })
    }
}

fn language(given: Option<&str>, text: &str, opts: &DocOptions) -> Option<(String, &'static str)> {
    if let Some(l) = given.filter(|l| !l.trim().is_empty()) {
        return Some((primary_language(l.trim()), "given"));
    }
    if let Some(l) = &opts.lang {
        return Some((primary_language(l), "given"));
    }
    detect(text).map(|(l, _)| (l, "detected"))
}

/// What reading collects: documents, and what was skipped.
struct Collected<'a> {
    opts: &'a DocOptions,
    docs: Vec<Document>,
    skipped: Vec<Skipped>,
}

impl Collected<'_> {
    fn skip(&mut self, file: &Path, line: usize, reason: String) {
        self.skipped.push(Skipped {
            file: file.display().to_string(),
            line,
            reason,
        })
    }

    fn accept(&mut self, file: &Path, line: usize, id: String, text: String, lang: Option<&str>) {
        if text.trim().is_empty() {
            self.skip(file, line, "empty document".into());
            return;
        }
        match language(lang, &text, self.opts) {
            Some((lang, lang_source)) => self.docs.push(Document {
                id,
                text,
                lang,
                lang_source,
            }),
            None => self.skip(file, line, "language not given and not recognisable".into()),
        }
    }
}

/// Reads the documents at `path`; the second list holds what was skipped.
pub fn read(path: &Path, opts: &DocOptions) -> Result<(Vec<Document>, Vec<Skipped>)> {
    let mut c = Collected {
        opts,
        docs: Vec::new(),
        skipped: Vec::new(),
    };
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        _ if path.is_dir() => c.folder(path)?,
        "jsonl" | "ndjson" => c.jsonl(path)?,
        "csv" | "tsv" | "tab" | "parquet" | "pq" => c.table(path, ext.starts_with('p'))?,
        _ => bail!(
            "{}: documents come as a folder of .txt files, .jsonl, .csv, .tsv or .parquet",
            path.display()
        ),
    }
    Ok((c.docs, c.skipped))
}

impl Collected<'_> {
    /// A folder of `.txt` files, `name.xx.txt` naming the language.
    fn folder(&mut self, path: &Path) -> Result<()> {
        let c = self;
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{}: no .txt documents", path.display());
        }
        for file in files {
            // `note-07.ro.txt` is a Romanian document with id `note-07`.
            let stem = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let (id, lang) = match stem.rsplit_once('.') {
                Some((id, l)) if l.len() == 2 && l.chars().all(|c| c.is_ascii_alphabetic()) => {
                    (id.to_owned(), Some(l.to_owned()))
                }
                _ => (stem.clone(), None),
            };
            match std::fs::read(&file) {
                Err(e) => c.skip(&file, 0, format!("unreadable: {e}")),
                Ok(bytes) if text::bom::other_encoding(&bytes).is_some() => {
                    let reason = text::bom::not_utf8_reason(&bytes).unwrap_or_default();
                    c.skip(&file, 0, reason)
                }
                Ok(bytes) => match String::from_utf8(bytes) {
                    // Offsets count from after a byte-order mark, as `encoding="utf-8-sig"` reads.
                    Ok(text) => {
                        c.accept(&file, 0, id, text::bom::strip_owned(text), lang.as_deref())
                    }
                    Err(e) => c.skip(
                        &file,
                        0,
                        format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                    ),
                },
            }
        }
        Ok(())
    }

    /// JSON lines with the id, text and language fields.
    fn jsonl(&mut self, path: &Path) -> Result<()> {
        let opts = self.opts;
        let c = self;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(reason) = text::bom::not_utf8_reason(&bytes) {
            // Its lines split at the byte `\n` would be NUL-riddled, not records.
            c.skip(path, 0, reason);
            return Ok(());
        }
        for (i, line) in text::bom::strip_bytes(&bytes)
            .split(|&b| b == b'\n')
            .enumerate()
        {
            let n = i + 1;
            let Ok(line) = std::str::from_utf8(line) else {
                c.skip(path, n, "not UTF-8".into());
                continue;
            };
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    c.skip(path, n, format!("malformed JSON: {e}"));
                    continue;
                }
            };
            let Some(text) = v.get(&opts.text_field).and_then(|t| t.as_str()) else {
                c.skip(path, n, format!("no string field '{}'", opts.text_field));
                continue;
            };
            let id = match v.get(&opts.id_field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(x)) => x.to_string(),
                _ => format!("line-{n}"),
            };
            let lang = v.get(&opts.lang_field).and_then(|l| l.as_str());
            c.accept(path, n, id, text.to_owned(), lang);
        }
        Ok(())
    }

    /// A CSV/TSV/Parquet table's id, text and language columns (rows counted from 2 in CSV/TSV, where
    /// line 1 is the header, from 1 in Parquet).
    fn table(&mut self, path: &Path, parquet: bool) -> Result<()> {
        let opts = self.opts;
        let c = self;
        let rows = tables::read_text_column(path, &opts.text_field, Some(&opts.lang_field))
            .or_else(|_| tables::read_text_column(path, &opts.text_field, None))?;
        let ids = tables::read_text_column(path, &opts.id_field, None).ok();
        let first = if parquet { 1 } else { 2 };
        for (i, (text, lang)) in rows.into_iter().enumerate() {
            let n = first + i;
            let id = ids
                .as_ref()
                .and_then(|ids| ids[i].0.clone())
                .unwrap_or_else(|| format!("row-{n}"));
            match text {
                Some(t) => c.accept(path, n, id, t, lang.as_deref()),
                None => c.skip(path, n, format!("empty '{}' cell", opts.text_field)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_of_text_files_with_languages_from_names_or_detection() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.ro.txt"), "Pacientul are febră.").unwrap();
        std::fs::write(
            d.join("b.txt"),
            "Pacjent został przyjęty z ostrym udarem niedokrwiennym mózgu i nadciśnieniem.",
        )
        .unwrap();
        std::fs::write(d.join("c.txt"), "  \n").unwrap();
        std::fs::write(d.join("d.txt"), b"caf\xe9").unwrap();
        std::fs::write(d.join("notes.md"), "ignored").unwrap();
        let (docs, skipped) = read(d, &DocOptions::default()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].id.as_str(), docs[0].lang.as_str()), ("a", "ro"));
        assert_eq!(
            (docs[1].lang.as_str(), docs[1].lang_source),
            ("pl", "detected")
        );
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].reason.contains("empty") && skipped[1].reason.contains("UTF-8"));
    }

    #[test]
    fn jsonl_and_csv_with_ids_and_bad_rows_reported() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("d.jsonl");
        std::fs::write(
            &j,
            "{\"id\": 7, \"text\": \"Patient has fever.\", \"lang\": \"en\"}\n{broken\n{\"body\": \"x\"}\n",
        )
        .unwrap();
        let (docs, skipped) = read(&j, &DocOptions::default()).unwrap();
        assert_eq!(docs[0].id, "7");
        assert_eq!(skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [2, 3]);
        let c = dir.path().join("d.csv");
        std::fs::write(&c, "id,text\nn1,Pacientul are febră.\nn2,\n").unwrap();
        let opts = DocOptions {
            lang: Some("ro".into()),
            ..Default::default()
        };
        let (docs, skipped) = read(&c, &opts).unwrap();
        assert_eq!((docs[0].id.as_str(), docs[0].lang.as_str()), ("n1", "ro"));
        assert_eq!((skipped[0].line, skipped.len()), (3, 1));
    }

    /// Windows tools start files with a byte-order mark: a JSON Lines file keeps its first record, and
    /// a text's offsets count from after the mark, as `encoding="utf-8-sig"` reads it.
    #[test]
    fn a_byte_order_mark_is_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let bom = b"\xEF\xBB\xBF";
        let folder = dir.path().join("notes");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(
            folder.join("n1.ro.txt"),
            [&bom[..], "Pacientul are febră.".as_bytes()].concat(),
        )
        .unwrap();
        let j = dir.path().join("d.jsonl");
        std::fs::write(
            &j,
            [&bom[..], b"{\"id\": \"j1\", \"text\": \"Fever.\"}\n"].concat(),
        )
        .unwrap();
        let c = dir.path().join("d.csv");
        std::fs::write(&c, [&bom[..], b"id,text\r\nc1,Fever.\r\n"].concat()).unwrap();
        for (path, id, text) in [
            (&folder, "n1", "Pacientul are febră."),
            (&j, "j1", "Fever."),
            (&c, "c1", "Fever."),
        ] {
            let (docs, skipped) = read(path, &DocOptions::default()).unwrap();
            assert!(skipped.is_empty(), "{}: {skipped:?}", path.display());
            assert_eq!((docs[0].id.as_str(), docs[0].text.as_str()), (id, text));
        }
        // UTF-16 (Windows' "Unicode" text) is skipped whole, its encoding named, not read line by line
        // into NUL-riddled records.
        let utf16 = |text: &str| -> Vec<u8> {
            format!("\u{feff}{text}")
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect()
        };
        std::fs::write(folder.join("n2.en.txt"), utf16("Fever.")).unwrap();
        std::fs::write(
            &j,
            utf16(
                "{\"id\": \"j1\", \"text\": \"Fever.\"}\n{\"id\": \"j2\", \"text\": \"Cough.\"}\n",
            ),
        )
        .unwrap();
        for (path, docs_left) in [(&folder, 1), (&j, 0)] {
            match read(path, &DocOptions::default()) {
                Ok((docs, skipped)) => {
                    assert_eq!(docs.len(), docs_left, "{}", path.display());
                    assert_eq!(skipped.len(), 1, "{}: {skipped:?}", path.display());
                    assert!(skipped[0].reason.contains("UTF-16LE"), "{skipped:?}");
                }
                Err(e) => panic!("{}: {e:#}", path.display()),
            }
        }
    }
}
