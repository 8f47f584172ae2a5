//! Corpus sources: where the text is, in which format, and which language it is.

use std::io::{BufRead, BufReader, Read};
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
    /// A JSON file of records (an array of objects, or an object whose `data` or only member is that
    /// array, as `datasets`' json loader reads it); the text is in `field`, a record's place its number.
    Json,
    /// TMX translation memory: every segment of every language, each tagged with its own language.
    Tmx,
    /// Terminology CSV with `sourceString`/`targetString` (and optionally `description`) columns, as the
    /// TICO-19 term lists: the target term, and the source term with its description.
    Terms,
    /// The contexts of a SQuAD-format QA file.
    Squad,
    /// A column of a table (`column`, default `text`): CSV, TSV or Parquet, read through polars; only
    /// that column (and `language_column`) is loaded.
    Csv,
    Tsv,
    Parquet,
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
    /// JSONL/JSON field holding the text (default `text`).
    #[serde(default)]
    pub field: Option<String>,
    /// CSV/TSV/Parquet column holding the text (default `text`).
    #[serde(default)]
    pub column: Option<String>,
    /// CSV/TSV/Parquet column with each row's language (ISO 639-1 or a tag like `es-ES`); empty cells
    /// take the source's `language`.
    #[serde(default)]
    pub language_column: Option<String>,
    /// ISO 639-1 code of the text, or `auto` to detect each document's (see
    /// `language_min_confidence`). For TMX, the language to keep ("*": every language in the file); for
    /// term lists, the target language where no `targetLang` column gives it (the source side is
    /// `sourceLang`'s).
    pub language: String,
    /// Overrides the corpus-wide minimum length (term lists hold short entries).
    #[serde(default)]
    pub min_chars: Option<usize>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// Sampling weight in the training split: 2 writes the source's documents twice, 0.5 half of
    /// them (chosen by hash); combined with `language_alpha` balancing.
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// One document as read, before cleaning.
pub struct Record {
    pub text: String,
    pub file: PathBuf,
    /// 1-based line where the document starts (the row for CSV, the unit for TMX, the record for JSON).
    pub line: usize,
    /// The record's own language where the format says it (TMX sides, term lists); else the source's.
    pub lang: Option<String>,
}

pub use text::language::primary_language;

/// An input that could not be used, with where and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reject {
    pub source: String,
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// `--strict`: any reject stops the run, naming how many and the first.
pub fn refuse_rejects(rejects: &[Reject]) -> Result<()> {
    if let Some(r) = rejects.first() {
        bail!(
            "--strict: {} input(s) rejected, first {}:{}: {}",
            rejects.len(),
            r.file,
            r.line,
            r.reason
        );
    }
    Ok(())
}

/// The rejects, one JSON object a line, written atomically to `path`.
pub fn write_rejects(path: &Path, rejects: &[Reject]) -> Result<()> {
    fsutil::write_json_lines(path, rejects)
}

