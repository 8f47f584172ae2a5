//! libtorch's profiler around a stretch of work (`csrc/profiler.cpp`): CPU operators and, on CUDA,
//! every kernel with its time on the device, written as the Chrome trace `torch.profiler` writes, so
//! that medqa and the transformers reference are read by the same script
//! (`scripts/tools/profile_summary.py`).

use std::ffi::CString;
use std::path::Path;

use crate::ffi::{medqa_profiler_start, medqa_profiler_stop};
use anyhow::{bail, Context, Result};

/// A running profile; [`Profile::save`] stops it and writes the trace. Dropping it unsaved stops it and
/// writes nothing.
pub struct Profile {
    running: bool,
}

impl Profile {
    /// Starts recording CPU operators, and CUDA kernels when `cuda`.
    pub fn start(cuda: bool) -> Result<Self> {
        // SAFETY: plain call; the shim catches every C++ exception.
        if unsafe { medqa_profiler_start(i32::from(cuda)) } != 0 {
            bail!(
                "cannot start libtorch's profiler: {}",
                crate::ffi::last_error()
            );
        }
        Ok(Self { running: true })
    }

    /// Stops recording and writes the Chrome trace to `path`.
    pub fn save(mut self, path: &Path) -> Result<()> {
        self.running = false;
        let c = CString::new(path.to_string_lossy().as_bytes())
            .with_context(|| format!("profile path {}", path.display()))?;
        // SAFETY: `c` is a NUL-terminated string that outlives the call.
        if unsafe { medqa_profiler_stop(c.as_ptr()) } != 0 {
            bail!(
                "cannot write the profile to {}: {}",
                path.display(),
                crate::ffi::last_error()
            );
        }
        Ok(())
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if self.running {
            // SAFETY: a null path stops the profiler without writing.
            unsafe { medqa_profiler_stop(std::ptr::null()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn a_profile_records_the_operators_run_inside_it() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("medqa-profiler-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("trace.json");
        let profile = Profile::start(false)?;
        let a = Tensor::ones([64, 64], (Kind::Float, tch::Device::Cpu));
        let _ = a.matmul(&a).sum(Kind::Float).double_value(&[]);
        profile.save(&path)?;
        let trace: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let names: Vec<&str> = trace["traceEvents"]
            .as_array()
            .context("traceEvents")?
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(names.contains(&"aten::matmul"), "{names:?}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
