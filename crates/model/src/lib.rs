//! XLM-RoBERTa on libtorch with Hugging Face interop, shared by every medqa tool.
//!
//! - [`config`]: `config.json`; [`xlm_roberta`]: the architecture and its MLM and QA heads;
//! - [`checkpoint`]: `model.safetensors` under `transformers`' key names; [`pretrained`]: model directories;
//! - [`tokenizer`]: `tokenizer.json`, single texts and question/context windows with character offsets;
//! - [`device`]: `--device` handling; [`fsutil`]: atomic writes; [`snapshot`]: files captured now, written later.

pub mod attention;
pub mod autocast;
pub mod batch;
pub mod checkpoint;
pub mod cuda_graph;
pub mod determinism;
pub use text::config;
pub mod device;
pub mod dist;
pub mod dropout;
pub mod fsutil;
pub mod host_memory;
pub use text::language;
pub mod loss;
pub mod mlm;
pub mod parity;
pub mod pretrained;
pub mod profiler;
pub mod qa;
pub mod snapshot;
pub use text::{runconfig, shards};
mod ffi;
pub use text::tokenizer;
pub mod train;
pub mod weights;
pub mod xlm_roberta;

pub use config::XlmRobertaConfig;
pub use pretrained::Pretrained;
pub use tokenizer::XlmrTokenizer;
pub use xlm_roberta::{XlmRobertaForMaskedLM, XlmRobertaForQuestionAnswering, XlmRobertaModel};

/// Held by every unit test that sets or draws from libtorch's process-wide state (the default
/// generator, the thread count, the attention switches): tests run in parallel threads, and one test's
/// `manual_seed` must not be consumed by another's draw.
#[cfg(test)]
pub(crate) fn global_state_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
