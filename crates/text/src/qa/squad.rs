//! SQuAD-format QA examples (v1.1, v2.0, BioASQ as BioBERT ships it), tolerant of extra fields.

use std::path::Path;

use anyhow::{bail, Result};
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
    /// Answers whose position in the context is known (empty for an unanswerable question, and for
    /// one whose answers are all in `unlocated`).
    pub answers: Vec<AnswerSpan>,
    /// Gold answer texts that do not occur in the context (machine-translated sets mark them with
    /// `answer_start: -1`): they count for scoring, but cannot label training windows.
    pub unlocated: Vec<String>,
    pub lang: Option<String>,
}

impl QaExample {
    /// Every gold answer text, located or not, for scoring.
    pub fn gold_texts(&self) -> Vec<String> {
        self.answers
            .iter()
            .map(|a| a.text.clone())
            .chain(self.unlocated.iter().cloned())
            .collect()
    }

    /// Answerable, but no answer has a known position: unusable for training.
    pub fn lacks_positions(&self) -> bool {
        self.answers.is_empty() && !self.unlocated.is_empty()
    }
}

/// What loading did to answers whose `answer_start` was wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerRepairs {
    /// Misaligned, moved to the nearest exact occurrence of the text.
    pub moved: usize,
    /// The text does not occur in the context at all.
    pub unlocated: usize,
}

/// The answer's character offset: the given one if the text is there, else the nearest exact
/// occurrence (`None` when the text is nowhere in the context).
pub fn locate_answer(context: &str, text: &str, given: i64) -> Option<usize> {
    let chars: Vec<char> = context.chars().collect();
    let needle: Vec<char> = text.chars().collect();
    let at = |start: usize| chars.get(start..start + needle.len()) == Some(&needle[..]);
    if given >= 0 && at(given as usize) {
        return Some(given as usize);
    }
    if needle.is_empty() || needle.len() > chars.len() {
        return None;
    }
    (0..=chars.len() - needle.len())
        .filter(|&s| at(s))
        .min_by_key(|&s| (s as i64 - given).unsigned_abs())
}

/// Reads every question of a SQuAD-format file; `lang` (if given) overrides the file's tags. Wrong
/// answer offsets are repaired or set aside (see `AnswerRepairs`), with a warning naming the file.
pub fn load(path: &Path, lang: Option<&str>) -> Result<Vec<QaExample>> {
    let (examples, repairs) = load_with_repairs(path, lang)?;
    warn_of(path, &repairs);
    Ok(examples)
}

fn warn_of(path: &Path, repairs: &AnswerRepairs) {
    if *repairs != AnswerRepairs::default() {
        eprintln!(
            "warning: {}: {} answer(s) had a wrong answer_start and were moved to the nearest occurrence \
             of their text; {} answer text(s) do not occur in their context (scored, not trained on)",
            path.display(),
            repairs.moved,
            repairs.unlocated
        );
    }
}

/// `load`, returning what it repaired instead of warning.
pub fn load_with_repairs(
    path: &Path,
    lang: Option<&str>,
) -> Result<(Vec<QaExample>, AnswerRepairs)> {
    read_examples(path, lang, false)
}

/// The questions of a file to predict: as [`load`], and a file in which no question has an `answers`
/// field at all (new questions, as a test set without gold comes) is read whatever its `version`,
/// every question unscored. Training and scoring keep [`load`]'s rule, under which such a v1.1 question
/// is an error, never silently a question without an answer; a file with answers to some questions
/// only is that error here too.
pub fn load_to_predict(path: &Path, lang: Option<&str>) -> Result<Vec<QaExample>> {
    let (examples, repairs) = read_examples(path, lang, true)?;
    warn_of(path, &repairs);
    Ok(examples)
}

