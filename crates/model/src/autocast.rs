//! Mixed precision: autocast regions with a chosen dtype (bf16 on CUDA), through a small C++ shim
//! (`csrc/autocast.cpp`), since tch can only switch autocast on with fp16.

use crate::ffi::{
    medqa_autocast_decrement_nesting, medqa_autocast_get_dtype, medqa_autocast_increment_nesting,
    medqa_autocast_is_enabled, medqa_autocast_set,
};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

/// The precision of forward passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// Autocast to bf16 (matrix products and attention); weights, optimizer and reductions stay fp32.
    Bf16,
    /// Autocast to fp16, for GPUs without bf16 (V100, T4): training scales the loss dynamically
    /// (`train::loss_scale`), as `transformers`' `fp16=True` does with torch's GradScaler.
    Fp16,
}

impl std::str::FromStr for Precision {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fp32" => Ok(Self::Fp32),
            "bf16" => Ok(Self::Bf16),
            "fp16" => Ok(Self::Fp16),
            other => bail!("unknown precision {other:?} (fp32, bf16 or fp16)"),
        }
    }
}

fn device_type(device: Device) -> i32 {
    match device {
        Device::Cpu => 0,
        Device::Cuda(_) => 1,
        // Other backends are never chosen by DeviceChoice.
        _ => -1,
    }
}

fn scalar_type(kind: Kind) -> Result<i32> {
    Ok(match kind {
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::BFloat16 => 15,
        other => bail!("autocast to {other:?} is not supported"),
    })
}

fn kind_of(scalar: i32) -> Option<Kind> {
    match scalar {
        5 => Some(Kind::Half),
        6 => Some(Kind::Float),
        15 => Some(Kind::BFloat16),
        _ => None,
    }
}

/// While alive, operations on `device` run under autocast to `kind`; the previous state comes back on drop.
pub struct AutocastGuard {
    device_type: i32,
    previous_enabled: i32,
    previous_dtype: i32,
}

impl AutocastGuard {
    pub fn new(device: Device, kind: Kind) -> Result<Self> {
        let dt = device_type(device);
        if dt < 0 {
            bail!("autocast is not available on {device:?}");
        }
        let scalar = scalar_type(kind)?;
        // SAFETY: plain C calls into libtorch's thread-local autocast state; errors come back as -1.
        unsafe {
            let previous_enabled = medqa_autocast_is_enabled(dt);
            let previous_dtype = medqa_autocast_get_dtype(dt);
            if previous_enabled < 0 || previous_dtype < 0 || medqa_autocast_set(dt, 1, scalar) != 0
            {
                bail!("libtorch refused autocast to {kind:?} on {device:?}");
            }
            medqa_autocast_increment_nesting();
            Ok(Self {
                device_type: dt,
                previous_enabled,
                previous_dtype,
            })
        }
    }

    /// A guard for `precision`, or none for fp32.
    pub fn for_precision(precision: Precision, device: Device) -> Result<Option<Self>> {
        match precision {
            Precision::Fp32 => Ok(None),
            Precision::Bf16 => Self::new(device, Kind::BFloat16).map(Some),
            Precision::Fp16 => Self::new(device, Kind::Half).map(Some),
        }
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: as in `new`; restores exactly what was there before.
        unsafe {
            medqa_autocast_decrement_nesting();
            medqa_autocast_set(self.device_type, self.previous_enabled, self.previous_dtype);
        }
    }
}

/// Whether autocast is on for `device`, and with which dtype.
pub fn state(device: Device) -> (bool, Option<Kind>) {
    let dt = device_type(device);
    // SAFETY: read-only queries of libtorch's thread-local state.
    unsafe {
        (
            medqa_autocast_is_enabled(dt) == 1,
            kind_of(medqa_autocast_get_dtype(dt)),
        )
    }
}
