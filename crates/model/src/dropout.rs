//! Dropout whose CPU masks are drawn on every core (`csrc/dropout.cpp`): libtorch's CPU bernoulli runs
//! on one thread, which made attention dropout about a tenth of a CPU training step. CUDA keeps
//! libtorch's fused kernel.

use std::ffi::c_void;

use crate::ffi::medqa_dropout_mask;
use tch::{Device, Kind, Tensor};

/// In training, `x` with each element zeroed with probability `p` and the others scaled by `1 / (1 - p)`;
/// otherwise `x` itself.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if x.device() != Device::Cpu || p >= 1.0 {
        return x.dropout(p, train);
    }
    match mask_like(x, p) {
        Ok(mask) => x * mask,
        Err(e) => {
            eprintln!("warning: parallel dropout mask failed ({e}); using libtorch's dropout");
            x.dropout(p, train)
        }
    }
}

/// The keep mask (`1 / (1 - p)` or 0) for a CPU tensor, in its dtype. Its seed comes from libtorch's
/// default CPU generator, so `tch::manual_seed` fixes the mask; the thread count does not change it.
fn mask_like(x: &Tensor, p: f64) -> Result<Tensor, String> {
    let seed = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: `x` is a live tensor for the whole call; on success the shim hands over a new at::Tensor*
    // that tch then owns and frees.
    let rc = unsafe { medqa_dropout_mask(x.as_ptr() as *mut c_void, p, seed, &mut out) };
    if rc != 0 || out.is_null() {
        return Err(crate::ffi::last_error());
    }
    // SAFETY: `out` is a heap-allocated at::Tensor, the representation tch's handles have.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(seed: i64, threads: i32) -> Tensor {
        tch::set_num_threads(threads);
        tch::manual_seed(seed);
        mask_like(
            &Tensor::zeros([3, 5, 40_000], (Kind::Float, Device::Cpu)),
            0.1,
        )
        .unwrap()
    }

    #[test]
    fn masks_depend_on_the_seed_not_on_the_thread_count() {
        let _global = crate::global_state_lock();
        let a = mask(7, 1);
        let b = mask(7, 2);
        let c = mask(8, 2);
        tch::set_num_threads(1);
        assert!(a.equal(&b), "same seed, different thread counts");
        assert!(!a.equal(&c), "different seeds gave the same mask");
    }

    #[test]
    fn drops_the_share_asked_for_and_rescales_the_rest() {
        let _global = crate::global_state_lock();
        let m = mask(3, 1);
        let n = m.numel() as f64;
        let dropped = m.eq(0.0).sum(Kind::Float).double_value(&[]) / n;
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        let kept = m.ne(0.0).to_kind(Kind::Bool);
        let values = m.masked_select(&kept);
        let scale = 1.0 / 0.9;
        assert!((values.min().double_value(&[]) - scale).abs() < 1e-6);
        assert!((values.max().double_value(&[]) - scale).abs() < 1e-6);
        // A mean close to 1 keeps activations' expected value, as torch's dropout does.
        assert!((m.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.01);
    }

    #[test]
    fn a_failed_mask_reports_the_shims_message() {
        let x = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        let err = mask_like(&x, 1.5).unwrap_err();
        assert!(err.contains("dropout probability"), "{err}");
    }

    #[test]
    fn gradients_flow_through_the_kept_elements_only() {
        let _global = crate::global_state_lock();
        tch::manual_seed(1);
        let x = Tensor::ones([4, 1000], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.5, true);
        y.sum(Kind::Float).backward();
        // The gradient of sum(x * mask) is the mask itself.
        assert!(x.grad().equal(&(y.detach())));
        assert!(dropout(&x, 0.5, false).equal(&x));
        let bf = dropout(&x.detach().to_kind(Kind::BFloat16), 0.5, true);
        assert_eq!(bf.kind(), Kind::BFloat16);
    }
}
