//! The eval tool's library: nightly evaluation of a model on a suite of data sets, with a history, its
//! deltas and plots (`nightly`, `history`, `plot`, `curves`); training runs side by side (`runs`). Scoring itself (EM/F1, normalisation,
//! reports, BioASQ) is the `scoring` crate, re-exported here under its module names.

pub mod curves;
pub mod history;
pub mod nightly;
pub mod plot;
pub mod runs;

pub use scoring::{bioasq, data, normalize, report, score};
