//! The C++ autocast shim: bf16 regions on CPU (the same calls serve CUDA), nesting and restoring.

use model::autocast::{state, AutocastGuard, Precision};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

#[test]
fn bf16_region_casts_matmuls_and_restores_the_previous_state() {
    let vs = nn::VarStore::new(Device::Cpu);
    let lin = nn::linear(vs.root() / "l", 8, 4, Default::default());
    let x = Tensor::randn([2, 8], (Kind::Float, Device::Cpu));
    assert_eq!(lin.forward(&x).kind(), Kind::Float);
    let before = state(Device::Cpu);
    {
        let _outer = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
        assert_eq!(state(Device::Cpu), (true, Some(Kind::BFloat16)));
        assert_eq!(lin.forward(&x).kind(), Kind::BFloat16);
        {
            let _inner = AutocastGuard::new(Device::Cpu, Kind::Half).unwrap();
            assert_eq!(state(Device::Cpu), (true, Some(Kind::Half)));
        }
        assert_eq!(
            state(Device::Cpu),
            (true, Some(Kind::BFloat16)),
            "inner guard restores the outer dtype"
        );
    }
    assert_eq!(state(Device::Cpu), before);
    assert_eq!(lin.forward(&x).kind(), Kind::Float);
    // precision = "fp16" computes products in fp16, on the CPU too.
    {
        let _fp16 = AutocastGuard::for_precision(Precision::Fp16, Device::Cpu).unwrap();
        assert_eq!(lin.forward(&x).kind(), Kind::Half);
    }
    assert_eq!(lin.forward(&x).kind(), Kind::Float);
}
