//! The flat layout of `datasets`' SQuAD sets, the one `run_qa.py` reads: one record per question
//! (`id`, `title`, `context`, `question`, `answers: {"text": [...], "answer_start": [...]}`), as
//! `{"data": [records]}` (`run_qa.py --train_file x.json` loads it with `field="data"`), as a JSON list
//! of records, or as JSON Lines (what `Dataset.to_json` writes). A file in that layout is read into the
//! nested SQuAD structure every reader here takes — questions grouped by title, then by context, in the
//! order each first occurs — so training, prediction, scoring and data-prep take the files a
//! `transformers` user already has.
//!
//! As in `run_qa.py`, a record whose `answers` lists no text is a question without an answer (SQuAD
//! 2.0's layout in `datasets`). A record without an `id` is named `r<N>`, N its 0-based place in the file.
//! JSON Lines and lists carry no `version`: scoring takes SQuAD 2.0's rules when a question has no answer
//! (`eval score --version v2` asks for them anyway, as a nested file's "v2.0" would).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::data::{id_string, text_or_number, Article, Paragraph, Qa, SquadFile};

/// Just enough of a file's first value to tell the layouts apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    data: Option<Vec<ProbeItem>>,
    #[serde(default)]
    question: Option<IgnoredAny>,
    #[serde(default)]
    context: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProbeItem {
    #[serde(default)]
    paragraphs: Option<IgnoredAny>,
    #[serde(default)]
    question: Option<IgnoredAny>,
    #[serde(default)]
    context: Option<IgnoredAny>,
}

/// One question of a flat file.
#[derive(Deserialize)]
struct Record {
    #[serde(default, deserialize_with = "id_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    title: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    answers: Option<Value>,
    #[serde(default)]
    is_impossible: Option<bool>,
    #[serde(default, deserialize_with = "text_or_number")]
    lang: Option<String>,
}

#[derive(Deserialize)]
struct FlatFile {
    #[serde(default)]
    version: Option<Value>,
    data: Vec<Record>,
}

/// Where a record is, for error messages.
#[derive(Clone, Copy)]
enum Place {
    /// 1-based line of a JSON Lines file.
    Line(usize),
    /// 0-based place in a list of records.
    Item(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Item(i) => write!(f, "record {i}"),
        }
    }
}

/// `text` (read from `path`) as a SQuAD file when it is in the flat layout; `None` when it is not (the
/// nested layout, or something neither parses, which the nested reader then reports).
pub fn parse(text: &str, path: &Path) -> Result<Option<SquadFile>> {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('[') {
        let records: Vec<Record> = serde_json::from_str(t)
            .with_context(|| format!("{} is not a list of QA records", path.display()))?;
        let places = (0..records.len()).map(Place::Item);
        return build(places.zip(records), None, path).map(Some);
    }
    let Some(Ok(first)) = serde_json::Deserializer::from_str(t)
        .into_iter::<Probe>()
        .next()
    else {
        return Ok(None);
    };
    let is_record = first.question.is_some() || first.context.is_some();
    match first.data {
        None if is_record => json_lines(text, path).map(Some),
        Some(items)
            if !items.is_empty()
                && items.iter().all(|i| i.paragraphs.is_none())
                && items
                    .iter()
                    .any(|i| i.question.is_some() || i.context.is_some()) =>
        {
            let file: FlatFile = serde_json::from_str(t)
                .with_context(|| format!("{} is not a file of QA records", path.display()))?;
            let places = (0..file.data.len()).map(Place::Item);
            build(places.zip(file.data), file.version, path).map(Some)
        }
        _ => Ok(None),
    }
}

fn json_lines(text: &str, path: &Path) -> Result<SquadFile> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line)
            .with_context(|| format!("{}: line {} is not a QA record", path.display(), i + 1))?;
        records.push((Place::Line(i + 1), record));
    }
    build(records, None, path)
}

