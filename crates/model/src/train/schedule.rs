//! Learning-rate schedules, as `transformers.get_scheduler` defines them: every `SchedulerType` that is
//! a function of the step, and `reduce_lr_on_plateau`, which follows the evaluations (torch's
//! `ReduceLROnPlateau` on `metric_for_best_model`, its state in [`Plateau`]), with the same
//! `lr_scheduler_kwargs`, defaults and arithmetic, so that a run configured as a `Trainer` run gets the
//! same learning rate at every step. (`greedy`, GreedyLR, is not here.)
//!
//! `multiplier(step)` is the factor applied to the peak learning rate for the optimizer step that
//! follows `step` completed steps (a `LambdaLR`'s lambda); like `transformers`, the first step of a
//! linear warm-up runs at zero.

use std::f64::consts::PI;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `lr_scheduler_type`, with `transformers`' names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear warm-up, then linear decay to zero at the last step.
    #[default]
    Linear,
    /// Linear warm-up, then a cosine down to zero (`num_cycles` = 0.5: half a period).
    Cosine,
    /// Linear warm-up, then `num_cycles` (default 1) cosine decays, each restarting from the peak.
    CosineWithRestarts,
    /// Linear warm-up, then `(1 - progress)^power` from the peak down to `lr_end` (default 1e-7),
    /// `lr_end` after the last step: fairseq's `polynomial_decay`, with which XLM-R was pre-trained.
    Polynomial,
    /// The peak learning rate from the first step: no warm-up, whatever `warmup_*` say (as
    /// `transformers`, which ignores them here).
    Constant,
    /// Linear warm-up, then constant.
    ConstantWithWarmup,
    /// Linear warm-up, then `1 / sqrt((step + timescale - warmup) / timescale)`.
    InverseSqrt,
    /// As `cosine`, decaying to `min_lr` (or `min_lr_rate` × the peak) instead of zero.
    CosineWithMinLr,
    /// As `cosine_with_min_lr`, with `transformers`' shifted steps: the warm-up's first step is not
    /// zero (or starts at `warmup_lr_rate`), the decay reaches its floor at the last step.
    CosineWarmupWithMinLr,
    /// Warm-up, stable at the peak, then `num_decay_steps` of decay (`warmup_type`, `decay_type`:
    /// linear, cosine or 1-sqrt) to `min_lr_ratio`: a long run can be continued from before its decay.
    WarmupStableDecay,
    /// The peak from the first step (no warm-up, as `transformers`), multiplied by `factor` (0.1) when
    /// `patience` (10) evaluations in a row did not improve `metric_for_best_model` by `threshold`
    /// (1e-4, relative or absolute: `threshold_mode`), then `cooldown` evaluations of rest, never below
    /// `min_lr`: torch's `ReduceLROnPlateau`. Needs `eval_steps`.
    ReduceLrOnPlateau,
}

impl ScheduleKind {
    /// The `lr_scheduler_kwargs` this schedule takes, as `transformers`' function for it.
    fn takes(self) -> &'static [&'static str] {
        match self {
            Self::Linear | Self::Constant | Self::ConstantWithWarmup => &[],
            Self::Cosine | Self::CosineWithRestarts => &["num_cycles"],
            Self::Polynomial => &["lr_end", "power"],
            Self::InverseSqrt => &["timescale"],
            Self::CosineWithMinLr => &["num_cycles", "min_lr", "min_lr_rate"],
            Self::CosineWarmupWithMinLr => {
                &["num_cycles", "min_lr", "min_lr_rate", "warmup_lr_rate"]
            }
            Self::WarmupStableDecay => &[
                "num_decay_steps",
                "num_stable_steps",
                "warmup_type",
                "decay_type",
                "min_lr_ratio",
                "num_cycles",
            ],
            Self::ReduceLrOnPlateau => &[
                "mode",
                "factor",
                "patience",
                "threshold",
                "threshold_mode",
                "cooldown",
                "min_lr",
                "eps",
            ],
        }
    }

    /// The name in configurations.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Whether `warmup_steps` / `warmup_ratio` shape this schedule (`constant` and
    /// `reduce_lr_on_plateau` ignore them, as in `transformers`).
    pub fn warms_up(self) -> bool {
        !matches!(self, Self::Constant | Self::ReduceLrOnPlateau)
    }

    /// Whether the rate follows the evaluations rather than the step.
    pub fn follows_evaluations(self) -> bool {
        self == Self::ReduceLrOnPlateau
    }
}

