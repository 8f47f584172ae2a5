//! EM and F1 exactly as `evaluate-v1.1.py` and `evaluate-v2.0.py` compute them, with the normalisation
//! chosen per question (official SQuAD rules, or a language's rules).
//!
//! The two scripts differ on missing predictions: v1.1 scores them 0 and counts them in the total;
//! v2.0 leaves them out of the scores (and the total). Each is followed.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::data::Question;
use crate::normalize::{normalize, tokens, Rules};

/// Token-bag F1 of v1.1: 0 when nothing is shared (also when either side is empty).
fn f1_v1(pred: &[String], gold: &[String]) -> f64 {
    let same = common(pred, gold);
    if same == 0 {
        return 0.0;
    }
    let (p, r) = (
        same as f64 / pred.len() as f64,
        same as f64 / gold.len() as f64,
    );
    2.0 * p * r / (p + r)
}

/// F1 of v2.0: an empty side scores 1 only when both are empty.
fn f1_v2(pred: &[String], gold: &[String]) -> f64 {
    if pred.is_empty() || gold.is_empty() {
        return f64::from(u8::from(pred.len() == gold.len()));
    }
    f1_v1(pred, gold)
}

fn common(a: &[String], b: &[String]) -> usize {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in b {
        *counts.entry(t).or_default() += 1;
    }
    a.iter()
        .filter(|t| {
            let c = counts.entry(t.as_str()).or_default();
            *c -= 1;
            *c >= 0
        })
        .count()
}

/// Max EM and max F1 of `pred` over `golds` (each max taken separately, as both scripts do).
fn best_over_golds<'a>(
    pred: &str,
    golds: impl Iterator<Item = &'a String>,
    rules: &Rules,
    f1: fn(&[String], &[String]) -> f64,
) -> (f64, f64) {
    let (pn, pt) = (normalize(pred, rules), tokens(pred, rules));
    golds.fold((0.0f64, 0.0f64), |(e, f), g| {
        let em = f64::from(u8::from(pn == normalize(g, rules)));
        (e.max(em), f.max(f1(&pt, &tokens(g, rules))))
    })
}

/// Per-question result, for error analysis and for grouping.
#[derive(Clone, Debug, Serialize)]
pub struct QuestionScore {
    pub id: String,
    pub lang: String,
    pub has_answer: bool,
    pub prediction: Option<String>,
    pub exact: f64,
    pub f1: f64,
}

/// Scores every question (v1.1 semantics: max over gold answers; `None` prediction → 0).
pub fn score_v1(
    questions: &[Question],
    preds: &HashMap<String, String>,
    rules: &dyn Fn(&Question) -> (Rules, String),
) -> Vec<QuestionScore> {
    questions
        .iter()
        .map(|q| {
            let (r, lang) = rules(q);
            let pred = preds.get(&q.id);
            let (exact, f1) = pred.map_or((0.0, 0.0), |p| {
                best_over_golds(p, q.golds.iter(), &r, f1_v1)
            });
            QuestionScore {
                id: q.id.clone(),
                lang,
                has_answer: !q.golds.is_empty(),
                prediction: pred.cloned(),
                exact,
                f1,
            }
        })
        .collect()
}

/// Raw v2.0 scores of the questions that have a prediction.
pub fn score_v2(
    questions: &[Question],
    preds: &HashMap<String, String>,
    rules: &dyn Fn(&Question) -> (Rules, String),
) -> Vec<QuestionScore> {
    questions
        .iter()
        .filter_map(|q| {
            let pred = preds.get(&q.id)?;
            let (r, lang) = rules(q);
            // Gold answers that normalise to nothing do not count; none left means unanswerable.
            let mut golds: Vec<&String> = q
                .golds
                .iter()
                .filter(|g| !normalize(g, &r).is_empty())
                .collect();
            let empty = String::new();
            let has_answer = !q.golds.is_empty();
            if golds.is_empty() {
                golds.push(&empty);
            }
            let (exact, f1) = best_over_golds(pred, golds.into_iter(), &r, f1_v2);
            Some(QuestionScore {
                id: q.id.clone(),
                lang,
                has_answer,
                prediction: Some(pred.clone()),
                exact,
                f1,
            })
        })
        .collect()
}

