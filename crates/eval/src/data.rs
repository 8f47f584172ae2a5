//! SQuAD-format data sets and prediction files, read with errors that name the file and the place.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct SquadFile {
    #[serde(default)]
    pub version: Option<Value>,
    pub data: Vec<Article>,
}

#[derive(Debug, Deserialize)]
pub struct Article {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    pub paragraphs: Vec<Paragraph>,
}

#[derive(Debug, Deserialize)]
pub struct Paragraph {
    pub qas: Vec<Qa>,
}

#[derive(Debug, Deserialize)]
pub struct Qa {
    /// PoQuAD has none: `position_id` names such questions by their place in the file.
    #[serde(default, deserialize_with = "id_string")]
    pub id: Option<String>,
    #[serde(default)]
    pub answers: Vec<Answer>,
    #[serde(default)]
    pub is_impossible: Option<bool>,
    #[serde(default)]
    pub lang: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Answer {
    pub text: String,
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
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    // serde_json's message carries "at line L column C".
    serde_json::from_str(&text).with_context(|| format!("{what} {} is not valid", path.display()))
}

pub fn load_dataset(path: &Path) -> Result<Dataset> {
    let file: SquadFile = read_json(path, "data set")?;
    let version_v2 = match &file.version {
        Some(Value::String(v)) => v.trim_start_matches('v').starts_with('2'),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|v| v >= 2.0),
        _ => false,
    };
    let mut questions = Vec::new();
    let mut any_impossible = false;
    let mut seen = std::collections::HashSet::new();
    for (a, article) in file.data.iter().enumerate() {
        for (pi, p) in article.paragraphs.iter().enumerate() {
            for (qi, qa) in p.qas.iter().enumerate() {
                let id = qa.id.clone().unwrap_or_else(|| position_id(a, pi, qi));
                if !seen.insert(id.clone()) {
                    bail!(
                        "{}: question id '{id}' occurs twice (article {a})",
                        path.display(),
                    );
                }
                any_impossible |= qa.is_impossible == Some(true) || qa.answers.is_empty();
                questions.push(Question {
                    id,
                    golds: qa.answers.iter().map(|x| x.text.clone()).collect(),
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
