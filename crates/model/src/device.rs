//! Where tensors live: CUDA when present unless the user says otherwise.

use std::fmt;
use std::str::FromStr;

use crate::attention::AttentionKernels;
use crate::ffi::medqa_upload;
use anyhow::{bail, Result};
use tch::{Cuda, Device};

/// The `--device` choice of every binary: `auto`, `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(Self::Cuda(index)),
                _ => bail!("unknown device '{s}': expected auto, cpu, cuda or cuda:N"),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceChoice {
    /// Resolves the choice; asking for CUDA where there is none is an error, not a silent CPU run.
    /// On CUDA it also chooses the attention kernels (`AttentionKernels::from_env`).
    pub fn resolve(self) -> Result<Device> {
        let device = self.resolve_device()?;
        if device.is_cuda() {
            AttentionKernels::from_env()?.apply()?;
        }
        Ok(device)
    }

    fn resolve_device(self) -> Result<Device> {
        match self {
            Self::Auto => Ok(Device::cuda_if_available()),
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(index) => {
                let count = Cuda::device_count() as usize;
                if count == 0 {
                    bail!(
                        "--device {self} asked for CUDA, but libtorch sees no CUDA device \
                         (is this a CUDA build of libtorch, and is the driver installed?)"
                    );
                }
                if index >= count {
                    bail!("--device {self}: only {count} CUDA device(s) are visible");
                }
                Ok(Device::Cuda(index))
            }
        }
    }
}

/// One paragraph on what libtorch sees, for `--check-device`.
pub fn report(choice: DeviceChoice) -> Result<String> {
    let device = choice.resolve()?;
    Ok(format!(
        "libtorch CUDA available: {}, CUDA devices: {}, cuDNN: {}\nchosen device ({choice}): {}",
        Cuda::is_available(),
        Cuda::device_count(),
        Cuda::cudnn_is_available(),
        describe(device),
    ))
}

/// A host tensor on `device`. On CUDA the copy goes through pinned memory without making the host
/// wait for the device's queue (what a DataLoader with `pin_memory` and `.to(device, non_blocking=True)`
/// does); if pinning fails, a plain copy, with one warning.
pub fn upload(t: &tch::Tensor, device: Device) -> tch::Tensor {
    if let Device::Cuda(index) = device {
        match pinned_upload(t, index) {
            Ok(on_device) => return on_device,
            Err(e) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| eprintln!("warning: {e:#}; copying batches without pinning"));
            }
        }
    }
    t.to_device(device)
}

fn pinned_upload(t: &tch::Tensor, index: usize) -> Result<tch::Tensor> {
    let mut out: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: `t` is a live at::Tensor for the call; on success the shim hands over a new one.
    let rc = unsafe { medqa_upload(t.as_ptr() as *mut _, index as i32, &mut out) };
    if rc != 0 || out.is_null() {
        bail!(
            "cannot copy a batch to cuda:{index} through pinned memory: {}",
            crate::ffi::last_error()
        );
    }
    // SAFETY: `out` is a new at::Tensor that nothing else owns.
    Ok(unsafe { tch::Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

/// The device as run manifests record it: on CUDA with the attention kernels allowed.
pub fn describe(device: Device) -> String {
    if device.is_cuda() {
        format!(
            "{device:?}, attention kernels {}",
            AttentionKernels::current()
        )
    } else {
        format!("{device:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_stay_put_on_the_cpu_and_pinning_failures_are_errors() {
        let t = tch::Tensor::from_slice(&[1i64, 2, 3]);
        let same = upload(&t, Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(&same).unwrap(), vec![1, 2, 3]);
        if !tch::Cuda::is_available() {
            // No CUDA here: the shim must report libtorch's error, not crash.
            let err = pinned_upload(&t, 0).unwrap_err();
            assert!(err.to_string().contains("pinned memory"), "{err:#}");
        }
    }
}
