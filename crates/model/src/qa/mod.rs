//! Extractive QA on top of the encoder: SQuAD-format examples, `run_qa.py`'s features (windows and
//! labels) and post-processing (n-best spans → answers), shared by qa-finetune and extraction.

pub mod features;
pub mod inference;
pub mod postprocess;
pub mod squad;
