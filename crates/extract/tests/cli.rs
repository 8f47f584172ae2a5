//! `extract` end to end with the tiny fixture model: every document × concept in one table, offsets
//! that point into the original text, the wide and linked-data forms, bad documents reported and
//! skipped, and the same bytes on a re-run.

use std::path::{Path, PathBuf};
use std::process::Command;
use test_support::{ok_all as ok, root};

const BIN: &str = env!("CARGO_BIN_EXE_extract");

/// The fixture checkpoint with a (random) QA head, the fixture tokenizer and window settings.
fn qa_model(dir: &Path) -> PathBuf {
    let settings = serde_json::json!({"max_seq_length": 48, "doc_stride": 16, "max_query_length": 12,
        "postprocess": {"n_best_size": 10, "max_answer_length": 8, "version_2_with_negative": false,
                        "null_score_diff_threshold": 0.0}});
    test_support::fixture_qa_model(dir, "tiny-h40-l3", &settings.to_string())
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Model, the stroke catalogue, documents and output, on the CPU; callers add the rest.
fn args(model: &Path, docs: &Path, out: &Path) -> Vec<String> {
    let concepts = root().join("configs/concepts-stroke.toml");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    [
        ("--model", path(model)),
        ("--concepts", path(&concepts)),
        ("--docs", path(docs)),
        ("--out", path(out)),
        ("--device", "cpu".to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

fn column(df: &tables::polars::prelude::DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .as_materialized_series()
        .iter()
        .map(|v| {
            v.get_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        })
        .collect()
}

#[test]
fn documents_times_concepts_with_offsets_wide_and_linked_data() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = qa_model(d);
    let docs = d.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let ro = "Pacientul, 72 de ani, a fost internat cu scor NIHSS 12 și tensiune arterială 178/96 mmHg. \
              Tratament la externare: apixaban 5 mg de două ori pe zi.";
    let en = "NIHSS score on admission was 7. Blood pressure 150/90 mmHg. Discharged on dabigatran 150 mg twice daily.";
    std::fs::write(docs.join("a.ro.txt"), ro).unwrap();
    std::fs::write(docs.join("b.en.txt"), en).unwrap();
    std::fs::write(docs.join("c.en.txt"), "   ").unwrap();
    std::fs::write(docs.join("d.en.txt"), b"\xff\xfe broken").unwrap();
    let concepts = root().join("configs/concepts-stroke.toml");
    let n_concepts = extract::concepts::Catalogue::load(&concepts)
        .unwrap()
        .concepts
        .len();
    assert!(n_concepts >= 30);

    let out = d.join("out.parquet");
    let (wide, ld) = (d.join("wide.csv"), d.join("kg.nt"));
    let mut args = args(&model, &docs, &out);
    for (k, v) in [
        ("--wide", wide.to_str().unwrap()),
        ("--linked-data", ld.to_str().unwrap()),
        ("--batch-size", "16"),
        ("--docs-per-chunk", "1"),
    ] {
        args.extend([k.to_owned(), v.to_owned()]);
    }
    let log = ok(run(&args));
    assert!(
        log.contains("2 documents") && log.contains("2 document(s) skipped"),
        "{log}"
    );
    let skipped = std::fs::read_to_string(d.join("out.skipped.jsonl")).unwrap();
    assert!(
        skipped.contains("empty document") && skipped.contains("not UTF-8"),
        "{skipped}"
    );
    // out.run.json: the counts, settings and provenance; the catalogue's and model's hashes as
    // Python's hashlib gives them, the documents' folder hashed over its four files.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out.run.json")).unwrap()).unwrap();
    assert_eq!(record["documents"], 2, "{record}");
    assert_eq!(record["skipped_documents"], 2, "{record}");
    assert_eq!(record["questions"], 2 * n_concepts, "{record}");
    assert_eq!(record["settings"]["max_seq_length"], 48, "{record}");
    assert_eq!(record["batch_size"], 16, "{record}");
    let inputs = record["provenance"]["inputs"].as_array().unwrap();
    let paths: Vec<&str> = inputs.iter().map(|i| i["path"].as_str().unwrap()).collect();
    let files: Vec<PathBuf> = [
        concepts.clone(),
        model.join("config.json"),
        model.join("model.safetensors"),
        model.join("tokenizer.json"),
        model.join("medqa.json"),
    ]
    .into();
    let mut expected_paths = vec![docs.display().to_string()];
    expected_paths.extend(files.iter().map(|f| f.display().to_string()));
    assert_eq!(paths, expected_paths);
    let hashed: Vec<&str> = inputs[1..]
        .iter()
        .map(|i| i["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(hashed, test_support::python_sha256(&files));
    let doc_bytes = (ro.len() + en.len() + 3 + b"\xff\xfe broken".len()) as u64;
    assert_eq!(inputs[0]["bytes"].as_u64(), Some(doc_bytes), "{record}");

    let table = tables::read(&out).unwrap();
    assert_eq!(table.height(), 2 * n_concepts);
    let (ids, langs, qlangs) = (
        column(&table, "doc_id"),
        column(&table, "doc_lang"),
        column(&table, "question_lang"),
    );
    let (cands, starts, ends) = (
        column(&table, "candidate"),
        column(&table, "start"),
        column(&table, "end"),
    );
    for i in 0..table.height() {
        let text = if ids[i] == "a" { ro } else { en };
        assert_eq!(langs[i], if ids[i] == "a" { "ro" } else { "en" });
        assert_eq!(qlangs[i], langs[i], "questions in the document's language");
        let (s, e): (usize, usize) = (starts[i].parse().unwrap(), ends[i].parse().unwrap());
        let span: String = text.chars().skip(s).take(e - s).collect();
        assert_eq!(
            span, cands[i],
            "row {i}: offsets point at the answer in the original text"
        );
    }
    let wide_table = tables::read(&wide).unwrap();
    assert_eq!(wide_table.height(), 2);
    assert_eq!(wide_table.width(), 2 + n_concepts);
    let nt = std::fs::read_to_string(&ld).unwrap();
    assert!(
        nt.contains("<urn:medqa:document/a>") && nt.contains("<urn:medqa:vocab#value>"),
        "{nt}"
    );

    // Same inputs, same bytes; English questions on the Romanian note when asked for.
    let first = std::fs::read(&out).unwrap();
    ok(run(&args));
    assert_eq!(std::fs::read(&out).unwrap(), first);
    let en_out = d.join("en.jsonl");
    let mut en_args = args.clone();
    en_args[7] = en_out.to_str().unwrap().to_owned();
    en_args.extend(["--question-lang".to_owned(), "en".to_owned()]);
    ok(run(&en_args));
    let rows = std::fs::read_to_string(&en_out).unwrap();
    assert!(
        rows.lines().all(|l| l.contains("\"question_lang\":\"en\"")),
        "{rows}"
    );

    // A threshold of 1 leaves nothing answered: every answer cell is empty.
    let strict = d.join("strict.csv");
    let mut strict_args = crate::args(&model, &docs, &strict);
    strict_args.extend(["--min-probability".to_owned(), "1".to_owned()]);
    assert!(ok(run(&strict_args)).contains(" 0 answered"));

    // The bad documents fixed: the earlier run's skipped list goes, not left to read as this run's.
    assert_eq!(
        record["skipped_file"],
        d.join("out.skipped.jsonl").display().to_string()
    );
    std::fs::remove_file(docs.join("c.en.txt")).unwrap();
    std::fs::remove_file(docs.join("d.en.txt")).unwrap();
    let log = ok(run(&args));
    assert!(!log.contains("skipped"), "{log}");
    assert!(!d.join("out.skipped.jsonl").exists());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out.run.json")).unwrap()).unwrap();
    assert_eq!(record["skipped_documents"], 0, "{record}");
    assert!(record["skipped_file"].is_null(), "{record}");
}

#[test]
fn jsonl_and_csv_documents_and_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = qa_model(d);
    let csv = d.join("notes.csv");
    std::fs::write(&csv, "note_id,body\nn1,NIHSS 5 on admission.\nn2,\n").unwrap();
    let out = d.join("o.csv");
    let mut csv_args = args(&model, &csv, &out);
    for (k, v) in [
        ("--id-field", "note_id"),
        ("--text-field", "body"),
        ("--doc-lang", "en"),
    ] {
        csv_args.extend([k.to_owned(), v.to_owned()]);
    }
    let log = ok(run(&csv_args));
    assert!(
        log.contains("1 documents") && log.contains("1 document(s) skipped"),
        "{log}"
    );
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("n1,en,"));

    let bad = run(&args(&model, &csv, &d.join("o.xlsx")));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown table format"));
}

#[test]
fn every_output_location_is_checked_before_the_model_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = qa_model(tmp.path());
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("n1.en.txt"),
        "Male, 67. NIHSS 12 on admission; alteplase given.",
    )
    .unwrap();
    std::fs::write(tmp.path().join("blocker"), "a file").unwrap();
    let good = tmp.path().join("out.csv");
    let bad = tmp.path().join("blocker/x.csv");
    // A directory where the run record would go blocks it too.
    let record_blocked = tmp.path().join("blocked.csv");
    std::fs::create_dir_all(record_blocked.with_extension("run.json")).unwrap();
    for (out, extra) in [
        (&bad, None),
        (&good, Some(("--wide", "csv"))),
        (&good, Some(("--linked-data", "nt"))),
        (&record_blocked, None),
    ] {
        let mut a = args(&model, &docs, out);
        if let Some((flag, ext)) = extra {
            a.extend([
                flag.to_owned(),
                bad.with_extension(ext).display().to_string(),
            ]);
        }
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && (err.contains("is a file") || err.contains("is a directory")),
            "{err}"
        );
        assert!(
            !good.exists() && !record_blocked.exists(),
            "nothing extracted before the outputs were checked"
        );
    }
    // Another extraction writing the same table (here this test process holds it): refused before
    // the model runs, naming the holder.
    let held = model::fsutil::lock::lock_output_file(&good, "extraction").unwrap();
    let o = run(&args(&model, &docs, &good));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains(&format!(
                "output {} is in use by another extraction (pid {})",
                good.display(),
                std::process::id()
            )),
        "{err}"
    );
    assert!(!good.exists() && !good.with_extension("run.json").exists());
    drop(held);
    ok(run(&args(&model, &docs, &good)));
    assert!(good.is_file());
}