fn read_examples(
    path: &Path,
    lang: Option<&str>,
    questions_only_ok: bool,
) -> Result<(Vec<QaExample>, AnswerRepairs)> {
    let mut repairs = AnswerRepairs::default();
    let file = crate::qa::data::read_squad(path)?;
    let questions_only = questions_only_ok
        && file
            .data
            .iter()
            .flat_map(|a| &a.paragraphs)
            .flat_map(|p| &p.qas)
            .all(|qa| qa.answers.is_none() && qa.is_impossible.is_none());
    let v2_file = questions_only || crate::qa::data::version_is_v2(file.version.as_ref());
    let mut out = Vec::new();
    for (ai, article) in file.data.into_iter().enumerate() {
        for (pi, p) in article.paragraphs.into_iter().enumerate() {
            let Some(context) = p.context else {
                bail!(
                    "{}: article {ai}, paragraph {pi} has no \"context\" string",
                    path.display()
                );
            };
            for (qi, qa) in p.qas.into_iter().enumerate() {
                let id = qa.id_at(ai, pi, qi);
                let Some(question) = qa.question else {
                    bail!(
                        "{}: question '{id}' (article {ai}, paragraph {pi}) has no \"question\" string",
                        path.display()
                    );
                };
                let impossible = qa.is_impossible == Some(true);
                let at = crate::qa::data::QuestionAt {
                    file: path,
                    id: &id,
                    article: ai,
                    paragraph: pi,
                };
                let given = crate::qa::data::gold_answers(
                    qa.answers.as_ref(),
                    impossible,
                    v2_file,
                    true,
                    &at,
                )?;
                let (mut answers, mut unlocated) = (Vec::new(), Vec::new());
                if !impossible {
                    for a in given {
                        let answer_start = a.answer_start.unwrap_or(-1);
                        match locate_answer(&context, &a.text, answer_start) {
                            Some(start) => {
                                repairs.moved += usize::from(start as i64 != answer_start);
                                answers.push(AnswerSpan {
                                    text: a.text,
                                    answer_start: start,
                                });
                            }
                            None => {
                                repairs.unlocated += 1;
                                unlocated.push(a.text);
                            }
                        }
                    }
                }
                out.push(QaExample {
                    id,
                    question,
                    context: context.clone(),
                    answers,
                    unlocated,
                    lang: lang
                        .map(str::to_owned)
                        .or(qa.lang)
                        .or_else(|| article.lang.clone()),
                });
            }
        }
    }
    Ok((out, repairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, value: serde_json::Value) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    }

    /// New questions without `answers` are read to predict, whatever the version; training and scoring
    /// still refuse them in a v1.1 file, and a file with answers to some questions only is refused
    /// either way.
    #[test]
    fn questions_without_any_answers_are_read_to_predict_only() {
        let dir = tempfile::tempdir().unwrap();
        let qa = |id: &str, answers: Option<serde_json::Value>| {
            let mut q = serde_json::json!({"id": id, "question": "Glicemia?"});
            if let Some(a) = answers {
                q["answers"] = a;
            }
            q
        };
        let set = |qas: Vec<serde_json::Value>| {
            serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": [
                {"context": "Glicemia 7,1 mmol/l.", "qas": qas}]}]})
        };
        let new = file(
            dir.path(),
            "new.json",
            set(vec![qa("a", None), qa("b", None)]),
        );
        let read = load_to_predict(&new, None).unwrap();
        assert_eq!(read.len(), 2);
        assert!(read
            .iter()
            .all(|e| e.answers.is_empty() && e.unlocated.is_empty()));
        assert!(format!("{:#}", load(&new, None).unwrap_err()).contains("has no answers"));
        let answered = serde_json::json!([{"text": "7,1 mmol/l", "answer_start": 9}]);
        let mixed = file(
            dir.path(),
            "mixed.json",
            set(vec![qa("a", Some(answered.clone())), qa("b", None)]),
        );
        let why = format!("{:#}", load_to_predict(&mixed, None).unwrap_err());
        assert!(
            why.contains("question 'b'") && why.contains("has no answers"),
            "{why}"
        );
        let gold = file(dir.path(), "gold.json", set(vec![qa("a", Some(answered))]));
        assert_eq!(load_to_predict(&gold, None).unwrap()[0].answers.len(), 1);
    }
}
