//! Learning-rate schedules with warm-up, as `transformers.get_scheduler` defines them.
//!
//! `multiplier(step)` is the factor applied to the peak learning rate for the optimizer step that
//! follows `step` completed steps; like `transformers`, the first step of a warm-up runs at zero.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear warm-up, then linear decay to zero at the last step.
    #[default]
    Linear,
    /// Linear warm-up, then half a cosine period down to zero.
    Cosine,
    /// Linear warm-up, then constant.
    Constant,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    pub fn multiplier(&self, step: u64) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < self.warmup_steps {
            return s / w.max(1.0);
        }
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            ScheduleKind::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (PI * 2.0 * 0.5 * progress).cos())).max(0.0)
            }
        }
    }
}
