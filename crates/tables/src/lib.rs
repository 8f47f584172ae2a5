//! Tables in and out through polars: the formats users hand us (CSV, TSV, Parquet) and the ones we
//! write (Parquet, CSV, TSV, JSONL), chosen by file extension, plus Markdown for reports.
//!
//! Writers fill any `Write`, so that callers put them behind their atomic file writer.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
pub use polars;
use polars::prelude::{
    AnyValue, Column, CsvParseOptions, CsvReadOptions, CsvWriter, DataFrame, JsonFormat,
    JsonReader, JsonWriter, ParquetReader, ParquetWriter, PlSmallStr, SerReader, SerWriter,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    Parquet,
    Csv,
    Tsv,
    Jsonl,
}

impl TableFormat {
    /// The format a file name asks for: `.parquet`, `.csv`, `.tsv`, `.jsonl` (or `.ndjson`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "parquet" | "pq" => Self::Parquet,
            "csv" => Self::Csv,
            "tsv" | "tab" => Self::Tsv,
            "jsonl" | "ndjson" => Self::Jsonl,
            _ => bail!(
                "{}: unknown table format '.{ext}' (use .parquet, .csv, .tsv or .jsonl)",
                path.display()
            ),
        })
    }
}

/// Writes `df` in `format` to `w`.
pub fn write(df: &mut DataFrame, format: TableFormat, w: &mut dyn Write) -> std::io::Result<()> {
    let result = match format {
        TableFormat::Parquet => ParquetWriter::new(w).finish(df).map(|_| ()),
        TableFormat::Csv => CsvWriter::new(w).include_header(true).finish(df),
        TableFormat::Tsv => CsvWriter::new(w)
            .include_header(true)
            .with_separator(b'\t')
            .finish(df),
        TableFormat::Jsonl => JsonWriter::new(w)
            .with_json_format(JsonFormat::JsonLines)
            .finish(df),
    };
    result.map_err(std::io::Error::other)
}

/// The field separator of a CSV or TSV file: a tab for TSV; for CSV a comma, or a semicolon when the
/// header row has semicolons and no comma. Excel writes "CSV" with semicolons wherever the decimal
/// separator is a comma (Bulgarian, Czech, Greek, Polish, Romanian, Spanish, … locales); read with
/// commas, such a file is one column named `id;text;lang`.
fn separator(path: &Path, format: TableFormat) -> u8 {
    if format == TableFormat::Tsv {
        return b'\t';
    }
    let mut header = Vec::new();
    // An unreadable file is left to the reader, whose error names it.
    if let Ok(file) = File::open(path) {
        let mut start = std::io::BufReader::new(std::io::Read::take(file, 1 << 16));
        let _ = std::io::BufRead::read_until(&mut start, b'\n', &mut header);
    }
    if header.contains(&b';') && !header.contains(&b',') {
        b';'
    } else {
        b','
    }
}

/// How CSV and TSV are read: a header row, every column as text (an id column of digits must not
/// turn into numbers), fields separated as [`separator`] finds.
fn csv_options(path: &Path, format: TableFormat) -> CsvReadOptions {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_parse_options(CsvParseOptions::default().with_separator(separator(path, format)))
}

/// Reads a whole table (Parquet, CSV or TSV; CSV/TSV with a header row, every column as text).
pub fn read(path: &Path) -> Result<DataFrame> {
    read_columns(path, None)
}

/// A text table in UTF-16 or UTF-32 (Excel's "Unicode Text") is an error naming its encoding: polars
/// would read its header as NUL-riddled column names and then report a column missing.
fn check_encoding(path: &Path, format: TableFormat) -> Result<()> {
    if format == TableFormat::Parquet {
        return Ok(());
    }
    let mut start = Vec::with_capacity(4);
    // An unreadable file is left to the reader, whose error names it.
    if let Ok(file) = File::open(path) {
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(file, 4), &mut start);
    }
    match fsutil::bom::not_utf8_reason(&start) {
        Some(reason) => bail!("cannot read the table {}: {reason}", path.display()),
        None => Ok(()),
    }
}