/// v2.0's `apply_no_ans_threshold`: above the threshold the prediction counts as "no answer".
pub fn apply_threshold(scores: &mut [QuestionScore], na_probs: &HashMap<String, f64>, thresh: f64) {
    for s in scores {
        if na_probs.get(&s.id).copied().unwrap_or(0.0) > thresh {
            let v = f64::from(u8::from(!s.has_answer));
            s.exact = v;
            s.f1 = v;
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub exact: f64,
    pub f1: f64,
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none", rename = "HasAns_exact")]
    pub has_ans_exact: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "HasAns_f1")]
    pub has_ans_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "HasAns_total")]
    pub has_ans_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "NoAns_exact")]
    pub no_ans_exact: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "NoAns_f1")]
    pub no_ans_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "NoAns_total")]
    pub no_ans_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_exact: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_exact_thresh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_f1_thresh: Option<f64>,
}

fn mean(scores: &[&QuestionScore], f: impl Fn(&QuestionScore) -> f64) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    100.0 * scores.iter().map(|s| f(s)).sum::<f64>() / scores.len() as f64
}

/// v1.1's result over `scores` (every question of the set).
pub fn summarize_v1(scores: &[QuestionScore]) -> Summary {
    let all: Vec<&QuestionScore> = scores.iter().collect();
    Summary {
        exact: mean(&all, |s| s.exact),
        f1: mean(&all, |s| s.f1),
        total: all.len(),
        ..Default::default()
    }
}

/// v2.0's result: overall, HasAns/NoAns (over the questions that have a prediction), and with
/// `na_probs` the best thresholds (`find_best_thresh` over the raw scores).
pub fn summarize_v2(
    thresholded: &[QuestionScore],
    raw: &[QuestionScore],
    all_questions: &[(String, bool)],
    na_probs: Option<&[(String, f64)]>,
) -> Summary {
    let all: Vec<&QuestionScore> = thresholded.iter().collect();
    let has: Vec<&QuestionScore> = thresholded.iter().filter(|s| s.has_answer).collect();
    let no: Vec<&QuestionScore> = thresholded.iter().filter(|s| !s.has_answer).collect();
    let mut out = Summary {
        exact: mean(&all, |s| s.exact),
        f1: mean(&all, |s| s.f1),
        total: all.len(),
        ..Default::default()
    };
    if !has.is_empty() {
        out.has_ans_exact = Some(mean(&has, |s| s.exact));
        out.has_ans_f1 = Some(mean(&has, |s| s.f1));
        out.has_ans_total = Some(has.len());
    }
    if !no.is_empty() {
        out.no_ans_exact = Some(mean(&no, |s| s.exact));
        out.no_ans_f1 = Some(mean(&no, |s| s.f1));
        out.no_ans_total = Some(no.len());
    }
    if let Some(na) = na_probs {
        let (be, bet) = best_thresh(raw, all_questions, na, |s| s.exact);
        let (bf, bft) = best_thresh(raw, all_questions, na, |s| s.f1);
        out.best_exact = Some(be);
        out.best_exact_thresh = Some(bet);
        out.best_f1 = Some(bf);
        out.best_f1_thresh = Some(bft);
    }
    out
}

/// `find_best_thresh` of evaluate-v2.0.py: walk the questions by rising no-answer probability (stable,
/// in `na_prob.json` order), answering each, and keep the best running score.
fn best_thresh(
    raw: &[QuestionScore],
    all_questions: &[(String, bool)],
    na_probs: &[(String, f64)],
    metric: impl Fn(&QuestionScore) -> f64,
) -> (f64, f64) {
    let by_id: HashMap<&str, &QuestionScore> = raw.iter().map(|s| (s.id.as_str(), s)).collect();
    let has_ans: HashMap<&str, bool> = all_questions
        .iter()
        .map(|(id, h)| (id.as_str(), *h))
        .collect();
    let num_no_ans = all_questions.iter().filter(|(_, h)| !h).count() as f64;
    let (mut cur, mut best, mut best_t) = (num_no_ans, num_no_ans, 0.0);
    let mut order: Vec<&(String, f64)> = na_probs.iter().collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (id, p) in order {
        let Some(s) = by_id.get(id.as_str()) else {
            continue;
        };
        let diff = if has_ans.get(id.as_str()).copied().unwrap_or(false) {
            metric(s)
        } else if s.prediction.as_deref().is_some_and(|t| !t.is_empty()) {
            -1.0
        } else {
            0.0
        };
        cur += diff;
        if cur > best {
            best = cur;
            best_t = *p;
        }
    }
    (100.0 * best / raw.len().max(1) as f64, best_t)
}

