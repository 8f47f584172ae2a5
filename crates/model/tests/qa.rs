//! QA features and post-processing against `run_qa.py` / `utils_qa.py` behaviour computed in Python with
//! `transformers`' fast tokenizer (fixtures/qa.json, written by scripts/make_fixtures.py).

mod common;

use model::qa::features::FeatureMaker;
use model::qa::postprocess::{postprocess, PostprocessConfig};
use model::qa::squad::{AnswerSpan, QaExample};
use model::XlmrTokenizer;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::fixtures().join("qa.json")).unwrap())
        .unwrap()
}

fn examples(v: &Value) -> Vec<QaExample> {
    v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| QaExample {
            id: e["id"].as_str().unwrap().into(),
            question: e["question"].as_str().unwrap().into(),
            context: e["context"].as_str().unwrap().into(),
            answers: serde_json::from_value::<Vec<AnswerSpan>>(e["answers"].clone()).unwrap(),
            unlocated: vec![],
            lang: None,
        })
        .collect()
}

fn features(v: &Value) -> Vec<model::qa::features::QaFeature> {
    let tok = XlmrTokenizer::from_file(&common::fixtures().join("tokenizer")).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap() as usize;
    let maker = FeatureMaker::new(
        &tok,
        n("max_seq_length"),
        n("doc_stride"),
        n("max_query_length"),
    )
    .unwrap();
    maker.all(&examples(v)).unwrap()
}

#[test]
fn windows_offsets_and_labels_match_run_qa() {
    let v = fixture();
    let ours = features(&v);
    let theirs = v["features"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "number of windows");
    let mut labelled = 0;
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            o.example as u64,
            t["example"].as_u64().unwrap(),
            "window {i}"
        );
        let ids: Vec<u32> = serde_json::from_value(t["input_ids"].clone()).unwrap();
        assert_eq!(o.input_ids, ids, "ids of window {i}");
        let offsets: Vec<Option<(usize, usize)>> =
            serde_json::from_value(t["context_offsets"].clone()).unwrap();
        assert_eq!(o.context_offsets, offsets, "context offsets of window {i}");
        // run_qa.py's start walk can run past the context (see features.rs); none of these cases does.
        assert!(!t["run_qa_overrun"].as_bool().unwrap());
        let label = (
            t["start_position"].as_u64().unwrap() as usize,
            t["end_position"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            (o.start_position, o.end_position),
            label,
            "labels of window {i}"
        );
        labelled += usize::from(label != (0, 0));
    }
    assert!(labelled >= 8, "only {labelled} windows hold an answer");
}

#[test]
fn labels_point_at_the_answer_text() {
    let v = fixture();
    let exs = examples(&v);
    for f in features(&v).iter().filter(|f| f.start_position > 0) {
        let ex = &exs[f.example];
        let (s, e) = (
            f.context_offsets[f.start_position].unwrap().0,
            f.context_offsets[f.end_position].unwrap().1,
        );
        let span: String = ex.context.chars().skip(s).take(e - s).collect();
        assert!(
            span.contains(ex.answers[0].text.trim()),
            "{span:?} vs {:?}",
            ex.answers[0].text
        );
    }
}

#[test]
fn postprocessing_matches_utils_qa() {
    let v = fixture();
    let exs = examples(&v);
    let feats = features(&v);
    let logits: Vec<(Vec<f32>, Vec<f32>)> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                serde_json::from_value(l[0].clone()).unwrap(),
                serde_json::from_value(l[1].clone()).unwrap(),
            )
        })
        .collect();
    for case in v["postprocess"].as_array().unwrap() {
        let st = &case["settings"];
        let cfg = PostprocessConfig {
            n_best_size: st["n_best_size"].as_u64().unwrap() as usize,
            max_answer_length: st["max_answer_length"].as_u64().unwrap() as usize,
            version_2_with_negative: st["v2"].as_bool().unwrap(),
            null_score_diff_threshold: st["threshold"].as_f64().unwrap(),
        };
        let out = postprocess(&exs, &feats, &logits, &cfg);
        for ex in &exs {
            let what = format!("{} with {cfg:?}", ex.id);
            assert_eq!(
                out.answers[&ex.id],
                case["answers"][&ex.id].as_str().unwrap(),
                "answer of {what}"
            );
            let theirs = case["nbest"][&ex.id].as_array().unwrap();
            let ours = &out.nbest[&ex.id];
            assert_eq!(ours.len(), theirs.len(), "n-best length of {what}");
            for (o, t) in ours.iter().zip(theirs) {
                assert_eq!(o.text, t["text"].as_str().unwrap(), "n-best text of {what}");
                assert!(
                    (o.probability - t["probability"].as_f64().unwrap()).abs() < 1e-6,
                    "probability of {what}"
                );
                assert!((o.start_logit - t["start_logit"].as_f64().unwrap()).abs() < 1e-6);
                let offsets: Option<(usize, usize)> =
                    serde_json::from_value(t["offsets"].clone()).unwrap();
                assert_eq!(o.offsets, offsets);
            }
            if cfg.version_2_with_negative {
                let d = (out.null_odds[&ex.id] - case["null_odds"][&ex.id].as_f64().unwrap()).abs();
                assert!(d < 1e-5, "null odds of {what}");
            }
        }
    }
}

