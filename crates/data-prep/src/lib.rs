//! Corpus assembly into token shards, tokenizer training, and (issue #4, to come) QA-set repair.

pub mod clean;
pub mod corpus;
pub mod sources;
pub mod tokenizer_train;
