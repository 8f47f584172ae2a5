//! Evaluation per language: validation shards that record their language are scored on their own,
//! and the whole split's figures are the sums over the languages.

mod common;

use std::collections::BTreeMap;

use model::train::Task;

/// Torch's generator is the process's: tests that seed it and draw from it (model initialisation,
/// masks) take turns.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The evaluation of a tiny model on shards with these validation sets.
fn evaluate(
    validation: &[(Option<&str>, Vec<usize>)],
    cap: Option<usize>,
) -> BTreeMap<String, f64> {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    common::write_shards(&dir.path().join("corpus"), validation);
    let data = serde_json::json!({ "max_eval_sequences": cap, "eval_batch_size": 2 });
    let progress = model::train::task::ProgressBar::hidden();
    let metrics = common::task(dir.path(), data)
        .unwrap()
        .evaluate(&progress)
        .unwrap();
    // The evaluation's bar ends full, at the sequences scored (no more than the cap).
    let scored = progress.position();
    assert!(scored > 0 && progress.length() == Some(scored));
    assert!(cap.is_none_or(|c| scored <= c as u64), "{scored} > {cap:?}");
    metrics
}

const EN: [usize; 6] = [0, 1, 0, 1, 0, 1];
const ES: [usize; 3] = [2, 2, 2];

#[test]
fn each_language_is_scored_alone_and_the_split_is_their_sum() {
    let both = evaluate(
        &[(Some("en"), EN.to_vec()), (Some("es"), ES.to_vec())],
        None,
    );
    for key in ["loss", "perplexity", "accuracy", "masked_tokens"] {
        for prefix in ["eval/", "eval/en/", "eval/es/"] {
            assert!(both.contains_key(&format!("{prefix}{key}")), "{both:?}");
        }
    }
    let (en, es) = (both["eval/en/masked_tokens"], both["eval/es/masked_tokens"]);
    assert!(en > 0.0 && es > 0.0, "{both:?}");
    assert_eq!(both["eval/masked_tokens"], en + es);
    let mean = (both["eval/en/loss"] * en + both["eval/es/loss"] * es) / (en + es);
    assert!((both["eval/loss"] - mean).abs() < 1e-9, "{both:?}");

    // English comes first: its figures are those of a split that holds it alone, no language recorded
    // (the masks of a batch depend on its place in the evaluation only).
    let alone = evaluate(&[(None, EN.to_vec())], None);
    assert!(
        !alone.keys().any(|k| k.starts_with("eval/en/")),
        "{alone:?}"
    );
    for key in ["loss", "accuracy", "masked_tokens"] {
        assert_eq!(
            both[&format!("eval/en/{key}")],
            alone[&format!("eval/{key}")],
            "{key}"
        );
    }
}

#[test]
fn the_evaluation_cap_is_shared_among_languages() {
    // 6 English documents of two sentences fill more than one 32-token sequence each; Spanish has 3.
    let capped = evaluate(
        &[(Some("en"), EN.to_vec()), (Some("es"), ES.to_vec())],
        Some(2),
    );
    let en_one = evaluate(&[(None, EN.to_vec())], Some(1));
    assert_eq!(
        capped["eval/en/masked_tokens"],
        en_one["eval/masked_tokens"]
    );
    assert_eq!(capped["eval/en/loss"], en_one["eval/loss"]);
    assert!(capped["eval/es/masked_tokens"] > 0.0, "{capped:?}");
    let es_all = evaluate(&[(Some("es"), ES.to_vec())], None);
    assert!(
        capped["eval/es/masked_tokens"] < es_all["eval/masked_tokens"],
        "{capped:?} {es_all:?}"
    );
}