#[test]
fn long_questions_are_cut_not_fatal() {
    let tok = XlmrTokenizer::from_file(&common::fixtures().join("tokenizer")).unwrap();
    let maker = FeatureMaker::new(&tok, 48, 16, 8).unwrap();
    let ex = QaExample {
        id: "long".into(),
        question: "What is the blood pressure of the patient on admission and at discharge after the stroke? ".repeat(5),
        context: "Blood pressure 165/95 mmHg, glucose 8.4 mmol/L.".into(),
        answers: vec![AnswerSpan { text: "165/95 mmHg".into(), answer_start: 15 }],
        unlocated: vec![],
        lang: None,
    };
    let feats = maker.features(0, &ex).unwrap();
    assert!(!feats.is_empty() && feats.iter().all(|f| f.input_ids.len() <= 48));
    assert!(
        feats.iter().any(|f| f.start_position > 0),
        "the answer is still labelled"
    );
}

#[test]
fn squad_files_with_numeric_ids_and_impossible_questions_load() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("d.json");
    std::fs::write(
        &f,
        r#"{"data": [{"lang": "ro", "paragraphs": [{"context": "Tuse și febră.", "qas": [
            {"id": 2, "question": "Ce simptome?", "answers": [{"text": "Tuse", "answer_start": 0}], "extra": 1},
            {"id": "x", "question": "Ce tratament?", "answers": [], "is_impossible": true,
             "plausible_answers": [{"text": "febră", "answer_start": 8}]},
            {"question": "Fără id (PoQuAD)?", "answers": [{"text": "febră", "answer_start": 8}]}]}]}]}"#,
    )
    .unwrap();
    let ex = model::qa::squad::load(&f, None).unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[2].id, "a0-p0-q2");
    assert_eq!(
        ex[2].id,
        model::qa::data::position_id(0, 0, 2),
        "eval names it alike"
    );
    assert_eq!(
        (ex[0].id.as_str(), ex[0].lang.as_deref()),
        ("2", Some("ro"))
    );
    assert!(ex[1].answers.is_empty());
}

#[test]
fn wrong_answer_offsets_are_repaired_or_kept_for_scoring_only() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("d.json");
    // COVID-QA's offsets are off by a few characters; SQuAD-es marks untranslatable answers with -1.
    std::fs::write(
        &f,
        r#"{"data": [{"paragraphs": [{"context": "febră, tuse; apoi febră mare.", "qas": [
            {"id": "ok", "question": "q", "answers": [{"text": "tuse", "answer_start": 7}]},
            {"id": "off", "question": "q", "answers": [{"text": "febră", "answer_start": 16}]},
            {"id": "gone", "question": "q", "answers": [{"text": "dispnee", "answer_start": -1}]},
            {"id": "mixed", "question": "q", "answers": [{"text": "cefalee", "answer_start": -1},
                                                         {"text": "tuse", "answer_start": 3}]}]}]}]}"#,
    )
    .unwrap();
    let (ex, repairs) = model::qa::squad::load_with_repairs(&f, None).unwrap();
    assert_eq!(
        repairs,
        model::qa::squad::AnswerRepairs {
            moved: 2,
            unlocated: 2
        }
    );
    assert_eq!(ex[0].answers[0].answer_start, 7);
    assert_eq!(
        ex[1].answers[0].answer_start, 18,
        "the nearest occurrence, not the first"
    );
    assert!(ex[2].lacks_positions() && ex[2].gold_texts() == vec!["dispnee".to_owned()]);
    assert!(!ex[3].lacks_positions());
    assert_eq!(
        ex[3].gold_texts(),
        vec!["tuse".to_owned(), "cefalee".to_owned()]
    );
    assert_eq!(model::qa::squad::locate_answer("abc", "", 0), Some(0));
    assert_eq!(model::qa::squad::locate_answer("abc", "abcd", -1), None);
}
