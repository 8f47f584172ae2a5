//! Which kernels `scaled_dot_product_attention` may use on CUDA: medqa's choice, the environment's
//! override, and libtorch's global switches (`csrc/sdpa.cpp`), set when a CUDA device is resolved.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use crate::ffi::{medqa_sdp_enabled, medqa_sdp_set_enabled};

/// The environment variable that overrides medqa's choice of CUDA attention kernels.
pub const ATTENTION_KERNELS_ENV: &str = "MEDQA_ATTENTION_KERNELS";

/// Which kernels `scaled_dot_product_attention` may pick on CUDA; libtorch takes the first allowed one
/// that supports the call, in its own order.
///
/// medqa leaves cuDNN's out by default: cuDNN attention builds an execution plan for every new batch
/// shape, and medqa's batches change length from step to step (length grouping, padding to the longest
/// window, longest-first inference). On an H200 (torch 2.11, bf16, xlm-roberta-base shape, 16 windows;
/// `scripts/bench/probe_shape_cost.py`) a forward + backward at a new length cost 168 ms more with cuDNN and
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
                crate::ffi::last_error()
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
    fn attention_kernels_reach_libtorch() {
        let _global = crate::global_state_lock();
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
