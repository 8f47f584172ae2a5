use std::time::Instant;
use tch::{Kind, Tensor};
fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    tch::set_num_threads(2);
    let m = model::Pretrained::<model::XlmRobertaForQuestionAnswering>::load(
        std::path::Path::new(&a[1]),
        tch::Device::Cpu,
    )?;
    let b: i64 = a[2].parse()?;
    let s: i64 = a[3].parse()?;
    let full = a[4] == "full";
    let ids = Tensor::randint_low(5, 1000, [b, s], (Kind::Int64, tch::Device::Cpu));
    let mask = ids.ones_like();
    if !full {
        let _ = mask.narrow(1, s - 10, 10).narrow(0, 0, 1).fill_(0);
    }
    let _g = tch::no_grad_guard();
    for i in 0..4 {
        let t = Instant::now();
        let (x, _) = m.model.forward_t(&ids, &mask, None, false);
        let _ = x.sum(Kind::Float).double_value(&[]);
        if i > 0 {
            println!("rust fwd {:.3}s", t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
