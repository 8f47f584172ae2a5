//! fp16 training's dynamic loss scale (`precision = "fp16"`), as `torch.amp.GradScaler`, which the
//! `transformers` Trainer uses with `fp16=True`: the loss is multiplied by the scale before the backward,
//! so that small gradients survive fp16; the gradients are divided by it before clipping; a step whose
//! gradients overflowed is skipped and halves the scale, and 2,000 good steps in a row double it.
//! GradScaler's defaults throughout (65,536 at the start, ×2, ×0.5, 2,000); every number stays on the
//! device (`_amp_update_scale_`), and the scale is saved with each checkpoint.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::optim::scale_gradients;

const INIT_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: i64 = 2000;

/// The scale and its count of good steps, as a checkpoint keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedLossScale {
    pub scale: f64,
    pub good_steps: i64,
}

pub struct LossScale {
    /// fp32, one element: what `_amp_update_scale_` updates in place.
    scale: Tensor,
    /// int32, one element: good steps since the last change.
    growth_tracker: Tensor,
}

impl LossScale {
    pub fn new(device: Device) -> Self {
        Self::from_saved(
            SavedLossScale {
                scale: INIT_SCALE,
                good_steps: 0,
            },
            device,
        )
    }

    pub fn from_saved(saved: SavedLossScale, device: Device) -> Self {
        Self {
            scale: Tensor::from_slice(&[saved.scale as f32]).to_device(device),
            growth_tracker: Tensor::from_slice(&[saved.good_steps as i32]).to_device(device),
        }
    }

    /// Reads the scale back (the host waits for the device): for checkpoints and logs only.
    pub fn saved(&self) -> SavedLossScale {
        SavedLossScale {
            scale: self.scale.double_value(&[0]),
            good_steps: self.growth_tracker.int64_value(&[0]),
        }
    }

    /// The loss to differentiate.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divides the gradients by the scale, as GradScaler's `unscale_` (its reciprocal taken in fp64,
    /// then rounded to fp32), in one foreach launch. A gradient that overflowed stays non-finite, and so
    /// does the norm.
    pub fn unscale(&self, grads: &[Tensor]) -> Result<()> {
        let inverse = self
            .scale
            .to_kind(Kind::Double)
            .reciprocal()
            .to_kind(Kind::Float)
            .reshape([]);
        scale_gradients(grads, &inverse).context("unscaling fp16 gradients")
    }

    /// After the step: `found_inf` (a float scalar, 1 when the step was skipped) halves the scale, a
    /// run of good steps doubles it.
    pub fn update(&mut self, found_inf: &Tensor) {
        let _ = self.scale.internal_amp_update_scale_(
            &self.growth_tracker,
            &found_inf.reshape([1]).to_kind(Kind::Float),
            GROWTH_FACTOR,
            BACKOFF_FACTOR,
            GROWTH_INTERVAL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GradScaler's rule: halve on an overflow (and restart the count), double after 2,000 good steps.
    #[test]
    fn overflows_halve_and_good_runs_double_the_scale() {
        let mut s = LossScale::new(Device::Cpu);
        let (inf, ok) = (Tensor::from(1f32), Tensor::from(0f32));
        s.update(&inf);
        s.update(&inf);
        assert_eq!(s.saved().scale, 16384.0);
        for _ in 0..1999 {
            s.update(&ok);
        }
        assert_eq!(
            s.saved(),
            SavedLossScale {
                scale: 16384.0,
                good_steps: 1999
            }
        );
        s.update(&ok);
        assert_eq!(s.saved().scale, 32768.0);
        assert_eq!(s.saved().good_steps, 0);
        s.update(&ok);
        s.update(&inf);
        assert_eq!(
            s.saved(),
            SavedLossScale {
                scale: 16384.0,
                good_steps: 0
            }
        );
    }

    #[test]
    fn unscaling_divides_and_keeps_overflow_visible() {
        let s = LossScale::new(Device::Cpu);
        let g = Tensor::from_slice(&[65536f32, -131072.0]);
        let overflowed = Tensor::from_slice(&[f32::INFINITY, 1.0]);
        s.unscale(&[g.shallow_clone(), overflowed.shallow_clone()])
            .unwrap();
        assert_eq!(Vec::<f32>::try_from(&g).unwrap(), vec![1.0, -2.0]);
        assert!(!bool::try_from(overflowed.isfinite().all()).unwrap());
    }
}
