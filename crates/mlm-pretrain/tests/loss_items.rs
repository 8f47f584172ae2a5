//! MLM's loss is the mean over a batch's labelled positions: `Task::loss_items` counts them, without the
//! padding that a captured step's fixed shapes add, so that the training loop weighs each micro-batch of
//! a step by them (the step's mean over all its labelled positions).

mod common;

use model::train::Task;

#[test]
fn loss_items_count_the_labelled_positions_not_the_padding() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = common::task(dir.path(), serde_json::json!({})).unwrap();
    // The masks of each batch come from torch's generator, seeded alike for both passes.
    let batches: Vec<Vec<usize>> = (0..8).map(|b| (b * 8..b * 8 + 8).collect()).collect();
    let draw = |task: &mlm_pretrain::MlmTask| -> Vec<(usize, f64, usize)> {
        batches
            .iter()
            .enumerate()
            .map(|(i, idx)| {
                tch::manual_seed(100 + i as i64);
                let b = task.batch(idx).unwrap();
                let loss = tch::no_grad(|| task.loss(&b, false).double_value(&[]));
                (task.loss_items(&b).unwrap(), loss, task.tokens(&b))
            })
            .collect()
    };
    let plain = draw(&task);
    task.use_static_shapes();
    let fixed = draw(&task);
    for (i, ((n, loss, _), (n_fixed, loss_fixed, _))) in plain.iter().zip(&fixed).enumerate() {
        assert_eq!(n, n_fixed, "batch {i}: the padded positions are not items");
        // The padding is ignored by the loss too: the same mean over the same labelled positions.
        assert!(
            ((loss - loss_fixed) / loss).abs() < 1e-5,
            "batch {i}: {loss} vs {loss_fixed}"
        );
    }
    // About mlm_probability (0.15) of the tokens, less the special ones, which are never labelled.
    let (items, tokens) = plain
        .iter()
        .fold((0, 0), |(i, t), (n, _, k)| (i + n, t + k));
    let share = items as f64 / tokens as f64;
    assert!((0.10..0.16).contains(&share), "{items} of {tokens} tokens");
    assert!(
        plain.iter().any(|(n, ..)| *n != plain[0].0),
        "batches label different counts: {plain:?}"
    );
}
