//! SQuAD-format QA examples (v1.1, v2.0, BioASQ as BioBERT ships it), tolerant of extra fields.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerSpan {
    pub text: String,
    /// Character offset of the answer in the context.
    pub answer_start: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QaExample {
    pub id: String,
    pub question: String,
    pub context: String,
    /// Empty for an unanswerable question.
    pub answers: Vec<AnswerSpan>,
    pub lang: Option<String>,
}

#[derive(Deserialize)]
struct File {
    data: Vec<Article>,
}
#[derive(Deserialize)]
struct Article {
    #[serde(default)]
    lang: Option<String>,
    paragraphs: Vec<Paragraph>,
}
#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}
#[derive(Deserialize)]
struct Qa {
    #[serde(deserialize_with = "id_string")]
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<AnswerSpan>,
    #[serde(default)]
    is_impossible: Option<bool>,
    #[serde(default)]
    lang: Option<String>,
}

/// Reads every question of a SQuAD-format file; `lang` (if given) overrides the file's tags.
pub fn load(path: &Path, lang: Option<&str>) -> Result<Vec<QaExample>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read QA set {}", path.display()))?;
    let file: File = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a SQuAD-format file", path.display()))?;
    let mut out = Vec::new();
    for article in file.data {
        for p in article.paragraphs {
            for qa in p.qas {
                let answers = if qa.is_impossible == Some(true) {
                    Vec::new()
                } else {
                    qa.answers
                };
                out.push(QaExample {
                    id: qa.id,
                    question: qa.question,
                    context: p.context.clone(),
                    answers,
                    lang: lang
                        .map(str::to_owned)
                        .or(qa.lang)
                        .or_else(|| article.lang.clone()),
                });
            }
        }
    }
    Ok(out)
}

/// Question ids are strings in SQuAD, but some sets (the Romanian COVID QA) number them.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "question id {other} is neither a string nor a number"
        ))),
    }
}
