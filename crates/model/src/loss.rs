//! The training losses' cross-entropy.
//!
//! fp32 logits go through `csrc/cross_entropy.cpp`: the same mean of -log p(target) as libtorch's
//! `log_softmax` + `nll_loss`, whose backward turns the saved log-probabilities into the gradient in place
//! instead of filling a zero gradient and writing two more [rows × classes] tensors (over the MLM head's
//! 250,002 classes, about a tenth of a 2-core CPU training step; with fp32 logits on a GPU, two fewer
//! such buffers at the peak). Lower-precision logits keep libtorch's kernels as `transformers` calls
//! them: under bf16 autocast its `CrossEntropyLoss` reads and writes bf16 (accumulating in fp32), and the
//! in-place backward would round twice where libtorch rounds once. tch's `cross_entropy_for_logits`
//! casts to fp32 first.

use std::ffi::c_void;

use tch::{Kind, Reduction, Tensor};

use crate::mlm::IGNORE;

/// Mean cross-entropy of `logits` `[n, classes]` against class indices `targets` `[n]` (`IGNORE` left
/// out), in the logits' own precision.
///
/// # Panics
/// On logits that are not `[n, classes]` with int64 targets `[n]`, as libtorch's loss does.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    f_cross_entropy(logits, targets).unwrap_or_else(|e| panic!("{e}"))
}

/// [`cross_entropy`], with its error as a value.
pub fn f_cross_entropy(logits: &Tensor, targets: &Tensor) -> anyhow::Result<Tensor> {
    if logits.kind() != Kind::Float {
        return Ok(logits.f_cross_entropy_loss::<Tensor>(
            targets,
            None,
            Reduction::Mean,
            IGNORE,
            0.0,
        )?);
    }
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: both tensors are live for the whole call; on success the shim hands over a new at::Tensor*
    // that tch then owns and frees.
    let rc = unsafe {
        crate::ffi::medqa_cross_entropy(
            logits.as_ptr() as *mut c_void,
            targets.as_ptr() as *mut c_void,
            IGNORE,
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        anyhow::bail!("cross-entropy: {}", crate::ffi::last_error());
    }
    // SAFETY: `out` is a heap-allocated at::Tensor, the representation tch's handles have.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

/// libtorch's `log_softmax` + `nll_loss`, as `torch.nn.functional.cross_entropy` computes it.
pub fn library_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, IGNORE, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn loss_and_grad(
        loss: impl Fn(&Tensor, &Tensor) -> Tensor,
        logits: &Tensor,
        targets: &Tensor,
    ) -> (f64, Tensor) {
        let x = logits.detach().set_requires_grad(true);
        let l = loss(&x, targets) * 3.0; // an upstream gradient other than 1
        let g = Tensor::run_backward(&[&l], &[&x], false, false).remove(0);
        (l.double_value(&[]), g)
    }

    #[test]
    fn fp32_equals_libtorchs_log_softmax_and_nll_loss_and_their_gradient() {
        let _global = crate::global_state_lock();
        tch::manual_seed(3);
        let logits = Tensor::randn([37, 1000], (Kind::Float, Device::Cpu)) * 4.0;
        let targets = Tensor::randint(1000, [37], (Kind::Int64, Device::Cpu));
        let _ = targets.narrow(0, 0, 5).fill_(IGNORE);
        let (ours, g_ours) = loss_and_grad(cross_entropy, &logits, &targets);
        let (theirs, g_theirs) = loss_and_grad(library_cross_entropy, &logits, &targets);
        assert!(
            (ours - theirs).abs() < 1e-6 * theirs.abs(),
            "{ours} vs {theirs}"
        );
        let d = (&g_ours - &g_theirs).abs().max().double_value(&[]);
        assert!(d < 1e-7, "gradients differ by {d}");
        // Ignored rows get no gradient at all; kept rows' gradients sum to 0 (softmax minus one-hot).
        assert_eq!(
            g_ours
                .narrow(0, 0, 5)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        let row_sums = g_ours
            .narrow(0, 5, 32)
            .sum_dim_intlist(1, false, Kind::Float);
        assert!(row_sums.abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn a_second_backward_through_the_same_loss_is_refused_by_name() {
        let _global = crate::global_state_lock();
        let x = Tensor::randn([4, 10], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let targets = Tensor::from_slice(&[1i64, 2, 3, 4]);
        let loss = cross_entropy(&x, &targets);
        let first = Tensor::f_run_backward(&[&loss], &[&x], true, false);
        assert!(first.is_ok());
        let second = Tensor::f_run_backward(&[&loss], &[&x], false, false);
        let message = second.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("differentiated twice"), "{message}");
    }

    #[test]
    fn mismatched_shapes_are_an_error_that_names_them() {
        let _global = crate::global_state_lock();
        let x = Tensor::randn([4, 10], (Kind::Float, Device::Cpu));
        let e = f_cross_entropy(&x, &Tensor::from_slice(&[1i64, 2, 3])).unwrap_err();
        assert!(e.to_string().contains("[4, 10] logits and [3]"), "{e}");
        let e = f_cross_entropy(&x, &Tensor::from_slice(&[1i32, 2, 3, 4])).unwrap_err();
        assert!(e.to_string().contains("Int"), "{e}");
    }

    #[test]
    fn bf16_logits_give_a_bf16_loss_near_the_fp32_one() {
        let _global = crate::global_state_lock();
        tch::manual_seed(4);
        let logits = Tensor::randn([64, 5000], (Kind::Float, Device::Cpu)) * 3.0;
        let targets = Tensor::randint(5000, [64], (Kind::Int64, Device::Cpu));
        let low = cross_entropy(&logits.to_kind(Kind::BFloat16), &targets);
        assert_eq!(low.kind(), Kind::BFloat16);
        let exact = cross_entropy(
            &logits.to_kind(Kind::BFloat16).to_kind(Kind::Float),
            &targets,
        );
        let d = (low.to_kind(Kind::Float) - &exact).abs().double_value(&[]);
        // bf16 keeps 8 significant bits: the loss (about 11 here) to within a few hundredths.
        assert!(d < 0.1, "bf16 loss off by {d}");
    }
}
