//! Extractive QA on top of the encoder: batched inference here; the SQuAD format, `run_qa.py`'s
//! features and post-processing live in the torch-free `text` crate and are re-exported.

pub mod inference;
pub use text::qa::{data, features, postprocess, settings, squad};
