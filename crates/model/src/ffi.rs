//! Every function of the C++ shim (`csrc/*.cpp`, compiled by `build.rs` against libtorch's headers),
//! declared in one place. Tensors cross as `at::Tensor*` (tch's `as_ptr`); a call that fails returns
//! non-zero and leaves its message for [`last_error`] (`csrc/shim_error.h`).

use std::ffi::c_void;
use std::os::raw::c_char;

extern "C" {
    fn medqa_last_error() -> *const c_char;

    // csrc/autocast.cpp: libtorch's autocast switch per device type.
    pub(crate) fn medqa_autocast_is_enabled(device_type: i32) -> i32;
    pub(crate) fn medqa_autocast_get_dtype(device_type: i32) -> i32;
    pub(crate) fn medqa_autocast_set(device_type: i32, enabled: i32, scalar_type: i32) -> i32;
    pub(crate) fn medqa_autocast_increment_nesting() -> i32;
    pub(crate) fn medqa_autocast_decrement_nesting() -> i32;

    // csrc/cross_entropy.cpp: the mean cross-entropy whose backward reuses its log-probabilities.
    pub(crate) fn medqa_cross_entropy(
        logits: *mut c_void,
        targets: *mut c_void,
        ignore_index: i64,
        out: *mut *mut c_void,
    ) -> i32;

    // csrc/checkpoint.cpp: a layer whose backward recomputes it (gradient checkpointing).
    pub(crate) fn medqa_checkpoint(
        input: *mut c_void,
        state: *mut c_void,
        call: crate::checkpoint::LayerFn,
        drop: crate::checkpoint::DropFn,
        out: *mut *mut c_void,
    ) -> i32;

    // csrc/determinism.cpp: libtorch's deterministic kernels on or off, process-wide.
    pub(crate) fn medqa_set_deterministic(on: i32) -> i32;
    pub(crate) fn medqa_deterministic() -> i32;

    // csrc/dropout.cpp: CPU keep masks drawn on every core.
    pub(crate) fn medqa_dropout_mask(
        like: *mut c_void,
        p: f64,
        seed: u64,
        out: *mut *mut c_void,
    ) -> i32;

    // csrc/host_memory.cpp: glibc's malloc keeps freed blocks instead of unmapping them.
    pub(crate) fn medqa_keep_freed_host_memory() -> i32;
    pub(crate) fn medqa_host_mmapped_bytes() -> i64;

    // csrc/fused_adamw.cpp: set-to-none gradients, foreach clipping and scaling, the fused AdamW kernel.
    pub(crate) fn medqa_clear_grads(params: *mut *mut c_void, n: i32);
    pub(crate) fn medqa_foreach_mul(grads: *mut *mut c_void, n: i32, factor: *mut c_void) -> i32;
    pub(crate) fn medqa_foreach_clip_grad_norm(
        grads: *mut *mut c_void,
        n: i32,
        max_norm: f64,
        total_norm: *mut *mut torch_sys::C_tensor,
    ) -> i32;
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn medqa_fused_adamw(
        params: *mut *mut c_void,
        grads: *mut *mut c_void,
        exp_avgs: *mut *mut c_void,
        exp_avg_sqs: *mut *mut c_void,
        steps: *mut *mut c_void,
        n: i32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        found_inf: *mut c_void,
        lr_tensor: *mut c_void,
    ) -> i32;

    // csrc/sdpa.cpp: which attention kernels CUDA may pick.
    pub(crate) fn medqa_sdp_set_enabled(bits: i32) -> i32;
    pub(crate) fn medqa_sdp_enabled() -> i32;

    // csrc/transfer.cpp: pinned, non-blocking uploads.
    pub(crate) fn medqa_upload(src: *mut c_void, device_index: i32, out: *mut *mut c_void) -> i32;

    // csrc/dist.cpp: c10d's store, Gloo/NCCL process group and collectives.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn medqa_dist_init(
        backend: *const c_char,
        master_addr: *const c_char,
        port: i32,
        rank: i32,
        world_size: i32,
        host_store: i32,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> i32;
    pub(crate) fn medqa_dist_with_nccl() -> i32;
    pub(crate) fn medqa_dist_allreduce(group: *mut c_void, tensor: *mut c_void, op: i32) -> i32;
    pub(crate) fn medqa_dist_broadcast(group: *mut c_void, tensor: *mut c_void, root: i32) -> i32;
    pub(crate) fn medqa_dist_shutdown(group: *mut c_void) -> i32;
    pub(crate) fn medqa_dist_free(group: *mut c_void, abort: i32);

    // csrc/cuda_graph.cpp: at::cuda::CUDAGraph, capture on a side stream, replay.
    pub(crate) fn medqa_cuda_graphs_available() -> i32;
    pub(crate) fn medqa_cuda_graph_new(out: *mut *mut c_void) -> i32;
    pub(crate) fn medqa_cuda_graph_capture_begin(
        graph: *mut c_void,
        device: i32,
        share: *mut c_void,
    ) -> i32;
    pub(crate) fn medqa_cuda_graph_capture_end(graph: *mut c_void) -> i32;
    pub(crate) fn medqa_cuda_graph_replay(graph: *mut c_void) -> i32;
    pub(crate) fn medqa_cuda_graph_free(graph: *mut c_void);
    pub(crate) fn medqa_cuda_empty_cache() -> i32;

    // csrc/profiler.cpp: libtorch's Kineto profiler.
    pub(crate) fn medqa_profiler_start(with_cuda: i32) -> i32;
    pub(crate) fn medqa_profiler_stop(path: *const c_char) -> i32;
}

/// The message of this thread's last failed shim call.
pub(crate) fn last_error() -> String {
    // SAFETY: the shim returns a NUL-terminated thread-local string that lives until the next call.
    unsafe { std::ffi::CStr::from_ptr(medqa_last_error()) }
        .to_string_lossy()
        .into_owned()
}
