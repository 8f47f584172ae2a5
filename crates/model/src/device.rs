//! Where tensors live: CUDA when present unless the user says otherwise.

use std::fmt;
use std::str::FromStr;

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
            crate::shim::last_error()
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

extern "C" {
    fn medqa_sdp_set_enabled(bits: i32) -> i32;
    fn medqa_sdp_enabled() -> i32;
    fn medqa_upload(
        src: *mut std::ffi::c_void,
        device_index: i32,
        out: *mut *mut std::ffi::c_void,
    ) -> i32;
}

/// The environment variable that overrides medqa's choice of CUDA attention kernels.
pub const ATTENTION_KERNELS_ENV: &str = "MEDQA_ATTENTION_KERNELS";

/// Which kernels `scaled_dot_product_attention` may pick on CUDA; libtorch takes the first allowed one
/// that supports the call, in its own order.
///
/// medqa leaves cuDNN's out by default: cuDNN attention builds an execution plan for every new batch
/// shape, and medqa's batches change length from step to step (length grouping, padding to the longest
/// window, longest-first inference). On an H200 (torch 2.11, bf16, xlm-roberta-base shape, 16 windows;
/// `scripts/probe_shape_cost.py`) a forward + backward at a new length cost 168 ms more with cuDNN and
/// 9 ms with the memory-efficient kernel, which was also the faster one per step (38.2 vs 39.8 ms).
/// `MEDQA_ATTENTION_KERNELS=libtorch` keeps libtorch's defaults; a list such as `efficient,math`
/// allows exactly those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionKernels {
    pub flash: bool,
    pub efficient: bool,
    pub math: bool,
    pub cudnn: bool,
}

impl AttentionKernels {
    /// medqa's choice: everything but cuDNN.
    pub const MEDQA: Self = Self {
        flash: true,
        efficient: true,
        math: true,
        cudnn: false,
    };
    /// libtorch's default switches: every kernel allowed.
    pub const LIBTORCH: Self = Self {
        flash: true,
        efficient: true,
        math: true,
        cudnn: true,
    };

    fn bits(self) -> i32 {
        i32::from(self.flash)
            | i32::from(self.efficient) << 1
            | i32::from(self.math) << 2
            | i32::from(self.cudnn) << 3
    }

    fn from_bits(bits: i32) -> Self {
        Self {
            flash: bits & 1 != 0,
            efficient: bits & 2 != 0,
            math: bits & 4 != 0,
            cudnn: bits & 8 != 0,
        }
    }

    /// The kernels this process allows now.
    pub fn current() -> Self {
        // SAFETY: reads libtorch's global context; no pointers cross.
        Self::from_bits(unsafe { medqa_sdp_enabled() })
    }

    /// `MEDQA_ATTENTION_KERNELS` when set, else medqa's choice.
    pub fn from_env() -> Result<Self> {
        match std::env::var(ATTENTION_KERNELS_ENV) {
            Ok(value) => value
                .parse()
                .map_err(|e| anyhow::anyhow!("{ATTENTION_KERNELS_ENV}={value:?}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(Self::MEDQA),
            Err(e) => bail!("{ATTENTION_KERNELS_ENV}: {e}"),
        }
    }

    /// Sets libtorch's switches for the whole process.
    pub fn apply(self) -> Result<()> {
        // SAFETY: sets libtorch's global switches; no pointers cross.
        if unsafe { medqa_sdp_set_enabled(self.bits()) } != 0 {
            bail!(
                "cannot set the attention kernels: {}",
                crate::shim::last_error()
            );
        }
        Ok(())
    }
}

impl FromStr for AttentionKernels {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "medqa" | "auto" | "" => return Ok(Self::MEDQA),
            "libtorch" | "all" => return Ok(Self::LIBTORCH),
            _ => {}
        }
        let mut kernels = Self::from_bits(0);
        for name in s.split(',').map(|n| n.trim().to_ascii_lowercase()) {
            match name.as_str() {
                "flash" => kernels.flash = true,
                "efficient" => kernels.efficient = true,
                "math" => kernels.math = true,
                "cudnn" => kernels.cudnn = true,
                other => bail!(
                    "unknown attention kernel {other:?}: expected medqa, libtorch or a list of \
                     flash, efficient, math, cudnn"
                ),
            }
        }
        Ok(kernels)
    }
}

impl fmt::Display for AttentionKernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.flash, "flash"),
            (self.efficient, "efficient"),
            (self.math, "math"),
            (self.cudnn, "cudnn"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", names.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_kernels_parse_and_print() {
        assert_eq!(
            "medqa".parse::<AttentionKernels>().unwrap(),
            AttentionKernels::MEDQA
        );
        assert_eq!(
            "libtorch".parse::<AttentionKernels>().unwrap(),
            AttentionKernels::LIBTORCH
        );
        let two: AttentionKernels = "Efficient, math".parse().unwrap();
        assert_eq!(two.to_string(), "efficient,math");
        assert_eq!(AttentionKernels::MEDQA.to_string(), "flash,efficient,math");
        let err = "efficient,fast".parse::<AttentionKernels>().unwrap_err();
        assert!(err.to_string().contains("\"fast\""), "{err}");
    }

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

    #[test]
    fn attention_kernels_reach_libtorch() {
        // Only cuDNN's switch is toggled: it means nothing on the CPU, so tests beside this one are
        // unaffected.
        let before = AttentionKernels::current();
        let without = AttentionKernels {
            cudnn: false,
            ..before
        };
        without.apply().unwrap();
        assert_eq!(AttentionKernels::current(), without);
        let with = AttentionKernels {
            cudnn: true,
            ..before
        };
        with.apply().unwrap();
        assert_eq!(AttentionKernels::current(), with);
        before.apply().unwrap();
    }
}
