//! The linking index: every label of every concept, normalised, with exact and word-order lookups
//! and an inverted index of character n-gram TF-IDF weights for nearest neighbours by cosine.
//!
//! A query first tries the normalised form (score 1, `exact`), then its words in any order (0.98,
//! `unordered`), then the labels whose n-gram vectors are nearest (cosine, `tfidf`, at least
//! `min_score`). Candidates are concepts, best label each, best first; a concept matched through a
//! label in one language is reported with its preferred label in the query's language when it has
//! one, so an English answer links to a concept whose only other label is Bulgarian.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::normalize::{char_ngrams, normalize, unordered};
use crate::terms::{Concept, Reject, SourceHash};

/// Bumped when the saved layout changes: an old index is rebuilt, not misread.
const FORMAT: u32 = 1;
const INDEX_FILE: &str = "index.bin";
const SUMMARY_FILE: &str = "index.json";
const REJECTS_FILE: &str = "rejects.jsonl";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Exact,
    Unordered,
    Tfidf,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Unordered => "unordered",
            Method::Tfidf => "tfidf",
        }
    }
}

/// One concept an answer may mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub concept_id: String,
    pub iri: String,
    /// The concept's preferred label, in the query's language where it has one.
    pub label: String,
    pub label_lang: Option<String>,
    /// The label that matched, and its language.
    pub matched: String,
    pub matched_lang: Option<String>,
    pub score: f64,
    pub method: Method,
    pub source: String,
}

#[derive(Clone, Copy, Debug)]
pub struct LinkOptions {
    /// Candidates per answer.
    pub top_k: usize,
    /// Least cosine for a TF-IDF candidate.
    pub min_score: f64,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            top_k: 5,
            min_score: 0.3,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    concept: u32,
    label: u32,
}

#[derive(Serialize, Deserialize)]
pub struct Index {
    format: u32,
    pub ngram: usize,
    pub concepts: Vec<Concept>,
    pub sources: Vec<SourceHash>,
    entries: Vec<Entry>,
    exact: HashMap<String, Vec<u32>>,
    unordered: HashMap<String, Vec<u32>>,
    grams: HashMap<String, u32>,
    idf: Vec<f32>,
    /// Per n-gram: (entry, weight in that entry's unit vector).
    postings: Vec<Vec<(u32, f32)>>,
}

/// What `index.json` says about an index, beside the binary.
#[derive(Serialize, Deserialize)]
pub struct Summary {
    pub format: u32,
    pub ngram: usize,
    pub concepts: usize,
    pub labels: usize,
    pub labels_by_language: std::collections::BTreeMap<String, usize>,
    pub sources: Vec<SourceHash>,
    pub rejects: usize,
}

