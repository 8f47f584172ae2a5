//! data-prep end to end on the project's sample corpus: a tokenizer that transformers reads the same
//! way, shards that are byte-identical on a re-run, and bad input counted with file and line.

use std::path::{Path, PathBuf};
use std::process::Command;
use test_support::{ok, root};

const BIN: &str = env!("CARGO_BIN_EXE_data-prep");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

/// A 600-token tokenizer trained on the sample corpus, in `dir`.
fn sample_tokenizer(dir: &Path) -> PathBuf {
    let tok = dir.join("tokenizer.json");
    ok(run(&[
        "tokenizer",
        "--config",
        "configs/corpus-demo.toml",
        "--vocab-size",
        "600",
        "--out",
        tok.to_str().unwrap(),
    ]));
    tok
}

/// Runs `corpus` and checks that the summary has each "language/source/split" row.
fn corpus_with_rows(cfg: &Path, out: &Path, rows: &[&str]) -> String {
    let summary = ok(run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    for row in rows {
        assert!(summary.contains(row), "{row} missing in\n{summary}");
    }
    summary
}

fn bytes_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn tokenizer_and_corpus_from_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = tmp.path().join("tokenizer.json");
    let tok_s = tok.to_str().unwrap();
    let out = ok(run(&[
        "tokenizer",
        "--config",
        "configs/corpus-demo.toml",
        "--vocab-size",
        "800",
        "--out",
        tok_s,
    ]));
    assert!(out.contains("800 tokens"), "{out}");
    let again = tmp.path().join("again.json");
    ok(run(&[
        "tokenizer",
        "--config",
        "configs/corpus-demo.toml",
        "--vocab-size",
        "800",
        "--out",
        again.to_str().unwrap(),
    ]));
    assert!(
        std::fs::read(&tok).unwrap() == std::fs::read(&again).unwrap(),
        "tokenizer training is not reproducible"
    );

    // transformers' fast tokenizer reads it with the same ids and offsets; specials in XLM-R's places.
    let texts = serde_json::json!([
        [
            "Pacientul a fost internat cu <mask> ischemic acut.",
            "Ο ασθενής εισήχθη με οξύ επεισόδιο."
        ],
        [
            "Скор по NIHSS при приемането 12",
            "Tensión arterial 172/94 mmHg; glucemia 146 mg/dl."
        ]
    ]);
    let tokenizer = text::XlmrTokenizer::from_file(&tok).unwrap();
    assert_eq!(
        (
            tokenizer.bos_id,
            tokenizer.pad_id,
            tokenizer.eos_id,
            tokenizer.unk_id,
            tokenizer.mask_id
        ),
        (0, 1, 2, 3, 799)
    );
    let windows = tokenizer.pair_windows(512, 128).unwrap();
    let ours: Vec<serde_json::Value> = texts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let w = &windows
                .encode(p[0].as_str().unwrap(), p[1].as_str().unwrap())
                .unwrap()[0];
            serde_json::json!({"ids": w.input_ids, "offsets": w.offsets})
        })
        .collect();
    let script = r#"
import json, sys
from transformers import PreTrainedTokenizerFast
t = PreTrainedTokenizerFast(tokenizer_file=sys.argv[1])
out = []
for q, c in json.loads(sys.argv[2]):
    e = t(q, c, return_offsets_mapping=True)
    out.append({"ids": e["input_ids"], "offsets": [list(o) for o in e["offset_mapping"]]})