fn read_columns(path: &Path, columns: Option<&[&str]>) -> Result<DataFrame> {
    let format = TableFormat::from_path(path)?;
    check_encoding(path, format)?;
    let df = match format {
        TableFormat::Parquet => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            ParquetReader::new(file)
                .with_columns(columns.map(|c| c.iter().map(|s| s.to_string()).collect()))
                .finish()
        }
        TableFormat::Csv | TableFormat::Tsv => csv_options(path, format)
            .with_columns(
                columns.map(|c| c.iter().map(|s| PlSmallStr::from(*s)).collect::<Arc<[_]>>()),
            )
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish()),
        TableFormat::Jsonl => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            JsonReader::new(file)
                .with_json_format(JsonFormat::JsonLines)
                .finish()
        }
    };
    df.map_err(|e| match not_utf8(path, format) {
        Some(reason) => anyhow::anyhow!(reason),
        None => e.into(),
    })
    .with_context(|| format!("cannot read the table {}", path.display()))
}

/// Where a text table that failed to read stops being UTF-8, and what to do (`fsutil::bom::not_utf8_at`),
/// which polars' error does not say.
fn not_utf8(path: &Path, format: TableFormat) -> Option<String> {
    if format == TableFormat::Parquet {
        return None;
    }
    fsutil::bom::not_utf8_at(&std::fs::read(path).ok()?)
}

/// A table file's rows as JSON Lines, one object per row, nested columns (lists, structs) as JSON arrays
/// and objects: how `datasets`' Parquet files (the Hugging Face Hub's own layout for a data set) reach
/// readers of JSON records.
pub fn read_as_json_lines(path: &Path) -> Result<String> {
    let mut df = read(path)?;
    let mut out = Vec::new();
    write(&mut df, TableFormat::Jsonl, &mut out)
        .with_context(|| format!("cannot turn the rows of {} into JSON", path.display()))?;
    String::from_utf8(out).with_context(|| format!("{}: rows are not UTF-8", path.display()))
}

/// The column names of a table file, read from its header (CSV/TSV) or schema (Parquet) alone.
pub fn columns_of(path: &Path) -> Result<Vec<String>> {
    let format = TableFormat::from_path(path)?;
    check_encoding(path, format)?;
    let names = match format {
        TableFormat::Parquet => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            ParquetReader::new(file)
                .schema()
                .with_context(|| format!("cannot read the schema of {}", path.display()))?
                .iter_names()
                .map(|n| n.to_string())
                .collect()
        }
        // The header row alone, read by the csv crate: polars 0.55 fails a zero-row read (and a whole
        // read) of some files whose later rows are ragged, which only the columns read need not be.
        TableFormat::Csv | TableFormat::Tsv => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(separator(path, format))
                .from_path(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            reader
                .headers()
                .with_context(|| format!("cannot read the header of {}", path.display()))?
                .iter()
                .map(str::to_owned)
                .collect()
        }
        // JSON lines have no header: the keys are those of the rows.
        TableFormat::Jsonl => column_names(&read(path)?),
    };
    Ok(names)
}

/// The names of a table's columns, for error messages.
fn column_names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// One text column of a table, row by row (`None` where the cell is empty or null), with an optional
/// second column read alongside (a per-row language, say). Only these columns are read.
pub fn read_text_column(
    path: &Path,
    column: &str,
    also: Option<&str>,
) -> Result<Vec<(Option<String>, Option<String>)>> {
    let wanted: Vec<&str> = std::iter::once(column).chain(also).collect();
    let mut cols = read_text_columns(path, &wanted)?.into_iter();
    let text = cols.next().unwrap_or_default();
    let second = cols.next().unwrap_or_else(|| vec![None; text.len()]);
    Ok(text.into_iter().zip(second).collect())
}

/// Several text columns of a table, column by column, each as [`read_text_column`] reads one; a
/// missing column is named with the ones the file has, and a CSV/TSV row whose fields do not match
/// the header is an error naming its line ([`read_text_rows`] gives such rows to the caller instead).
pub fn read_text_columns(path: &Path, columns: &[&str]) -> Result<Vec<Vec<Option<String>>>> {
    let rows = read_text_rows(path, columns)?;
    if let Some((line, reason)) = rows.bad.first() {
        bail!(
            "{}: line {line}: {reason} ({} such row(s))",
            path.display(),
            rows.bad.len()
        );
    }
    Ok(rows.columns)
}

