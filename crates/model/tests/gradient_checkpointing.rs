//! Gradient checkpointing (`model::checkpoint`) on its own, in its own process: the test compares the
//! random stream after a backward, which any other test drawing from libtorch's process-wide generator
//! at the same time would move.

use model::checkpoint::checkpoint;
use tch::{Device, Kind, Tensor};

/// libtorch's generator is process-wide: these tests must not interleave.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Gradients through a checkpointed function (with dropout, so the generator is replayed) equal the
/// plain ones, and the random stream after the backward is the one without the recomputation.
#[test]
fn gradients_and_random_stream_are_those_without_checkpointing() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let w0 = Tensor::randn([16, 16], (Kind::Float, Device::Cpu));
    let layer = |w: &Tensor, x: &Tensor| -> Tensor {
        model::dropout::dropout(&x.matmul(w).gelu("none"), 0.3, true).matmul(w)
    };
    let run = |checkpointed: bool| -> (Tensor, Tensor, Tensor, Tensor) {
        let w = w0.copy().set_requires_grad(true);
        tch::manual_seed(11);
        let x = Tensor::randn([4, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = if checkpointed {
            let w = w.shallow_clone();
            checkpoint(&x, move |x| layer(&w, x)).unwrap()
        } else {
            layer(&w, &x)
        };
        let loss = y.square().sum(Kind::Float);
        loss.backward();
        let after = Tensor::rand([3], (Kind::Float, Device::Cpu));
        (loss.detach(), w.grad().copy(), x.grad().copy(), after)
    };
    let plain = run(false);
    let ckpt = run(true);
    assert_eq!(
        f64::try_from(&plain.0).unwrap(),
        f64::try_from(&ckpt.0).unwrap()
    );
    assert!(plain.1.equal(&ckpt.1), "weight gradients differ");
    assert!(plain.2.equal(&ckpt.2), "input gradients differ");
    assert!(plain.3.equal(&ckpt.3), "the random stream moved");
}

#[test]
fn a_failing_recomputation_is_an_error_with_its_message() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let x = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let y = checkpoint(&x, move |x| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            panic!("recomputed badly");
        }
        x * 2
    })
    .unwrap();
    let err = y.sum(Kind::Float).f_backward().unwrap_err().to_string();
    assert!(err.contains("recomputed badly"), "{err}");
}

/// What the function holds lives as long as the graph that may recompute it, and no longer.
#[test]
fn the_functions_state_is_freed_with_the_graph() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let held = std::sync::Arc::new(());
    let x = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let inside = held.clone();
    let y = checkpoint(&x, move |x| {
        let _ = &inside;
        x * 3
    })
    .unwrap();
    assert_eq!(std::sync::Arc::strong_count(&held), 2);
    y.sum(Kind::Float).backward();
    assert_eq!(Vec::<f32>::try_from(x.grad()).unwrap(), vec![3.0; 3]);
    drop(y);
    assert_eq!(std::sync::Arc::strong_count(&held), 1);
}
