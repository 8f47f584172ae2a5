//! CUDA graphs: a step's kernels recorded once and replayed as one launch (`torch.cuda.graph`).
//!
//! At the xlm-roberta-base shape a training step queues ~940 kernels; the host takes a large part of the
//! step to queue them, and the device waits between them. A replayed graph queues them all at once.
//! What a graph reads and writes is fixed at capture: the same tensors (same storage) at every replay,
//! so new inputs are copied into the captured ones, and what it computes is copied out before the next
//! replay. Values the host decides (shapes, which branch a forward takes) are frozen too: the caller
//! captures only work whose host-side decisions cannot change between replays.
//!
//! CUDA only, and only where this build's libtorch has CUDA (`csrc/cuda_graph.cpp`); [`available`]
//! says whether it has.

use std::ffi::c_void;

use anyhow::{bail, Result};
use tch::Device;

use crate::ffi::{
    last_error, medqa_cuda_empty_cache, medqa_cuda_graph_capture_begin,
    medqa_cuda_graph_capture_end, medqa_cuda_graph_free, medqa_cuda_graph_new,
    medqa_cuda_graph_replay, medqa_cuda_graphs_available,
};

/// Whether this build can capture CUDA graphs (its libtorch has CUDA).
pub fn available() -> bool {
    // SAFETY: no arguments; returns a constant.
    unsafe { medqa_cuda_graphs_available() == 1 }
}

/// Returns the caching allocator's unused blocks to the device (`torch.cuda.empty_cache()`): before a
/// first capture, so that the blocks cached by eager steps and the graph's own pool are not both held.
pub fn empty_cache() -> Result<()> {
    // SAFETY: no arguments.
    if unsafe { medqa_cuda_empty_cache() } != 0 {
        bail!("emptying the CUDA cache failed: {}", last_error());
    }
    Ok(())
}

/// One captured graph.
pub struct CudaGraph {
    handle: *mut c_void,
}

impl CudaGraph {
    /// Captures the work `body` queues on CUDA `device` (run on a side stream; nothing runs on the
    /// device until [`CudaGraph::replay`]). With `share`, the new graph uses `share`'s memory pool
    /// (graphs replayed one after another may). A failure inside `body`, or work that cannot be
    /// captured (a host wait, a host-to-device copy from pageable memory), is returned as an error
    /// after the capture has been ended, so that the device can go on eagerly.
    pub fn capture<R>(
        device: Device,
        share: Option<&CudaGraph>,
        body: impl FnOnce() -> Result<R>,
    ) -> Result<(CudaGraph, R)> {
        let Device::Cuda(index) = device else {
            bail!("CUDA graphs need a CUDA device, not {device:?}");
        };
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` receives a new graph object, freed by `Drop`.
        if unsafe { medqa_cuda_graph_new(&mut handle) } != 0 || handle.is_null() {
            bail!("cannot create a CUDA graph: {}", last_error());
        }
        let graph = CudaGraph { handle };
        let share = share.map_or(std::ptr::null_mut(), |g| g.handle);
        // SAFETY: `graph.handle` and `share` are live graph objects (or null for `share`).
        if unsafe { medqa_cuda_graph_capture_begin(graph.handle, index as i32, share) } != 0 {
            bail!("cannot begin a CUDA graph capture: {}", last_error());
        }
        let out = body();
        // SAFETY: a capture was begun on `graph.handle` above; ending it restores the stream.
        let ended = unsafe { medqa_cuda_graph_capture_end(graph.handle) };
        let ended = if ended == 0 {
            Ok(())
        } else {
            Err(last_error())
        };
        match (out, ended) {
            (Ok(out), Ok(())) => Ok((graph, out)),
            (Err(e), Ok(())) => Err(e.context("the captured work failed")),
            (Err(e), Err(end)) => Err(e.context(format!("the CUDA graph capture failed ({end})"))),
            (Ok(_), Err(end)) => bail!("the CUDA graph capture failed: {end}"),
        }
    }

    /// Queues the captured work on the current stream; the host does not wait. Dropout reads the
    /// default CUDA generator's seed and offset at each replay, so `tch::manual_seed` before a replay
    /// gives the masks an eager step seeded alike would draw.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: `self.handle` is a captured graph object.
        if unsafe { medqa_cuda_graph_replay(self.handle) } != 0 {
            bail!("CUDA graph replay failed: {}", last_error());
        }
        Ok(())
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `handle` came from medqa_cuda_graph_new and is freed once, here.
        unsafe { medqa_cuda_graph_free(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_on_the_cpu_is_refused_with_a_reason() {
        let err = CudaGraph::capture(Device::Cpu, None, || Ok(()))
            .err()
            .expect("a CPU capture must fail");
        assert!(err.to_string().contains("CUDA device"), "{err}");
    }
}