impl Index {
    /// Indexes every label of `concepts` with character `ngram`-grams.
    pub fn build(concepts: Vec<Concept>, sources: Vec<SourceHash>, ngram: usize) -> Self {
        let mut entries = Vec::new();
        let mut exact: HashMap<String, Vec<u32>> = HashMap::new();
        let mut unordered_map: HashMap<String, Vec<u32>> = HashMap::new();
        let mut grams: HashMap<String, u32> = HashMap::new();
        let mut counts: Vec<Vec<(u32, f32)>> = Vec::new();
        for (ci, c) in concepts.iter().enumerate() {
            for (li, l) in c.labels.iter().enumerate() {
                let norm = normalize(&l.text);
                if norm.is_empty() {
                    continue;
                }
                let e = entries.len() as u32;
                entries.push(Entry {
                    concept: ci as u32,
                    label: li as u32,
                });
                exact.entry(norm.clone()).or_default().push(e);
                unordered_map.entry(unordered(&norm)).or_default().push(e);
                let mut id_of = |g: &str| {
                    let next = grams.len() as u32;
                    Some(*grams.entry(g.to_owned()).or_insert(next))
                };
                counts.push(term_counts(&norm, ngram, &mut id_of));
            }
        }
        let n = entries.len() as f32;
        let mut df = vec![0u32; grams.len()];
        for row in &counts {
            for &(g, _) in row {
                df[g as usize] += 1;
            }
        }
        // sklearn's smoothed idf: ln((1 + n) / (1 + df)) + 1.
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); grams.len()];
        for (e, row) in counts.into_iter().enumerate() {
            let weighted: Vec<(u32, f32)> = row
                .into_iter()
                .map(|(g, tf)| (g, tf * idf[g as usize]))
                .collect();
            let norm = weighted.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            for (g, w) in weighted {
                postings[g as usize].push((e as u32, w / norm));
            }
        }
        Self {
            format: FORMAT,
            ngram,
            concepts,
            sources,
            entries,
            exact,
            unordered: unordered_map,
            grams,
            idf,
            postings,
        }
    }

    pub fn summary(&self, rejects: usize) -> Summary {
        let mut by_lang = std::collections::BTreeMap::new();
        for e in &self.entries {
            let l = &self.concepts[e.concept as usize].labels[e.label as usize];
            *by_lang
                .entry(l.lang.clone().unwrap_or_else(|| "und".into()))
                .or_insert(0) += 1;
        }
        Summary {
            format: FORMAT,
            ngram: self.ngram,
            concepts: self.concepts.len(),
            labels: self.entries.len(),
            labels_by_language: by_lang,
            sources: self.sources.clone(),
            rejects,
        }
    }

    /// Writes `index.bin`, `index.json` (counts, the sources' hashes, and `provenance`: the linker's
    /// version and git commit, `fsutil::provenance::code_record`) and `rejects.jsonl` into `dir`, each
    /// atomically.
    pub fn save(&self, dir: &Path, rejects: &[Reject]) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let bytes = bincode::serialize(self).context("encoding the index")?;
        fsutil::write_atomic(&dir.join(INDEX_FILE), |w| w.write_all(&bytes))?;
        let mut summary = serde_json::to_value(self.summary(rejects.len()))?;
        summary["provenance"] =
            fsutil::provenance::code_record("medqa-link index", env!("CARGO_PKG_VERSION"))?;
        fsutil::write_json(&dir.join(SUMMARY_FILE), &summary)?;
        fsutil::write_json_lines(&dir.join(REJECTS_FILE), rejects)
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join(INDEX_FILE);
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "cannot read {} (build it with `link index --out {}`)",
                file.display(),
                dir.display()
            )
        })?;
        let index: Index = bincode::deserialize(&bytes)
            .with_context(|| format!("{} is not a medqa link index", file.display()))?;
        if index.format != FORMAT {
            bail!(
                "{}: index format {} (this medqa reads {FORMAT}); rebuild it with `link index`",
                file.display(),
                index.format
            );
        }
        Ok(index)
    }

    /// Whether the sources the index was built from still have the hashes it recorded.
    pub fn stale_sources(&self) -> Result<Vec<String>> {
        let mut stale = Vec::new();
        for s in &self.sources {
            match fsutil::sha256_file(Path::new(&s.path)) {
                Ok(h) if h == s.sha256 => {}
                _ => stale.push(s.path.clone()),
            }
        }
        Ok(stale)
    }

    /// The concepts `text` (in language `lang`, if known) may mean, best first.
    pub fn link(&self, text: &str, lang: Option<&str>, opts: &LinkOptions) -> Vec<Candidate> {
        let norm = normalize(text);
        if norm.is_empty() || opts.top_k == 0 {
            return Vec::new();
        }
        // Best (score, method, entry) per concept.
        let mut best: HashMap<u32, (f64, Method, u32)> = HashMap::new();
        let mut offer = |e: u32, score: f64, method: Method| {
            let c = self.entries[e as usize].concept;
            let slot = best.entry(c).or_insert((score, method, e));
            if score > slot.0 {
                *slot = (score, method, e);
            }
        };
        for &e in self.exact.get(&norm).into_iter().flatten() {
            offer(e, 1.0, Method::Exact);
        }
        for &e in self.unordered.get(&unordered(&norm)).into_iter().flatten() {
            offer(e, 0.98, Method::Unordered);
        }
        for (e, cosine) in self.nearest(&norm, opts.top_k * 4) {
            if cosine >= opts.min_score {
                offer(e, cosine.min(0.97), Method::Tfidf);
            }
        }
        let mut ranked: Vec<(u32, (f64, Method, u32))> = best.into_iter().collect();
        // Ties: a label in the query's language first, then the concept's order in the sources.
        let same_lang = |e: u32| {
            let en = &self.entries[e as usize];
            let l = &self.concepts[en.concept as usize].labels[en.label as usize];
            lang.is_some() && l.lang.as_deref() == lang
        };
        ranked.sort_by(|a, b| {
            b.1 .0
                .total_cmp(&a.1 .0)
                .then(same_lang(b.1 .2).cmp(&same_lang(a.1 .2)))
                .then(a.0.cmp(&b.0))
        });
        ranked
            .into_iter()
            .take(opts.top_k)
            .map(|(c, (score, method, e))| self.candidate(c, e, score, method, lang))
            .collect()
    }

    /// The `k` labels whose TF-IDF vectors are nearest to `norm`'s, with their cosines.
    fn nearest(&self, norm: &str, k: usize) -> Vec<(u32, f64)> {
        let counts = term_counts(norm, self.ngram, &mut |g| self.grams.get(g).copied());
        // N-grams no label has count in the query's length (at the largest idf), so an answer that
        // is mostly unknown text scores low rather than matching on its few known n-grams.
        let max_idf = self.idf.iter().copied().fold(1.0f32, f32::max);
        let mut weights: Vec<(Option<u32>, f32)> = Vec::new();
        for (g, tf) in counts {
            if (g as usize) < self.grams.len() {
                weights.push((Some(g), tf * self.idf[g as usize]));
            } else {
                weights.push((None, tf * max_idf));
            }
        }
        let q_norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if q_norm == 0.0 {
            return Vec::new();
        }
        let mut acc: HashMap<u32, f32> = HashMap::new();
        for (g, w) in weights {
            let Some(g) = g else { continue };
            for &(e, ew) in &self.postings[g as usize] {
                *acc.entry(e).or_insert(0.0) += w / q_norm * ew;
            }
        }
        let mut hits: Vec<(u32, f64)> = acc.into_iter().map(|(e, s)| (e, s as f64)).collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
        hits
    }

    fn candidate(
        &self,
        c: u32,
        e: u32,
        score: f64,
        method: Method,
        lang: Option<&str>,
    ) -> Candidate {
        let concept = &self.concepts[c as usize];
        let matched = &concept.labels[self.entries[e as usize].label as usize];
        let pick = |f: &dyn Fn(&crate::terms::Label) -> bool| concept.labels.iter().find(|l| f(l));
        let preferred = lang
            .and_then(|q| pick(&|l| l.preferred && l.lang.as_deref() == Some(q)))
            .or_else(|| lang.and_then(|q| pick(&|l| l.lang.as_deref() == Some(q))))
            .or_else(|| pick(&|l| l.preferred && l.lang.as_deref() == Some("en")))
            .or_else(|| pick(&|l| l.preferred))
            .unwrap_or(matched);
        Candidate {
            concept_id: concept.id.clone(),
            iri: concept.iri.clone(),
            label: preferred.text.clone(),
            label_lang: preferred.lang.clone(),
            matched: matched.text.clone(),
            matched_lang: matched.lang.clone(),
            score: (score * 1e4).round() / 1e4,
            method,
            source: concept.source.clone(),
        }
    }
}

