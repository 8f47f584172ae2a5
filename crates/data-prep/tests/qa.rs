//! `data-prep qa`: answers checked and repaired, sets merged with tags, repeated questions merged with
//! their answers, renamed ids reported, split by context, the same bytes on a re-run; bad input is an
//! error naming the question; on ../shared/data/qa when present.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use test_support::{ok, root};

const BIN: &str = env!("CARGO_BIN_EXE_data-prep");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
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

/// `data-prep qa` on the two inputs of [`inputs`] into `out`, with `extra` arguments; must succeed.
fn merge_two(a: &str, b: &str, out: &Path, extra: &[&str]) -> String {
    let out = out.to_str().unwrap();
    let mut args = vec!["qa", "--input", a, "--input", b, "--out", out];
    args.extend(extra);
    ok(run(&args))
}

#[test]
fn answers_are_repaired_or_rejected_and_sets_merge_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = inputs(tmp.path());
    let out = tmp.path().join("merged.json");
    let printed = merge_two(&a, &b, &out, &[]);
    assert!(printed.contains("rejects: 2"), "{printed}");
    let merged = read(&out);
    let qs = questions(&merged);
    let ids: Vec<&str> = qs.iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "notes:ok",
            "notes:off",
            "notes:ws",
            "notes:none",
            "notes:7",
            "b:a0-p0-q1"
        ],
        "the repeated question (same context, same text up to case and spaces) is merged into the \
         first, and the one with no locatable answer is dropped"
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
    // The inputs' hashes, as Python's hashlib gives them, in the order given.
    let hashed = test_support::recorded_hashes(&stats["provenance"]["inputs"]);
    let given: Vec<std::path::PathBuf> = hashed.iter().map(|(p, _)| p.into()).collect();
    assert_eq!(given.len(), 2, "{hashed:?}");
    assert!(
        given[0].ends_with("a.json") && given[1].ends_with("b.json"),
        "{given:?}"
    );
    let sums: Vec<String> = hashed.into_iter().map(|(_, s)| s).collect();
    assert_eq!(sums, test_support::python_sha256(&given));
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
    merge_two(&a, &b, &out, &[]);
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
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn covid_qa_offsets_are_all_recovered() {
    let file = root().join("../shared/data/qa/covid-qa-200423.en.json");
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
    // 18 groups of repeated questions (20 repeats), each with other answers: all 1,380 golds stay.
    assert_eq!(
        (
            f["questions_duplicate"].as_u64(),
            f["answers_merged"].as_u64()
        ),
        (Some(20), Some(20)),
        "{f}"
    );
    let kept: usize = questions(&read(&out))
        .iter()
        .map(|q| q["answers"].as_array().unwrap().len())
        .sum();
    assert_eq!(kept, 1380, "no gold answer lost");
}

#[test]
fn the_record_names_the_code_that_ran_not_the_working_directorys_repository() {
    let tmp = tempfile::tempdir().unwrap();
    // A user's project, a git repository of its own, as the working directory.
    let project = tmp.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let (a, _) = inputs(&project);
    let project_commit = test_support::git_repo_with(&project, "a.json");
    let provenance = |bin: &Path| {
        let out = project.join("out.json");
        ok(Command::new(bin)
            .current_dir(&project)
            .args(["qa", "--input", &a, "--out", out.to_str().unwrap()])
            .output()
            .unwrap());
        read(&project.join("out.json.stats.json"))["provenance"].clone()
    };
    // The built binary: the commit of the checkout it was compiled in.
    let p = provenance(Path::new(BIN));
    match test_support::git(&root(), &["rev-parse", "HEAD"]) {
        Some(commit) => {
            assert_eq!(p["git_commit"], commit.as_str(), "{p}");
            assert_eq!(p["git_commit_from"], "source checkout", "{p}");
        }
        // Built from an unpacked archive: no commit is claimed, least of all the project's.
        None => assert!(p["git_commit"].is_null(), "{p}"),
    }
    assert_ne!(p["git_commit"], project_commit.as_str());
    // A copy beside a build file (a GPU bundle): the file's commit.
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let copy = bundle.join("data-prep");
    std::fs::copy(BIN, &copy).unwrap();
    std::fs::write(
        bundle.join("medqa-build.json"),
        r#"{"git_commit": "feedc0de", "git_dirty": true}"#,
    )
    .unwrap();
    let p = provenance(&copy);
    assert_eq!(
        (&p["git_commit"], &p["git_dirty"], &p["git_commit_from"]),
        (&"feedc0de".into(), &true.into(), &"medqa-build.json".into()),
        "{p}"
    );
}

