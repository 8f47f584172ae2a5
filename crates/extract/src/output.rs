//! Extraction results as tables (long: one row per document × concept; wide: one row per document,
//! one column per concept) and as linked data (JSON-LD or N-Triples) for a knowledge graph.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use tables::polars::prelude::{Column, DataFrame};

use crate::concepts::Catalogue;
use crate::Extraction;

/// With `links` (one list per row, best first), the best candidate's concept and how it matched,
/// and every candidate as JSON in `link_candidates`.
pub fn long_table(
    rows: &[Extraction],
    links: Option<&[Vec<link::Candidate>]>,
) -> Result<DataFrame> {
    let s = |f: fn(&Extraction) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let mut columns = vec![
        Column::new("doc_id".into(), s(|r| r.doc_id.clone())),
        Column::new("doc_lang".into(), s(|r| r.doc_lang.clone())),
        Column::new("concept".into(), s(|r| r.concept.clone())),
        Column::new("question_lang".into(), s(|r| r.question_lang.clone())),
        Column::new(
            "answer".into(),
            rows.iter().map(|r| r.answer.clone()).collect::<Vec<_>>(),
        ),
        Column::new("candidate".into(), s(|r| r.candidate.clone())),
        Column::new(
            "start".into(),
            rows.iter().map(|r| r.start).collect::<Vec<_>>(),
        ),
        Column::new("end".into(), rows.iter().map(|r| r.end).collect::<Vec<_>>()),
        Column::new(
            "score".into(),
            rows.iter()
                .map(|r| r.score.is_finite().then_some(r.score))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "probability".into(),
            rows.iter().map(|r| r.probability).collect::<Vec<_>>(),
        ),
        Column::new(
            "null_odds".into(),
            rows.iter().map(|r| r.null_odds).collect::<Vec<_>>(),
        ),
    ];
    if let Some(links) = links {
        let best = |f: fn(&link::Candidate) -> Option<String>| {
            links
                .iter()
                .map(|l| l.first().and_then(f))
                .collect::<Vec<_>>()
        };
        columns.extend([
            Column::new("concept_id".into(), best(|c| Some(c.concept_id.clone()))),
            Column::new("concept_iri".into(), best(|c| Some(c.iri.clone()))),
            Column::new("concept_label".into(), best(|c| Some(c.label.clone()))),
            Column::new("concept_label_lang".into(), best(|c| c.label_lang.clone())),
            Column::new("link_matched".into(), best(|c| Some(c.matched.clone()))),
            Column::new("link_matched_lang".into(), best(|c| c.matched_lang.clone())),
            Column::new(
                "link_score".into(),
                links
                    .iter()
                    .map(|l| l.first().map(|c| c.score))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "link_method".into(),
                best(|c| Some(c.method.as_str().to_owned())),
            ),
            Column::new(
                "link_candidates".into(),
                links
                    .iter()
                    .map(|l| serde_json::to_string(l).unwrap_or_default())
                    .collect::<Vec<_>>(),
            ),
        ]);
    }
    tables::frame(columns)
}

/// One row per document (in first-seen order), one column per concept (catalogue order): the
/// accepted answer or null.
pub fn wide_table(rows: &[Extraction], catalogue: &Catalogue) -> Result<DataFrame> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    let mut cells: BTreeMap<(&str, &str), Option<String>> = BTreeMap::new();
    for r in rows {
        if !order.iter().any(|(d, _)| *d == r.doc_id) {
            order.push((&r.doc_id, &r.doc_lang));
        }
        cells.insert((&r.doc_id, &r.concept), r.answer.clone());
    }
    let mut columns = vec![
        Column::new(
            "doc_id".into(),
            order.iter().map(|o| o.0.to_owned()).collect::<Vec<_>>(),
        ),
        Column::new(
            "doc_lang".into(),
            order.iter().map(|o| o.1.to_owned()).collect::<Vec<_>>(),
        ),
    ];
    for c in &catalogue.concepts {
        let values: Vec<Option<String>> = order
            .iter()
            .map(|(d, _)| cells.get(&(*d, c.id.as_str())).cloned().flatten())
            .collect();
        columns.push(Column::new(c.id.as_str().into(), values));
    }
    tables::frame(columns)
}

