//! Extractive-QA evaluation: EM/F1 with the official SQuAD scripts' behaviour, answer normalisation for
//! many languages, BioASQ factoid metrics, and nightly evaluation with a history and plots.

pub mod bioasq;
pub mod curves;
pub use text::qa::data;
pub mod history;
pub mod nightly;
pub mod normalize;
pub mod plot;
pub mod report;
pub mod score;
