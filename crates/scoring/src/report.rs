//! Scoring a data set end to end: choose rules per question, score as v1.1 or v2.0, group by language.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::data::{Dataset, Question};
use crate::normalize::{Lang, Rules};
use crate::score::{
    apply_threshold, by_language, score_v1, score_v2, summarize_v1, summarize_v2, QuestionScore,
    Summary,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

pub struct Options<'a> {
    pub version: Option<Version>,
    /// Overrides every question's language.
    pub lang: Option<&'a str>,
    pub na_probs: Option<Vec<(String, f64)>>,
    pub na_prob_thresh: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: String,
    pub overall: Summary,
    pub by_language: BTreeMap<String, Summary>,
    pub missing_predictions: usize,
    pub unknown_prediction_ids: usize,
    /// Languages without rules of their own, scored with the language-neutral rules.
    pub unknown_languages: Vec<String>,
    #[serde(skip)]
    pub per_question: Vec<QuestionScore>,
}

pub fn evaluate(data: &Dataset, preds: &HashMap<String, String>, opts: &Options) -> Report {
    let version = opts
        .version
        .unwrap_or(if data.is_v2 { Version::V2 } else { Version::V1 });
    let mut unknown = BTreeSet::new();
    let mut cache: HashMap<String, Rules> = HashMap::new();
    let mut rules_for = |q: &Question| -> (Rules, String) {
        let code = opts.lang.map(str::to_owned).or_else(|| q.lang.clone());
        match code {
            // No language anywhere: the official scripts' own rules.
            None => (Rules::Squad, "-".to_owned()),
            Some(code) => {
                let code = code.to_ascii_lowercase();
                let r = cache
                    .entry(code.clone())
                    .or_insert_with(|| {
                        Rules::Lang(Lang::new(&code).unwrap_or_else(|| {
                            unknown.insert(code.clone());
                            Lang::neutral()
                        }))
                    })
                    .clone();
                (r, code)
            }
        }
    };
    // Resolve the rules once per question, then score without the borrow.
    let resolved: Vec<(Rules, String)> = data.questions.iter().map(&mut rules_for).collect();
    let index: HashMap<&str, usize> = data
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| (q.id.as_str(), i))
        .collect();
    let lookup = |q: &Question| resolved[index[q.id.as_str()]].clone();
    let missing = data
        .questions
        .iter()
        .filter(|q| !preds.contains_key(&q.id))
        .count();
    let unknown_ids = preds
        .keys()
        .filter(|id| !index.contains_key(id.as_str()))
        .count();

    let (overall, per_question, by_lang) = match version {
        Version::V1 => {
            let scores = score_v1(&data.questions, preds, &lookup);
            let by_lang = by_language(&scores)
                .into_iter()
                .map(|(l, s)| (l, summarize_v1(&s)))
                .collect();
            (summarize_v1(&scores), scores, by_lang)
        }
        Version::V2 => {
            let raw = score_v2(&data.questions, preds, &lookup);
            let na: HashMap<String, f64> = opts.na_probs.iter().flatten().cloned().collect();
            let mut thresholded = raw.clone();
            apply_threshold(&mut thresholded, &na, opts.na_prob_thresh);
            let summarize = |raw: &[QuestionScore], th: &[QuestionScore], qs: &[&Question]| {
                let all: Vec<(String, bool)> = qs
                    .iter()
                    .map(|q| (q.id.clone(), !q.golds.is_empty()))
                    .collect();
                summarize_v2(th, raw, &all, opts.na_probs.as_deref())
            };
            let all_q: Vec<&Question> = data.questions.iter().collect();
            let overall = summarize(&raw, &thresholded, &all_q);
            let raw_by = by_language(&raw);
            let by_lang = by_language(&thresholded)
                .into_iter()
                .map(|(l, th)| {
                    let qs: Vec<&Question> =
                        data.questions.iter().filter(|q| lookup(q).1 == l).collect();
                    let s = summarize(&raw_by[&l], &th, &qs);
                    (l, s)
                })
                .collect();
            (overall, thresholded, by_lang)
        }
    };
    Report {
        version: if version == Version::V1 { "1.1" } else { "2.0" }.to_owned(),
        overall,
        by_language: by_lang,
        missing_predictions: missing,
        unknown_prediction_ids: unknown_ids,
        unknown_languages: unknown.into_iter().collect(),
        per_question,
    }
}

/// A Markdown table: one row per language plus the total; numbers right-aligned, two decimals.
pub fn markdown(name: &str, r: &Report) -> anyhow::Result<String> {
    let mut rows: Vec<(&str, &Summary)> =
        r.by_language.iter().map(|(l, m)| (l.as_str(), m)).collect();
    if r.by_language.len() > 1 {
        rows.push(("all", &r.overall));
    }
    let has = |m: &Summary| match (m.has_ans_exact, m.has_ans_f1) {
        (Some(e), Some(f)) => format!("{e:.2} / {f:.2}"),
        _ => "–".to_owned(),
    };
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "| data set | language | EM | F1 | questions | HasAns EM/F1 | NoAns EM |\n|---|---|---:|---:|---:|---|---|\n",
    );
    for (language, m) in rows {
        let no_ans = m.no_ans_exact.map_or("–".to_owned(), |e| format!("{e:.2}"));
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {} | {} | {} |\n",
            cell(name),
            cell(language),
            m.exact,
            m.f1,
            m.total,
            has(m),
            no_ans
        ));
    }
    Ok(out)
}