/// Percent-encodes everything but ASCII letters, digits and `-_.` (UTF-8 bytes, as IRIs want).
fn iri_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn nt_literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The accepted answers as linked data: `.jsonld` (JSON-LD) or `.nt` (N-Triples). Each answer is a
/// node with its document, concept, value, offsets and score.
///
/// With `links`, an answer's best concept is the object of `linkedConcept` (its IRI, not a literal),
/// with `linkScore` and `linkMethod`, and the concept node carries its preferred label.
pub fn linked_data(
    rows: &[Extraction],
    links: Option<&[Vec<link::Candidate>]>,
    catalogue: &Catalogue,
    path: &Path,
) -> Result<String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let graph = Graph {
        base: &catalogue.base_iri,
        voc: format!("{}vocab#", catalogue.base_iri),
        rows,
        links,
    };
    match ext.as_str() {
        "jsonld" | "json" => graph.json_ld(),
        "nt" => Ok(graph.n_triples()),
        _ => bail!(
            "{}: linked data is written as .jsonld or .nt",
            path.display()
        ),
    }
}

/// The accepted answers and their links, as the two linked-data forms write them.
struct Graph<'a> {
    base: &'a str,
    voc: String,
    rows: &'a [Extraction],
    links: Option<&'a [Vec<link::Candidate>]>,
}

