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
    pub fn resolve(self) -> Result<Device> {
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

/// One paragraph on what libtorch sees, for `--check-device` and run manifests.
pub fn report(choice: DeviceChoice) -> Result<String> {
    let device = choice.resolve()?;
    Ok(format!(
        "libtorch CUDA available: {}, CUDA devices: {}, cuDNN: {}\nchosen device ({choice}): {device:?}",
        Cuda::is_available(),
        Cuda::device_count(),
        Cuda::cudnn_is_available(),
    ))
}
