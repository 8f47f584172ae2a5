//! Training batches with static shapes (what lets a captured CUDA graph of the step replay every batch of
//! a size): the labelled positions padded to a bound, the same loss as the batch without padding.

use model::train::Task;

mod common;

fn task(dir: &std::path::Path) -> mlm_pretrain::MlmTask {
    common::task(dir, serde_json::json!({})).unwrap()
}

#[test]
fn static_shapes_pad_positions_and_keep_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = task(tmp.path());
    let indices: Vec<usize> = (0..8).collect();
    let others: Vec<usize> = (8..16).collect();

    tch::manual_seed(11);
    let plain = t.batch(&indices).unwrap();
    assert!(
        t.graph_inputs(&plain).is_none(),
        "without static shapes no batch is offered to a graph"
    );
    let plain_loss = t.loss(&plain, false).double_value(&[]);

    t.use_static_shapes();
    tch::manual_seed(11);
    let fixed = t.batch(&indices).unwrap();
    let inputs = t
        .graph_inputs(&fixed)
        .expect("an unpadded batch under its bound replays");
    let fixed_loss = t.loss(&fixed, false).double_value(&[]);
    assert!(
        (plain_loss - fixed_loss).abs() <= 1e-6 * plain_loss.abs(),
        "loss {plain_loss} vs {fixed_loss} with padded positions"
    );
    // Another batch of the same size has the same shapes, whatever its number of masked tokens.
    tch::manual_seed(12);
    let other = t.batch(&others).unwrap();
    let other_inputs = t.graph_inputs(&other).unwrap();
    let shapes = |v: &[tch::Tensor]| v.iter().map(|x| x.size()).collect::<Vec<_>>();
    assert_eq!(shapes(&inputs), shapes(&other_inputs));
}