/// How the warm-up rises or the decay falls in `warmup_stable_decay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Curve {
    #[default]
    #[serde(rename = "linear")]
    Linear,
    #[serde(rename = "cosine")]
    Cosine,
    #[serde(rename = "1-sqrt")]
    OneMinusSqrt,
}

/// `reduce_lr_on_plateau`: whether the metric should fall or rise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Min,
    Max,
}

/// `reduce_lr_on_plateau`: whether `threshold` is a fraction of the best metric or an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    #[default]
    Rel,
    Abs,
}

/// `lr_scheduler_kwargs`: the settings of one schedule, with `transformers`' names; unset ones take
/// `transformers`' defaults. A setting the chosen schedule does not take is an error, as in Python.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleArgs {
    /// Cosine periods: 0.5 for `cosine*` (half a period, peak to floor), 1 for `cosine_with_restarts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_cycles: Option<f64>,
    /// `polynomial`: the exponent (1.0) and the final learning rate (1e-7, below the peak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_end: Option<f64>,
    /// `inverse_sqrt`: steps of the decay's time scale (the warm-up's length, or 10,000 without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timescale: Option<u64>,
    /// `cosine_with_min_lr`, `cosine_warmup_with_min_lr`: the floor, as a learning rate or as a
    /// fraction of the peak (exactly one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr_rate: Option<f64>,
    /// `cosine_warmup_with_min_lr`: the warm-up's first step as a fraction of the peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_lr_rate: Option<f64>,
    /// `warmup_stable_decay`: the decay's length (required); the stable part's (default: what the
    /// run's steps leave after warm-up and decay); the curves; the floor as a fraction of the peak (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_decay_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_stable_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_type: Option<Curve>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_type: Option<Curve>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr_ratio: Option<f64>,
    /// `reduce_lr_on_plateau` (torch's names and defaults, `min_lr` above too). `mode` defaults to the
    /// direction of `greater_is_better` (`transformers` leaves torch's "min" whatever the metric: set
    /// `mode = "min"` to reproduce a Trainer run on a metric that should rise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_mode: Option<ThresholdMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
}