/// Groups per-question scores by language (sorted), for the per-language table.
pub fn by_language(scores: &[QuestionScore]) -> BTreeMap<String, Vec<QuestionScore>> {
    let mut out: BTreeMap<String, Vec<QuestionScore>> = BTreeMap::new();
    for s in scores {
        out.entry(s.lang.clone()).or_default().push(s.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: &str, golds: &[&str]) -> Question {
        Question {
            id: id.into(),
            golds: golds.iter().map(|s| s.to_string()).collect(),
            lang: None,
        }
    }

    fn squad(_: &Question) -> (Rules, String) {
        (Rules::Squad, "en".into())
    }

    fn preds(p: &[(&str, &str)]) -> HashMap<String, String> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn v1_takes_the_best_gold_and_counts_missing_as_zero() {
        let qs = [
            q("1", &["Denver Broncos", "The Broncos"]),
            q("2", &["Santa Clara, California"]),
            q("3", &["x"]),
        ];
        let p = preds(&[("1", "broncos"), ("2", "Santa Clara")]);
        let s = score_v1(&qs, &p, &squad);
        assert_eq!((s[0].exact, s[0].f1), (1.0, 1.0)); // "the broncos" normalises to "broncos"
        assert_eq!(s[1].exact, 0.0);
        assert!((s[1].f1 - 0.8).abs() < 1e-12); // p = 2/2, r = 2/3
        assert_eq!((s[2].exact, s[2].f1), (0.0, 0.0));
        let sum = summarize_v1(&s);
        assert_eq!(sum.total, 3);
        assert!((sum.exact - 100.0 / 3.0).abs() < 1e-9 && (sum.f1 - 60.0).abs() < 1e-9);
    }

    #[test]
    fn v1_and_v2_differ_on_empty_answers_and_missing_predictions() {
        let qs = [q("1", &["the"]), q("2", &[]), q("3", &["Paris"])];
        let p = preds(&[("1", ""), ("2", "")]);
        // v1: gold "the" normalises to "" = prediction "": EM 1 but F1 0 (nothing shared).
        let v1 = score_v1(&qs[..1], &p, &squad);
        assert_eq!((v1[0].exact, v1[0].f1), (1.0, 0.0));
        // v2: gold "the" is dropped, the question counts as unanswerable: EM 1 and F1 1.
        let v2 = score_v2(&qs, &p, &squad);
        assert_eq!(v2.len(), 2, "v2 leaves the question without prediction out");
        assert_eq!((v2[0].exact, v2[0].f1), (1.0, 1.0));
        assert_eq!((v2[1].exact, v2[1].f1, v2[1].has_answer), (1.0, 1.0, false));
    }

    #[test]
    fn v2_threshold_and_best_threshold() {
        let qs = [
            q("a", &["one"]),
            q("b", &[]),
            q("c", &["three"]),
            q("d", &[]),
        ];
        let p = preds(&[("a", "one"), ("b", "bogus"), ("c", "wrong"), ("d", "")]);
        let raw = score_v2(&qs, &p, &squad);
        let na = vec![
            ("a".to_string(), 0.1),
            ("b".to_string(), 0.9),
            ("c".to_string(), 0.5),
            ("d".to_string(), 0.2),
        ];
        let na_map: HashMap<String, f64> = na.iter().cloned().collect();
        let mut th = raw.clone();
        apply_threshold(&mut th, &na_map, 0.4);
        // Above 0.4: b (no answer, right) and c (has answer, wrong either way).
        let all: Vec<(String, bool)> = qs
            .iter()
            .map(|q| (q.id.clone(), !q.golds.is_empty()))
            .collect();
        let s = summarize_v2(&th, &raw, &all, Some(&na));
        assert_eq!((s.exact, s.total), (75.0, 4)); // a 1, b 1, c 0, d 1
        assert_eq!((s.has_ans_total, s.no_ans_total), (Some(2), Some(2)));
        assert_eq!(s.has_ans_exact, Some(50.0));
        // Walk: start 2 (two no-answer); a +1 → 3 (t 0.1); d 0 → 3; c +0 → 3; b −1 → 2. Best 3/4 at 0.1.
        assert_eq!((s.best_exact, s.best_exact_thresh), (Some(75.0), Some(0.1)));
    }
}
