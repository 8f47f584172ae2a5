//! `data-prep qa`: answers checked and repaired, sets merged with tags, duplicates dropped, split by
//! context, the same bytes on a re-run; on ../shared/data/qa when present.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_data-prep");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn paragraphs(v: &Value) -> Vec<Value> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["paragraphs"].as_array().unwrap().clone())
        .collect()
}

fn questions(v: &Value) -> Vec<Value> {
    paragraphs(v)
        .iter()
        .flat_map(|p| p["qas"].as_array().unwrap().clone())
        .collect()
}

/// Two small sets: misaligned, untrimmed, missing and good answers; numeric and absent ids; a
/// duplicate question; an unanswerable one.
fn inputs(dir: &Path) -> (String, String) {
    let a = dir.join("a.json");
    std::fs::write(
        &a,
        r#"{"version": "v2.0", "data": [{"title": "stroke", "lang": "ro", "paragraphs": [
          {"context": "TA 165/95 mmHg, glicemie 8.4 mmol/L. NIHSS 12.", "qas": [
            {"id": "ok", "question": "Ce TA?", "answers": [{"text": "165/95 mmHg", "answer_start": 3}]},
            {"id": "off", "question": "Glicemia?", "answers": [{"text": "8.4 mmol/L", "answer_start": 27}]},
            {"id": "ws", "question": "NIHSS?", "answers": [{"text": " 12. ", "answer_start": 40}]},
            {"id": "gone", "question": "Fibrilație?", "answers": [{"text": "FA", "answer_start": -1}]},
            {"id": "none", "question": "Tromboliză?", "answers": [], "is_impossible": true,
             "plausible_answers": [{"text": "x", "answer_start": 0}]}]},
          {"context": "Pacient de 71 de ani cu AVC ischemic.", "qas": [
            {"id": 7, "question": "Vârsta?", "answers": [{"text": "71 de ani", "answer_start": 11}]}]}]}]}"#,
    )
    .unwrap();
    let b = dir.join("b.json");
    std::fs::write(
        &b,
        r#"{"data": [{"paragraphs": [
          {"context": "Pacient de 71 de ani cu AVC ischemic.", "qas": [
            {"question": "  vârsta? ", "answers": [{"text": "71 de ani", "answer_start": 11}]},
            {"question": "Diagnosticul?", "answers": [{"text": "AVC ischemic", "answer_start": 24}]}]}]}]}"#,
    )
    .unwrap();
    (
        format!("{}:name=notes", a.display()),
        format!("{}:lang=ro", b.display()),
    )
}

