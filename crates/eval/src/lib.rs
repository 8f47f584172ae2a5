//! Extractive-QA evaluation: EM/F1 with the official SQuAD scripts' behaviour, answer normalisation for
//! many languages, and (issue #3, to come) BioASQ metrics and nightly evaluation.

pub mod bioasq;
pub mod data;
pub mod normalize;
pub mod report;
pub mod score;