impl ScheduleArgs {
    /// The names of the settings given.
    fn given(&self) -> Vec<&'static str> {
        let set = [
            ("num_cycles", self.num_cycles.is_some()),
            ("power", self.power.is_some()),
            ("lr_end", self.lr_end.is_some()),
            ("timescale", self.timescale.is_some()),
            ("min_lr", self.min_lr.is_some()),
            ("min_lr_rate", self.min_lr_rate.is_some()),
            ("warmup_lr_rate", self.warmup_lr_rate.is_some()),
            ("num_decay_steps", self.num_decay_steps.is_some()),
            ("num_stable_steps", self.num_stable_steps.is_some()),
            ("warmup_type", self.warmup_type.is_some()),
            ("decay_type", self.decay_type.is_some()),
            ("min_lr_ratio", self.min_lr_ratio.is_some()),
            ("mode", self.mode.is_some()),
            ("factor", self.factor.is_some()),
            ("patience", self.patience.is_some()),
            ("threshold", self.threshold.is_some()),
            ("threshold_mode", self.threshold_mode.is_some()),
            ("cooldown", self.cooldown.is_some()),
            ("eps", self.eps.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    /// Checks the settings against the schedule and the peak learning rate, as `transformers` does
    /// when it builds the scheduler, before any training.
    pub fn validate(&self, kind: ScheduleKind, learning_rate: f64) -> Result<()> {
        let takes = kind.takes();
        for name in self.given() {
            if !takes.contains(&name) {
                bail!(
                    "lr_scheduler_kwargs.{name} does not apply to lr_scheduler_type = \"{}\" (it takes {})",
                    kind.name(),
                    if takes.is_empty() {
                        "no settings".to_owned()
                    } else {
                        takes.join(", ")
                    }
                );
            }
        }
        let finite = [
            ("num_cycles", self.num_cycles),
            ("power", self.power),
            ("lr_end", self.lr_end),
            ("min_lr", self.min_lr),
            ("min_lr_rate", self.min_lr_rate),
            ("warmup_lr_rate", self.warmup_lr_rate),
            ("min_lr_ratio", self.min_lr_ratio),
            ("factor", self.factor),
            ("threshold", self.threshold),
            ("eps", self.eps),
        ];
        for (name, value) in finite {
            if let Some(v) = value {
                if !(v.is_finite() && v >= 0.0) {
                    bail!("lr_scheduler_kwargs.{name} must be a number ≥ 0, got {v}");
                }
            }
        }
        if self.timescale == Some(0) {
            bail!("lr_scheduler_kwargs.timescale must be at least 1");
        }
        let min_lr_kind = matches!(
            kind,
            ScheduleKind::CosineWithMinLr | ScheduleKind::CosineWarmupWithMinLr
        );
        let lr_end = self.lr_end.unwrap_or(LR_END);
        if kind == ScheduleKind::Polynomial && lr_end >= learning_rate {
            bail!(
                "lr_scheduler_kwargs.lr_end ({lr_end}) must be smaller than learning_rate ({learning_rate})"
            );
        }
        if min_lr_kind && self.min_lr.is_some() == self.min_lr_rate.is_some() {
            bail!(
                "lr_scheduler_type = \"{}\" needs exactly one of lr_scheduler_kwargs.min_lr and \
                 lr_scheduler_kwargs.min_lr_rate",
                kind.name()
            );
        }
        if self.factor.is_some_and(|f| f >= 1.0) {
            bail!("lr_scheduler_kwargs.factor must be below 1 (as torch's ReduceLROnPlateau)");
        }
        if kind == ScheduleKind::WarmupStableDecay && self.num_decay_steps.is_none() {
            bail!("lr_scheduler_type = \"warmup_stable_decay\" needs lr_scheduler_kwargs.num_decay_steps");
        }
        Ok(())
    }
}

/// `polynomial`'s default final learning rate, as `transformers`.
const LR_END: f64 = 1e-7;

/// One run's schedule, resolved: the kind, its settings, the peak learning rate (which `polynomial`'s
/// `lr_end` and a `min_lr` are relative to) and the step counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub args: ScheduleArgs,
    pub learning_rate: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    /// A schedule of `kind` with `transformers`' default settings.
    pub fn new(
        kind: ScheduleKind,
        learning_rate: f64,
        warmup_steps: u64,
        total_steps: u64,
    ) -> Self {
        Self {
            kind,
            args: ScheduleArgs::default(),
            learning_rate,
            warmup_steps,
            total_steps,
        }
    }

    /// Checks the settings, and for `warmup_stable_decay` that warm-up and decay fit in the run.
    pub fn validate(&self) -> Result<()> {
        self.args.validate(self.kind, self.learning_rate)?;
        if self.kind == ScheduleKind::WarmupStableDecay && self.args.num_stable_steps.is_none() {
            let decay = self.args.num_decay_steps.unwrap_or(0);
            if self.warmup_steps + decay > self.total_steps {
                bail!(
                    "warmup_stable_decay: {} warm-up steps and {decay} decay steps do not fit in the run's \
                     {} steps (lower lr_scheduler_kwargs.num_decay_steps or set num_stable_steps)",
                    self.warmup_steps,
                    self.total_steps
                );
            }
        }
        Ok(())
    }

    /// The learning rate of the step after `step` completed ones.
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        self.learning_rate * self.multiplier(step)
    }

