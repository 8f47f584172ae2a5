//! Our tokenizer against `transformers`' fast tokenizer (fixtures/tokenization.json).

mod common;

use model::XlmrTokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Single {
    text: String,
    input_ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
}

#[derive(Deserialize)]
struct PairWindow {
    input_ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
    sequence_ids: Vec<Option<usize>>,
}

#[derive(Deserialize)]
struct Pair {
    question: String,
    context: String,
    max_length: usize,
    stride: usize,
    windows: Vec<PairWindow>,
}

#[derive(Deserialize)]
struct Cases {
    singles: Vec<Single>,
    pairs: Vec<Pair>,
}

fn load() -> (XlmrTokenizer, Cases) {
    let dir = common::fixtures();
    let tok = XlmrTokenizer::from_file(&dir.join("tokenizer")).unwrap();
    let cases: Cases =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenization.json")).unwrap())
            .unwrap();
    (tok, cases)
}

#[test]
fn special_tokens_have_xlmr_ids() {
    let (tok, _) = load();
    assert_eq!(
        (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id),
        (0, 1, 2, 3)
    );
    assert_eq!(tok.mask_id as usize, tok.vocab_size() - 1);
}

#[test]
fn single_texts_match_transformers() {
    let (tok, cases) = load();
    assert!(cases.singles.len() >= 5);
    for case in &cases.singles {
        let w = tok.encode(&case.text).unwrap();
        assert_eq!(w.input_ids, case.input_ids, "ids of {:?}", case.text);
        assert_eq!(
            w.offsets, case.offsets,
            "character offsets of {:?}",
            case.text
        );
        // Corpus tokenization skips offsets; the ids are the same (without <s> and </s>).
        let plain = tok.encode_ids(&case.text).unwrap();
        assert_eq!(plain, tok.encode_plain(&case.text).unwrap().input_ids);
        assert_eq!(plain[..], case.input_ids[1..case.input_ids.len() - 1]);
    }
}

#[test]
fn question_context_windows_match_transformers() {
    let (tok, cases) = load();
    let mut windows = 0;
    let mut overflowing = 0;
    for case in &cases.pairs {
        let encoder = tok.pair_windows(case.max_length, case.stride).unwrap();
        let ours = encoder.encode(&case.question, &case.context).unwrap();
        let question = encoder.piece(&case.question).unwrap();
        let context = encoder.piece(&case.context).unwrap();
        assert_eq!(
            encoder.encode_pieces(&question, &context).unwrap(),
            ours,
            "windows from pieces tokenized once, for {:?}",
            case.question
        );
        let what = format!(
            "{:?} (max_length {}, stride {})",
            case.question, case.max_length, case.stride
        );
        assert_eq!(
            ours.len(),
            case.windows.len(),
            "number of windows for {what}"
        );
        for (i, (o, t)) in ours.iter().zip(&case.windows).enumerate() {
            assert_eq!(o.input_ids, t.input_ids, "ids of window {i} for {what}");
            assert_eq!(o.offsets, t.offsets, "offsets of window {i} for {what}");
            assert_eq!(
                o.sequence_ids, t.sequence_ids,
                "sequence ids of window {i} for {what}"
            );
            assert!(o.len() <= case.max_length);
        }
        windows += ours.len();
        overflowing += usize::from(ours.len() > 1);
    }
    // The fixtures must exercise overflow, or this test proves little about windows.
    assert!(overflowing >= 5, "only {overflowing} pairs overflowed");
    println!(
        "{} pairs, {windows} windows, {overflowing} pairs with several windows",
        cases.pairs.len()
    );
}

#[test]
fn bad_window_settings_are_errors() {
    let (tok, _) = load();
    assert!(tok.pair_windows(64, 64).is_err());
    let encoder = tok.pair_windows(8, 2).unwrap();
    let long_question = "What was the NIHSS score on admission of the patient with stroke?";
    let err = encoder.encode(long_question, "NIHSS 14").err().unwrap();
    // tokenizers itself would panic here; the message names the sizes instead.
    assert!(
        format!("{err:#}").contains("leaves 0 tokens for the context in windows of 8"),
        "{err:#}"
    );
    let question = encoder.piece(long_question).unwrap();
    let context = encoder.piece("NIHSS 14").unwrap();
    let err = encoder.encode_pieces(&question, &context).err().unwrap();
    assert!(
        format!("{err:#}").contains("36-token question leaves 0 tokens"),
        "{err:#}"
    );
}

/// Every question of the shipped sample's dev set (seven languages, 1,428 questions on 42 notes), cut
/// into small windows: the context tokenized once gives the same windows as the pair tokenized whole.
#[test]
fn windows_from_pieces_equal_whole_pairs_on_the_sample_set() {
    let (tok, _) = load();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample/qa/dev.json");
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let encoder = tok.pair_windows(64, 16).unwrap();
    let (mut questions, mut windows, mut refused) = (0, 0, 0);
    for article in set["data"].as_array().unwrap() {
        for paragraph in article["paragraphs"].as_array().unwrap() {
            let context = paragraph["context"].as_str().unwrap();
            let piece = encoder.piece(context).unwrap();
            for qa in paragraph["qas"].as_array().unwrap() {
                let question = qa["question"].as_str().unwrap().trim_start();
                let whole = encoder.encode(question, context);
                let from_pieces = encoder.encode_pieces(&encoder.piece(question).unwrap(), &piece);
                match (whole, from_pieces) {
                    (Ok(whole), Ok(from_pieces)) => {
                        assert_eq!(from_pieces, whole, "question {}", qa["id"]);
                        windows += whole.len();
                    }
                    // A question too long for 64-token windows with stride 16: both refuse it.
                    (Err(a), Err(b)) => {
                        assert_eq!(a.to_string(), b.to_string());
                        assert!(a.to_string().contains("tokens for the context"), "{a}");
                        refused += 1;
                    }
                    (a, b) => panic!("question {}: {a:?} vs {b:?}", qa["id"]),
                }
                questions += 1;
            }
        }
    }
    assert!(
        questions >= 1_000 && windows > 4 * questions && refused < questions / 10,
        "{questions} questions, {windows} windows, {refused} refused"
    );
    println!("{questions} questions, {windows} windows, {refused} refused");
}

#[test]
fn corpus_ids_equal_the_full_pipeline_on_the_sample_corpus() {
    let (tok, _) = load();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample/corpus");
    let mut lines: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.push("  NIHSS  14,  NIHSS 14 <mask> und\u{0301}\ttab ".to_owned());
    assert!(lines.len() > 50);
    // Twice: the second pass answers from the word cache.
    for _ in 0..2 {
        for line in &lines {
            assert_eq!(
                tok.encode_ids(line).unwrap(),
                tok.encode_plain(line).unwrap().input_ids,
                "{line:?}"
            );
        }
    }
}
