//! Text and data for medqa, without libtorch: what data-prep, eval and the model crate share.
//!
//! - [`tokenizer`]: `tokenizer.json`, single texts and question/context windows with character offsets;
//!   [`tokenizer_config`]: which pipeline transformers builds from it;
//! - [`shards`]: the tokenized corpus format; [`language`]: language identification;
//! - [`qa`]: the SQuAD format ([`qa::data`] for question ids and answers, [`qa::squad`] for examples),
//!   `run_qa.py`'s features and `utils_qa.py`'s post-processing;
//! - [`concepts`]: the concept catalogue (what extract asks, and data-prep's Label Studio import);
//!   [`label_studio`]: how a Label Studio task holds its note (serve's backend, data-prep's import), and
//!   [`label_studio_links`]: a note behind a link (`<Text valueType="url">`), fetched from Label Studio;
//! - [`json_records`]: a JSON file of records (an array, or an object's `data` array), as `datasets` reads one;
//! - [`config`]: `config.json`; [`runconfig`]: TOML run configs with `--set` overrides;
//! - [`progress`]: progress bars; [`flags`]: the benchmark examples' `--key value` arguments;
//! - [`bom`] (`fsutil::bom`, re-exported): the byte-order mark Windows tools put before a file's text, taken
//!   off by every reader;
//! - [`weight_files`]: a model directory's weights, one file or an index and its shards.

pub mod concepts;
pub mod config;
pub mod flags;
pub mod json_records;
pub mod label_studio;
pub mod label_studio_links;
pub mod language;
pub mod progress;
pub mod qa;
pub mod runconfig;
pub mod shards;
pub mod tokenizer;
pub mod tokenizer_config;
pub mod weight_files;

pub use config::XlmRobertaConfig;
pub use fsutil::bom;
pub use tokenizer::XlmrTokenizer;