/// `--link-index`: every accepted answer linked to the sample terminology's concepts; the long table
/// carries the best concept, the linked data its IRI; a missing index fails before the model runs.
#[test]
fn answers_are_linked_to_a_terminology() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = qa_model(d);
    let docs = d.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.ro.txt"),
        "Tratament la externare: apixaban 5 mg de două ori pe zi. Complicații: pneumonie de aspirație.",
    )
    .unwrap();
    let terms: link::TermSource = format!(
        "{}:name=stroke-sample",
        root().join("data/sample/terms/stroke-values.csv").display()
    )
    .parse()
    .unwrap();
    let index_dir = d.join("index");
    let (index, rejects) = link::build_index(&[terms], 3).unwrap();
    index.save(&index_dir, &rejects).unwrap();

    let (out, ld) = (d.join("out.csv"), d.join("kg.nt"));
    let mut a = args(&model, &docs, &out);
    let index_arg = index_dir.to_str().unwrap().to_owned();
    for (k, v) in [
        ("--linked-data", ld.to_str().unwrap()),
        ("--link-index", &index_arg),
        ("--min-probability", "0"),
        ("--link-min-score", "0.3"),
    ] {
        a.extend([k.to_owned(), v.to_owned()]);
    }
    let log = ok(run(&a));
    assert!(log.contains("linked "), "{log}");
    let table = tables::read(&out).unwrap();
    let (ids, iris, methods, all) = (
        column(&table, "concept_id"),
        column(&table, "concept_iri"),
        column(&table, "link_method"),
        column(&table, "link_candidates"),
    );
    let linked: Vec<usize> = (0..table.height())
        .filter(|&i| !ids[i].is_empty() && ids[i] != "null")
        .collect();
    for &i in &linked {
        assert!(
            index
                .concepts
                .iter()
                .any(|c| c.id == ids[i] && c.iri == iris[i]),
            "row {i}"
        );
        assert!(["exact", "unordered", "tfidf"].contains(&methods[i].as_str()));
        let cands: Vec<link::Candidate> = serde_json::from_str(&all[i]).unwrap();
        assert!(!cands.is_empty() && cands.len() <= 3 && cands[0].concept_id == ids[i]);
    }
    let nt = std::fs::read_to_string(&ld).unwrap();
    assert_eq!(
        nt.matches("<urn:medqa:vocab#linkedConcept> <urn:medqa:term:stroke-sample:")
            .count(),
        linked.len(),
        "{nt}"
    );

    let mut missing = args(&model, &docs, &d.join("out2.csv"));
    missing.extend([
        "--link-index".to_owned(),
        d.join("nope").display().to_string(),
    ]);
    let out = run(&missing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("link index --out"),
        "{err}"
    );
}

