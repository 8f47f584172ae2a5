//! Documents to extract from: a folder of `.txt` files, a JSONL or JSON file, or a CSV/TSV/Parquet column.
//! Unreadable, empty or non-UTF-8 documents are reported and skipped, never fatal to the rest.

use std::collections::HashSet;
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
    /// Line (JSONL, CSV/TSV counting the header as line 1), row (Parquet) or record (a JSON array's,
    /// from 1); 0 for a whole file.
    pub line: usize,
    pub reason: String,
}

/// A document whose id an earlier document already had, and the id it was given instead: the long
/// table's rows, the wide table's row and the linked data's node are keyed by the id, so two documents
/// under one id would be merged (the wide table kept one document's answers in silence).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Renamed {
    pub file: String,
    /// As in [`Skipped`]: the line or row, 0 for a whole file.
    pub line: usize,
    pub id: String,
    pub renamed: String,
}

/// What [`read`] gives: the documents (ids unique), what was skipped, and which ids were changed.
#[derive(Debug)]
pub struct Documents {
    pub docs: Vec<Document>,
    pub skipped: Vec<Skipped>,
    pub renamed: Vec<Renamed>,
    /// Rows and lines without an id of their own (no such field or column, or an empty one), named
    /// `row-N`/`line-N` by their place: worth a word, since `--id-field` may name the right one.
    pub unnamed: usize,
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

/// What reading collects: documents (with the file and line each came from), and what was skipped.
struct Collected<'a> {
    opts: &'a DocOptions,
    docs: Vec<Document>,
    places: Vec<(String, usize)>,
    skipped: Vec<Skipped>,
    unnamed: usize,
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
        // Tasks of a Label Studio project whose <Text valueType="url"> holds links: answers found in a
        // link's characters would mean nothing.
        if text::label_studio_links::looks_like_link(&text) {
            self.skip(
                file,
                line,
                "the text is a link, not a note (as the tasks of a Label Studio project with <Text \
                 valueType=\"url\"> hold theirs); extract from the notes, or pre-annotate the project \
                 with serve, which fetches them"
                    .into(),
            );
            return;
        }
        match language(lang, &text, self.opts) {
            Some((lang, lang_source)) => {
                self.docs.push(Document {
                    id,
                    text,
                    lang,
                    lang_source,
                });
                self.places.push((file.display().to_string(), line));
            }
            None => self.skip(file, line, "language not given and not recognisable".into()),
        }
    }
}

/// Reads the documents at `path`, with what was skipped; a repeated id is made unique ([`Renamed`]).
pub fn read(path: &Path, opts: &DocOptions) -> Result<Documents> {
    let mut c = Collected {
        opts,
        docs: Vec::new(),
        places: Vec::new(),
        skipped: Vec::new(),
        unnamed: 0,
    };
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        _ if path.is_dir() => c.folder(path)?,
        "txt" => {
            let stem = path.with_extension("");
            let stem = stem.file_name().unwrap_or_default().to_string_lossy();
            c.text_file(path, &stem)
        }
        "jsonl" | "ndjson" => c.jsonl(path)?,
        "json" => c.json(path)?,
        "csv" | "tsv" | "tab" | "parquet" | "pq" => c.table(path)?,
        _ => bail!(
            "{}: documents come as a folder of .txt files, one .txt file, .jsonl, .json, .csv, .tsv or .parquet",
            path.display()
        ),
    }
    let renamed = make_ids_unique(&mut c.docs, &c.places);
    Ok(Documents {
        docs: c.docs,
        skipped: c.skipped,
        renamed,
        unnamed: c.unnamed,
    })
}

/// The first document with an id keeps it; a later one becomes `id#2`, `id#3`, … (as `data-prep qa`
/// renames questions), never an id another document has of its own.
fn make_ids_unique(docs: &mut [Document], places: &[(String, usize)]) -> Vec<Renamed> {
    let own: HashSet<String> = docs.iter().map(|d| d.id.clone()).collect();
    let mut taken: HashSet<String> = HashSet::new();
    let mut renamed = Vec::new();
    for (doc, (file, line)) in docs.iter_mut().zip(places) {
        if taken.insert(doc.id.clone()) {
            continue;
        }
        let mut k = 2;
        let mut new = format!("{}#{k}", doc.id);
        while own.contains(&new) || taken.contains(&new) {
            k += 1;
            new = format!("{}#{k}", doc.id);
        }
        taken.insert(new.clone());
        renamed.push(Renamed {
            file: file.clone(),
            line: *line,
            id: std::mem::replace(&mut doc.id, new.clone()),
            renamed: new,
        });
    }
    renamed
}