/// N-gram counts of a normalised form, each n-gram's id given by `id_of` (`None`: not in the index;
/// such n-grams are counted under ids of their own, past `u32::MAX / 2`, never looked up).
fn term_counts(
    norm: &str,
    n: usize,
    id_of: &mut dyn FnMut(&str) -> Option<u32>,
) -> Vec<(u32, f32)> {
    let mut unknown: HashMap<String, u32> = HashMap::new();
    let mut counts: HashMap<u32, f32> = HashMap::new();
    for g in char_ngrams(norm, n) {
        let id = match id_of(&g) {
            Some(id) => id,
            None => {
                let next = u32::MAX / 2 + unknown.len() as u32;
                *unknown.entry(g).or_insert(next)
            }
        };
        *counts.entry(id).or_insert(0.0) += 1.0;
    }
    let mut out: Vec<(u32, f32)> = counts.into_iter().collect();
    out.sort_unstable_by_key(|&(g, _)| g);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terms::Label;

    fn concept(id: &str, labels: &[(&str, &str)]) -> Concept {
        Concept {
            id: id.into(),
            iri: format!("urn:t:{id}"),
            labels: labels
                .iter()
                .enumerate()
                .map(|(i, (t, l))| Label {
                    text: t.to_string(),
                    lang: Some(l.to_string()),
                    preferred: i < 2,
                })
                .collect(),
            description: None,
            source: "t".into(),
        }
    }

    fn index() -> Index {
        Index::build(
            vec![
                concept(
                    "htn",
                    &[
                        ("arterial hypertension", "en"),
                        ("артериална хипертония", "bg"),
                    ],
                ),
                concept(
                    "dm2",
                    &[("type 2 diabetes", "en"), ("захарен диабет тип 2", "bg")],
                ),
                concept(
                    "af",
                    &[
                        ("atrial fibrillation", "en"),
                        ("fibrilación auricular", "es"),
                    ],
                ),
                concept("only-bg", &[("исхемичен инсулт", "bg")]),
            ],
            Vec::new(),
            3,
        )
    }

    #[test]
    fn exact_unordered_and_nearest_matches_rank_as_they_should() {
        let idx = index();
        let opts = LinkOptions::default();
        let exact = idx.link("Arterial  HYPERTENSION.", Some("en"), &opts);
        assert_eq!(exact[0].concept_id, "htn");
        assert_eq!(exact[0].method, Method::Exact);
        assert_eq!(exact[0].score, 1.0);
        let unordered = idx.link("hypertension, arterial", Some("en"), &opts);
        assert_eq!(
            (unordered[0].concept_id.as_str(), unordered[0].method),
            ("htn", Method::Unordered)
        );
        // A typo and an inflection: nearest by n-grams.
        let typo = idx.link("atrial fibrilation", Some("en"), &opts);
        assert_eq!(
            (typo[0].concept_id.as_str(), typo[0].method),
            ("af", Method::Tfidf)
        );
        assert!(typo[0].score > 0.6 && typo[0].score < 1.0, "{typo:?}");
        let inflected = idx.link("артериалната хипертония", Some("bg"), &opts);
        assert_eq!(inflected[0].concept_id, "htn");
        assert!(idx
            .link("completely unrelated words", Some("en"), &opts)
            .is_empty());
    }

    #[test]
    fn a_concept_is_reported_with_its_label_in_the_query_language() {
        let idx = index();
        let opts = LinkOptions::default();
        // A Bulgarian answer matching the Bulgarian label: label in Bulgarian.
        let bg = idx.link("захарен диабет тип 2", Some("bg"), &opts);
        assert_eq!(
            (bg[0].label.as_str(), bg[0].label_lang.as_deref()),
            ("захарен диабет тип 2", Some("bg"))
        );
        // An English answer for a concept whose only label is Bulgarian still links (cross-lingual
        // through the shared id; here through the surface form), reported with the label it has.
        let only = idx.link("исхемичен инсулт", Some("en"), &opts);
        assert_eq!(only[0].concept_id, "only-bg");
        assert_eq!(only[0].label_lang.as_deref(), Some("bg"));
        // A Spanish answer, a concept without a Spanish preferred label in first place: Spanish label.
        let es = idx.link("fibrilación auricular", Some("es"), &opts);
        assert_eq!(es[0].label, "fibrilación auricular");
        let en = idx.link("fibrilación auricular", Some("en"), &opts);
        assert_eq!(en[0].label, "atrial fibrillation");
    }

    #[test]
    fn saved_and_loaded_indexes_answer_alike() {
        let dir = tempfile::tempdir().unwrap();
        let idx = index();
        idx.save(dir.path(), &[]).unwrap();
        let back = Index::load(dir.path()).unwrap();
        let opts = LinkOptions::default();
        for q in ["atrial fibrilation", "тип 2 диабет захарен", "hypertension"] {
            assert_eq!(
                idx.link(q, Some("en"), &opts),
                back.link(q, Some("en"), &opts)
            );
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("index.json")).unwrap())
                .unwrap();
        assert_eq!(summary["concepts"], 4);
        assert_eq!(summary["labels"], 7);
    }
}