/// A table's text columns, row by row, with each row's place in the file and the rows left out.
#[derive(Debug, Default)]
pub struct TextRows {
    /// One list per column asked for; `None` where the cell is empty, white space or null.
    pub columns: Vec<Vec<Option<String>>>,
    /// Each row's place: in CSV/TSV the line it starts on (the header is line 1; a quoted cell may hold
    /// line breaks, so row N is not always line N + 1), in Parquet and JSON Lines its number from 1.
    pub places: Vec<usize>,
    /// CSV/TSV rows left out, with their line and why: a row with more or fewer fields than the header
    /// (most often a cell holding the separator without quotes), which a columnar read would cut or
    /// shift in silence.
    pub bad: Vec<(usize, String)>,
}

/// [`read_text_columns`] with each row's place, and ragged CSV/TSV rows returned rather than refused.
/// CSV and TSV are read by the csv crate, record by record, which knows where each record starts;
/// Parquet and JSON Lines through polars.
pub fn read_text_rows(path: &Path, columns: &[&str]) -> Result<TextRows> {
    let format = TableFormat::from_path(path)?;
    check_encoding(path, format)?;
    if matches!(format, TableFormat::Csv | TableFormat::Tsv) {
        return read_delimited_rows(path, format, columns);
    }
    let df = match read_columns(path, Some(columns)) {
        Ok(df) => df,
        Err(e) => {
            // The header alone (a whole read may fail where these columns would not).
            let Ok(names) = columns_of(path) else {
                return Err(e);
            };
            let Some(missing) = columns.iter().find(|w| !names.iter().any(|n| n == *w)) else {
                return Err(e);
            };
            bail!(
                "{}: no column '{missing}' (columns: {})",
                path.display(),
                names.join(", ")
            );
        }
    };
    let columns: Vec<Vec<Option<String>>> = columns
        .iter()
        .map(|c| strings(&df, c, path))
        .collect::<Result<_>>()?;
    Ok(TextRows {
        places: (1..=df.height()).collect(),
        columns,
        bad: Vec::new(),
    })
}

fn read_delimited_rows(path: &Path, format: TableFormat, columns: &[&str]) -> Result<TextRows> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(path, format))
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header = reader
        .headers()
        .map_err(|e| csv_error(path, &bytes, e))?
        .clone();
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| {
            header.iter().position(|h| h == *c).with_context(|| {
                let names: Vec<&str> = header.iter().collect();
                format!(
                    "{}: no column '{c}' (columns: {})",
                    path.display(),
                    names.join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut rows = TextRows {
        columns: vec![Vec::new(); columns.len()],
        ..Default::default()
    };
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, &bytes, e))?;
        // The csv crate's position is where it began reading, before any blank lines it passed over.
        let line = record.position().map_or(0, |p| {
            let blank = bytes[p.byte() as usize..]
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .filter(|&&b| b == b'\n')
                .count();
            p.line() as usize + blank
        });
        if record.len() != header.len() {
            rows.bad.push((
                line,
                format!(
                    "{} fields where the header has {} (a cell holding the separator without quotes?)",
                    record.len(),
                    header.len()
                ),
            ));
            continue;
        }
        for (values, &i) in rows.columns.iter_mut().zip(&indices) {
            values.push(
                Some(&record[i])
                    .filter(|t| !t.trim().is_empty())
                    .map(str::to_owned),
            );
        }
        rows.places.push(line);
    }
    Ok(rows)
}

/// A CSV reading error of `bytes` (the file at `path`), with the line and byte where they stop being
/// UTF-8 when that is why.
fn csv_error(path: &Path, bytes: &[u8], e: csv::Error) -> anyhow::Error {
    if let (csv::ErrorKind::Utf8 { .. }, Some(reason)) = (e.kind(), fsutil::bom::not_utf8_at(bytes))
    {
        return anyhow::anyhow!("cannot read the table {}: {reason}", path.display());
    }
    anyhow::Error::new(e).context(format!("cannot read the table {}", path.display()))
}

fn strings(df: &DataFrame, column: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let col = df
        .column(column)
        .with_context(|| format!("{}: no column '{column}'", path.display()))?;
    let s = col.as_materialized_series();
    let ca = s.str().map_err(|_| {
        anyhow::anyhow!(
            "{}: column '{column}' holds {}, not text",
            path.display(),
            s.dtype()
        )
    })?;
    Ok(ca
        .iter()
        .map(|v| v.filter(|t| !t.trim().is_empty()).map(str::to_owned))
        .collect())
}