/// Rejects per source name.
pub fn rejects_by_source(rejects: &[Reject]) -> std::collections::BTreeMap<String, u64> {
    let mut by = std::collections::BTreeMap::new();
    for r in rejects {
        *by.entry(r.source.clone()).or_default() += 1;
    }
    by
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

    /// What can be known of a file before reading it: a table has the configured columns, a term list
    /// its term columns. Errors name the source and the file.
    pub fn check(&self, file: &Path) -> Result<()> {
        let wanted: Vec<&str> = match self.format {
            Format::Csv | Format::Tsv | Format::Parquet => {
                std::iter::once(self.column.as_deref().unwrap_or("text"))
                    .chain(self.language_column.as_deref())
                    .collect()
            }
            Format::Terms => vec!["sourceString", "targetString"],
            _ => return Ok(()),
        };
        let found = if self.format == Format::Terms {
            // Term lists are CSV whatever their extension.
            let Ok(mut reader) = csv::Reader::from_path(file) else {
                return Ok(()); // unreadable: `read` records it as a reject
            };
            let headers = reader.headers().with_context(|| {
                format!("source '{}': {}: no header row", self.name, file.display())
            })?;
            headers.iter().map(str::to_owned).collect()
        } else {
            tables::columns_of(file).with_context(|| format!("source '{}'", self.name))?
        };
        if let Some(missing) = wanted.iter().find(|w| !found.iter().any(|f| f == *w)) {
            bail!(
                "source '{}': {}: no column '{missing}' (columns: {})",
                self.name,
                file.display(),
                found.join(", ")
            );
        }
        Ok(())
    }

    /// Reads one file, calling `emit` per document and `reject` per unusable piece.
    pub fn read(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        match self.format {
            Format::Tmx => self.read_tmx(file, emit, reject),
            Format::Terms => self.read_terms(file, emit, reject),
            Format::Squad => self.read_squad(file, emit, reject),
            Format::Json => self.read_json(file, emit, reject),
            Format::Csv | Format::Tsv | Format::Parquet => self.read_table(file, emit, reject),
            Format::Text | Format::Jsonl => self.read_lines(file, emit, reject),
        }
    }

    /// Plain text (by line, paragraph or file) and JSON lines, streamed line by line; a line that is not
    /// UTF-8 is rejected alone.
    fn read_lines(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        let f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) => {
                reject(self.reject_at(file, 0, format!("unreadable: {e}")));
                return Ok(());
            }
        };
        let record = |text: String, line: usize| Record {
            text,
            file: file.to_path_buf(),
            line,
            lang: None,
        };
        let mut reader = BufReader::new(f);
        // A UTF-16 file's ASCII lines are valid UTF-8 full of NULs: refused whole, not read as text.
        let start = reader
            .fill_buf()
            .with_context(|| format!("reading {}", file.display()))?;
        if let Some(reason) = text::bom::not_utf8_reason(start) {
            reject(self.reject_at(file, 0, reason));
            return Ok(());
        }
        let (mut buf, mut lineno) = (Vec::new(), 0);
        let mut block = Block::default();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("reading {}", file.display()))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            // A byte-order mark before the first line is not text (`text::bom`).
            let bytes = if lineno == 1 {
                text::bom::strip_bytes(&buf)
            } else {
                &buf
            };
            let line = match std::str::from_utf8(bytes) {
                Ok(s) => s.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to());
                    reject(self.reject_at(file, lineno, reason));
                    continue;
                }
            };
            match (self.format, self.unit) {
                (Format::Jsonl, _) if line.trim().is_empty() => {}
                (Format::Jsonl, _) => match self.jsonl_text(line) {
                    Ok(text) => emit(record(text, lineno)),
                    Err(reason) => reject(self.reject_at(file, lineno, reason)),
                },
                (_, Unit::Line) => emit(record(line.to_owned(), lineno)),
                (_, Unit::Paragraph) if line.trim().is_empty() => {
                    if let Some((text, start)) = block.take() {
                        emit(record(text, start));
                    }
                }
                (_, Unit::Paragraph | Unit::File) => block.push(line, lineno),
            }
        }
        if let Some((text, start)) = block.take() {
            // A whole file is one document from line 1, even when it opens with blank lines.
            let start = if self.unit == Unit::File { 1 } else { start };
            emit(record(text, start));
        }
        Ok(())
    }

    /// The text field of one JSON line, or why there is none.
    fn jsonl_text(&self, line: &str) -> std::result::Result<String, String> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("malformed JSON: {e}"))?;
        self.record_text(&value)
    }

    /// The text field of one JSON record, or why there is none.
    fn record_text(&self, value: &serde_json::Value) -> std::result::Result<String, String> {
        let field = self.field.as_deref().unwrap_or("text");
        if !value.is_object() {
            return Err(format!(
                "not a JSON object but {}",
                text::qa::data::kind_of(value)
            ));
        }
        value
            .get(field)
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("no string field '{field}'"))
    }

    /// A JSON file of records, parsed whole: one that is not JSON (or not records) is rejected whole,
    /// with the reason; a record without the text field alone, with its number.
    fn read_json(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        let content = match text::bom::read_to_string(file) {
            Ok(content) => content,
            Err(e) => {
                reject(self.reject_at(file, 0, format!("unreadable: {e}")));
                return Ok(());
            }
        };
        let value: serde_json::Value = match serde_json::from_str(&content) {
            Ok(value) => value,
            Err(e) => {
                let hint = " (one JSON object a line is format \"jsonl\")";
                reject(self.reject_at(file, 0, format!("malformed JSON: {e}{hint}")));
                return Ok(());
            }
        };
        let records = match text::json_records::records(&value, file) {
            Ok(records) => records,
            Err(e) => {
                reject(self.reject_at(file, 0, format!("{e:#}")));
                return Ok(());
            }
        };
        for (i, record) in records.iter().enumerate() {
            match self.record_text(record) {
                Ok(text) => emit(Record {
                    text,
                    file: file.to_path_buf(),
                    line: i + 1,
                    lang: None,
                }),
                Err(reason) => reject(self.reject_at(file, i + 1, reason)),
            }
        }
        Ok(())
    }

    fn reject_at(&self, file: &Path, line: usize, reason: String) -> Reject {
        Reject {
            source: self.name.clone(),
            file: file.display().to_string(),
            line,
            reason,
        }
    }

    /// TMX: every `<seg>` of a kept language is a document whose line is its unit's `<tu>` line. A
    /// segment left unclosed (its `</tuv>` or `</tu>`, or the next `<tu>`, comes first) is rejected
    /// with that unit's line, and reading goes on with the next unit.
    fn read_tmx(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        use quick_xml::events::Event;
        let f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) => {
                reject(self.reject_at(file, 0, format!("unreadable: {e}")));
                return Ok(());
            }
        };
        let mut reader = quick_xml::Reader::from_reader(LineCounter {
            inner: BufReader::new(f),
            newlines: 0,
        });
        // Mismatched end tags are how a broken unit shows; they are handled below, unit by unit.
        reader.config_mut().check_end_names = false;
        let mut unit = TmxUnit {
            source: self,
            file,
            line: 0,
            lang: None,
            seg: None,
        };
        let mut buf = Vec::new();
        loop {
            let line_before = reader.get_ref().newlines + 1;
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) => unit.start(&e, line_before, reject),
                Ok(Event::Text(t)) => {
                    if let Some(s) = unit.seg.as_mut() {
                        match t.unescape() {
                            Ok(text) => s.push_str(&text),
                            Err(e) => reject(self.reject_at(
                                file,
                                unit.line,
                                format!("bad XML text: {e}"),
                            )),
                        }
                    }
                }
                Ok(Event::End(e)) => unit.end(e.name().as_ref(), emit, reject),
                Ok(Event::Eof) => {
                    unit.unclosed(reject);
                    break;
                }
                Err(e) => {
                    reject(self.reject_at(
                        file,
                        line_before,
                        format!("malformed TMX, the rest of the file is skipped: {e}"),
                    ));
                    break;
                }
                _ => {}
            }
            buf.clear();
        }
        Ok(())
    }

    fn read_terms(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        let mut reader = match csv::Reader::from_path(file) {
            Ok(r) => r,
            Err(e) => {
                reject(self.reject_at(file, 0, format!("unreadable: {e}")));
                return Ok(());
            }
        };
        let headers = reader
            .headers()
            .with_context(|| format!("{}: no header row", file.display()))?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (Some(src), Some(tgt)) = (col("sourceString"), col("targetString")) else {
            bail!(
                "{}: a term list needs sourceString and targetString columns, found {:?}",
                file.display(),
                headers
            );
        };
        let (desc, src_lang, tgt_lang) = (col("description"), col("sourceLang"), col("targetLang"));
        for (i, row) in reader.records().enumerate() {
            let line = i + 2;
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    reject(self.reject_at(file, line, format!("malformed CSV row: {e}")));
                    continue;
                }
            };
            let (Some(source), Some(target)) = (row.get(src), row.get(tgt)) else {
                reject(self.reject_at(file, line, "row without source or target term".into()));
                continue;
            };
            let path = file.to_path_buf();
            let target_lang = Some(
                tgt_lang
                    .and_then(|c| row.get(c))
                    .map_or_else(|| primary_language(&self.language), primary_language),
            );
            emit(Record {
                text: target.to_owned(),
                file: path.clone(),
                line,
                lang: target_lang,
            });
            let source_lang = src_lang.and_then(|c| row.get(c)).map(primary_language);
            let text = match desc
                .and_then(|c| row.get(c))
                .filter(|d| !d.trim().is_empty())
            {
                Some(d) => format!("{source}: {d}"),
                None => source.to_owned(),
            };
            emit(Record {
                text,
                file: path,
                line,
                lang: source_lang,
            });
        }
        Ok(())
    }

    fn read_table(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        if !file.exists() {
            reject(self.reject_at(file, 0, "unreadable: no such file".into()));
            return Ok(());
        }
        let column = self.column.as_deref().unwrap_or("text");
        // A missing column is a configuration error, not a bad record: stop with the columns found.
        let wanted: Vec<&str> = std::iter::once(column)
            .chain(self.language_column.as_deref())
            .collect();
        let rows = tables::read_text_rows(file, &wanted)
            .with_context(|| format!("source '{}'", self.name))?;
        // A CSV/TSV row whose fields do not match the header (a stray separator) is a bad record.
        for (line, reason) in rows.bad {
            reject(self.reject_at(file, line, reason));
        }
        // CSV/TSV rows are numbered by the line they start on (the header is line 1); Parquet rows from 1.
        let mut columns = rows.columns.into_iter();
        let texts = columns.next().unwrap_or_default();
        let langs = columns.next().unwrap_or_else(|| vec![None; texts.len()]);
        for ((text, lang), line) in texts.into_iter().zip(langs).zip(rows.places) {
            match text {
                Some(text) => emit(Record {
                    text,
                    file: file.to_path_buf(),
                    line,
                    lang: lang.as_deref().map(primary_language),
                }),
                None => reject(self.reject_at(file, line, format!("empty '{column}' cell"))),
            }
        }
        Ok(())
    }

    fn read_squad(
        &self,
        file: &Path,
        emit: &mut dyn FnMut(Record),
        reject: &mut dyn FnMut(Reject),
    ) -> Result<()> {
        let squad = match text::bom::read_to_string(file) {
            Ok(content) => text::qa::data::parse_squad(&content, file)?,
            Err(e) => {
                reject(self.reject_at(file, 0, format!("unreadable: {e}")));
                return Ok(());
            }
        };
        let paragraphs = squad.data.into_iter().flat_map(|a| a.paragraphs);
        for (i, p) in paragraphs.enumerate() {
            match p.context {
                Some(c) => emit(Record {
                    text: c,
                    file: file.to_path_buf(),
                    line: i + 1,
                    lang: None,
                }),
                None => reject(self.reject_at(file, i + 1, "paragraph without a context".into())),
            }
        }
        Ok(())
    }
}