/// Every `.txt` file under `dir`, its subfolders' too; `skip` hears of every other entry.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, skip: &mut dyn FnMut(&Path, String)) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .with_context(|| format!("cannot list {}", dir.display()))?;
    // Name order, so that the skipped list is the same from run to run.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        match std::fs::metadata(&path) {
            Err(e) => skip(&path, format!("unreadable: {e}")),
            // A link to a folder could lead back up the tree.
            Ok(meta) if meta.is_dir() && is_link => {
                skip(&path, "a link to a folder, which is not followed".into())
            }
            Ok(meta) if meta.is_dir() => walk(&path, files, skip)?,
            Ok(_)
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("txt")) =>
            {
                files.push(path)
            }
            Ok(_) => skip(&path, "not a .txt document".into()),
        }
    }
    Ok(())
}

impl Collected<'_> {
    /// A folder of `.txt` files (`.TXT` too, as Windows exports name them), its subfolders' as well
    /// (a document's id is its path below the folder: `2019/note-07`), `name.xx.txt` naming the
    /// language. Any other file is listed as skipped, not passed over in silence.
    fn folder(&mut self, path: &Path) -> Result<()> {
        let c = self;
        let mut files = Vec::new();
        walk(path, &mut files, &mut |file, reason| {
            c.skip(file, 0, reason)
        })?;
        files.sort();
        if files.is_empty() {
            bail!("{}: no .txt documents", path.display());
        }
        for file in files {
            // `2019/note-07.ro.txt` has id `2019/note-07`, so that notes of the same name in two
            // folders stay apart.
            let below = file.strip_prefix(path).unwrap_or(&file).with_extension("");
            let stem = below
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            c.text_file(&file, &stem);
        }
        Ok(())
    }

    /// One `.txt` document; `stem` is its name without `.txt`: `note-07.ro` is a Romanian document
    /// with id `note-07`.
    fn text_file(&mut self, file: &Path, stem: &str) {
        let (id, lang) = match stem.rsplit_once('.') {
            Some((id, l)) if l.len() == 2 && l.chars().all(|c| c.is_ascii_alphabetic()) => {
                (id.to_owned(), Some(l.to_owned()))
            }
            _ => (stem.to_owned(), None),
        };
        // `bom::read_to_string` names a UTF-16 file's encoding, or where the bytes stop being UTF-8;
        // offsets count from after a byte-order mark, as `encoding="utf-8-sig"` reads.
        match text::bom::read_to_string(file) {
            Ok(text) => self.accept(file, 0, id, text, lang.as_deref()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.skip(file, 0, e.to_string())
            }
            Err(e) => self.skip(file, 0, format!("unreadable: {e}")),
        }
    }

    /// JSON lines with the id, text and language fields.
    fn jsonl(&mut self, path: &Path) -> Result<()> {
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
            match serde_json::from_str(line) {
                Ok(v) => c.record(path, n, &v, "line"),
                Err(e) => c.skip(path, n, format!("malformed JSON: {e}")),
            }
        }
        Ok(())
    }

    /// A JSON file of records, as `datasets`' "json" loader reads one that is not JSON Lines: an array
    /// of objects, or an object whose `data` (else its only) member is that array. A record's place is
    /// its number from 1. The whole file is parsed at once, so malformed JSON is an error naming the
    /// line and column, not a skip.
    fn json(&mut self, path: &Path) -> Result<()> {
        let text = match text::bom::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.skip(path, 0, e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not JSON (for one JSON object per line, name it .jsonl)",
                path.display()
            )
        })?;
        for (i, v) in text::json_records::records(&value, path)?
            .iter()
            .enumerate()
        {
            self.record(path, i + 1, v, "record");
        }
        Ok(())
    }

    /// One JSON record (a JSON Lines line or an element of a JSON array) at `place`: its text, id
    /// (a string or a number; else `KIND-PLACE`) and language fields.
    fn record(&mut self, path: &Path, place: usize, v: &serde_json::Value, kind: &str) {
        let opts = self.opts;
        if !v.is_object() {
            self.skip(
                path,
                place,
                format!("not a JSON object but {}", text::qa::data::kind_of(v)),
            );
            return;
        }
        // A Label Studio task (`{"id": 7, "data": {"text": …}}`, as imported into a project that `serve`
        // pre-annotates) holds its fields in `data`; its id is the task's.
        let fields = match v.get("data") {
            Some(data) if v.get(&opts.text_field).is_none() && data.is_object() => data,
            _ => v,
        };
        let Some(text) = fields.get(&opts.text_field).and_then(|t| t.as_str()) else {
            self.skip(
                path,
                place,
                format!("no string field '{}'", opts.text_field),
            );
            return;
        };
        let id = match v.get(&opts.id_field).or_else(|| fields.get(&opts.id_field)) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(x)) => x.to_string(),
            _ => {
                self.unnamed += 1;
                format!("{kind}-{place}")
            }
        };
        let lang = fields.get(&opts.lang_field).and_then(|l| l.as_str());
        self.accept(path, place, id, text.to_owned(), lang);
    }

    /// A CSV/TSV/Parquet table's id, text and language columns. A row's place is the line it starts on
    /// in CSV/TSV (the header is line 1; a quoted note may span lines), its number from 1 in Parquet;
    /// a CSV/TSV row whose fields do not match the header is skipped with its line.
    fn table(&mut self, path: &Path) -> Result<()> {
        let opts = self.opts;
        let c = self;
        let present = tables::columns_of(path)?;
        let has = |name: &str| present.iter().any(|p| p == name);
        let lang = has(&opts.lang_field).then_some(opts.lang_field.as_str());
        let id = has(&opts.id_field).then_some(opts.id_field.as_str());
        let with_id: Vec<&str> = [Some(opts.text_field.as_str()), lang, id]
            .into_iter()
            .flatten()
            .collect();
        // An id column that is not text (a Parquet column of integers) names rows by place instead.
        let (rows, with_ids) = match tables::read_text_rows(path, &with_id) {
            Ok(rows) => (rows, id.is_some()),
            Err(_) if id.is_some() => (
                tables::read_text_rows(path, &with_id[..with_id.len() - 1])?,
                false,
            ),
            Err(e) => return Err(e),
        };
        for (line, reason) in &rows.bad {
            c.skip(path, *line, reason.clone());
        }
        let column = |k: usize| rows.columns.get(k).filter(|_| k > 0);
        let langs = lang.and_then(|_| column(1));
        let ids = if with_ids {
            column(rows.columns.len() - 1)
        } else {
            None
        };
        for (i, text) in rows.columns[0].iter().enumerate() {
            let n = rows.places[i];
            let id = ids.and_then(|ids| ids[i].clone()).unwrap_or_else(|| {
                c.unnamed += 1;
                format!("row-{n}")
            });
            let lang = langs.and_then(|l| l[i].as_deref());
            match text {
                Some(t) => c.accept(path, n, id, t.clone(), lang),
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
        std::fs::write(d.join("notes.md"), "not a document").unwrap();
        // Subfolders are read too (ids are paths below the folder), `.TXT` as Windows names it.
        std::fs::create_dir_all(d.join("2019/ward b")).unwrap();
        std::fs::write(d.join("2019/ward b/a.ro.TXT"), "Tuse de luni.").unwrap();
        std::fs::write(d.join("2019/b.en.txt"), "Fever since Monday.").unwrap();
        std::os::unix::fs::symlink(d.join("2019"), d.join("2019/back")).unwrap();
        let Documents { docs, skipped, .. } = read(d, &DocOptions::default()).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["2019/b", "2019/ward b/a", "a", "b"]);
        assert_eq!(
            (docs[1].lang.as_str(), docs[1].text.as_str()),
            ("ro", "Tuse de luni.")
        );
        assert_eq!((docs[2].id.as_str(), docs[2].lang.as_str()), ("a", "ro"));
        assert_eq!(
            (docs[3].lang.as_str(), docs[3].lang_source),
            ("pl", "detected")
        );
        let reasons: Vec<(String, &str)> = skipped
            .iter()
            .map(|s| {
                let below = Path::new(&s.file).strip_prefix(d).unwrap();
                (below.display().to_string(), s.reason.as_str())
            })
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(
            reasons[0],
            (
                "2019/back".into(),
                "a link to a folder, which is not followed"
            )
        );
        assert_eq!(reasons[1], ("notes.md".into(), "not a .txt document"));
        assert!(
            reasons[2].0 == "c.txt" && reasons[2].1.contains("empty"),
            "{reasons:?}"
        );
        assert!(
            reasons[3].0 == "d.txt" && reasons[3].1.contains("UTF-8"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_json_array_of_documents_is_read_as_datasets_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let records = serde_json::json!([
            {"id": "n1", "text": "Pacientul are febră.", "lang": "ro"},
            {"id": 2, "text": "Пациентът има температура.", "lang": "bg"},
            "a string",
            {"body": "no text field"},
            {"text": "Patient has fever.", "lang": "en"}
        ]);
        let wrapped = serde_json::json!({"version": "1", "data": records});
        let only = serde_json::json!({"meta": {"n": 5}, "notes": records});
        for (name, value) in [
            ("a.json", &records),
            ("b.json", &wrapped),
            ("c.json", &only),
        ] {
            let path = dir.path().join(name);
            // With a byte-order mark, as Windows tools save JSON.
            std::fs::write(&path, format!("\u{feff}{value}")).unwrap();
            let Documents {
                docs,
                skipped,
                unnamed,
                ..
            } = read(&path, &DocOptions::default()).unwrap();
            let got: Vec<(&str, &str, &str)> = docs
                .iter()
                .map(|d| (d.id.as_str(), d.lang.as_str(), d.text.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    ("n1", "ro", "Pacientul are febră."),
                    ("2", "bg", "Пациентът има температура."),
                    ("record-5", "en", "Patient has fever.")
                ],
                "{name}"
            );
            assert_eq!(unnamed, 1);
            let why: Vec<(usize, &str)> = skipped
                .iter()
                .map(|s| (s.line, s.reason.as_str()))
                .collect();
            assert_eq!(
                why,
                [
                    (3, "not a JSON object but a string"),
                    (4, "no string field 'text'")
                ],
                "{name}"
            );
        }
        let refused = |text: &str| {
            let path = dir.path().join("bad.json");
            std::fs::write(&path, text).unwrap();
            format!("{:#}", read(&path, &DocOptions::default()).unwrap_err())
        };
        // Label Studio tasks: the fields in `data`, the id the task's.
        let tasks = dir.path().join("tasks.json");
        std::fs::write(
            &tasks,
            serde_json::json!([
                {"id": 41, "data": {"text": "Pacientul are febră.", "lang": "ro"}},
                {"data": {"text": "Patient has fever.", "lang": "en", "id": "n2"}},
                {"id": 43, "data": {"note": "x"}},
                {"id": 44, "data": {"text": "/data/upload/3/note.txt"}}
            ])
            .to_string(),
        )
        .unwrap();
        let read_back = read(&tasks, &DocOptions::default()).unwrap();
        let got: Vec<(&str, &str)> = read_back
            .docs
            .iter()
            .map(|d| (d.id.as_str(), d.lang.as_str()))
            .collect();
        assert_eq!(got, [("41", "ro"), ("n2", "en")]);
        assert_eq!(read_back.skipped[0].line, 3);
        assert_eq!(read_back.skipped[1].line, 4);
        assert!(read_back.skipped[1].reason.contains("valueType=\"url\""));
        let two = refused(r#"{"train": [], "test": []}"#);
        assert!(
            two.contains(r#"which of the arrays "train", "test""#),
            "{two}"
        );
        assert!(refused(r#"{"n": 1}"#).contains("without an array of records (members: n)"));
        assert!(refused("\"text\"").contains("an array of objects, not a string"));
        let lines = refused("{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
        assert!(
            lines.contains("is not JSON (for one JSON object per line, name it .jsonl)")
                && lines.contains("line 2"),
            "{lines}"
        );
        // UTF-16 is skipped whole with its encoding named, as a .jsonl file is.
        let path = dir.path().join("u16.json");
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend("[]".encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(&path, bytes).unwrap();
        let read_back = read(&path, &DocOptions::default()).unwrap();
        assert!(
            read_back.skipped[0].reason.contains("UTF-16"),
            "{:?}",
            read_back.skipped
        );
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
        let Documents {
            docs,
            skipped,
            unnamed,
            ..
        } = read(&j, &DocOptions::default()).unwrap();
        assert_eq!((docs[0].id.as_str(), unnamed), ("7", 0));
        assert_eq!(skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [2, 3]);
        let c = dir.path().join("d.csv");
        std::fs::write(&c, "id,text\nn1,Pacientul are febră.\nn2,\n").unwrap();
        let opts = DocOptions {
            lang: Some("ro".into()),
            ..Default::default()
        };
        let Documents { docs, skipped, .. } = read(&c, &opts).unwrap();
        assert_eq!((docs[0].id.as_str(), docs[0].lang.as_str()), ("n1", "ro"));
        assert_eq!((skipped[0].line, skipped.len()), (3, 1));
        // A note with line breaks keeps later rows' lines right; a row with an unquoted comma is skipped
        // with its line, not cut at the comma.
        std::fs::write(
            &c,
            "id,text\nn1,\"Febră.\nTuse.\"\nn2,Febră, tuse şi dureri.\nn3,\n",
        )
        .unwrap();
        let read_back = read(&c, &opts).unwrap();
        assert_eq!(read_back.docs.len(), 1);
        assert_eq!(read_back.docs[0].text, "Febră.\nTuse.");
        let places: Vec<(usize, &str)> = read_back
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(places[0].0, 4);
        assert!(
            places[0].1.starts_with("3 fields where the header has 2"),
            "{places:?}"
        );
        assert_eq!(places[1], (5, "empty 'text' cell"));
        // Without the id column, or with an id cell empty, documents are named by their row and counted.
        std::fs::write(&c, "note_id,text\nn1,Pacientul are febră.\nn2,Tuse.\n").unwrap();
        let read_back = read(&c, &opts).unwrap();
        let ids: Vec<&str> = read_back.docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!((ids, read_back.unnamed), (vec!["row-2", "row-3"], 2));
        std::fs::write(&j, "{\"text\": \"Fever.\", \"lang\": \"en\"}\n").unwrap();
        let read_back = read(&j, &opts).unwrap();
        assert_eq!(
            (read_back.docs[0].id.as_str(), read_back.unnamed),
            ("line-1", 1)
        );
    }

    /// One `.txt` file is one document, named and given a language as in a folder.
    #[test]
    fn a_single_text_file_is_one_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("note-07.ro.TXT");
        std::fs::write(&file, "Pacientul are febră.").unwrap();
        let read_back = read(&file, &DocOptions::default()).unwrap();
        let doc = &read_back.docs[0];
        assert_eq!((doc.id.as_str(), doc.lang.as_str()), ("note-07", "ro"));
        std::fs::write(&file, b"caf\xe9").unwrap();
        let read_back = read(&file, &DocOptions::default()).unwrap();
        assert!(read_back.docs.is_empty());
        assert!(read_back.skipped[0].reason.contains("not UTF-8"));
    }

    /// Ids key every output: a repeated one is renamed, and said so, rather than two documents merged.
    #[test]
    fn repeated_ids_are_made_unique_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("d.jsonl");
        let line = |id: &str, text: &str| {
            format!("{{\"id\": \"{id}\", \"text\": \"{text}\", \"lang\": \"en\"}}\n")
        };
        std::fs::write(
            &j,
            [
                line("n1", "Fever."),
                line("n1", "Cough."),
                line("n1#2", "Headache."),
                line("n1", "Nausea."),
            ]
            .concat(),
        )
        .unwrap();
        let read_back = read(&j, &DocOptions::default()).unwrap();
        let ids: Vec<&str> = read_back.docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n1#3", "n1#2", "n1#4"]);
        let file = j.display().to_string();
        let renamed = |line: usize, renamed: &str| Renamed {
            file: file.clone(),
            line,
            id: "n1".into(),
            renamed: renamed.into(),
        };
        assert_eq!(read_back.renamed, [renamed(2, "n1#3"), renamed(4, "n1#4")]);
        // In a folder, `a.en.txt` and `a.ro.txt` are both document `a`.
        let folder = dir.path().join("notes");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("a.en.txt"), "Fever.").unwrap();
        std::fs::write(folder.join("a.ro.txt"), "Febră.").unwrap();
        let read_back = read(&folder, &DocOptions::default()).unwrap();
        let ids: Vec<(&str, &str)> = read_back
            .docs
            .iter()
            .map(|d| (d.id.as_str(), d.lang.as_str()))
            .collect();
        assert_eq!(ids, [("a", "en"), ("a#2", "ro")]);
        assert_eq!(read_back.renamed.len(), 1);
        assert!(read_back.renamed[0].file.ends_with("a.ro.txt"));
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
            let Documents { docs, skipped, .. } = read(path, &DocOptions::default()).unwrap();
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
                Ok(Documents { docs, skipped, .. }) => {
                    assert_eq!(docs.len(), docs_left, "{}", path.display());
                    assert_eq!(skipped.len(), 1, "{}: {skipped:?}", path.display());
                    assert!(skipped[0].reason.contains("UTF-16LE"), "{skipped:?}");
                }
                Err(e) => panic!("{}: {e:#}", path.display()),
            }
        }
    }
}