#[test]
fn a_model_without_medqa_json_extracts_with_the_settings_the_command_line_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = qa_model(d);
    let foreign = test_support::without_medqa_json(&model, &d.join("foreign"));
    let docs = d.join("notes.csv");
    std::fs::write(
        &docs,
        "id,text\nn1,\"NIHSS 5 on admission, blood pressure 150/90 mmHg, discharged on aspirin 100 mg daily after a thrombectomy.\"\n",
    )
    .unwrap();
    let own = d.join("own.jsonl");
    let log = ok(run(&args(&model, &docs, &own)));
    assert!(!log.contains("has no medqa.json"), "{log}");

    // run_qa.py's defaults: 384-token windows, more than the fixture's positions.
    let refused = run(&args(&foreign, &docs, &d.join("refused.jsonl")));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("max_seq_length 384 exceeds"), "{err}");

    // medqa.json's values from the command line: the same table, byte for byte.
    let given = d.join("given.jsonl");
    let mut with_flags = args(&foreign, &docs, &given);
    for (k, v) in [
        ("--max-seq-length", "48"),
        ("--doc-stride", "16"),
        ("--max-query-length", "12"),
        ("--n-best-size", "10"),
        ("--max-answer-length", "8"),
    ] {
        with_flags.extend([k.to_owned(), v.to_owned()]);
    }
    let log = ok(run(&with_flags));
    assert!(log.contains("has no medqa.json"), "{log}");
    assert_eq!(std::fs::read(&own).unwrap(), std::fs::read(&given).unwrap());
}

