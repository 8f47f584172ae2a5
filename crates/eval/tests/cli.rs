//! `eval score` end to end: real SQuAD files from ../shared/data when present, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_eval");

/// The real QA sets; the tests that read them are ignored (reported as skipped) where they are absent.
fn shared_qa() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/qa")
}

fn score(args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(BIN).arg("score").args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Predictions that answer each question with `pick(answers)`.
fn predictions(data: &Path, out: &Path, pick: impl Fn(&[serde_json::Value]) -> String) {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
    let mut p = serde_json::Map::new();
    for a in d["data"].as_array().unwrap() {
        for para in a["paragraphs"].as_array().unwrap() {
            for qa in para["qas"].as_array().unwrap() {
                p.insert(
                    qa["id"].as_str().unwrap().into(),
                    pick(qa["answers"].as_array().unwrap()).into(),
                );
            }
        }
    }
    std::fs::write(out, serde_json::Value::Object(p).to_string()).unwrap();
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn squad_v1_gold_answers_score_100_and_missing_ones_count_as_zero() {
    let qa = shared_qa();
    let data = qa.join("squad-v1.1-dev.en.json");
    let tmp = tempfile::tempdir().unwrap();
    let preds = tmp.path().join("p.json");
    // The last gold answer, not the first: max over golds must find it.
    predictions(&data, &preds, |a| {
        a.last().unwrap()["text"].as_str().unwrap().to_owned()
    });
    let (ok, r, _) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(r["overall"]["total"], 10570);
    // One question's last gold answer is "." — it normalises to nothing, which the official v1.1 script
    // counts as an exact match but as F1 0 (no shared tokens).
    assert_eq!(r["overall"]["exact"].as_f64(), Some(100.0));
    let f1 = r["overall"]["f1"].as_f64().unwrap();
    assert!((f1 - 100.0 * 10569.0 / 10570.0).abs() < 1e-9, "{f1}");

    // Drop two predictions: v1.1 keeps them in the total with score 0.
    let mut p: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&preds).unwrap()).unwrap();
    let ids: Vec<String> = p.keys().take(2).cloned().collect();
    for id in &ids {
        p.remove(id);
    }
    p.insert("not-a-question".into(), "x".into());
    std::fs::write(&preds, serde_json::Value::Object(p).to_string()).unwrap();
    let (_, r, err) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    let em = r["overall"]["exact"].as_f64().unwrap();
    assert!((em - 100.0 * 10568.0 / 10570.0).abs() < 1e-9, "{em}");
    assert!(
        err.contains("2 question(s) have no prediction")
            && err.contains("1 prediction(s) for ids not in"),
        "{err}"
    );
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn squad_v2_spanish_empty_predictions_get_exactly_the_no_answer_share() {
    let qa = shared_qa();
    let data = qa.join("squad-es-v2.0-dev-small.es.json");
    let tmp = tempfile::tempdir().unwrap();
    let preds = tmp.path().join("p.json");
    predictions(&data, &preds, |_| String::new());
    let md = tmp.path().join("t.md");
    let (ok, r, _) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--lang",
        "es",
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert!(ok);
    let o = &r["overall"];
    assert_eq!(
        (
            o["total"].as_u64(),
            o["NoAns_total"].as_u64(),
            o["HasAns_total"].as_u64()
        ),
        (Some(7134), Some(3256), Some(3878))
    );
    assert!((o["exact"].as_f64().unwrap() - 100.0 * 3256.0 / 7134.0).abs() < 1e-9);
    assert_eq!(o["NoAns_exact"].as_f64(), Some(100.0));
    let table = std::fs::read_to_string(md).unwrap();
    assert!(table.contains("| es | 45.64 | 45.64 | 7134 |"), "{table}");
}

#[test]
fn bad_input_names_the_file_and_place() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.json");
    std::fs::write(&data, "{\"data\": [\n  {\"paragraphs\": [ {\"qas\": [ {\"id\": \"1\", \"answers\": [{\"text\": \"x\"}]} ]} ]},\n  oops\n]}").unwrap();
    let preds = tmp.path().join("p.json");
    std::fs::write(&preds, "{\"1\": \"x\"}").unwrap();
    let (ok, _, err) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("d.json") && err.contains("line 3"),
        "{err}"
    );

    std::fs::write(&data, "{\"data\": [{\"paragraphs\": [{\"qas\": [{\"id\": \"1\", \"answers\": [{\"text\": \"x\"}]}]}]}]}").unwrap();
    std::fs::write(&preds, "{\"1\": 42}").unwrap();
    let (ok, _, err) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("p.json") && err.contains("'1'") && err.contains("not a string"),
        "{err}"
    );

    // An unknown language falls back with a warning, never a crash.
    std::fs::write(&preds, "{\"1\": \"X!\"}").unwrap();
    let (ok, r, err) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--lang",
        "tlh",
    ]);
    assert!(
        ok && err.contains("no normalisation rules for language 'tlh'"),
        "{err}"
    );
    assert_eq!(r["overall"]["exact"].as_f64(), Some(100.0));
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn bioasq_snippets_merge_into_questions() {
    let qa = shared_qa();
    let data = qa.join("bioasq-7b-test-factoid-goldspans.en.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
    // A wrong answer first, the golden span second, for every snippet.
    let mut nbest = serde_json::Map::new();
    for a in d["data"].as_array().unwrap() {
        for p in a["paragraphs"].as_array().unwrap() {
            for q in p["qas"].as_array().unwrap() {
                let gold = q["answers"][0]["text"].clone();
                nbest.insert(
                    q["id"].as_str().unwrap().into(),
                    serde_json::json!([{"text": "not an answer", "probability": 0.6}, {"text": gold, "probability": 0.4}]),
                );
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("nbest.json");
    std::fs::write(&f, serde_json::Value::Object(nbest).to_string()).unwrap();
    let out = Command::new(BIN)
        .args([
            "bioasq",
            "--data",
            data.to_str().unwrap(),
            "--nbest",
            f.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 229 snippet-level entries belong to 125 questions.
    assert_eq!(r["questions"], 125);
    assert_eq!(
        (
            r["strict_accuracy"].as_f64(),
            r["lenient_accuracy"].as_f64(),
            r["mrr"].as_f64()
        ),
        (Some(0.0), Some(1.0), Some(0.5))
    );
}

#[test]
fn numeric_question_ids_are_read_as_strings() {
    // The Romanian COVID QA set numbers its questions.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.json");
    std::fs::write(&data, r#"{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": 2, "question": "q", "answers": [{"text": "Tuse", "answer_start": 0}]}]}]}]}"#).unwrap();
    let preds = tmp.path().join("p.json");
    std::fs::write(&preds, r#"{"2": "tuse"}"#).unwrap();
    let (ok, r, err) = score(&[
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(r["overall"]["exact"].as_f64(), Some(100.0));
}

#[test]
fn questions_without_ids_are_named_by_position() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("poquad-like.json");
    std::fs::write(&data, r#"{"data": [{"paragraphs": [{"context": "c", "qas": [
        {"question": "q", "answers": [{"text": "Tuse", "answer_start": 0}]}]}]},
        {"paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": [{"text": "a", "answer_start": 0}]},
        {"question": "r", "answers": [{"text": "b", "answer_start": 0}]}]}]}]}"#).unwrap();
    let set = eval::data::load_dataset(&data).unwrap();
    let ids: Vec<&str> = set.questions.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["a0-p0-q0", "a1-p0-q0", "a1-p0-q1"]);
}

