//! Training machinery shared by MLM pre-training and QA fine-tuning.

pub mod optim;
pub mod schedule;

pub use optim::{AdamW, AdamWConfig};
pub use schedule::{Schedule, ScheduleKind};