    /// The factor on the peak learning rate for the step after `step` completed ones. Written as
    /// `transformers`' lambdas, operation for operation, so that the rates agree to the last bit.
    pub fn multiplier(&self, step: u64) -> f64 {
        let a = &self.args;
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        let linear_warmup = s / w.max(1.0);
        let warming = step < self.warmup_steps;
        let progress = (s - w) / (t - w).max(1.0);
        let with_floor = |factor: f64, floor: f64| factor * (1.0 - floor) + floor;
        match self.kind {
            // The rate at the start; the loop follows the evaluations through `Plateau`.
            ScheduleKind::Constant | ScheduleKind::ReduceLrOnPlateau => 1.0,
            ScheduleKind::ConstantWithWarmup => {
                if warming {
                    linear_warmup
                } else {
                    1.0
                }
            }
            ScheduleKind::Linear => {
                if warming {
                    linear_warmup
                } else {
                    ((t - s) / (t - w).max(1.0)).max(0.0)
                }
            }
            ScheduleKind::Cosine | ScheduleKind::CosineWithMinLr => {
                if warming {
                    return linear_warmup;
                }
                let floor = self.min_lr_rate();
                let cycles = a.num_cycles.unwrap_or(0.5);
                let factor = 0.5 * (1.0 + (PI * cycles * 2.0 * progress).cos());
                with_floor(factor, floor).max(0.0)
            }
            ScheduleKind::CosineWithRestarts => {
                if warming {
                    return linear_warmup;
                }
                if progress >= 1.0 {
                    return 0.0;
                }
                let cycles = a.num_cycles.unwrap_or(1.0);
                (0.5 * (1.0 + (PI * ((cycles * progress) % 1.0)).cos())).max(0.0)
            }
            ScheduleKind::Polynomial => {
                if warming {
                    return linear_warmup;
                }
                let (lr_init, lr_end) = (self.learning_rate, a.lr_end.unwrap_or(LR_END));
                if step > self.total_steps {
                    return lr_end / lr_init;
                }
                // transformers divides by the decay's length unguarded; a run whose warm-up is all of
                // it never reaches here but at its last step, where the decay is complete.
                let decay_steps = (t - w).max(1.0);
                let remaining = 1.0 - (s - w) / decay_steps;
                let decay = (lr_init - lr_end) * remaining.powf(a.power.unwrap_or(1.0)) + lr_end;
                decay / lr_init
            }
            ScheduleKind::InverseSqrt => {
                if warming {
                    return linear_warmup;
                }
                let timescale = a.timescale.unwrap_or(if self.warmup_steps > 0 {
                    self.warmup_steps
                } else {
                    10_000
                }) as f64;
                let shift = timescale - w;
                1.0 / ((s + shift) / timescale).sqrt()
            }
            ScheduleKind::CosineWarmupWithMinLr => {
                if warming {
                    return match a.warmup_lr_rate {
                        None => (s + 1.0) / w.max(1.0),
                        Some(r) => r + (1.0 - r) * s / (w - 1.0).max(1.0),
                    };
                }
                let progress = (s - w + 1.0) / (t - w).max(1.0);
                let cycles = a.num_cycles.unwrap_or(0.5);
                let factor = 0.5 * (1.0 + (PI * cycles * 2.0 * progress).cos());
                with_floor(factor, self.min_lr_rate()).max(0.0)
            }
            ScheduleKind::WarmupStableDecay => self.warmup_stable_decay(step),
        }
    }

    /// `min_lr_rate`, or `min_lr` over the peak.
    fn min_lr_rate(&self) -> f64 {
        match (self.args.min_lr_rate, self.args.min_lr) {
            (Some(rate), _) => rate,
            (None, Some(lr)) => lr / self.learning_rate,
            (None, None) => 0.0,
        }
    }

    fn warmup_stable_decay(&self, step: u64) -> f64 {
        let a = &self.args;
        let floor = a.min_lr_ratio.unwrap_or(0.0);
        let decay_steps = a.num_decay_steps.unwrap_or(0);
        // Signed: transformers lets warm-up and decay overlap; `validate` refuses that, but the
        // arithmetic stays the same either way.
        let stable = a
            .num_stable_steps
            .map(|n| n as i128)
            .unwrap_or(self.total_steps as i128 - self.warmup_steps as i128 - decay_steps as i128);
        let (s, w) = (step as i128, self.warmup_steps as i128);
        let shaped = |curve: Curve, progress: f64, rising: bool| -> f64 {
            let factor = match (curve, rising) {
                (Curve::Linear, true) => progress,
                (Curve::Linear, false) => 1.0 - progress,
                (Curve::Cosine, true) => 0.5 * (1.0 - (PI * progress).cos()),
                (Curve::Cosine, false) => {
                    let cycles = a.num_cycles.unwrap_or(0.5);
                    0.5 * (1.0 + (PI * cycles * 2.0 * progress).cos())
                }
                (Curve::OneMinusSqrt, true) => 1.0 - (1.0 - progress).sqrt(),
                (Curve::OneMinusSqrt, false) => 1.0 - progress.sqrt(),
            };
            (factor * (1.0 - floor) + floor).max(0.0)
        };
        if s < w {
            let progress = s as f64 / (w as f64).max(1.0);
            return shaped(a.warmup_type.unwrap_or_default(), progress, true);
        }
        if s < w + stable {
            return 1.0;
        }
        if s < w + stable + decay_steps as i128 {
            let progress = (s - w - stable) as f64 / (decay_steps as f64).max(1.0);
            return shaped(a.decay_type.unwrap_or(Curve::Cosine), progress, false);
        }
        floor
    }
}

/// `reduce_lr_on_plateau`'s state, saved with every checkpoint (a resume goes on at the same rate):
/// the rate now, the best metric so far (none before the first evaluation), the evaluations in a row
/// that did not improve it, and the evaluations of cooldown left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    pub learning_rate: f64,
    pub best: Option<f64>,
    pub bad_evaluations: u64,
    pub cooldown_left: u64,
}

impl Plateau {
    /// The state before the first evaluation: the peak learning rate.
    pub fn start(schedule: &Schedule) -> Self {
        Self {
            learning_rate: schedule.learning_rate,
            best: None,
            bad_evaluations: 0,
            cooldown_left: 0,
        }
    }

