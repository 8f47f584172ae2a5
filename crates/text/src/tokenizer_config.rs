//! `tokenizer_config.json`: which tokenizer `transformers` builds from a directory's `tokenizer.json`, so
//! that medqa tokenizes as `AutoTokenizer.from_pretrained(dir)` does.
//!
//! transformers 5 runs a `tokenizer.json` as written only for the generic classes
//! (`PreTrainedTokenizerFast`, `TokenizersBackend`). For `XLMRobertaTokenizer` — what real XLM-R and
//! multilingual-e5 checkpoints name — it keeps the file's vocabulary and its `Precompiled` normalizer and
//! sets the rest in code (models/xlm_roberta/tokenization_xlm_roberta.py): `WhitespaceSplit` then
//! `Metaspace`, and the `<s> A </s></s> B </s>` template. On XLM-R's own file, whose pre-tokenizer is a
//! bare `Metaspace`, that changes two things: a text ending in white space loses a trailing `▁` token,
//! and a word's offsets no longer include the space before it. A directory without
//! `tokenizer_config.json` is read as written (what medqa always did); every directory medqa writes gets
//! one ([`for_copy`]), so that medqa and transformers read it alike.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub const FILE: &str = "tokenizer_config.json";

/// The classes transformers builds straight from `tokenizer.json`.
const AS_WRITTEN_CLASSES: [&str; 2] = ["PreTrainedTokenizerFast", "TokenizersBackend"];
/// The classes transformers 5 rebuilds as `XLMRobertaTokenizer` (the fast name is an alias there).
const XLM_ROBERTA_CLASSES: [&str; 2] = ["XLMRobertaTokenizer", "XLMRobertaTokenizerFast"];

/// How a `tokenizer.json` becomes a tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// The file's own pipeline.
    AsWritten,
    /// transformers 5's `XLMRobertaTokenizer` over the file's vocabulary.
    XlmRoberta { add_prefix_space: bool },
}

impl std::fmt::Display for Build {
    /// The name recorded in a shard manifest (`tokenizer_build`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Build::AsWritten => f.write_str("as written"),
            Build::XlmRoberta {
                add_prefix_space: true,
            } => f.write_str("XLMRobertaTokenizer"),
            Build::XlmRoberta {
                add_prefix_space: false,
            } => f.write_str("XLMRobertaTokenizer without prefix space"),
        }
    }
}

/// How `tokenizer_file` is built, from the `tokenizer_config.json` beside it (and, where that names no
/// class, the model type in `config.json`, as `AutoTokenizer` resolves it).
pub fn build_for(tokenizer_file: &Path) -> Result<Build> {
    let dir = tokenizer_file.parent().unwrap_or(Path::new("."));
    let path = dir.join(FILE);
    if !path.is_file() {
        return Ok(Build::AsWritten);
    }
    let config = read_json(&path)?;
    let class = match config.get("tokenizer_class") {
        Some(Value::String(class)) => Some(class.clone()),
        None | Some(Value::Null) => None,
        Some(other) => bail!("{}: tokenizer_class is {other}, not a name", path.display()),
    };
    let class = match class {
        Some(class) => class,
        None => match model_type(dir)?.as_deref() {
            Some("xlm-roberta") => XLM_ROBERTA_CLASSES[0].to_owned(),
            _ => return Ok(Build::AsWritten),
        },
    };
    if AS_WRITTEN_CLASSES.contains(&class.as_str()) {
        return Ok(Build::AsWritten);
    }
    if XLM_ROBERTA_CLASSES.contains(&class.as_str()) {
        let add_prefix_space = match config.get("add_prefix_space") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => bail!(
                "{}: add_prefix_space is {other}, not true or false",
                path.display()
            ),
        };
        return Ok(Build::XlmRoberta { add_prefix_space });
    }
    bail!(
        "{}: tokenizer_class {class:?} is neither a tokenizer.json read as written ({}) nor XLM-R's ({}), \
         the two medqa builds as transformers does",
        path.display(),
        AS_WRITTEN_CLASSES.join(", "),
        XLM_ROBERTA_CLASSES.join(", ")
    )
}