impl Graph<'_> {
    fn accepted(&self) -> impl Iterator<Item = (usize, &Extraction)> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.answer.is_some())
    }

    fn best(&self, i: usize) -> Option<&link::Candidate> {
        self.links.and_then(|l| l[i].first())
    }

    fn node(&self, r: &Extraction) -> String {
        format!(
            "{}extraction/{}/{}",
            self.base,
            iri_part(&r.doc_id),
            r.concept
        )
    }

    fn json_ld(&self) -> Result<String> {
        let (base, voc) = (self.base, &self.voc);
        let accepted = self.accepted();
        let best = |i| self.best(i);
        let node = |r| self.node(r);
        let graph: Vec<serde_json::Value> = accepted
            .map(|(i, r)| {
                let mut node = serde_json::json!({
                    "@id": node(r),
                    "@type": "Extraction",
                    "document": { "@id": format!("{base}document/{}", iri_part(&r.doc_id)) },
                    "concept": { "@id": format!("{base}concept/{}", r.concept) },
                    "value": { "@value": r.answer, "@language": r.doc_lang },
                    "start": r.start, "end": r.end, "score": r.score, "probability": r.probability,
                });
                if let Some(c) = best(i) {
                    node["linkedConcept"] = serde_json::json!({
                        "@id": c.iri,
                        "http://www.w3.org/2004/02/skos/core#prefLabel":
                            { "@value": c.label, "@language": c.label_lang },
                    });
                    node["linkScore"] = serde_json::json!(c.score);
                    node["linkMethod"] = serde_json::json!(c.method.as_str());
                }
                node
            })
            .collect();
        let doc = serde_json::json!({
            "@context": {
                "@vocab": voc,
                "start": { "@type": "http://www.w3.org/2001/XMLSchema#integer" },
                "end": { "@type": "http://www.w3.org/2001/XMLSchema#integer" },
                "score": { "@type": "http://www.w3.org/2001/XMLSchema#double" },
                "probability": { "@type": "http://www.w3.org/2001/XMLSchema#double" },
            },
            "@graph": graph,
        });
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    }

    fn n_triples(&self) -> String {
        let (base, voc) = (self.base, &self.voc);
        let accepted = self.accepted();
        let best = |i| self.best(i);
        let node = |r| self.node(r);
        let mut out = String::new();
        let xsd = "http://www.w3.org/2001/XMLSchema#";
        for (i, r) in accepted {
            let n = format!("<{}>", node(r));
            let p = |name: &str| format!("<{voc}{name}>");
            out.push_str(&format!(
                "{n} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> {} .\n",
                p("Extraction")
            ));
            out.push_str(&format!(
                "{n} {} <{base}document/{}> .\n",
                p("document"),
                iri_part(&r.doc_id)
            ));
            out.push_str(&format!(
                "{n} {} <{base}concept/{}> .\n",
                p("concept"),
                r.concept
            ));
            let value = r.answer.as_deref().unwrap_or_default();
            out.push_str(&format!(
                "{n} {} {}@{} .\n",
                p("value"),
                nt_literal(value),
                r.doc_lang
            ));
            if let (Some(s), Some(e)) = (r.start, r.end) {
                out.push_str(&format!("{n} {} \"{s}\"^^<{xsd}integer> .\n", p("start")));
                out.push_str(&format!("{n} {} \"{e}\"^^<{xsd}integer> .\n", p("end")));
            }
            out.push_str(&format!(
                "{n} {} \"{:e}\"^^<{xsd}double> .\n",
                p("score"),
                r.score
            ));
            if let Some(c) = best(i) {
                out.push_str(&format!("{n} {} <{}> .\n", p("linkedConcept"), c.iri));
                out.push_str(&format!(
                    "{n} {} \"{:e}\"^^<{xsd}double> .\n",
                    p("linkScore"),
                    c.score
                ));
                out.push_str(&format!(
                    "{n} {} {} .\n",
                    p("linkMethod"),
                    nt_literal(c.method.as_str())
                ));
                let lang = c
                    .label_lang
                    .as_deref()
                    .map(|l| format!("@{l}"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "<{}> <http://www.w3.org/2004/02/skos/core#prefLabel> {}{lang} .\n",
                    c.iri,
                    nt_literal(&c.label)
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concepts::Concept;

    fn row(doc: &str, concept: &str, answer: Option<&str>) -> Extraction {
        Extraction {
            doc_id: doc.into(),
            doc_lang: "ro".into(),
            concept: concept.into(),
            question_lang: "en".into(),
            answer: answer.map(str::to_owned),
            candidate: answer.unwrap_or("x").into(),
            start: Some(3),
            end: Some(5),
            score: 4.5,
            probability: 0.75,
            null_odds: None,
        }
    }

    fn catalogue() -> Catalogue {
        let c = |id: &str| Concept {
            id: id.into(),
            description: String::new(),
            answer_type: "text".into(),
            min_probability: None,
            questions: [("en".to_string(), "q?".to_string())].into(),
        };
        Catalogue {
            name: "t".into(),
            base_iri: "urn:medqa:".into(),
            min_probability: 0.0,
            concepts: vec![c("nihss"), c("glucose")],
        }
    }

    #[test]
    fn wide_table_has_a_column_per_concept_in_catalogue_order() {
        let rows = [
            row("d1", "glucose", Some("7 mmol/l")),
            row("d1", "nihss", None),
            row("d 2", "nihss", Some("12")),
        ];
        let wide = wide_table(&rows, &catalogue()).unwrap();
        let md = tables::markdown(&wide, 2);
        assert!(
            md.starts_with("| doc_id | doc_lang | nihss | glucose |"),
            "{md}"
        );
        assert!(
            md.contains("| d1 | ro |  | 7 mmol/l |") && md.contains("| d 2 | ro | 12 |  |"),
            "{md}"
        );
        assert_eq!(long_table(&rows, None).unwrap().height(), 3);
    }

    #[test]
    fn linked_data_holds_only_accepted_answers() {
        let rows = [
            row("d 1", "nihss", Some("12 \"pts\"")),
            row("d2", "glucose", None),
        ];
        let nt = linked_data(&rows, None, &catalogue(), Path::new("x.nt")).unwrap();
        assert_eq!(nt.lines().count(), 7);
        assert!(nt.contains("<urn:medqa:document/d%201>"), "{nt}");
        assert!(nt.contains("\"12 \\\"pts\\\"\"@ro"), "{nt}");
        let ld: serde_json::Value = serde_json::from_str(
            &linked_data(&rows, None, &catalogue(), Path::new("x.jsonld")).unwrap(),
        )
        .unwrap();
        assert_eq!(ld["@graph"].as_array().unwrap().len(), 1);
        assert_eq!(ld["@graph"][0]["value"]["@value"], "12 \"pts\"");
        assert!(linked_data(&rows, None, &catalogue(), Path::new("x.ttl")).is_err());
    }

    #[test]
    fn linked_answers_point_at_their_concept_iri() {
        let rows = [
            row("d1", "comorbidities", Some("hipertensiune arterială")),
            row("d2", "comorbidities", None),
        ];
        let best = link::Candidate {
            concept_id: "htn".into(),
            iri: "http://id.nlm.nih.gov/mesh/D006973".into(),
            label: "hipertensiune arterială".into(),
            label_lang: Some("ro".into()),
            matched: "hipertensiune arterială".into(),
            matched_lang: Some("ro".into()),
            score: 1.0,
            method: link::Method::Exact,
            source: "mesh".into(),
        };
        let links = vec![vec![best.clone()], Vec::new()];
        let nt = linked_data(&rows, Some(&links), &catalogue(), Path::new("x.nt")).unwrap();
        assert!(
            nt.contains("<urn:medqa:vocab#linkedConcept> <http://id.nlm.nih.gov/mesh/D006973> ."),
            "{nt}"
        );
        assert!(nt.contains("<http://id.nlm.nih.gov/mesh/D006973> <http://www.w3.org/2004/02/skos/core#prefLabel> \"hipertensiune arterială\"@ro ."), "{nt}");
        let ld: serde_json::Value = serde_json::from_str(
            &linked_data(&rows, Some(&links), &catalogue(), Path::new("x.jsonld")).unwrap(),
        )
        .unwrap();
        assert_eq!(ld["@graph"][0]["linkedConcept"]["@id"], best.iri);
        let long = long_table(&rows, Some(&links)).unwrap();
        let md = tables::markdown(&long, 2);
        assert!(md.contains("| htn |") && md.contains("| exact |"), "{md}");
    }
}
