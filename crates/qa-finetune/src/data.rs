//! The SQuAD-format files a run reads, and EM/F1 scoring of predictions with the eval crate.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};
use model::qa::postprocess::Predictions;
use model::qa::squad::{self, QaExample};

use crate::config::QaFile;

/// The files' questions in order, each file cut to its `max_samples`.
pub fn load_examples(files: &[QaFile]) -> Result<Vec<QaExample>> {
    load_files(files, squad::load)
}

/// [`load_examples`] for `predict`: a file of new questions, without any `answers`, is read whatever
/// its version (`squad::load_to_predict`).
pub fn load_to_predict(file: &QaFile) -> Result<Vec<QaExample>> {
    load_files(std::slice::from_ref(file), squad::load_to_predict)
}

fn load_files(
    files: &[QaFile],
    load: fn(&std::path::Path, Option<&str>) -> Result<Vec<QaExample>>,
) -> Result<Vec<QaExample>> {
    let mut out = Vec::new();
    for f in files {
        let mut examples = load(&f.path, f.lang.as_deref())?;
        if let Some(n) = f.max_samples {
            if n == 0 {
                bail!("{}: max_samples must be at least 1", f.path.display());
            }
            if n < examples.len() {
                eprintln!(
                    "{}: the first {n} of {} questions (max_samples)",
                    f.path.display(),
                    examples.len()
                );
                examples.truncate(n);
            }
        }
        out.extend(examples);
    }
    Ok(out)
}

/// Each validation file's name and the range of its questions among all of them.
pub(crate) type EvalSets = Vec<(String, std::ops::Range<usize>)>;

/// The validation files' questions, and with several files each one's name and place among them. Names
/// must differ from each other and from the questions' languages (both give `eval/X/f1`).
pub(crate) fn load_validation(files: &[QaFile]) -> Result<(Vec<QaExample>, EvalSets)> {
    let mut examples = Vec::new();
    let mut sets: EvalSets = Vec::new();
    for file in files {
        let start = examples.len();
        examples.extend(load_examples(std::slice::from_ref(file))?);
        let name = file.name();
        if sets.iter().any(|(other, _)| *other == name) {
            bail!(
                "two validation files are named {name:?} (the file's stem unless `name` is set): \
                 give {} a `name`",
                file.path.display()
            );
        }
        sets.push((name, start..examples.len()));
    }
    if sets.len() < 2 {
        return Ok((examples, Vec::new()));
    }
    for (name, _) in &sets {
        if examples
            .iter()
            .any(|e| e.lang.as_deref() == Some(name.as_str()))
        {
            bail!(
                "the validation file named {name:?} has a language's name: its metrics and the \
                 language's would both be eval/{name}/f1; give it another `name`"
            );
        }
    }
    Ok((examples, sets))
}

/// EM/F1 of predictions with the eval crate, as v2.0 when the set has unanswerable questions.
pub fn score(examples: &[QaExample], preds: &Predictions) -> scoring::report::Report {
    let questions: Vec<scoring::data::Question> = examples
        .iter()
        .map(|e| scoring::data::Question {
            id: e.id.clone(),
            golds: e.gold_texts(),
            lang: e.lang.clone(),
        })
        .collect();
    let is_v2 = examples
        .iter()
        .any(|e| e.answers.is_empty() && e.unlocated.is_empty());
    let dataset = scoring::data::Dataset { questions, is_v2 };
    let na: Vec<(String, f64)> = preds
        .null_odds
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let opts = scoring::report::Options {
        version: None,
        lang: None,
        na_probs: (!na.is_empty()).then_some(na),
        na_prob_thresh: 1.0,
    };
    let answers: HashMap<String, String> = preds
        .answers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    scoring::report::evaluate(&dataset, &answers, &opts)
}

/// Whether any question has a gold answer to score against: a test file may have none (its questions
/// then all read as unanswerable, and a score would only count empty predictions).
pub fn has_gold_answers(examples: &[QaExample]) -> bool {
    examples
        .iter()
        .any(|e| !e.answers.is_empty() || !e.unlocated.is_empty())
}

/// A report's figures named as the run's metrics, under `prefix` (`eval` during training, `predict`
/// for `qa-finetune predict`): `PREFIX/exact`, `PREFIX/f1`; with SQuAD v2's no-answer odds the
/// threshold that maximises F1 and that F1; and each language's when there are several.
pub fn metrics(report: &scoring::report::Report, prefix: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::from([
        (format!("{prefix}/exact"), report.overall.exact),
        (format!("{prefix}/f1"), report.overall.f1),
    ]);
    if let Some(t) = report.overall.best_f1_thresh {
        m.insert(format!("{prefix}/best_f1_thresh"), t);
        m.insert(
            format!("{prefix}/best_f1"),
            report.overall.best_f1.unwrap_or(0.0),
        );
    }
    if report.by_language.len() > 1 {
        for (lang, s) in &report.by_language {
            m.insert(format!("{prefix}/{lang}/f1"), s.f1);
            m.insert(format!("{prefix}/{lang}/exact"), s.exact);
        }
    }
    m
}