    /// One evaluation's metric, as torch's `ReduceLROnPlateau.step(metric)`; `greater_is_better` gives
    /// the mode when the settings do not.
    pub fn observe(&mut self, schedule: &Schedule, metric: f64, greater_is_better: bool) {
        let a = &schedule.args;
        let mode = a.mode.unwrap_or(if greater_is_better {
            Mode::Max
        } else {
            Mode::Min
        });
        let threshold = a.threshold.unwrap_or(1e-4);
        let better = match self.best {
            // torch starts from an infinite "worst", which any number beats and a NaN does not.
            None => !metric.is_nan(),
            Some(best) => match (mode, a.threshold_mode.unwrap_or_default()) {
                (Mode::Min, ThresholdMode::Rel) => metric < best * (1.0 - threshold),
                (Mode::Min, ThresholdMode::Abs) => metric < best - threshold,
                (Mode::Max, ThresholdMode::Rel) => metric > best * (threshold + 1.0),
                (Mode::Max, ThresholdMode::Abs) => metric > best + threshold,
            },
        };
        if better {
            self.best = Some(metric);
            self.bad_evaluations = 0;
        } else {
            self.bad_evaluations += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_evaluations = 0;
        }
        if self.bad_evaluations > a.patience.unwrap_or(10) {
            let reduced =
                (self.learning_rate * a.factor.unwrap_or(0.1)).max(a.min_lr.unwrap_or(0.0));
            if self.learning_rate - reduced > a.eps.unwrap_or(1e-8) {
                self.learning_rate = reduced;
            }
            self.cooldown_left = a.cooldown.unwrap_or(0);
            self.bad_evaluations = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(toml: &str) -> ScheduleArgs {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn settings_a_schedule_does_not_take_are_refused_by_name() {
        let err = args("power = 2.0")
            .validate(ScheduleKind::Cosine, 1e-3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("power") && err.contains("num_cycles"), "{err}");
        let err = args("num_cycles = 2.0")
            .validate(ScheduleKind::Linear, 1e-3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes no settings"), "{err}");
        assert!(toml::from_str::<ScheduleArgs>("cycles = 2").is_err());
    }

    #[test]
    fn required_and_conflicting_settings_are_errors() {
        for (kind, toml) in [
            (ScheduleKind::CosineWithMinLr, ""),
            (
                ScheduleKind::CosineWithMinLr,
                "min_lr = 1e-5\nmin_lr_rate = 0.1",
            ),
            (ScheduleKind::CosineWarmupWithMinLr, ""),
            (ScheduleKind::WarmupStableDecay, ""),
            (ScheduleKind::Polynomial, "lr_end = 1e-3"),
            (ScheduleKind::InverseSqrt, "timescale = 0"),
            (ScheduleKind::Cosine, "num_cycles = -1.0"),
        ] {
            assert!(
                args(toml).validate(kind, 1e-3).is_err(),
                "{kind:?} with {toml:?} was accepted"
            );
        }
        args("min_lr_rate = 0.1")
            .validate(ScheduleKind::CosineWithMinLr, 1e-3)
            .unwrap();
    }

    #[test]
    fn decay_that_does_not_fit_the_run_is_an_error() {
        let mut s = Schedule::new(ScheduleKind::WarmupStableDecay, 1e-3, 10, 50);
        s.args.num_decay_steps = Some(41);
        assert!(s.validate().is_err());
        s.args.num_decay_steps = Some(40);
        s.validate().unwrap();
        assert_eq!(s.multiplier(10), 0.5 * (1.0 + 1.0)); // decay begins at once: cosine at 0
        assert_eq!(s.multiplier(50), 0.0);
    }

    #[test]
    fn constant_ignores_warmup() {
        let s = Schedule::new(ScheduleKind::Constant, 1e-3, 10, 100);
        assert_eq!(s.multiplier(0), 1.0);
        let w = Schedule::new(ScheduleKind::ConstantWithWarmup, 1e-3, 10, 100);
        assert_eq!(w.multiplier(0), 0.0);
        assert_eq!(w.multiplier(5), 0.5);
    }

    #[test]
    fn curve_names_are_transformers() {
        let a = args("warmup_type = \"1-sqrt\"\ndecay_type = \"cosine\"\nnum_decay_steps = 3");
        assert_eq!(a.warmup_type, Some(Curve::OneMinusSqrt));
        assert_eq!(
            ScheduleKind::WarmupStableDecay.name(),
            "warmup_stable_decay"
        );
    }
}
