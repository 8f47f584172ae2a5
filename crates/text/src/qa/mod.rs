//! Extractive QA data: the SQuAD format (`data`: ids and gold answers as the official script reads
//! them; `flat`: the one-record-per-question layout of `datasets` and `run_qa.py`, read as SQuAD;
//! `squad`: examples with answer positions), QA windows (`windows`), `run_qa.py`'s features (windows and labels) and
//! `utils_qa.py`'s post-processing (n-best spans → answers), and the settings prediction repeats
//! (`settings`: `medqa.json`, run_qa.py's defaults, the command line's flags).

pub mod data;
pub mod features;
pub mod flat;
pub mod postprocess;
pub mod settings;
pub mod squad;
pub mod windows;
