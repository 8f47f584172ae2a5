//! `data.max_train_sequences` (run_mlm.py's `max_train_samples`): training sees the first N sequences.

use model::train::Task;

mod common;

#[test]
fn max_train_sequences_keeps_the_first_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let all = common::task(tmp.path(), serde_json::json!({})).unwrap();
    let total = all.train_len();
    assert!(total > 20, "{total}");
    let capped =
        common::task(tmp.path(), serde_json::json!({ "max_train_sequences": 20 })).unwrap();
    assert_eq!(capped.train_len(), 20);
    // What an epoch samples from: the first 20 sequences, with their lengths.
    let (full, cut) = (all.sampling(), capped.sampling());
    assert_eq!(
        cut.lengths.as_deref(),
        full.lengths.as_ref().map(|l| &l[..20])
    );
    // A cap above the corpus takes it all; zero is an error.
    let over = common::task(
        tmp.path(),
        serde_json::json!({ "max_train_sequences": total + 5 }),
    )
    .unwrap();
    assert_eq!(over.train_len(), total);
    let err = common::task(tmp.path(), serde_json::json!({ "max_train_sequences": 0 }))
        .err()
        .expect("zero sequences is an error");
    assert!(
        format!("{err:#}").contains("max_train_sequences"),
        "{err:#}"
    );
}