print(json.dumps(out))
"#;
    let python = std::env::var("MEDQA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"));
    let py = Command::new(python)
        .args(["-c", script, tok_s, &texts.to_string()])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(serde_json::Value::Array(ours), theirs);

    // Shards: built twice, byte-identical; every language present in train.
    let set = format!("tokenizer=\"{tok_s}\"");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let summary = ok(run(&[
        "corpus",
        "--config",
        "configs/corpus-demo.toml",
        "--set",
        &set,
        "--out",
        a.to_str().unwrap(),
    ]));
    ok(run(&[
        "corpus",
        "--config",
        "configs/corpus-demo.toml",
        "--set",
        &set,
        "--out",
        b.to_str().unwrap(),
    ]));
    assert_eq!(bytes_of(&a), bytes_of(&b), "re-running changed the output");
    for lang in ["bg", "cs", "el", "en", "es", "pl", "ro"] {
        assert!(
            summary.contains(&format!("{lang}/sample-{lang}/train")),
            "{summary}"
        );
    }
    let corpus = text::shards::Corpus::open(&a, "train").unwrap();
    let mut ids = Vec::new();
    corpus.read(0, 0..corpus.document_len(0), &mut ids);
    let bg = std::fs::read_to_string(root().join("data/sample/corpus/bg.txt")).unwrap();
    let decoded = tokenizer.inner().decode(&ids, true).unwrap();
    assert!(
        bg.lines().any(|l| l == decoded),
        "the first train document decodes to {decoded:?}"
    );
    assert!(
        corpus.documents() > 80,
        "{} train documents",
        corpus.documents()
    );

    // Validation shards hold one language each, as many documents as the report counts for it;
    // training shards stay mixed.
    let manifest = text::shards::ShardManifest::load(&a).unwrap();
    // A tokenizer.json without a tokenizer_config.json beside it is read as written, and recorded so.
    assert_eq!(manifest.tokenizer_build.as_deref(), Some("as written"));
    // Its provenance: the tokenizer, then every source file (the 140 notes among them), each hashed as
    // Python's hashlib does; no time or command line, which would break the byte-identical rebuild.
    let provenance = &manifest.extra["provenance"];
    assert_eq!(provenance["tool"], "data-prep corpus", "{provenance}");
    assert!(
        provenance.get("command_line").is_none() && provenance.get("started_at_unix").is_none()
    );
    let inputs = provenance["inputs"].as_array().unwrap();
    let paths: Vec<PathBuf> = inputs
        .iter()
        .map(|i| root().join(i["path"].as_str().unwrap()))
        .collect();
    assert_eq!(paths[0], root().join(tok_s), "the tokenizer first");
    assert!(
        paths.contains(&root().join("data/sample/corpus/bg.txt")),
        "{paths:?}"
    );
    assert!(inputs.len() > 140, "{} inputs", inputs.len());
    let hashed: Vec<&str> = inputs
        .iter()
        .map(|i| i["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(hashed, test_support::python_sha256(&paths));
    let kept = &manifest.extra["report"]["kept"];
    let mut per_language: std::collections::BTreeMap<String, u64> = Default::default();
    for (key, counts) in kept.as_object().unwrap() {
        let parts: Vec<&str> = key.split('/').collect();
        if parts[2] == "validation" {
            *per_language.entry(parts[0].to_owned()).or_default() +=
                counts["documents"].as_u64().unwrap();
        }
    }
    assert!(per_language.len() >= 5, "{kept}");
    for (lang, documents) in &per_language {
        let corpus = text::shards::Corpus::open_language(&a, "validation", Some(lang)).unwrap();
        assert_eq!(corpus.documents() as u64, *documents, "{lang}");
    }
    let languages: Vec<Option<String>> = per_language.into_keys().map(Some).collect();
    assert_eq!(
        text::shards::Corpus::languages(&a, "validation").unwrap(),
        languages
    );
    for s in &manifest.shards {
        match s.split.as_str() {
            "train" => assert_eq!(s.language, None, "{s:?}"),
            _ => {
                let lang = s.language.as_deref().unwrap();
                assert!(s.name.starts_with(&format!("validation-{lang}-")), "{s:?}");
            }
        }
    }
}

#[test]
fn bad_input_is_counted_with_file_and_line_and_strict_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("notes.jsonl");
    std::fs::write(
        &jsonl,
        b"{\"text\": \"Pacient byl p\xc5\x99ijat pro akutn\xc3\xad ischemickou c\xc3\xa9vn\xc3\xad mozkovou p\xc5\x99\xc3\xadhodu.\"}\n{\"body\": \"no text field here at all\"}\nnot json\n\xff\xfe broken utf8 line\n{\"text\": \"Pacient byl p\xc5\x99ijat pro akutn\xc3\xad ischemickou c\xc3\xa9vn\xc3\xad mozkovou p\xc5\x99\xc3\xadhodu.\"}\n{\"text\": \"short\"}\n".as_slice(),
    )
    .unwrap();
    let tok = root().join("crates/model/tests/fixtures/tokenizer/tokenizer.json");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "tokenizer = \"{}\"\nvalidation_permille = 0\n[[sources]]\nname = \"notes\"\npath = \"{}\"\nformat = \"jsonl\"\nlanguage = \"cs\"\n",
            tok.display(),
            jsonl.display()
        ),
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    let summary = ok(run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert!(
        summary.contains("dropped (duplicate): 1") && summary.contains("dropped (too_short): 1"),
        "{summary}"
    );
    assert!(summary.contains("rejected inputs: 3"), "{summary}");
    let rejects = std::fs::read_to_string(out_dir.join("rejects.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at: Vec<(u64, &str)> = lines
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(at.len(), 3);
    assert!(at[0].0 == 2 && at[0].1.contains("no string field 'text'"));
    assert!(at[1].0 == 3 && at[1].1.contains("malformed JSON"));
    assert!(at[2].0 == 4 && at[2].1.contains("invalid UTF-8"));
    assert!(lines
        .iter()
        .all(|r| r["file"].as_str().unwrap().ends_with("notes.jsonl")));

    let strict = run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--strict",
    ]);
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success() && err.contains("notes.jsonl:2"),
        "{err}"
    );

    // The tokenizer reads the same documents: the same rejects, beside it, and a record of its inputs.
    let tok_out = tmp.path().join("tok.json");
    let tokenizer = |extra: &[&str]| {
        let mut args = vec![
            "tokenizer",
            "--config",
            cfg.to_str().unwrap(),
            "--vocab-size",
            "40",
            "--out",
            tok_out.to_str().unwrap(),
        ];
        args.extend(extra);
        run(&args)
    };
    let printed = ok(tokenizer(&[]));
    assert!(printed.contains("3 inputs rejected"), "{printed}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("tok.json.rejects.jsonl")).unwrap(),
        rejects
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("tok.json.run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            record["rejects"].as_u64(),
            record["rejects_by_source"]["notes"].as_u64(),
            record["documents"].as_u64(),
            record["vocab_size_requested"].as_u64(),
        ),
        // Documents as cleaned, before the corpus's length limits and deduplication.
        (Some(3), Some(3), Some(3), Some(40)),
        "{record}"
    );
    let inputs = record["provenance"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1, "{record}");
    assert_eq!(
        inputs[0]["sha256"].as_str().unwrap(),
        test_support::python_sha256(std::slice::from_ref(&jsonl))[0]
    );
    let first = std::fs::read(tmp.path().join("tok.json.run.json")).unwrap();
    ok(tokenizer(&[]));
    assert!(
        std::fs::read(tmp.path().join("tok.json.run.json")).unwrap() == first,
        "the record of a re-run is the same bytes"
    );
    let strict = tokenizer(&["--strict"]);
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success() && err.contains("notes.jsonl:2"),
        "{err}"
    );
}

