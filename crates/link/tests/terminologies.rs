//! Every terminology format read into concepts, merged across files and languages, rejects kept; and
//! the `link` binary end to end (index, one text, a table), on small files and on the real TICO-19
//! term lists when `../shared/data` is there.

use std::path::Path;
use std::process::Command;

use link::terms::{read_all, Concept, TermSource};
use link::{Index, LinkOptions, Method};
use test_support::run_ok;

const BIN: &str = env!("CARGO_BIN_EXE_link");

fn source(spec: &str) -> TermSource {
    spec.parse().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn term_lists_merge_by_id_across_files_and_keep_their_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(
        dir.path(),
        "stroke.csv",
        "id,term,language,synonyms,description\n\
         I63,ischaemic stroke,en,cerebral infarction|brain infarct,Stroke from blocked blood flow\n\
         I63,исхемичен инсулт,bg_BG,,\n\
         ,orphan term,en,,\n\
         I10,,en,,\n",
    );
    // TICO-19's layout: one row, two languages, the English term as the shared id.
    let pair = write(
        dir.path(),
        "f_en-el.csv",
        "id,sourceLang,targetLang,sourceString,targetString\n1,en,el_GR,ischaemic stroke,ισχαιμικό εγκεφαλικό\n",
    );
    let (concepts, rejects) = read_all(&[
        source(&format!("{plain}:name=s")),
        source(&format!(
            "{pair}:name=s:id=sourceString:terms=sourceString@sourceLang,targetString@targetLang"
        )),
    ])
    .unwrap();
    // I63 from the first file; "ischaemic stroke" (an id of its own) from the second.
    assert_eq!(concepts.len(), 2, "{concepts:#?}");
    let i63 = &concepts[0];
    assert_eq!(i63.iri, "urn:medqa:term:s:I63");
    assert_eq!(
        i63.description.as_deref(),
        Some("Stroke from blocked blood flow")
    );
    let labels: Vec<(&str, Option<&str>, bool)> = i63
        .labels
        .iter()
        .map(|l| (l.text.as_str(), l.lang.as_deref(), l.preferred))
        .collect();
    assert_eq!(
        labels,
        [
            ("ischaemic stroke", Some("en"), true),
            ("cerebral infarction", Some("en"), false),
            ("brain infarct", Some("en"), false),
            ("исхемичен инсулт", Some("bg"), true),
        ]
    );
    assert_eq!(concepts[1].iri, "urn:medqa:term:s:ischaemic_stroke");
    assert_eq!(concepts[1].labels[1].lang.as_deref(), Some("el"));
    let reasons: Vec<(usize, &str)> = rejects
        .iter()
        .map(|r| (r.place, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [(4, "no id in column 'id'"), (5, "id 'I10' has no term")]
    );

    let bad = "x.csv:colour=red"
        .parse::<TermSource>()
        .unwrap_err()
        .to_string();
    assert!(bad.contains("unknown key \"colour\""), "{bad}");
    let missing = read_all(&[source(&format!("{pair}:term=nope:language=el"))]).unwrap_err();
    assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
}

#[test]
fn skos_in_ntriples_and_turtle_gives_labels_per_language() {
    let dir = tempfile::tempdir().unwrap();
    let nt = write(
        dir.path(),
        "mesh.nt",
        r#"<http://id.nlm.nih.gov/mesh/D006973> <http://www.w3.org/2004/02/skos/core#prefLabel> "Hypertension"@en .
<http://id.nlm.nih.gov/mesh/D006973> <http://www.w3.org/2004/02/skos/core#prefLabel> "Hipertensión"@es .
<http://id.nlm.nih.gov/mesh/D006973> <http://www.w3.org/2004/02/skos/core#altLabel> "High blood pressure"@en .
<http://id.nlm.nih.gov/mesh/D006973> <http://www.w3.org/2004/02/skos/core#definition> "Persistently high arterial blood pressure."@en .
<http://id.nlm.nih.gov/mesh/D006973> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/2004/02/skos/core#Concept> .
this line is not a triple
"#,
    );
    let ttl = write(
        dir.path(),
        "local.ttl",
        r#"@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix ex: <http://example.org/stroke/> .
ex:tia a skos:Concept ; skos:prefLabel "transient ischaemic attack"@en-GB , "преходна исхемична атака"@bg ;
  skos:altLabel "TIA"@en .
"#,
    );
    let (concepts, rejects) = read_all(&[source(&nt), source(&ttl)]).unwrap();
    assert_eq!(concepts.len(), 2);
    let htn = &concepts[0];
    assert_eq!(htn.iri, "http://id.nlm.nih.gov/mesh/D006973");
    assert_eq!(htn.labels.len(), 3);
    assert_eq!(htn.labels[1].lang.as_deref(), Some("es"));
    assert!(!htn.labels[2].preferred);
    assert_eq!(
        htn.description.as_deref(),
        Some("Persistently high arterial blood pressure.")
    );
    assert_eq!(concepts[1].iri, "http://example.org/stroke/tia");
    assert_eq!(concepts[1].labels[0].lang.as_deref(), Some("en"));
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].place, 6);

    let index = Index::build(concepts, Vec::new(), 3);
    let c = &index.link("high blood-pressure", Some("es"), &LinkOptions::default())[0];
    assert_eq!(
        (c.iri.as_str(), c.method),
        ("http://id.nlm.nih.gov/mesh/D006973", Method::Exact)
    );
    assert_eq!(c.label, "Hipertensión", "reported in the query's language");
}

