//! Corpus assembly into token shards, tokenizer training, QA-set validation, repair and merging, Label
//! Studio exports into QA sets, and the import of a real pretrained encoder (multilingual-e5-small) as an
//! XLM-R checkpoint.

pub mod clean;
pub mod corpus;
pub mod e5s1;
pub mod import_e5;
pub mod labelstudio;
/// Language identification lives in the model crate, shared with concept extraction.
pub use text::language;
pub mod near_dup;
pub mod qa_sets;
pub mod sources;
pub mod staging;
pub mod tokenizer_train;

/// `out` with `suffix` appended to its file name: the files a command writes beside its output.
pub fn beside(out: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