/// A run killed part-way goes on with `--resume` from its journal and writes the table an
/// uninterrupted run writes, byte for byte; a resume with another setting is refused, naming it.
#[test]
fn a_killed_extraction_resumes_from_its_journal_to_the_same_table() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = qa_model(d);
    // Enough documents that the run is still going when its third chunk is journalled.
    let docs = d.join("notes.jsonl");
    let lines: String = (0..40)
        .map(|i| {
            serde_json::json!({
                "id": format!("n{i}"),
                "lang": if i % 2 == 0 { "en" } else { "ro" },
                "text": format!("Patient {i}, NIHSS {} on admission, blood pressure 1{i}/90 mmHg; \
                                 discharged on apixaban {} mg.", i % 20, 5 + i % 3),
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&docs, lines).unwrap();
    let with = |out: &Path, extra: &[&str]| {
        let mut a = args(&model, &docs, out);
        a.extend(["--docs-per-chunk", "1"].map(str::to_owned));
        a.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--batch-size") {
            a.extend(["--batch-size", "16"].map(str::to_owned));
        }
        a
    };
    let whole = d.join("whole.parquet");
    ok(run(&with(&whole, &[])));
    assert!(
        !extract::journal::dir_for(&whole).exists(),
        "removed once written"
    );

    let out = d.join("out.parquet");
    let journal = extract::journal::dir_for(&out);
    let mut child = Command::new(BIN)
        .args(with(&out, &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !journal.join("chunk-000002.bin").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    assert!(
        child.wait().unwrap().code().is_none(),
        "killed, not finished"
    );
    assert!(!out.exists());

    // Another batch size could change the numbers: refused, naming it, and the journal kept.
    let o = run(&with(&out, &["--resume", "--batch-size", "8"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("it was started with other batch_size;"),
        "{err}"
    );
    assert!(journal.join("chunk-000000.bin").is_file());

    let o = run(&with(&out, &["--resume"]));
    let log = ok(o);
    assert!(log.contains("resuming after "), "{log}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&whole).unwrap());
    assert!(!journal.exists());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("run.json")).unwrap())
            .unwrap();
    let resumed = record["resumed"]["documents"].as_u64().unwrap();
    assert!((3..40).contains(&resumed), "{record}");
    // Without --resume a run starts over (and with nothing to resume, --resume does too).
    let again = ok(run(&with(&out, &["--resume"])));
    assert!(again.contains("no journal"), "{again}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&whole).unwrap());
}
