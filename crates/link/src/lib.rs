//! Entity linking of extracted answers to the terminologies users bring (issue 18): an answer such as
//! "артериална хипертония" becomes a concept id with its IRI, so extraction tables turn into a knowledge
//! graph a triple store loads.
//!
//! - [`terms`]: term lists (CSV/TSV/Parquet), SKOS (N-Triples, Turtle) and OBO → concepts with labels
//!   per language, merged by (source name, id) so that one concept has its names in every language;
//! - [`normalize`]: case, diacritics, punctuation and word order out of the way;
//! - [`index`]: normalised exact match, then character 3-gram TF-IDF nearest neighbours over every
//!   label (scispaCy's approach), built once and saved with its sources' hashes.

pub mod index;
pub mod normalize;
pub mod terms;

pub use index::{Candidate, Index, LinkOptions, Method};
pub use terms::{Concept, Label, TermSource};

use std::path::PathBuf;

/// Reads `sources` and indexes their concepts with character `ngram`-grams, the sources' hashes
/// recorded; the rejects come back beside the index.
pub fn build_index(
    sources: &[TermSource],
    ngram: usize,
) -> anyhow::Result<(Index, Vec<terms::Reject>)> {
    let (concepts, rejects) = terms::read_all(sources)?;
    Ok((
        Index::build(concepts, terms::hash_sources(sources)?, ngram),
        rejects,
    ))
}

/// The linking options of a command that links its answers (`extract`, `serve`).
#[derive(clap::Args, Clone, Debug)]
pub struct LinkArgs {
    /// Link every accepted answer to the concepts of this index (`link index --out DIR`).
    #[arg(long)]
    pub link_index: Option<PathBuf>,
    /// Candidates kept per answer.
    #[arg(long, default_value_t = 3)]
    pub link_top_k: usize,
    /// Least character n-gram cosine for a candidate that is not an exact match.
    #[arg(long, default_value_t = 0.3)]
    pub link_min_score: f64,
}

impl LinkArgs {
    /// The index, when one is named, read now (a wrong path fails before any model work), with a
    /// warning for each source that changed since it was built.
    pub fn load(&self) -> anyhow::Result<Option<Index>> {
        let Some(dir) = &self.link_index else {
            return Ok(None);
        };
        let index = Index::load(dir)?;
        for stale in index.stale_sources()? {
            eprintln!("warning: {stale} changed since the link index was built (or is gone)");
        }
        Ok(Some(index))
    }

    pub fn options(&self) -> LinkOptions {
        LinkOptions {
            top_k: self.link_top_k,
            min_score: self.link_min_score,
        }
    }
}
