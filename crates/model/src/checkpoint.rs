//! Gradient checkpointing: `checkpoint(x, f)` is `f(x)` without `f`'s activations kept for the backward,
//! which runs `f` again (`csrc/checkpoint.cpp`, torch.utils.checkpoint's reentrant scheme). Per encoder
//! layer, training keeps one hidden state per layer instead of every intermediate (attention
//! probabilities, the 4×-wide feed-forward activations): a longer batch fits in memory for about a third
//! more compute.

use std::ffi::c_void;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{bail, Result};
use tch::Tensor;

use crate::ffi::medqa_checkpoint;

pub(crate) type LayerFn = unsafe extern "C" fn(
    state: *mut c_void,
    input: *mut c_void,
    output: *mut *mut c_void,
    message: *mut c_char,
    capacity: usize,
) -> i32;
pub(crate) type DropFn = unsafe extern "C" fn(state: *mut c_void);

/// `f(x)`, recomputed in the backward instead of keeping its intermediate tensors. `f` must be a pure
/// function of `x` and what it holds, apart from dropout (the generators are replayed), and must not
/// change what it holds: the backward calls it again. On CUDA that call comes from libtorch's device
/// thread while the thread that called `backward` waits for it, so `f` never runs on two threads at
/// once, and what it holds is dropped when the graph is (hold shared things in an `Arc`).
pub fn checkpoint<F>(x: &Tensor, f: F) -> Result<Tensor>
where
    F: Fn(&Tensor) -> Tensor + 'static,
{
    let state = Box::into_raw(Box::new(f)) as *mut c_void;
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: `x` lives for the call; the shim owns `state` from here on and frees it with `free::<F>`
    // (also on failure); on success `out` is a new at::Tensor* for tch to own.
    let rc = unsafe {
        medqa_checkpoint(
            x.as_ptr() as *mut c_void,
            state,
            call::<F>,
            free::<F>,
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        bail!("gradient checkpointing: {}", crate::ffi::last_error());
    }
    // SAFETY: as above.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

unsafe extern "C" fn call<F: Fn(&Tensor) -> Tensor>(
    state: *mut c_void,
    input: *mut c_void,
    output: *mut *mut c_void,
    message: *mut c_char,
    capacity: usize,
) -> i32 {
    // SAFETY: `input` is a new at::Tensor* handed over to us; `state` is the box `checkpoint` made.
    let x = unsafe { Tensor::from_ptr(input as *mut torch_sys::C_tensor) };
    let f = unsafe { &*(state as *const F) };
    match catch_unwind(AssertUnwindSafe(|| f(&x))) {
        Ok(mut y) => {
            // SAFETY: the shim takes the handle and deletes it; `forget` leaves it to the shim.
            unsafe { *output = y.as_mut_ptr() as *mut c_void };
            std::mem::forget(y);
            0
        }
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".to_owned());
            let bytes = text.as_bytes();
            let n = bytes.len().min(capacity.saturating_sub(1));
            // SAFETY: the shim's buffer holds `capacity` bytes; NUL-terminated within them.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, message, n);
                *message.add(n) = 0;
            }
            1
        }
    }
}

unsafe extern "C" fn free<F>(state: *mut c_void) {
    // SAFETY: the box `checkpoint` made, freed once by the shim.
    drop(unsafe { Box::from_raw(state as *mut F) });
}