#[test]
fn tmx_term_lists_and_squad_contexts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("tm.tmx"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header srclang="en"/><body>
<tu tuid="1"><tuv xml:lang="en"><seg>fever &amp; dry cough for three days</seg></tuv>
<tuv xml:lang="es-419"><seg>fiebre y tos seca durante tres días</seg></tuv></tu>
<tu tuid="2"><tuv><seg>a segment with no language at all</seg></tuv></tu>
</body></tmx>"#,
    )
    .unwrap();
    std::fs::write(
        d.join("terms.csv"),
        "id,sourceLang,targetLang,description,sourceString,targetString\n1,en,ro_RO,spread of a disease,transmission,transmitere\n2,en,ro_RO,\"too\",\"many\",fields,here\n",
    )
    .unwrap();
    std::fs::write(
        d.join("qa.json"),
        r#"{"data": [{"paragraphs": [{"context": "Tusea și febra sunt simptome frecvente.", "qas": []}]}]}"#,
    )
    .unwrap();
    let tok = root().join("crates/model/tests/fixtures/tokenizer/tokenizer.json");
    let cfg = d.join("c.toml");
    let source = |name: &str, file: &str, format: &str, lang: &str| {
        format!("[[sources]]\nname = \"{name}\"\npath = \"{}\"\nformat = \"{format}\"\nlanguage = \"{lang}\"\nmin_chars = 3\n", d.join(file).display())
    };
    std::fs::write(
        &cfg,
        format!(
            "tokenizer = \"{}\"\nvalidation_permille = 0\n{}{}{}",
            tok.display(),
            source("tm", "tm.tmx", "tmx", "*"),
            source("terms", "terms.csv", "terms", "xx"),
            source("ctx", "qa.json", "squad", "ro"),
        ),
    )
    .unwrap();
    let out = d.join("out");
    let summary = corpus_with_rows(
        &cfg,
        &out,
        &[
            "en/tm/train",
            "es/tm/train",
            "ro/terms/train",
            "en/terms/train",
            "ro/ctx/train",
        ],
    );
    assert!(summary.contains("rejected inputs: 2"), "{summary}");
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
    assert!(
        rejects.contains("segment without xml:lang") && rejects.contains("malformed CSV row"),
        "{rejects}"
    );
    // The entity is decoded; the description joins the source term.
    let corpus = text::shards::Corpus::open(&out, "train").unwrap();
    let tokenizer = text::XlmrTokenizer::from_file(&tok).unwrap();
    let texts: Vec<String> = (0..corpus.documents())
        .map(|i| {
            let mut ids = Vec::new();
            corpus.read(i, 0..corpus.document_len(i), &mut ids);
            tokenizer.inner().decode(&ids, true).unwrap()
        })
        .collect();
    // (The fixture tokenizer has no `&`, so it decodes to nothing; an undecoded entity would leave "amp".)
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("fever") && t.contains("dry cough") && !t.contains("amp")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("transmission: spread")),
        "{texts:?}"
    );
}

