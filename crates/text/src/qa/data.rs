//! SQuAD-format data sets and prediction files, read with errors that name the file and the place.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// A SQuAD-format file: the one schema every reader of such files uses (training examples, scoring,
/// BioASQ golds, data-prep's merge and corpus contexts). Fields a file may lack are optional here; a
/// reader that needs one (training needs `context` and `question`) says so, naming the place.
#[derive(Debug, Deserialize)]
pub struct SquadFile {
    #[serde(default)]
    pub version: Option<Value>,
    pub data: Vec<Article>,
}

#[derive(Debug, Deserialize)]
pub struct Article {
    #[serde(default, deserialize_with = "text_or_number")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub lang: Option<String>,
    pub paragraphs: Vec<Paragraph>,
}

#[derive(Debug, Deserialize)]
pub struct Paragraph {
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub qas: Vec<Qa>,
}

#[derive(Debug, Deserialize)]
pub struct Qa {
    /// PoQuAD has none: `position_id` names such questions by their place in the file.
    #[serde(default, deserialize_with = "id_string")]
    pub id: Option<String>,
    #[serde(default)]
    pub question: Option<String>,
    /// As the file has it; `gold_answers` checks it.
    #[serde(default)]
    pub answers: Option<Value>,
    #[serde(default)]
    pub is_impossible: Option<bool>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub lang: Option<String>,
    /// BioASQ's SQuAD-format files: every golden answer with its synonyms.
    #[serde(default)]
    pub all_golden_answers: Option<Vec<String>>,
}

/// Reads a SQuAD-format file (nested, or flat as `datasets` writes it); errors name the file and, for
/// malformed JSON or a field of the wrong type, the line and column.
pub fn read_squad(path: &Path) -> Result<SquadFile> {
    let text = crate::bom::read_to_string(path)
        .with_context(|| format!("cannot read QA set {}", path.display()))?;
    parse_squad(&text, path)
}

/// [`read_squad`] on text already read from `path`. Takes the nested SQuAD layout and the flat one
/// `datasets` and `run_qa.py` use (`super::flat`).
pub fn parse_squad(text: &str, path: &Path) -> Result<SquadFile> {
    let text = crate::bom::strip(text);
    if let Some(file) = super::flat::parse(text, path)? {
        return Ok(file);
    }
    serde_json::from_str(text)
        .with_context(|| format!("{} is not a SQuAD-format file", path.display()))
}

impl Qa {
    /// The question's id, or its place in the file when it has none.
    pub fn id_at(&self, article: usize, paragraph: usize, question: usize) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| position_id(article, paragraph, question))
    }
}

/// Whether a SQuAD file's `version` says 2.x, where questions may have no answers.
pub fn version_is_v2(version: Option<&Value>) -> bool {
    match version {
        Some(Value::String(v)) => v.trim_start_matches('v').starts_with('2'),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|v| v >= 2.0),
        _ => false,
    }
}

/// Where a question is in its file, for error messages.
pub struct QuestionAt<'a> {
    pub file: &'a Path,
    pub id: &'a str,
    pub article: usize,
    pub paragraph: usize,
}

impl std::fmt::Display for QuestionAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: question '{}' (article {}, paragraph {})",
            self.file.display(),
            self.id,
            self.article,
            self.paragraph
        )
    }
}

/// One gold answer as the file gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldAnswer {
    pub text: String,
    /// Required where answers are placed (training, data-prep); scoring reads only the text.
    pub answer_start: Option<i64>,
}

/// A question's `answers`, checked. A question may have none (missing, null or an empty list) only
/// in a SQuAD 2.0 file or with `"is_impossible": true`: in a v1.1 file a question without answers is
/// an error, never silently a no-answer question. Anything but a list of `{"text": string,
/// "answer_start": integer}` objects is an error naming the question.
pub fn gold_answers(
    raw: Option<&Value>,
    impossible: bool,
    v2_file: bool,
    need_start: bool,
    at: &QuestionAt,
) -> Result<Vec<GoldAnswer>> {
    let list: &[Value] = match raw {
        None | Some(Value::Null) => &[],
        Some(Value::Array(list)) => list,
        Some(other) => bail!(
            "{at}: \"answers\" must be a list of {{\"text\", \"answer_start\"}} objects, got {}",
            kind_of(other)
        ),
    };
    if list.is_empty() && !impossible && !v2_file {
        bail!(
            "{at} has no answers; in a SQuAD v1.1 file every question needs them (only a \"version\": \"v2.0\" \
             file or \"is_impossible\": true allows a question without answers)"
        );
    }
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let Some(text) = a.get("text").and_then(Value::as_str) else {
                bail!("{at}: answer {i} has no \"text\" string: {a}");
            };
            let answer_start = a.get("answer_start").and_then(Value::as_i64);
            if need_start && answer_start.is_none() {
                bail!("{at}: answer {i} has no integer \"answer_start\": {a}");
            }
            Ok(GoldAnswer {
                text: text.to_owned(),
                answer_start,
            })
        })
        .collect()
}