/// Groups the records into articles (by title) and paragraphs (by context), each in the order it first
/// occurs; checks what every reader needs of a record, naming its place.
fn build(
    records: impl IntoIterator<Item = (Place, Record)>,
    version: Option<Value>,
    path: &Path,
) -> Result<SquadFile> {
    let mut data: Vec<Article> = Vec::new();
    let mut articles: HashMap<Option<String>, usize> = HashMap::new();
    let mut paragraphs: HashMap<(usize, String), usize> = HashMap::new();
    for (n, (place, r)) in records.into_iter().enumerate() {
        // Built only for an error message.
        let id = r.id.clone();
        let at = move || {
            let id = id
                .as_ref()
                .map_or(String::new(), |id| format!(" (id '{id}')"));
            format!("{}: {place}{id}", path.display())
        };
        let Some(context) = r.context else {
            bail!("{} has no \"context\" string", at());
        };
        if r.question.is_none() {
            bail!("{} has no \"question\" string", at());
        }
        let answers = answer_list(r.answers, &at)?;
        let impossible = r.is_impossible.or(answers.is_empty().then_some(true));
        let a = *articles.entry(r.title.clone()).or_insert_with(|| {
            data.push(Article {
                title: r.title.clone(),
                lang: None,
                paragraphs: Vec::new(),
            });
            data.len() - 1
        });
        let paragraphs_here = &mut data[a].paragraphs;
        let p = *paragraphs.entry((a, context.clone())).or_insert_with(|| {
            paragraphs_here.push(Paragraph {
                context: Some(context),
                qas: Vec::new(),
            });
            paragraphs_here.len() - 1
        });
        paragraphs_here[p].qas.push(Qa {
            id: Some(r.id.unwrap_or_else(|| format!("r{n}"))),
            question: r.question,
            answers: Some(Value::Array(answers)),
            is_impossible: impossible,
            lang: r.lang,
            all_golden_answers: None,
        });
    }
    Ok(SquadFile { version, data })
}

/// A record's answers as SQuAD's list of `{"text", "answer_start"}` objects: from `datasets`' columns
/// (`{"text": [...], "answer_start": [...]}`, of one length) or already as that list.
fn answer_list(raw: Option<Value>, at: &dyn Fn() -> String) -> Result<Vec<Value>> {
    let columns = match raw {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => return Ok(list),
        Some(Value::Object(columns)) => columns,
        Some(other) => bail!(
            "{}: \"answers\" must be {{\"text\": [...], \"answer_start\": [...]}}, got {other}",
            at()
        ),
    };
    let column = |name: &str| -> Result<Option<Vec<Value>>> {
        match columns.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(values)) => Ok(Some(values.clone())),
            Some(other) => bail!(
                "{}: \"answers\".\"{name}\" must be a list, got {other}",
                at()
            ),
        }
    };
    let texts = column("text")?.unwrap_or_default();
    let starts = column("answer_start")?;
    if let Some(starts) = &starts {
        if starts.len() != texts.len() {
            bail!(
                "{}: \"answers\" has {} text(s) but {} answer_start value(s)",
                at(),
                texts.len(),
                starts.len()
            );
        }
    }
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let mut answer = Map::new();
            answer.insert("text".to_owned(), text);
            if let Some(starts) = &starts {
                answer.insert("answer_start".to_owned(), starts[i].clone());
            }
            Value::Object(answer)
        })
        .collect())
}