#[test]
fn obo_terms_with_synonyms_and_obsolete_ones_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let obo = write(
        dir.path(),
        "hp.obo",
        r#"format-version: 1.2
ontology: hp

[Term]
id: HP:0001297
name: Stroke
def: "Sudden impairment of blood flow to a part of the brain." [HPO:probinson]
synonym: "Cerebrovascular accident" EXACT []
synonym: "CVA" EXACT ABBREVIATION []
is_a: HP:0100545 ! Arterial stenosis

[Term]
id: HP:0000001
name: Old term
is_obsolete: true

[Typedef]
id: part_of
name: part of
"#,
    );
    let (concepts, rejects) = read_all(&[source(&obo)]).unwrap();
    assert_eq!(concepts.len(), 1);
    let stroke = &concepts[0];
    assert_eq!(stroke.iri, "http://purl.obolibrary.org/obo/HP_0001297");
    let texts: Vec<&str> = stroke.labels.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["Stroke", "Cerebrovascular accident", "CVA"]);
    assert_eq!(
        stroke.description.as_deref(),
        Some("Sudden impairment of blood flow to a part of the brain.")
    );
    assert_eq!(rejects.len(), 1);
    assert!(rejects[0].reason.contains("obsolete"));
}

#[test]
fn the_binary_indexes_links_a_text_and_links_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let terms = write(
        dir.path(),
        "t.csv",
        "id,term,language\nhtn,arterial hypertension,en\nhtn,артериална хипертония,bg\naf,atrial fibrillation,en\n",
    );
    let index = dir.path().join("idx");
    let out = run_ok(
        Command::new(BIN)
            .args(["index", "--terms", &terms, "--out"])
            .arg(&index),
    );
    assert!(out.contains("2 concepts, 3 labels (bg 1, en 2)"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(index.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        summary["sources"][0]["sha256"],
        test_support::python_sha256(&[terms.clone().into()])[0].as_str()
    );
    // What built it: the linker's version and the commit of the checkout it was compiled in.
    let provenance = &summary["provenance"];
    assert_eq!(provenance["tool"], "medqa-link index");
    assert_eq!(
        provenance["git_commit"].as_str(),
        test_support::git(&test_support::root(), &["rev-parse", "HEAD"]).as_deref(),
        "{provenance}"
    );

    let one = run_ok(
        Command::new(BIN)
            .args(["match", "--index"])
            .arg(&index)
            .args(["--text", "Артериалната хипертония", "--lang", "bg"]),
    );
    let first: serde_json::Value = serde_json::from_str(one.lines().next().unwrap()).unwrap();
    assert_eq!(first["concept_id"], "htn");
    assert_eq!(first["method"], "tfidf");

    let answers = write(
        dir.path(),
        "answers.csv",
        // Line 3's unquoted comma makes three fields: the row is rejected with its line, not linked
        // as "atrial fibrillation" cut at the comma, and the rows after it keep their numbers.
        "answer,doc_lang\nartериal hypertension,en\natrial fibrillation, paroxysmal,en\natrial fibrilation,en\n,en\nsomething else,en\n",
    );
    let linked = dir.path().join("linked.csv");
    let out = run_ok(
        Command::new(BIN)
            .args(["match", "--index"])
            .arg(&index)
            .args([
                "--input",
                &answers,
                "--column",
                "answer",
                "--lang-column",
                "doc_lang",
                "--out",
            ])
            .arg(&linked),
    );
    assert!(
        out.contains("linked 2 of 4 rows (2 without a candidate); 1 rejected"),
        "{out}"
    );
    let table = std::fs::read_to_string(&linked).unwrap();
    assert!(table.contains("\n2,atrial fibrilation,en,1,af,"), "{table}");
    assert!(!table.contains("paroxysmal"), "{table}");
    let rejects = std::fs::read_to_string(dir.path().join("linked.rejects.jsonl")).unwrap();
    let reject: serde_json::Value = serde_json::from_str(rejects.trim()).unwrap();
    assert_eq!(reject["place"], 3, "{rejects}");
    assert!(
        reject["reason"]
            .as_str()
            .unwrap()
            .contains("3 fields where the header has 2"),
        "{rejects}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("linked.run.json")).unwrap())
            .unwrap();
    assert_eq!(
        (&record["rows"], &record["linked"], &record["rejects"]),
        (&4.into(), &2.into(), &1.into()),
        "{record}"
    );
    assert_eq!(record["column"], "answer");
    assert_eq!(record["provenance"]["tool"], "medqa-link match");
    assert_eq!(
        record["provenance"]["inputs"][0]["sha256"],
        test_support::python_sha256(&[answers.clone().into()])[0].as_str()
    );
    assert_eq!(
        table.lines().filter(|l| l.contains(",en,0,")).count(),
        2,
        "{table}"
    );

    // A changed source is reported when linking.
    std::fs::write(&terms, "id,term,language\nx,y,en\n").unwrap();
    let warn = Command::new(BIN)
        .args(["match", "--index"])
        .arg(&index)
        .args(["--text", "y"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&warn.stderr).contains("changed since the index was built"));

    // An index directory another build is writing (here this test process holds it) is refused, and
    // the index there is left whole.
    let before = std::fs::read(index.join("index.json")).unwrap();
    let _held = fsutil::lock::lock_dir(&index, "index directory", "index build").unwrap();
    let refused = Command::new(BIN)
        .args(["index", "--terms", &terms, "--out"])
        .arg(&index)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains(&format!(
                "index directory {} is in use by another index build (pid {})",
                index.display(),
                std::process::id()
            )),
        "{err}"
    );
    assert_eq!(std::fs::read(index.join("index.json")).unwrap(), before);
}

/// The real TICO-19 term lists: six language pairs under one name are one concept per English term,
/// and a Greek term links to the concept whose English id it shares.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data (TICO-19 terms)")]
fn tico19_lists_become_one_multilingual_terminology() {
    let dir = test_support::root().join("../shared/data/corpus/tico19-terms");
    let sources: Vec<TermSource> = ["bg_BG", "cs_CZ", "el_GR", "es_XX", "pl_PL", "ro_RO"]
        .iter()
        .map(|l| {
            source(&format!(
                "{}:name=tico19:id=sourceString:terms=sourceString@sourceLang,targetString@targetLang",
                dir.join(format!("f_en-{l}.csv")).display()
            ))
        })
        .collect();
    let (concepts, rejects) = read_all(&sources).unwrap();
    assert_eq!(concepts.len(), 306);
    // Two Bulgarian terms hold a comma without quotes (line 84: `…,diagnosable disease,заболяване,
    // подлежащо на диагностициране`): those rows are rejected with their lines (a columnar read had cut
    // each term at its comma), and their concepts have the other six languages.
    let short: Vec<&Concept> = concepts.iter().filter(|c| c.labels.len() != 7).collect();
    let ids: Vec<&str> = short.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["diagnosable disease", "sars-related coronavirus"]);
    assert!(short
        .iter()
        .all(|c| c.labels.len() == 6 && c.labels.iter().all(|l| l.lang.as_deref() != Some("bg"))));
    let bulgarian: Vec<(usize, &str)> = rejects
        .iter()
        .filter(|r| r.file.ends_with("f_en-bg_BG.csv"))
        .map(|r| (r.place, r.reason.as_str()))
        .collect();
    let ragged = "6 fields where the header has 5 (a cell holding the separator without quotes?)";
    assert_eq!(bulgarian, [(84, ragged), (237, ragged)]);
    // The Spanish file ends in empty rows: each is a reject with its line.
    assert_eq!(rejects.len(), 306 + 2);
    assert!(rejects
        .iter()
        .all(|r| r.file.ends_with("f_en-es_XX.csv") || r.file.ends_with("f_en-bg_BG.csv")));
    let index = Index::build(concepts, Vec::new(), 3);
    let c = &index.link("οξεία βρογχίτιδα", Some("el"), &LinkOptions::default())[0];
    assert_eq!(c.concept_id, "acute bronchitis");
}