/// Where reading a TMX file is: the current unit's line, the current variant's language and the segment
/// being read.
struct TmxUnit<'a> {
    source: &'a Source,
    file: &'a Path,
    line: usize,
    lang: Option<String>,
    seg: Option<String>,
}

impl TmxUnit<'_> {
    /// A segment still open where it cannot be: rejected with its unit's line.
    fn unclosed(&mut self, reject: &mut dyn FnMut(Reject)) {
        if self.seg.take().is_some() {
            reject(self.source.reject_at(
                self.file,
                self.line,
                "unclosed <seg>: segment dropped, reading goes on at the next <tu>".into(),
            ));
        }
    }

    fn start(
        &mut self,
        e: &quick_xml::events::BytesStart,
        line: usize,
        reject: &mut dyn FnMut(Reject),
    ) {
        match e.name().as_ref() {
            b"tu" => {
                self.unclosed(reject);
                self.line = line;
                self.lang = None;
            }
            b"tuv" => {
                self.unclosed(reject);
                self.lang = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"xml:lang" || a.key.as_ref() == b"lang")
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()));
            }
            b"seg" => {
                self.unclosed(reject);
                self.seg = Some(String::new());
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &[u8], emit: &mut dyn FnMut(Record), reject: &mut dyn FnMut(Reject)) {
        match name {
            b"seg" => {
                let Some(text) = self.seg.take() else { return };
                let wanted = self.source.language == "*";
                match &self.lang {
                    Some(l)
                        if wanted
                            || primary_language(l) == primary_language(&self.source.language) =>
                    {
                        emit(Record {
                            text,
                            file: self.file.to_path_buf(),
                            line: self.line,
                            lang: Some(primary_language(l)),
                        })
                    }
                    Some(_) => {}
                    None => reject(self.source.reject_at(
                        self.file,
                        self.line,
                        "segment without xml:lang".into(),
                    )),
                }
            }
            b"tuv" | b"tu" | b"body" => self.unclosed(reject),
            _ => {}
        }
    }
}

