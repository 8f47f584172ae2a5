//! When the loop logs, evaluates and saves: `transformers`' `logging_strategy`, `eval_strategy` and
//! `save_strategy`, each with its `*_steps` (a whole number of steps, or a fraction of the run's
//! steps), resolved once the run's length is known.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `transformers`' `IntervalStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntervalStrategy {
    /// Nothing during training. The run's last step still logs, evaluates and saves: what `transformers`
    /// users add with `trainer.save_model()` and run_qa.py's `--do_eval`.
    No,
    /// Every `*_steps` optimizer steps; 0: only at the end.
    #[default]
    Steps,
    /// At the step that completes each epoch.
    Epoch,
}

impl IntervalStrategy {
    pub fn name(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Steps => "steps",
            Self::Epoch => "epoch",
        }
    }
}

/// `transformers`' `SaveStrategy`: an interval, or "best".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveStrategy {
    No,
    #[default]
    Steps,
    Epoch,
    /// After each evaluation that improves on the best `metric_for_best_model` so far: a long
    /// fine-tuning run keeps its best models without a checkpoint at every evaluation.
    Best,
}

impl SaveStrategy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Best => "best",
            other => other.interval().name(),
        }
    }

    /// The interval it saves at ("best": none of its own; it follows the evaluations).
    pub fn interval(self) -> IntervalStrategy {
        match self {
            Self::No | Self::Best => IntervalStrategy::No,
            Self::Steps => IntervalStrategy::Steps,
            Self::Epoch => IntervalStrategy::Epoch,
        }
    }
}

/// Checks a `*_steps` setting as `TrainingArguments` does: a number ≥ 0, whole when above 1 (below
/// 1 it is a fraction of the run's steps).
pub fn check_steps(name: &str, value: f64) -> Result<()> {
    if !(value >= 0.0 && value.is_finite()) {
        bail!("{name} must be a number of steps ≥ 0 or a fraction in (0, 1), got {value}");
    }
    if value > 1.0 && value.fract() != 0.0 {
        bail!("{name} must be a whole number of steps when above 1 (below 1 it is a fraction of the run's steps), got {value}");
    }
    Ok(())
}

/// Whether `*_steps` holds a fraction of the run's steps.
pub fn is_fraction(value: f64) -> bool {
    value > 0.0 && value < 1.0
}

/// One of the three, resolved: the steps it falls on, besides the run's last (which always logs,
/// evaluates and saves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// Only at the end.
    AtEnd,
    /// Every so many optimizer steps.
    Every(u64),
    /// At the step that takes the last micro-batch of each epoch. Steps may straddle two epochs (the
    /// micro-batches of one data order run on across epochs), so this is the step during which the
    /// epoch ends.
    Epochs {
        micro_batches_per_step: u64,
        batches_per_epoch: u64,
    },
}

impl Cadence {
    /// `steps` of a run of `total_steps` whose epochs hold `batches_per_epoch` micro-batches (of the
    /// one data order all processes share) and whose steps take `micro_batches_per_step`. A fraction
    /// is rounded up, as `TrainerState.compute_steps`.
    pub fn resolve(
        strategy: IntervalStrategy,
        steps: f64,
        total_steps: u64,
        micro_batches_per_step: u64,
        batches_per_epoch: u64,
    ) -> Self {
        match strategy {
            IntervalStrategy::No => Self::AtEnd,
            IntervalStrategy::Steps if steps <= 0.0 => Self::AtEnd,
            IntervalStrategy::Steps if is_fraction(steps) => {
                Self::Every(((total_steps as f64 * steps).ceil() as u64).max(1))
            }
            IntervalStrategy::Steps => Self::Every(steps as u64),
            IntervalStrategy::Epoch => Self::Epochs {
                micro_batches_per_step: micro_batches_per_step.max(1),
                batches_per_epoch: batches_per_epoch.max(1),
            },
        }
    }

    /// Whether step `step` (1-based: the count of steps done) falls on it.
    pub fn due(&self, step: u64) -> bool {
        match *self {
            Self::AtEnd => false,
            Self::Every(n) => step.is_multiple_of(n),
            Self::Epochs {
                micro_batches_per_step: m,
                batches_per_epoch: b,
            } => step > 0 && (step * m) / b > ((step - 1) * m) / b,
        }
    }

