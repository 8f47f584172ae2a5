//! Corpus assembly into token shards, tokenizer training, and QA-set validation, repair and merging.

pub mod clean;
pub mod corpus;
/// Language identification lives in the model crate, shared with concept extraction.
pub use model::language;
pub mod near_dup;
pub mod qa_sets;
pub mod sources;
pub mod tokenizer_train;
