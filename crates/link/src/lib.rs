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
