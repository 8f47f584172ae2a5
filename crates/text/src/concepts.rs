//! The concept catalogue (`configs/concepts-*.toml`): what to extract, with questions in several
//! languages and an optional per-concept no-answer threshold.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub name: String,
    /// Prefix of the IRIs in the JSON-LD / N-Triples export.
    #[serde(default = "default_base_iri")]
    pub base_iri: String,
    /// Answers whose probability (softmax over the n-best) is below this are "no answer"; a concept
    /// may set its own.
    #[serde(default)]
    pub min_probability: f64,
    pub concepts: Vec<Concept>,
}

fn default_base_iri() -> String {
    "urn:medqa:".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    /// Column name in the wide table: lower-case letters, digits and `_`.
    pub id: String,
    pub description: String,
    /// What an answer looks like: number, measurement, duration, time, date, drug, finding, text …
    pub answer_type: String,
    #[serde(default)]
    pub min_probability: Option<f64>,
    /// Language code → question.
    pub questions: BTreeMap<String, String>,
}

impl Catalogue {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cat: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid concept catalogue", path.display()))?;
        cat.validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(cat)
    }

    fn validate(&self) -> Result<()> {
        if self.concepts.is_empty() {
            bail!("no concepts");
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.concepts {
            if c.id.is_empty()
                || !c
                    .id
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                bail!(
                    "concept id '{}': use lower-case letters, digits and _",
                    c.id
                );
            }
            if !seen.insert(c.id.as_str()) {
                bail!("concept id '{}' appears twice", c.id);
            }
            if c.questions.is_empty() || c.questions.values().any(|q| q.trim().is_empty()) {
                bail!("concept '{}' needs at least one non-empty question", c.id);
            }
            if let Some(p) = c.min_probability.filter(|p| !(0.0..=1.0).contains(p)) {
                bail!("concept '{}': min_probability {p} is not in [0, 1]", c.id);
            }
        }
        Ok(())
    }

    /// One least probability for every concept (the command line's `--min-probability`), replacing
    /// the catalogue's and each concept's own.
    pub fn override_min_probability(&mut self, p: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&p) {
            bail!("--min-probability {p} is not in [0, 1]");
        }
        self.min_probability = p;
        for c in &mut self.concepts {
            c.min_probability = None;
        }
        Ok(())
    }

    pub fn threshold(&self, c: &Concept) -> f64 {
        c.min_probability.unwrap_or(self.min_probability)
    }
}

/// Which language to ask in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuestionLanguage {
    /// The document's language where the concept has a question in it, else English, else the first.
    Document,
    /// Always this language (a concept without it falls back as above).
    Fixed(String),
}

impl std::str::FromStr for QuestionLanguage {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "doc" | "document" => Self::Document,
            code => Self::Fixed(code.to_ascii_lowercase()),
        })
    }
}

impl Concept {
    /// (language, question) to ask of a document in `doc_lang`.
    pub fn question(&self, doc_lang: &str, choice: &QuestionLanguage) -> (&str, &str) {
        let wanted = match choice {
            QuestionLanguage::Document => doc_lang,
            QuestionLanguage::Fixed(code) => code.as_str(),
        };
        let pick = self
            .questions
            .get_key_value(wanted)
            .or_else(|| self.questions.get_key_value("en"))
            .or_else(|| self.questions.iter().next());
        pick.map(|(l, q)| (l.as_str(), q.as_str()))
            .unwrap_or(("", ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concept() -> Concept {
        Concept {
            id: "nihss".into(),
            description: "NIHSS on admission".into(),
            answer_type: "number".into(),
            min_probability: None,
            questions: [
                ("en".to_string(), "What was the NIHSS?".to_string()),
                ("ro".into(), "Care a fost scorul NIHSS?".into()),
            ]
            .into(),
        }
    }

    #[test]
    fn question_language_falls_back_to_english() {
        let c = concept();
        assert_eq!(c.question("ro", &QuestionLanguage::Document).0, "ro");
        assert_eq!(c.question("bg", &QuestionLanguage::Document).0, "en");
        assert_eq!(c.question("ro", &"en".parse().unwrap()).0, "en");
    }

    #[test]
    fn bad_catalogues_are_refused() {
        let mut cat = Catalogue {
            name: "t".into(),
            base_iri: default_base_iri(),
            min_probability: 0.0,
            concepts: vec![concept(), concept()],
        };
        assert!(cat.validate().unwrap_err().to_string().contains("twice"));
        cat.concepts[1].id = "Bad Id".into();
        assert!(cat.validate().is_err());
        cat.concepts[1].id = "ok_2".into();
        cat.concepts[1].min_probability = Some(1.5);
        assert!(cat.validate().is_err());
        cat.concepts[1].min_probability = Some(0.5);
        cat.validate().unwrap();
        assert_eq!(cat.threshold(&cat.concepts[1]), 0.5);
        assert_eq!(cat.threshold(&cat.concepts[0]), 0.0);
    }
}