    /// For the run's opening lines.
    pub fn describe(&self) -> String {
        match *self {
            Self::AtEnd => "at the end".to_owned(),
            Self::Every(n) => format!("every {n} steps"),
            Self::Epochs { .. } => "at the end of each epoch".to_owned(),
        }
    }
}

/// The run's three, resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cadences {
    pub log: Cadence,
    pub eval: Cadence,
    pub save: Cadence,
    /// Steps, or epochs with "epoch", before which `eval` does not evaluate (`eval_delay`).
    pub eval_delay: f64,
}

impl Cadences {
    /// Whether step `step` evaluates (besides the run's last): the cadence, once `eval_delay` steps
    /// (with "epoch": epochs) have passed, as `transformers`' `eval_delay`.
    pub fn evaluates(&self, step: u64) -> bool {
        let done = match self.eval {
            Cadence::Epochs {
                micro_batches_per_step,
                batches_per_epoch,
            } => epoch_at(step, micro_batches_per_step, batches_per_epoch),
            _ => step as f64,
        };
        self.eval.due(step) && done >= self.eval_delay
    }

    /// For the run's opening lines.
    pub fn describe(&self) -> String {
        format!(
            "logging {}, evaluating {}, saving {}",
            self.log.describe(),
            self.eval.describe(),
            self.save.describe()
        )
    }
}

/// Epochs done after `step` optimizer steps, as the float `transformers` logs (`epoch`).
pub fn epoch_at(step: u64, micro_batches_per_step: u64, batches_per_epoch: u64) -> f64 {
    (step * micro_batches_per_step) as f64 / batches_per_epoch.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_steps(c: Cadence, total: u64) -> Vec<u64> {
        (1..=total).filter(|&s| c.due(s)).collect()
    }

    #[test]
    fn fractions_round_up_and_whole_numbers_stay() {
        let s = IntervalStrategy::Steps;
        assert_eq!(Cadence::resolve(s, 0.1, 95, 1, 10), Cadence::Every(10));
        assert_eq!(Cadence::resolve(s, 0.25, 8, 1, 10), Cadence::Every(2));
        assert_eq!(Cadence::resolve(s, 0.001, 8, 1, 10), Cadence::Every(1));
        assert_eq!(Cadence::resolve(s, 1.0, 8, 1, 10), Cadence::Every(1));
        assert_eq!(Cadence::resolve(s, 40.0, 8, 1, 10), Cadence::Every(40));
        assert_eq!(Cadence::resolve(s, 0.0, 8, 1, 10), Cadence::AtEnd);
        assert_eq!(
            Cadence::resolve(IntervalStrategy::No, 5.0, 8, 1, 10),
            Cadence::AtEnd
        );
    }

    #[test]
    fn epochs_end_at_the_step_that_takes_their_last_micro_batch() {
        let epochs = |m, b| Cadence::resolve(IntervalStrategy::Epoch, 0.0, 0, m, b);
        assert_eq!(due_steps(epochs(1, 4), 12), vec![4, 8, 12]);
        // 5 micro-batches an epoch, 2 a step: epoch 1 ends in step 3 (micro-batches 4, 5), epoch 2 in
        // step 5 (9, 10), epoch 3 in step 8 (15, 16).
        assert_eq!(due_steps(epochs(2, 5), 10), vec![3, 5, 8, 10]);
        // Steps longer than an epoch: every step ends one (or more).
        assert_eq!(due_steps(epochs(6, 4), 3), vec![1, 2, 3]);
        assert_eq!(epoch_at(3, 2, 5), 1.2);
        assert_eq!(epoch_at(0, 2, 5), 0.0);
    }

    #[test]
    fn steps_settings_are_checked_as_transformers_checks_them() {
        for ok in [0.0, 0.5, 1.0, 2.0, 500.0] {
            check_steps("eval_steps", ok).unwrap();
        }
        for bad in [-1.0, 2.5, f64::NAN, f64::INFINITY] {
            let e = check_steps("eval_steps", bad).unwrap_err().to_string();
            assert!(e.contains("eval_steps"), "{e}");
        }
    }
}