/// Writes `body` (the `data` list of a SQuAD file, with `version` if given) to `dir/name`.
fn squad_file(dir: &Path, name: &str, version: Option<&str>, data: &str) -> String {
    let path = dir.join(name);
    let version = version.map_or(String::new(), |v| format!("\"version\": \"{v}\", "));
    std::fs::write(&path, format!("{{{version}\"data\": {data}}}")).unwrap();
    path.display().to_string()
}

fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_v1_question_without_answers_is_an_error_naming_it_never_a_no_answer_question() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("out.json");
    let para = |qas: &str| {
        format!(r#"[{{"paragraphs": [{{"context": "NIHSS 12 la internare.", "qas": [{qas}]}}]}}]"#)
    };
    let ok_q =
        r#"{"id": "fine", "question": "NIHSS?", "answers": [{"text": "12", "answer_start": 6}]}"#;
    let missing = squad_file(
        d,
        "missing.json",
        Some("1.1"),
        &para(&format!(
            r#"{ok_q}, {{"id": "q-missing", "question": "Scor?"}}"#
        )),
    );
    let err = fails(&["qa", "--input", &missing, "--out", out.to_str().unwrap()]);
    assert!(
        err.contains("q-missing") && err.contains("missing.json") && err.contains("no answers"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written for a broken input");
    let empty = squad_file(
        d,
        "empty.json",
        None,
        &para(r#"{"id": "q-empty", "question": "Scor?", "answers": []}"#),
    );
    let err = fails(&["qa", "--input", &empty, "--out", out.to_str().unwrap()]);
    assert!(err.contains("q-empty"), "{err}");
    let typed = squad_file(
        d,
        "typed.json",
        Some("1.1"),
        &para(r#"{"id": "q-typed", "question": "Scor?", "answers": "12"}"#),
    );
    let err = fails(&["qa", "--input", &typed, "--out", out.to_str().unwrap()]);
    assert!(
        err.contains("q-typed") && err.contains("must be a list"),
        "{err}"
    );
    let no_start = squad_file(
        d,
        "nostart.json",
        Some("1.1"),
        &para(r#"{"id": "q-start", "question": "Scor?", "answers": [{"text": "12"}]}"#),
    );
    let err = fails(&["qa", "--input", &no_start, "--out", out.to_str().unwrap()]);
    assert!(
        err.contains("q-start") && err.contains("answer_start"),
        "{err}"
    );

    // A v1.1 set stays v1.1; a v2.0 file (or is_impossible) may have questions without answers.
    let v1 = squad_file(d, "v1.json", Some("1.1"), &para(ok_q));
    ok(run(&["qa", "--input", &v1, "--out", out.to_str().unwrap()]));
    let merged = read(&out);
    assert_eq!(merged["version"], "1.1");
    assert_eq!(questions(&merged)[0]["is_impossible"], false);
    let v2 = squad_file(
        d,
        "v2.json",
        Some("v2.0"),
        &para(&format!(
            r#"{ok_q}, {{"id": "q-none", "question": "Scor?"}}"#
        )),
    );
    ok(run(&["qa", "--input", &v2, "--out", out.to_str().unwrap()]));
    let merged = read(&out);
    assert_eq!(merged["version"], "v2.0");
    assert_eq!(questions(&merged)[1]["is_impossible"], true);
}

#[test]
fn repeated_questions_merge_their_answers_and_renamed_ids_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ctx = "Tratament: alteplază 0,9 mg/kg, apoi aspirină 100 mg.";
    let first = squad_file(
        d,
        "first.json",
        Some("1.1"),
        &format!(
            r#"[{{"paragraphs": [{{"context": "{ctx}", "qas": [
        {{"id": "q1", "question": "Ce tratament?", "answers": [{{"text": "alteplază", "answer_start": 11}}]}},
        {{"id": "q2", "question": "ce tratament? ", "answers": [{{"text": "aspirină 100 mg", "answer_start": 37}},
                                                            {{"text": "alteplază", "answer_start": 11}}]}},
        {{"id": "q3", "question": "Doza?", "answers": [{{"text": "0,9 mg/kg", "answer_start": 21}}]}}]}}]}}]"#
        ),
    );
    // Another file under the same source name, reusing id q3 for a different question.
    let second = squad_file(
        d,
        "second.json",
        Some("1.1"),
        &format!(
            r#"[{{"paragraphs": [{{"context": "{ctx}", "qas": [
        {{"id": "q3", "question": "Antiagregant?", "answers": [{{"text": "aspirină", "answer_start": 37}}]}}]}}]}}]"#
        ),
    );
    let out = d.join("out.json");
    let printed = ok(run(&[
        "qa",
        "--input",
        &format!("{first}:name=notes"),
        "--input",
        &format!("{second}:name=notes"),
        "--out",
        out.to_str().unwrap(),
    ]));
    let qs = questions(&read(&out));
    let ids: Vec<&str> = qs.iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["notes:q1", "notes:q3", "notes:q3#2"]);
    let golds: Vec<&str> = qs[0]["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        golds,
        ["alteplază", "aspirină 100 mg"],
        "every distinct gold answer kept"
    );
    let stats = read(&d.join("out.json.stats.json"));
    assert_eq!(
        (
            stats["files"][0]["questions_duplicate"].as_u64(),
            stats["files"][0]["answers_merged"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(stats["merged_duplicates"][0]["question_id"], "q2");
    assert_eq!(stats["merged_duplicates"][0]["into"], "notes:q1");
    assert_eq!(stats["files"][1]["ids_renamed"], 1);
    assert_eq!(stats["renamed_ids"][0]["renamed"], "notes:q3#2");
    assert!(
        printed.contains("1 (1)"),
        "merge counted in the summary:\n{printed}"
    );
}

#[test]
fn output_locations_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = inputs(tmp.path());
    std::fs::write(tmp.path().join("blocker"), b"a file").unwrap();
    let inside_file = tmp.path().join("blocker/out.json");
    let err = fails(&["qa", "--input", &a, "--out", inside_file.to_str().unwrap()]);
    assert!(
        err.contains("blocker") && err.contains("is a file"),
        "{err}"
    );
    let out = tmp.path().join("fine.json");
    let err = fails(&[
        "qa",
        "--input",
        &a,
        "--out",
        out.to_str().unwrap(),
        "--rejects",
        inside_file.to_str().unwrap(),
    ]);
    assert!(err.contains("is a file"), "{err}");
    assert!(!out.exists(), "checked before the merged set was written");
    // Another merge writing the same set (this test process holds it) is refused, naming its pid.
    let held = fsutil::lock::lock_output_file(&out, "QA-set merge").unwrap();
    let err = fails(&["qa", "--input", &a, "--out", out.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "output {} is in use by another QA-set merge (pid {})",
            out.display(),
            std::process::id()
        )),
        "{err}"
    );
    assert!(!out.exists() && !tmp.path().join("fine.rejects.jsonl").exists());
    drop(held);
    ok(Command::new(BIN)
        .args(["qa", "--input", &a, "--out", out.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(out.is_file());
}

/// `--layout flat`: the merged set as `datasets`' records — JSON Lines for a .jsonl path, run_qa.py's
/// `{"data": [...]}` otherwise — which medqa reads back as the nested set and `datasets` reads the way
/// `run_qa.py` does, every question a row.
#[test]
fn flat_layout_is_the_squad_set_as_datasets_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = inputs(tmp.path());
    let merge = |out: &Path, layout: &str| merge_two(&a, &b, out, &["--layout", layout]);
    let nested = tmp.path().join("merged.json");
    merge(&nested, "squad");
    let (lines, run_qa) = (
        tmp.path().join("merged.jsonl"),
        tmp.path().join("run_qa.json"),
    );
    merge(&lines, "flat");
    merge(&run_qa, "flat");
    let want = text::qa::squad::load(&nested, None).unwrap();
    assert_eq!(want.len(), 6);
    assert!(
        want.iter().any(|q| q.answers.is_empty()),
        "a no-answer question"
    );
    for flat in [&lines, &run_qa] {
        assert_eq!(
            text::qa::squad::load(flat, None).unwrap(),
            want,
            "{}",
            flat.display()
        );
    }
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&lines)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["id"], "notes:ok");
    assert_eq!(
        first["answers"],
        serde_json::json!({"text": ["165/95 mmHg"], "answer_start": [3]})
    );
    assert_eq!(
        (&first["lang"], &first["source"]),
        (&"ro".into(), &"notes".into())
    );
    assert_eq!(read(&run_qa)["version"], "v2.0");

    // datasets, as run_qa.py calls it (field="data" for its .json) and as Dataset.to_json's files load.
    let script = r#"
import sys
from datasets import load_dataset
run_qa, lines = sys.argv[1:3]
for d in (load_dataset("json", data_files={"train": run_qa}, field="data")["train"],
          load_dataset("json", data_files={"train": lines})["train"]):
    assert d.num_rows == 6, d.num_rows
    assert {"id", "title", "context", "question", "answers"} <= set(d.column_names), d.column_names
    row = d[0]
    assert row["context"][row["answers"]["answer_start"][0]:].startswith(row["answers"]["text"][0]), row
    assert sum(not r["text"] for r in d["answers"]) == 1
print("ok")
"#;
    let printed = test_support::run_datasets_script(script, &[&run_qa, &lines], tmp.path());
    assert_eq!(printed.trim(), "ok");
}