/// Terminology files saved by Windows tools start with a byte-order mark: every format reads the same
/// concepts with it as without it.
#[test]
fn a_byte_order_mark_changes_no_format() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "t.nt",
            "<http://example.org/htn> <http://www.w3.org/2004/02/skos/core#prefLabel> \"Hypertension\"@en .\n",
        ),
        (
            "t.ttl",
            "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n<http://example.org/htn> skos:prefLabel \"Hypertension\"@en .\n",
        ),
        ("t.obo", "[Term]\nid: HP:0000822\nname: Hypertension\n"),
        ("t.csv", "id,term,language\nhtn,Hypertension,en\n"),
    ];
    for (name, text) in files {
        let plain = write(dir.path(), name, text);
        let (expected, rejects) = read_all(&[source(&plain)]).unwrap();
        assert_eq!(
            (expected.len(), rejects.len()),
            (1, 0),
            "{name}: {rejects:?}"
        );
        // The same name in another folder: a table's IRIs are made from its file name.
        std::fs::create_dir_all(dir.path().join("bom")).unwrap();
        let marked = dir.path().join("bom").join(name);
        std::fs::write(&marked, [b"\xEF\xBB\xBF", text.as_bytes()].concat()).unwrap();
        let (concepts, rejects) = read_all(&[source(&marked.display().to_string())])
            .unwrap_or_else(|e| panic!("{name} with a byte-order mark: {e:#}"));
        assert!(rejects.is_empty(), "{name}: {rejects:?}");
        assert_eq!(
            (
                concepts.len(),
                concepts[0].iri.as_str(),
                concepts[0].labels[0].text.as_str()
            ),
            (1, expected[0].iri.as_str(), "Hypertension"),
            "{name}"
        );
        // Saved as UTF-16 ("Unicode"), it is an error naming the encoding, not NUL-riddled labels.
        let utf16: Vec<u8> = format!("\u{feff}{text}")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        std::fs::write(&marked, utf16).unwrap();
        let err = format!(
            "{:#}",
            read_all(&[source(&marked.display().to_string())]).unwrap_err()
        );
        assert!(err.contains("UTF-16LE"), "{name}: {err}");
    }
}
