//! Training machinery shared by MLM pre-training and QA fine-tuning: one loop (`trainer`) and its
//! settings (`config`, `freeze`), AdamW with savable state (`optim`), the step as CUDA graphs
//! (`graphs`), learning-rate schedules (`schedule`), fp16's loss scale (`loss_scale`), atomic
//! checkpoints (`checkpoint`), when to log, evaluate and save (`cadence`), a stop asked for by a
//! signal (`stop`), input tokens counted (`tokens_seen`), progress, TensorBoard and history (`log`),
//! and the run manifest (`manifest`).

pub mod cadence;
pub mod checkpoint;
pub mod config;
mod freeze;
mod graphs;
pub mod log;
pub mod loss_scale;
pub mod manifest;
pub mod optim;
pub mod run_dir;
pub mod sampling;
pub mod schedule;
pub mod stop;
pub mod task;
pub mod tokens_seen;
pub mod trainer;

pub use cadence::{Cadence, Cadences, IntervalStrategy, SaveStrategy};
pub use config::TrainConfig;
pub use optim::{AdamW, AdamWConfig};
pub use sampling::{Sampling, Source};
pub use schedule::{Curve, Mode, Plateau, Schedule, ScheduleArgs, ScheduleKind, ThresholdMode};
pub use task::Task;
pub use tokens_seen::TokensSeen;
pub use trainer::{train, train_in_group, TrainOutcome};