/// A column of text.
pub fn text_column(name: &str, values: Vec<String>) -> Column {
    Column::new(name.into(), values)
}

/// A DataFrame from columns of equal length.
pub fn frame(columns: Vec<Column>) -> Result<DataFrame> {
    DataFrame::new_infer_height(columns).context("building a table")
}

/// A GitHub-flavoured Markdown table; floats with `decimals` places.
pub fn markdown(df: &DataFrame, decimals: usize) -> String {
    let names = column_names(df);
    let mut out = format!("| {} |\n", names.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        df.columns()
            .iter()
            .map(|c| if c.dtype().is_primitive_numeric() {
                "---:|"
            } else {
                "---|"
            })
            .collect::<String>()
    ));
    for row in 0..df.height() {
        let cells: Vec<String> = df
            .columns()
            .iter()
            .map(|c| match c.get(row) {
                Ok(AnyValue::Null) | Err(_) => String::new(),
                Ok(AnyValue::String(s)) => s.replace('|', "\\|"),
                Ok(AnyValue::StringOwned(s)) => s.replace('|', "\\|"),
                Ok(AnyValue::Float64(f)) => format!("{f:.decimals$}"),
                Ok(AnyValue::Float32(f)) => format!("{f:.decimals$}"),
                Ok(v) => v.to_string(),
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DataFrame {
        frame(vec![
            text_column("lang", vec!["en".into(), "ro".into()]),
            Column::new("f1".into(), vec![71.25_f64, 40.0]),
            Column::new("count".into(), vec![3_u64, 4]),
        ])
        .unwrap()
    }

    #[test]
    fn every_format_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["t.parquet", "t.csv", "t.tsv", "t.jsonl"] {
            let path = dir.path().join(name);
            let format = TableFormat::from_path(&path).unwrap();
            let mut f = File::create(&path).unwrap();
            write(&mut sample(), format, &mut f).unwrap();
            drop(f);
            let back = read(&path).unwrap();
            assert_eq!(back.height(), 2, "{name}");
            assert_eq!(column_names(&back), ["lang", "f1", "count"], "{name}");
            let langs = read_text_column(&path, "lang", None).unwrap();
            assert_eq!(langs[1].0.as_deref(), Some("ro"), "{name}");
        }
        assert!(TableFormat::from_path(Path::new("x.xlsx")).is_err());
    }

    /// Excel's "CSV UTF-8" and other Windows exports start with a byte-order mark, which must not
    /// become part of the first column's name (that column would then not be found).
    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("t.csv", "id,text\r\nn1,Febră\r\n"),
            ("t.tsv", "id\ttext\nn1\tFebră\n"),
            ("t.jsonl", "{\"id\":\"n1\",\"text\":\"Febră\"}\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, [b"\xEF\xBB\xBF", body.as_bytes()].concat()).unwrap();
            assert_eq!(columns_of(&path).unwrap(), ["id", "text"], "{name}");
            let ids = read_text_column(&path, "id", None).unwrap();
            assert_eq!(ids[0].0.as_deref(), Some("n1"), "{name}");
            assert_eq!(read(&path).unwrap().height(), 1, "{name}");
            // Saved as UTF-16 instead ("Unicode Text"), it is refused with its encoding named.
            let utf16: Vec<u8> = format!("\u{feff}{body}")
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            std::fs::write(&path, utf16).unwrap();
            for err in [
                columns_of(&path).unwrap_err(),
                read_text_column(&path, "id", None).unwrap_err(),
            ] {
                let err = format!("{err:#}");
                assert!(err.contains("UTF-16LE") && err.contains(name), "{err}");
            }
        }
    }

    #[test]
    fn missing_and_non_text_columns_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write(
            &mut sample(),
            TableFormat::Parquet,
            &mut File::create(&path).unwrap(),
        )
        .unwrap();
        let e = read_text_column(&path, "text", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no column 'text'") && e.contains("lang, f1, count"),
            "{e}"
        );
        let e = read_text_column(&path, "f1", None).unwrap_err().to_string();
        assert!(e.contains("not text"), "{e}");
    }

    /// A row with a stray separator is left out with its line (a columnar read cut its text in silence),
    /// and a quoted cell with line breaks keeps the next rows' lines right.
    #[test]
    fn ragged_rows_are_given_back_with_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "id,text\nn1,\"Fever,\nthen cough.\"\nn2,Fever, cough and pain.\n\nn3,\nn4\nn5,Ok.\n",
        )
        .unwrap();
        let rows = read_text_rows(&path, &["text", "id"]).unwrap();
        assert_eq!(
            rows.columns[0],
            [
                Some("Fever,\nthen cough.".to_owned()),
                None,
                Some("Ok.".into())
            ]
        );
        assert_eq!(
            rows.columns[1],
            [Some("n1".to_owned()), Some("n3".into()), Some("n5".into())]
        );
        assert_eq!(rows.places, [2, 6, 8]);
        let bad: Vec<usize> = rows.bad.iter().map(|(line, _)| *line).collect();
        assert_eq!(bad, [4, 7], "{:?}", rows.bad);
        assert!(rows.bad[0].1.starts_with("3 fields where the header has 2"));
        // Callers that take whole columns get an error naming the first such line.
        let err = read_text_column(&path, "text", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 4: 3 fields") && err.contains("2 such row(s)"),
            "{err}"
        );
        // Parquet rows are numbered from 1.
        let parquet = dir.path().join("t.parquet");
        write(
            &mut sample(),
            TableFormat::Parquet,
            &mut File::create(&parquet).unwrap(),
        )
        .unwrap();
        let rows = read_text_rows(&parquet, &["lang"]).unwrap();
        assert_eq!((rows.places, rows.bad.len()), (vec![1, 2], 0));
    }

    /// A table in a Windows code page fails with its line and the way out, not polars' bare error.
    #[test]
    fn a_table_in_another_encoding_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["t.csv", "t.tsv"] {
            let path = dir.path().join(name);
            // "gorączką" in Windows-1250: ą is 0xB9.
            let sep = if name == "t.csv" { b',' } else { b'\t' };
            let body = [
                &b"id"[..],
                &[sep],
                b"text\nn1",
                &[sep],
                b"fever\nn2",
                &[sep],
                b"gor\xb9cz\xb9\n",
            ]
            .concat();
            std::fs::write(&path, body).unwrap();
            let err = format!("{:#}", read_text_column(&path, "text", None).unwrap_err());
            assert!(
                err.contains("not UTF-8 at line 3 (byte 23)") && err.contains("iconv"),
                "{name}: {err}"
            );
        }
    }

    /// Excel in Bulgarian, Czech, Greek, Polish, Romanian or Spanish saves "CSV" with semicolons; a
    /// header with commas, or with neither, keeps the comma.
    #[test]
    fn semicolon_csv_as_excel_writes_it_in_comma_decimal_locales() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        for (body, columns, text) in [
            (
                "id;text;lang\r\nn1;\"Febră; tuse, 38,5 °C\";ro\r\n",
                &["id", "text", "lang"][..],
                "Febră; tuse, 38,5 °C",
            ),
            (
                "id,text\nn1,\"fever; cough\"\n",
                &["id", "text"],
                "fever; cough",
            ),
            ("text\nfever; cough\n", &["text"], "fever; cough"),
        ] {
            std::fs::write(&path, body).unwrap();
            assert_eq!(columns_of(&path).unwrap(), columns, "{body}");
            let texts = read_text_column(&path, "text", None).unwrap();
            assert_eq!(texts[0].0.as_deref(), Some(text), "{body}");
            assert_eq!(read(&path).unwrap().width(), columns.len(), "{body}");
        }
    }

    #[test]
    fn csv_cells_stay_text_and_blanks_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "id,text,lang\n007,first note,en\n008,,ro\n009,\"a, b\",bg\n",
        )
        .unwrap();
        let rows = read_text_column(&path, "text", Some("lang")).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], (Some("first note".into()), Some("en".into())));
        assert_eq!(rows[1].0, None);
        assert_eq!(rows[2].0.as_deref(), Some("a, b"));
        let ids = read_text_column(&path, "id", None).unwrap();
        assert_eq!(ids[0].0.as_deref(), Some("007"));
    }

    #[test]
    fn markdown_aligns_numbers_and_formats_floats() {
        let md = markdown(&sample(), 2);
        assert_eq!(
            md,
            "| lang | f1 | count |\n|---|---:|---:|\n| en | 71.25 | 3 |\n| ro | 40.00 | 4 |\n"
        );
    }
}
