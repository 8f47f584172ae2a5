//! The training losses' cross-entropy, computed as `transformers` computes it.
//!
//! `transformers`' MLM and QA heads call `CrossEntropyLoss` on their logits as they come: under bf16
//! autocast the log-softmax then reads and writes bf16 (accumulating in fp32), over the MLM head's
//! [masked positions × 250,002] logits half the bytes of an fp32 one and no cast before it. tch's
//! `cross_entropy_for_logits` casts to fp32 first. In fp32 both are the same kernels, bitwise.

use tch::{Reduction, Tensor};

use crate::mlm::IGNORE;

/// Mean cross-entropy of `logits` `[n, classes]` against class indices `targets` `[n]` (`IGNORE` left
/// out), in the logits' own precision.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, IGNORE, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn fp32_is_bitwise_the_fp32_log_softmax_and_its_gradient() {
        let _global = crate::global_state_lock();
        tch::manual_seed(3);
        let logits = Tensor::randn([37, 1000], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let targets = Tensor::randint(1000, [37], (Kind::Int64, Device::Cpu));
        let _ = targets.narrow(0, 0, 5).fill_(IGNORE);
        let ours = cross_entropy(&logits, &targets);
        let g_ours = Tensor::run_backward(&[&ours], &[&logits], false, false).remove(0);
        let theirs = logits.cross_entropy_for_logits(&targets);
        let g_theirs = Tensor::run_backward(&[&theirs], &[&logits], false, false).remove(0);
        assert!(ours.equal(&theirs), "{ours} vs {theirs}");
        assert!(g_ours.equal(&g_theirs));
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