/// `datasets`' Parquet (the Hub's layout for a data set, `Dataset.to_parquet`): the same set as its JSON
/// Lines, byte for byte in the merged output; a Parquet file without QA columns is an error naming them.
#[test]
fn datasets_parquet_merges_as_its_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = inputs(tmp.path());
    let lines = tmp.path().join("flat/set.jsonl");
    merge_two(&a, &b, &lines, &["--layout", "flat"]);
    let parquet = tmp.path().join("set.parquet");
    let wrong = tmp.path().join("wrong.parquet");
    let script = r#"
import sys
from datasets import Dataset, load_dataset
lines, parquet, wrong = sys.argv[1:4]
d = load_dataset("json", data_files={"train": lines})["train"]
d.to_parquet(parquet)
Dataset.from_list([{"text": "no questions here"}]).to_parquet(wrong)
print(d.num_rows)
"#;
    let printed =
        test_support::run_datasets_script(script, &[&lines, &parquet, &wrong], tmp.path());
    assert_eq!(printed.trim(), "6");
    let merge = |input: &Path, out: &Path| {
        run(&[
            "qa",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (from_lines, from_parquet) = (tmp.path().join("l.json"), tmp.path().join("p.json"));
    ok(merge(&lines, &from_lines));
    ok(merge(&parquet, &from_parquet));
    assert_eq!(questions(&read(&from_parquet)).len(), 6);
    assert_eq!(
        std::fs::read_to_string(&from_parquet).unwrap(),
        std::fs::read_to_string(&from_lines).unwrap()
    );
    let failed = merge(&wrong, &tmp.path().join("w.json"));
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("wrong.parquet")
            && err.contains("needs datasets' SQuAD columns")
            && err.contains("\"text\""),
        "{err}"
    );
}

/// A Label Studio export of stroke notes, labelled with the shipped catalogue's concept ids, becomes a
/// SQuAD v2.0 set that `data-prep qa` takes without a reject, with its record and rejects beside it.
#[test]
fn a_label_studio_export_becomes_a_qa_set_that_data_prep_qa_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let note = "Pacient de 67 ani, internat pentru AVC ischemic. Glicemia 7,1 mmol/l.";
    let span = |text: &str, label: &str| {
        let start = note.find(text).unwrap();
        let start = note[..start].chars().count();
        serde_json::json!({"type": "labels", "from_name": "label", "to_name": "text",
            "value": {"start": start, "end": start + text.chars().count(), "text": text, "labels": [label]}})
    };
    let export = serde_json::json!([
        {"id": 1, "data": {"text": note, "lang": "ro"},
         "annotations": [{"was_cancelled": false,
                          "result": [span("67 ani", "age"), span("Glicemia", "no_such_concept")]}]},
        {"id": 2, "data": {"text": note}, "annotations": []},
    ]);
    let export_file = d.join("export.json");
    std::fs::write(&export_file, export.to_string()).unwrap();
    let out = d.join("ls.json");
    let concepts = root().join("configs/concepts-stroke.toml");
    let o = run(&[
        "labelstudio",
        "--export",
        export_file.to_str().unwrap(),
        "--concepts",
        concepts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let set = read(&out);
    assert_eq!(set["version"], "v2.0");
    let qs = questions(&set);
    let n_concepts = toml::from_str::<toml::Value>(&std::fs::read_to_string(&concepts).unwrap())
        .unwrap()["concepts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        qs.len(),
        n_concepts,
        "one question per concept of the one annotated note"
    );
    let age = qs.iter().find(|q| q["id"] == "1-age").unwrap();
    assert_eq!(age["answers"][0]["text"], "67 ani");
    assert_eq!(age["answers"][0]["answer_start"], 11);
    let unanswered = qs.iter().filter(|q| q["is_impossible"] == true).count();
    assert_eq!(unanswered, n_concepts - 1);
    let rejects = std::fs::read_to_string(d.join("ls.rejects.jsonl")).unwrap();
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    assert!(
        rejects.contains("no_such_concept") && rejects.contains("no annotation"),
        "{rejects}"
    );
    let record = read(&d.join("ls.run.json"));
    assert_eq!(
        (record["tasks"].as_u64(), record["answered"].as_u64()),
        (Some(1), Some(1))
    );
    let hashed: Vec<String> = test_support::recorded_hashes(&record["provenance"]["inputs"])
        .into_iter()
        .map(|(_, sha)| sha)
        .collect();
    assert_eq!(
        hashed,
        test_support::python_sha256(&[export_file.clone(), concepts.clone()])
    );
    // data-prep qa validates every answer against its context: none is rejected.
    let merged = d.join("merged.json");
    let o = run(&[
        "qa",
        "--input",
        &format!("{}:name=ls", out.display()),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merge_rejects = std::fs::read_to_string(d.join("merged.json.rejects.jsonl")).unwrap();
    assert!(merge_rejects.trim().is_empty(), "{merge_rejects}");
    assert_eq!(questions(&read(&merged)).len(), n_concepts);
}

/// An export of a project whose `<Text valueType="url">` tasks hold links: one task, the upload
/// `/data/upload/1/note.txt`, whose span (without its text, as the editor saves it there) marks the
/// age at characters 11..17 of the note.
fn write_linked_export(d: &Path) -> std::path::PathBuf {
    let export = serde_json::json!([
        {"id": 1, "data": {"text": "/data/upload/1/note.txt", "lang": "ro"},
         "annotations": [{"result": [{"type": "labels", "from_name": "label", "to_name": "text",
             "value": {"start": 11, "end": 17, "labels": ["age"]}}]}]},
    ]);
    let export_file = d.join("export.json");
    std::fs::write(&export_file, export.to_string()).unwrap();
    export_file
}

#[test]
fn a_label_studio_export_of_notes_behind_links_is_read_with_its_fetched_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let note = "Pacient de 67 ani, internat pentru AVC ischemic. Glicemia 7,1 mmol/l.";
    let ls = test_support::FakeLabelStudio::start(note, "");
    let export_file = write_linked_export(d);
    let concepts = root().join("configs/concepts-stroke.toml");
    let convert = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "labelstudio",
            "--export",
            export_file.to_str().unwrap(),
            "--concepts",
            concepts.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        Command::new(BIN)
            .args(&args)
            .env("LABEL_STUDIO_URL", &ls.base)
            .env("LABEL_STUDIO_API_KEY", "secret")
            .output()
            .unwrap()
    };
    let out = d.join("ls.json");
    let o = convert(&out, &["--fetch-notes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let set = read(&out);
    assert_eq!(set["data"][0]["paragraphs"][0]["context"], note);
    let age = questions(&set)
        .into_iter()
        .find(|q| q["id"] == "1-age")
        .unwrap();
    assert_eq!(
        age["answers"],
        serde_json::json!([{"text": "67 ani", "answer_start": 11}])
    );
    assert_eq!(
        ls.seen().last().unwrap(),
        &(
            "/data/upload/1/note.txt".to_owned(),
            Some("Token secret".to_owned())
        )
    );
    // The record holds what the export's hash does not: the notes fetched, hashed as Python hashes them.
    let record = read(&d.join("ls.run.json"));
    assert_eq!(record["notes_fetched"], 1);
    assert_eq!(record["label_studio_url"], ls.base.as_str());
    let script = format!(
        "import hashlib; print(hashlib.sha256(b'1\\0' + {note:?}.encode() + b'\\0').hexdigest())"
    );
    let sha = test_support::ok(
        Command::new(test_support::python())
            .args(["-c", &script])
            .output()
            .unwrap(),
    );
    assert_eq!(record["notes_sha256"], sha.trim());
    // Without --fetch-notes the link is not taken for the note (its characters were the context
    // before): nothing can be made, and the reason says what to give.
    let o = convert(&d.join("plain.json"), &[]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("valueType=\"url\"") && stderr.contains("--fetch-notes"),
        "{stderr}"
    );
}

#[test]
fn notes_behind_a_label_studio_with_its_own_certificate_authority_are_fetched_when_it_is_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let note = "Pacient de 67 ani, internat pentru AVC ischemic.";
    let ls = test_support::FakeLabelStudio::start_tls(note, "");
    let export_file = write_linked_export(d);
    let concepts = root().join("configs/concepts-stroke.toml");
    let convert = |out: &str, trust: Option<(&str, &Path)>| {
        let mut command = Command::new(BIN);
        command
            .args(["labelstudio", "--fetch-notes", "--export"])
            .arg(&export_file)
            .arg("--concepts")
            .arg(&concepts)
            .arg("--out")
            .arg(d.join(out))
            .env("LABEL_STUDIO_URL", &ls.base)
            .env("LABEL_STUDIO_API_KEY", "secret");
        for var in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"] {
            command.env_remove(var);
        }
        if let Some((var, file)) = trust {
            command.env(var, file);
        }
        command.output().unwrap()
    };
    // Untrusted: the task is a reject whose reason says how to trust the authority.
    let o = convert("untrusted.json", None);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("certificate") && stderr.contains("REQUESTS_CA_BUNDLE"),
        "{stderr}"
    );
    let ca = d.join("hospital-ca.pem");
    std::fs::write(&ca, ls.ca_pem.as_ref().unwrap()).unwrap();
    for var in ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"] {
        let out = format!("trusted-{var}.json");
        let o = convert(&out, Some((var, &ca)));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            read(&d.join(&out))["data"][0]["paragraphs"][0]["context"],
            note
        );
        let record = read(&d.join(out.replace(".json", ".run.json")));
        assert_eq!(
            record["trusted_certificates"],
            format!("{var}={}", ca.display()).as_str()
        );
    }
    // A file that holds no certificate stops the run before any work, naming the variable and file.
    let empty = d.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let o = convert("empty.json", Some(("REQUESTS_CA_BUNDLE", &empty)));
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("REQUESTS_CA_BUNDLE=") && stderr.contains("no certificate"),
        "{stderr}"
    );
    assert!(!d.join("empty.json").exists());
}