/// A buffered file reader that counts the newlines its user has consumed, so that an XML event
/// knows its line.
struct LineCounter {
    inner: BufReader<std::fs::File>,
    newlines: usize,
}

impl Read for LineCounter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.newlines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        Ok(n)
    }
}

impl BufRead for LineCounter {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        let taken = &self.inner.buffer()[..amt.min(self.inner.buffer().len())];
        self.newlines += taken.iter().filter(|&&b| b == b'\n').count();
        self.inner.consume(amt);
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
/// Lines gathered into one document (a paragraph, or a whole file), with the line it starts at.
#[derive(Default)]
struct Block {
    text: String,
    start: usize,
}

impl Block {
    fn push(&mut self, line: &str, lineno: usize) {
        if self.text.is_empty() {
            self.start = lineno;
        } else {
            self.text.push('\n');
        }
        self.text.push_str(line);
    }

    fn take(&mut self) -> Option<(String, usize)> {
        (!self.text.is_empty()).then(|| (std::mem::take(&mut self.text), self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, line) of every document and (line, reason) of every reject.
    type Read = (Vec<(String, usize)>, Vec<(usize, String)>);

    /// What `source` reads from `content`.
    fn read(source: serde_json::Value, content: &[u8]) -> Read {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("input");
        std::fs::write(&file, content).unwrap();
        let mut fields = serde_json::json!({"name": "t", "path": "input", "language": "en"});
        fields
            .as_object_mut()
            .unwrap()
            .extend(source.as_object().unwrap().clone());
        let source: Source = serde_json::from_value(fields).unwrap();
        let (mut docs, mut rejects) = (Vec::new(), Vec::new());
        source
            .read(
                &file,
                &mut |r: Record| docs.push((r.text, r.line)),
                &mut |r: Reject| rejects.push((r.line, r.reason)),
            )
            .unwrap();
        (docs, rejects)
    }

    const TEXT: &[u8] = b"\n\nfirst line\nsecond line\n\n\nlast\n";

    #[test]
    fn text_is_read_by_line_paragraph_or_file() {
        let (lines, _) = read(serde_json::json!({"format": "text"}), TEXT);
        let texts: Vec<&str> = lines.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["", "", "first line", "second line", "", "", "last"]);
        assert_eq!(lines[2].1, 3);
        let (paragraphs, _) = read(
            serde_json::json!({"format": "text", "unit": "paragraph"}),
            TEXT,
        );
        assert_eq!(
            paragraphs,
            [
                ("first line\nsecond line".to_owned(), 3),
                ("last".to_owned(), 7)
            ]
        );
        let (whole, _) = read(serde_json::json!({"format": "text", "unit": "file"}), TEXT);
        assert_eq!(whole, [("first line\nsecond line\n\n\nlast".to_owned(), 1)]);
    }

    #[test]
    fn json_lines_and_bad_bytes_are_rejected_by_line() {
        let content = b"{\"body\": \"kept\"}\n\n{\"other\": 1}\nnot json\n\xff\xfe\n";
        let (docs, rejects) = read(
            serde_json::json!({"format": "jsonl", "field": "body"}),
            content,
        );
        assert_eq!(docs, [("kept".to_owned(), 1)]);
        let lines: Vec<usize> = rejects.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4, 5], "{rejects:?}");
        assert!(
            rejects[0].1.contains("no string field 'body'"),
            "{rejects:?}"
        );
        assert!(rejects[1].1.starts_with("malformed JSON"), "{rejects:?}");
        assert!(rejects[2].1.starts_with("invalid UTF-8"), "{rejects:?}");
    }

