//! A checkpoint saved with only its SentencePiece model (`sentencepiece.bpe.model`, no
//! `tokenizer.json`, as older fine-tuned XLM-R models are): medqa says how to write the missing file,
//! and once written as it says, tokenizes as transformers does.

use std::process::Command;
use test_support::{python, run_ok};
use text::XlmrTokenizer;

const TEXTS: [&str; 4] = [
    "Пациентът е приет с остър исхемичен мозъчен инсулт.",
    "Pacientul a fost internat; tensiunea arterială 150/85 mmHg.",
    "Paciente con fiebre de 39 grados y tos.",
    "Pacjent przyjęty z bólem w klatce piersiowej.",
];

/// A small Unigram SentencePiece model trained on `TEXTS`, in a directory laid out as a slow-tokenizer
/// XLM-R checkpoint: `sentencepiece.bpe.model`, `tokenizer_config.json`, `config.json`.
const TRAIN: &str = r#"
import json, os, sys
import sentencepiece as spm
d, texts = sys.argv[1], sys.argv[2:]
corpus = os.path.join(d, "corpus.txt")
open(corpus, "w").write("\n".join(texts * 50))
m = os.path.join(d, "model")
os.makedirs(m)
spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(m, "sentencepiece.bpe"),
                               vocab_size=100, hard_vocab_limit=False, model_type="unigram",
                               character_coverage=1.0,
                               minloglevel=2)
os.remove(os.path.join(m, "sentencepiece.bpe.vocab"))
json.dump({"tokenizer_class": "XLMRobertaTokenizer"}, open(os.path.join(m, "tokenizer_config.json"), "w"))
json.dump({"model_type": "xlm-roberta"}, open(os.path.join(m, "config.json"), "w"))
"#;

const IDS: &str = r#"
import json, sys
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps([t(x)["input_ids"] for x in sys.argv[2:]]))
"#;

#[test]
fn a_sentencepiece_only_checkpoint_is_told_how_to_write_its_tokenizer_json() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(python())
            .args(["-c", TRAIN])
            .arg(tmp.path())
            .args(TEXTS),
    );
    let model = tmp.path().join("model");
    let err = format!("{:#}", XlmrTokenizer::from_file(&model).err().unwrap());
    assert!(
        err.contains("has only the SentencePiece model (sentencepiece.bpe.model)"),
        "{err}"
    );
    // The command the message gives, run as given.
    let command = err
        .split("python -c \"")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no command in: {err}"));
    run_ok(Command::new(python()).args(["-c", command]));
    let tok = XlmrTokenizer::from_file(&model).unwrap();
    let ours: Vec<Vec<u32>> = TEXTS
        .iter()
        .map(|t| tok.encode(t).unwrap().input_ids)
        .collect();
    let theirs: Vec<Vec<u32>> = serde_json::from_str(&run_ok(
        Command::new(python())
            .args(["-c", IDS])
            .arg(&model)
            .args(TEXTS),
    ))
    .unwrap();
    assert_eq!(ours, theirs);

    // No tokenizer of any kind: said plainly.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = format!("{:#}", XlmrTokenizer::from_file(&empty).err().unwrap());
    assert!(err.contains("does not exist"), "{err}");
}