#[test]
fn csv_tsv_and_parquet_columns_with_per_row_languages_and_a_statistics_table() {
    use tables::polars::prelude::Column;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("notes.csv"),
        "id,note,lang\n1,\"Pacientul are febră, tuse și dispnee.\",ro\n2,,ro\n3,Patient has fever and cough.,en-GB\n",
    )
    .unwrap();
    std::fs::write(
        d.join("drugs.tsv"),
        "name\tdescription\napixaban\tAnticoagulant oral, inhibitor direct al factorului Xa.\n",
    )
    .unwrap();
    let mut df = tables::frame(vec![
        Column::new(
            "text".into(),
            vec!["Pacjent z gorączką i kaszlem.", "Pacjent z bólem głowy."],
        ),
        Column::new("n".into(), vec![1u32, 2]),
    ])
    .unwrap();
    let mut f = std::fs::File::create(d.join("pl.parquet")).unwrap();
    tables::write(&mut df, tables::TableFormat::Parquet, &mut f).unwrap();
    drop(f);
    let tok = root().join("crates/model/tests/fixtures/tokenizer/tokenizer.json");
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "tokenizer = \"{}\"\nvalidation_permille = 0\nmin_chars = 3\n\
             [[sources]]\nname = \"notes\"\npath = \"{}\"\nformat = \"csv\"\ncolumn = \"note\"\n\
             language_column = \"lang\"\nlanguage = \"ro\"\n\
             [[sources]]\nname = \"drugs\"\npath = \"{}\"\nformat = \"tsv\"\ncolumn = \"description\"\nlanguage = \"ro\"\n\
             [[sources]]\nname = \"pl\"\npath = \"{}\"\nformat = \"parquet\"\nlanguage = \"pl\"\n",
            tok.display(),
            d.join("notes.csv").display(),
            d.join("drugs.tsv").display(),
            d.join("pl.parquet").display(),
        ),
    )
    .unwrap();
    let out = d.join("out");
    corpus_with_rows(
        &cfg,
        &out,
        &[
            "ro/notes/train",
            "en/notes/train",
            "ro/drugs/train",
            "pl/pl/train",
        ],
    );
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
    assert!(
        rejects.contains("empty 'note' cell") && rejects.contains("\"line\":3"),
        "{rejects}"
    );

    let stats = tables::read(&out.join("statistics.parquet")).unwrap();
    let col = |name: &str| {
        stats
            .column(name)
            .unwrap()
            .as_materialized_series()
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
    };
    let (kind, lang, source, docs) = (
        col("kind"),
        col("language"),
        col("source"),
        col("documents"),
    );
    let pl = (0..stats.height())
        .find(|&i| kind[i].contains("kept") && source[i].contains("pl"))
        .unwrap();
    assert!(
        lang[pl].contains("pl") && docs[pl] == "2",
        "{kind:?} {lang:?} {docs:?}"
    );
    let rejected = (0..stats.height())
        .find(|&i| kind[i].contains("rejected"))
        .unwrap();
    assert!(
        source[rejected].contains("notes") && docs[rejected] == "1",
        "{kind:?} {source:?} {docs:?}"
    );

    // A column that is not there stops the run and names the columns that are.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("\"description\"", "\"desc\""),
    )
    .unwrap();
    let err = run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d.join("o2").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        !err.status.success()
            && stderr.contains("no column 'desc'")
            && stderr.contains("name, description"),
        "{stderr}"
    );
}

