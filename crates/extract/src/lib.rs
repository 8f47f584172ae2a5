//! Concept extraction: every document × every concept of a catalogue asked of a fine-tuned QA model,
//! all questions of a chunk of documents batched together through the model crate's QA inference.
//! One row per document × concept: the answer, its character offsets in the original text, its score,
//! and the no-answer decision.

/// The catalogue is torch-free (`text::concepts`), so that data-prep reads it too.
pub use text::concepts;
pub mod documents;
pub mod journal;
pub mod output;

use anyhow::Result;
use model::autocast::Precision;
use model::qa::inference::QaModel;
use model::qa::squad::QaExample;
use serde::{Deserialize, Serialize};

use concepts::{Catalogue, QuestionLanguage};
use documents::Document;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    pub doc_id: String,
    pub doc_lang: String,
    pub concept: String,
    pub question_lang: String,
    /// The answer, or `None` when the model's decision is "no answer".
    pub answer: Option<String>,
    /// The best span even when it is not accepted as an answer (for threshold tuning).
    pub candidate: String,
    /// Character offsets of `candidate` in the document: `text[start..end]` in chars.
    pub start: Option<u64>,
    pub end: Option<u64>,
    /// start logit + end logit of the best span.
    pub score: f64,
    /// Its softmax probability over the n-best.
    pub probability: f64,
    /// SQuAD v2 models: null score − best span score (positive favours "no answer").
    pub null_odds: Option<f64>,
}

pub struct Options {
    pub question_lang: QuestionLanguage,
    pub batch_size: usize,
    pub precision: Precision,
    /// Documents whose questions go through the model together (bounds memory).
    pub docs_per_chunk: usize,
}

/// Extracts every concept from every document; `progress(n)` after each chunk of `n` documents.
pub fn extract(
    qa: &QaModel,
    catalogue: &Catalogue,
    docs: &[Document],
    opts: &Options,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Extraction>> {
    let mut out = Vec::with_capacity(docs.len() * catalogue.concepts.len());
    extract_chunks(qa, catalogue, docs, opts, 0, |_, n, rows| {
        out.extend(rows);
        progress(n);
        Ok(())
    })?;
    Ok(out)
}

/// The chunks of `docs_per_chunk` documents from chunk `first` on, each handed to `done(index,
/// documents, rows)` as soon as it is answered (so that a journal can keep it). A chunk's rows
/// depend on that chunk alone: resuming at a chunk gives the rows an uninterrupted run gives.
pub fn extract_chunks(
    qa: &QaModel,
    catalogue: &Catalogue,
    docs: &[Document],
    opts: &Options,
    first: usize,
    mut done: impl FnMut(usize, usize, Vec<Extraction>) -> Result<()>,
) -> Result<()> {
    let chunks = docs.chunks(opts.docs_per_chunk.max(1));
    for (index, chunk) in chunks.enumerate().skip(first) {
        let mut out = Vec::with_capacity(chunk.len() * catalogue.concepts.len());
        let mut examples = Vec::with_capacity(chunk.len() * catalogue.concepts.len());
        let mut asked = Vec::with_capacity(examples.capacity());
        for (d, doc) in chunk.iter().enumerate() {
            for (c, concept) in catalogue.concepts.iter().enumerate() {
                let (lang, question) = concept.question(&doc.lang, &opts.question_lang);
                examples.push(QaExample {
                    id: format!("{d}/{c}"),
                    question: question.to_owned(),
                    context: doc.text.clone(),
                    answers: Vec::new(),
                    unlocated: Vec::new(),
                    lang: Some(lang.to_owned()),
                });
                asked.push((doc, concept, lang.to_owned()));
            }
        }
        let pred = qa.predict(&examples, opts.batch_size, opts.precision)?;
        let p = &pred.predictions;
        for (ex, (doc, concept, lang)) in examples.iter().zip(asked) {
            let best = p
                .nbest
                .get(&ex.id)
                .and_then(|n| n.iter().find(|e| e.offsets.is_some()));
            let null_odds = p.null_odds.get(&ex.id).copied();
            let model_says_none = p.answers.get(&ex.id).is_none_or(|a| a.is_empty());
            let (candidate, offsets, score, probability) = match best {
                Some(e) => (
                    e.text.clone(),
                    e.offsets,
                    e.start_logit + e.end_logit,
                    e.probability,
                ),
                None => (String::new(), None, f64::NEG_INFINITY, 0.0),
            };
            let accepted =
                best.is_some() && !model_says_none && probability >= catalogue.threshold(concept);
            out.push(Extraction {
                doc_id: doc.id.clone(),
                doc_lang: doc.lang.clone(),
                concept: concept.id.clone(),
                question_lang: lang,
                answer: accepted.then(|| candidate.clone()),
                candidate,
                start: offsets.map(|o| o.0 as u64),
                end: offsets.map(|o| o.1 as u64),
                score,
                probability,
                null_odds,
            });
        }
        done(index, chunk.len(), out)?;
    }
    Ok(())
}

/// The concepts each accepted answer may mean (none for rows without an answer), in the document's
/// language, rows in parallel.
pub fn link_answers(
    index: &link::Index,
    rows: &[Extraction],
    opts: &link::LinkOptions,
) -> Vec<Vec<link::Candidate>> {
    use rayon::prelude::*;
    rows.par_iter()
        .map(|r| match &r.answer {
            Some(a) => index.link(a, Some(&r.doc_lang), opts),
            None => Vec::new(),
        })
        .collect()
}
