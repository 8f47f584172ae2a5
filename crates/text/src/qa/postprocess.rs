//! From start/end logits of every window to one answer per question, as `utils_qa.py`'s
//! `postprocess_qa_predictions` does: the `n_best` best starts × `n_best` best ends of each window,
//! spans outside the context or longer than `max_answer_length` rejected, scores `start + end`, the
//! question's null score the minimum over its windows (`<s>` logits), softmax over the n-best, and for
//! SQuAD v2 "no answer" when `null − best non-null > null_score_diff_threshold`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::qa::features::QaFeature;
use crate::qa::squad::QaExample;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostprocessConfig {
    pub n_best_size: usize,
    pub max_answer_length: usize,
    pub version_2_with_negative: bool,
    pub null_score_diff_threshold: f64,
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        Self {
            n_best_size: 20,
            max_answer_length: 30,
            version_2_with_negative: false,
            null_score_diff_threshold: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NbestEntry {
    pub text: String,
    pub probability: f64,
    pub start_logit: f64,
    pub end_logit: f64,
    /// Character offsets of the answer in the context (`None` for the placeholder "empty").
    pub offsets: Option<(usize, usize)>,
}

#[derive(Clone, Debug, Default)]
pub struct Predictions {
    /// id → answer ("" for no answer), the official predictions format.
    pub answers: BTreeMap<String, String>,
    pub nbest: BTreeMap<String, Vec<NbestEntry>>,
    /// id → null score − best non-null score (SQuAD v2 only; `null_odds.json`).
    pub null_odds: BTreeMap<String, f64>,
    /// Questions whose context is empty or only white space: answered "" (no answer) with an empty
    /// n-best list, for the caller to report, where `utils_qa.py` would answer its placeholder "empty".
    pub blank_contexts: Vec<String>,
}

struct Candidate {
    offsets: (usize, usize),
    score: f64,
    start_logit: f64,
    end_logit: f64,
}

/// Indices of the `k` largest values, largest first (ties: the later index first, as NumPy's reversed
/// argsort gives them for distinct values; exact ties are vanishingly rare with float logits).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(b.cmp(&a)));
    idx.truncate(k);
    idx
}

/// `logits[f]` are the (start, end) logits of `features[f]`, each as long as its input ids.
pub fn postprocess(
    examples: &[QaExample],
    features: &[QaFeature],
    logits: &[(Vec<f32>, Vec<f32>)],
    cfg: &PostprocessConfig,
) -> Predictions {
    let mut per_example: Vec<Vec<usize>> = vec![Vec::new(); examples.len()];
    for (f, feat) in features.iter().enumerate() {
        per_example[feat.example].push(f);
    }
    let mut out = Predictions::default();
    for (ei, ex) in examples.iter().enumerate() {
        if ex.context.trim().is_empty() {
            out.blank_contexts.push(ex.id.clone());
            out.answers.insert(ex.id.clone(), String::new());
            out.nbest.insert(ex.id.clone(), Vec::new());
            if cfg.version_2_with_negative {
                out.null_odds.insert(ex.id.clone(), f64::MAX);
            }
            continue;
        }
        let (mut prelim, null) = candidates(&per_example[ei], features, logits, cfg);
        let v2 = cfg.version_2_with_negative;
        let null_score = null.as_ref().map_or(0.0, |n| n.score);
        if v2 {
            if let Some(n) = &null {
                prelim.push(Candidate { ..*n });
            }
        }
        // A stable sort, as Python's sorted(): equal scores keep their order.
        prelim.sort_by(|a, b| b.score.total_cmp(&a.score));
        prelim.truncate(cfg.n_best_size);
        if v2 && !prelim.iter().any(|c| c.offsets == (0, 0)) {
            if let Some(n) = null {
                prelim.push(n);
            }
        }
        let nbest = nbest_entries(&ex.context, &prelim);
        let answer = if !v2 {
            nbest[0].text.clone()
        } else {
            let best = nbest
                .iter()
                .find(|e| !e.text.is_empty())
                .unwrap_or(&nbest[0]);
            let diff = null_score - best.start_logit - best.end_logit;
            out.null_odds.insert(ex.id.clone(), diff);
            if diff > cfg.null_score_diff_threshold {
                String::new()
            } else {
                best.text.clone()
            }
        };
        out.answers.insert(ex.id.clone(), answer);
        out.nbest.insert(ex.id.clone(), nbest);
    }
    out
}

/// Every (start, end) pair among the `n_best_size` best starts and ends of an example's windows that
/// lies in the context and is at most `max_answer_length` tokens, and the windows' least null score.
fn candidates(
    windows: &[usize],
    features: &[QaFeature],
    logits: &[(Vec<f32>, Vec<f32>)],
    cfg: &PostprocessConfig,
) -> (Vec<Candidate>, Option<Candidate>) {
    let mut prelim: Vec<Candidate> = Vec::new();
    let mut null: Option<Candidate> = None;
    for &f in windows {
        let (starts, ends) = &logits[f];
        let offsets = &features[f].context_offsets;
        let null_score = f64::from(starts[0]) + f64::from(ends[0]);
        if null.as_ref().is_none_or(|n| n.score > null_score) {
            null = Some(Candidate {
                offsets: (0, 0),
                score: null_score,
                start_logit: f64::from(starts[0]),
                end_logit: f64::from(ends[0]),
            });
        }
        let best_ends = top_k(ends, cfg.n_best_size);
        for s in top_k(starts, cfg.n_best_size) {
            for &e in &best_ends {
                let (Some(Some(so)), Some(Some(eo))) = (offsets.get(s), offsets.get(e)) else {
                    continue;
                };
                if e < s || e - s + 1 > cfg.max_answer_length {
                    continue;
                }
                prelim.push(Candidate {
                    offsets: (so.0, eo.1),
                    score: f64::from(starts[s]) + f64::from(ends[e]),
                    start_logit: f64::from(starts[s]),
                    end_logit: f64::from(ends[e]),
                });
            }
        }
    }
    (prelim, null)
}

/// The n-best list: each candidate's text (character offsets into `context`), with utils_qa.py's
/// "empty" placeholder when nothing else is there, and the softmax of the scores as probabilities.
fn nbest_entries(context: &str, prelim: &[Candidate]) -> Vec<NbestEntry> {
    let chars: Vec<(usize, char)> = context.char_indices().collect();
    let slice = |(a, b): (usize, usize)| -> String {
        let byte = |i: usize| chars.get(i).map_or(context.len(), |c| c.0);
        if a >= b {
            return String::new();
        }
        context[byte(a)..byte(b)].to_owned()
    };
    let mut entries: Vec<(NbestEntry, f64)> = prelim
        .iter()
        .map(|c| {
            let entry = NbestEntry {
                text: slice(c.offsets),
                probability: 0.0,
                start_logit: c.start_logit,
                end_logit: c.end_logit,
                offsets: Some(c.offsets),
            };
            (entry, c.score)
        })
        .collect();
    if entries.is_empty() || (entries.len() == 1 && entries[0].0.text.is_empty()) {
        let empty = NbestEntry {
            text: "empty".into(),
            probability: 0.0,
            start_logit: 0.0,
            end_logit: 0.0,
            offsets: None,
        };
        entries.insert(0, (empty, 0.0));
    }
    let max = entries
        .iter()
        .map(|e| e.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = entries.iter().map(|e| (e.1 - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    for ((entry, _), x) in entries.iter_mut().zip(&exp) {
        entry.probability = x / total;
    }
    entries.into_iter().map(|(e, _)| e).collect()
}