#[test]
fn source_weights_and_language_balancing_resample_the_training_split() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = sample_tokenizer(tmp.path());
    let source = |lang: &str, weight: f64| {
        format!(
            "[[sources]]\nname = \"s-{lang}\"\npath = \"data/sample/corpus/{lang}.txt\"\nformat = \"text\"\n\
             language = \"{lang}\"\nweight = {weight}\n"
        )
    };
    let config = |extra: &str, weights: [f64; 3]| {
        let file = tmp.path().join(format!("c{}.toml", weights[0]));
        let text = format!(
            "tokenizer = \"{}\"\nvalidation_permille = 0\n{extra}\n{}{}{}",
            tok.display(),
            source("bg", weights[0]),
            source("en", weights[1]),
            source("ro", weights[2])
        );
        std::fs::write(&file, text).unwrap();
        file
    };
    let build = |cfg: &Path, out: &Path| -> serde_json::Value {
        ok(run(&[
            "corpus",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                .unwrap();
        m["extra"]["report"].clone()
    };
    // Weights alone: bg twice, en never, ro once.
    let out = tmp.path().join("weighted");
    let report = build(&config("", [2.0, 0.0, 1.0]), &out);
    let docs = |lang: &str| {
        report["kept"][format!("{lang}/s-{lang}/train")]["documents"]
            .as_u64()
            .unwrap()
    };
    let corpus = text::shards::Corpus::open(&out, "train").unwrap();
    assert_eq!(corpus.documents() as u64, 2 * docs("bg") + docs("ro"));
    assert_eq!(report["sampling"]["bg/s-bg"]["rate"], 2.0);
    assert_eq!(report["sampling"]["en/s-en"]["tokens_written"], 0);

    // Balancing: the smallest language's share grows, shares sum to 1, and the output repeats exactly.
    let cfg = config("language_alpha = 0.3", [1.0, 1.0, 1.0]);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let report = build(&cfg, &a);
    build(&cfg, &b);
    assert_eq!(bytes_of(&a), bytes_of(&b));
    let s = report["sampling"].as_object().unwrap();
    let share = |k: &str, f: &str| s[k][f].as_f64().unwrap();
    let total: f64 = ["bg/s-bg", "en/s-en", "ro/s-ro"]
        .iter()
        .map(|k| share(k, "balanced_share"))
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    let smallest = ["bg/s-bg", "en/s-en", "ro/s-ro"]
        .into_iter()
        .min_by(|x, y| share(x, "natural_share").total_cmp(&share(y, "natural_share")))
        .unwrap();
    assert!(share(smallest, "balanced_share") > share(smallest, "natural_share"));
    assert!(share(smallest, "rate") > 1.0);
    let bad = run(&[
        "corpus",
        "--config",
        config("language_alpha = 0.0", [1.0; 3]).to_str().unwrap(),
        "--out",
        tmp.path().join("bad").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("language_alpha"));
}

#[test]
fn auto_language_detects_each_documents_language() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = sample_tokenizer(tmp.path());
    let greek = tmp.path().join("greek.txt");
    std::fs::write(
        &greek,
        "Ο ασθενής παρουσίασε αιφνίδια αδυναμία του δεξιού χεριού και δυσκολία στην ομιλία.\n\
         Η αξονική τομογραφία εγκεφάλου δεν έδειξε αιμορραγία κατά την εισαγωγή του ασθενούς.\n",
    )
    .unwrap();
    let cfg = tmp.path().join("auto.toml");
    std::fs::write(
        &cfg,
        format!(
            "tokenizer = \"{}\"\nvalidation_permille = 0\nlanguage_min_confidence = 0.3\n\
             [[sources]]\nname = \"mixed\"\npath = \"data/sample/corpus/*.txt\"\nformat = \"text\"\nlanguage = \"auto\"\n\
             [[sources]]\nname = \"declared\"\npath = \"{}\"\nformat = \"text\"\nlanguage = \"ro\"\n",
            tok.display(),
            greek.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let summary = ok(run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    for lang in ["bg", "cs", "el", "en", "es", "pl", "ro"] {
        assert!(
            summary.contains(&format!("{lang}/mixed/train")),
            "{lang}: {summary}"
        );
    }
    // Greek text declared Romanian: kept as declared, the disagreement counted.
    assert!(summary.contains("ro/declared/train"), "{summary}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        report["extra"]["report"]["language_mismatches"]["declared: ro→el"],
        2
    );
}

#[test]
fn near_duplicates_are_dropped_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = sample_tokenizer(tmp.path());
    let base = "Pacientul a fost internat cu accident vascular cerebral ischemic acut, a primit tromboliza \
                intravenoasa in primele nouazeci de minute, iar scorul NIHSS a scazut de la paisprezece la sase";
    let text = format!(
        "{base} la externare.\n{base} la externarea din ziua a saptea.\n\
         Tensiunea arteriala a fost controlata cu amlodipina si glicemia a ramas sub zece mmol pe litru.\n"
    );
    std::fs::write(tmp.path().join("notes.txt"), text).unwrap();
    let config = |near: &str| {
        let file = tmp.path().join(format!("c{}.toml", near.len()));
        std::fs::write(
            &file,
            format!(
                "tokenizer = \"{}\"\nvalidation_permille = 0\n{near}\n[[sources]]\nname = \"notes\"\n\
                 path = \"{}\"\nformat = \"text\"\nlanguage = \"ro\"\n",
                tok.display(),
                tmp.path().join("notes.txt").display()
            ),
        )
        .unwrap();
        file
    };
    let build = |cfg: &Path, name: &str| {
        ok(run(&[
            "corpus",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            tmp.path().join(name).to_str().unwrap(),
        ]))
    };
    let plain = build(&config(""), "plain");
    assert!(!plain.contains("near_duplicate"), "{plain}");
    let near = build(&config("[near_duplicates]\nthreshold = 0.7"), "near");
    assert!(near.contains("dropped (near_duplicate): 1"), "{near}");
    assert_eq!(
        text::shards::Corpus::open(&tmp.path().join("near"), "train")
            .unwrap()
            .documents(),
        2
    );
}

/// One `[[sources]]` entry of a corpus config.
fn source_toml(name: &str, path: &Path, format: &str, lang: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\npath = \"{}\"\nformat = \"{format}\"\nlanguage = \"{lang}\"\nmin_chars = 3\n",
        path.display()
    )
}

/// A corpus config over the fixture tokenizer with these sources, in `dir/c.toml`.
fn corpus_config(dir: &Path, sources: &[String]) -> PathBuf {
    let tok = root().join("crates/model/tests/fixtures/tokenizer/tokenizer.json");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "tokenizer = \"{}\"\nvalidation_permille = 0\n{}",
            tok.display(),
            sources.concat()
        ),
    )
    .unwrap();
    cfg
}

fn corpus_fails(cfg: &Path, out: &Path) -> String {
    let o = run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_broken_tmx_unit_is_rejected_at_its_line_and_the_next_unit_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("tm.tmx"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header srclang="en"/><body>
<tu tuid="1"><tuv xml:lang="en"><seg>the first unit is well formed</seg></tuv></tu>
<tu tuid="2"><tuv xml:lang="en"><seg>the second unit is well formed too</seg></tuv></tu>
<tu tuid="3"><tuv xml:lang="en"><seg>this segment is never closed</tuv></tu>
<tu tuid="4"><tuv xml:lang="en"><seg>the unit after the broken one</seg></tuv></tu>
</body></tmx>"#,
    )
    .unwrap();
    let cfg = corpus_config(d, &[source_toml("tm", &d.join("tm.tmx"), "tmx", "en")]);
    let out = d.join("out");
    let summary = corpus_with_rows(&cfg, &out, &["en/tm/train"]);
    assert!(summary.contains("rejected inputs: 1"), "{summary}");
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
    let r: serde_json::Value = serde_json::from_str(rejects.trim()).unwrap();
    assert_eq!(r["line"], 5, "the broken unit's own line: {r}");
    assert!(
        r["reason"].as_str().unwrap().contains("unclosed <seg>"),
        "{r}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["extra"]["report"]["kept"]["en/tm/train"]["documents"], 3,
        "units 1, 2 and 4 are kept"
    );
}

#[test]
fn every_source_is_checked_before_any_is_read_and_a_failed_build_leaves_no_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("notes.txt"),
        "Pacientul a fost internat cu AVC ischemic acut.\n",
    )
    .unwrap();
    std::fs::write(
        d.join("table.csv"),
        "id,body\n1,Pacient cu hemipareză stângă.\n",
    )
    .unwrap();
    let good = source_toml("notes", &d.join("notes.txt"), "text", "ro");
    let out = d.join("out");

    let cfg = corpus_config(
        d,
        &[
            good.clone(),
            source_toml("later", &d.join("nothing-*.txt"), "text", "ro"),
        ],
    );
    let err = corpus_fails(&cfg, &out);
    assert!(
        err.contains("source 'later'") && err.contains("nothing found"),
        "{err}"
    );
    assert!(!out.exists(), "no half-written corpus directory");

    let cfg = corpus_config(
        d,
        &[
            good.clone(),
            source_toml("table", &d.join("table.csv"), "csv", "ro"),
        ],
    );
    let err = corpus_fails(&cfg, &out);
    assert!(
        err.contains("source 'table'") && err.contains("no column 'text'") && err.contains("body"),
        "{err}"
    );
    assert!(!out.exists());

    // A complete corpus stays whole when a later build of the same directory fails part-way
    // (--strict stops after reading everything), and nothing partial is left beside it.
    let cfg = corpus_config(d, &[good]);
    corpus_with_rows(&cfg, &out, &["ro/notes/train"]);
    let before = bytes_of(&out);
    std::fs::write(
        d.join("notes.txt"),
        b"Pacientul a fost internat.\n\xff broken\n".as_slice(),
    )
    .unwrap();
    let o = run(&[
        "corpus",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--strict",
    ]);
    assert!(!o.status.success());
    assert_eq!(bytes_of(&out), before, "the earlier corpus is untouched");
    let leftovers: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A directory that holds something else is never taken over.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let err = corpus_fails(&cfg, &other);
    assert!(err.contains("no corpus"), "{err}");
    assert!(other.join("keep.txt").is_file());
    // The tokenizer's output is checked before its documents are read and it trains.
    let tokenizer_fails = |out: &Path| {
        let o = run(&[
            "tokenizer",
            "--config",
            cfg.to_str().unwrap(),
            "--vocab-size",
            "100",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = tokenizer_fails(&other.join("keep.txt/tok.json"));
    assert!(err.contains("is a file"), "{err}");
    // A tokenizer another training is writing (this test process holds it) is refused before its
    // documents are read.
    let tok = d.join("tok.json");
    let _held = fsutil::lock::lock_output_file(&tok, "tokenizer training").unwrap();
    let err = tokenizer_fails(&tok);
    assert!(
        err.contains("is in use by another tokenizer training (pid"),
        "{err}"
    );
    assert!(!tok.exists() && !d.join("tok.run.json").exists());
}

/// The largest resident set of a running process so far (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `corpus` and returns its peak resident memory in MiB (read while it runs).
fn corpus_peak_mib(cfg: &Path, out: &Path) -> u64 {
    let mut child = Command::new(BIN)
        .current_dir(root())
        .args([
            "corpus",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return peak / 1024;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_large_file_is_streamed_not_held() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 2.4 million lines, 96 MB: the same 1,000 sentences over and over (duplicates are dropped, so
    // the time goes to reading and cleaning, which is what holds memory if a file is collected).
    let lines: Vec<String> = (0..1000)
        .map(|i| format!("Pacientul {i:04} a fost internat cu AVC ischemic acut.\n"))
        .collect();
    let block = lines.concat();
    let mut big = std::io::BufWriter::new(std::fs::File::create(d.join("big.txt")).unwrap());
    for _ in 0..2400 {
        std::io::Write::write_all(&mut big, block.as_bytes()).unwrap();
    }
    drop(big);
    std::fs::write(d.join("small.txt"), &block).unwrap();
    let small = corpus_peak_mib(
        &corpus_config(
            d,
            &[source_toml("notes", &d.join("small.txt"), "text", "ro")],
        ),
        &d.join("out-small"),
    );
    let big = corpus_peak_mib(
        &corpus_config(d, &[source_toml("notes", &d.join("big.txt"), "text", "ro")]),
        &d.join("out-big"),
    );
    let size_mib = std::fs::metadata(d.join("big.txt")).unwrap().len() >> 20;
    assert!(
        big < small + 48,
        "peak RSS {big} MiB for a {size_mib} MiB file, {small} MiB for 1,000 lines: the file is held"
    );
}

#[test]
fn tokenizer_training_gives_the_same_file_every_time() {
    // At 4,000 pieces the trainer's tail of kept pieces holds a multi-character piece between single
    // characters, in hash order: three runs (three processes, three hash seeds) must still agree.
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let out = tmp.path().join(format!("tok{i}.json"));
            ok(run(&[
                "tokenizer",
                "--config",
                "configs/corpus-demo.toml",
                "--vocab-size",
                "4000",
                "--out",
                out.to_str().unwrap(),
            ]));
            std::fs::read(&out).unwrap()
        })
        .collect();
    assert!(
        runs[0] == runs[1] && runs[1] == runs[2],
        "tokenizer.json differs between runs"
    );
}