    /// A JSON file of records, as `datasets`' json loader reads it: an array, or an object's `data`
    /// (or only) array; a record's place is its number, a file that is not records one whole reject.
    #[test]
    fn json_records_are_read_by_number() {
        let source = serde_json::json!({"format": "json", "field": "body"});
        let records = br#"[{"body": "kept"}, {"other": 1}, "a string", {"body": "also kept"}]"#;
        let wrapped = [&br#"{"version": 2, "data": "#[..], &records[..], b"}"].concat();
        for content in [&records[..], &wrapped] {
            let (docs, rejects) = read(source.clone(), content);
            assert_eq!(
                docs,
                [("kept".to_owned(), 1), ("also kept".to_owned(), 4)],
                "{rejects:?}"
            );
            assert_eq!(
                rejects,
                [
                    (2, "no string field 'body'".to_owned()),
                    (3, "not a JSON object but a string".to_owned())
                ]
            );
        }
        let (docs, rejects) = read(source.clone(), b"{\"body\": \"a\"}\n{\"body\": \"b\"}\n");
        assert!(docs.is_empty());
        assert!(
            rejects[0].0 == 0 && rejects[0].1.contains("format \"jsonl\""),
            "{rejects:?}"
        );
        let (_, rejects) = read(source, br#"{"train": [], "test": []}"#);
        assert!(rejects[0].1.contains("which of the arrays"), "{rejects:?}");
    }

    /// A byte-order mark before a file's text (Windows tools write one) is not text: a JSON Lines
    /// file keeps its first record, a text file's first line does not start with U+FEFF, and the
    /// SQuAD and TMX readers take the file.
    #[test]
    fn a_byte_order_mark_is_not_text() {
        let with_bom = |body: &[u8]| [&b"\xEF\xBB\xBF"[..], body].concat();
        let (lines, _) = read(serde_json::json!({"format": "text"}), &with_bom(TEXT));
        assert_eq!(lines[2], ("first line".to_owned(), 3));
        assert_eq!(lines[0], (String::new(), 1));
        let (whole, _) = read(
            serde_json::json!({"format": "text", "unit": "file"}),
            &with_bom(b"Febr\xc4\x83 \xc8\x99i tuse."),
        );
        assert_eq!(whole, [("Febră și tuse.".to_owned(), 1)]);
        let (docs, rejects) = read(
            serde_json::json!({"format": "jsonl", "field": "body"}),
            &with_bom(b"{\"body\": \"kept\"}\n"),
        );
        assert_eq!((docs, rejects), (vec![("kept".to_owned(), 1)], vec![]));
        let (contexts, rejects) = read(
            serde_json::json!({"format": "squad"}),
            &with_bom(
                br#"{"data": [{"paragraphs": [{"context": "Tusea persist\u0103.", "qas": []}]}]}"#,
            ),
        );
        assert_eq!(contexts.len(), 1, "{rejects:?}");
        assert_eq!(contexts[0].0, "Tusea persistă.");
        let (segments, rejects) = read(
            serde_json::json!({"format": "tmx", "language": "*"}),
            &with_bom(
                br#"<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header srclang="en"/><body>
<tu tuid="1"><tuv xml:lang="en"><seg>dry cough</seg></tuv></tu>
</body></tmx>"#,
            ),
        );
        assert_eq!(segments, [("dry cough".to_owned(), 3)], "{rejects:?}");
    }

    /// A CSV row with a stray comma is rejected with the line it is on, not cut at the comma, and a
    /// cell with line breaks keeps later rows' lines right.
    #[test]
    fn ragged_csv_rows_are_rejected_by_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("notes.csv"),
            "id,text\n1,\"first,\nnote\"\n2,fever, cough\n3,last note\n",
        )
        .unwrap();
        let source: Source = serde_json::from_value(serde_json::json!({
            "name": "t", "path": "notes.csv", "language": "en", "format": "csv",
        }))
        .unwrap();
        let (mut docs, mut rejects) = (Vec::new(), Vec::new());
        source
            .read(
                &dir.path().join("notes.csv"),
                &mut |r: Record| docs.push((r.text, r.line)),
                &mut |r: Reject| rejects.push((r.line, r.reason)),
            )
            .unwrap();
        assert_eq!(
            docs,
            [("first,\nnote".to_owned(), 2), ("last note".to_owned(), 5)]
        );
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(rejects[0].0, 4);
        assert!(
            rejects[0].1.starts_with("3 fields where the header has 2"),
            "{rejects:?}"
        );
    }

    /// A UTF-16 file (Excel's "Unicode Text", PowerShell 5's `>`) is refused whole with its encoding
    /// named: its ASCII lines would otherwise pass as UTF-8 text full of NUL characters.
    #[test]
    fn a_utf16_file_is_refused_whole() {
        let utf16: Vec<u8> = "\u{feff}fever\ncough\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        for format in ["text", "jsonl", "json", "squad"] {
            let (docs, rejects) = read(serde_json::json!({"format": format}), &utf16);
            assert!(docs.is_empty(), "{format}: {docs:?}");
            assert_eq!(rejects.len(), 1, "{format}: {rejects:?}");
            assert_eq!(rejects[0].0, 0, "{format}");
            assert!(rejects[0].1.contains("UTF-16LE"), "{format}: {rejects:?}");
        }
    }
}
