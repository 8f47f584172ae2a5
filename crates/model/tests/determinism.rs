//! `train.full_determinism` switches libtorch's deterministic kernels on (process-wide: a test binary
//! of its own), and the loop trains under it on the CPU with the numbers it gives without.

use model::determinism::{full_determinism, set_full_determinism};
use model::train::TrainConfig;
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM};
use tch::{Device, Kind, Tensor};

/// Loss and gradient of a few masked-LM steps on a tiny model, with dropout.
fn losses() -> Vec<f64> {
    let mut cfg = XlmRobertaConfig::new(60, 32, 2, 4, 64);
    cfg.max_position_embeddings = 24;
    tch::manual_seed(3);
    let model: Pretrained<XlmRobertaForMaskedLM> = Pretrained::init(cfg, Device::Cpu).unwrap();
    let mut opt = model::train::AdamW::new(model.vs.variables(), Default::default());
    let mut out = Vec::new();
    for step in 0..4 {
        tch::manual_seed(10 + step);
        let ids = Tensor::randint_low(4, 60, [4, 16], (Kind::Int64, Device::Cpu));
        let mask = ids.ones_like();
        // Every third position is predicted: the masked-only head, as MLM training runs it.
        let positions = Tensor::arange_start_step(0, 64, 3, (Kind::Int64, Device::Cpu));
        let logits = model.model.forward_at(&ids, &mask, None, &positions, true);
        let targets = ids.reshape([-1]).index_select(0, &positions);
        let loss = model::loss::cross_entropy(&logits, &targets);
        opt.zero_grad();
        loss.backward();
        let _ = opt.clip_grad_norm(1.0);
        opt.step(1e-3, None).unwrap();
        out.push(loss.double_value(&[]));
    }
    out
}

#[test]
fn full_determinism_sets_libtorchs_switch_and_changes_no_cpu_number() {
    assert!(!full_determinism());
    let before = losses();
    let cfg: TrainConfig = toml::from_str("full_determinism = true").unwrap();
    set_full_determinism(cfg.full_determinism).unwrap();
    assert!(full_determinism());
    assert_eq!(
        std::env::var("CUBLAS_WORKSPACE_CONFIG").as_deref(),
        Ok(":4096:8")
    );
    assert_eq!(losses(), before);
    set_full_determinism(false).unwrap();
    assert!(!full_determinism());
}
