//! BioASQ factoid metrics as BioBERT reports them: the snippet-level n-best lists of one question are
//! merged (ids `QUESTION_NNN`), ranked by probability, de-duplicated, cut to five; then strict accuracy
//! (the first answer is a golden one), lenient accuracy (one of the five is) and mean reciprocal rank.
//! Golden answers are `all_golden_answers` (synonyms included) or, without it, the SQuAD answers;
//! comparison ignores case and surrounding white space, as BioASQ's evaluation does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct NbestEntry {
    pub text: String,
    pub probability: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct BioasqScores {
    pub strict_accuracy: f64,
    pub lenient_accuracy: f64,
    pub mrr: f64,
    pub questions: usize,
    pub questions_without_prediction: usize,
}

fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `5c5f…002a_002` → `5c5f…002a`: the question a snippet-level id belongs to.
pub fn question_id(id: &str) -> &str {
    match id.rsplit_once('_') {
        Some((q, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => q,
        _ => id,
    }
}

/// Golden answers per question, in data-set order.
pub fn load_golden(path: &Path) -> Result<BTreeMap<String, HashSet<String>>> {
    let file = crate::data::read_squad(path)?;
    let mut golden: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (ai, article) in file.data.iter().enumerate() {
        for (pi, p) in article.paragraphs.iter().enumerate() {
            for (qi, qa) in p.qas.iter().enumerate() {
                let id = qa.id_at(ai, pi, qi);
                let answers: Vec<String> = match &qa.all_golden_answers {
                    Some(list) => list.clone(),
                    None => {
                        let at = crate::data::QuestionAt {
                            file: path,
                            id: &id,
                            article: ai,
                            paragraph: pi,
                        };
                        // Golds only: a question without answers has none to match.
                        crate::data::gold_answers(qa.answers.as_ref(), true, true, false, &at)?
                            .into_iter()
                            .map(|g| g.text)
                            .collect()
                    }
                };
                golden
                    .entry(question_id(&id).to_owned())
                    .or_default()
                    .extend(answers.iter().map(|a| norm(a)));
            }
        }
    }
    Ok(golden)
}

pub fn load_nbest(path: &Path) -> Result<HashMap<String, Vec<NbestEntry>>> {
    let text = text::bom::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an n-best file (id → [{{text, probability, …}}])",
            path.display()
        )
    })
}

/// The five best distinct answers of each question, merged over its snippets.
pub fn top5(nbest: &HashMap<String, Vec<NbestEntry>>) -> HashMap<String, Vec<String>> {
    let mut merged: HashMap<&str, Vec<(&str, f64, &str)>> = HashMap::new();
    for (id, entries) in nbest {
        for e in entries {
            merged
                .entry(question_id(id))
                .or_default()
                .push((&e.text, e.probability, id));
        }
    }
    merged
        .into_iter()
        .map(|(q, mut cands)| {
            // Ties (equal probability) are broken by snippet id and text, so results do not depend on
            // the order of the JSON object.
            cands.sort_by(|a, b| {
                b.1.total_cmp(&a.1)
                    .then_with(|| a.2.cmp(b.2))
                    .then_with(|| a.0.cmp(b.0))
            });
            let mut seen = HashSet::new();
            let top: Vec<String> = cands
                .iter()
                .map(|(t, _, _)| norm(t))
                .filter(|t| !t.is_empty() && seen.insert(t.clone()))
                .take(5)
                .collect();
            (q.to_owned(), top)
        })
        .collect()
}

pub fn score(
    golden: &BTreeMap<String, HashSet<String>>,
    nbest: &HashMap<String, Vec<NbestEntry>>,
) -> Result<BioasqScores> {
    if golden.is_empty() {
        bail!("the data set has no questions");
    }
    let ranked = top5(nbest);
    let (mut strict, mut lenient, mut rr, mut missing) = (0.0, 0.0, 0.0, 0);
    for (q, gold) in golden {
        let Some(answers) = ranked.get(q) else {
            missing += 1;
            continue;
        };
        if let Some(rank) = answers.iter().position(|a| gold.contains(a)) {
            lenient += 1.0;
            rr += 1.0 / (rank + 1) as f64;
            if rank == 0 {
                strict += 1.0;
            }
        }
    }
    let n = golden.len() as f64;
    Ok(BioasqScores {
        strict_accuracy: strict / n,
        lenient_accuracy: lenient / n,
        mrr: rr / n,
        questions: golden.len(),
        questions_without_prediction: missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(text: &str, p: f64) -> NbestEntry {
        NbestEntry {
            text: text.into(),
            probability: p,
        }
    }

    #[test]
    fn an_nbest_file_with_a_byte_order_mark_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nbest.json");
        let json = r#"{"q1_001": [{"text": "EGFR", "probability": 0.5, "start_logit": 1.0}]}"#;
        std::fs::write(&path, [b"\xEF\xBB\xBF", json.as_bytes()].concat()).unwrap();
        let nbest = load_nbest(&path).unwrap();
        assert_eq!(nbest["q1_001"][0].text, "EGFR");
    }

    #[test]
    fn snippets_merge_and_ranks_count() {
        let golden: BTreeMap<String, HashSet<String>> = [
            (
                "q1".to_string(),
                ["dhand".to_string(), "hand2".to_string()].into(),
            ),
            ("q2".to_string(), ["egfr".to_string()].into()),
            ("q3".to_string(), ["tp53".to_string()].into()),
        ]
        .into();
        let nbest: HashMap<String, Vec<NbestEntry>> = [
            // q1: best over both snippets is "HAND2" (a synonym) → rank 1.
            (
                "q1_001".to_string(),
                vec![e("dHAND protein", 0.4), e("heart", 0.1)],
            ),
            ("q1_002".to_string(), vec![e(" Hand2 ", 0.5)]),
            // q2: duplicates collapse, gold at rank 3.
            (
                "q2_001".to_string(),
                vec![
                    e("KRAS", 0.5),
                    e("kras", 0.4),
                    e("BRAF", 0.3),
                    e("EGFR", 0.2),
                ],
            ),
        ]
        .into();
        let s = score(&golden, &nbest).unwrap();
        assert_eq!(s.questions_without_prediction, 1);
        assert!((s.strict_accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.lenient_accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.mrr - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(
            question_id("5c5f56501a4c55d80b00002a_002"),
            "5c5f56501a4c55d80b00002a"
        );
        assert_eq!(question_id("plain_id"), "plain_id");
    }
}