#[test]
fn answers_are_repaired_or_rejected_and_sets_merge_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = inputs(tmp.path());
    let out = tmp.path().join("merged.json");
    let printed = ok(run(&[
        "qa",
        "--input",
        &a,
        "--input",
        &b,
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(printed.contains("rejects: 2"), "{printed}");
    let merged = read(&out);
    let qs = questions(&merged);
    let ids: Vec<&str> = qs.iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["notes:ok", "notes:off", "notes:ws", "notes:none", "notes:7", "b:a0-p0-q1"],
        "the duplicate question (same context, same text up to case and spaces) and the one with no \
         locatable answer are dropped"
    );
    let ctx = merged["data"][0]["paragraphs"][0]["context"]
        .as_str()
        .unwrap();
    for q in &qs[..3] {
        let a = &q["answers"][0];
        let (t, s) = (
            a["text"].as_str().unwrap(),
            a["answer_start"].as_u64().unwrap() as usize,
        );
        let found: String = ctx.chars().skip(s).take(t.chars().count()).collect();
        assert_eq!(found, t, "{q}");
    }
    assert_eq!(
        qs[2]["answers"][0]["text"], "12.",
        "trimmed to what the context holds"
    );
    assert_eq!(qs[3]["is_impossible"], true);
    assert_eq!(
        (qs[0]["lang"].as_str(), qs[5]["lang"].as_str()),
        (Some("ro"), Some("ro"))
    );
    assert_eq!(qs[5]["source"], "b");

    let rejects = std::fs::read_to_string(tmp.path().join("merged.json.rejects.jsonl")).unwrap();
    let rows: Vec<Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["question_id"], "gone");
    assert!(rows[0]["file"].as_str().unwrap().ends_with("a.json"));
    assert!(rows[1]["reason"].as_str().unwrap().contains("dropped"));
    let stats = read(&tmp.path().join("merged.json.stats.json"));
    let f = &stats["files"][0];
    assert_eq!(
        (
            f["answers_ok"].as_u64(),
            f["answers_moved"].as_u64(),
            f["answers_trimmed"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(stats["files"][1]["questions_duplicate"], 1);

    // The same inputs give the same bytes.
    let first = std::fs::read(&out).unwrap();
    ok(run(&[
        "qa",
        "--input",
        &a,
        "--input",
        &b,
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(first, std::fs::read(&out).unwrap());
    // --strict makes a rejected answer an error that names the file and the question.
    let strict = run(&[
        "qa",
        "--input",
        &a,
        "--out",
        out.to_str().unwrap(),
        "--strict",
    ]);
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success() && err.contains("a.json") && err.contains("gone"),
        "{err}"
    );
}

#[test]
fn the_split_is_by_context_and_windows_are_counted_with_a_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = inputs(tmp.path());
    let (train, dev) = (tmp.path().join("train.json"), tmp.path().join("dev.json"));
    let tok = root().join("crates/model/tests/fixtures/tokenizer/tokenizer.json");
    for permille in ["0", "500", "1000"] {
        ok(run(&[
            "qa",
            "--input",
            &a,
            "--input",
            &b,
            "--out",
            train.to_str().unwrap(),
            "--dev-out",
            dev.to_str().unwrap(),
            "--dev-permille",
            permille,
            "--tokenizer",
            tok.to_str().unwrap(),
            "--max-seq-length",
            "24",
            "--doc-stride",
            "8",
        ]));
        let (t, d) = (read(&train), read(&dev));
        assert_eq!(questions(&t).len() + questions(&d).len(), 6);
        let contexts = |v: &Value| -> Vec<String> {
            paragraphs(v)
                .iter()
                .map(|p| p["context"].as_str().unwrap().to_owned())
                .collect()
        };
        let (ct, cd) = (contexts(&t), contexts(&d));
        assert!(
            ct.iter().all(|c| !cd.contains(c)),
            "a context never straddles the split"
        );
        match permille {
            "0" => assert!(cd.is_empty()),
            "1000" => assert!(ct.is_empty()),
            _ => {}
        }
    }
    let stats = read(&tmp.path().join("train.json.stats.json"));
    let g = stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["source"] == "notes")
        .unwrap();
    assert!(
        g["windows"].as_u64().unwrap() > g["questions"].as_u64().unwrap(),
        "{g}"
    );
    assert!(g["context_tokens_max"].as_u64().unwrap() > 16);
    let bad = run(&[
        "qa",
        "--input",
        &a,
        "--out",
        train.to_str().unwrap(),
        "--dev-permille",
        "100",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--dev-out"));
}

#[test]
fn covid_qa_offsets_are_all_recovered() {
    let file = root().join("../shared/data/qa/covid-qa-200423.en.json");
    if !file.exists() {
        eprintln!("skipped: {} is absent", file.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("covid.json");
    ok(run(&[
        "qa",
        "--input",
        &format!("{}:lang=en", file.display()),
        "--out",
        out.to_str().unwrap(),
    ]));
    let stats = read(&tmp.path().join("covid.json.stats.json"));
    let f = &stats["files"][0];
    assert_eq!(f["answers"], 1380);
    assert_eq!(f["answers_moved"], 234, "{f}");
    assert_eq!(f["answers_rejected"], 0, "{f}");
}