fn model_type(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    Ok(read_json(&path)?
        .get("model_type")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Rewrites a parsed `tokenizer.json` (`file` names it in errors) into what `build` makes of it.
pub fn apply(tokenizer: &mut Value, build: Build, file: &Path) -> Result<()> {
    let Build::XlmRoberta { add_prefix_space } = build else {
        return Ok(());
    };
    let model = tokenizer
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .with_context(|| format!("{}: no model", file.display()))?;
    if model.get("type").and_then(Value::as_str) != Some("Unigram") {
        bail!(
            "{}: XLMRobertaTokenizer needs a Unigram (SentencePiece) model, not {}",
            file.display(),
            model.get("type").unwrap_or(&Value::Null)
        );
    }
    // transformers builds `Unigram(vocab, unk_id=3, byte_fallback=False)`: a vocabulary with <unk>
    // elsewhere would give it a wrong unknown token.
    let unk = model
        .get("vocab")
        .and_then(|v| v.get(3))
        .and_then(|p| p.get(0));
    if unk.and_then(Value::as_str) != Some("<unk>") {
        bail!(
            "{}: XLMRobertaTokenizer takes id 3 for <unk>, but piece 3 is {}",
            file.display(),
            unk.unwrap_or(&Value::Null)
        );
    }
    model.insert("unk_id".into(), json!(3));
    model.insert("byte_fallback".into(), json!(false));

    let precompiled = precompiled_normalizer(tokenizer.get("normalizer").unwrap_or(&Value::Null));
    let scheme = if add_prefix_space { "always" } else { "never" };
    let metaspace = json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": scheme, "split": true});
    let id = |token: &str| special_id(tokenizer, token, file);
    let (bos, eos) = (id("<s>")?, id("</s>")?);
    let special =
        |name: &str, type_id: u32| json!({"SpecialToken": {"id": name, "type_id": type_id}});
    let sequence = |name: &str| json!({"Sequence": {"id": name, "type_id": 0}});
    let post_processor = json!({
        "type": "TemplateProcessing",
        "single": [special("<s>", 0), sequence("A"), special("</s>", 0)],
        "pair": [special("<s>", 0), sequence("A"), special("</s>", 0), special("</s>", 0), sequence("B"), special("</s>", 0)],
        "special_tokens": {
            "<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]},
            "</s>": {"id": "</s>", "ids": [eos], "tokens": ["</s>"]},
        },
    });
    let root = tokenizer
        .as_object_mut()
        .with_context(|| format!("{}: not a JSON object", file.display()))?;
    root.insert("normalizer".into(), precompiled);
    root.insert(
        "pre_tokenizer".into(),
        json!({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]}),
    );
    root.insert("decoder".into(), metaspace);
    root.insert("post_processor".into(), post_processor);
    Ok(())
}

/// The `Precompiled` normalizer of a tokenizer.json (alone or inside a `Sequence`), or null: the only
/// normalizer transformers carries over.
fn precompiled_normalizer(normalizer: &Value) -> Value {
    let is_precompiled = |n: &&Value| {
        n.get("type").and_then(Value::as_str) == Some("Precompiled")
            && n.get("precompiled_charsmap").is_some()
    };
    let candidates: Vec<&Value> = match normalizer.get("normalizers").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![normalizer],
    };
    candidates
        .into_iter()
        .find(is_precompiled)
        .cloned()
        .unwrap_or(Value::Null)
}

fn special_id(tokenizer: &Value, token: &str, file: &Path) -> Result<u64> {
    let added = tokenizer.get("added_tokens").and_then(Value::as_array);
    let from_added = added.into_iter().flatten().find_map(|t| {
        (t.get("content").and_then(Value::as_str) == Some(token))
            .then(|| t.get("id").and_then(Value::as_u64))
            .flatten()
    });
    let from_vocab = || {
        let vocab = tokenizer
            .pointer("/model/vocab")
            .and_then(Value::as_array)?;
        vocab
            .iter()
            .position(|p| p.get(0).and_then(Value::as_str) == Some(token))
            .map(|i| i as u64)
    };
    from_added.or_else(from_vocab).with_context(|| {
        format!(
            "{}: special token {token} is not in the vocabulary",
            file.display()
        )
    })
}

/// A `tokenizer_config.json` that makes transformers read a tokenizer.json as written.
pub fn as_written(model_max_length: usize) -> Value {
    config(AS_WRITTEN_CLASSES[0], model_max_length)
}

/// A `tokenizer_config.json` naming `XLMRobertaTokenizer`, as real XLM-R checkpoints do.
pub fn xlm_roberta(model_max_length: usize) -> Value {
    config(XLM_ROBERTA_CLASSES[0], model_max_length)
}

fn config(class: &str, model_max_length: usize) -> Value {
    json!({
        "tokenizer_class": class,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_max_length": model_max_length,
    })
}

/// The `tokenizer_config.json` to write beside a copy of `tokenizer_file`: the one beside it, if any
/// (the copy is then built as the original is), else one that reads the file as written (as medqa read
/// it).
pub fn for_copy(tokenizer_file: &Path, model_max_length: usize) -> Result<Vec<u8>> {
    let dir = tokenizer_file.parent().unwrap_or(Path::new("."));
    let path = dir.join(FILE);
    if path.is_file() {
        build_for(tokenizer_file)?;
        return std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()));
    }
    Ok(to_pretty(&as_written(model_max_length)))
}