#[test]
fn a_v1_question_without_answers_is_an_error_and_outputs_are_checked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, preds) = (tmp.path().join("d.json"), tmp.path().join("p.json"));
    std::fs::write(&preds, r#"{"q1": "x", "q2": "y"}"#).unwrap();
    let with = |qa2: &str, version: &str| {
        std::fs::write(
            &data,
            format!(
                r#"{{"version": "{version}", "data": [{{"paragraphs": [{{"qas": [
                {{"id": "q1", "answers": [{{"text": "x"}}]}}, {qa2}]}}]}}]}}"#
            ),
        )
        .unwrap();
    };
    let args = [
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
    ];
    // Missing, empty or mistyped answers in a v1.1 file: an error naming the question, never a
    // switch of the whole file to SQuAD 2.0 scoring.
    for (qa2, needle) in [
        (r#"{"id": "q2"}"#, "no answers"),
        (r#"{"id": "q2", "answers": []}"#, "no answers"),
        (
            r#"{"id": "q2", "answers": {"text": "y"}}"#,
            "must be a list",
        ),
        (r#"{"id": "q2", "answers": [{"txt": "y"}]}"#, "no \"text\""),
    ] {
        with(qa2, "1.1");
        let (ok, _, err) = score(&args);
        assert!(
            !ok && err.contains("'q2'") && err.contains("d.json") && err.contains(needle),
            "{qa2}: {err}"
        );
    }
    // In a v2.0 file a question without answers is unanswerable.
    with(r#"{"id": "q2"}"#, "v2.0");
    let (ok, r, err) = score(&args);
    assert!(ok, "{err}");
    assert_eq!(r["version"], "2.0");
    assert_eq!(r["overall"]["NoAns_total"], 1);

    // Outputs are checked before the files are read and scored.
    std::fs::write(tmp.path().join("blocker"), "a file").unwrap();
    let bad = tmp.path().join("blocker/table.md");
    let mut with_md = args.to_vec();
    with_md.extend(["--markdown", bad.to_str().unwrap()]);
    let (ok, _, err) = score(&with_md);
    assert!(
        !ok && err.contains("is a file") && !err.contains("| "),
        "{err}"
    );
}
