//! Extractive-QA scoring, shared by qa-finetune's evaluation and the eval tool: EM/F1 with the official
//! SQuAD scripts' behaviour (`score`), answer normalisation for many languages (`normalize`), reports
//! per language with a Markdown table (`report`), and BioASQ factoid metrics (`bioasq`). The SQuAD
//! format itself is `text::qa::data`, re-exported here as `data`.

pub mod bioasq;
pub mod normalize;
pub mod report;
pub mod score;

pub use text::qa::data;