/// A nested SQuAD set (as JSON) in the flat layout: one record per question, in file order, with
/// `id`, `title`, `context`, `question` and `answers` as `datasets`' columns (`{"text": [...],
/// "answer_start": [...]}`; none for a question without an answer), then the question's other fields
/// (`lang`, `source`, …) but `is_impossible`, which empty answers say. A set without SQuAD's lists, or a
/// question that is not an object, is an error naming its place.
pub fn records(squad: &Value) -> Result<Vec<Value>> {
    fn list<'v>(v: &'v Value, key: &str, at: impl Fn() -> String) -> Result<&'v Vec<Value>> {
        match v.get(key).and_then(Value::as_array) {
            Some(items) => Ok(items),
            None => bail!("{} has no \"{key}\" list", at()),
        }
    }
    let mut out = Vec::new();
    for (ai, article) in list(squad, "data", || "the QA set".to_owned())?
        .iter()
        .enumerate()
    {
        let title = article.get("title").cloned().unwrap_or(Value::Null);
        for (pi, p) in list(article, "paragraphs", || format!("article {ai}"))?
            .iter()
            .enumerate()
        {
            let context = p.get("context").cloned().unwrap_or(Value::Null);
            let qas = list(p, "qas", || format!("article {ai}, paragraph {pi}"))?;
            for (qi, qa) in qas.iter().enumerate() {
                let Value::Object(fields) = qa else {
                    bail!("article {ai}, paragraph {pi}: question {qi} is not an object: {qa}");
                };
                let no_answers = Vec::new();
                let answers = fields
                    .get("answers")
                    .and_then(Value::as_array)
                    .unwrap_or(&no_answers);
                let column = |key: &str| -> Value {
                    Value::Array(
                        answers
                            .iter()
                            .map(|a| a.get(key).cloned().unwrap_or(Value::Null))
                            .collect(),
                    )
                };
                let field = |key: &str| fields.get(key).cloned().unwrap_or(Value::Null);
                let mut record = Map::new();
                record.insert("id".into(), field("id"));
                record.insert("title".into(), title.clone());
                record.insert("context".into(), context.clone());
                record.insert("question".into(), field("question"));
                let mut columns = Map::new();
                columns.insert("text".into(), column("text"));
                columns.insert("answer_start".into(), column("answer_start"));
                record.insert("answers".into(), Value::Object(columns));
                for (key, value) in fields {
                    if !record.contains_key(key) && key != "is_impossible" {
                        record.insert(key.clone(), value.clone());
                    }
                }
                out.push(Value::Object(record));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::{data, squad};

    /// Two articles, three contexts, one question without an answer, one without an id, one with two
    /// answers: nested as SQuAD 2.0 has it.
    const NESTED: &str = r#"{"version": "v2.0", "data": [
      {"title": "A", "paragraphs": [
        {"context": "Aspirin thins blood.", "qas": [
          {"id": "q1", "question": "What thins blood?", "answers": [{"text": "Aspirin", "answer_start": 0}]},
          {"id": "q2", "question": "What does it do?", "answers": [{"text": "thins blood", "answer_start": 8},
                                                               {"text": "thins", "answer_start": 8}]}]},
        {"context": "Fever is common.", "qas": [
          {"id": "q3", "question": "What is rare?", "answers": [], "is_impossible": true}]}]},
      {"title": "B", "paragraphs": [
        {"context": "Stroke needs care.", "qas": [
          {"id": "r2", "question": "What needs care?", "answers": [{"text": "Stroke", "answer_start": 0}]}]}]}]}"#;

    /// The same questions as `datasets` lays them out (q3 after B's question: grouping is by context).
    const RECORDS: [&str; 4] = [
        r#"{"id": "q1", "title": "A", "context": "Aspirin thins blood.", "question": "What thins blood?", "answers": {"text": ["Aspirin"], "answer_start": [0]}}"#,
        r#"{"id": "q2", "title": "A", "context": "Aspirin thins blood.", "question": "What does it do?", "answers": {"text": ["thins blood", "thins"], "answer_start": [8, 8]}}"#,
        r#"{"title": "B", "context": "Stroke needs care.", "question": "What needs care?", "answers": {"text": ["Stroke"], "answer_start": [0]}}"#,
        r#"{"id": "q3", "title": "A", "context": "Fever is common.", "question": "What is rare?", "answers": {"text": [], "answer_start": []}}"#,
    ];

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn layouts(dir: &Path) -> Vec<std::path::PathBuf> {
        vec![
            write(dir, "lines.jsonl", &(RECORDS.join("\n") + "\n\n")),
            write(dir, "list.json", &format!("[{}]", RECORDS.join(",\n"))),
            write(
                dir,
                "run_qa.json",
                &format!(r#"{{"version": "x", "data": [{}]}}"#, RECORDS.join(",")),
            ),
        ]
    }

    #[test]
    fn every_flat_layout_reads_as_the_nested_file() {
        let dir = tempfile::tempdir().unwrap();
        let nested = write(dir.path(), "nested.json", NESTED);
        let mut want = squad::load(&nested, None).unwrap();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        let want_scoring = data::load_dataset(&nested).unwrap();
        for path in layouts(dir.path()) {
            let mut got = squad::load(&path, None).unwrap();
            got.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(got, want, "{}", path.display());
            let scoring = data::load_dataset(&path).unwrap();
            assert!(scoring.is_v2, "{}", path.display());
            let ids = |d: &data::Dataset| {
                let mut v: Vec<(String, Vec<String>)> = d
                    .questions
                    .iter()
                    .map(|q| (q.id.clone(), q.golds.clone()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(ids(&scoring), ids(&want_scoring), "{}", path.display());
        }
    }

    #[test]
    fn nested_sets_written_as_records_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let nested: Value = serde_json::from_str(NESTED).unwrap();
        let records = records(&nested).unwrap();
        assert_eq!(records.len(), 4);
        let broken = serde_json::json!({"data": [{"paragraphs": [{"context": "c", "qas": [1]}]}]});
        let err = super::records(&broken).unwrap_err().to_string();
        assert!(
            err.contains("paragraph 0: question 0 is not an object"),
            "{err}"
        );
        assert_eq!(
            records[1]["answers"],
            serde_json::json!({"text": ["thins blood", "thins"], "answer_start": [8, 8]})
        );
        assert!(records[2].get("is_impossible").is_none());
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        let path = write(dir.path(), "records.jsonl", &lines.join("\n"));
        let want = squad::load(&write(dir.path(), "nested.json", NESTED), None).unwrap();
        assert_eq!(squad::load(&path, None).unwrap(), want);
    }

    #[test]
    fn records_group_by_title_then_context_in_first_seen_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "lines.jsonl", &RECORDS.join("\n"));
        let file = data::read_squad(&path).unwrap();
        let shape: Vec<(Option<String>, Vec<usize>)> = file
            .data
            .iter()
            .map(|a| {
                let sizes = a.paragraphs.iter().map(|p| p.qas.len()).collect();
                (a.title.clone(), sizes)
            })
            .collect();
        assert_eq!(
            shape,
            vec![(Some("A".into()), vec![2, 1]), (Some("B".into()), vec![1])]
        );
        assert_eq!(file.data[1].paragraphs[0].qas[0].id.as_deref(), Some("r2"));
        assert_eq!(file.data[0].paragraphs[1].qas[0].is_impossible, Some(true));
    }

    #[test]
    fn the_nested_layout_is_left_to_the_nested_reader() {
        let dir = tempfile::tempdir().unwrap();
        let nested = write(dir.path(), "nested.json", NESTED);
        assert!(parse(NESTED, &nested).unwrap().is_none());
        // A nested file with an error is reported by the nested reader, not taken for records.
        let broken = NESTED.replace("\"paragraphs\"", "\"paragraph\"");
        let err = data::parse_squad(&broken, &nested).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a SQuAD-format file"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_records_are_named_by_line_or_place() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "uneven.jsonl",
                format!("{}\n{}", RECORDS[0], RECORDS[1].replace("[8, 8]", "[8]")),
                "line 2 (id 'q2'): \"answers\" has 2 text(s) but 1 answer_start value(s)",
            ),
            (
                "broken.jsonl",
                format!("{}\n\n{{\"id\": \"x\", \"question\": ", RECORDS[0]),
                "line 3 is not a QA record",
            ),
            (
                "no-context.json",
                format!(
                    "[{}, {}]",
                    RECORDS[0],
                    r#"{"id": "z", "question": "Where?", "answers": {"text": ["a"], "answer_start": [0]}}"#
                ),
                "record 1 (id 'z') has no \"context\" string",
            ),
            (
                "answers-text.json",
                format!(
                    r#"{{"data": [{}]}}"#,
                    RECORDS[0].replace(
                        r#"{"text": ["Aspirin"], "answer_start": [0]}"#,
                        r#""Aspirin""#
                    )
                ),
                "record 0 (id 'q1'): \"answers\" must be",
            ),
        ];
        for (name, text, want) in cases {
            let path = write(dir.path(), name, &text);
            let err = data::read_squad(&path).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(want), "{name}: {msg}");
        }
    }
}