/// JSON as `fsutil::write_json` writes it: pretty, with a final newline.
pub fn to_pretty(value: &Value) -> Vec<u8> {
    (serde_json::to_string_pretty(value).expect("a JSON value serializes") + "\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(config: Option<Value>, model_config: Option<Value>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        if let Some(c) = config {
            std::fs::write(dir.path().join(FILE), c.to_string()).unwrap();
        }
        if let Some(c) = model_config {
            std::fs::write(dir.path().join("config.json"), c.to_string()).unwrap();
        }
        dir
    }

    fn build(config: Option<Value>, model_config: Option<Value>) -> Result<Build> {
        let dir = dir_with(config, model_config);
        build_for(&dir.path().join("tokenizer.json"))
    }

    #[test]
    fn the_class_decides_as_transformers_resolves_it() {
        let xlmr = Some(json!({"model_type": "xlm-roberta"}));
        assert_eq!(build(None, xlmr.clone()).unwrap(), Build::AsWritten);
        assert_eq!(
            build(Some(as_written(512)), xlmr.clone()).unwrap(),
            Build::AsWritten
        );
        let rebuilt = Build::XlmRoberta {
            add_prefix_space: true,
        };
        assert_eq!(build(Some(xlm_roberta(512)), None).unwrap(), rebuilt);
        assert_eq!(
            build(
                Some(json!({"tokenizer_class": "XLMRobertaTokenizerFast"})),
                None
            )
            .unwrap(),
            rebuilt
        );
        // No class: the model type's tokenizer, as AutoTokenizer picks it.
        assert_eq!(
            build(Some(json!({"model_max_length": 512})), xlmr).unwrap(),
            rebuilt
        );
        assert_eq!(
            build(Some(json!({"model_max_length": 512})), None).unwrap(),
            Build::AsWritten
        );
        assert_eq!(
            build(
                Some(json!({"tokenizer_class": "XLMRobertaTokenizer", "add_prefix_space": false})),
                None
            )
            .unwrap(),
            Build::XlmRoberta {
                add_prefix_space: false
            }
        );
        let err = build(Some(json!({"tokenizer_class": "BertTokenizer"})), None).unwrap_err();
        assert!(format!("{err:#}").contains("BertTokenizer"), "{err:#}");
    }

    #[test]
    fn a_copy_keeps_the_original_config_or_reads_the_file_as_written() {
        let own = dir_with(Some(xlm_roberta(512)), None);
        let bytes = for_copy(&own.path().join("tokenizer.json"), 64).unwrap();
        assert_eq!(bytes, std::fs::read(own.path().join(FILE)).unwrap());
        let bare = dir_with(None, None);
        let bytes = for_copy(&bare.path().join("tokenizer.json"), 64).unwrap();
        let written: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(written, as_written(64));
    }

    #[test]
    fn xlm_roberta_keeps_only_the_precompiled_normalizer_and_sets_the_pipeline() {
        let precompiled = json!({"type": "Precompiled", "precompiled_charsmap": "AAAA"});
        let mut tok = json!({
            "normalizer": {"type": "Sequence", "normalizers": [precompiled, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "add_prefix_space": true},
            "added_tokens": [{"id": 0, "content": "<s>"}, {"id": 2, "content": "</s>"}],
            "model": {"type": "Unigram", "unk_id": 3, "vocab": [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]},
        });
        apply(
            &mut tok,
            Build::XlmRoberta {
                add_prefix_space: true,
            },
            Path::new("t.json"),
        )
        .unwrap();
        assert_eq!(tok["normalizer"], precompiled);
        assert_eq!(
            tok["pre_tokenizer"]["pretokenizers"][0]["type"],
            "WhitespaceSplit"
        );
        assert_eq!(
            tok["pre_tokenizer"]["pretokenizers"][1]["prepend_scheme"],
            "always"
        );
        assert_eq!(
            tok["post_processor"]["special_tokens"]["</s>"]["ids"],
            json!([2])
        );
        assert_eq!(tok["model"]["byte_fallback"], json!(false));

        let mut nfkc = tok.clone();
        nfkc["normalizer"] = json!({"type": "NFKC"});
        apply(
            &mut nfkc,
            Build::XlmRoberta {
                add_prefix_space: false,
            },
            Path::new("t.json"),
        )
        .unwrap();
        assert_eq!(nfkc["normalizer"], Value::Null);
        assert_eq!(nfkc["decoder"]["prepend_scheme"], "never");

        let mut bpe = json!({"model": {"type": "BPE"}});
        let err = apply(
            &mut bpe,
            Build::XlmRoberta {
                add_prefix_space: true,
            },
            Path::new("t.json"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("t.json") && err.to_string().contains("Unigram"));
        let mut shifted = tok.clone();
        shifted["model"]["vocab"][3] = json!(["x", -1.0]);
        assert!(apply(
            &mut shifted,
            Build::XlmRoberta {
                add_prefix_space: true
            },
            Path::new("t.json")
        )
        .is_err());
    }
}
