//! `train.full_determinism`: libtorch's deterministic kernels, as `transformers`' `full_determinism`
//! (`torch.use_deterministic_algorithms(True)`, cuDNN deterministic and not benchmarking, and
//! `CUBLAS_WORKSPACE_CONFIG=:4096:8`, without which cuBLAS may sum in another order). On the CPU the
//! loop uses no atomics, but libtorch's multi-threaded kernels may still give other last bits from one
//! process to the next on some machines (`scripts/bench/repeatability.sh`), which only one thread
//! (`OMP_NUM_THREADS=1`) avoids; on CUDA, kernels that add with atomics (attention's backward,
//! index_add, scatter) sum in a different order on every run unless this is on, at some cost in speed.
//! An op that has no deterministic kernel is then an error naming it, not a silent difference.

use anyhow::{bail, Result};

use crate::ffi::{medqa_deterministic, medqa_set_deterministic};

/// cuBLAS's workspace setting for reproducible results (CUDA's documentation, "Results
/// reproducibility"); read when a cuBLAS handle is created, at the first matmul on a device.
const CUBLAS_WORKSPACE: &str = ":4096:8";

/// Switches libtorch's deterministic kernels on or off for the whole process. Call it before the
/// first CUDA matmul, so that cuBLAS sees its workspace setting (a value set by the user is kept).
pub fn set_full_determinism(on: bool) -> Result<()> {
    if on && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE);
    }
    // SAFETY: plain values in and out; the shim catches libtorch's exceptions.
    if unsafe { medqa_set_deterministic(on as i32) } != 0 {
        bail!(
            "cannot set libtorch's deterministic algorithms: {}",
            crate::ffi::last_error()
        );
    }
    Ok(())
}

/// Whether libtorch's deterministic kernels are on.
pub fn full_determinism() -> bool {
    // SAFETY: reads a process-wide flag.
    unsafe { medqa_deterministic() == 1 }
}