/// What kind of JSON value `v` is, for messages: "a string", "a list" (Python's word, as users of
/// `datasets` say), ….
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One question as scoring needs it.
#[derive(Clone, Debug)]
pub struct Question {
    pub id: String,
    pub golds: Vec<String>,
    pub lang: Option<String>,
}

pub struct Dataset {
    pub questions: Vec<Question>,
    /// SQuAD 2.0 style: a `version` of 2.x, or any unanswerable question.
    pub is_v2: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let text = crate::bom::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    // serde_json's message carries "at line L column C".
    serde_json::from_str(&text).with_context(|| format!("{what} {} is not valid", path.display()))
}

pub fn load_dataset(path: &Path) -> Result<Dataset> {
    let file = read_squad(path)?;
    let version_v2 = version_is_v2(file.version.as_ref());
    let mut questions = Vec::new();
    let mut any_impossible = false;
    let mut seen = std::collections::HashSet::new();
    for (a, article) in file.data.iter().enumerate() {
        for (pi, p) in article.paragraphs.iter().enumerate() {
            for (qi, qa) in p.qas.iter().enumerate() {
                let id = qa.id_at(a, pi, qi);
                if !seen.insert(id.clone()) {
                    bail!(
                        "{}: question id '{id}' occurs twice (article {a})",
                        path.display(),
                    );
                }
                let impossible = qa.is_impossible == Some(true);
                let at = QuestionAt {
                    file: path,
                    id: &id,
                    article: a,
                    paragraph: pi,
                };
                let golds = gold_answers(qa.answers.as_ref(), impossible, version_v2, false, &at)?;
                any_impossible |= golds.is_empty();
                questions.push(Question {
                    id,
                    golds: golds.into_iter().map(|g| g.text).collect(),
                    lang: qa.lang.clone().or_else(|| article.lang.clone()),
                });
            }
        }
    }
    Ok(Dataset {
        questions,
        is_v2: version_v2 || any_impossible,
    })
}

/// `predictions.json`: id → answer text.
pub fn load_predictions(path: &Path) -> Result<HashMap<String, String>> {
    let map: serde_json::Map<String, Value> = read_json(path, "predictions")?;
    map.into_iter()
        .map(|(id, v)| match v {
            Value::String(s) => Ok((id, s)),
            other => bail!(
                "{}: prediction for '{id}' is {other}, not a string",
                path.display()
            ),
        })
        .collect()
}

/// `na_prob.json`: id → probability of no answer, in file order (ties in the threshold search keep it).
pub fn load_na_probs(path: &Path) -> Result<Vec<(String, f64)>> {
    let map: serde_json::Map<String, Value> = read_json(path, "no-answer probabilities")?;
    map.into_iter()
        .map(|(id, v)| match v.as_f64() {
            Some(p) => Ok((id, p)),
            None => bail!(
                "{}: no-answer probability for '{id}' is {v}, not a number",
                path.display()
            ),
        })
        .collect()
}

/// The id of a question that has none: article, paragraph and question index (0-based), as
/// `a3-p0-q2`. The eval crate and the model crate name them alike, so predictions match golds.
pub fn position_id(article: usize, paragraph: usize, question: usize) -> String {
    format!("a{article}-p{paragraph}-q{question}")
}

/// Question ids are strings in SQuAD (the model crate reads them with this too), but some sets (the Romanian COVID QA) number them.
pub fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "question id {other} is neither a string nor a number"
        ))),
    }
}

/// Titles and language tags: a string, a number (some sets number their articles) or null.
pub(crate) fn text_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "{other} where a string was expected"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data set, predictions or no-answer probabilities saved by a Windows tool start with a
    /// byte-order mark; serde_json alone rejects them at line 1 column 1.
    #[test]
    fn files_with_a_byte_order_mark_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, json: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, [b"\xEF\xBB\xBF", json.as_bytes()].concat()).unwrap();
            path
        };
        let nested = write(
            "set.json",
            r#"{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "Febră de luni.",
                "qas": [{"id": "q1", "question": "De când?", "answers": [{"text": "luni", "answer_start": 9}]}]}]}]}"#,
        );
        let flat = write(
            "set.jsonl",
            r#"{"id": "q1", "title": "t", "context": "Febră de luni.", "question": "De când?", "answers": {"text": ["luni"], "answer_start": [9]}}"#,
        );
        for set in [nested, flat] {
            let data = load_dataset(&set).unwrap();
            assert_eq!(data.questions.len(), 1, "{}", set.display());
            assert_eq!(data.questions[0].golds, ["luni"], "{}", set.display());
        }
        let predictions = load_predictions(&write("pred.json", r#"{"q1": "luni"}"#)).unwrap();
        assert_eq!(predictions["q1"], "luni");
        let na = load_na_probs(&write("na.json", r#"{"q1": 0.25}"#)).unwrap();
        assert_eq!(na, [("q1".to_owned(), 0.25)]);
    }
}
